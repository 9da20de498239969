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
    from cxrlab.cli.phantom import print_summary
    from cxrlab.datasets.phantom import make_nih, make_vindr

    size = 512  # small enough for a quick demo, large enough to see the lesions
    vindr = make_vindr(ctx.work / "vindr-raw", images=ctx.images, seed=ctx.seed, size=size, progress=True)
    nih = make_nih(ctx.work / "nih-raw", images=ctx.images, seed=ctx.seed, size=size, progress=True)
    ctx.paths["vindr_raw"] = vindr.root
    ctx.paths["nih_raw"] = nih.root
    print_summary(vindr.summary, vindr.root, ctx.console)
    print_summary(nih.summary, nih.root, ctx.console)


def step_convert(ctx: DemoContext) -> None:
    """Convert the VinDr phantom's DICOMs to 1024 px PNGs (boxes rescaled when its tables exist)."""
    from cxrlab.cli.convert import manifest_summary, print_summary
    from cxrlab.imaging.convert import ConvertOptions, convert

    out = ctx.work / "vindr-1024"
    findings = ctx.paths.get("vindr_tables")
    result = convert(
        ctx.paths["vindr_raw"],
        out,
        ConvertOptions(size=1024),
        workers=2,
        findings=findings if findings is not None and (findings / "findings.parquet").is_file() else None,
        progress=True,
        on_failure=lambda r: ctx.console.print(f"  [yellow]skipped:[/yellow] {r['error']}", markup=True),
    )
    print_summary(result, manifest_summary(out / "manifest.parquet"), out, ctx.console)
    ctx.paths["vindr_converted"] = out


STEPS: list[tuple[str, Step]] = [
    ("Phantom datasets in the real formats", step_phantoms),
    ("VinDr-CXR DICOMs -> 1024 px PNG (cxrlab convert)", step_convert),
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
