"""The demo's annotate step: a served-ready project on the phantom, and the command + logins printed."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from tests.annotate.conftest import Api

from cxrlab.annotate import Database, create_app
from cxrlab.cli.demo import DemoContext, step_annotate


def test_demo_step_makes_a_project_the_printed_logins_open(vindr_phantom: Path, tmp_path: Path) -> None:
    console = Console(record=True, width=200)
    ctx = DemoContext(work=tmp_path, images=12, seed=0, console=console, paths={"vindr_raw": vindr_phantom})
    step_annotate(ctx)
    step_annotate(ctx)  # a re-run starts afresh
    out = console.export_text()
    assert f"cxrlab annotate serve --db {tmp_path / 'annotate.db'}" in out
    db = Database(str(tmp_path / "annotate.db"))
    api = Api(create_app(db)).login("reader1", "demo-password")
    queue = api.get("/api/projects/1/queue").json()
    assert queue["pending"] == 12 and api.get(f"/api/images/{queue['next']}/display").status_code == 200
    assert len(list((tmp_path / "annotate.renditions").rglob("*.png"))) == 12
    db.dispose()
