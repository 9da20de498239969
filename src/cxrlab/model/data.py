"""Training data: targets from the tables, images from a conversion, box-aware augmentation, sampling.

Targets (``majority`` or ``soft``) come from the readers of each image: where a ``consensus`` reader exists
(VinDr's test labels, or ``cxrlab labels consensus``) it decides ``majority``; otherwise a label is present
when at least half of the image's readers marked it. ``soft`` is the share of the image's readers who marked
the label (reader-aware training: VinDr's three readers often disagree), the consensus where an image has no
individual reader. Boxes come from the consensus where it exists, else from every reader who marked a label
that at least half of the image's readers marked (in both modes).

Images are the files of a ``cxrlab convert`` output, found through its manifest; boxes of the tables
(original pixels) are moved into the converted pixels by the manifest's scale (and padding), then into the
network's square input. Tables that ``convert`` itself wrote (already in converted pixels) are recognised by
their sizes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from cxrlab.errors import CxrlabError
from cxrlab.labels.export import read_manifest
from cxrlab.model.config import TARGET_MODES
from cxrlab.params import check_choice
from cxrlab.tables import BOX_COLUMNS, CONSENSUS, has_box
from cxrlab.taxonomy import LabelSet, get_label_set

__all__ = [
    "LABEL_SETS",
    "CxrDataset",
    "EpochSampler",
    "ImageFiles",
    "Targets",
    "balanced_weights",
    "collate",
    "image_targets",
    "load_image",
    "model_labels",
]

LABEL_SETS = {"vindr": "vindr", "nih": "nih", "challenge": "vindr-challenge"}


def model_labels(name: str, boxes: bool = True) -> tuple[LabelSet, tuple[str, ...], tuple[str, ...]]:
    """The label set of ``--labels``, the classifier's labels (all of the set) and the detection classes
    (the set's local labels; none without ``boxes`` or for a set without box labels, such as NIH's)."""
    check_choice(name, LABEL_SETS, "labels")
    label_set = get_label_set(LABEL_SETS[name])
    return label_set, tuple(label_set.labels), tuple(label_set.local) if boxes else ()


@dataclass
class Targets:
    """Per image (rows in ``image_ids`` order) the label targets and the boxes in original pixels."""

    image_ids: list[str]
    y: np.ndarray
    """(N, L) float32 in [0, 1]."""
    boxes: dict[str, tuple[np.ndarray, np.ndarray]]
    """image id -> ((K, 4) float boxes, (K,) int64 indices into the detection classes)."""
    notes: list[str] = field(default_factory=list)


def _canonical(findings: pd.DataFrame, label_set: LabelSet) -> pd.DataFrame:
    f = findings.assign(image_id=findings["image_id"].astype(str), reader=findings["reader"].astype(str))
    names = f["label"].astype(str)
    lookup = {n: label_set.match(n) for n in names.unique()}
    return f.assign(canon=names.map(lookup))


def image_targets(
    images: pd.DataFrame,
    findings: pd.DataFrame,
    label_set: LabelSet,
    labels: tuple[str, ...],
    box_labels: tuple[str, ...],
    mode: str = "majority",
) -> Targets:
    """Targets of ``images`` from ``findings`` (see the module docstring)."""
    check_choice(mode, TARGET_MODES, "targets")
    ids = images["image_id"].astype(str).tolist()
    row = {i: k for k, i in enumerate(ids)}
    col = {label: j for j, label in enumerate(labels)}
    f = _canonical(findings[findings["image_id"].astype(str).isin(row)], label_set)
    notes = []
    outside = f["canon"].isna()
    if outside.any():
        shown = ", ".join(sorted(f.loc[outside, "label"].astype(str).unique())[:5])
        notes.append(
            f"{int(outside.sum())} finding row(s) outside the {label_set.name} label set ignored ({shown})"
        )
    is_consensus = f["reader"] == CONSENSUS
    with_consensus = set(f.loc[is_consensus, "image_id"])
    people = f[~is_consensus]
    n_readers = people.groupby("image_id")["reader"].nunique()
    known = f[f["canon"].isin(col)]
    y = np.zeros((len(ids), len(labels)), dtype=np.float32)
    marks = known[known["reader"] != CONSENSUS].groupby(["image_id", "canon"])["reader"].nunique()
    majority: set[tuple[str, str]] = set()
    if len(marks):
        share = marks.to_numpy() / n_readers.loc[marks.index.get_level_values(0)].to_numpy()
        r = marks.index.get_level_values(0).map(row).to_numpy()
        c = marks.index.get_level_values(1).map(col).to_numpy()
        y[r, c] = share if mode == "soft" else (share >= 0.5)
        majority = set(marks.index[share >= 0.5])
    cons = known[known["reader"] == CONSENSUS][["image_id", "canon"]].drop_duplicates()
    decided = np.array(
        [i in with_consensus and (mode == "majority" or i not in n_readers.index) for i in ids]
    )
    y[decided] = 0.0
    if len(cons):
        r, c = cons["image_id"].map(row).to_numpy(), cons["canon"].map(col).to_numpy()
        keep = decided[r]
        y[r[keep], c[keep]] = 1.0
    return Targets(ids, y, _boxes(known, box_labels, with_consensus, majority), notes)


def _boxes(
    known: pd.DataFrame,
    box_labels: tuple[str, ...],
    with_consensus: set[str],
    majority: set[tuple[str, str]],
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The boxes of the consensus where an image has one, else the readers' boxes of the labels that at
    least half of the image's readers marked: one reader's box of a finding the others did not see is
    likelier a false positive than a finding (the phantom's readers add one to 7% of images), and training
    the detector or the class maps on it teaches them to fire on normal lung."""
    if not box_labels:
        return {}
    index = {label: k for k, label in enumerate(box_labels)}
    boxed = known[has_box(known) & known["canon"].isin(index).to_numpy()]
    from_consensus = boxed["image_id"].isin(with_consensus).to_numpy()
    agreed = np.fromiter(
        ((i, c) in majority for i, c in zip(boxed["image_id"], boxed["canon"], strict=True)), bool, len(boxed)
    )
    boxed = boxed[np.where(from_consensus, boxed["reader"] == CONSENSUS, agreed)]
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for image_id, group in boxed.groupby("image_id"):
        out[str(image_id)] = (
            group[BOX_COLUMNS].to_numpy(dtype=np.float32),
            group["canon"].map(index).to_numpy(dtype=np.int64),
        )
    return out


@dataclass
class ImageFiles:
    """Where each image's converted file is and how original boxes map into its pixels."""

    folder: Path
    table: pd.DataFrame
    """Indexed by image id: ``path``, ``width``, ``height``, ``scale_x``, ``scale_y`` (never padded)."""

    @classmethod
    def from_conversion(cls, converted: str | Path) -> ImageFiles:
        folder = Path(converted)
        if not folder.is_dir():
            raise CxrlabError(f"{folder}: no such folder of converted images (make one with cxrlab convert)")
        manifest = read_manifest(folder)
        manifest["path"] = [str(folder / o) for o in manifest["output"]]
        return cls(folder, manifest.set_index("image_id"))

    def require(self, image_ids: list[str], what: str) -> None:
        """Every image of ``image_ids`` must have a converted file, or one line names the first missing."""
        absent = [i for i in image_ids if i not in self.table.index]
        if not absent:
            absent = [i for i in image_ids if not Path(self.table.at[i, "path"]).is_file()]
        if absent:
            raise CxrlabError(
                f"{self.folder}: {len(absent)} {what} image(s) have no converted file "
                f"(first: {absent[0]}); run cxrlab convert on them first"
            )

    def to_converted(self, image_id: str, boxes: np.ndarray, table_width: float | None) -> np.ndarray:
        """Original-pixel boxes -> converted pixels, unless the tables already are in converted pixels."""
        r = self.table.loc[image_id]
        if table_width is not None and table_width == r["width"]:
            return boxes
        scale = np.array([r["scale_x"], r["scale_y"]] * 2, dtype=np.float32)
        return boxes * scale


def load_image(path: str | Path, size: int) -> np.ndarray:
    """A converted image (8/16-bit PNG or .npy) as float32 in [0, 1], resized to ``size`` x ``size``."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        img = np.load(path, allow_pickle=False)
    else:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim not in (2, 3):
        raise CxrlabError(f"{path}: not a readable image")
    if img.ndim == 3:
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2GRAY)
    scale = 1.0 / (65535.0 if img.dtype == np.uint16 else 255.0 if img.dtype == np.uint8 else 1.0)
    if img.shape[0] != size or img.shape[1] != size:
        shrink = img.shape[0] >= size and img.shape[1] >= size
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return img.astype(np.float32) * np.float32(scale)


def _augmentation() -> v2.Compose:
    """Mild geometry (boxes follow, degenerate ones dropped) and exposure; no flips: the heart is left."""
    return v2.Compose(
        [
            v2.RandomAffine(degrees=5, translate=(0.05, 0.05), scale=(0.9, 1.1)),
            v2.ColorJitter(brightness=0.2, contrast=0.2),
            v2.SanitizeBoundingBoxes(min_size=2),
        ]
    )


class CxrDataset(Dataset[dict[str, Any]]):
    """Images of ``targets`` read from ``files`` at ``size`` px, with targets and boxes in input pixels.

    ``augment``: the random transform of sample ``i`` in epoch ``e`` depends on (seed, e, i) alone, so any
    number of loader workers, and a resumed run, see the same samples.
    """

    def __init__(
        self,
        targets: Targets,
        files: ImageFiles,
        size: int,
        *,
        augment: bool = False,
        seed: int = 0,
        table_widths: dict[str, float] | None = None,
    ) -> None:
        self.targets, self.files, self.size = targets, files, size
        self.augment = _augmentation() if augment else None
        self.seed, self.epoch = seed, 0
        self.paths = [str(files.table.at[i, "path"]) for i in targets.image_ids]
        self.boxes: list[tuple[np.ndarray, np.ndarray]] = []
        for image_id in targets.image_ids:
            boxes, cls = targets.boxes.get(image_id, (np.zeros((0, 4), np.float32), np.zeros(0, np.int64)))
            width = (table_widths or {}).get(image_id)
            converted = files.to_converted(image_id, boxes, width)
            r = files.table.loc[image_id]
            factor = np.array([size / r["width"], size / r["height"]] * 2, dtype=np.float32)
            self.boxes.append((np.clip(converted * factor, 0, size).astype(np.float32), cls))

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = torch.from_numpy(load_image(self.paths[index], self.size))[None]
        boxes, cls = self.boxes[index]
        box_t, cls_t = torch.tensor(boxes), torch.tensor(cls)
        if self.augment is not None:
            key = zlib.crc32(f"{self.seed}/{self.epoch}/{index}".encode())
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(key)
                wrapped = tv_tensors.BoundingBoxes(box_t, format="XYXY", canvas_size=(self.size, self.size))
                image, target = self.augment(tv_tensors.Image(image), {"boxes": wrapped, "labels": cls_t})
            image, box_t, cls_t = image.as_subclass(torch.Tensor), target["boxes"], target["labels"]
            box_t = box_t.as_subclass(torch.Tensor)
        return {
            "image": image.clamp_(0, 1),
            "y": torch.from_numpy(self.targets.y[index]),
            "boxes": box_t.float(),
            "box_labels": cls_t.long(),
            "index": index,
        }


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "image": torch.stack([it["image"] for it in items]),
        "y": torch.stack([it["y"] for it in items]),
        "targets": [{"boxes": it["boxes"], "labels": it["box_labels"]} for it in items],
        "index": torch.tensor([it["index"] for it in items]),
    }


class EpochSampler(torch.utils.data.Sampler[int]):
    """This rank's share of an epoch's order: a permutation, or with ``weights`` a class-balanced draw.

    The order depends on (seed, epoch) alone and is the same on every rank before being dealt out
    (padded to a multiple of ``world``), which :class:`~torch.utils.data.DistributedSampler` does not
    offer with weights.
    """

    def __init__(
        self, n: int, *, seed: int = 0, weights: np.ndarray | None = None, rank: int = 0, world: int = 1
    ) -> None:
        self.n, self.seed, self.weights, self.rank, self.world, self.epoch = n, seed, weights, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is None:
            full = torch.randperm(self.n, generator=g).tolist()
        else:
            w = torch.as_tensor(self.weights, dtype=torch.double)
            full = torch.multinomial(w, self.n, replacement=True, generator=g).tolist()
        total = -(-self.n // self.world) * self.world
        full += full[: total - len(full)]
        return full[self.rank :: self.world]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.order())

    def __len__(self) -> int:
        return -(-self.n // self.world)


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Per image, the inverse frequency of its rarest positive label: rare findings are drawn about as often
    as common ones; the images without any positive count as one class of their own."""
    positive = y >= 0.5
    freq = positive.sum(axis=0).astype(np.float64)
    inv = np.where(freq > 0, 1.0 / np.maximum(freq, 1), 0.0)
    none = ~positive.any(axis=1)
    w = (positive * inv).max(axis=1)
    w[none] = 1.0 / max(int(none.sum()), 1)
    return w / w.sum()
