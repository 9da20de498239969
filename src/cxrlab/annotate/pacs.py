"""Import from a PACS through DICOMweb (dicomweb-client): QIDO-RS lists the studies that match a filter and
their instances, WADO-RS retrieves each instance as stored (``transfer-syntax=*``, no transcoding).

The retrieved files are kept under ``folder/STUDY/SOP.dcm`` (written atomically) and referenced like any
local original; ``origin`` keeps the study's DICOMweb URL. The image id is the SOP Instance UID. A study date
filter is ``YYYYMMDD`` or a range ``YYYYMMDD-YYYYMMDD`` (QIDO-RS syntax).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from cxrlab.annotate.errors import InvalidInput
from cxrlab.annotate.importer import ImageAdder, ImportReport, finish_import
from cxrlab.annotate.models import Project
from cxrlab.atomic import atomic_path
from cxrlab.imaging.decoders import infer_transfer_syntax
from cxrlab.progress import track

STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"
AS_STORED = (("application/dicom", "*"),)


def _value(item: dict[str, Any], tag: str) -> str:
    try:
        return str(item[tag]["Value"][0])
    except (KeyError, IndexError) as exc:
        raise InvalidInput(f"DICOMweb answer without tag {tag}") from exc


def client_for(url: str) -> Any:
    from dicomweb_client.api import DICOMwebClient

    return DICOMwebClient(url=url.rstrip("/"))


def find_instances(client: Any, study_date: str | None, study_uid: str | None) -> list[tuple[str, str, str]]:
    """(study, series, SOP instance UID) of every instance in the studies matching the filter."""
    filters: dict[str, str] = {}
    if study_date:
        filters["StudyDate"] = study_date
    if study_uid:
        filters["StudyInstanceUID"] = study_uid
    out = []
    for study in client.search_for_studies(search_filters=filters, get_remaining=True):
        uid = _value(study, STUDY_UID)
        for inst in client.search_for_instances(study_instance_uid=uid, get_remaining=True):
            out.append((uid, _value(inst, SERIES_UID), _value(inst, SOP_UID)))
    return sorted(out)


def retrieve(client: Any, uids: tuple[str, str, str], folder: Path) -> Path:
    """One instance as stored in the PACS, saved under ``folder`` (atomically; kept if already there)."""
    study, series, sop = uids
    path = folder / study / f"{sop}.dcm"
    if path.is_file():
        return path
    ds = client.retrieve_instance(study, series, sop, media_types=AS_STORED)
    if not ds.file_meta.get("TransferSyntaxUID"):  # stored without one (a known quirk): inferred as on disk
        ds.file_meta.TransferSyntaxUID = infer_transfer_syntax(ds, f"instance {sop}")
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return path


def import_pacs(
    db: Session,
    project: Project,
    url: str,
    folder: Path,
    *,
    study_date: str | None = None,
    study_uid: str | None = None,
    split: str | None = None,
    progress: bool = False,
    actor_id: int | None = None,
) -> ImportReport:
    """Import the matching studies' instances from a DICOMweb server into ``project``; commits."""
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"pacs {url}: not an http(s) DICOMweb URL")
    client = client_for(url)
    report = ImportReport()
    adder = ImageAdder(db, project, report)
    instances = find_instances(client, study_date, study_uid)
    for uids in track(instances, total=len(instances), description="PACS import", progress=progress):
        if uids[2] in adder.known:
            report.skipped += 1
            continue
        try:
            path = retrieve(client, uids, folder)
        except Exception as exc:  # one failed retrieval is named; the others go on
            report.problems.append(f"{url} instance {uids[2]}: {type(exc).__name__}: {exc}")
            continue
        adder.add(uids[2], path, split or "train", f"{url.rstrip('/')}/studies/{uids[0]}")
    finish_import(db, project, report, actor_id, "pacs")
    return report
