"""The model card (``model_card.md``) written into every run: what was trained on what, how it scored, and
what it must not be used for. Rewritten after every epoch, and by ``evaluate`` with the test metrics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cxrlab.atomic import write_text_atomic

if TYPE_CHECKING:
    from cxrlab.model.config import TrainConfig
    from cxrlab.model.train import TrainData

__all__ = ["CARD_FILE", "add_test_metrics", "write_model_card"]

CARD_FILE = "model_card.md"
TEST_BEGIN = "<!-- test metrics -->"
TEST_END = "<!-- end of test metrics -->"
TEST_PLACEHOLDER = "- Test metrics: run `cxrlab evaluate` (AUROC with 95% CIs, mAP@0.4, T(IoBB))."
INTENDED_USE = (
    "Research on chest X-ray datasets: benchmarking, label-noise and reader studies, smoke tests of a "
    "pipeline. **Not for clinical use**: not a medical device, not validated on any patient population, "
    "never to inform a diagnosis or treatment."
)
LIMITS = [
    "Trained from the data named below only; scores on other hospitals, devices or populations are unknown.",
    "Labels come from readers (VinDr-CXR) or from text mining of reports (ChestX-ray14): both are noisy, "
    "and the model learns their errors.",
    "CAM boxes are coarse: they show where the classifier looked, not the finding's extent.",
    "Phantom data (cxrlab phantom) only proves that the code learns; its figures say nothing about "
    "real radiographs.",
]


def _fmt(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "n/a" if not np.isfinite(number) else f"{number:.3f}"


def _data_section(config: TrainConfig, data: TrainData) -> list[str]:
    counts = data.split["split"].value_counts().to_dict()
    positives = (data.train.targets.y >= 0.5).sum(axis=0)
    top = sorted(zip(data.spec.labels, positives, strict=True), key=lambda t: -t[1])[:8]
    return [
        "## Data",
        f"- Tables: `{config.tables}`; converted images: `{config.images}`",
        f"- Label set: `{config.labels}` ({len(data.spec.labels)} labels; detection classes: "
        f"{len(data.spec.box_labels) or 'none, boxes from CAM'})",
        f"- Targets from the readers: `{config.targets}`",
        f"- Split (patient-level, test split never used): {counts.get('train', 0)} training images, "
        f"{counts.get('val', 0)} validation images; the list is in `split.parquet`",
        "- Most frequent training positives: " + ", ".join(f"{label} {int(n)}" for label, n in top),
        *[f"- Note: {n}" for n in data.notes],
    ]


def write_model_card(
    run: str | Path,
    config: TrainConfig,
    data: TrainData,
    history: list[dict[str, float]],
    best_epoch: int,
    test_lines: list[str] | None = None,
) -> Path:
    """Write the card; ``test_lines`` (from ``evaluate``) add the test metrics with their CIs."""
    last = history[-1] if history else {}
    best = history[best_epoch] if 0 <= best_epoch < len(history) else {}
    lines = [
        f"# Model card: {config.name}",
        "",
        "## Model",
        f"- Architecture: {config.arch} backbone (torchvision), multi-label classifier ({data.spec.pool} "
        f"pooling{f', class maps at stride {data.spec.map_stride}' if 'lse' in data.spec.pool else ''}) + "
        f"{'FCOS detection head' if data.spec.box_labels else 'CAM boxes only'}; "
        f"input {config.image_size} px grey",
        f"- Initial weights: {config.weights or 'none (trained from scratch)'}",
        f"- Training: {len(history)} of {config.epochs} epochs, batch {config.batch_size}, AdamW lr "
        f"{config.lr:g}, seed {config.seed}, augmentation {'on' if config.augment else 'off'}, "
        f"class-balanced sampling {'on' if config.balanced else 'off'}"
        + (f", weights: their moving average (decay {config.ema:g})" if config.ema else ""),
        "",
        *_data_section(config, data),
        "",
        "## Metrics",
        f"- Best epoch {best.get('epoch', 'n/a')} by {config.best_metric}: validation macro AUROC "
        f"{_fmt(best.get('val_auroc'))}, validation loss {_fmt(best.get('val_loss'))}",
        f"- Last epoch {last.get('epoch', 'n/a')}: training loss {_fmt(last.get('train_loss'))}, "
        f"{_fmt(last.get('images_per_s'))} images/s",
        TEST_BEGIN,
        *(test_lines or [TEST_PLACEHOLDER]),
        TEST_END,
        "",
        "## Intended use",
        INTENDED_USE,
        "",
        "## Limits",
        *[f"- {item}" for item in LIMITS],
        "",
    ]
    return write_text_atomic(Path(run) / CARD_FILE, "\n".join(lines))


def add_test_metrics(run: str | Path, lines: list[str]) -> Path | None:
    """Put ``lines`` between the card's test-metrics markers (the card of an older run is left alone)."""
    path = Path(run) / CARD_FILE
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    start, end = text.find(TEST_BEGIN), text.find(TEST_END)
    if start < 0 or end < start:
        return None
    new = text[: start + len(TEST_BEGIN)] + "\n" + "\n".join(lines) + "\n" + text[end:]
    return write_text_atomic(path, new)
