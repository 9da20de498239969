"""A phantom hospital export: chest radiograph DICOMs full of realistic, entirely fake patient information.

What de-identification has to find, the way a PACS export holds it: names (with diacritics, UTF-8), birth
dates, medical record numbers and their issuers, addresses, phone numbers, institution, physicians and
operators, accession and study ids, dates and times at every level, instance UIDs under a hospital root,
PHI inside sequences (request attributes, other patient ids, contributing equipment, a source image
reference), private tags (a vendor block with the patient's name, one inside a sequence), a source AE title
in the file meta, and folder names made of patient ids and dates. Each patient has several studies, each
study one or two series of one or two images, in several transfer syntaxes (uncompressed, JPEG 2000,
JPEG lossless, RLE, JPEG-LS where installed). Two files have text drawn into the pixels: one says so with
``BurnedInAnnotation`` YES, the other is a secondary-capture screen save (image type ``SCREEN SAVE``).

Pixels come from :func:`render_chest` and are encoded by :func:`write_dicom`; the header is then completed
here. Every value is decided by the seed: the same seed writes byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from cxrlab.atomic import atomic_path
from cxrlab.datasets.phantom.anatomy import render_chest
from cxrlab.datasets.phantom.common import PhantomResult, check_images_and_size, finish_output, prepare_output
from cxrlab.datasets.phantom.dicom_writer import TRANSFER_SYNTAXES, DicomSpec, write_dicom
from cxrlab.progress import track

__all__ = ["HOSPITAL_SYNTAXES", "make_hospital"]

KIND = "hospital"
HOSPITAL_ROOT = "1.2.826.0.1.3680043.10.1583.99."  # a demo root: no real hospital's UIDs
HOSPITAL_SYNTAXES = [
    name
    for name in (
        "explicit_le",
        "j2k_lossless",
        "jpeg_lossless_sv1",
        "implicit_le",
        "rle",
        "j2k",
        "jpegls_lossless",
    )
    if name in TRANSFER_SYNTAXES
]
"""The syntaxes the hospital's files cycle through (those the installed encoders can write)."""

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Smith", "García", "Müller", "O'Brien", "Kowalski", "Haddad"]
GIVEN = ["Văn An", "Thị Bích", "Minh Đức", "John", "María José", "Jürgen", "Siobhán", "Anna", "Omar", "Linh"]
STREETS = ["12 Lý Thường Kiệt, Hà Nội", "4 Elm Street, Springfield", "88 Calle Mayor, Madrid"]
PHYSICIANS = ["Hoàng^Quốc Bảo^^Dr.", "Chen^Wei^^Dr.", "Okafor^Ngozi^^Dr.", "Lindqvist^Erik^^Dr."]
OPERATORS = ["Vũ^Thu", "Brown^Kelly", "Rossi^Marco"]


@dataclass(frozen=True)
class Patient:
    name: str
    mrn: str
    birth: dt.date
    sex: str
    address: str
    phone: str
    mother: str
    size_m: float
    weight_kg: int


def _uid(rng: np.random.Generator) -> str:
    return HOSPITAL_ROOT + str(int(rng.integers(10**15, 10**16))) + "." + str(int(rng.integers(1, 10**6)))


def _patient(rng: np.random.Generator, number: int) -> Patient:
    family, given = FAMILY[int(rng.integers(len(FAMILY)))], GIVEN[int(rng.integers(len(GIVEN)))]
    birth = dt.date(1935, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 70)))
    return Patient(
        name=f"{family}^{given}",
        mrn=f"MRN{number + 1:02d}{int(rng.integers(10**5, 10**6))}",
        birth=birth,
        sex="MF"[int(rng.integers(2))],
        address=STREETS[int(rng.integers(len(STREETS)))],
        phone=f"+84 24 {int(rng.integers(1000, 9999))} {int(rng.integers(1000, 9999))}",
        mother=f"{FAMILY[int(rng.integers(len(FAMILY)))]}^{GIVEN[int(rng.integers(len(GIVEN)))]}",
        size_m=round(float(rng.uniform(1.5, 1.9)), 2),
        weight_kg=int(rng.integers(45, 100)),
    )


def _age(birth: dt.date, on: dt.date) -> str:
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return f"{years:03d}Y"


@dataclass(frozen=True)
class Slot:
    """One image to write: who, which study/series, and what is special about it."""

    patient: Patient
    study_uid: str
    study_date: dt.date
    accession: str
    series_uid: str
    series_number: int
    frame_uid: str
    instance: int
    syntax: str
    special: str = ""  # "", "burned-in" or "screen-save"


def _plan(rng: np.random.Generator, patients: int) -> list[Slot]:
    slots: list[Slot] = []
    for p in range(patients):
        patient = _patient(rng, p)
        first_date = dt.date(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 8)))
        for s in range(2):
            study_date = first_date + dt.timedelta(days=int(rng.integers(30, 400)) * s)
            study_uid, accession = _uid(rng), f"ACC{int(rng.integers(10**7, 10**8))}"
            for series in range(1, 1 + 1 + (p + s) % 2):
                series_uid, frame_uid = _uid(rng), _uid(rng)
                for instance in range(1, 1 + 1 + (p + series) % 2):
                    syntax = HOSPITAL_SYNTAXES[len(slots) % len(HOSPITAL_SYNTAXES)]
                    slots.append(Slot(patient, study_uid, study_date, accession, series_uid, series,
                                      frame_uid, instance, syntax))  # fmt: skip
    first = slots[0]
    for number, special in ((90, "burned-in"), (91, "screen-save")):
        slots.append(Slot(first.patient, first.study_uid, first.study_date, first.accession, _uid(rng),
                          number, _uid(rng), 1, "explicit_le", special))  # fmt: skip
    return slots


def _pixels(rng: np.random.Generator, size: int, slot: Slot, bits: int) -> np.ndarray:
    image = render_chest(rng, size, [])
    stored = np.round(image * ((1 << bits) - 1)).astype(np.uint16 if bits > 8 else np.uint8)
    if slot.special:
        top = (1 << bits) - 1
        scale = max(size / 512, 0.3)
        text = [slot.patient.name.encode("ascii", "replace").decode(), slot.patient.mrn,
                slot.patient.birth.strftime("%d/%m/%Y")]  # fmt: skip
        mask = np.zeros(stored.shape, np.uint8)  # OpenCV draws text on 8-bit images only
        for i, line in enumerate(text):
            org = (int(10 * scale), int((30 + 28 * i) * scale))
            cv2.putText(mask, line, org, cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, 255, max(1, int(2 * scale)))
        stored[mask > 0] = top
    return stored


def _spec(slot: Slot, sop_uid: str, bits: int) -> DicomSpec:
    screen = slot.special == "screen-save"
    return DicomSpec(
        transfer_syntax=TRANSFER_SYNTAXES[slot.syntax],
        bits_stored=bits,
        bits_allocated=8 if screen else 16,
        windows=[] if screen else [((1 << bits) / 2, (1 << bits) * 0.8)],
        sex=slot.patient.sex,
        age=_age(slot.patient.birth, slot.study_date),
        sop_class="SC" if screen else ("DX" if slot.series_number % 2 else "CR"),
        sop_instance_uid=sop_uid,
        study_instance_uid=slot.study_uid,
        series_instance_uid=slot.series_uid,
    )


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _add_patient(ds: Dataset, patient: Patient, rng: np.random.Generator) -> None:
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = patient.name
    ds.PatientID = patient.mrn
    ds.IssuerOfPatientID = "SAINT GENEVIEVE HOSPITAL"
    ds.PatientBirthDate = patient.birth.strftime("%Y%m%d")
    ds.PatientSize = f"{patient.size_m:.2f}"
    ds.PatientWeight = str(patient.weight_kg)
    ds.PatientAddress = patient.address
    ds.PatientTelephoneNumbers = patient.phone
    ds.PatientMotherBirthName = patient.mother
    ds.OtherPatientNames = patient.name.upper()
    ds.EthnicGroup = "KINH"
    ds.PatientComments = f"Lives with daughter; call {patient.phone} before discharge"
    ds.AdditionalPatientHistory = "Smoker 20 pack-years. Admitted via ER by Dr. Chen."
    other = Dataset()
    other.PatientID, other.IssuerOfPatientID = f"OLD{patient.mrn[3:]}", "CITY CLINIC"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.PatientIdentityRemoved = "NO"
    ds.ReferencedPatientSequence = Sequence([_reference("1.2.840.10008.3.1.2.1.1", _uid(rng))])


def _reference(sop_class: str, sop_uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_uid
    return item


def _add_study(ds: Dataset, slot: Slot, rng: np.random.Generator) -> None:
    date = slot.study_date.strftime("%Y%m%d")
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = ds.InstanceCreationDate = date
    ds.StudyTime, ds.SeriesTime = "081512.250000", f"08{20 + slot.series_number % 30:02d}03"
    ds.AcquisitionTime = ds.ContentTime = ds.InstanceCreationTime = f"08{21 + slot.series_number % 30:02d}44"
    ds.AccessionNumber = slot.accession
    ds.StudyID = f"S{slot.accession[-5:]}"
    ds.StudyDescription = "XR CHEST PA AND LATERAL"
    ds.ReferringPhysicianName = PHYSICIANS[int(rng.integers(len(PHYSICIANS)))]
    ds.NameOfPhysiciansReadingStudy = PHYSICIANS[int(rng.integers(len(PHYSICIANS)))]
    ds.PhysiciansOfRecord = PHYSICIANS[0]
    ds.PerformingPhysicianName = PHYSICIANS[1]
    ds.OperatorsName = OPERATORS[int(rng.integers(len(OPERATORS)))]
    ds.InstitutionName = "Saint Geneviève Hospital"
    ds.InstitutionAddress = "1 Hospital Road, Hà Nội"
    ds.InstitutionalDepartmentName = "Radiology - Ward 7B"
    ds.StationName = "XR-ROOM3"
    ds.Manufacturer, ds.ManufacturerModelName = "Phantom Medical", "PX-9000"
    ds.DeviceSerialNumber = f"SN{int(rng.integers(10**6, 10**7))}"
    request = Dataset()
    request.RequestedProcedureID = f"RP{slot.accession[-6:]}"
    request.ScheduledProcedureStepID = f"SPS{slot.accession[-6:]}"
    request.AccessionNumber = slot.accession
    request.RequestedProcedureDescription = "Chest X-ray: rule out pneumonia"
    block = request.private_block(0x0033, "PHANTOM RIS 1.0", create=True)
    block.add_new(0x01, "LO", slot.patient.name)
    ds.RequestAttributesSequence = Sequence([request])
    ds.ReferencedStudySequence = Sequence([_reference("1.2.840.10008.3.1.2.3.1", slot.study_uid)])
    ds.ProcedureCodeSequence = Sequence([_code("CXR2V", "99SGH", "XR CHEST 2 VIEWS")])


def _add_series(ds: Dataset, slot: Slot, source_uid: str | None) -> None:
    ds.SeriesNumber = slot.series_number
    ds.InstanceNumber = slot.instance
    ds.SeriesDescription = f"PA chest {slot.patient.mrn}"
    ds.ProtocolName = "CHEST PA Ward 7B"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.FrameOfReferenceUID = slot.frame_uid
    ds.ImageComments = f"Portable, patient {slot.patient.name.split('^')[0]} uncooperative"
    ds.PerformedProcedureStepStartDate = slot.study_date.strftime("%Y%m%d")
    ds.PerformedProcedureStepID = f"PPS{slot.accession[-5:]}"
    ds.AnatomicRegionSequence = Sequence([_code("T-D3000", "SRT", "Chest")])
    equipment = Dataset()
    equipment.Manufacturer = "Phantom Router"
    equipment.InstitutionName = "Saint Geneviève Hospital"
    equipment.StationName = "PACS-GW1"
    equipment.OperatorsName = OPERATORS[0]
    equipment.ContributionDateTime = slot.study_date.strftime("%Y%m%d") + "101500"
    equipment.ContributionDescription = "Forwarded by gateway for Dr. Chen"
    ds.ContributingEquipmentSequence = Sequence([equipment])
    if source_uid is not None:
        ds.SourceImageSequence = Sequence([_reference(str(ds.SOPClassUID), source_uid)])
    block = ds.private_block(0x0009, "PHANTOM PACS 2.1", create=True)
    block.add_new(0x01, "LO", slot.patient.name)
    block.add_new(0x02, "DA", slot.patient.birth.strftime("%Y%m%d"))
    block.add_new(0x03, "OB", f"MRN={slot.patient.mrn};ward=7B".encode())


def _add_special(ds: Dataset, slot: Slot) -> None:
    if slot.special == "burned-in":
        ds.BurnedInAnnotation = "YES"
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
    elif slot.special == "screen-save":
        ds.ImageType = ["DERIVED", "SECONDARY", "SCREEN SAVE"]
        ds.ConversionType = "WSD"
        ds.DateOfSecondaryCapture = slot.study_date.strftime("%Y%m%d")
    else:
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.BurnedInAnnotation = "NO"


def _write(path: Path, slot: Slot, rng: np.random.Generator, size: int, previous: str | None) -> str:
    """Write one file; returns its SOP Instance UID."""
    sop_uid = _uid(rng)
    bits = 8 if slot.special == "screen-save" else 12
    stored = _pixels(rng, size, slot, bits)
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain.dcm"
        write_dicom(plain, stored, _spec(slot, sop_uid, bits))
        ds = pydicom.dcmread(plain)
    _add_patient(ds, slot.patient, rng)
    _add_study(ds, slot, rng)
    _add_series(ds, slot, previous)
    _add_special(ds, slot)
    ds.InstanceCreatorUID = HOSPITAL_ROOT + "1"
    ds.IrradiationEventUID = _uid(rng)
    ds.file_meta.SourceApplicationEntityTitle = "SGH_PACS"
    with atomic_path(path) as out, open(out, "wb") as fh:
        ds.save_as(fh, enforce_file_format=True)
    return sop_uid


def make_hospital(out: str | Path, patients: int = 3, seed: int = 0, size: int = 256,
                  progress: bool = False) -> PhantomResult:  # fmt: skip
    """Write the phantom hospital export into ``out`` (``<MRN>/<date>_<accession>/<series>/IM<n>.dcm``)."""
    check_images_and_size(patients, size, "patients")
    root = Path(out)
    prepare_output(root, KIND)
    rng = np.random.default_rng(seed)
    slots = _plan(rng, patients)
    files: list[Path] = []
    previous: dict[str, str] = {}
    for slot in track(slots, total=len(slots), description="hospital DICOMs", progress=progress):
        folder = (
            root / slot.patient.mrn / f"{slot.study_date:%Y%m%d}_{slot.accession}" / f"{slot.series_number}"
        )
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"IM{slot.instance:04d}.dcm"
        previous[slot.series_uid] = _write(path, slot, rng, size, previous.get(slot.series_uid))
        files.append(path)
    finish_output(root, KIND, files, seed, len(files))
    syntaxes: dict[str, int] = {}
    for slot in slots:
        syntaxes[slot.syntax] = syntaxes.get(slot.syntax, 0) + 1
    summary = {
        "dataset": KIND,
        "files": len(files),
        "patients": patients,
        "studies": len({s.study_uid for s in slots}),
        "series": len({s.series_uid for s in slots}),
        "transfer_syntaxes": syntaxes,
        "burned_in_text": "2 (BurnedInAnnotation YES; a secondary-capture screen save)",
    }
    return PhantomResult(root=root, n_images=len(files), files=files, summary=summary)
