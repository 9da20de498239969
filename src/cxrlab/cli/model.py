"""``cxrlab train``, ``cxrlab predict`` and ``cxrlab evaluate``: the unified classification + localization
model on the tables and converted images (several processes: ``torchrun --nproc_per_node N -m
cxrlab.cli.main train ...``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cxrlab.cli.common import console, err_console, flags, print_json
from cxrlab.params import check_choice

if TYPE_CHECKING:
    from cxrlab.model.config import TrainConfig

CAM_METHOD_HELP = (
    "Where CAM boxes come from: auto (layercam for an average-pooled classifier, else cam), cam (the "
    "network's class maps) or layercam (the class maps sharpened by LayerCAM at stride 4)."
)
TRAIN_SETTINGS = (
    "epochs",
    "batch_size",
    "image_size",
    "lr",
    "det_weight",
    "ema",
    "val_fraction",
    "targets",
    "pool",
    "map_stride",
    "workers",
    "threads",
)
TRAIN_FLAGS = {name: "--" + name.replace("_", "-") for name in TRAIN_SETTINGS}
"""The flags of train settings checked by the library (``best_metric`` is set in a config file only)."""

__all__ = ["evaluate_cmd", "predict_cmd", "train_cmd"]


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _print_history(history: list[dict[str, float]], best_epoch: int) -> None:
    table = Table(title="training", title_justify="left")
    for column in ("epoch", "train loss", "cls", "det", "val loss", "val AUROC", "img/s"):
        table.add_column(column, justify="right")
    for k, row in enumerate(history):
        mark = " *" if k == best_epoch else ""
        cells = [row["train_loss"], row["cls_loss"], row["det_loss"], row["val_loss"], row["val_auroc"]]
        table.add_row(
            f"{int(row['epoch'])}{mark}", *(f"{v:.4f}" for v in cells), f"{row['images_per_s']:.1f}"
        )
    console.print(table)


def _resumed(run: Path, labels: str | None, epochs: int | None, threads: int | None) -> TrainConfig:
    """The run's own settings; only --epochs (to extend it) and --threads may change on resume."""
    from cxrlab.model.train import check_resume

    cfg = check_resume(run, labels)
    cfg.out = str(run)
    cfg.epochs = epochs if epochs is not None else cfg.epochs
    cfg.threads = threads if threads is not None else cfg.threads
    return cfg


def train_cmd(
    tables: Annotated[
        Path | None, typer.Argument(help="Tables folder (images.parquet, findings.parquet).")
    ] = None,
    images: Annotated[
        Path | None, typer.Option("--images", help="Converted images (cxrlab convert).")
    ] = None,
    labels: Annotated[str | None, typer.Option(help="Label set: vindr, nih or challenge.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder to create.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Settings file (TOML or JSON).")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue this run after a crash.")] = None,
    arch: Annotated[
        str | None,
        typer.Option(help="resnet18, resnet34, resnet50, densenet121, efficientnet_b0 or convnext_tiny."),
    ] = None,
    image_size: Annotated[int | None, typer.Option(help="Network input, pixels a side.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (with --resume: may extend the run).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per step and process.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (AdamW, cosine).")] = None,
    targets: Annotated[str | None, typer.Option(help="majority or soft (share of readers).")] = None,
    pool: Annotated[
        str | None,
        typer.Option(
            help="Classifier pooling: auto (default: lse with boxes, avg without), lse (per-location "
            "class maps, log-sum-exp; trained on the boxes where they exist), avg (average-pooled linear "
            "layer) or avg+lse (both)."
        ),
    ] = None,
    map_stride: Annotated[
        int | None,
        typer.Option(
            help="Stride of the class maps lse pooling reads: 4 (default; P2, ~7% slower) or 8 (P3)."
        ),
    ] = None,
    boxes: Annotated[
        bool | None,
        typer.Option(
            "--boxes/--no-boxes", help="Train the detection head on the boxes (--no-boxes: CAM boxes only)."
        ),
    ] = None,
    balanced: Annotated[
        bool | None, typer.Option("--balanced/--no-balanced", help="Class-balanced sampling.")
    ] = None,
    det_weight: Annotated[
        float | None, typer.Option(help="Weight of the detection losses against the classification loss.")
    ] = None,
    ema: Annotated[
        float | None,
        typer.Option(help="Decay of a moving average of the weights, validated and kept (0: off)."),
    ] = None,
    val_fraction: Annotated[float | None, typer.Option(help="Validation share (by patient).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of split, order, augmentation, init.")] = None,
    workers: Annotated[int | None, typer.Option(help="Data loader processes (0: in process).")] = None,
    threads: Annotated[int | None, typer.Option(help="Torch CPU threads per process (0: default).")] = None,
    weights: Annotated[Path | None, typer.Option(help="Pretrained backbone state dict (your file).")] = None,
    name: Annotated[str | None, typer.Option(help="Run name (the reader of its predictions).")] = None,
) -> None:
    """Train the classifier + detector; checkpoints, metrics.csv, loss/metric plots, model card in the run."""
    from cxrlab.errors import UsageError
    from cxrlab.model.config import POOL_CHOICES, TARGET_MODES, resolve_config
    from cxrlab.model.data import LABEL_SETS
    from cxrlab.model.network import ARCHITECTURES
    from cxrlab.model.train import train

    choices = ((labels, LABEL_SETS, "--labels"), (arch, ARCHITECTURES, "--arch"),
               (targets, TARGET_MODES, "--targets"), (pool, POOL_CHOICES, "--pool"))  # fmt: skip
    for value, allowed, flag in choices:
        if value is not None:
            check_choice(value, allowed, flag)
    if resume is not None:
        cfg = _resumed(resume, labels, epochs, threads)
    else:
        if tables is None and config is None:
            raise UsageError("give TABLES (or a --config file naming them), or --resume RUN")
        with flags(**TRAIN_FLAGS):
            cfg = resolve_config(
                config, tables=str(tables) if tables else None, images=str(images) if images else None,
                out=str(out) if out else None, labels=labels, arch=arch, image_size=image_size, epochs=epochs,
                batch_size=batch_size, lr=lr, targets=targets, pool=pool, map_stride=map_stride, boxes=boxes,
                balanced=balanced, det_weight=det_weight, ema=ema, val_fraction=val_fraction, seed=seed,
                workers=workers, threads=threads, weights=str(weights) if weights else None, name=name,
            )  # fmt: skip
    result = train(cfg, resume=resume is not None, progress=True)
    if _rank() != 0:
        return
    for note in result.notes:
        err_console.print(f"note: {escape(note)}", highlight=False)
    _print_history(result.history, result.best_epoch)
    console.print(
        f"best epoch {result.best_epoch + 1} ({cfg.best_metric} {result.best_value:.4f}); "
        f"run -> {result.run} (best.pt, last.pt, metrics.csv, loss.png, metrics.png, "
        "model_card.md)"
    )


def predict_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder (cxrlab train --out).")],
    images: Annotated[Path, typer.Argument(help="Converted folder, or a folder of DICOMs / PNGs.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for findings.parquet (and submission.csv).")],
    submission: Annotated[bool, typer.Option("--submission", help="Also the challenge CSV.")] = False,
    checkpoint: Annotated[str, typer.Option(help="best or last.")] = "best",
    cam_threshold: Annotated[
        float, typer.Option(help="CAM region threshold (share of the map's range).")
    ] = 0.5,
    cam_core: Annotated[
        float, typer.Option(help="CAM box: the part of a region above this share of its peak.")
    ] = 0.9,
    cam_method: Annotated[str, typer.Option(help=CAM_METHOD_HELP)] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 16,
) -> None:
    """Predict every image: a findings table (reader = run name) with probabilities, boxes, CAM boxes."""
    from cxrlab.metrics.submission import make_submission, write_submission
    from cxrlab.model.checkpoint import CHECKPOINTS
    from cxrlab.model.predict import CAM_METHODS, FINDINGS_OUT, SUBMISSION_OUT, predict, submission_rows

    check_choice(checkpoint, CHECKPOINTS, "--checkpoint")
    check_choice(cam_method, CAM_METHODS, "--cam-method")
    result = predict(
        run,
        images,
        out,
        checkpoint=checkpoint,
        cam_threshold=cam_threshold,
        cam_core=cam_core,
        cam_method=cam_method,
        batch_size=batch_size,
        progress=True,
    )
    counts = result.findings["source"].value_counts().to_dict()
    console.print(
        f"{len(result.images)} images: "
        + ", ".join(f"{v} {k} rows" for k, v in counts.items())
        + f" -> {out / FINDINGS_OUT}"
    )
    if submission:
        rows = submission_rows(result.findings, result.box_labels)
        sub, info = make_submission(rows, image_ids=result.images["image_id"].tolist(), images=result.images)
        path = write_submission(sub, out / SUBMISSION_OUT)
        console.print(f"submission: {info['images']} images, {info['predictions']} predictions -> {path}")


def evaluate_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder (cxrlab train --out).")],
    tables: Annotated[Path, typer.Argument(help="Tables folder with the truth.")],
    images: Annotated[Path, typer.Option("--images", help="Converted images of the tables.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for predictions and scores.json.")],
    split: Annotated[str, typer.Option(help="Split to evaluate ('all' for every image).")] = "test",
    checkpoint: Annotated[str, typer.Option(help="best or last.")] = "best",
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples of the AUROC CIs.")] = 1000,
    cam_method: Annotated[str, typer.Option(help=CAM_METHOD_HELP)] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Predict a split and score it: AUROC with CIs, mAP@0.4 (challenge), T(IoBB) of the CAM boxes."""
    from cxrlab.cli.score import print_score
    from cxrlab.model.checkpoint import CHECKPOINTS
    from cxrlab.model.evaluate import evaluate
    from cxrlab.model.predict import CAM_METHODS

    check_choice(checkpoint, CHECKPOINTS, "--checkpoint")
    check_choice(cam_method, CAM_METHODS, "--cam-method")

    result = evaluate(
        run,
        tables,
        images,
        out,
        split=None if split == "all" else split,
        checkpoint=checkpoint,
        n_boot=n_boot,
        cam_method=cam_method,
        progress=True,
    )
    if json_out:
        print_json({k: s.to_json() for k, s in result.scores.items()} | {"notes": result.notes})
        return
    for s in result.scores.values():
        print_score(s)
    for note in result.notes:
        err_console.print(f"note: {escape(note)}", highlight=False)
