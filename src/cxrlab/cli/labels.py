"""``cxrlab labels``: one consensus from several readers, and how much the readers agree."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from cxrlab.atomic import output_folder
from cxrlab.cli.common import console, flags, new_app, print_json, table_inputs

if TYPE_CHECKING:
    from cxrlab.labels.agreement import Agreement

app = new_app("Multi-reader labels: consensus (majority vote, box fusion) and inter-reader agreement.")


@app.command("consensus")
def consensus_cmd(
    tables: Annotated[Path, typer.Argument(help="Tables folder with the readers' findings.")],
    out: Annotated[
        Path, typer.Option("--out", help="Tables folder to write (findings with reader 'consensus').")
    ],
    method: Annotated[str, typer.Option(help="Box fusion: wbf, nms or majority-box.")] = "wbf",
    iou: Annotated[float, typer.Option(help="IoU at which two readers' boxes are the same finding.")] = 0.4,
    min_readers: Annotated[int, typer.Option(help="Readers needed for a label or a fused box (quorum).")] = 2,
    keep_minority: Annotated[
        bool,
        typer.Option("--keep-minority", help="Keep fused boxes supported by fewer readers than the quorum."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Write into a non-empty folder that is not a cxrlab output (its other files stay).",
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Majority vote of image labels and fusion of boxes; writes the result as reader `consensus`."""
    from cxrlab.labels.consensus import METHODS, consensus
    from cxrlab.params import check_choice
    from cxrlab.tables import load_tables, save_tables

    check_choice(method, METHODS, "--method")  # usage before reading the tables
    t = load_tables(tables)
    with flags(iou="--iou", min_readers="--min-readers"):
        result = consensus(
            t.images, t.findings, method=method, iou=iou, min_readers=min_readers, keep_minority=keep_minority
        )
    settings = {"command": "labels consensus", "method": method, "iou": iou, "min_readers": min_readers}
    with (
        flags(out="--out", force="--force"),
        output_folder(out, settings, inputs=table_inputs(tables), force=force) as folder,
    ):
        save_tables(folder.work, t.images, result.findings)
    if json_out:
        print_json(result.stats)
        return
    s = result.stats
    console.print(
        f"Consensus ({s['method']}, IoU {s['iou']}, quorum {s['min_readers']}) "
        f"of {s['images_fused']} images: "
        f"{s['consensus_boxes']} boxes from {s['input_boxes']} reader boxes "
        f"({s['minority_boxes_dropped']} fused boxes below the quorum dropped), "
        f"{s['consensus_image_labels']} image-level labels, {s['no_finding_images']} images 'No finding'"
        + (f"; {s['images_kept']} images kept their own consensus" if s["images_kept"] else "")
        + f" -> {out}"
    )
    if s.get("images_scaled_by_max_coordinate"):
        console.print(
            f"[yellow]note:[/yellow] {s['images_scaled_by_max_coordinate']} image(s) without a known "
            "size were normalised by their largest box coordinate (same fused boxes)"
        )


def _fmt(v: object) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


@app.command("agreement")
def agreement_cmd(
    tables: Annotated[Path, typer.Argument(help="Tables folder with the readers' findings.")],
    iou: Annotated[float, typer.Option(help="IoU at which two readers' boxes agree.")] = 0.4,
    json_out: Annotated[bool, typer.Option("--json", help="Print every figure as JSON.")] = False,
) -> None:
    """Fleiss' kappa per label on presence; pairwise box F1 and mean IoU; overall and per reader."""
    from cxrlab.labels.agreement import agreement
    from cxrlab.tables import load_tables

    t = load_tables(tables)
    with flags(iou="--iou"):
        result = agreement(t.findings, iou=iou)
    if json_out:
        print_json(result.to_dict())
        return
    console.print(render_agreement(result))
    console.print(render_readers(result))


def _figures_table(title: str, columns: dict[str, str], rows: list[dict[str, Any]]) -> Table:
    """One row per dict: ``columns`` maps heading to key; the first (a name) left-aligned, figures right."""
    table = Table(title=title, title_justify="left")
    for i, heading in enumerate(columns):
        table.add_column(heading, justify="right" if i else "left")
    for row in rows:
        table.add_row(*(_fmt(row[key]) for key in columns.values()))
    return table


def render_agreement(result: Agreement) -> Table:
    """The per-label table with the overall row; the per-reader figures are in ``--json``."""
    info = result.info
    table = _figures_table(
        f"Reader agreement: {info['images_in_kappa']} images with {info['readers_per_image']} readers "
        f"(kappa), box F1 at IoU {info['iou']} (Hungarian matching)",
        {
            "label": "label",
            "images reported": "images_reported",
            "Fleiss kappa": "kappa",
            "boxes": "boxes",
            "box F1": "box_f1",
            "mean IoU": "mean_iou",
        },
        result.labels,
    )
    o = result.overall
    table.add_row(
        "[bold]overall[/bold]", "", _fmt(o["kappa_pooled"]), "", _fmt(o["box_f1"]), _fmt(o["mean_iou"])
    )
    return table


def render_readers(result: Agreement) -> Table:
    """Each reader against its co-readers: Cohen's kappa on presence, box F1, mean IoU."""
    return _figures_table(
        "Per reader, against its co-readers",
        {
            "reader": "reader",
            "images": "images",
            "boxes": "boxes",
            "Cohen kappa": "kappa",
            "box F1": "box_f1",
            "mean IoU": "mean_iou",
        },
        result.readers,
    )
