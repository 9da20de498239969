"""Read DICOM headers for people: a summary of the tags that decide how an image displays, and a check for
any tag that could identify a patient (a de-identified release such as VinDr-CXR must have none)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from cxrlab.imaging.decoders import infer_transfer_syntax, syntax_name
from cxrlab.imaging.reading import DecodeError, read_dicom

__all__ = ["PhiFinding", "inspect_dicom", "phi_check", "phi_in_dataset"]

IDENTIFYING_KEYWORDS = frozenset(
    {
        "PatientName", "PatientID", "IssuerOfPatientID", "OtherPatientIDs", "OtherPatientIDsSequence",
        "OtherPatientNames", "PatientBirthDate", "PatientBirthTime", "PatientBirthName", "PatientAddress",
        "PatientTelephoneNumbers", "PatientMotherBirthName", "MilitaryRank", "MedicalRecordLocator",
        "PatientComments", "AdditionalPatientHistory", "InstitutionName", "InstitutionAddress",
        "InstitutionalDepartmentName", "ReferringPhysicianName", "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy",
        "PhysiciansOfRecord", "RequestingPhysician", "OperatorsName", "AccessionNumber", "StudyID",
        "StationName", "DeviceSerialNumber", "RequestAttributesSequence", "ResponsiblePerson",
        "ResponsibleOrganization", "PersonName", "ContentCreatorName", "ScheduledPerformingPhysicianName",
    }
)  # fmt: skip
"""Tags of PS3.15's basic de-identification profile that name or point to a person or a place."""
DATE_TIME_VRS = frozenset({"DA", "DT", "TM"})
PSEUDONYM = re.compile(r"[0-9A-F]{24}")
"""The Patient ID ``cxrlab deid`` writes: 24 hex digits of a keyed HMAC, meaningless without the secret."""
SUFFIXES = (".dcm", ".dicom")


@dataclass
class PhiFinding:
    file: str
    tag: str
    keyword: str
    reason: str
    value: str


def _short(value: Any, limit: int = 48) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _walk(ds: Dataset, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for element in ds:
        yield prefix, element
        if element.VR == "SQ" and element.value:
            for i, item in enumerate(element.value):
                yield from _walk(item, f"{prefix}{element.keyword or element.tag}[{i}].")


def _is_pseudonym(ds: Dataset, element: Any) -> bool:
    """A Patient ID that a de-identification declared (Patient Identity Removed YES) and that has the form of
    cxrlab's keyed pseudonym: it links a patient's images without naming the patient."""
    declared = str(ds.get("PatientIdentityRemoved", "")).upper() == "YES"
    return declared and element.keyword == "PatientID" and PSEUDONYM.fullmatch(str(element.value)) is not None


def phi_in_dataset(ds: Dataset, file: str = "") -> list[PhiFinding]:
    """Every element of ``ds`` (sequences included) that could identify a patient, with the reason."""
    found: list[PhiFinding] = []
    for prefix, element in _walk(ds):
        if not prefix and _is_pseudonym(ds, element):
            continue
        keyword = element.keyword or ""
        name = f"{prefix}{keyword or 'private'}"
        tag = f"({element.tag.group:04X},{element.tag.element:04X})"
        empty = element.value in (None, "", b"") or (
            isinstance(element.value, list | tuple) and not element.value
        )
        if element.tag.is_private:
            found.append(PhiFinding(file, tag, name, "private tag (content unknown)", _short(element.repval)))
        elif keyword == "BurnedInAnnotation" and str(element.value).upper() == "YES":
            found.append(PhiFinding(file, tag, name, "text burned into the pixels", "YES"))
        elif empty:
            continue
        elif keyword in IDENTIFYING_KEYWORDS:
            found.append(PhiFinding(file, tag, name, "identifying attribute", _short(element.value)))
        elif element.VR == "PN":
            found.append(PhiFinding(file, tag, name, "person name", _short(element.value)))
        elif element.VR in DATE_TIME_VRS:
            found.append(PhiFinding(file, tag, name, "date or time", _short(element.value)))
    return found


def _dicom_files(folder: Path) -> Iterator[Path]:
    if folder.is_file():
        yield folder
        return
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in SUFFIXES:
            yield path


def phi_check(folder: str | Path) -> tuple[list[PhiFinding], list[str], int]:
    """(findings, unreadable files, files checked) for every .dcm/.dicom under ``folder`` (headers only)."""
    findings: list[PhiFinding] = []
    unreadable: list[str] = []
    checked = 0
    for path in _dicom_files(Path(folder)):
        try:
            ds = read_dicom(path, pixels=False)
            found = phi_in_dataset(ds, str(path))
        except DecodeError as exc:  # cannot be vouched for: the check fails, and goes on with the others
            unreadable.append(str(exc))
            continue
        except Exception as exc:  # pragma: no cover - read_dicom converted every element already
            unreadable.append(f"{path}: not a readable DICOM file ({type(exc).__name__}: {exc})")
            continue
        checked += 1
        findings.extend(found)
    return findings, unreadable, checked


def _get(ds: Dataset, keyword: str) -> Any:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, pydicom.multival.MultiValue):
        return [_plain(v) for v in value]
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, int | float | str | bool):
        return (
            value if not isinstance(value, pydicom.valuerep.DSfloat | pydicom.valuerep.IS) else float(value)
        )
    return str(value)


def _lut_summary(seq: Any) -> list[str] | None:
    if not seq:
        return None
    out = []
    for item in seq:
        d = item.get("LUTDescriptor")
        if d is not None:
            out.append(f"{d[0] or 65536} entries from {d[1]}, {d[2]} bits ({item.get('LUTExplanation', '')})")
    return out


def inspect_dicom(path: str | Path) -> dict[str, Any]:
    """The tags that decide how the image decodes and displays, plus sex/age and a PHI count."""
    path = Path(path)
    ds = read_dicom(path, pixels=True)
    syntax = ds.file_meta.get("TransferSyntaxUID")
    inferred = False
    if not syntax and "PixelData" in ds:
        syntax, inferred = infer_transfer_syntax(ds, path), True
    summary: dict[str, Any] = {
        "file": str(path),
        "bytes": path.stat().st_size,
        "transfer_syntax": str(syntax) if syntax else None,
        "transfer_syntax_name": syntax_name(str(syntax)) if syntax else None,
        "transfer_syntax_inferred": inferred,
        "sop_class": _get(ds, "SOPClassUID") and syntax_name(str(ds.SOPClassUID)),
        "modality": _get(ds, "Modality"),
        "rows": _get(ds, "Rows"),
        "columns": _get(ds, "Columns"),
        "frames": _get(ds, "NumberOfFrames") or (1 if "PixelData" in ds else 0),
        "samples_per_pixel": _get(ds, "SamplesPerPixel"),
        "photometric": _get(ds, "PhotometricInterpretation"),
        "bits_allocated": _get(ds, "BitsAllocated"),
        "bits_stored": _get(ds, "BitsStored"),
        "high_bit": _get(ds, "HighBit"),
        "pixel_representation": _get(ds, "PixelRepresentation"),
        "pixel_spacing": _get(ds, "PixelSpacing") or _get(ds, "ImagerPixelSpacing"),
        "rescale_slope": _get(ds, "RescaleSlope"),
        "rescale_intercept": _get(ds, "RescaleIntercept"),
        "rescale_type": _get(ds, "RescaleType"),
        "modality_lut": _lut_summary(ds.get("ModalityLUTSequence")),
        "window_center": _get(ds, "WindowCenter"),
        "window_width": _get(ds, "WindowWidth"),
        "window_explanation": _get(ds, "WindowCenterWidthExplanation"),
        "voi_lut_function": _get(ds, "VOILUTFunction"),
        "voi_lut": _lut_summary(ds.get("VOILUTSequence")),
        "lossy_compression": _get(ds, "LossyImageCompression"),
        "lossy_ratio": _get(ds, "LossyImageCompressionRatio"),
        "view_position": _get(ds, "ViewPosition"),
        "patient_sex": _get(ds, "PatientSex"),
        "patient_age": _get(ds, "PatientAge"),
        "has_pixel_data": "PixelData" in ds,
        "burned_in_annotation": _get(ds, "BurnedInAnnotation"),
        "identifying_tags": len(phi_in_dataset(ds, str(path))),
    }
    return summary


def finding_dict(finding: PhiFinding) -> dict[str, str]:
    return asdict(finding)
