"""The display pipeline against pydicom's own apply_modality_lut / apply_voi_lut, case by case, and the
folded lookup table against the step-by-step chain."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from imaging_helpers import chest_like, make_dicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import processing as pp
from pydicom.sequence import Sequence

from conftest import realdata_path
from cxrlab.errors import ParameterError
from cxrlab.imaging import dicom as D
from cxrlab.imaging.decoders import decode_pixels, read_dataset


@dataclass
class Case:
    ds: Dataset
    stored: np.ndarray
    index: int = 0
    prefer_lut: bool = True


def _phantom(tmp_path: Path, name: str, stored: np.ndarray, **spec: object) -> Case:
    path = make_dicom(tmp_path, name, stored, **spec)
    ds = read_dataset(path)
    return Case(ds, decode_pixels(ds).pixels)


def _modality_lut_item(bits_stored: int) -> Dataset:
    """A non-linear (square-root) Modality LUT over the whole stored range, 16-bit entries, US data."""
    n = 2**bits_stored
    item = Dataset()
    item.LUTDescriptor = [n, 0, 16]
    item.ModalityLUTType = "OD"
    item.LUTData = np.round(np.sqrt(np.arange(n) / (n - 1)) * 65535).astype(np.uint16).tolist()
    item["LUTData"].VR = "US"
    return item


def _case(kind: str, tmp_path: Path) -> Case:
    u12 = chest_like(96, 80, bits=12, seed=7)
    if kind == "rescale-ct-signed":
        path = get_testdata_file("CT_small.dcm", download=False)
        ds = read_dataset(path)
        ds.WindowCenter, ds.WindowWidth = 40, 400
        return Case(ds, decode_pixels(ds).pixels)
    if kind == "rescale-fractional":
        return _phantom(
            tmp_path, "r.dcm", u12, rescale_slope=0.5, rescale_intercept=-100.0, windows=[(700, 1200)]
        )
    if kind == "modality-lut-sequence":
        case = _phantom(tmp_path, "m.dcm", u12, windows=[(30000, 40000)])
        case.ds.ModalityLUTSequence = Sequence([_modality_lut_item(12)])
        return case
    if kind == "voi-lut-sequence":
        return _phantom(tmp_path, "v.dcm", u12, voi_lut=True, windows=[(2000, 2500)])
    if kind == "voi-lut-sequence-with-rescale":
        return _phantom(tmp_path, "vr.dcm", u12, voi_lut=True, rescale_slope=2.0, rescale_intercept=-1000.0)
    if kind == "window-over-lut-when-asked":
        case = _phantom(tmp_path, "wl.dcm", u12, voi_lut=True, windows=[(2000, 2500)])
        case.prefer_lut = False
        return case
    if kind in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        return _phantom(tmp_path, "w.dcm", u12, windows=[(1800, 1500)], voi_lut_function=kind)
    if kind == "several-windows-first":
        return _phantom(tmp_path, "s.dcm", u12, windows=[(2100, 3000), (600, 400), (3000, 500)])
    if kind == "several-windows-third":
        case = _phantom(tmp_path, "s3.dcm", u12, windows=[(2100, 3000), (600, 400), (3000, 500)])
        case.index = 2
        return case
    if kind == "monochrome1-window":
        return _phantom(tmp_path, "m1.dcm", u12, photometric="MONOCHROME1", windows=[(2000, 3000)])
    if kind == "signed-window":
        s13 = chest_like(90, 70, bits=13, seed=8, signed=True)
        return _phantom(tmp_path, "sw.dcm", s13, bits_stored=13, pixel_representation=1, windows=[(0, 3000)])
    if kind == "signed-rescale-sigmoid-mono1":
        s13 = chest_like(90, 70, bits=13, seed=9, signed=True)
        return _phantom(
            tmp_path, "ss.dcm", s13, bits_stored=13, pixel_representation=1, photometric="MONOCHROME1",
            rescale_slope=1.0, rescale_intercept=-1024.0, windows=[(-500, 2500)], voi_lut_function="SIGMOID",
        )  # fmt: skip
    if kind == "8-bit":
        return _phantom(tmp_path, "e.dcm", chest_like(50, 60, bits=8), bits_stored=8, bits_allocated=8,
                        windows=[(128, 200)])  # fmt: skip
    raise AssertionError(kind)


CASES = [
    "rescale-ct-signed", "rescale-fractional", "modality-lut-sequence", "voi-lut-sequence",
    "voi-lut-sequence-with-rescale", "window-over-lut-when-asked", "LINEAR", "LINEAR_EXACT", "SIGMOID",
    "several-windows-first", "several-windows-third", "monochrome1-window", "signed-window",
    "signed-rescale-sigmoid-mono1", "8-bit",
]  # fmt: skip


def _expected_range(case: Case) -> tuple[float, float]:
    """The display range, worked out here from the standard rather than taken from the code under test."""
    ds = case.ds
    use_lut = bool(ds.get("VOILUTSequence")) and (case.prefer_lut or "WindowCenter" not in ds)
    if use_lut:
        return 0.0, float(2 ** int(ds.VOILUTSequence[case.index].LUTDescriptor[2]) - 1)
    bits = int(ds.BitsStored)
    if ds.get("ModalityLUTSequence"):
        lo, hi = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(ds.PixelRepresentation) == 1:
        lo, hi = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    else:
        lo, hi = 0.0, 2.0**bits - 1
    if "RescaleSlope" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        lo, hi = lo * slope + intercept, hi * slope + intercept
    return lo, hi


@pytest.mark.parametrize("kind", CASES, ids=CASES)
def test_steps_equal_pydicom(kind: str, tmp_path: Path) -> None:
    case = _case(kind, tmp_path)
    ds, arr = case.ds, case.stored
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected_modality = pp.apply_modality_lut(arr, ds)
        expected_voi = pp.apply_voi_lut(expected_modality, ds, case.index, case.prefer_lut)
    modality = D.apply_modality_lut(arr, ds)
    np.testing.assert_array_equal(modality, expected_modality)
    assert modality.dtype == expected_modality.dtype
    voi = D.apply_voi_lut(modality, ds, case.index, case.prefer_lut)
    np.testing.assert_array_equal(voi, expected_voi)
    assert voi.dtype == expected_voi.dtype


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("kind", CASES, ids=CASES)
def test_table_equals_pydicom_chain(kind: str, bits: int, tmp_path: Path) -> None:
    case = _case(kind, tmp_path)
    ds, arr = case.ds, case.stored
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = pp.apply_voi_lut(pp.apply_modality_lut(arr, ds), ds, case.index, case.prefer_lut).astype(
            np.float64
        )
    lo, hi = _expected_range(case)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        y = (lo + hi) - y
    top = 2**bits - 1
    expected = np.clip(np.rint((y - lo) * (top / (hi - lo))), 0, top)
    options = D.DisplayOptions(window_index=case.index, prefer_lut=case.prefer_lut, bits=bits)
    out, applied = D.to_display(arr, ds, options)
    assert out.dtype == (np.uint8 if bits == 8 else np.uint16)
    np.testing.assert_array_equal(out, expected)
    reference, _ = D.display_reference(arr, ds, options)
    np.testing.assert_array_equal(out, reference)
    assert applied.inverted == (ds.PhotometricInterpretation == "MONOCHROME1")
    assert applied.voi in ("lut", "window", "full-range")


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(D.DisplayOptions(voi="none"), id="minmax"),
        pytest.param(
            D.DisplayOptions(voi="none", full_range="percentile", percentiles=(1, 99)), id="percentile"
        ),
        pytest.param(D.DisplayOptions(voi="none", bits=16), id="minmax-16"),
    ],
)
@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_full_range(options: D.DisplayOptions, photometric: str, tmp_path: Path) -> None:
    stored = chest_like(80, 64, bits=12, seed=11)
    case = _phantom(tmp_path, "f.dcm", stored, photometric=photometric, rescale_slope=2.0,
                    rescale_intercept=-50.0, windows=[(100, 10)])  # fmt: skip
    out, applied = D.to_display(case.stored, case.ds, options)
    values = stored.astype(np.float64) * 2 - 50
    if options.full_range == "minmax":
        lo, hi = values.min(), values.max()
    else:
        lo, hi = np.percentile(values, options.percentiles, method="inverted_cdf")
    assert (applied.range_low, applied.range_high) == (lo, hi)
    assert applied.voi == "full-range" and "VOI skipped" in applied.voi_detail
    if photometric == "MONOCHROME1":
        values = lo + hi - values
    top = 2**options.bits - 1
    np.testing.assert_array_equal(out, np.clip(np.rint((values - lo) * (top / (hi - lo))), 0, top))
    if options.full_range == "minmax":
        assert out.min() == 0 and out.max() == top


def test_file_without_voi_uses_full_range(tmp_path: Path) -> None:
    case = _phantom(tmp_path, "n.dcm", chest_like(40, 40, seed=12))
    out, applied = D.to_display(case.stored, case.ds)
    assert applied.voi == "full-range" and "no VOI in the file" in applied.voi_detail
    assert out.min() == 0 and out.max() == 255


@pytest.mark.parametrize("path", ["window", "lut", "full-range"])
def test_monochrome1_shows_air_dark_and_bone_bright(path: str, tmp_path: Path) -> None:
    # MONOCHROME1: the minimum is white, so the X-ray-opaque bone has LOW stored values, air HIGH ones
    stored = np.full((60, 60), 3500, dtype=np.uint16)  # air
    stored[:, 30:] = 600  # bone
    stored += chest_like(60, 60, bits=6, seed=13)  # some texture
    spec: dict[str, object] = {"photometric": "MONOCHROME1"}
    if path == "window":
        spec["windows"] = [(2000, 4000)]
    elif path == "lut":
        spec.update(voi_lut=True, windows=[(2000, 4000)])
    case = _phantom(tmp_path, f"{path}.dcm", stored, **spec)
    out, applied = D.to_display(case.stored, case.ds)
    assert applied.inverted and applied.voi == path
    assert out[:, :30].mean() < 64 and out[:, 30:].mean() > 192


def test_real_monochrome1_file_is_the_inverse_of_its_monochrome2_twin() -> None:
    mono2 = realdata_path("images", "dicom", "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm")
    mono1 = realdata_path("images", "dicom", "Fake_MONOHR1.dcm")
    out2, a2 = D.to_display(decode_pixels(ds2 := read_dataset(mono2)).pixels, ds2)
    out1, a1 = D.to_display(decode_pixels(ds1 := read_dataset(mono1)).pixels, ds1)
    assert a1.inverted and not a2.inverted
    diff = np.abs(out1.astype(np.int16) - (255 - out2.astype(np.int16)))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99  # rounding ties only


def test_invalid_window_falls_back_to_full_range_with_a_note(tmp_path: Path) -> None:
    case = _phantom(tmp_path, "bad.dcm", chest_like(30, 30), windows=[(2000, 3000)])
    case.ds.WindowWidth = 0
    _, applied = D.to_display(case.stored, case.ds)
    assert applied.voi == "full-range"
    assert "Window Width 0 is invalid" in "; ".join(applied.notes)
    with pytest.raises(ValueError):  # pydicom itself refuses it
        pp.apply_voi_lut(case.stored, case.ds)


def test_voi_lut_declared_16_bits_but_12_used(tmp_path: Path) -> None:
    case = _phantom(tmp_path, "l.dcm", chest_like(40, 40, seed=14), voi_lut=True)
    item = case.ds.VOILUTSequence[0]
    item.LUTDescriptor = [item.LUTDescriptor[0], item.LUTDescriptor[1], 16]
    out, applied = D.to_display(case.stored, case.ds)
    assert applied.range_high == 4095 and "use 12 of the 16 bits" in applied.notes[0]
    assert out.max() > 200  # not a near-black image


def test_window_index_out_of_range_is_an_error(tmp_path: Path) -> None:
    case = _phantom(tmp_path, "w2.dcm", chest_like(20, 20), windows=[(2000, 3000), (1000, 500)])
    with pytest.raises(D.DisplayError, match="window 3"):
        D.to_display(case.stored, case.ds, D.DisplayOptions(window_index=2))


def test_options_are_checked() -> None:
    with pytest.raises(ParameterError, match=r"^bits must be 8 or 16 \(got 12\)"):
        D.DisplayOptions(bits=12)
    with pytest.raises(ParameterError, match=r"^percentiles must satisfy 0 <= low < high <= 100"):
        D.DisplayOptions(percentiles=(99, 1))


def test_ow_lut_data_in_big_endian_file(tmp_path: Path) -> None:
    stored = chest_like(40, 40, seed=15)
    path = make_dicom(
        tmp_path, "be.dcm", stored, transfer_syntax=str(pydicom.uid.ExplicitVRBigEndian), voi_lut=True
    )
    ds = read_dataset(path)
    item = ds.VOILUTSequence[0]
    data = np.asarray(item.LUTData, dtype=">u2").tobytes()
    item["LUTData"].VR = "OW"
    item.LUTData = data
    arr = decode_pixels(ds).pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(D.apply_voi_lut(arr, ds), pp.apply_voi_lut(arr, ds))


def _lut_item(n_entries: int, first_map: int, depth: int, entries: np.ndarray) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [n_entries, first_map, depth]
    item.LUTData = entries.tolist()
    item["LUTData"].VR = "US"
    return item


def test_voi_lut_of_8_bit_entries_with_more_than_256_entries(tmp_path: Path) -> None:
    """The index into a 4096-entry LUT must not wrap at 256 because the entries are 8 bits
    (pydicom's apply_voi indexes in the entries' dtype and shows a near-black image)."""
    case = _phantom(tmp_path, "v8.dcm", chest_like(48, 48, bits=12, seed=21))
    entries = (np.arange(4096) // 16).astype(np.uint8)
    case.ds.VOILUTSequence = Sequence([_lut_item(4096, 0, 8, entries)])
    expected = entries[case.stored]
    np.testing.assert_array_equal(D.apply_voi(case.stored, case.ds), expected)
    out, applied = D.to_display(case.stored, case.ds)
    assert applied.range_high == 255
    np.testing.assert_array_equal(out, expected)


def test_luts_with_a_negative_first_value_on_signed_data(tmp_path: Path) -> None:
    """Stored values near the top of int16 minus a negative first value must not wrap around."""
    stored = chest_like(48, 48, bits=16, seed=22, signed=True)
    assert stored.max() > 32767 - 2000
    case = _phantom(tmp_path, "sm.dcm", stored, bits_stored=16, pixel_representation=1)
    entries = (np.arange(4096) * 16).astype(np.uint16)
    index = np.clip(stored.astype(np.int64) + 2000, 0, 4095)
    case.ds.ModalityLUTSequence = Sequence([_lut_item(4096, -2000, 16, entries)])
    np.testing.assert_array_equal(D.apply_modality_lut(case.stored, case.ds), entries[index])
    del case.ds.ModalityLUTSequence
    case.ds.VOILUTSequence = Sequence([_lut_item(4096, -2000, 16, entries)])
    np.testing.assert_array_equal(D.apply_voi(case.stored, case.ds), entries[index])


def test_table_kept_for_a_repeated_header_follows_every_header_change(tmp_path: Path) -> None:
    """A table made once per header (window, rescale, photometric...) is reused, never a stale one: after
    each change the table equals the step-by-step chain of the changed header."""
    case = _phantom(tmp_path, "k.dcm", chest_like(64, 48, bits=12, seed=3), windows=[(2000, 3000)])
    ds, options = case.ds, D.DisplayOptions()
    first, applied = D.display_table(ds, options)
    again, applied_again = D.display_table(ds, options)
    assert np.array_equal(first, again) and applied_again == applied
    applied_again.notes.append("a note of this image only")  # the pipeline appends per-image notes
    assert D.display_table(ds, options)[1].notes == applied.notes
    changes: list[tuple[str, object]] = [
        ("WindowCenter", 1500), ("WindowWidth", 800), ("RescaleSlope", 2.0), ("RescaleIntercept", -500.0),
        ("PhotometricInterpretation", "MONOCHROME1"), ("VOILUTFunction", "SIGMOID"),
    ]  # fmt: skip
    tables = [first]
    for keyword, value in changes:
        setattr(ds, keyword, value)
        if keyword == "RescaleSlope":
            ds.RescaleIntercept = 0.0
        table, _ = D.display_table(ds, options)
        expected, _ = D.display_reference(case.stored, ds, options)
        assert np.array_equal(D.apply_table(case.stored, table), expected), keyword
        assert not any(np.array_equal(table, t) for t in tables), keyword
        tables.append(table)
    assert D.display_table(ds, D.DisplayOptions(bits=16))[0].dtype == np.uint16 != first.dtype
