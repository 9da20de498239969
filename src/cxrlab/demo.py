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

    # VinDr DICOMs larger than the 1024 px training size, so that the convert step really downsizes them
    # (the real ones are 2,000-3,000 px: `cxrlab phantom vindr --size 2800` for those); NIH PNGs are 1024 px.
    vindr = make_vindr(ctx.work / "vindr-raw", images=ctx.images, seed=ctx.seed, size=1536, progress=True)
    nih = make_nih(ctx.work / "nih-raw", images=ctx.images, seed=ctx.seed, size=1024, progress=True)
    ctx.paths["vindr_raw"] = vindr.root
    ctx.paths["nih_raw"] = nih.root
    print_summary(vindr.summary, vindr.root, ctx.console)
    print_summary(nih.summary, nih.root, ctx.console)


def step_nih(ctx: DemoContext) -> None:
    """Verify the NIH phantom's archives, extract them, index the label files, print the statistics."""
    from rich.markup import escape
    from rich.table import Table

    from cxrlab.datasets.nih import index_nih, write_index
    from cxrlab.datasets.nih_archives import extract_folder, read_md5_file, verify_folder
    from cxrlab.viz.statistics import label_statistics, render

    raw = ctx.paths["nih_raw"]
    checks = verify_folder(raw, read_md5_file(raw / "images_md5.txt"), mode="full", progress=True)
    table = Table(title="cxrlab nih verify (against the phantom's md5 list)", title_justify="left")
    for col in ("archive", "status", "bytes", "tar members"):
        table.add_column(col)
    for c in checks:
        table.add_row(c.name, "ok" if c.ok else "; ".join(c.reasons), f"{c.size:,}", str(c.members))
    ctx.console.print(table)
    images = ctx.work / "nih-extracted"
    summary = extract_folder(raw, images, progress=True)
    ctx.console.print(
        f"cxrlab nih extract: {summary.written} PNGs written, {summary.skipped} already there -> {images}"
    )
    index = index_nih(raw, images_dir=images)
    tables = write_index(index, ctx.work / "nih-tables")
    info = index.summary()
    ctx.console.print(
        f"cxrlab nih index: {info['images']} images, {info['patients']} patients, {info['boxes']} boxes, "
        f"splits {info['splits']} -> {tables}"
    )
    for problem in index.problems:
        ctx.console.print(f"  [yellow]{problem.severity}:[/yellow] {escape(str(problem))}", highlight=False)
    ctx.paths["nih_tables"] = tables
    ctx.paths["nih_images"] = images
    render(label_statistics(index.images, index.findings), ctx.console)


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


def step_vindr(ctx: DemoContext) -> None:
    """Index the VinDr phantom (labels + DICOM headers), fuse the three readers, agreement, COCO export."""
    from rich.table import Table

    from cxrlab.cli.labels import render_agreement, render_readers
    from cxrlab.datasets.vindr import index_vindr, write_report
    from cxrlab.labels.agreement import agreement
    from cxrlab.labels.consensus import consensus
    from cxrlab.labels.export import export
    from cxrlab.tables import save_tables

    index = index_vindr(ctx.paths["vindr_raw"], progress=True)
    info = index.report()
    ctx.console.print(
        f"cxrlab vindr index: {info['images']} images {info['images_per_split']}, "
        f"{info['findings']} findings, {info['boxes']} boxes by {info['readers']} readers, "
        f"sizes from the DICOM headers: {info['sizes_known']}"
    )
    if index.issues:
        table = Table(title="Inconsistencies found and the rule applied", title_justify="left")
        for col in ("issue", "count", "rule"):
            table.add_column(col)
        for issue in index.issues:
            table.add_row(issue.kind, str(issue.count), issue.rule)
        ctx.console.print(table)
    fused = consensus(index.images, index.findings, method="wbf", iou=0.4, min_readers=2)
    tables = save_tables(ctx.work / "vindr-tables", index.images, fused.findings)
    write_report(index, tables)
    s = fused.stats
    ctx.console.print(
        f"cxrlab labels consensus (WBF, IoU 0.4, 2 of 3 readers): {s['input_boxes']} reader boxes -> "
        f"{s['consensus_boxes']} consensus boxes, {s['minority_boxes_dropped']} single-reader boxes dropped, "
        f"{s['no_finding_images']} images 'No finding' -> {tables}"
    )
    result = agreement(index.findings, iou=0.4)
    ctx.console.print(render_agreement(result))
    ctx.console.print(render_readers(result))
    coco = ctx.work / "vindr-coco"
    exported = export(index.images, fused.findings, "coco", coco)
    ctx.console.print(
        f"cxrlab export --format coco: {exported.counts['images']} images, "
        f"{exported.counts['boxes']} consensus boxes, {exported.counts['classes']} classes "
        f"-> {coco / 'annotations.json'} (+ classes.json)"
    )
    ctx.paths["vindr_tables"] = tables
    ctx.paths["vindr_coco"] = coco


def step_metrics(ctx: DemoContext) -> None:
    """Score a deliberately imperfect prediction of the VinDr phantom's test set: mAP@0.4, AUROC with CIs."""
    from cxrlab.cli.score import print_score
    from cxrlab.errors import UsageError
    from cxrlab.metrics.scoring import score, select_truth, simulate_predictions
    from cxrlab.metrics.submission import make_submission, write_submission
    from cxrlab.tables import load_tables, write_parquet

    folder = ctx.paths["vindr_tables"]
    tables = load_tables(folder)
    split = "test" if (tables.images["split"] == "test").any() else None
    try:
        truth = select_truth(tables, split=split)
    except UsageError:  # several readers and no consensus: score against the most frequent reader
        reader = str(tables.findings["reader"].value_counts().index[0])
        truth = select_truth(tables, split=split, reader=reader)
    out = ctx.work / "metrics"
    preds = simulate_predictions(truth, seed=ctx.seed)
    pred_path = write_parquet(preds, out / "predictions.parquet")
    ids = truth.images["image_id"].astype(str).tolist()
    submission, counts = make_submission(preds, image_ids=ids, images=truth.images)
    sub_path = write_submission(submission, out / "submission.csv")
    ctx.console.print(
        f"Simulated model (seed {ctx.seed}): truth boxes jittered, a quarter dropped, random false boxes and "
        f"confidences -> {pred_path}\ncxrlab submission make: {counts['images']} images, "
        f"{counts['predictions']} predictions -> {sub_path}"
    )
    split_arg = f" --split {split}" if split else ""
    ctx.console.print(f"cxrlab score --truth {folder} --pred {sub_path}{split_arg}")
    print_score(score(folder, sub_path, metric="map40", split=split, truth_reader=truth.reader), ctx.console)
    ctx.console.print(f"cxrlab score --truth {folder} --pred {pred_path} --metric auroc{split_arg}")
    auroc = score(folder, pred_path, metric="auroc", split=split, truth_reader=truth.reader, seed=ctx.seed)
    print_score(auroc, ctx.console)
    ctx.paths["metrics_submission"] = sub_path


def step_reports(ctx: DemoContext) -> None:
    """Label the shipped sample reports (written for cxrlab) with the NIH list; show values and reasons."""
    from importlib import resources

    from rich.markup import escape
    from rich.table import Table

    from cxrlab.cli.reports import write_table
    from cxrlab.reports import EXPLANATION, ReportLabeler, read_reports

    with resources.as_file(resources.files("cxrlab.reports").joinpath("samples")) as folder:
        reports = read_reports(folder)
    labeler = ReportLabeler("nih")
    table = labeler.label_reports(reports["text"], reports["report_id"], explain=True)
    out = write_table(table, ctx.work / "reports" / "nih_labels.csv")
    ctx.console.print(
        f"cxrlab reports label <samples> --labels nih --explain --out {out}: {len(table)} reports "
        "(1 positive, 0 negative, -1 uncertain, blank not mentioned)"
    )
    grid = Table(show_lines=True)
    grid.add_column("report")
    grid.add_column("labels")
    grid.add_column("why", overflow="fold")
    for _, row in table.iterrows():
        values = [f"{lab}={int(row[lab])}" for lab in labeler.label_set.labels if not _is_na(row[lab])]
        why = escape(str(row[EXPLANATION])).replace("; ", "\n")
        grid.add_row(escape(str(row["report_id"])), "\n".join(values), why)
    ctx.console.print(grid)
    ctx.paths["report_labels"] = out


def _is_na(value: object) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def step_annotate(ctx: DemoContext) -> None:
    """A reading project on the VinDr phantom (3 blind readers, then adjudication of the test images);
    prints the one command that serves it, with the demo logins. Nothing long-running is started."""
    from cxrlab.annotate import Database
    from cxrlab.annotate.admin import add_member, create_project, create_user
    from cxrlab.annotate.importer import import_source
    from cxrlab.annotate.renditions import RenditionCache
    from cxrlab.progress import track

    path = ctx.work / "annotate.db"
    for old in ctx.work.glob("annotate.db*"):  # a re-run starts the project afresh
        old.unlink()
    db = Database(str(path))
    logins = {
        "admin": "admin",
        "reader1": "radiologist",
        "reader2": "radiologist",
        "reader3": "radiologist",
        "adjudicator": "adjudicator",
    }
    password = "demo-password"
    with db.session() as s:
        project = create_project(s, "demo", "vindr", readers=3, test_readers=3)
        for name, role in logins.items():
            add_member(s, project, create_user(s, name, role, password))
        s.commit()
        report = import_source(s, project, ctx.paths["vindr_raw"])
    cache = RenditionCache(db.cache_dir)
    for ref in track(report.new_images, total=len(report.new_images), description="display renditions"):
        cache.ensure(ref)
    cache.close()
    db.dispose()
    ctx.console.print(
        f"cxrlab annotate: project 'demo', {report.added} DICOMs, {report.assignments} reading tasks "
        f"(3 readers per image, adjudication of the test images) -> {path}"
    )
    ctx.console.print(
        f"  serve it:  cxrlab annotate serve --db {path}   (API docs at http://127.0.0.1:8000/docs)"
    )
    ctx.console.print(f"  logins ({password}): " + ", ".join(f"{n} ({r})" for n, r in logins.items()))


STEPS: list[tuple[str, Step]] = [
    ("Phantom datasets in the real formats", step_phantoms),
    ("NIH ChestX-ray14: verify, extract, index, statistics", step_nih),
    ("VinDr-CXR: index, reader consensus, agreement, COCO export", step_vindr),
    ("VinDr-CXR DICOMs -> 1024 px PNG (cxrlab convert)", step_convert),
    ("Metrics: mAP@0.4 and AUROC with CIs of a simulated model (cxrlab score)", step_metrics),
    ("Report labeler: findings, negation and uncertainty from free text", step_reports),
    ("Annotate: a blind multi-reader project on the phantom (cxrlab annotate)", step_annotate),
]


def run_demo(work: str | Path, *, images: int = 40, seed: int = 0, console: Console | None = None) -> None:
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
