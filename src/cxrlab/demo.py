"""``./run demo``: the whole pipeline that exists, on phantom data, printing what a user would want to see.

Each feature adds a step here. Steps run in order and pass paths to later steps through
``DemoContext.paths``; a step reads only what earlier steps wrote.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console


@dataclass
class DemoContext:
    work: Path
    images: int
    seed: int
    console: Console
    paths: dict[str, Path] = field(default_factory=dict)


Step = Callable[[DemoContext], None]


def step_phantoms(ctx: DemoContext) -> None:
    """Generate both phantom datasets in the real on-disk formats."""
    raise NotImplementedError  # replaced by the phantom generator's step


STEPS: list[tuple[str, Step]] = [
    ("Phantom datasets in the real formats", step_phantoms),
]


def run_demo(work: str | Path, *, images: int = 24, seed: int = 0, console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    ctx = DemoContext(work=Path(work), images=images, seed=seed, console=console)
    ctx.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for i, (title, step) in enumerate(STEPS, 1):
        console.rule(f"[bold]{i}. {title}")
        t0 = time.perf_counter()
        step(ctx)
        console.print(f"[dim]({time.perf_counter() - t0:.1f} s)[/dim]")
    console.rule()
    console.print(f"Demo finished in {time.perf_counter() - started:.0f} s; everything is under {ctx.work}/")
