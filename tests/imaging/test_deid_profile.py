"""The profiles as data and their walk over one Dataset: actions, sequences, private tags, pseudonyms."""

from __future__ import annotations

import csv
import re

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian

from cxrlab.errors import UsageError
from cxrlab.imaging.deid_profile import (
    PROFILE_DIR,
    ProfileOptions,
    Pseudonymizer,
    apply_profile,
    basic_rules,
    burned_in_reason,
    load_table,
    table_edition,
    vindr_whitelist,
)

KEYS = Pseudonymizer(b"test-secret")


def _dataset() -> Dataset:
    """A small header with PHI at three depths, private tags, an overlay, a curve and a group length."""
    ds = Dataset()
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = "1.2.3.4.5.6"
    ds.StudyInstanceUID = "1.2.3.4.5"
    ds.SeriesInstanceUID = "1.2.3.4.5.1"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN123"
    ds.PatientBirthDate = "19600214"
    ds.PatientSex = "F"
    ds.PatientAge = "063Y"
    ds.StudyDate = "20230105"
    ds.AcquisitionDateTime = "20230105101112.5"
    ds.InstitutionName = "General Hospital"
    ds.ManufacturerModelName = "PX-9000"
    inner = Dataset()
    inner.PersonName = "Smith^Ann"
    inner.ReferencedSOPInstanceUID = "1.2.3.99"
    inner.ReferencedSOPClassUID = DigitalXRayImageStorageForPresentation
    inner.add_new(0x00291010, "LO", "private inside")
    middle = Dataset()
    middle.InstitutionName = "Inner Clinic"
    middle.ContributionDateTime = "20230105120000"
    middle.ReferencedImageSequence = Sequence([inner])
    ds.ContributingEquipmentSequence = Sequence([middle])
    ds.add_new(0x00091001, "LO", "Doe^Jane private")
    ds.add_new(0x60003000, "OW", b"\x01\x02")
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x50000005, "US", 1)
    ds.add_new(0x00080000, "UL", 100)
    ds.PixelData = b"\x00\x01" * 8
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "HOSPITAL_PACS"
    return ds


def test_the_basic_table_names_its_edition_and_holds_every_row() -> None:
    assert table_edition("basic").startswith("DICOM PS3.15 2024b, Table E.1-1")
    rows = load_table("basic")
    assert len(rows) == 621
    assert {r["basic"] for r in rows} <= {"X", "Z", "D", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}
    names = {r["keyword"]: r for r in rows}
    assert names["PatientName"]["basic"] == "Z" and names["StudyInstanceUID"]["basic"] == "U"


def test_compound_actions_and_options_resolve_as_documented() -> None:
    rules = basic_rules(False, False)
    assert rules.actions[0x00080080] == "Z"  # Institution Name X/Z/D
    assert rules.actions[0x00080021] == "X"  # Series Date X/D
    assert rules.actions[0x00081140] == "U"  # Referenced Image Sequence X/Z/U*
    assert rules.actions[0x00100040] == "Z"  # Patient's Sex
    assert rules.private == "X"
    kept = basic_rules(True, True)
    assert kept.actions[0x00100040] == "K" and kept.actions[0x00101010] == "K"
    assert kept.actions[0x00080020] == "C"  # Study Date: shifted
    assert kept.actions[0x00102110] == "X"  # Allergies: C (clean) in the option, free text: basic action


def test_vindr_whitelist_is_the_release_list_plus_identity_and_markers() -> None:
    with open(PROFILE_DIR / "vindr_whitelist.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    kinds = {r["keyword"]: r["kind"] for r in rows}
    assert {k for k, v in kinds.items() if v == "pseudonymised"} == {
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
    }
    release = {k for k, v in kinds.items() if v == "kept"}
    assert {
        "PatientSex",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "PixelData",
        "VOILUTSequence",
    } <= release
    assert "PatientID" not in kinds and "PatientName" not in kinds
    assert 25 <= len(release) <= 35
    assert len(vindr_whitelist()) == len(rows)


def test_pseudonyms_are_keyed_deterministic_and_valid_uids() -> None:
    uid = KEYS.uid("1.2.3.4")
    assert uid == Pseudonymizer(b"test-secret").uid("1.2.3.4")
    assert uid != Pseudonymizer(b"other").uid("1.2.3.4") and uid != KEYS.uid("1.2.3.5")
    assert re.fullmatch(r"2\.25\.[1-9][0-9]*", uid) and len(uid) <= 64
    assert KEYS.patient_id("MRN1") == KEYS.patient_id(" MRN1 ") != KEYS.patient_id("MRN2")
    shifts = {KEYS.day_shift(f"P{i}") for i in range(200)}
    assert min(shifts) >= 1 and max(shifts) <= 3650 and len(shifts) > 150


def _empty(value: object) -> bool:
    return value in (None, "")


def _all_tags(ds: Dataset) -> list[int]:
    tags = []
    for elem in ds:
        tags.append(int(elem.tag))
        if elem.VR == "SQ":
            for item in elem.value:
                tags.extend(_all_tags(item))
    return tags


def test_vindr_keeps_only_the_whitelist_at_every_depth() -> None:
    ds = _dataset()
    counts = apply_profile(ds, ProfileOptions("vindr"), KEYS)
    assert set(_all_tags(ds)) <= vindr_whitelist()
    assert ds.PatientSex == "F" and ds.PatientAge == "063Y"
    assert ds.SOPInstanceUID == KEYS.uid("1.2.3.4.5.6") == ds.file_meta.MediaStorageSOPInstanceUID
    assert ds.StudyInstanceUID == KEYS.uid("1.2.3.4.5")
    assert "SourceApplicationEntityTitle" not in ds.file_meta
    assert ds.PixelData == b"\x00\x01" * 8
    assert counts["private"] == 1 and counts["uids"] == 3 and counts["removed"] > 10


def test_basic_walks_sequences_removes_private_overlays_curves() -> None:
    ds = _dataset()
    counts = apply_profile(ds, ProfileOptions("basic"), KEYS)
    assert _empty(ds.PatientName) and _empty(ds.PatientSex) and "PatientAge" not in ds
    assert ds.PatientID == KEYS.patient_id("MRN123")
    assert _empty(ds.StudyDate) and _empty(ds.AcquisitionDateTime) and _empty(ds.InstitutionName)
    assert ds.ManufacturerModelName == "PX-9000"  # not in the table: kept
    middle = ds.ContributingEquipmentSequence[0]
    assert _empty(middle.InstitutionName) and "ContributionDateTime" not in middle
    inner = middle.ReferencedImageSequence[0]
    assert inner.ReferencedSOPInstanceUID == KEYS.uid("1.2.3.99")
    assert inner.ReferencedSOPClassUID == DigitalXRayImageStorageForPresentation  # a standard UID stays
    assert inner.PersonName == "ANONYMOUS"  # D: a dummy
    assert not any(tag >> 16 & 1 for tag in _all_tags(ds)), "a private tag survived"
    assert not any(0x5000 <= tag >> 16 <= 0x60FF for tag in _all_tags(ds)), "an overlay or curve survived"
    assert 0x00080000 not in ds
    assert ds.PatientIdentityRemoved == "YES" and ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert counts["private"] == 2 and counts["patient_id"] == 1 and counts["dummy"] == 1


def test_retained_dates_move_back_by_one_shift_per_patient() -> None:
    options = ProfileOptions("basic", retain_patient_characteristics=True, retain_dates_shifted=True)
    ds = _dataset()
    apply_profile(ds, options, KEYS)
    shift = KEYS.day_shift("MRN123")
    import datetime as dt

    expected = (dt.date(2023, 1, 5) - dt.timedelta(days=shift)).strftime("%Y%m%d")
    assert ds.StudyDate == expected
    assert ds.AcquisitionDateTime == expected + "101112.5"  # the time of day is kept
    assert ds.ContributingEquipmentSequence[0].ContributionDateTime == expected + "120000"
    assert _empty(ds.PatientBirthDate)  # Z in the option too
    assert ds.PatientSex == "F" and ds.PatientAge == "063Y"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113107", "113108"}


@pytest.mark.filterwarnings("ignore:Invalid value for VR DA")
def test_an_unreadable_date_is_emptied_not_kept() -> None:
    ds = _dataset()
    ds.StudyDate = "2023-01-05"  # not DA: cannot be shifted, so it must not survive as is
    apply_profile(ds, ProfileOptions("basic", retain_dates_shifted=True), KEYS)
    assert _empty(ds.StudyDate)


@pytest.mark.parametrize(
    ("attributes", "held"),
    [
        pytest.param({"BurnedInAnnotation": "YES"}, True, id="burned-in-yes"),
        pytest.param({"BurnedInAnnotation": "NO"}, False, id="burned-in-no"),
        pytest.param({"ImageType": ["DERIVED", "SECONDARY", "SCREEN SAVE"]}, True, id="screen-save"),
        pytest.param({"ImageType": ["DERIVED", "SECONDARY", "SCREEN CAPTURE"]}, True, id="screen-capture"),
        pytest.param({"ImageType": ["DERIVED", "SECONDARY"]}, False, id="derived-secondary"),
        pytest.param({}, False, id="nothing-said"),
    ],
)
def test_burned_in_reason(attributes: dict[str, object], held: bool) -> None:
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    assert (burned_in_reason(ds) is not None) == held


def test_vindr_refuses_the_basic_options() -> None:
    with pytest.raises(UsageError, match=r"profile must be basic for the PS3\.15 options"):
        ProfileOptions("vindr", retain_dates_shifted=True)
    with pytest.raises(UsageError, match=r"^profile must be one of"):
        ProfileOptions("strict")
