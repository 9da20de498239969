"""Training settings: defaults, then a config file (TOML or JSON), then command-line flags; the resolved
settings are written into the run folder (``config.json``) and are what ``--resume`` continues with."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from cxrlab.errors import ParameterError, UsageError
from cxrlab.params import check_choice

__all__ = [
    "BEST_METRICS",
    "CONFIG_FILE",
    "MAP_STRIDES",
    "POOLINGS",
    "POOL_CHOICES",
    "TARGET_MODES",
    "TrainConfig",
    "resolve_config",
]

CONFIG_FILE = "config.json"
# The fixed choices of the settings, here (free of torch) for the config's checks; the network and the data
# modules use them.
POOLINGS: dict[str, str] = {
    "avg": "a linear layer on the average-pooled C5 and P3 (the classic CAM network)",
    "lse": "a per-location classifier on P3 whose class maps are pooled by log-sum-exp (ChestX-ray8's "
    "global pooling): a finding of a few pixels is not averaged away, and the map is the decision",
    "avg+lse": "the sum of both logits",
}
"""The classifier's poolings a network is built with."""
POOL_CHOICES: dict[str, str] = {
    "auto": "lse where boxes train the class maps, avg without boxes (lse alone did not learn from "
    "scratch without them)",
    **POOLINGS,
}
"""The values of ``--pool``: a pooling, or ``auto`` (the default), resolved when training starts."""
MAP_STRIDES = (4, 8)
"""Strides the per-location class maps can have: P3 (8), or P2 (4), a pyramid level added for them alone."""
TARGET_MODES = ("majority", "soft")
"""How the readers' labels become targets: the majority's 0/1, or the share of the readers (soft)."""
BEST_METRICS = ("val_auroc", "val_loss")


@dataclass
class TrainConfig:
    tables: str
    images: str
    out: str
    labels: str = "vindr"
    arch: str = "resnet18"
    image_size: int = 256
    epochs: int = 10
    batch_size: int = 16
    lr: float = 5e-4
    """AdamW's peak rate. From scratch on a phantom VinDr-CXR, 2e-3 held the classifier at the label priors
    until the cosine decay brought it under ~8e-4 (validation AUROC 0.53 after 3 of 10 epochs; 0.60 at
    5e-4)."""
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.5
    targets: str = "majority"
    boxes: bool = True
    det_weight: float = 2.0
    """Weight of FCOS's losses against the classification loss (summed over the labels). On a phantom VinDr
    (1,000 images, 16 epochs) 2 gave mAP@0.4 0.236 and macro AUROC 0.90, 1 gave 0.197 and 0.87."""
    balanced: bool = False
    ema: float = 0.0
    """The decay of an exponential moving average of the weights, updated every step; the average is what
    is validated, kept as the best checkpoint and predicted with. 0: the trained weights themselves."""
    augment: bool = True
    val_fraction: float = 0.15
    seed: int = 0
    workers: int = 0
    threads: int = 0
    """Torch CPU threads per process (0: torch's default)."""
    weights: str | None = None
    fpn_channels: int = 64
    head_convs: int = 2
    pool: str = "auto"
    """The classifier's pooling (:data:`POOL_CHOICES`): auto, avg, lse or avg+lse. ``auto``
    is lse with boxes (the box labels' class maps trained on the boxes: macro AUROC 0.95 vs 0.93 for avg on a
    phantom VinDr-CXR) and avg without (lse alone sat at the label priors from scratch; the CAM boxes of
    an avg network come from its class maps sharpened by LayerCAM, ``cxrlab.model.predict.CAM_METHODS``)."""
    map_stride: int = 4
    """The stride of the class maps that lse pooling reads: 8 (P3) or 4 (P2, added for them)."""
    best_metric: str = "val_auroc"
    name: str = ""
    """The run's name (the reader of its predictions); default the run folder's name."""

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1, f"must be at least 1, got {self.epochs}"),
            ("batch_size", self.batch_size >= 1, f"must be at least 1, got {self.batch_size}"),
            ("image_size", 32 <= self.image_size <= 4096, f"must be 32-4096, got {self.image_size}"),
            ("lr", self.lr > 0, f"must be positive, got {self.lr}"),
            ("det_weight", self.det_weight >= 0, f"must be >= 0, got {self.det_weight}"),
            ("ema", 0 <= self.ema < 1, f"must be in [0, 1), got {self.ema}"),
            ("val_fraction", 0 <= self.val_fraction < 1, f"must be in [0, 1), got {self.val_fraction}"),
            ("map_stride", self.map_stride in MAP_STRIDES, f"must be 4 or 8, got {self.map_stride}"),
            ("workers", self.workers >= 0, f"must be >= 0, got {self.workers}"),
            ("threads", self.threads >= 0, f"must be >= 0, got {self.threads}"),
        ]
        for parameter, ok, problem in checks:
            if not ok:
                raise ParameterError(parameter, problem)
        check_choice(self.targets, TARGET_MODES, "targets")
        check_choice(self.best_metric, BEST_METRICS, "best_metric")
        check_choice(self.pool, POOL_CHOICES, "pool")
        if not self.name:
            self.name = Path(self.out).name or "model"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"{path}: no such config file")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a readable config file ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a config file holds a table of settings")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    return data


def resolve_config(config_file: str | Path | None = None, **flags: Any) -> TrainConfig:
    """Defaults < config file < flags (a flag left at None does not override)."""
    values: dict[str, Any] = _read_file(Path(config_file)) if config_file else {}
    values.update({k: v for k, v in flags.items() if v is not None})
    missing = [k for k in ("tables", "images", "out") if not values.get(k)]
    if missing:
        raise UsageError(f"missing setting(s) {', '.join(missing)} (flags or config file)")
    try:
        return TrainConfig(**values)
    except TypeError as exc:
        raise UsageError(f"bad settings: {exc}") from None
