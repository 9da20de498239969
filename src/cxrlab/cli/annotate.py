"""``cxrlab annotate``: the reading service (serve) and its admin commands, all on one ``--db``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cxrlab.cli.common import console, err_console, flags, new_app, print_json

app = new_app("The reading service: blind multi-reader projects, adjudication, export to the two tables.")
project_app = new_app("Create projects and add members.")
user_app = new_app("Add users (the password is read from a prompt or stdin, never from a flag).")
app.add_typer(project_app, name="project")
app.add_typer(user_app, name="user")

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL or SQLite file [default: $CXRLAB_DB or ./cxrlab-annotate.db]."),
]


def _database(db: str | None, cache: Path | None = None):  # type: ignore[no-untyped-def]
    from cxrlab.annotate.db import Database

    with flags(db="--db"):
        return Database(db, cache_dir=cache)


@app.command("serve")
def serve_cmd(
    db: DbOption = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (one per core serves most readers).")] = 1,
    cache: Annotated[Path | None, typer.Option(help="Folder of cached display renditions.")] = None,
    secure_cookies: Annotated[
        bool, typer.Option("--secure-cookies", help="Mark cookies Secure (behind an HTTPS proxy).")
    ] = False,
) -> None:
    """Serve the API (OpenAPI docs at /docs); migrations are applied on start."""
    import os

    import uvicorn

    from cxrlab.errors import UsageError

    if workers < 1:
        raise UsageError("--workers must be at least 1")
    database = _database(db, cache)  # migrates once, before any worker starts
    err_console.print(f"cxrlab annotate: serving http://{host}:{port} (API docs at /docs)")
    if workers == 1:
        from cxrlab.annotate import create_app

        app = create_app(database, secure_cookies=secure_cookies)
        uvicorn.run(app, host=host, port=port, log_level="warning")
        return
    os.environ.update(
        CXRLAB_DB=database.url,
        CXRLAB_ANNOTATE_CACHE=str(database.cache_dir),
        CXRLAB_SECURE_COOKIES="1" if secure_cookies else "0",
    )
    database.dispose()
    uvicorn.run("cxrlab.annotate.asgi:app", host=host, port=port, workers=workers, log_level="warning")


@project_app.command("create")
def project_create_cmd(
    name: Annotated[str, typer.Argument(help="Project name.")],
    labels: Annotated[
        str, typer.Option(help="vindr, nih, or a text file with one label per line.")
    ] = "vindr",
    readers: Annotated[int, typer.Option(help="Independent readers per training image.")] = 3,
    test_readers: Annotated[int, typer.Option(help="Readers per test image (then adjudication).")] = 5,
    allow_proposals: Annotated[
        bool, typer.Option("--allow-proposals", help="Show proposals to readers (never on test images).")
    ] = False,
    db: DbOption = None,
) -> None:
    """Create a project."""
    from cxrlab.annotate.admin import create_project, project_dict

    database = _database(db)
    with database.session() as s:
        project = create_project(
            s, name, labels, readers=readers, test_readers=test_readers, allow_proposals=allow_proposals
        )
        s.commit()
        info = project_dict(project)
    console.print(
        f"project {info['name']} (id {info['id']}): {len(info['labels'])} labels, "  # type: ignore[arg-type]
        f"{readers} readers per training image, {test_readers} per test image"
    )


@project_app.command("add-member")
def add_member_cmd(
    project: Annotated[str, typer.Argument(help="Project name or id.")],
    users: Annotated[list[str], typer.Argument(help="User names.")],
    db: DbOption = None,
) -> None:
    """Add users to a project; radiologists get their share of the images at once."""
    from cxrlab.annotate.admin import add_member, find_project, find_user

    database = _database(db)
    with database.session() as s:
        p = find_project(s, project)
        for name in users:
            member = add_member(s, p, find_user(s, name))
            console.print(f"{name} joins {p.name} as {member.pseudonym}")
        s.commit()


def _read_password(name: str) -> str:
    if sys.stdin.isatty():
        return typer.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\r\n")


@user_app.command("add")
def user_add_cmd(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="admin, radiologist or adjudicator.")] = "radiologist",
    project: Annotated[list[str] | None, typer.Option(help="Project(s) to join (repeat the option).")] = None,
    db: DbOption = None,
) -> None:
    """Add a user; the password comes from a hidden prompt, or the first line of stdin when piped."""
    from cxrlab.annotate.admin import add_member, create_user, find_project
    from cxrlab.annotate.models import ROLES
    from cxrlab.params import check_choice

    check_choice(role, ROLES, "--role")  # before asking for the password
    password = _read_password(name)
    database = _database(db)
    with database.session() as s:
        user = create_user(s, name, role, password)
        for p in project or []:
            member = add_member(s, find_project(s, p), user)
            console.print(f"{name} joins {p} as {member.pseudonym}")
        s.commit()
    console.print(f"user {name} ({role}) added")


@app.command("import")
def import_cmd(
    project: Annotated[str, typer.Argument(help="Project name or id.")],
    src: Annotated[str | None, typer.Argument(help="Folder of DICOMs or PNGs, or a tables folder.")] = None,
    split: Annotated[
        str | None, typer.Option(help="Split of every image [default: from folder names].")
    ] = None,
    images: Annotated[Path | None, typer.Option(help="Root of a tables folder's image paths.")] = None,
    proposals: Annotated[
        bool, typer.Option("--proposals", help="A tables folder's findings as proposals.")
    ] = False,
    pacs: Annotated[str | None, typer.Option(help="DICOMweb URL (e.g. http://host:8042/dicom-web).")] = None,
    study_date: Annotated[
        str | None, typer.Option(help="PACS filter: YYYYMMDD or YYYYMMDD-YYYYMMDD.")
    ] = None,
    study_uid: Annotated[str | None, typer.Option(help="PACS filter: one Study Instance UID.")] = None,
    renditions: Annotated[bool, typer.Option(help="Make the display renditions now.")] = True,
    cache: Annotated[Path | None, typer.Option(help="Folder of cached display renditions.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    db: DbOption = None,
) -> None:
    """Import images (originals referenced, never changed); readers are assigned; renditions made ahead."""
    from cxrlab.annotate.admin import find_project
    from cxrlab.annotate.renditions import RenditionCache
    from cxrlab.errors import UsageError
    from cxrlab.progress import track

    if (src is None) == (pacs is None):
        raise UsageError("give either SRC (a folder) or --pacs URL")
    database = _database(db, cache)
    with database.session() as s:
        p = find_project(s, project)
        if pacs is not None:
            from cxrlab.annotate.pacs import import_pacs

            report = import_pacs(
                s,
                p,
                pacs,
                database.cache_dir / "pacs",
                study_date=study_date,
                study_uid=study_uid,
                split=split,
                progress=True,
            )
        else:
            assert src is not None  # SRC or --pacs, checked above
            report = _import_folder(s, p, Path(src), split, images, proposals, track)
    failed = _make_renditions(RenditionCache(database.cache_dir), report.new_images, renditions, track)
    for problem in report.problems + failed:
        err_console.print(f"[yellow]skipped:[/yellow] {problem}", markup=True, highlight=False)
    if json_out:
        print_json({**report.summary(), "rendition_failures": len(failed)})
    else:
        console.print(f"imported into {project}: {report.summary()}")
    if report.problems or failed:
        raise typer.Exit(1)


def _import_folder(session, project, src, split, images, proposals, track):  # type: ignore[no-untyped-def]
    """Headers first, outside any transaction (with a bar), then the rows in one short transaction: a
    service running on the same database makes its readers' saves wait only for the rows."""
    from cxrlab.annotate.importer import import_source, probe_all, source_files

    paths = source_files(src, images)
    probed = {}
    for path in track(paths, total=len(paths), description="reading headers", progress=True):
        probed.update(probe_all([path]))
    return import_source(
        session, project, src, split=split, images_root=images, proposals=proposals, probed=probed
    )


def _make_renditions(cache, refs, enabled, track) -> list[str]:  # type: ignore[no-untyped-def]
    failed: list[str] = []
    if not enabled:
        return failed
    from cxrlab.annotate.pixels import make_ahead

    for ref in track(refs, total=len(refs), description="display data", progress=True):
        try:
            make_ahead(cache, ref)
        except Exception as exc:  # one broken file is named, the others go on
            failed.append(f"{ref.source}: {exc}")
    cache.close()
    return failed


@app.command("export")
def export_cmd(
    project: Annotated[str, typer.Argument(help="Project name or id.")],
    out: Annotated[Path, typer.Option("--out", help="Tables folder to write (images, findings).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    db: DbOption = None,
) -> None:
    """Write the finished reads (readers R1..Rn) and adjudications (reader `consensus`) as the two tables."""
    from cxrlab.annotate.admin import find_project
    from cxrlab.annotate.tables import export_project

    database = _database(db)
    with database.session() as s:
        summary = export_project(s, find_project(s, project), out, actor_id=None)
    if json_out:
        print_json(summary)
    else:
        console.print(f"exported {project} -> {out}: {summary}")
