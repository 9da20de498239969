"""Two processes under ``torchrun`` on CPU (gloo): identical weights on both ranks after a step, and only
rank 0 writes into the run folder (an audit hook records every write, rename, mkdir, removal of each rank)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from .model_helpers import ModelData, make_model_data, tiny_config

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    rank = int(os.environ["RANK"])
    settings, side = json.loads(sys.argv[1]), Path(sys.argv[2])
    run = str(Path(settings["out"]).resolve())
    writes = []

    def audit(event, args):
        if event == "open" and len(args) >= 3:
            path, mode, flags = args[0], args[1], args[2]
            write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & write_flags)
        elif event in ("os.rename", "os.mkdir", "os.remove", "os.replace", "shutil.rmtree"):
            path, writing = args[0], True
        else:
            return
        if writing and isinstance(path, (str, bytes, os.PathLike)) and str(os.fsdecode(path)).startswith(run):
            writes.append(f"{event} {os.fsdecode(path)}")

    sys.addaudithook(audit)
    import torch
    from cxrlab.model.config import resolve_config
    from cxrlab.model.train import train

    def after_step(epoch, step, model):
        if epoch == 0 and step == 0:
            torch.save({k: v.detach().clone() for k, v in model.named_parameters()}, side / f"rank{rank}.pt")

    train(resolve_config(**settings), on_step=after_step)
    (side / f"writes{rank}.json").write_text(json.dumps(writes))
    """
)


@pytest.fixture(scope="module")
def model_data(tmp_path_factory: pytest.TempPathFactory) -> ModelData:
    return make_model_data(tmp_path_factory.mktemp("model-data"))


def test_two_ranks_identical_weights_only_rank_0_writes(model_data: ModelData, tmp_path: Path) -> None:
    cfg = tiny_config(model_data, tmp_path / "run", epochs=1, batch_size=4)
    side = tmp_path / "side"
    side.mkdir()
    script = tmp_path / "ddp_script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "CXRLAB_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            json.dumps(cfg.to_dict()),
            str(side),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    a, b = torch.load(side / "rank0.pt"), torch.load(side / "rank1.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    from cxrlab.model.checkpoint import load_checkpoint
    from cxrlab.model.network import CxrNet, NetworkSpec

    torch.manual_seed(cfg.seed)  # the initial weights, as train() seeds them: the step really moved them
    initial = dict(
        CxrNet(
            NetworkSpec.from_dict(load_checkpoint(tmp_path / "run" / "last.pt")["spec"])
        ).named_parameters()
    )
    head = "local.weight" if "local.weight" in a else "classifier.weight"  # the pooling's classifier
    assert not torch.equal(a[head], initial[head].detach())
    assert json.loads((side / "writes1.json").read_text()) == []
    rank0 = json.loads((side / "writes0.json").read_text())
    assert any("last.pt" in w for w in rank0) and any("metrics.csv" in w for w in rank0)
    log = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(log) == 2  # header + one epoch, written once
