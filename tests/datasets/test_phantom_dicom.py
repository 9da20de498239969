"""write_dicom: every transfer syntax opens with pydicom and decodes with its own handlers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import config as pydicom_config
from pydicom import uid
from pydicom.filewriter import validate_file_meta
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from cxrlab.datasets.phantom import (
    DEIDENTIFIED_KEYWORDS,
    LOSSLESS_SYNTAXES,
    TRANSFER_SYNTAXES,
    DicomSpec,
    write_dicom,
)

IDENTIFYING = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "StudyDate",
    "InstitutionName",
    "AccessionNumber",
)


@pytest.fixture(autouse=True)
def _strict_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read strictly: an invalid value that pydicom would only warn about fails the test."""
    monkeypatch.setattr(pydicom_config.settings, "reading_validation_mode", pydicom_config.RAISE)


def _image(bits: int, shape: tuple[int, int] = (48, 60), seed: int = 0) -> np.ndarray:
    """A smooth gradient with noise: compressible like a radiograph, spanning the whole stored range."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    smooth = (np.sin(xx / 7.0) + np.cos(yy / 5.0) + 2) / 4
    noisy = np.clip(smooth + rng.normal(0, 0.02, shape), 0, 1)
    noisy.flat[0], noisy.flat[1] = 0.0, 1.0
    return np.round(noisy * ((1 << bits) - 1)).astype(np.uint16)


def _syntax_cases() -> list[pytest.param]:
    cases = []
    for name in TRANSFER_SYNTAXES:
        for bits in (10, 12, 16):
            if name == "jpeg_baseline" and bits != 10:
                continue
            cases.append(pytest.param(name, bits, id=f"{name}-{bits}bit"))
    return cases


@pytest.mark.parametrize(("name", "bits"), _syntax_cases())
def test_every_syntax_decodes_with_pydicom(tmp_path: Path, name: str, bits: int) -> None:
    syntax = TRANSFER_SYNTAXES[name]
    stored = _image(bits)
    spec = DicomSpec(
        transfer_syntax=syntax,
        bits_stored=bits,
        photometric="MONOCHROME1" if bits == 12 else "MONOCHROME2",
        windows=[(float(1 << (bits - 1)), float(1 << bits) * 0.8), (float(1 << (bits - 2)), 300.0)],
        rescale_slope=1.0,
        rescale_intercept=0.0,
        sex="F",
        age="045Y",
    )
    if name == "jpeg_baseline":
        spec.bits_allocated, spec.bits_stored = 8, 8
        stored = (stored >> 2).astype(np.uint8)
    path = tmp_path / f"{name}.dicom"
    write_dicom(path, stored, spec)

    ds = pydicom.dcmread(path)
    validate_file_meta(ds.file_meta, enforce_standard=True)
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert ds.BitsStored == spec.bits_stored and ds.PhotometricInterpretation == spec.photometric
    assert list(ds.WindowCenter) == [1 << (bits - 1), 1 << (bits - 2)] or name == "jpeg_baseline"
    decoded = ds.pixel_array
    assert decoded.shape == stored.shape
    if syntax in LOSSLESS_SYNTAXES:
        np.testing.assert_array_equal(decoded, stored)
        assert "LossyImageCompression" not in ds or ds.LossyImageCompression == "00"
    else:
        err = np.abs(decoded.astype(np.int64) - stored.astype(np.int64))
        assert err.mean() < 0.05 * ((1 << spec.bits_stored) - 1), err.mean()
        assert ds.LossyImageCompression == "01"
        assert float(ds.LossyImageCompressionRatio) > 1
    keywords = {elem.keyword for elem in ds}
    assert keywords <= DEIDENTIFIED_KEYWORDS, keywords - DEIDENTIFIED_KEYWORDS
    assert not any(k in ds for k in IDENTIFYING)


def test_required_syntaxes_are_available() -> None:
    for name in ("explicit_le", "implicit_le", "explicit_be", "rle", "j2k_lossless", "jpegls_lossless"):
        assert name in TRANSFER_SYNTAXES, name
    assert TRANSFER_SYNTAXES["j2k_lossless"] == uid.JPEG2000Lossless


def test_voi_lut_sequence_maps_into_its_output_range(tmp_path: Path) -> None:
    stored = _image(12)
    spec = DicomSpec(
        bits_stored=12, windows=[(1500.0, 2000.0)], voi_lut=True, rescale_slope=0.5, rescale_intercept=-100.0
    )
    write_dicom(tmp_path / "lut.dicom", stored, spec)
    ds = pydicom.dcmread(tmp_path / "lut.dicom")
    descriptor = ds.VOILUTSequence[0].LUTDescriptor
    assert descriptor[2] == 12 and descriptor[0] == len(ds.VOILUTSequence[0].LUTData)
    modality = apply_modality_lut(ds.pixel_array, ds)
    np.testing.assert_allclose(modality, stored * 0.5 - 100)
    shown = apply_voi_lut(modality.astype(np.int32), ds, prefer_lut=True)
    assert shown.min() >= 0 and shown.max() <= 4095
    # a monotone LUT keeps the order of the pixels: brighter stored, brighter shown
    order = np.argsort(modality.ravel(), kind="stable")
    assert np.all(np.diff(shown.ravel()[order].astype(np.int64)) >= 0)


def test_missing_transfer_syntax_quirk(tmp_path: Path) -> None:
    stored = _image(12)
    write_dicom(tmp_path / "q.dicom", stored, DicomSpec(bits_stored=12, omit_transfer_syntax_in_meta=True))
    ds = pydicom.dcmread(tmp_path / "q.dicom")
    assert "TransferSyntaxUID" not in ds.file_meta
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian  # what a reader infers
    np.testing.assert_array_equal(ds.pixel_array, stored)


def test_missing_pixel_data_quirk(tmp_path: Path) -> None:
    write_dicom(tmp_path / "n.dicom", _image(12), DicomSpec(bits_stored=12, omit_pixel_data=True))
    ds = pydicom.dcmread(tmp_path / "n.dicom")
    assert "PixelData" not in ds and ds.Rows == 48


def test_same_input_same_bytes_and_no_temp_left(tmp_path: Path) -> None:
    stored = _image(14)
    spec = DicomSpec(transfer_syntax=TRANSFER_SYNTAXES["j2k_lossless"], bits_stored=14, voi_lut=True)
    write_dicom(tmp_path / "a.dicom", stored, spec)
    write_dicom(tmp_path / "b.dicom", stored, spec)
    assert (tmp_path / "a.dicom").read_bytes() == (tmp_path / "b.dicom").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.dicom", "b.dicom"]


def test_values_outside_bits_stored_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="BitsStored 10"):
        write_dicom(tmp_path / "x.dicom", _image(12), DicomSpec(bits_stored=10))
    assert not list(tmp_path.iterdir())


def test_signed_pixels_round_trip(tmp_path: Path) -> None:
    stored = (_image(12).astype(np.int32) - 2048).astype(np.int16)
    for name in ("explicit_le", "rle", "j2k_lossless"):
        spec = DicomSpec(transfer_syntax=TRANSFER_SYNTAXES[name], bits_stored=12, pixel_representation=1)
        write_dicom(tmp_path / f"{name}.dicom", stored, spec)
        np.testing.assert_array_equal(pydicom.dcmread(tmp_path / f"{name}.dicom").pixel_array, stored)
