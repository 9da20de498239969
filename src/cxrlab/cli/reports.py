"""``cxrlab reports``: label free-text radiology reports, and score the labeler against gold labels."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cxrlab.atomic import refuse_inputs
from cxrlab.cli.common import console, flags, new_app, print_json
from cxrlab.errors import UsageError

if TYPE_CHECKING:  # pandas only when a command runs: `cxrlab --help` and other commands start faster
    import pandas as pd

app = new_app("Label free-text radiology reports: findings, negation, uncertainty.")

CHOICE_FLAGS = {
    "label_set": "--labels",
    "uncertain": "--uncertain",
    "differential": "--differential",
    "split": "--split",
}
"""The library's parameter names of the commands' fixed-choice options, and their flags."""


DIFFERENTIAL_HELP = (
    "Both candidates of a differential ('atelectasis versus scarring'): uncertain, or positive as the "
    "MeSH indexers of NIH-style gold coded them."
)


@app.command("label")
def label(
    source: Annotated[
        Path, typer.Argument(help="A CSV of reports, or a folder of .txt files (one report each).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output table: .csv, .tsv or .parquet.")],
    labels: Annotated[
        str, typer.Option(help="Label set (nih, chexpert or vindr): one column per label.")
    ] = "nih",
    uncertain: Annotated[
        str,
        typer.Option(help="Uncertain mentions: keep as -1, or count them as positive or negative."),
    ] = "keep",
    differential: Annotated[str, typer.Option(help=DIFFERENTIAL_HELP)] = "uncertain",
    explain: Annotated[
        bool,
        typer.Option("--explain", help="Add an 'explanation' column: matched phrase and rule per label."),
    ] = False,
    text_col: Annotated[
        list[str] | None,
        typer.Option(
            help="CSV column(s) holding the text (repeat; default: findings+impression, report, text)."
        ),
    ] = None,
    id_col: Annotated[
        str | None, typer.Option(help="CSV column with the report id (default: guessed).")
    ] = None,
    phrases: Annotated[
        Path | None, typer.Option(help="Your own phrase list instead of the shipped one.")
    ] = None,
    rules: Annotated[Path | None, typer.Option(help="Your own negation/uncertainty rules file.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Label reports: 1 positive, 0 negative, -1 uncertain, blank not mentioned; 'No finding' derived."""
    from cxrlab.reports.labeler import ReportLabeler, check_differential, check_policy
    from cxrlab.reports.reading import read_reports
    from cxrlab.tables import check_table_suffix, write_table

    check_table_suffix(out)
    with flags(out="--out"):
        refuse_inputs(out, [source, phrases, rules])
    if out.is_dir():
        raise UsageError(f"{out}: is a folder; the output is a table file (.csv, .tsv or .parquet)")
    with flags(**CHOICE_FLAGS):
        policy = check_policy(uncertain)
        labeler = ReportLabeler(
            labels, phrases=phrases, rules=rules, differential=check_differential(differential)
        )
    with flags(text_columns="--text-col", id_column="--id-col"):
        reports = read_reports(source, text_columns=text_col, id_column=id_col)
    table = labeler.label_reports(
        reports["text"], reports["report_id"], uncertain=policy, explain=explain, progress=True
    )
    write_table(table, out)
    columns = list(labeler.label_set.labels)
    summary = {
        "reports": len(table),
        "out": str(out),
        "labels": {
            c: {
                "positive": int((table[c] == 1).sum()),
                "uncertain": int((table[c] == -1).sum()),
                "negative": int((table[c] == 0).sum()),
            }
            for c in columns
        },
    }
    if json_out:
        print_json(summary)
        return
    grid = Table(title=f"{len(table)} reports labelled with the {labels} list -> {out}")
    for name in ("label", "positive", "uncertain", "negative"):
        grid.add_column(name, justify="left" if name == "label" else "right")
    per_label: dict[str, dict[str, int]] = summary["labels"]  # type: ignore[assignment]
    for c, counts in per_label.items():
        grid.add_row(c, *(str(counts[k]) for k in ("positive", "uncertain", "negative")))
    console.print(grid)


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def evaluation_table(frame: pd.DataFrame, title: str) -> Table:
    """A rich table of per-label precision / recall / F1 (rows of :meth:`Evaluation.to_frame`)."""
    grid = Table(title=title)
    for name in ("label", "support", "tp", "fp", "fn", "precision", "recall", "F1"):
        grid.add_column(name, justify="left" if name == "label" else "right")
    for row in frame.itertuples(index=False):
        grid.add_row(
            str(row.label),
            str(row.support),
            str(row.tp),
            str(row.fp),
            str(row.fn),
            _fmt(row.precision),
            _fmt(row.recall),
            _fmt(row.f1),
            style="bold" if row.label == "micro" else None,
        )
    return grid


@app.command("evaluate")
def evaluate(
    reports_csv: Annotated[
        Path, typer.Argument(help="Indiana/Open-i reports CSV (uid, findings, impression).")
    ],
    gold_csv: Annotated[
        Path, typer.Argument(help="NegBio gold CSV (filename = CXR<uid>, one 0/1 column per label).")
    ],
    split: Annotated[
        str, typer.Option(help="Score all reports, or the dev / holdout part of a hash split.")
    ] = "all",
    uncertain: Annotated[
        str,
        typer.Option(help="How uncertain mentions (keep, positive, negative) count against the 0/1 gold."),
    ] = "negative",
    differential: Annotated[str, typer.Option(help=DIFFERENTIAL_HELP)] = "uncertain",
    json_out: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Per-label precision, recall and F1 of the NIH list on Open-i reports, and the micro average."""
    from cxrlab.reports.evaluate import evaluate_openi
    from cxrlab.reports.labeler import ReportLabeler, check_differential, check_policy

    with flags(**CHOICE_FLAGS):
        labeler = ReportLabeler("nih", differential=check_differential(differential))
        policy = check_policy(uncertain)
        result = evaluate_openi(reports_csv, gold_csv, split=split, uncertain=policy, labeler=labeler)
    if json_out:
        print_json(result.to_dict())
        return
    title = f"{result.reports} reports ({split}), uncertain counted {uncertain}, differentials {differential}"
    console.print(evaluation_table(result.to_frame(), title))
    console.print(
        f"micro-F1 {result.micro.f1:.3f} over the {len(result.scored)} labels with positives; "
        f"macro-F1 {result.macro_f1:.3f}"
    )
