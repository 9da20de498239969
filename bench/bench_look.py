"""``cxrlab report`` on the real NIH label files (112,120 rows, 984 boxes; no images): its time against
the label statistics alone (the ``cxrlab stats`` work it starts from), measured in the same run; target
< 60 s. Also writes the README figure (``docs/figures/look_vindr_phantom.png``) from a VinDr phantom with
``--figure``-style settings, so that figure can always be regenerated: ``./run bench look``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REALDATA = HERE.parent.parent / "shared" / "realdata" / "nih"
FIGURE = HERE.parent / "docs" / "figures" / "look_vindr_phantom.png"


def _timed(fn, repeat: int = 1) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def report_speed(tmp: Path) -> None:
    from cxrlab.datasets.nih import index_nih
    from cxrlab.tables import Tables
    from cxrlab.viz.report import build_report
    from cxrlab.viz.statistics import label_statistics

    if not REALDATA.is_dir():
        print(f"skipped: {REALDATA} is absent")
        return
    index = index_nih(REALDATA)
    tables = Tables(index.images, index.findings)
    base = _timed(lambda: label_statistics(tables.images, tables.findings), repeat=2)
    whole = _timed(lambda: build_report(tables, tmp / "nih.html"))
    size = (tmp / "nih.html").stat().st_size
    print(
        f"report of {len(tables.images):,} NIH images, no images inline: {whole:.1f} s (target < 60 s), "
        f"{whole / base:.1f}x the label statistics alone ({base:.2f} s); page {size / 1e6:.2f} MB"
    )


def readme_figure(tmp: Path) -> None:
    """The README's figure: three VinDr phantom images with every reader's boxes, in one grid."""
    from cxrlab.datasets.phantom import make_vindr
    from cxrlab.datasets.vindr import index_vindr
    from cxrlab.viz.figures import figure_of, panel_for, save_figure
    from cxrlab.viz.source import ImageSource

    root = make_vindr(tmp / "vindr", images=16, seed=3, size=1024).root
    index = index_vindr(root)
    f = index.findings
    boxes = f[f["x_min"].notna()].groupby("image_id").size().sort_values(ascending=False)
    source = ImageSource(root, index.images)
    panels = [panel_for(source, str(i), f, max_side=512) for i in boxes.index[:3]]
    out = save_figure(figure_of(panels, panel_inches=3.4), FIGURE, dpi=85)
    print(f"README figure: {out} ({out.stat().st_size / 1e3:.0f} KB)")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        report_speed(Path(tmp))
        readme_figure(Path(tmp))


if __name__ == "__main__":
    main()
