"""Proposals (a table's or a model's findings): off by default, never on test images, provenance kept; and
the Alembic migrations give exactly the models' schema."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from tests.annotate.conftest import Api, add_users

from cxrlab.annotate import Database, create_app
from cxrlab.annotate.models import Base
from cxrlab.datasets.vindr import index_vindr
from cxrlab.tables import save_tables


def test_proposals_shown_only_where_allowed_and_adopted_marks_keep_provenance(
    sqlite_db: Database, vindr_phantom: Path, tmp_path: Path
) -> None:
    index = index_vindr(vindr_phantom)
    save_tables(tmp_path / "tables", index.images, index.findings)
    add_users(sqlite_db, {"boss": "admin", "r1": "radiologist"})
    app = create_app(sqlite_db)
    boss = Api(app).login("boss")
    projects = {}
    for name, allow in (("assisted", True), ("blind", False)):
        pid = boss.post(
            "/api/projects",
            {"name": name, "labels": "vindr", "readers": 1, "test_readers": 1, "allow_proposals": allow},
        ).json()["id"]
        boss.post(f"/api/projects/{pid}/members", {"user": "r1"})
        summary = boss.import_source(
            pid,
            {
                "source": str(tmp_path / "tables"),
                "images_root": str(vindr_phantom),
                "proposals": True,
                "renditions": False,
            },
        )
        assert summary["proposals"] > 0, summary
        projects[name] = pid
    r1 = Api(app).login("r1")
    seen = {}
    for name, pid in projects.items():
        for task in r1.get(f"/api/projects/{pid}/queue").json()["tasks"]:
            seen[(name, task["split"], task["image_id"])] = r1.get(
                f"/api/images/{task['image_id']}/proposals"
            ).json()
    assert any(v for (name, split, _), v in seen.items() if name == "assisted" and split == "train")
    assert not any(v for (name, split, _), v in seen.items() if name == "blind" or split == "test")
    (_, _, image), props = next((k, v) for k, v in seen.items() if k[0] == "assisted" and v and v[0]["box"])
    adopted = r1.post(f"/api/images/{image}/annotations", {"proposal_id": props[0]["id"]})
    assert adopted.status_code == 201, adopted.text
    mark = adopted.json()
    assert mark["provenance"] == props[0]["provenance"] and mark["provenance"].startswith("proposal:")
    assert mark["origin_id"] == props[0]["id"] and mark["box"] == props[0]["box"]
    moved = r1.patch(f"/api/annotations/{mark['id']}", {"version": 1, "box": [1, 1, 20, 20]}).json()
    assert moved["provenance"] == mark["provenance"] and moved["origin_id"] == props[0]["id"]
    blind_image = next(k[2] for k in seen if k[0] == "blind")
    assert (
        r1.post(f"/api/images/{blind_image}/annotations", {"proposal_id": props[0]["id"]}).status_code == 404
    )


def test_migrations_match_the_models(database: Database) -> None:
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
