"""Header summary and the patient-identity check, including tags hidden in sequences."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from imaging_helpers import chest_like, make_dicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from cxrlab.datasets.phantom import TRANSFER_SYNTAXES
from cxrlab.imaging.decoders import DecodeError
from cxrlab.imaging.tags import inspect_dicom, phi_check, phi_in_dataset


def test_phantom_is_clean_and_every_identifying_kind_is_found(tmp_path: Path) -> None:
    path = make_dicom(tmp_path, "a.dcm", chest_like(8, 8), sex="F", age="061Y")
    ds = pydicom.dcmread(path)
    assert phi_in_dataset(ds) == []
    ds.PatientID = "12345"
    ds.AcquisitionTime = "101010"
    ds.OperatorsName = ""  # empty type-2 attributes identify nobody
    item = Dataset()
    item.ReferringPhysicianName = "Who^Doctor"  # a name inside a sequence
    ds.ReferencedStudySequence = Sequence([item])
    ds.add_new(0x00291010, "OB", b"\x00\x01")
    ds.BurnedInAnnotation = "YES"
    found = {f.keyword: f.reason for f in phi_in_dataset(ds, "a.dcm")}
    assert found == {
        "PatientID": "identifying attribute",
        "AcquisitionTime": "date or time",
        "ReferencedStudySequence[0].ReferringPhysicianName": "identifying attribute",
        "private": "private tag (content unknown)",
        "BurnedInAnnotation": "text burned into the pixels",
    }


def test_phi_check_walks_a_folder_and_names_unreadable_files(tmp_path: Path) -> None:
    make_dicom(tmp_path / "d" / "sub", "a.dicom", chest_like(8, 8))
    path = make_dicom(tmp_path / "d", "b.dcm", chest_like(8, 8))
    ds = pydicom.dcmread(path)
    ds.PatientBirthDate = "19700101"
    ds.save_as(path)
    (tmp_path / "d" / "junk.dcm").write_bytes(b"")
    findings, unreadable, checked = phi_check(tmp_path / "d")
    assert checked == 2
    assert [(Path(f.file).name, f.keyword) for f in findings] == [("b.dcm", "PatientBirthDate")]
    assert len(unreadable) == 1 and "junk.dcm" in unreadable[0]


def test_inspect_reports_missing_transfer_syntax_as_inferred(tmp_path: Path) -> None:
    syntax = TRANSFER_SYNTAXES["jpegls_lossless"]
    path = make_dicom(tmp_path, "n.dcm", chest_like(16, 12), transfer_syntax=syntax,
                      omit_transfer_syntax_in_meta=True, voi_lut=True)  # fmt: skip
    info = inspect_dicom(path)
    assert (
        info["transfer_syntax"] == TRANSFER_SYNTAXES["jpegls_lossless"] and info["transfer_syntax_inferred"]
    )
    assert info["voi_lut"] and "bits" in info["voi_lut"][0]
    (tmp_path / "nothing.dcm").write_bytes(b"x")
    with pytest.raises(DecodeError, match=r"nothing\.dcm"):
        inspect_dicom(tmp_path / "nothing.dcm")
