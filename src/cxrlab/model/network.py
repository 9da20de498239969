"""The network: one torchvision backbone shared by a multi-label classifier and an FCOS detection head.

The backbone is built with ``weights=None`` (nothing is ever downloaded); ``weights`` loads a user's state
dict (a torchvision classification model of the same architecture, e.g. ImageNet or CheXNet weights). Chest
X-rays are grey: the first convolution takes one channel, its pretrained 3-channel kernel summed over the
channels (the same as feeding the grey image replicated three times).

Three feature levels (strides 8, 16, 32) feed a feature pyramid (torchvision's ``FeaturePyramidNetwork``
with P6/P7, its top-down path upsampled so that every cell keeps its place: :func:`upsample_cells`) and
torchvision's ``FCOS`` head, anchor generator, matching, losses (focal, GIoU, centerness) and
post-processing. The classifier reads the features in one of two ways, or both (``pool``): the deepest level
(stride 32) and P3 average-pooled into a linear layer, whose weights times those maps are the class
activation maps (CAM); or a per-location classifier whose class maps are pooled by log-sum-exp, as
ChestX-ray8's network pooled them, the maps themselves being the CAM. The class maps are read off P3, or
with ``map_stride`` 4 off a P2 level added for them alone. Where boxes exist, the box labels' class maps
are also trained cell by cell on them (:mod:`cxrlab.model.boxmaps`), so that a finding of a few pixels is
neither averaged away nor left to one image-level bit.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.detection import FCOS
from torchvision.models.detection.fcos import FCOSHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from cxrlab.errors import CxrlabError, UsageError
from cxrlab.model.boxmaps import PRIOR, box_map_loss
from cxrlab.model.cam import activation_maps, layer_cam, sharpen, to_input
from cxrlab.model.config import MAP_STRIDES, POOL_CHOICES, POOLINGS
from cxrlab.params import check_choice

__all__ = [
    "ARCHITECTURES",
    "GREY_MEAN",
    "GREY_STD",
    "LSE_SHARPNESS",
    "MAP_STRIDES",
    "POOLINGS",
    "POOL_CHOICES",
    "CxrNet",
    "NetworkSpec",
    "build_network",
    "lse_pool",
    "upsample_cells",
]

# The returned nodes (strides 4, 8, 16, 32) of each architecture's torchvision graph; the stride-4 node is
# read only for class maps at stride 4 (``map_stride``).
ARCHITECTURES: dict[str, tuple[str, str, str, str]] = {
    "resnet18": ("layer1", "layer2", "layer3", "layer4"),
    "resnet34": ("layer1", "layer2", "layer3", "layer4"),
    "resnet50": ("layer1", "layer2", "layer3", "layer4"),
    "densenet121": (
        "features.denseblock1",
        "features.denseblock2",
        "features.denseblock3",
        "features.norm5",
    ),
    "efficientnet_b0": ("features.2", "features.3", "features.5", "features.8"),
    "convnext_tiny": ("features.1", "features.3", "features.5", "features.7"),
}
GREY_MEAN = 0.449
"""ImageNet's channel means averaged: the grey input is normalised as the replicated image would be."""
GREY_STD = 0.226
LSE_SHARPNESS = 10.0
"""The log-sum-exp pooling's r: close to the maximum over a few locations, still giving every location a
gradient."""


@dataclass(frozen=True)
class NetworkSpec:
    """Everything that fixes the network's shape; stored in every checkpoint and compared on reload."""

    arch: str
    labels: tuple[str, ...]
    """Classifier outputs (multi-label), in order."""
    box_labels: tuple[str, ...]
    """Detection classes (empty: no detection head is trained; CAM gives every box)."""
    image_size: int
    fpn_channels: int = 64
    head_convs: int = 2
    pool: str = "avg"
    """How the classifier reads the features (see :data:`POOLINGS`); checkpoints saved without it are
    ``avg``."""
    map_stride: int = 8
    """The stride of the per-location class maps (:data:`MAP_STRIDES`; with ``lse`` pooling)."""
    fpn_upsample: str = "aligned"
    """The pyramid's top-down upsampling: ``aligned`` (:func:`upsample_cells`) or torchvision's ``nearest``,
    which checkpoints saved before the choice existed used."""

    @property
    def p2_maps(self) -> bool:
        """Whether the class maps are read off a P2 pyramid level (lse pooling at stride 4)."""
        return self.map_stride == 4 and "lse" in self.pool

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "labels": list(self.labels),
            "box_labels": list(self.box_labels),
            "image_size": self.image_size,
            "fpn_channels": self.fpn_channels,
            "head_convs": self.head_convs,
            "pool": self.pool,
            "map_stride": self.map_stride,
            "fpn_upsample": self.fpn_upsample,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkSpec:
        return cls(
            arch=str(d["arch"]),
            labels=tuple(d["labels"]),
            box_labels=tuple(d["box_labels"]),
            image_size=int(d["image_size"]),
            fpn_channels=int(d.get("fpn_channels", 64)),
            head_convs=int(d.get("head_convs", 2)),
            pool=str(d.get("pool", "avg")),
            map_stride=int(d.get("map_stride", 8)),
            fpn_upsample=str(d.get("fpn_upsample", "nearest")),
        )


def _grey_first_conv(model: nn.Module) -> None:
    """Replace the first 3-channel convolution by a 1-channel one whose kernel is the sum over channels."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            grey = nn.Conv2d(  # torch types a Conv2d's own sizes as tuple[int, ...]
                1,
                module.out_channels,
                module.kernel_size,  # type: ignore[arg-type]
                module.stride,  # type: ignore[arg-type]
                module.padding,  # type: ignore[arg-type]
                module.dilation,  # type: ignore[arg-type]
                1,
                module.bias is not None,
            )
            with torch.no_grad():
                grey.weight.copy_(module.weight.sum(dim=1, keepdim=True))
                if module.bias is not None and grey.bias is not None:
                    grey.bias.copy_(module.bias)
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, grey)
            return
    raise CxrlabError("the backbone has no 3-channel first convolution to make grey")  # pragma: no cover


def load_user_weights(model: nn.Module, path: str | Path) -> int:
    """Load a user's state dict into a torchvision classification model; returns the tensors loaded.

    Classifier tensors whose shape differs (ImageNet's 1000 classes) are skipped; nothing matching at all
    means the file is for another architecture, an error naming the file.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CxrlabError(f"{path}: no such weights file") from None
    except Exception as exc:
        raise CxrlabError(f"{path}: not a readable torch state dict ({type(exc).__name__})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CxrlabError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    own = model.state_dict()
    usable = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}
    usable = {k: v for k, v in usable.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise CxrlabError(f"{path}: no tensor matches the backbone (weights of another architecture?)")
    model.load_state_dict(usable, strict=False)
    return len(usable)


def upsample_cells(x: Tensor, shape: tuple[int, int]) -> Tensor:
    """(B, C, h, w) -> (B, C, *shape), a level twice finer, with coarse cell ``n`` on fine cell ``2n``.

    A cell of a stride-s level sits on input pixel ``s * m`` (see :func:`cxrlab.model.cam.to_input`), so fine
    cell ``2n`` is coarse cell ``n`` and fine cell ``2n + 1`` lies halfway to ``n + 1`` (linear, the last
    repeated). Nearest-neighbour upsampling, torchvision's FPN default, gives cell ``2n + 1`` coarse cell
    ``n``: every top-down feature arrives half a coarse cell up and left of its place, 2-14 px at P2, and a
    map read off the pyramid peaks below and right of what it found.
    """
    for dim, size in ((2, shape[0]), (3, shape[1])):
        n = x.shape[dim]
        following = torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim)
        x = torch.stack([x, (x + following) / 2], dim + 1).flatten(dim, dim + 1).narrow(dim, 0, size)
    return x


class _AlignedPyramid(FeaturePyramidNetwork):
    """torchvision's feature pyramid (its lateral and output convolutions, P6/P7) with the top-down path
    upsampled by :func:`upsample_cells`, so that every level keeps the backbone's cell centres."""

    def forward(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        names, levels = list(x), list(x.values())
        top_down = self.get_result_from_inner_blocks(levels[-1], -1)
        outputs = [self.get_result_from_layer_blocks(top_down, -1)]
        for idx in range(len(levels) - 2, -1, -1):
            lateral = self.get_result_from_inner_blocks(levels[idx], idx)
            top_down = lateral + upsample_cells(top_down, (lateral.shape[-2], lateral.shape[-1]))
            outputs.insert(0, self.get_result_from_layer_blocks(top_down, idx))
        if self.extra_blocks is not None:
            outputs, names = self.extra_blocks(outputs, levels, names)
        return OrderedDict(zip(names, outputs, strict=True))


class _PyramidBackbone(nn.Module):
    """Backbone levels C2-C5 -> P3-P7 (the ``backbone`` FCOS expects, with ``out_channels``), or with
    ``with_c2`` P2-P7, P2 for the class maps alone."""

    def __init__(
        self, body: nn.Module, in_channels: list[int], out_channels: int, aligned: bool, with_c2: bool
    ) -> None:
        super().__init__()
        self.body = body
        self.with_c2 = with_c2
        pyramid = _AlignedPyramid if aligned else FeaturePyramidNetwork
        used = in_channels if with_c2 else in_channels[1:]
        self.fpn = pyramid(used, out_channels, LastLevelP6P7(out_channels, out_channels))
        self.out_channels = out_channels

    def pyramid(self, levels: dict[str, Tensor]) -> OrderedDict[str, Tensor]:
        """The pyramid over the body's ``levels`` (C2 left out unless ``with_c2``)."""
        return self.fpn(levels if self.with_c2 else {k: v for k, v in levels.items() if k != "c2"})

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:  # pragma: no cover - CxrNet calls parts
        return self.pyramid(self.body(x))


class CxrNet(nn.Module):
    """Backbone + classifier + FCOS; ``forward`` gives logits, the CAM feature maps and the head outputs."""

    mean: Tensor  # buffers: the grey normalisation
    std: Tensor

    def __init__(self, spec: NetworkSpec, weights: str | Path | None = None) -> None:
        super().__init__()
        check_choice(spec.arch, ARCHITECTURES, "arch")
        check_choice(spec.pool, POOLINGS, "pool")
        check_choice(spec.fpn_upsample, ("aligned", "nearest"), "fpn_upsample")
        if not spec.labels:
            raise UsageError("the label set is empty: nothing to classify")
        self.spec = spec
        base = getattr(torchvision.models, spec.arch)(weights=None)
        self.weights_loaded = load_user_weights(base, weights) if weights else 0
        _grey_first_conv(base)
        if spec.map_stride not in MAP_STRIDES:
            raise UsageError(f"map_stride must be 4 or 8, not {spec.map_stride}")
        # the body returns C2-C5: C2 feeds the pyramid only for class maps at stride 4; the sharpened maps
        # read it (sharpened_maps)
        nodes = ARCHITECTURES[spec.arch]
        body = create_feature_extractor(base, {n: f"c{k + 2}" for k, n in enumerate(nodes)})
        with torch.no_grad():
            body.eval()
            channels = [int(v.shape[1]) for v in body(torch.zeros(1, 1, 64, 64)).values()]
        aligned = spec.fpn_upsample == "aligned"
        pyramid = _PyramidBackbone(body, channels, spec.fpn_channels, aligned, spec.p2_maps)
        n_box = max(1, len(spec.box_labels))  # FCOS needs a class; unused when there are no box labels
        head = FCOSHead(spec.fpn_channels, 1, n_box, num_convs=spec.head_convs)
        self.detector = FCOS(
            pyramid,
            n_box,
            min_size=spec.image_size,
            max_size=spec.image_size,
            image_mean=[GREY_MEAN],
            image_std=[GREY_STD],
            head=head,
            score_thresh=0.01,  # low-scored boxes cost nothing in average precision and find more
            detections_per_img=100,
        )
        parts = spec.pool.split("+")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = (
            nn.Linear(channels[-1] + spec.fpn_channels, len(spec.labels)) if "avg" in parts else None
        )
        self.local = (
            _local_classifier(spec.fpn_channels, len(spec.labels), boxed=bool(spec.box_labels))
            if "lse" in parts
            else None
        )
        self.box_columns = [spec.labels.index(label) for label in spec.box_labels]  # box labels are labels
        self.register_buffer("mean", torch.tensor(GREY_MEAN).view(1, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(GREY_STD).view(1, 1, 1, 1), persistent=False)

    @property
    def detects(self) -> bool:
        return bool(self.spec.box_labels)

    def forward(self, images: Tensor) -> dict[str, Any]:
        """``images``: (B, 1, H, W) in [0, 1]. Returns ``logits`` (B, L), ``cam_features`` (C5 and P3, the
        average-pooled classifier's inputs), with ``lse`` pooling the per-location ``local_maps`` (B, L, h, w)
        and, with box labels, the FCOS ``head`` outputs with the pyramid
        ``levels`` they were computed on."""
        x = (images - self.mean) / self.std
        levels = self.detector.backbone.body(x)
        c5 = levels["c5"]
        if self.spec.arch.startswith("densenet"):
            c5 = torch.relu(c5)  # densenet's norm5 output is rectified before its classifier
        pyramid = list(self.detector.backbone.pyramid(levels).values())
        finest = pyramid[0]
        if self.spec.p2_maps:  # P2 serves the class maps alone; the classifier and FCOS start at P3
            pyramid = pyramid[1:]
        out: dict[str, Any] = {"cam_features": (c5, pyramid[0])}
        logits = []
        if self.classifier is not None:
            pooled = torch.cat([torch.flatten(self.pool(f), 1) for f in (c5, pyramid[0])], dim=1)
            logits.append(self.classifier(pooled))
        if self.local is not None:
            out["local_maps"] = self.local(finest)
            logits.append(lse_pool(out["local_maps"], LSE_SHARPNESS))
        out["logits"] = logits[0] if len(logits) == 1 else logits[0] + logits[1]
        if self.detects:
            out["head"] = self.detector.head(pyramid)
            out["levels"] = pyramid
        return out

    def class_maps(self, out: dict[str, Any], labels: list[int], size: int) -> Tensor:
        """The class activation maps of ``labels`` at ``size`` x ``size`` (B, len(labels), size, size): the
        average-pooled classifier's share of each location, plus the class maps that log-sum-exp pools."""
        maps = []
        if self.classifier is not None:
            maps.append(activation_maps(out["cam_features"], self.classifier.weight, labels, size))
        if self.local is not None:
            maps.append(to_input(out["local_maps"][:, labels], size))
        return maps[0] if len(maps) == 1 else maps[0] + maps[1]

    def sharpened_maps(self, images: Tensor, labels: list[int], size: int) -> Tensor:
        """The class maps of ``labels`` sharpened by LayerCAM at stride 4 (:func:`cxrlab.model.cam.sharpen`)
        -> (B, len(labels), size, size), one backward pass per label from its logit to C2. They place a
        small finding where the average-pooled classifier's CAM (stride 32) cannot. Works in eval mode,
        inside ``torch.no_grad`` or not, and leaves no parameter gradient.

        Why C2: a map peaks on a cell centre, and a nodule of 6-14 px is often nearer no stride-8 centre
        than its own radius, so LayerCAM at C3 put its peak at the nodule's edge, its box outside. On 200
        training images of two phantom models trained without boxes, stride 4 raised Nodule/Mass T(IoBB >
        0.5) from 0.38 / 0.34 to 0.45 / 0.44 (Cardiomegaly 0.79 / 0.85 -> 0.76 / 0.69)."""
        if not labels:
            return images.new_zeros(images.shape[0], 0, size, size)
        levels: dict[str, Tensor] = {}
        hook = self.detector.backbone.body.register_forward_hook(lambda _m, _i, out: levels.update(out))
        try:
            with torch.enable_grad():
                out = self(images.detach().requires_grad_(True))
                fine = []
                for k in labels:
                    (grads,) = torch.autograd.grad(out["logits"][:, k].sum(), levels["c2"], retain_graph=True)
                    fine.append(layer_cam(levels["c2"].detach(), grads))
        finally:
            hook.remove()
        with torch.no_grad():
            maps = self.class_maps(out, labels, size)
        return sharpen(maps.detach(), to_input(torch.stack(fine, dim=1), size))

    def _anchors(self, images: Tensor, levels: list[Tensor]) -> tuple[list[Tensor], list[int]]:
        sizes = [(int(images.shape[-2]), int(images.shape[-1]))] * images.shape[0]
        anchors = self.detector.anchor_generator(ImageList(images, sizes), levels)
        return anchors, [int(f.shape[2] * f.shape[3]) for f in levels]

    def detection_loss(
        self, images: Tensor, out: dict[str, Any], targets: list[dict[str, Tensor]]
    ) -> dict[str, Tensor]:
        """FCOS's own losses (focal classification, GIoU regression, centerness) against ``targets``
        (per image ``boxes`` (N, 4) in input pixels and ``labels`` (N,) indices into ``box_labels``)."""
        anchors, per_level = self._anchors(images, out["levels"])
        return self.detector.compute_loss(targets, out["head"], anchors, per_level)

    def map_loss(self, images: Tensor, out: dict[str, Any], targets: list[dict[str, Tensor]]) -> Tensor:
        """With log-sum-exp pooling, the box labels' class maps trained on the boxes' cells
        (:mod:`cxrlab.model.boxmaps`); zero without them."""
        if self.local is None:
            return out["logits"].new_zeros(())
        maps = out["local_maps"][:, self.box_columns]
        return box_map_loss(maps, targets, images.shape[-1] / maps.shape[-1])

    def detections(self, images: Tensor, out: dict[str, Any]) -> list[dict[str, Tensor]]:
        """Post-processed boxes (input pixels), scores and class indices per image (torchvision's NMS)."""
        anchors, per_level = self._anchors(images, out["levels"])
        split_out = {k: list(v.split(per_level, dim=1)) for k, v in out["head"].items()}
        split_anchors = [list(a.split(per_level)) for a in anchors]
        sizes = [(int(images.shape[-2]), int(images.shape[-1]))] * images.shape[0]
        return self.detector.postprocess_detections(split_out, split_anchors, sizes)


def _local_classifier(channels: int, labels: int, *, boxed: bool) -> nn.Conv2d:
    """A 1x1 convolution: one class score per location, started as the focal-loss detectors start their last
    layer, with weights of 0.01: every map nearly flat. The bias is zero, so that log-sum-exp pooling starts
    close to the mean, or where boxes train the maps cell by cell (``boxed``) the focal loss's prior
    (:data:`cxrlab.model.boxmaps.PRIOR`), every cell nearly negative. (Torch's default weights did not rescue
    an lse-only model trained from scratch without boxes: it sat at the label priors either way.)
    """
    local = nn.Conv2d(channels, labels, 1)
    nn.init.normal_(local.weight, std=0.01)
    if local.bias is not None:
        nn.init.constant_(local.bias, -math.log((1 - PRIOR) / PRIOR) if boxed else 0.0)
    return local


def lse_pool(maps: Tensor, sharpness: float) -> Tensor:
    """Log-sum-exp pooling of (B, L, h, w) maps -> (B, L), normalised by the area so that a constant map
    pools to its value: between the mean (``sharpness`` -> 0) and the maximum (-> infinity)."""
    flat = maps.flatten(2).float()
    return (torch.logsumexp(sharpness * flat, dim=2) - math.log(flat.shape[2])) / sharpness


def build_network(spec: NetworkSpec, weights: str | Path | None = None) -> CxrNet:
    return CxrNet(spec, weights)
