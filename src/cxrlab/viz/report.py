"""``cxrlab report``: one self-contained HTML page about a tables folder (and optionally its images and a
model's predictions) to look at and to share.

Sections: positives per label and split (table and sorted bars), sex and age, label co-occurrence, where the
boxes lie and how large they are, reader agreement (when images have several readers: Fleiss' kappa per
label and pairwise box F1, from :mod:`cxrlab.labels.agreement`), sample images per label with their boxes
(with ``source``), and per prediction file the model's AUROC with CIs, ROC curves with bootstrap bands,
per-class AP and its best and worst images. Every image is inline (base64); the page loads nothing.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cxrlab import __version__
from cxrlab.atomic import write_text_atomic
from cxrlab.errors import CxrlabError, ParameterError
from cxrlab.labels.agreement import agreement
from cxrlab.progress import track
from cxrlab.tables import Tables, has_box, human_readers
from cxrlab.viz import plots
from cxrlab.viz.colors import label_colors, reader_order, reader_styles, style_name
from cxrlab.viz.figures import Panel, draw_panel, panel_for
from cxrlab.viz.html import figure_uri, img, page, section, table
from cxrlab.viz.model import FPR_GRID, ModelResults, model_results
from cxrlab.viz.source import ImageSource
from cxrlab.viz.statistics import LabelStats, label_statistics, positive_pairs

__all__ = ["ReportSummary", "build_report"]


@dataclass
class ReportSummary:
    path: Path
    bytes: int
    images: int
    sections: list[str]
    figures: int
    thumbnails: int
    seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass
class _Context:
    tables: Tables
    stats: LabelStats
    source: ImageSource | None
    samples_per_label: int
    seed: int
    figures: int = 0
    thumbnails: int = 0
    notes: list[str] = field(default_factory=list)
    thumb_cache: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    def plot(self, fig: Figure | None, alt: str) -> str:
        if fig is None:
            return ""
        self.figures += 1
        return img(figure_uri(fig, dpi=90), alt)


def _counts_section(ctx: _Context) -> str:
    stats = ctx.stats
    splits = stats.groups["split"]
    sizes = stats.group_sizes["split"]
    columns = ["label", f"all ({stats.images:,})", *[f"{s} ({int(sizes[s]):,})" for s in splits.columns]]
    order = stats.overall.sort_values(ascending=False).index

    def cell(n: int, total: int) -> str:
        return f"{n:,} ({100 * n / total:.1f}%)" if total else f"{n:,}"

    rows = [
        [
            label,
            cell(int(stats.overall[label]), stats.images),
            *[cell(int(splits.loc[label, s]), int(sizes[s])) for s in splits.columns],
        ]
        for label in order
    ]
    note = f'<p class="note">Counts are images. Positive means: {html.escape(stats.rule)}.</p>'
    return (
        note
        + table(columns, rows, swatches=label_colors(stats.labels))
        + ctx.plot(plots.label_counts_plot(stats), "positive images per label, sorted, stacked by split")
    )


def _patients_section(ctx: _Context) -> str:
    images = ctx.tables.images
    patients = images["patient_id"].dropna().nunique()
    note = f'<p class="note">{len(images):,} images; {patients:,} patients with an id.</p>'
    return note + ctx.plot(plots.age_sex_plot(images), "images by sex and age")


def _cooccurrence_section(ctx: _Context) -> str:
    if len(ctx.stats.labels) < 2:
        return '<p class="note">Fewer than two labels: no co-occurrence to show.</p>'
    return ctx.plot(plots.cooccurrence_plot(ctx.stats), "label co-occurrence heatmap")


def _boxes_section(ctx: _Context) -> str:
    images, findings = ctx.tables.images, ctx.tables.findings
    location = ctx.plot(plots.box_location_plot(images, findings), "where the boxes lie, per label")
    sizes = ctx.plot(plots.box_size_plot(images, findings), "box sizes per label")
    if not location and not sizes:
        return '<p class="note">No finding has a box.</p>'
    return location + sizes


def several_readers(findings: pd.DataFrame) -> bool:
    """Whether any image was read by two or more human readers (agreement is then meaningful)."""
    humans = findings[findings["reader"].isin(human_readers(findings))]
    return bool((humans.groupby("image_id", observed=True)["reader"].nunique() >= 2).any())


def _agreement_section(ctx: _Context) -> str:
    result = agreement(ctx.tables.findings, iou=0.4)
    info = result.info
    labels = pd.DataFrame(result.labels)
    note = (
        f'<p class="note">{info["images_with_several_readers"]:,} images read by several radiologists; '
        f"Fleiss' kappa on presence over the {info['images_in_kappa']:,} images with "
        f"{info['readers_per_image']} readers; boxes matched pairwise between readers at IoU &ge; "
        f"{info['iou']} (Hungarian), F1 = 2 x matches / boxes. Overall kappa "
        f"{_num(result.overall['kappa_pooled'])}, box F1 {_num(result.overall['box_f1'])}.</p>"
    )
    rows = [
        [r["label"], r["images_reported"], r["kappa"], r["boxes"], r["box_f1"], r["mean_iou"]]
        for r in result.labels
    ]
    body = note + table(
        ["label", "images reported", "Fleiss kappa", "boxes", "pairwise box F1", "mean IoU"],
        rows,
        swatches=label_colors(labels["label"].astype(str)),
    )
    kappa = pd.Series({r["label"]: r["kappa"] for r in result.labels}, dtype=float)
    f1 = pd.Series({r["label"]: r["box_f1"] for r in result.labels if r["boxes"]}, dtype=float)
    body += ctx.plot(
        plots.sorted_bars(
            kappa,
            title="Reader agreement on presence: Fleiss' kappa per label",
            xlabel="Fleiss' kappa (1 = perfect, 0 = chance)",
        ),
        "kappa per label",
    )
    if len(f1):
        body += ctx.plot(
            plots.sorted_bars(
                f1,
                title="Box agreement between pairs of readers (IoU >= 0.4)",
                xlabel="pairwise box F1",
                xlim=(0, 1.1),
            ),
            "box F1 per label",
        )
    readers = [
        [r["reader"], r["images"], r["boxes"], r["kappa"], r["box_f1"], r["mean_iou"]] for r in result.readers
    ]
    body += "<h3>Per reader</h3>" + table(
        ["reader", "images", "boxes", "Cohen kappa vs co-readers", "box F1", "mean IoU"], readers
    )
    return body


def _interval(low: float, high: float) -> str:
    return "n/a" if not (np.isfinite(low) and np.isfinite(high)) else f"{low:.3f} - {high:.3f}"


def _num(value: object) -> str:
    return "n/a" if value is None else f"{float(value):.2f}"  # type: ignore[arg-type]


def _thumbnail(
    ctx: _Context, image_id: str, findings: pd.DataFrame, caption_key: str = ""
) -> tuple[str, str] | None:
    """One radiograph with its boxes as an inline JPEG (cached per image and finding set)."""
    assert ctx.source is not None
    key = (image_id, caption_key)
    if key not in ctx.thumb_cache:
        try:
            panel = panel_for(ctx.source, image_id, findings, max_side=512)
        except CxrlabError as exc:
            ctx.notes.append(str(exc))
            return None
        ctx.thumb_cache[key] = _thumb_uri(panel)
        ctx.thumbnails += 1
    return ctx.thumb_cache[key]


def _thumb_uri(panel: Panel) -> tuple[str, str]:
    """The thumbnail (no title: the caption names the image) and the words for its readers' line styles."""
    readers = reader_order(panel.boxes["reader"].astype(str))
    styles = reader_styles(readers)
    fig = Figure(figsize=(3.3, 3.6), layout="constrained")
    panel.title = ""
    draw_panel(fig.subplots(), panel, styles, line_width=1.3)
    key = ", ".join(f"{r} {style_name(s)}" for r, s in styles.items())
    return figure_uri(fig, dpi=100, jpeg=True), key


def _figure(uri: str, caption: str) -> str:
    text = html.escape(caption)
    return f'<figure class="thumb">{img(uri, caption, "sample")}<figcaption>{text}</figcaption></figure>'


def _sample_ids(ctx: _Context, label: str, pairs: pd.DataFrame) -> list[str]:
    """Up to ``samples_per_label`` positive images of ``label`` at random (seeded), those with a box of the
    label first: a box shows where the finding is. ``pairs``: the positive (image_id, label) pairs."""
    f = ctx.tables.findings
    boxed = set(f.loc[(f["label"] == label) & has_box(f), "image_id"].astype(str))
    ids = sorted(pairs.loc[pairs["label"] == label, "image_id"].astype(str).unique())
    rng = np.random.default_rng([ctx.seed, len(ids)])
    picked: list[str] = []
    for group in ([i for i in ids if i in boxed], [i for i in ids if i not in boxed]):
        n = min(ctx.samples_per_label - len(picked), len(group))
        picked += [group[k] for k in sorted(rng.choice(len(group), size=n, replace=False))] if n > 0 else []
    return picked


def _samples_section(ctx: _Context, progress: bool) -> str:
    order = ctx.stats.overall.sort_values(ascending=False).index.tolist()
    pairs, _ = positive_pairs(ctx.tables.findings)
    chosen = [(label, i) for label in order for i in _sample_ids(ctx, label, pairs)]
    blocks: dict[str, list[str]] = {}
    for label, image_id in track(chosen, total=len(chosen), description="sample images", progress=progress):
        thumb = _thumbnail(ctx, image_id, ctx.tables.findings)
        if thumb is not None:
            blocks.setdefault(label, []).append(
                _figure(thumb[0], f"{image_id} ({thumb[1]})" if thumb[1] else image_id)
            )
    body = [
        f'<p class="note">Up to {ctx.samples_per_label} images per label, drawn at random (seed {ctx.seed}); '
        "every reader's boxes, coloured by label, one line style per reader (named under each image); "
        "image-level labels in bold under each image.</p>"
    ]
    drawn = ctx.tables.findings["label"].astype(str).unique().tolist()
    strip = [*ctx.stats.labels, *sorted(set(drawn) - set(ctx.stats.labels), key=str.lower)]
    body.append(ctx.plot(plots.legend_strip(strip), "label colours"))
    for label in order:
        if label in blocks:
            body.append(f'<h3>{html.escape(label)}</h3><div class="thumbs">{"".join(blocks[label])}</div>')
    return "".join(body)


def _model_section(ctx: _Context, result: ModelResults) -> str:
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in result.notes)
    summary = result.summary.set_index("label")
    macro = summary.loc["macro"]
    head = (
        f'<p class="note">Macro AUROC {macro["auroc"]:.3f} '
        f"[{macro['auroc_low']:.3f}, {macro['auroc_high']:.3f}] "
        f"(95% bootstrap CI by patient where patient ids exist).</p>"
    )
    t = result.table
    rows = [
        [
            r.label,
            r.positives,
            r.auroc,
            _interval(r.auroc_low, r.auroc_high),
            r.auprc,
            r.sensitivity,
            r.specificity,
        ]
        for r in t.itertuples()
    ]
    body = (
        head
        + notes
        + table(
            ["label", "positives", "AUROC", "95% CI", "AUPRC", "sensitivity @0.5", "specificity @0.5"],
            rows,
            swatches=label_colors(t["label"].astype(str)),
        )
    )
    if result.curves:
        body += ctx.plot(
            plots.roc_plot(
                result.curves, t, FPR_GRID, title=f"ROC curves of {result.name} (shaded: 95% bootstrap band)"
            ),
            "ROC curves",
        )
    body += ctx.plot(
        plots.sorted_bars(
            result.ap, title=f"Per-class AP of {result.name}", xlabel=result.ap_kind, xlim=(0, 1.12)
        ),
        "AP per class",
    )
    for title, cases in (
        ("Best cases (smallest mean |truth - score|)", result.best),
        ("Worst cases (largest mean |truth - score|)", result.worst),
    ):
        body += f"<h3>{title}</h3>" + _cases_html(ctx, result, cases)
    return body


def _cases_html(ctx: _Context, result: ModelResults, cases: pd.DataFrame) -> str:
    rows = [[c.image_id, c.error, c.truth, c.predicted] for c in cases.itertuples()]
    text = table(["image", "mean error", "truth", "top predicted"], rows, wrap=(2, 3))
    if ctx.source is None:
        return text
    preds = result.predictions
    drawn = preds[(preds["score"] >= 0.5) & has_box(preds)]  # boxes, not image scores
    shown = pd.concat([result.truth, drawn], ignore_index=True)
    thumbs = []
    for c in cases.itertuples():
        thumb = _thumbnail(ctx, str(c.image_id), shown, caption_key=result.name)
        if thumb is not None:
            thumbs.append(
                _figure(thumb[0], f"{c.image_id} ({thumb[1]}): truth {c.truth}; predicted {c.predicted}")
            )
    return text + f'<div class="thumbs">{"".join(thumbs)}</div>'


def _intro(tables: Tables, stats: LabelStats, title_note: str) -> list[str]:
    images, findings = tables.images, tables.findings
    readers = sorted(map(str, findings["reader"].dropna().unique()))
    datasets = ", ".join(sorted(map(str, images["dataset"].dropna().unique()))) or "unknown"
    boxes = int(has_box(findings).sum())
    shown = ", ".join(readers[:12]) + (f" and {len(readers) - 12} more" if len(readers) > 12 else "")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f'<p class="note">Dataset: {html.escape(datasets)}; {len(images):,} images, '
        f"{len(findings):,} findings, "
        f"{boxes:,} boxes, {len(stats.labels)} labels, readers: {html.escape(shown or 'none')}.</p>",
        f'<p class="note">{html.escape(title_note)}Made by cxrlab {__version__} on {stamp}.</p>',
    ]


Step = tuple[str, str, Callable[[], str]]


def build_report(
    tables: Tables,
    out: str | Path,
    *,
    source: ImageSource | None = None,
    predictions: Sequence[str | Path] = (),
    samples_per_label: int = 4,
    seed: int = 0,
    n_boot: int = 200,
    title: str = "cxrlab dataset report",
    progress: bool = False,
) -> ReportSummary:
    """Write the report of ``tables`` to ``out`` (atomically) and say what it holds."""
    started = time.perf_counter()
    if samples_per_label < 0:
        raise ParameterError("samples_per_label", f"must be >= 0 (got {samples_per_label})")
    stats = label_statistics(tables.images, tables.findings)
    results = [model_results(tables, p, n_boot=n_boot, seed=seed) for p in predictions]
    ctx = _Context(tables, stats, source, samples_per_label, seed)
    steps: list[Step] = [
        ("labels", "Labels per split", lambda: _counts_section(ctx)),
        ("patients", "Sex and age", lambda: _patients_section(ctx)),
        ("cooccurrence", "Co-occurrence", lambda: _cooccurrence_section(ctx)),
        ("boxes", "Boxes", lambda: _boxes_section(ctx)),
    ]
    if several_readers(tables.findings):
        steps.append(("readers", "Reader agreement", lambda: _agreement_section(ctx)))
    if source is not None and samples_per_label > 0:
        steps.append(("samples", "Sample images", lambda: _samples_section(ctx, progress)))
    for k, result in enumerate(results, 1):
        steps.append((f"model{k}", f"Model: {result.name}", lambda r=result: _model_section(ctx, r)))  # type: ignore[misc]
    sections = []
    for anchor, name, make in track(steps, total=len(steps), description="report", progress=progress):
        sections.append((anchor, name, section(anchor, name, [make()])))
    note = f"{len(results)} prediction file(s). " if results else ""
    document = page(title, _intro(tables, stats, note), sections)
    path = write_text_atomic(out, document)
    if ctx.notes:
        shown = "; ".join(ctx.notes[:3])
        ctx.notes = [f"{len(ctx.notes)} image(s) could not be shown: {shown}"]
    return ReportSummary(
        path,
        path.stat().st_size,
        len(tables.images),
        [s[1] for s in sections],
        ctx.figures,
        ctx.thumbnails,
        time.perf_counter() - started,
        ctx.notes,
    )
