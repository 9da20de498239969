"""``cxrlab labels``: one consensus from several readers, and how much the readers agree."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cxrlab.cli.common import console, new_app, print_json

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
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Majority vote of image labels and fusion of boxes; writes the result as reader `consensus`."""
    from cxrlab.labels.consensus import consensus
    from cxrlab.tables import load_tables, save_tables

    t = load_tables(tables)
    result = consensus(
        t.images, t.findings, method=method, iou=iou, min_readers=min_readers, keep_minority=keep_minority
    )
    save_tables(out, t.images, result.findings)
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
    result = agreement(t.findings, iou=iou)
    if json_out:
        print_json(result.to_dict())
        return
    console.print(render_agreement(result))
    console.print(render_readers(result))


def render_agreement(result: object) -> Table:
    """The per-label table with the overall row; the per-reader figures are in ``--json``."""
    from cxrlab.labels.agreement import Agreement

    assert isinstance(result, Agreement)
    info = result.info
    table = Table(
        title=f"Reader agreement: {info['images_in_kappa']} images with {info['readers_per_image']} readers "
        f"(kappa), box F1 at IoU {info['iou']} (Hungarian matching)",
        title_justify="left",
    )
    for col in ("label", "images reported", "Fleiss kappa", "boxes", "box F1", "mean IoU"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for row in result.labels:
        table.add_row(
            row["label"],
            str(row["images_reported"]),
            _fmt(row["kappa"]),
            str(row["boxes"]),
            _fmt(row["box_f1"]),
            _fmt(row["mean_iou"]),
        )
    o = result.overall
    table.add_row(
        "[bold]overall[/bold]", "", _fmt(o["kappa_pooled"]), "", _fmt(o["box_f1"]), _fmt(o["mean_iou"])
    )
    return table


def render_readers(result: object) -> Table:
    """Each reader against its co-readers: Cohen's kappa on presence, box F1, mean IoU."""
    from cxrlab.labels.agreement import Agreement

    assert isinstance(result, Agreement)
    table = Table(title="Per reader, against its co-readers", title_justify="left")
    for col in ("reader", "images", "boxes", "Cohen kappa", "box F1", "mean IoU"):
        table.add_column(col, justify="left" if col == "reader" else "right")
    for r in result.readers:
        table.add_row(
            r["reader"],
            str(r["images"]),
            str(r["boxes"]),
            _fmt(r["kappa"]),
            _fmt(r["box_f1"]),
            _fmt(r["mean_iou"]),
        )
    return table
