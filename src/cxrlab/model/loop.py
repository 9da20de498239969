"""One training epoch: seeded, timed, with a progress bar showing the loss and images per second."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader

from cxrlab.model.data import CxrDataset, EpochSampler, collate
from cxrlab.progress import stderr_console

if TYPE_CHECKING:
    from cxrlab.model.config import TrainConfig
    from cxrlab.model.scale import Runtime

__all__ = ["epoch_seed", "make_loader", "run_epoch", "training_progress"]

LossFn = Callable[[dict[str, Any]], tuple[torch.Tensor, float, float]]


def epoch_seed(seed: int, epoch: int) -> int:
    """The torch seed of an epoch (dropout, stochastic depth): the same for a resumed run."""
    return seed * 1_000_003 + epoch


def make_loader(data: CxrDataset, sampler: EpochSampler, config: TrainConfig, rt: Runtime) -> DataLoader:
    return DataLoader(
        data,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.workers,
        collate_fn=collate,
        pin_memory=rt.device.type == "cuda",
        drop_last=False,
    )


@contextmanager
def training_progress(enabled: bool) -> Iterator[Progress | None]:
    """A rich bar on stderr (off when not asked, or with CXRLAB_NO_PROGRESS set)."""
    if not enabled or os.environ.get("CXRLAB_NO_PROGRESS") is not None:
        yield None
        return
    columns = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[ips]:.1f} img/s"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=stderr_console) as bar:
        yield bar


def run_epoch(
    epoch: int,
    config: TrainConfig,
    data: CxrDataset,
    sampler: EpochSampler,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loss_fn: LossFn,
    rt: Runtime,
    *,
    progress: bool = False,
    on_step: Callable[[int, int, torch.nn.Module], None] | None = None,
    average: AveragedModel | None = None,
) -> dict[str, float]:
    """Train one epoch; returns its row of the metrics log (losses averaged over the epoch's images).
    ``average``, the moving average of the weights, is updated after every step."""
    torch.manual_seed(epoch_seed(config.seed, epoch))
    sampler.set_epoch(epoch)
    data.set_epoch(epoch)
    model.train()
    scaler = torch.amp.GradScaler(enabled=rt.amp)
    loader = make_loader(data, sampler, config, rt)
    totals = {"loss": 0.0, "cls": 0.0, "det": 0.0}
    seen = 0
    started = time.perf_counter()
    with training_progress(progress and rt.rank == 0) as bar:
        task = (
            bar.add_task(f"epoch {epoch + 1}/{config.epochs}", total=len(loader), loss=float("nan"), ips=0.0)
            if bar is not None
            else None
        )
        for step, batch in enumerate(loader):
            loss, cls, det = loss_fn(batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if average is not None:
                average.update_parameters(getattr(model, "module", model))
            n = len(batch["y"])
            seen += n
            for key, value in (("loss", float(loss.detach())), ("cls", cls), ("det", det)):
                totals[key] += value * n
            if bar is not None and task is not None:
                rate = seen * rt.world / max(time.perf_counter() - started, 1e-9)
                bar.update(task, advance=1, loss=totals["loss"] / seen, ips=rate)
            if on_step is not None:
                on_step(epoch, step, getattr(model, "module", model))
    seconds = time.perf_counter() - started
    images = seen * rt.world
    return {
        "epoch": epoch + 1,
        "train_loss": totals["loss"] / max(seen, 1),
        "cls_loss": totals["cls"] / max(seen, 1),
        "det_loss": totals["det"] / max(seen, 1),
        "val_loss": float("nan"),
        "val_auroc": float("nan"),
        "lr": optimizer.param_groups[0]["lr"],
        "images": images,
        "seconds": round(seconds, 2),
        "images_per_s": images / max(seconds, 1e-9),
    }
