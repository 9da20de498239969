"""Statistics plots of the two tables, each a matplotlib :class:`~matplotlib.figure.Figure` (Agg, no
pyplot state): sorted bars, titles and axis labels, constrained layout so nothing overlaps, and every label
in its own colour from :mod:`cxrlab.viz.colors`.

Boxes are ``x_min, y_min, x_max, y_max`` in pixels of the original image, origin top-left; the location
heatmaps divide them by the image's ``width`` and ``height`` (boxes of images of unknown size are left out
and counted in the title).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from cxrlab.tables import BOX_COLUMNS, has_box
from cxrlab.viz.colors import label_color
from cxrlab.viz.model import RocCurve
from cxrlab.viz.statistics import LabelStats

__all__ = [
    "age_sex_plot",
    "box_location_plot",
    "box_size_plot",
    "cooccurrence_plot",
    "label_counts_plot",
    "labelled_boxes",
    "legend_strip",
    "sorted_bars",
]

GRID = 48  # cells per side of the normalised image in the location heatmaps
SPLIT_HATCHES = ("", "///", "...", "xxx", "\\\\\\", "ooo")


def _fig(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def label_counts_plot(stats: LabelStats) -> Figure:
    """Positive images per label, sorted, one bar per label in its colour, stacked by split (hatching)."""
    table = stats.groups["split"]
    order = stats.overall.sort_values(ascending=True).index.tolist()
    fig = _fig(9, max(2.5, 0.32 * len(order) + 1.3))
    ax = fig.subplots()
    left = np.zeros(len(order))
    splits = list(table.columns)
    for k, split in enumerate(splits):
        values = table.loc[order, split].to_numpy(dtype=float)
        ax.barh(
            order,
            values,
            left=left,
            color=[label_color(x) for x in order],
            hatch=SPLIT_HATCHES[k % len(SPLIT_HATCHES)],
            edgecolor="white",
            linewidth=0.5,
        )
        left += values
    for y, total in enumerate(left):
        ax.text(total, y, f" {int(total):,}", va="center", fontsize=8)
    ax.set_xlim(0, max(left.max(initial=1) * 1.15, 1))
    ax.set_xlabel("positive images")
    ax.set_title(f"Positive images per label ({stats.images:,} images), stacked by split")
    if len(splits) > 1:
        handles = [
            Patch(
                facecolor="#bbbbbb",
                hatch=SPLIT_HATCHES[k % len(SPLIT_HATCHES)],
                edgecolor="white",
                label=str(s),
            )
            for k, s in enumerate(splits)
        ]
        ax.legend(handles=handles, title="split", loc="lower right", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    return fig


def age_sex_plot(images: pd.DataFrame) -> Figure:
    """Images by sex (bars) and the age histogram by sex (5-year bins)."""
    fig = _fig(10, 3.6)
    ax_sex, ax_age = fig.subplots(1, 2, width_ratios=[1, 2.6])
    sex = images["sex"].astype("string").fillna("unknown")
    counts = sex.value_counts().sort_values(ascending=False)
    sex_colors = {"F": "#c2477b", "M": "#2f6db5", "O": "#8a8a8a", "unknown": "#c8c8c8"}
    ax_sex.bar(
        counts.index.astype(str),
        counts.to_numpy(),
        color=[sex_colors.get(str(s), "#999") for s in counts.index],
    )
    for x, v in enumerate(counts.to_numpy()):
        ax_sex.text(x, v, f"{int(v):,}", ha="center", va="bottom", fontsize=8)
    ax_sex.set_title("Images by sex")
    ax_sex.set_ylabel("images")
    ax_sex.set_ylim(0, max(counts.max() if len(counts) else 1, 1) * 1.15)
    age = pd.to_numeric(images["age"], errors="coerce").astype("float64")
    known = age.notna()
    bins = np.arange(0, max(100, float(age.max()) + 5 if known.any() else 100), 5)
    groups = [(str(s), age[known & (sex == s)].to_numpy()) for s in counts.index]
    groups = [(s, a) for s, a in groups if len(a)]
    if groups:
        ax_age.hist(
            [a for _, a in groups],
            bins=bins,
            stacked=True,
            label=[s for s, _ in groups],
            color=[sex_colors.get(s, "#999") for s, _ in groups],
        )
        ax_age.legend(title="sex", fontsize=8)
    ax_age.set_title(f"Age at imaging ({int(known.sum()):,} of {len(age):,} images with an age)")
    ax_age.set_xlabel("age (years, 5-year bins)")
    ax_age.set_ylabel("images")
    ax_age.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_sex.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def cooccurrence_plot(stats: LabelStats) -> Figure:
    """P(column label | row label) over the positive images; counts written in cells when few labels."""
    labels = [x for x in stats.labels if stats.overall[x] > 0]
    co = stats.cooccurrence.loc[labels, labels].to_numpy(dtype=float)
    diag = np.diag(co).copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        cond = np.where(diag[:, None] > 0, co / diag[:, None], np.nan)
    size = max(4.5, 0.42 * len(labels) + 2.5)
    fig = _fig(size + 1.2, size)
    ax = fig.subplots()
    np.fill_diagonal(cond, np.nan)  # always 1: it would flatten the scale; the cell keeps its count
    finite = cond[np.isfinite(cond)]
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#f0f0f0")
    im = ax.imshow(cond, cmap=cmap, vmin=0, vmax=top)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    if len(labels) <= 16:
        for i in range(len(labels)):
            for j in range(len(labels)):
                value = int(co[i, j])
                shade = "black" if i == j or np.nan_to_num(cond[i, j]) > 0.6 * top else "white"
                ax.text(j, i, f"{value:,}", ha="center", va="center", fontsize=6.5, color=shade)
    fig.colorbar(im, ax=ax, label="P(column label | row label)", shrink=0.8)
    ax.set_title(
        "Label co-occurrence (cells: images with both labels, diagonal: with the label;\n"
        "colour: share of the row label's images that have the column label)"
    )
    ax.set_xlabel("column label")
    ax.set_ylabel("row label")
    return fig


def labelled_boxes(images: pd.DataFrame, findings: pd.DataFrame) -> pd.DataFrame:
    """Box rows with the image's width and height and the box relative to them (``rx0``...``ry1``)."""
    boxes = findings[has_box(findings)]
    sizes = images[["image_id", "width", "height"]]
    merged = boxes.merge(sizes, on="image_id", how="left")
    w = pd.to_numeric(merged["width"], errors="coerce").astype("float64").to_numpy()
    h = pd.to_numeric(merged["height"], errors="coerce").astype("float64").to_numpy()
    xy = merged[BOX_COLUMNS].to_numpy(dtype=float)
    merged["rx0"], merged["rx1"] = xy[:, 0] / w, xy[:, 2] / w
    merged["ry0"], merged["ry1"] = xy[:, 1] / h, xy[:, 3] / h
    merged["label"] = merged["label"].astype(str)
    return merged


def _coverage(rel: np.ndarray) -> np.ndarray:
    """(GRID, GRID) count of boxes covering each cell; rel: (N, 4) relative boxes, clipped to [0, 1]."""
    cells = np.clip(np.rint(np.clip(rel, 0, 1) * GRID).astype(int), 0, GRID)
    diff = np.zeros((GRID + 1, GRID + 1))
    x0, y0, x1, y1 = cells.T
    x1, y1 = np.maximum(x1, x0 + 1).clip(max=GRID), np.maximum(y1, y0 + 1).clip(max=GRID)
    x0, y0 = np.minimum(x0, x1 - 1), np.minimum(y0, y1 - 1)
    np.add.at(diff, (y0, x0), 1)
    np.add.at(diff, (y0, x1), -1)
    np.add.at(diff, (y1, x0), -1)
    np.add.at(diff, (y1, x1), 1)
    return diff.cumsum(axis=0).cumsum(axis=1)[:GRID, :GRID]


def box_location_plot(images: pd.DataFrame, findings: pd.DataFrame, *, columns: int = 5) -> Figure | None:
    """Where each label's boxes lie: per label, how many boxes cover each cell of the normalised image."""
    boxes = labelled_boxes(images, findings)
    known = boxes[np.isfinite(boxes[["rx0", "ry0", "rx1", "ry1"]].to_numpy()).all(axis=1)]
    if known.empty:
        return None
    order = known["label"].value_counts().index.tolist()
    cols = min(columns, len(order))
    rows = math.ceil(len(order) / cols)
    fig = _fig(2.3 * cols, 2.55 * rows + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, label in zip(axes, order, strict=False):
        sel = known[known["label"] == label]
        grid = _coverage(sel[["rx0", "ry0", "rx1", "ry1"]].to_numpy())
        cmap = LinearSegmentedColormap.from_list(label, ["#ffffff", label_color(label)])
        ax.imshow(grid / max(grid.max(), 1), cmap=cmap, vmin=0, vmax=1, extent=(0, 1, 1, 0))
        ax.set_title(f"{label}\n{len(sel):,} boxes", fontsize=8)
        ax.set_xticks([0, 0.5, 1], ["0", "0.5", "1"], fontsize=6)
        ax.set_yticks([0, 0.5, 1], ["0", "0.5", "1"], fontsize=6)
    for ax in axes[len(order) :]:
        ax.set_axis_off()
    fig.supxlabel("x / image width (0 = left)", fontsize=9)
    fig.supylabel("y / image height (0 = top)", fontsize=9)
    left_out = len(boxes) - len(known)
    note = f"; {left_out:,} boxes on images of unknown size left out" if left_out else ""
    fig.suptitle(
        f"Where the boxes lie, per label (image width and height scaled to 0..1, darker = more boxes){note}",
        fontsize=10,
    )
    return fig


def box_size_plot(images: pd.DataFrame, findings: pd.DataFrame) -> Figure | None:
    """Box width and height per label as a share of the image (pixels where the size is unknown)."""
    boxes = labelled_boxes(images, findings)
    if boxes.empty:
        return None
    relative = bool(np.isfinite(boxes["rx0"]).all())
    if relative:
        width, height = boxes["rx1"] - boxes["rx0"], boxes["ry1"] - boxes["ry0"]
        unit = "share of the image side"
    else:
        width, height = boxes["x_max"] - boxes["x_min"], boxes["y_max"] - boxes["y_min"]
        unit = "pixels (some image sizes unknown)"
    side = np.sqrt(np.clip(width * height, 0, None))
    frame = pd.DataFrame({"label": boxes["label"], "side": side})
    order = frame.groupby("label")["side"].median().sort_values().index.tolist()
    fig = _fig(9, max(2.6, 0.32 * len(order) + 1.4))
    ax = fig.subplots()
    data = [frame.loc[frame["label"] == x, "side"].to_numpy() for x in order]
    parts = ax.boxplot(
        data,
        orientation="horizontal",
        tick_labels=order,
        patch_artist=True,
        showfliers=True,
        flierprops={"markersize": 2, "alpha": 0.4},
    )
    for patch, label in zip(parts["boxes"], order, strict=True):
        patch.set_facecolor(label_color(label))
        patch.set_alpha(0.85)
    counts = [len(d) for d in data]
    for y, n in enumerate(counts, 1):
        ax.text(1.0, y, f" n={n:,}", transform=ax.get_yaxis_transform(), va="center", fontsize=7)
    ax.set_xlabel(f"box size: square root of width x height, {unit}")
    ax.set_title("Box sizes per label (sorted by median)")
    ax.tick_params(axis="y", labelsize=8)
    return fig


def sorted_bars(
    values: pd.Series,
    *,
    title: str,
    xlabel: str,
    low: pd.Series | None = None,
    high: pd.Series | None = None,
    xlim: tuple[float, float] | None = None,
) -> Figure:
    """One horizontal bar per label (its colour), sorted by value, the value written at the end; optional
    interval whiskers; NaN values listed as n/a."""
    values = values.astype(float)
    defined = values.dropna().sort_values()
    missing = [str(x) for x in values.index if pd.isna(values[x])]
    order = [str(x) for x in defined.index] + missing
    fig = _fig(8, max(2.4, 0.3 * len(order) + 1.3))
    ax = fig.subplots()
    shown = np.nan_to_num(values.reindex(order).to_numpy(dtype=float))
    ax.barh(order, shown, color=[label_color(x) for x in order])
    if low is not None and high is not None:
        lo, hi = low.reindex(order).to_numpy(dtype=float), high.reindex(order).to_numpy(dtype=float)
        ok = np.isfinite(lo) & np.isfinite(hi)
        ys = np.arange(len(order))[ok]
        ax.hlines(ys, lo[ok], hi[ok], color="black", linewidth=1.2)
    for y, x in enumerate(order):
        v = values[x]
        ax.text(
            max(float(np.nan_to_num(v)), 0),
            y,
            "  n/a" if pd.isna(v) else f"  {v:.2f}",
            va="center",
            fontsize=8,
        )
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.tick_params(axis="y", labelsize=8)
    return fig


def legend_strip(labels: Sequence[str]) -> Figure:
    """The label colours as one strip: the key that every figure of a report shares."""
    cols = min(6, max(1, len(labels)))
    rows = math.ceil(len(labels) / cols)
    fig = Figure(figsize=(10, 0.3 * rows + 0.2))
    handles = [Patch(facecolor=label_color(x), label=x) for x in labels]
    fig.legend(handles=handles, loc="center", ncols=cols, frameon=False, fontsize=8)
    return fig


def roc_plot(
    curves: Sequence[RocCurve], table: pd.DataFrame, fpr: np.ndarray, *, title: str, columns: int = 5
) -> Figure:
    """One small ROC panel per label: the curve in the label's colour, its bootstrap band shaded, AUROC and
    its CI in the panel title; the chance diagonal dotted."""
    by_label = table.set_index("label")
    cols = min(columns, max(1, len(curves)))
    rows = math.ceil(len(curves) / cols)
    fig = _fig(2.4 * cols, 2.5 * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, curve in zip(axes, curves, strict=False):
        label = str(curve.label)
        colour = label_color(label)
        if np.isfinite(curve.low).all():
            ax.fill_between(fpr, curve.low, curve.high, color=colour, alpha=0.25, linewidth=0)
        ax.plot(fpr, curve.tpr, color=colour, linewidth=1.8)
        ax.plot([0, 1], [0, 1], color="#888888", linestyle=":", linewidth=1)
        row = by_label.loc[label]
        ax.set_title(
            f"{label}\nAUROC {row['auroc']:.2f} [{row['auroc_low']:.2f}, {row['auroc_high']:.2f}]", fontsize=8
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false positive rate", fontsize=7)
        ax.set_ylabel("true positive rate", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_aspect("equal")
    for ax in axes[len(curves) :]:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    return fig
