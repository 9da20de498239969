"""``cxrlab score`` (one metric of predictions against the tables) and ``cxrlab submission`` (make, check)."""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from cxrlab.cli.common import console, err_console, flags, new_app, print_json

if TYPE_CHECKING:
    from cxrlab.metrics.scoring import MetricScore

submission_app = new_app("The VinBigData challenge's submission CSV: write one from predictions, check one.")


def _fmt(value: object, digits: int = 3) -> str:
    """Counts as integers, metrics with ``digits`` decimals, an undefined value (NaN/None) as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, numbers.Integral):  # int and numpy's integers (registered), without importing numpy
        return str(value)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if number != number:  # NaN: undefined, never a number
        return "n/a"
    return f"{number:.{digits}f}"


def print_score(result: MetricScore, out: Console | None = None) -> None:
    """The per-class table and the mean on ``out`` (stdout by default); notes on stderr."""
    out = out or console
    table = Table(title=f"{result.metric}", show_lines=False)
    df = result.table
    if result.metric == "auroc":
        table.add_column("label")
        for name in ("positives", "AUROC", "95% CI", "AUPRC", "sens", "spec"):
            table.add_column(name, justify="right")
        for r in df.itertuples():
            ci = "n/a" if r.auroc_low != r.auroc_low else f"{r.auroc_low:.3f}-{r.auroc_high:.3f}"
            table.add_row(str(r.label), str(r.positives), _fmt(r.auroc), ci, _fmt(r.auprc),
                          _fmt(r.sensitivity), _fmt(r.specificity))  # fmt: skip
        for s in result.extra["summary"]:
            low, high = s["auroc_low"], s["auroc_high"]
            ci = "n/a" if low is None else f"{low:.3f}-{high:.3f}"
            table.add_row(f"[bold]{s['label']}[/bold]", str(s["positives"]), _fmt(s["auroc"]), ci,
                          _fmt(s["auprc"]), _fmt(s["sensitivity"]), _fmt(s["specificity"]))  # fmt: skip
    else:
        for column in df.columns:
            table.add_column(str(column), justify="left" if column == "label" else "right")
        for row in df.itertuples(index=False):
            table.add_row(*(_fmt(v) if k not in ("label", "class_id") else str(v)
                            for k, v in zip(df.columns, row, strict=True)))  # fmt: skip
    out.print(table)
    out.print(f"[bold]{result.mean_name}: {_fmt(result.mean, 4)}[/bold]")
    if result.metric == "auroc":
        b = result.extra["bootstrap"]
        out.print(f"95% CIs: percentile bootstrap, {b['resamples']} resamples by {b['by']}, seed {b['seed']}")
    for note in result.notes:
        (err_console if out is console else out).print(f"note: {note}", markup=False)


def score(
    truth: Annotated[Path, typer.Option("--truth", help="Tables folder with the truth (images + findings).")],
    pred: Annotated[
        Path,
        typer.Option(
            "--pred",
            help="Predictions: a challenge submission CSV, or a findings table "
            "(Parquet file, tables folder or CSV).",
        ),
    ],
    metric: Annotated[
        str, typer.Option(help="map40 (VinBigData mAP at IoU > 0.4), auroc (per label, with CIs) or iobb.")
    ] = "map40",
    truth_reader: Annotated[
        str | None,
        typer.Option(
            help="Reader whose rows are the truth (default: 'consensus' when present, else the only "
            "reader; auroc: any reader)."
        ),
    ] = None,
    pred_reader: Annotated[
        str | None, typer.Option(help="Reader (model) of the predictions table, when it holds several.")
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="Score only the images of this split (e.g. test).")
    ] = None,
    allow_missing: Annotated[
        bool,
        typer.Option(
            help="Score images without predictions as predicting nothing, and (auroc) a missing "
            "(image, label) score as 0 and several by their maximum, instead of failing."
        ),
    ] = False,
    iou: Annotated[float, typer.Option(help="IoU threshold of map40 (the challenge: IoU > 0.4).")] = 0.4,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the auroc CIs (0: none).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    threshold: Annotated[float, typer.Option(help="Score threshold of sensitivity/specificity.")] = 0.5,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False,
) -> None:
    """Score predictions against the truth tables; invalid predictions: one line per problem, exit 1."""
    from cxrlab.metrics.scoring import score as run_score

    with flags(
        metric="--metric",
        split="--split",
        iou_threshold="--iou",
        n_boot="--bootstrap",
        threshold="--threshold",
        truth_reader="--truth-reader",
        pred_reader="--pred-reader",
        allow_missing="--allow-missing",
    ):
        result = run_score(truth, pred, metric=metric, truth_reader=truth_reader, pred_reader=pred_reader,
                           split=split, allow_missing=allow_missing, iou_threshold=iou, n_boot=bootstrap,
                           seed=seed, threshold=threshold)  # fmt: skip
    if json_out:
        print_json(result.to_json())
    else:
        print_score(result)


@submission_app.command("make")
def make(
    pred: Annotated[Path, typer.Argument(help="Predictions: a findings Parquet file or a tables folder.")],
    out: Annotated[Path, typer.Option("--out", help="The submission CSV to write.")],
    images: Annotated[
        Path | None,
        typer.Option(
            help="Tables folder whose images all get a row (e.g. the test set); default: the "
            "images of PRED's folder, or of its findings."
        ),
    ] = None,
    split: Annotated[str | None, typer.Option(help="Only the images of this split of --images.")] = None,
    reader: Annotated[
        str | None, typer.Option(help="Reader (model) to take when PRED holds several.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Write a valid challenge submission: a row per image, '14 1 0 0 1 1' where nothing is predicted."""
    from cxrlab.metrics.submission import make_submission_file

    with flags(reader="--reader", out="--out", split="--split"):
        counts = make_submission_file(pred, out, images=images, split=split, reader=reader)
    if json_out:
        print_json(counts)
    else:
        console.print(
            f"wrote {out}: {counts['images']} images, {counts['predictions']} predictions, "
            f"{counts['normal_filled']} images without prediction written as normal"
        )
        notes = {
            "dropped_label": "rows of labels outside the 15 classes dropped",
            "dropped_no_box": "rows of box classes without a box dropped",
            "outside_image_ids": "images with predictions outside --images left out",
        }
        for key, text in notes.items():
            if counts.get(key):
                err_console.print(f"note: {counts[key]} {text}", markup=False)


@submission_app.command("check")
def check(
    submission: Annotated[Path, typer.Argument(help="The submission CSV.")],
    truth: Annotated[Path, typer.Option("--truth", help="Tables folder whose images the submission covers.")],
    split: Annotated[str | None, typer.Option(help="Expect exactly the images of this split.")] = None,
) -> None:
    """Check a submission: ids, strings, confidences, boxes, duplicates, missing images; exit 1 if not."""
    from cxrlab.metrics.submission import check_submission_file

    with flags(split="--split"):
        n_rows, n_preds = check_submission_file(submission, truth, split=split)
    console.print(f"{submission}: valid ({n_rows} images, {n_preds} predictions)")
