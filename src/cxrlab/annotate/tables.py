"""The project's marks as cxrlab's two tables: what the export writes, agreement measures and fusion reads.

``images``: ``image_id`` is the dataset's id, ``path`` the original file. ``findings``: each finished read
gives its marks under the reader's pseudonym (R1..Rn), or one ``No finding`` row when it has none; a finished
adjudication gives its marks as reader ``consensus``. Unfinished reads are left out. The extra column
``provenance`` says where a mark came from (``reader``, ``proposal:NAME``, ``fusion``, ``edited``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from cxrlab.annotate.audit import record
from cxrlab.annotate.models import Annotation, Assignment, Image, Member, Project
from cxrlab.labels.agreement import agreement
from cxrlab.labels.consensus import consensus
from cxrlab.tables import BOX_COLUMNS, CONSENSUS, Tables, conform_findings, conform_images, save_tables
from cxrlab.taxonomy import NO_FINDING

FUSION_METHOD, FUSION_IOU = "wbf", 0.4


def images_table(db: Session, project: Project, image_ids: list[int] | None = None) -> pd.DataFrame:
    query = select(Image).where(Image.project_id == project.id).order_by(Image.position, Image.id)
    if image_ids is not None:
        query = query.where(Image.id.in_(image_ids))
    rows = [
        {
            "image_id": i.image_key,
            "dataset": project.label_set,
            "split": i.split,
            "patient_id": None,
            "path": i.source,
            "width": i.width,
            "height": i.height,
            "sex": None,
            "age": None,
            "view": None,
        }
        for i in db.scalars(query)
    ]
    return conform_images(
        pd.DataFrame(
            rows,
            columns=[
                "image_id",
                "dataset",
                "split",
                "patient_id",
                "path",
                "width",
                "height",
                "sex",
                "age",
                "view",
            ],
        )
    )


def _row(key: str, reader: str, a: Annotation | None) -> dict[str, Any]:
    if a is None:
        return {
            "image_id": key,
            "reader": reader,
            "label": NO_FINDING,
            **dict.fromkeys(BOX_COLUMNS, np.nan),
            "score": 1.0,
            "provenance": "reader",
        }
    return {
        "image_id": key,
        "reader": reader,
        "label": a.label,
        "x_min": a.x_min,
        "y_min": a.y_min,
        "x_max": a.x_max,
        "y_max": a.y_max,
        "score": 1.0,
        "provenance": a.provenance,
    }


def findings_table(
    db: Session, project: Project, image_ids: list[int] | None = None, *, with_consensus: bool = True
) -> pd.DataFrame:
    """Finished reads (pseudonymous) and finished adjudications of the project (or of ``image_ids``)."""
    query = (
        select(Assignment, Image.image_key, Member.pseudonym)
        .join(Image, Image.id == Assignment.image_id)
        .join(Member, (Member.user_id == Assignment.user_id) & (Member.project_id == Image.project_id))
        .where(Image.project_id == project.id, Assignment.status == "done")
    )
    if image_ids is not None:
        query = query.where(Image.id.in_(image_ids))
    tasks = db.execute(query).all()
    wanted = [t.image_id for t, _, _ in tasks]
    marks: dict[tuple[int, int | None, str], list[Annotation]] = {}
    for chunk in range(0, len(wanted), 500):
        for a in db.scalars(
            select(Annotation).where(
                Annotation.image_id.in_(wanted[chunk : chunk + 500]),
                Annotation.deleted.is_(False),
                Annotation.kind.in_(("read", "consensus")),
            )
        ):
            marks.setdefault((a.image_id, a.user_id, a.kind), []).append(a)
    rows: list[dict[str, Any]] = []
    for task, key, pseudonym in tasks:
        kind = "read" if task.kind == "read" else "consensus"
        if kind == "consensus" and not with_consensus:
            continue
        found = sorted(marks.get((task.image_id, task.user_id, kind), []), key=lambda a: a.id)
        reader = pseudonym if kind == "read" else CONSENSUS
        rows.extend(_row(key, reader, a) for a in found) if found else rows.append(_row(key, reader, None))
    columns = ["image_id", "reader", "label", *BOX_COLUMNS, "score", "provenance"]
    return conform_findings(pd.DataFrame(rows, columns=columns))


def project_tables(db: Session, project: Project) -> Tables:
    return Tables(images_table(db, project), findings_table(db, project))


def export_project(db: Session, project: Project, out: str | Path, *, actor_id: int | None) -> dict[str, Any]:
    """Write the two tables into ``out`` (validated, atomically) and audit the export."""
    tables = project_tables(db, project)
    save_tables(out, tables.images, tables.findings)
    summary = {
        "images": len(tables.images),
        "findings": len(tables.findings),
        "readers": sorted(set(tables.findings["reader"]) - {CONSENSUS}),
        "consensus_images": int(
            tables.findings.loc[tables.findings["reader"] == CONSENSUS, "image_id"].nunique()
        ),
    }
    record(
        db, "export", user_id=actor_id, project_id=project.id, subject=f"project:{project.id}", after=summary
    )
    db.commit()
    return summary


def project_agreement(db: Session, project: Project, iou: float = 0.4) -> dict[str, Any]:
    """Live agreement of the finished reads (Fleiss kappa per label, box F1): ``available`` false until two
    readers have finished one image."""
    findings = findings_table(db, project, with_consensus=False)
    per_image = findings.groupby("image_id")["reader"].nunique() if len(findings) else pd.Series(dtype=int)
    if per_image.empty or per_image.max() < 2:
        return {"available": False, "reason": "no image has two finished reads yet"}
    return {"available": True, **agreement(findings, iou=iou).to_dict()}


def fusion(db: Session, project: Project, image: Image) -> dict[str, Any]:
    """The finished reads of one image, the fusion ``cxrlab.labels.consensus`` proposes,, their agreement."""
    reads = findings_table(db, project, [image.id], with_consensus=False)
    n_readers = int(reads["reader"].nunique())
    out: dict[str, Any] = {
        "readers": sorted(reads["reader"].unique().tolist()),
        "proposed": [],
        "min_readers": n_readers // 2 + 1,
        "agreement": None,
    }
    if n_readers == 0:
        return out
    fused = consensus(
        images_table(db, project, [image.id]),
        reads,
        method=FUSION_METHOD,
        iou=FUSION_IOU,
        min_readers=n_readers // 2 + 1,
    ).findings
    rows = fused[fused["reader"] == CONSENSUS]
    out["proposed"] = [
        {
            "label": r.label,
            "box": None if np.isnan(r.x_min) else [r.x_min, r.y_min, r.x_max, r.y_max],
            "n_readers": None if pd.isna(r.n_readers) else int(r.n_readers),
            "score": float(r.score),
        }
        for r in rows.itertuples()
    ]
    if n_readers >= 2:
        out["agreement"] = agreement(reads, iou=FUSION_IOU).overall
    return out


def reads_of(db: Session, project: Project, image: Image) -> list[dict[str, Any]]:
    """Every finished reader's marks on the image, by pseudonym (for the adjudicator)."""
    reads = findings_table(db, project, [image.id], with_consensus=False)
    return [
        {
            "reader": r.reader,
            "label": r.label,
            "provenance": r.provenance,
            "box": None if np.isnan(r.x_min) else [r.x_min, r.y_min, r.x_max, r.y_max],
        }
        for r in reads.itertuples()
    ]
