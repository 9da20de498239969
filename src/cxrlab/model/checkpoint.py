"""Checkpoints: written atomically (a crash never leaves half a file under the final name), read with one
clear line when damaged or made for another label set.

A checkpoint holds the network's spec (architecture, labels, detection classes, input size), its weights, the
optimizer and scheduler states and the epoch it closes, so ``--resume`` continues exactly where it stopped.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from cxrlab.atomic import write_bytes_atomic
from cxrlab.errors import CxrlabError
from cxrlab.model.network import CxrNet, NetworkSpec

__all__ = [
    "BEST",
    "CHECKPOINTS",
    "FORMAT",
    "LAST",
    "check_spec",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
]

FORMAT = "cxrlab-model/1"
LAST = "last.pt"
BEST = "best.pt"
CHECKPOINTS = {"best": BEST, "last": LAST}
"""The checkpoints a run keeps, by the name a user picks them with."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Serialise to memory, then write under a temporary name and rename."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint; a missing, truncated or foreign file is one :class:`CxrlabError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise CxrlabError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise CxrlabError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "spec" not in state:
        raise CxrlabError(f"{path}: not a cxrlab model checkpoint")
    return state


def check_spec(found: NetworkSpec, expected: NetworkSpec, where: str | Path) -> None:
    """The same labels, detection classes, architecture and input size, or one line saying what differs."""
    if found.labels != expected.labels:
        extra = sorted(set(expected.labels) - set(found.labels))
        lacking = sorted(set(found.labels) - set(expected.labels))
        detail = "; ".join(
            x
            for x in (
                f"not in the checkpoint: {', '.join(extra[:4])}" if extra else "",
                f"only in the checkpoint: {', '.join(lacking[:4])}" if lacking else "",
            )
            if x
        )
        raise CxrlabError(
            f"{where}: the checkpoint was trained on another label set "
            f"({len(found.labels)} labels vs {len(expected.labels)}; {detail or 'other order'})"
        )
    compared = ["box_labels", "arch", "image_size", "fpn_channels", "head_convs", "pool"]
    if "lse" in found.pool:
        compared.append("map_stride")  # without lse there are no class maps: the stride changes nothing
    for name in compared:
        if getattr(found, name) != getattr(expected, name):
            raise CxrlabError(
                f"{where}: the checkpoint's {name} is {getattr(found, name)!r}, "
                f"not {getattr(expected, name)!r}"
            )


def load_model(path: str | Path) -> tuple[CxrNet, dict[str, Any]]:
    """The network of a checkpoint (eval mode, CPU) and the checkpoint's other entries."""
    state = load_checkpoint(path)
    try:
        spec = NetworkSpec.from_dict(state["spec"])
        model = CxrNet(spec)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CxrlabError(
            f"{path}: the checkpoint's weights do not fit its network ({type(exc).__name__})"
        ) from None
    model.eval()
    return model, state
