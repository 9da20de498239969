"""Annotated radiographs: the image, every box coloured by its label with one line style per reader or
model, a legend, and the image-level (global) labels in bold underneath, as on the VinDr-CXR page.

Boxes are ``x_min, y_min, x_max, y_max`` in pixels of the image the tables describe, origin top-left; they
are drawn in the shown pixels after :meth:`cxrlab.viz.source.ImageSource.box_scale`. A box edge at
coordinate ``x`` is drawn on the line ``x - 0.5`` of matplotlib's pixel-centred axes, i.e. on the
boundary between pixels ``x - 1`` and ``x``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from cxrlab.atomic import atomic_path
from cxrlab.errors import CxrlabError, ParameterError, UsageError
from cxrlab.tables import BOX_COLUMNS, has_box, select_readers
from cxrlab.taxonomy import NO_FINDING
from cxrlab.viz.colors import LineStyle, label_color, reader_order, reader_styles
from cxrlab.viz.source import ImageSource

__all__ = ["Panel", "choose_readers", "draw_panel", "figure_of", "panel_for", "save_figure", "show_figure"]

FORMATS = (".png", ".svg")


@dataclass
class Panel:
    """What one image of a figure shows: pixels, boxes (in those pixels) and image-level labels."""

    image_id: str
    pixels: np.ndarray
    boxes: pd.DataFrame  # reader, label, score, x_min..y_max in shown pixels
    global_labels: list[str] = field(default_factory=list)
    title: str = ""


def choose_readers(findings: pd.DataFrame, readers: str = "all") -> pd.DataFrame:
    """``all``, ``consensus`` or a comma list (``R8,R9``); a reader absent from the table is an error."""
    if readers == "all":
        return findings
    wanted = [r.strip() for r in readers.split(",") if r.strip()]
    return select_readers(findings, wanted, where="the tables", parameter="readers")[0]


def panel_for(
    source: ImageSource, image_id: str, findings: pd.DataFrame, *, max_side: int = 1024, title: str = ""
) -> Panel:
    """Load ``image_id`` and move its findings' boxes into the shown pixels."""
    shown, (sx, sy) = source.load(image_id, max_side)
    rows = findings[findings["image_id"].astype(str) == image_id]
    has = has_box(rows)
    boxes = rows[has].copy()
    boxes[BOX_COLUMNS] = boxes[BOX_COLUMNS].to_numpy(dtype=float) * np.array([sx, sy, sx, sy])
    global_labels = _global_labels(rows[~has], several=rows["reader"].nunique() > 1)
    return Panel(image_id, shown.pixels, boxes.reset_index(drop=True), global_labels, title or image_id)


def _global_labels(rows: pd.DataFrame, several: bool) -> list[str]:
    """Image-level labels, each with the readers who gave it when the image shows several readers."""
    out = []
    for label, group in rows.groupby(rows["label"].astype(str), sort=True):
        who = reader_order(group["reader"].astype(str))
        out.append(f"{label} ({', '.join(who)})" if several else label)
    return sorted(out, key=lambda s: (s.startswith(NO_FINDING), s.lower()))


def draw_panel(
    ax: matplotlib.axes.Axes,
    panel: Panel,
    styles: Mapping[str, LineStyle],
    *,
    line_width: float = 1.6,
    labels_text: bool = True,
) -> None:
    """Draw the image and its boxes on ``ax``; global labels in bold under the image."""
    ax.imshow(panel.pixels, cmap="gray", vmin=0, vmax=255, interpolation="antialiased")
    halo = [patheffects.withStroke(linewidth=line_width + 1.4, foreground=(0, 0, 0, 0.55))]
    for row in panel.boxes.itertuples(index=False):
        x0, y0, x1, y1 = (float(getattr(row, c)) for c in BOX_COLUMNS)
        colour = label_color(str(row.label))
        ax.add_patch(
            Rectangle(
                (x0 - 0.5, y0 - 0.5),
                x1 - x0,
                y1 - y0,
                fill=False,
                edgecolor=colour,
                linewidth=line_width,
                linestyle=styles.get(str(row.reader), "-"),
                path_effects=halo,
            )
        )
        if labels_text and float(row.score) < 1.0:  # a model's box: its confidence
            ax.text(x0, y0 - 2, f"{float(row.score):.2f}", color=colour, fontsize=7, va="bottom")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(panel.title, fontsize=9)
    if panel.global_labels:
        ax.set_xlabel("\n".join(_wrap(panel.global_labels, 60)), fontsize=9, fontweight="bold")


def _wrap(items: Sequence[str], width: int) -> list[str]:
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + len(item) + 2 <= width:
            lines[-1] += f", {item}"
        else:
            lines.append(item)
    return lines


def _legend_handles(panels: Sequence[Panel], styles: Mapping[str, LineStyle]) -> list[object]:
    labels = sorted({str(x) for p in panels for x in p.boxes["label"]}, key=str.lower)
    readers = [r for r in styles if any((p.boxes["reader"].astype(str) == r).any() for p in panels)]
    handles: list[object] = [
        Patch(facecolor="none", edgecolor=label_color(x), linewidth=2, label=x) for x in labels
    ]
    handles += [
        Line2D([], [], color="black", linestyle=styles[r], linewidth=1.6, label=r)  # type: ignore[arg-type]
        for r in readers
    ]
    return handles


def figure_of(panels: Sequence[Panel], *, columns: int | None = None, panel_inches: float = 4.2) -> Figure:
    """A figure of one or more panels in a grid, with one legend (labels by colour, readers by line)."""
    if not panels:
        raise UsageError("no image to show")
    styles = reader_styles(reader_order(str(r) for p in panels for r in p.boxes["reader"]))
    n = len(panels)
    cols = columns or min(n, 4 if n > 4 else n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(cols * panel_inches + 2.4, rows * (panel_inches + 0.7)), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        draw_panel(ax, panel, styles)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    handles = _legend_handles(panels, styles)
    if handles:
        fig.legend(
            handles=handles,
            loc="outside right upper",
            fontsize=8,
            frameon=False,
            title="label / reader",
            title_fontsize=9,
            handlelength=3.2,
        )
    return fig


def save_figure(fig: Figure, out: str | Path, *, dpi: int = 110) -> Path:
    """Write PNG or SVG by the suffix, to a temporary name renamed when complete."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise ParameterError("out", f"must end in .png or .svg (got {out})")
    # SVG text stays text (searchable, editable, smaller), not glyph outlines
    with atomic_path(out, suffix=out.suffix) as tmp, matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(tmp, format=out.suffix.lower()[1:], dpi=dpi)
    return out


def show_figure(
    images: pd.DataFrame,
    findings: pd.DataFrame,
    image_ids: Sequence[str],
    source: ImageSource,
    out: str | Path,
    *,
    readers: str = "all",
    predictions: pd.DataFrame | None = None,
    min_score: float = 0.5,
    grid: bool = False,
    max_side: int = 1024,
) -> list[Path]:
    """One figure per image (or one grid of all with ``grid``): the boxes of the chosen readers, and the
    predictions scoring at least ``min_score``. Several images without ``grid`` write ``OUT_<id>.png``."""
    known = set(images["image_id"].astype(str))
    unknown = [i for i in image_ids if i not in known]
    if unknown:
        raise CxrlabError(f"image(s) not in the tables: {', '.join(unknown[:10])}")
    shown = choose_readers(findings, readers)
    if predictions is not None:
        preds = predictions[predictions["score"].fillna(0) >= min_score]
        preds = preds[has_box(preds)]  # image-level scores are not drawn
        shown = pd.concat([shown, preds], ignore_index=True)
    panels = [panel_for(source, i, shown, max_side=max_side) for i in image_ids]
    out = Path(out)
    if grid or len(panels) == 1:
        return [save_figure(figure_of(panels), out)]
    return [
        save_figure(figure_of([p]), out.with_name(f"{out.stem}_{p.image_id}{out.suffix}")) for p in panels
    ]
