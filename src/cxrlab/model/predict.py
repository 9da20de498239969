"""Prediction: a trained run on a folder of images -> a findings table (and the challenge's submission CSV).

``images`` is a ``cxrlab convert`` output (its manifest maps ids to files), or a folder of DICOMs / PNGs that
is converted first through the imaging pipeline (modality LUT, VOI, MONOCHROME1) into ``OUT/converted``, at
the network's input size. Every box is given back in pixels of the original image.

Rows of the findings table (reader = the run's name; column ``source`` tells where a row comes from):

- ``classifier``: one image-level row (no box) per image and label, the label's probability;
- ``detector``: the FCOS boxes of the detection classes (after torchvision's NMS);
- ``cam``: class-activation-map boxes (one per isolated region of the map, at most three) per image and
  localizable label, scored by the label's probability times the region's peak share.

The submission keeps ``No finding`` (image-level), the detector's boxes, and CAM boxes for the labels without
a detector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from cxrlab.errors import CxrlabError
from cxrlab.model.cam import cam_boxes
from cxrlab.model.checkpoint import CHECKPOINTS, load_model
from cxrlab.model.data import CxrDataset, ImageFiles, Targets, collate
from cxrlab.model.network import CxrNet
from cxrlab.model.train import read_run_config
from cxrlab.params import check_choice
from cxrlab.progress import track
from cxrlab.tables import BOX_COLUMNS, FINDING_COLUMNS, has_box, write_parquet
from cxrlab.taxonomy import NO_FINDING, get_label_set

__all__ = ["CAM_METHODS", "CamSettings", "PredictResult", "localizable_labels", "predict", "submission_rows"]

FINDINGS_OUT = "findings.parquet"
SUBMISSION_OUT = "submission.csv"


@dataclass
class PredictResult:
    findings: pd.DataFrame
    """The findings columns + ``source``; boxes in original pixels."""
    images: pd.DataFrame
    """image_id, width, height (original pixels) of the images predicted."""
    box_labels: tuple[str, ...] = ()
    """The run's detection classes."""
    out: Path | None = None
    notes: list[str] = field(default_factory=list)
    cam_maps: str = "class maps"
    """What the CAM boxes were cut from: ``class maps`` or ``class maps sharpened by LayerCAM``."""


def localizable_labels(labels: tuple[str, ...], label_set: str) -> list[str]:
    """Labels given a CAM box: the set's local labels, or every finding when the set has none (NIH)."""
    from cxrlab.model.data import LABEL_SETS

    ls = get_label_set(LABEL_SETS[label_set])
    local = set(ls.local) if ls.local else set(ls.findings)
    return [label for label in labels if label in local and label != NO_FINDING]


def _image_files(images: str | Path, out: Path | None, size: int, progress: bool) -> ImageFiles:
    folder = Path(images)
    if (folder / "manifest.parquet").is_file() or (folder / "manifest.csv").is_file():
        return ImageFiles.from_conversion(folder)
    if not folder.is_dir():
        raise CxrlabError(f"{folder}: no such folder of images")
    if out is None:
        raise CxrlabError(f"{folder}: raw DICOM/PNG images need an output folder to be converted into")
    from cxrlab.imaging.convert import ConvertOptions, convert

    result = convert(folder, out / "converted", ConvertOptions(size=size), progress=progress)
    if result.converted + result.skipped == 0:
        first = result.failures[0]["error"] if result.failures else "no image"
        raise CxrlabError(f"{folder}: no image could be converted ({first})")
    return ImageFiles.from_conversion(out / "converted")


def _to_original(files: ImageFiles, ids: list[str], boxes: np.ndarray, size: int) -> np.ndarray:
    """Input-pixel boxes (N, 4) of images ``ids`` -> converted pixels -> original pixels."""
    t = files.table.loc[ids]
    out = np.asarray(boxes, dtype=np.float64).copy()
    for cols, side, scale in (([0, 2], "width", "scale_x"), ([1, 3], "height", "scale_y")):
        per = t[side].to_numpy(float)[:, None] / size
        out[:, cols] = out[:, cols] * per / t[scale].to_numpy(float)[:, None]
    return out


CAM_METHODS: dict[str, str] = {
    "auto": "layercam for a network with an average-pooled classifier, cam otherwise",
    "cam": "the network's class maps (the average-pooled classifier's CAM, the log-sum-exp class maps)",
    "layercam": "the class maps sharpened by LayerCAM at stride 4 (cxrlab.model.cam.sharpen)",
}
"""Where CAM boxes come from (``--cam-method``). ``auto`` keeps the class maps that boxes trained (lse
pooling) and sharpens the maps where the only map is the average-pooled classifier's, whose stride-32
cells are too coarse for a nodule."""


@dataclass(frozen=True)
class CamSettings:
    """How CAM maps become boxes (see :func:`cxrlab.model.cam.region_boxes`). ``core`` 0.9 was chosen on 300
    training images of a phantom model trained without boxes (avg+lse pooling, 256 px): T(IoBB > 0.5) of
    Cardiomegaly 0.48 at 0.8, 0.75 at 0.9, 0.76 at 0.95, 0.77 at 0.98; the whole region, core 0, gave 0.00
    on the test split of an earlier model."""

    threshold: float = 0.5
    core: float = 0.9
    max_regions: int = 3
    method: str = "auto"
    """One of :data:`CAM_METHODS`."""

    def sharpens(self, model: CxrNet) -> bool:
        """Whether ``model``'s CAM boxes come from sharpened maps (:meth:`CxrNet.sharpened_maps`)."""
        if self.method == "auto":
            return model.classifier is not None
        return self.method == "layercam"


def _cam_frame(
    model: CxrNet,
    images: torch.Tensor,
    out: dict[str, Any],
    batch_ids: list[str],
    probs: np.ndarray,
    cam_labels: list[int],
    cam: CamSettings,
) -> pd.DataFrame:
    """CAM boxes, each scored by its label's probability times its region's peak share."""
    size = model.spec.image_size
    if cam.sharpens(model):
        maps = model.sharpened_maps(images, cam_labels, size)
    else:
        maps = model.class_maps(out, cam_labels, size)
    found = cam_boxes(maps, cam.threshold, cam.core, cam.max_regions)
    label_index = np.asarray(cam_labels)[found.label]
    frame = pd.DataFrame(
        {
            "image_id": np.asarray(batch_ids, dtype=object)[found.image],
            "label": np.asarray(model.spec.labels, dtype=object)[label_index],
            "score": probs[found.image, label_index] * found.peak,
            "source": "cam",
        }
    )
    frame[BOX_COLUMNS] = found.boxes
    return frame


@torch.no_grad()
def _run(
    model: CxrNet,
    data: CxrDataset,
    cam_labels: list[int],
    batch_size: int,
    cam: CamSettings,
    progress: bool,
) -> list[pd.DataFrame]:
    spec, ids = model.spec, data.targets.image_ids
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate)
    frames: list[pd.DataFrame] = []
    for batch in track(loader, total=len(loader), description="predicting", progress=progress):
        batch_ids = [ids[int(i)] for i in batch["index"]]
        out = model(batch["image"])
        probs = torch.sigmoid(out["logits"]).numpy()
        frames.append(
            pd.DataFrame(
                {
                    "image_id": np.repeat(batch_ids, len(spec.labels)),
                    "label": np.tile(spec.labels, len(batch_ids)),
                    "score": probs.ravel(),
                    "source": "classifier",
                }
            )
        )
        if cam_labels:
            frames.append(_cam_frame(model, batch["image"], out, batch_ids, probs, cam_labels, cam))
        if model.detects:
            for image_id, det in zip(batch_ids, model.detections(batch["image"], out), strict=True):
                frame = pd.DataFrame(
                    {
                        "image_id": image_id,
                        "score": det["scores"].numpy(),
                        "label": [spec.box_labels[int(k)] for k in det["labels"]],
                        "source": "detector",
                    }
                )
                frame[BOX_COLUMNS] = det["boxes"].numpy().reshape(-1, 4)
                frames.append(frame)
    return frames


def predict(
    run: str | Path,
    images: str | Path,
    out: str | Path | None = None,
    *,
    image_ids: list[str] | None = None,
    checkpoint: str = "best",
    batch_size: int = 16,
    cam_threshold: float = 0.5,
    cam_core: float = CamSettings.core,
    cam_method: str = CamSettings.method,
    progress: bool = False,
) -> PredictResult:
    """Predict every image of ``images`` (or those of ``image_ids``) with the run's checkpoint."""
    check_choice(cam_method, CAM_METHODS, "cam_method")
    run = Path(run)
    config = read_run_config(run)
    model, _ = load_model(run / CHECKPOINTS[check_choice(checkpoint, CHECKPOINTS, "checkpoint")])
    out = Path(out) if out is not None else None
    files = _image_files(images, out, model.spec.image_size, progress)
    ids = list(files.table.index.astype(str)) if image_ids is None else [str(i) for i in image_ids]
    if not ids:
        raise CxrlabError(f"{images}: no image to predict")
    files.require(ids, "requested")
    empty = Targets(ids, np.zeros((len(ids), len(model.spec.labels)), np.float32), {})
    data = CxrDataset(empty, files, model.spec.image_size)
    cam = [model.spec.labels.index(x) for x in localizable_labels(model.spec.labels, config.labels)]
    settings = CamSettings(cam_threshold, cam_core, method=cam_method)
    findings = pd.concat(_run(model, data, cam, batch_size, settings, progress), ignore_index=True)
    for column in BOX_COLUMNS:
        if column not in findings.columns:
            findings[column] = np.nan
    has = has_box(findings)
    findings.loc[has, BOX_COLUMNS] = _to_original(
        files,
        findings.loc[has, "image_id"].tolist(),
        findings.loc[has, BOX_COLUMNS].to_numpy(),
        model.spec.image_size,
    )
    findings["reader"] = config.name
    findings = findings[[*FINDING_COLUMNS, "source"]]
    t = files.table.loc[ids]
    sizes = pd.DataFrame(
        {
            "image_id": ids,
            "width": np.rint(t["width"] / t["scale_x"]).to_numpy(),
            "height": np.rint(t["height"] / t["scale_y"]).to_numpy(),
        }
    )
    maps = "class maps sharpened by LayerCAM" if settings.sharpens(model) else "class maps"
    result = PredictResult(findings, sizes, model.spec.box_labels, out, cam_maps=maps)
    if out is not None:
        write_parquet(findings, out / FINDINGS_OUT)
    return result


def submission_rows(findings: pd.DataFrame, box_labels: tuple[str, ...]) -> pd.DataFrame:
    """The rows scored by the challenge: ``No finding`` per image, the detector's boxes, CAM boxes of the
    labels without a detector."""
    src, label = findings["source"], findings["label"]
    keep = (
        ((src == "classifier") & (label == NO_FINDING))
        | (src == "detector")
        | ((src == "cam") & ~label.isin(box_labels))
    )
    return findings[keep.to_numpy()]
