"""Training: one loop for a laptop CPU, a GPU (AMP, channels-last) or several (``torchrun``, DDP).

Every epoch ends with a validation pass (macro AUROC over the labels with positives), ``last.pt`` written
atomically, ``best.pt`` when the chosen metric improved, the metrics log and plots and the model card. Only
rank 0 writes. A killed run resumes (``--resume``) from the start of the epoch it was in: the data order,
the augmentation and dropout of an epoch depend on (seed, epoch) alone, so the resumed run reaches the weights
an uninterrupted run would have (on CPU, where kernels are deterministic).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from cxrlab.atomic import write_text_atomic
from cxrlab.datasets.splits import make_splits
from cxrlab.errors import CxrlabError
from cxrlab.metrics.classification import auroc
from cxrlab.model.checkpoint import BEST, LAST, check_spec, load_checkpoint, save_checkpoint
from cxrlab.model.config import CONFIG_FILE, TrainConfig
from cxrlab.model.data import (
    CxrDataset,
    EpochSampler,
    ImageFiles,
    Targets,
    balanced_weights,
    collate,
    image_targets,
    model_labels,
)
from cxrlab.model.history import plot_history, write_history
from cxrlab.model.network import CxrNet, NetworkSpec
from cxrlab.model.scale import Runtime, start_runtime, stop_runtime
from cxrlab.tables import load_tables
from cxrlab.taxonomy import NO_FINDING

__all__ = ["SPLIT_FILE", "TrainData", "TrainResult", "prepare_data", "resolved_pool", "train"]

SPLIT_FILE = "split.parquet"
StepHook = Callable[[int, int, torch.nn.Module], None]
"""Called after every optimizer step with (epoch, step in epoch, the network): tests use it to interrupt a
run or to look at the weights of each rank."""


@dataclass
class TrainData:
    spec: NetworkSpec
    train: CxrDataset
    val: CxrDataset | None
    split: pd.DataFrame
    """image_id, split (train / val) of the images used."""
    notes: list[str] = field(default_factory=list)


@dataclass
class TrainResult:
    run: Path
    epochs_done: int
    best_epoch: int
    best_value: float
    history: list[dict[str, float]]
    notes: list[str] = field(default_factory=list)


def _split(
    images: pd.DataFrame, findings: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, list[str]]:
    """image_id -> train/val for every non-test image: a given ``val`` split, else a patient-level one."""
    pool = images[images["split"].fillna("") != "test"]
    if pool.empty:
        raise CxrlabError("the tables have no image outside the test split to train on")
    notes = []
    if (pool["split"] == "val").any():
        split = pool["split"].where(pool["split"] == "val", "train")
        notes.append("validation: the tables' own 'val' split")
    elif fraction <= 0 or len(pool) < 4:
        split = pd.Series("train", index=pool.index)
    else:
        no_ids = pool["patient_id"].isna()
        if no_ids.all():
            notes.append("no patient ids: each image is its own patient in the validation split")
        pooled = pool.assign(
            split="pool", patient_id=pool["patient_id"].fillna("__image__" + pool["image_id"])
        )
        made = make_splits(
            pooled, findings, {"train": 1 - fraction, "val": fraction}, seed=seed, within="pool"
        )
        split = made["split"]
    return pd.DataFrame(
        {"image_id": pool["image_id"].astype(str).to_numpy(), "split": split.astype(str).to_numpy()}
    ), notes


def resolved_pool(pool: str, box_labels: tuple[str, ...]) -> str:
    """``auto`` -> lse where box labels train the class maps, avg without boxes (see TrainConfig.pool)."""
    if pool != "auto":
        return pool
    return "lse" if box_labels else "avg"


def prepare_data(config: TrainConfig, split: pd.DataFrame | None = None) -> TrainData:
    """Tables + conversion -> datasets; every problem is found here, before anything is written."""
    tables = load_tables(config.tables)
    label_set, labels, box_labels = model_labels(config.labels, config.boxes)
    files = ImageFiles.from_conversion(config.images)
    notes: list[str] = []
    if split is None:
        split, notes = _split(tables.images, tables.findings, config.val_fraction, config.seed)
    ids = split["image_id"].tolist()
    images = tables.images.set_index(tables.images["image_id"].astype(str)).loc[ids].reset_index(drop=True)
    targets = image_targets(images, tables.findings, label_set, labels, box_labels, config.targets)
    notes += targets.notes
    findings_only = [j for j, label in enumerate(labels) if label != NO_FINDING]
    if not (targets.y[:, findings_only] > 0).any():
        raise CxrlabError(
            f"{config.tables}: no finding of the {label_set.name} label set on the training "
            f"images (choose the label set, labels, to match the tables)"
        )
    files.require(ids, "training")
    widths = dict(
        zip(images["image_id"].astype(str), images["width"].astype("Float64").astype(float), strict=True)
    )
    spec = NetworkSpec(
        config.arch,
        labels,
        box_labels,
        config.image_size,
        config.fpn_channels,
        config.head_convs,
        resolved_pool(config.pool, box_labels),
        config.map_stride,
    )
    datasets: list[CxrDataset | None] = []
    for name in ("train", "val"):
        chosen = (split["split"] == name).to_numpy()
        if not chosen.any():
            datasets.append(None)
            continue
        part = Targets([ids[i] for i in np.flatnonzero(chosen)], targets.y[chosen], targets.boxes)
        datasets.append(
            CxrDataset(
                part,
                files,
                config.image_size,
                augment=config.augment and name == "train",
                seed=config.seed,
                table_widths=widths,
            )
        )
    if datasets[0] is None:
        raise CxrlabError(f"{config.tables}: no training image left after the validation split")
    return TrainData(spec, datasets[0], datasets[1], split, notes)


def _schedule(
    optimizer: torch.optim.Optimizer, steps_per_epoch: int, config: TrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay to 2% of the rate, by optimizer step."""
    total = max(1, steps_per_epoch * config.epochs)
    warm = max(1, int(steps_per_epoch * config.warmup_epochs))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def label_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over the labels, averaged over the images: each label weighs as much as
    in a one-label model (a mean over 28 labels would leave the classifier a 28th of the detector's say)."""
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum") / len(y)


def _losses(
    model: CxrNet, wrapped: torch.nn.Module, batch: dict[str, Any], rt: Runtime, det_weight: float
) -> tuple[torch.Tensor, float, float]:
    images = batch["image"].to(rt.device, non_blocking=True)
    if rt.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    y = batch["y"].to(rt.device, non_blocking=True)
    with torch.autocast(rt.device.type, enabled=rt.amp):
        out = wrapped(images)
        cls = label_loss(out["logits"].float(), y)
        det = torch.zeros((), device=rt.device)
        if model.detects:
            targets = [{k: v.to(rt.device) for k, v in t.items()} for t in batch["targets"]]
            det = sum(model.detection_loss(images, out, targets).values(), det)
            det = det + model.map_loss(images, out, targets)
    return cls + det_weight * det, float(cls.detach()), float(det.detach())


@torch.no_grad()
def validate(model: CxrNet, data: CxrDataset, rt: Runtime, batch_size: int) -> tuple[float, float]:
    """(mean classification loss, macro AUROC over the labels with positives and negatives)."""
    model.eval()
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate)
    scores, truth, losses = [], [], []
    for batch in loader:
        images = batch["image"].to(rt.device)
        with torch.autocast(rt.device.type, enabled=rt.amp):
            logits = model(images)["logits"].float()
        y = batch["y"].to(rt.device)
        losses.append(float(label_loss(logits, y)) * len(y))
        scores.append(torch.sigmoid(logits).cpu().numpy())
        truth.append((batch["y"].numpy() >= 0.5).astype(float))
    model.train()
    y_true, y_score = np.concatenate(truth), np.concatenate(scores)
    per_label = auroc(y_true, y_score)
    value = float(np.nanmean(per_label)) if np.isfinite(per_label).any() else float("nan")
    return sum(losses) / len(data), value


def _check_new_run(run: Path) -> None:
    if (run / LAST).exists() or (run / CONFIG_FILE).exists():
        raise CxrlabError(
            f"{run}: already holds a training run; continue it with --resume {run} or choose another --out"
        )
    if run.exists() and not run.is_dir():
        raise CxrlabError(f"{run}: exists and is not a folder")


def read_run_config(run: str | Path) -> TrainConfig:
    path = Path(run) / CONFIG_FILE
    if not path.is_file():
        raise CxrlabError(f"{run}: not a training run (no {CONFIG_FILE})")
    try:
        return TrainConfig(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise CxrlabError(f"{path}: not a readable run configuration ({exc})") from None


def _begin(config: TrainConfig, resume: bool) -> tuple[TrainData, dict[str, Any] | None]:
    """Check everything (data, checkpoint, label set) before the run folder is touched."""
    run = Path(config.out)
    state = None
    split = None
    if resume:
        state = load_checkpoint(run / LAST)
        if (run / SPLIT_FILE).is_file():
            split = pd.read_parquet(run / SPLIT_FILE)
    else:
        _check_new_run(run)
    data = prepare_data(config, split)
    if state is not None:
        found = NetworkSpec.from_dict(state["spec"])
        check_spec(found, data.spec, run / LAST)
        # a run keeps its network (settings that did not exist or did not matter when it started)
        data.spec = replace(data.spec, fpn_upsample=found.fpn_upsample, map_stride=found.map_stride)
    return data, state


def train(
    config: TrainConfig, *, resume: bool = False, progress: bool = False, on_step: StepHook | None = None
) -> TrainResult:
    """Train (or with ``resume`` continue) the run ``config.out``; see the module docstring."""
    rt = start_runtime(config.threads)
    try:
        return _train(config, rt, resume, progress, on_step)
    finally:
        stop_runtime(rt)


def _train(
    config: TrainConfig, rt: Runtime, resume: bool, progress: bool, on_step: StepHook | None
) -> TrainResult:
    from cxrlab.model.card import write_model_card
    from cxrlab.model.loop import run_epoch

    data, state = _begin(config, resume)
    run = Path(config.out)
    torch.manual_seed(config.seed)
    model = CxrNet(data.spec, None if state else config.weights).to(rt.device)
    if rt.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sampler = EpochSampler(
        len(data.train),
        seed=config.seed,
        rank=rt.rank,
        world=rt.world,
        weights=balanced_weights(data.train.targets.y) if config.balanced else None,
    )
    steps = -(-len(sampler) // config.batch_size)
    scheduler = _schedule(optimizer, steps, config)
    history: list[dict[str, float]] = []
    start, best_epoch, best_value = 0, -1, float("nan")
    if state is not None:
        model.load_state_dict(state.get("trained", state["model"]))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, history = int(state["epoch"]) + 1, list(state["history"])
        best_epoch, best_value = int(state["best_epoch"]), float(state["best_value"])
    elif rt.rank == 0:
        run.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run / CONFIG_FILE, json.dumps(config.to_dict(), indent=2) + "\n")
        data.split.to_parquet(run / SPLIT_FILE, index=False)
    average = _moving_average(model, config.ema, state, run / LAST)
    kept: CxrNet = average.module if average is not None else model  # type: ignore[assignment]
    wrapped = rt.wrap(model, find_unused=not model.detects)
    loss_fn = lambda batch: _losses(model, wrapped, batch, rt, config.det_weight)  # noqa: E731
    for epoch in range(start, config.epochs):
        row = run_epoch(
            epoch,
            config,
            data.train,
            sampler,
            wrapped,
            optimizer,
            scheduler,
            loss_fn,
            rt,
            progress=progress,
            on_step=on_step,
            average=average,
        )
        if data.val is not None and rt.rank == 0:
            row["val_loss"], row["val_auroc"] = validate(kept, data.val, rt, config.batch_size)
        history.append(row)
        value = row.get(config.best_metric, float("nan"))
        better = _improves(value, best_value, config.best_metric) or best_epoch < 0
        if better:
            best_epoch, best_value = epoch, value
        if rt.rank == 0:
            snapshot = {
                "spec": data.spec.to_dict(),
                "model": kept.state_dict(),
                **_trained_state(model, average),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "history": history,
                "best_epoch": best_epoch,
                "best_value": best_value,
                "config": config.to_dict(),
            }
            save_checkpoint(run / LAST, snapshot)
            if better:
                save_checkpoint(run / BEST, snapshot)
            write_history(run, history)
            plot_history(run, history)
            write_model_card(run, config, data, history, best_epoch)
        rt.barrier()
    return TrainResult(run, len(history), best_epoch, best_value, history, data.notes)


def _moving_average(
    model: CxrNet, decay: float, state: dict[str, Any] | None, where: Path
) -> AveragedModel | None:
    """The moving average of ``model``'s weights and buffers (None when ``decay`` is 0), or the one a
    checkpoint ``state`` kept: its ``model`` entry, with the trained weights under ``trained``."""
    if not decay:
        return None
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    if state is not None:
        if "trained" not in state:
            raise CxrlabError(f"{where}: the checkpoint keeps no moving average of the weights (ema)")
        average.module.load_state_dict(state["model"])
        average.n_averaged.fill_(int(state["average_steps"]))
    return average


def _trained_state(model: CxrNet, average: AveragedModel | None) -> dict[str, Any]:
    """With a moving average, the checkpoint's ``model`` is the average; the trained weights, which
    training continues from, are kept beside it."""
    if average is None:
        return {}
    return {"trained": model.state_dict(), "average_steps": int(average.n_averaged)}


def _improves(value: float, best: float, metric: str) -> bool:
    if not np.isfinite(value):
        return False
    if not np.isfinite(best):
        return True
    return value < best if metric == "val_loss" else value > best


def check_resume(run: str | Path, labels: str | None) -> TrainConfig:
    """The configuration of ``run`` to resume; ``labels``, when given, must be the run's own."""
    config = read_run_config(run)
    if labels is not None and labels != config.labels:
        raise CxrlabError(f"{run}: the run was trained with labels {config.labels}, not {labels}")
    if not (Path(run) / LAST).is_file():
        raise CxrlabError(f"{run}: no checkpoint to resume from ({LAST})")
    return config
