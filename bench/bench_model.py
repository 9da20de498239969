"""Model training speed at 512 px on CPU: cxrlab's training epoch (data loader, augmentation, sampler, loss,
optimizer, scheduler) against a bare torch loop over the same network, losses and tensors; the data loader
alone against what the model consumes; peak RSS.

Targets: cxrlab's loop >= 0.9x the bare loop's images/s; the loader >= 3x the training images/s. Rounds
alternate (cxrlab, bare, cxrlab, bare, ...) and each side keeps its best round, so a burst of load from other
processes hurts neither side more than the other. (With two rounds the first, still warming up, was often
the best cxrlab had: 0.92-0.95x; three give 0.96-0.99x.)
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path

import torch

SIZE = 512
BATCH = 4
STEPS = 3
ROUNDS = 3
THREADS = int(os.environ.get("CXRLAB_BENCH_THREADS", "2"))


def _data(root: Path) -> tuple[Path, Path]:
    from cxrlab.datasets.phantom import make_vindr
    from cxrlab.datasets.vindr import index_vindr
    from cxrlab.imaging.convert import ConvertOptions, convert
    from cxrlab.labels.consensus import consensus
    from cxrlab.tables import save_tables

    raw = make_vindr(root / "raw", images=BATCH * STEPS + 8, seed=1, size=640, test_fraction=0.0).root
    index = index_vindr(raw)
    fused = consensus(index.images, index.findings, method="wbf", iou=0.4, min_readers=2)
    tables = save_tables(root / "tables", index.images, fused.findings)
    convert(tables, root / "converted", ConvertOptions(size=SIZE), root=raw)
    return tables, root / "converted"


def _cxrlab_round(config, data, model, optimizer) -> float:  # type: ignore[no-untyped-def]
    from cxrlab.model.data import EpochSampler
    from cxrlab.model.loop import run_epoch
    from cxrlab.model.scale import Runtime
    from cxrlab.model.train import _losses, _schedule

    rt = Runtime(torch.device("cpu"))
    sampler = EpochSampler(BATCH * STEPS, seed=0)
    scheduler = _schedule(optimizer, STEPS, config)
    row = run_epoch(
        0,
        config,
        data,
        sampler,
        model,
        optimizer,
        scheduler,
        lambda batch: _losses(model, model, batch, rt, 1.0),
        rt,
    )
    return row["images"] / row["seconds"]


def _bare_round(model, optimizer, batches) -> float:  # type: ignore[no-untyped-def]
    """The textbook loop: forward, the network's losses (labels, FCOS, the class maps' box loss),
    backward, step; tensors already in memory."""
    started = time.perf_counter()
    for images, y, targets in batches:
        out = model(images)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out["logits"], y)
        loss = loss + sum(model.detection_loss(images, out, targets).values())
        loss = loss + model.map_loss(images, out, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return BATCH * len(batches) / (time.perf_counter() - started)


def _loader_rate(data, config) -> float:  # type: ignore[no-untyped-def]
    from cxrlab.model.data import EpochSampler
    from cxrlab.model.loop import make_loader
    from cxrlab.model.scale import Runtime

    loader = make_loader(data, EpochSampler(len(data), seed=0), config, Runtime(torch.device("cpu")))
    started = time.perf_counter()
    n = sum(len(batch["y"]) for batch in loader)
    return n / (time.perf_counter() - started)


def main() -> None:
    from cxrlab.model.config import resolve_config
    from cxrlab.model.data import collate
    from cxrlab.model.network import CxrNet
    from cxrlab.model.train import prepare_data

    torch.set_num_threads(THREADS)
    os.environ["CXRLAB_NO_PROGRESS"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        tables, converted = _data(Path(tmp))
        config = resolve_config(
            tables=str(tables),
            images=str(converted),
            out=str(Path(tmp) / "run"),
            image_size=SIZE,
            batch_size=BATCH,
            val_fraction=0.0,
            threads=THREADS,
        )
        prepared = prepare_data(config)
        data = prepared.train
        torch.manual_seed(0)
        model = CxrNet(prepared.spec)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        items = [data[i] for i in range(BATCH * STEPS)]
        batches = []
        for k in range(STEPS):
            b = collate(items[k * BATCH : (k + 1) * BATCH])
            batches.append((b["image"], b["y"], b["targets"]))
        _bare_round(model, optimizer, batches[:1])  # warm-up: allocator, oneDNN kernels
        ours, bare = [], []
        for _ in range(ROUNDS):
            ours.append(_cxrlab_round(config, data, model, optimizer))
            bare.append(_bare_round(model, optimizer, batches))
        loader = max(_loader_rate(data, config) for _ in range(2))
    train_rate, bare_rate = max(ours), max(bare)
    load = os.getloadavg()[0]
    print(
        f"training at {SIZE} px, batch {BATCH}, {THREADS} threads, ResNet-18 + FCOS head "
        f"(load average {load:.1f})"
    )
    print(f"  cxrlab loop   {train_rate:7.2f} img/s   (rounds: {', '.join(f'{r:.2f}' for r in ours)})")
    print(f"  bare loop     {bare_rate:7.2f} img/s   (rounds: {', '.join(f'{r:.2f}' for r in bare)})")
    print(f"  ratio cxrlab / bare: {train_rate / bare_rate:.2f}   (target >= 0.90)")
    print(
        f"  data loader alone {loader:7.1f} img/s = {loader / train_rate:.0f}x what training consumes "
        "(target >= 3x)"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
