"""``./run demo``: the whole pipeline that exists, on phantom data, printing what a user would want to see.

Each feature adds a step here. Steps run in order and pass paths to later steps through
``DemoContext.paths``; a step reads only what earlier steps wrote. It lives with the CLI because it prints
with the commands' own renderers (tables, summaries), exactly as a user running them would see.
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
    from cxrlab.datasets.nih_archives import read_md5_file, verify_folder
    from cxrlab.datasets.nih_extract import extract_folder
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
    for problem in index.problems:  # one line each: a hard wrap left "gray) (e.g. ...)" as a stray line
        ctx.console.print(
            f"  [yellow]{problem.severity}:[/yellow] {escape(str(problem))}", highlight=False, soft_wrap=True
        )
    ctx.paths["nih_tables"] = tables
    ctx.paths["nih_images"] = images
    render(label_statistics(index.images, index.findings), ctx.console)


def step_convert(ctx: DemoContext) -> None:
    """Convert the VinDr phantom's DICOMs to 1024 px PNGs (boxes rescaled when its tables exist)."""
    from cxrlab.cli.convert import print_summary
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
    print_summary(result, result.summary, out, ctx.console)
    ctx.paths["vindr_converted"] = out


def step_deid(ctx: DemoContext) -> None:
    """A phantom hospital export full of fake PHI: phi-check finds it, deid removes it, phi-check passes."""
    from collections import Counter

    from rich.markup import escape

    from cxrlab.cli.deid import print_summary
    from cxrlab.datasets.phantom import make_hospital
    from cxrlab.imaging.deid import deid
    from cxrlab.imaging.deid_profile import ProfileOptions
    from cxrlab.imaging.tags import phi_check

    raw = make_hospital(ctx.work / "hospital-raw", patients=2, seed=ctx.seed, size=256).root
    findings, _, checked = phi_check(raw)
    reasons = Counter(f.reason for f in findings)
    ctx.console.print(
        f"cxrlab dicom phi-check {escape(str(raw))}: {len(findings)} identifying tags in {checked} files "
        f"({', '.join(f'{n} {reason}' for reason, n in reasons.most_common())}), e.g.:"
    )
    wanted = ("PatientName", "InstitutionName", "ContributingEquipmentSequence[0].OperatorsName")
    examples = [f for f in findings if f.keyword in wanted][:3]
    examples += [f for f in findings if f.reason.startswith("private")][:1]
    for f in examples:
        ctx.console.print(f"  {f.tag} {escape(f.keyword)}: {escape(f.value)} ({f.reason})", highlight=False)
    out = ctx.work / "hospital-deid"
    result = deid(raw, out, ProfileOptions("vindr"), progress=True)
    print_summary(result, ctx.console)
    findings, unreadable, checked = phi_check(out)
    verdict = "No identifying tag" if not findings and not unreadable else f"{len(findings)} identifying tags"
    ctx.console.print(f"cxrlab dicom phi-check {escape(str(out))}: {verdict} in {checked} file(s)")
    ctx.console.print(f"The pseudonym key is {escape(str(result.secret_path))}, outside the shared folder.")


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
        f"cxrlab vindr index: {info['images']} images {info['splits']}, "
        f"{info['findings']} findings, {info['boxes']} boxes by {info['readers']} readers, "
        f"sizes from the DICOM headers: {info['sizes_known']}"
    )
    if index.problems:
        table = Table(title="Inconsistencies found and the rule applied", title_justify="left")
        for col in ("problem", "count", "what happened"):
            table.add_column(col)
        for problem in index.problems:
            table.add_row(problem.kind, str(problem.count), problem.message)
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

    from cxrlab.reports import EXPLANATION, ReportLabeler, read_reports
    from cxrlab.tables import write_table

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


def step_model(ctx: DemoContext) -> None:
    """Train the unified model briefly on the VinDr phantom, predict its test split, score it."""
    from cxrlab.cli.score import print_score
    from cxrlab.model.config import resolve_config
    from cxrlab.model.evaluate import evaluate
    from cxrlab.model.train import train

    tables, converted = ctx.paths["vindr_tables"], ctx.paths["vindr_converted"]
    run = ctx.work / "model-run"
    if (run / "config.json").exists():  # a previous demo's run: start afresh, the demo is not a resume
        import shutil

        shutil.rmtree(run)
    config = resolve_config(
        tables=str(tables),
        images=str(converted),
        out=str(run),
        image_size=96,
        epochs=3,
        batch_size=8,
        seed=ctx.seed,
        threads=2,
    )
    result = train(config, progress=True)
    last = result.history[-1]
    ctx.console.print(
        f"cxrlab train {tables} --images {converted} --labels vindr --out {run} --image-size 96 --epochs 3: "
        f"{len(result.history)} epochs, training loss {result.history[0]['train_loss']:.3f} -> "
        f"{last['train_loss']:.3f}, {last['images_per_s']:.1f} img/s (ResNet-18 + FCOS, from scratch: "
        "a phantom this small only shows the pipeline, not what the model can learn)"
    )
    out = ctx.work / "model-eval"
    ctx.console.print(f"cxrlab evaluate {run} {tables} --images {converted} --out {out}")
    evaluation = evaluate(run, tables, converted, out, n_boot=200, seed=ctx.seed, progress=True)
    for score in evaluation.scores.values():
        print_score(score, ctx.console)
    ctx.console.print(f"model card: {run / 'model_card.md'}; predictions: {out / 'findings.parquet'}")


def step_look(ctx: DemoContext) -> None:
    """The HTML report of each phantom (cxrlab report): VinDr with its converted images and the simulated
    model, NIH with its extracted PNGs."""
    from cxrlab.tables import load_tables
    from cxrlab.viz.report import build_report
    from cxrlab.viz.source import ImageSource

    jobs = [
        ("VinDr-CXR", "vindr_tables", "vindr_converted"),
        ("NIH ChestX-ray14", "nih_tables", "nih_images"),
    ]
    submission = ctx.paths.get("metrics_submission")
    model = submission.parent / "predictions.parquet" if submission is not None else None
    for name, tables_key, images_key in jobs:
        if tables_key not in ctx.paths:
            continue
        tables = load_tables(ctx.paths[tables_key], validate=False)
        images = ctx.paths.get(images_key)
        source = ImageSource(images, tables.images) if images is not None else None
        preds = [model] if name.startswith("VinDr") and model is not None and model.is_file() else []
        out = ctx.work / "reports" / f"{tables_key.split('_')[0]}_report.html"
        summary = build_report(tables, out, source=source, predictions=preds, title=f"{name} phantom",
                               seed=ctx.seed, progress=True)  # fmt: skip
        model_arg = f" --pred {preds[0]}" if preds else ""
        ctx.console.print(
            f"cxrlab report {ctx.paths[tables_key]} --images {images}{model_arg}: {len(summary.sections)} "
            f"sections, {summary.figures} plots, {summary.thumbnails} images, {summary.bytes / 1e6:.1f} MB "
            f"-> {summary.path}"
        )
        ctx.paths[f"{tables_key.split('_')[0]}_report"] = summary.path


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
        f"  serve it:  cxrlab annotate serve --db {path}   then open http://127.0.0.1:8000/ in a browser "
        "(the reading pages; API docs at /docs)"
    )
    ctx.console.print(f"  logins ({password}): " + ", ".join(f"{n} ({r})" for n, r in logins.items()))


STEPS: list[tuple[str, Step]] = [
    ("Phantom datasets in the real formats", step_phantoms),
    ("NIH ChestX-ray14: verify, extract, index, statistics", step_nih),
    ("VinDr-CXR: index, reader consensus, agreement, COCO export", step_vindr),
    ("VinDr-CXR DICOMs -> 1024 px PNG (cxrlab convert)", step_convert),
    ("Hospital DICOMs made shareable (cxrlab deid), checked by cxrlab dicom phi-check", step_deid),
    ("Metrics: mAP@0.4 and AUROC with CIs of a simulated model (cxrlab score)", step_metrics),
    ("Report labeler: findings, negation and uncertainty from free text", step_reports),
    (
        "Model: train on the VinDr phantom, predict its test split, score it (cxrlab train / evaluate)",
        step_model,
    ),
    ("Annotate: a blind multi-reader project on the phantom (cxrlab annotate)", step_annotate),
    ("Look: the HTML report of each phantom (cxrlab report)", step_look),
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
