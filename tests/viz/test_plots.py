"""Each statistics plot from phantom tables: drawn, the right size, not blank, titled, labelled, sorted,
and every label in its own colour."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import viz_fixtures
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from PIL import Image

from cxrlab.tables import Tables
from cxrlab.viz import plots
from cxrlab.viz.colors import label_color
from cxrlab.viz.statistics import label_statistics

nih_tables = viz_fixtures.nih_tables  # the shared session fixtures
vindr_tables = viz_fixtures.vindr_tables


def _png(fig: Figure) -> np.ndarray:
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return np.asarray(Image.open(buf).convert("RGB"))


def _figures(tables: Tables) -> dict[str, Figure | None]:
    stats = label_statistics(tables.images, tables.findings)
    return {
        "label_counts": plots.label_counts_plot(stats),
        "age_sex": plots.age_sex_plot(tables.images),
        "cooccurrence": plots.cooccurrence_plot(stats),
        "box_location": plots.box_location_plot(tables.images, tables.findings),
        "box_size": plots.box_size_plot(tables.images, tables.findings),
        "sorted_bars": plots.sorted_bars(stats.overall, title="t", xlabel="x"),
        "legend": plots.legend_strip(stats.labels),
    }


@pytest.mark.parametrize("dataset", ["vindr", "nih"])
def test_every_plot_is_drawn_titled_and_not_blank(
    dataset: str, vindr_tables: tuple[Path, Tables], nih_tables: tuple[Path, Path, Tables]
) -> None:
    tables = vindr_tables[1] if dataset == "vindr" else nih_tables[2]
    for name, fig in _figures(tables).items():
        assert fig is not None, name
        pixels = _png(fig)
        w_in, h_in = fig.get_size_inches()
        assert pixels.shape[:2] == (round(h_in * fig.dpi), round(w_in * fig.dpi)), name
        assert (pixels < 250).any(axis=2).mean() > 0.02, f"{name} is blank"
        if name != "legend":
            titles = [ax.get_title() for ax in fig.axes] + [fig._suptitle.get_text() if fig._suptitle else ""]
            assert any(t.strip() for t in titles), name
            sup = fig._supxlabel.get_text() if fig._supxlabel else ""
            assert sup or any(ax.get_xlabel() or ax.get_ylabel() for ax in fig.axes), name


def test_label_bars_are_sorted_and_in_the_label_colours(vindr_tables: tuple[Path, Tables]) -> None:
    tables = vindr_tables[1]
    stats = label_statistics(tables.images, tables.findings)
    fig = plots.label_counts_plot(stats)
    ax = fig.axes[0]
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(names) == sorted(stats.labels)
    totals = [int(stats.overall[n]) for n in names]
    assert totals == sorted(totals)  # barh draws bottom-up: the largest on top
    first_split = ax.patches[: len(names)]
    for patch, name in zip(first_split, names, strict=True):
        assert to_hex(patch.get_facecolor()) == label_color(name)


def test_box_location_heatmap_puts_a_known_box_in_its_cells() -> None:
    images = pd.DataFrame({"image_id": ["a", "b"], "width": [1000, 2000], "height": [1000, 500]})
    findings = pd.DataFrame({
        "image_id": ["a", "b"], "reader": ["R1", "R1"], "label": ["Nodule/Mass", "Nodule/Mass"],
        "x_min": [0.0, 1000.0], "y_min": [0.0, 250.0], "x_max": [250.0, 2000.0], "y_max": [500.0, 500.0],
        "score": [1.0, 1.0],
    })  # fmt: skip
    boxes = plots.labelled_boxes(images, findings)
    grid = plots._coverage(boxes[["rx0", "ry0", "rx1", "ry1"]].to_numpy())
    g = plots.GRID
    assert grid[: g // 2, : g // 4].min() == 1 and grid[: g // 2, g // 4 :].max() == 0  # box a: top-left
    assert grid[g // 2 :, g // 2 :].min() == 1 and grid[g // 2 :, : g // 2].max() == 0  # box b: bottom-right
    assert plots.box_location_plot(images, findings) is not None


def test_sizes_unknown_are_left_out_and_said(vindr_tables: tuple[Path, Tables]) -> None:
    tables = vindr_tables[1]
    images = tables.images.assign(width=pd.NA, height=pd.NA)
    assert plots.box_location_plot(images, tables.findings) is None  # no size: nowhere to place them
    fig = plots.box_size_plot(images, tables.findings)
    assert fig is not None and "pixels" in fig.axes[0].get_xlabel()
