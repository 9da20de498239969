"""Fast decoders against pydicom and against the stored originals, on pydicom's own files and phantoms."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from imaging_helpers import chest_like, make_dicom
from pydicom.data import get_testdata_file

from conftest import realdata_path
from cxrlab.datasets.phantom import LOSSLESS_SYNTAXES, TRANSFER_SYNTAXES
from cxrlab.imaging.decoders import DecodeError, decode_pixels, j2k_reduce_level, read_dataset

# small real files shipped in pydicom's wheel: name -> what they cover
LOSSLESS_FILES = {
    "CT_small.dcm": "explicit LE, signed 16-bit, rescale",
    "MR_small.dcm": "explicit LE, signed",
    "MR_small_implicit.dcm": "implicit LE",
    "MR_small_bigendian.dcm": "explicit big endian",
    "MR_small_expb.dcm": "explicit big endian",
    "MR_small_RLE.dcm": "RLE lossless",
    "MR_small_jp2klossless.dcm": "JPEG 2000 lossless, signed",
    "MR_small_jpeg_ls_lossless.dcm": "JPEG-LS lossless, signed",
    "J2K_pixelrep_mismatch.dcm": "J2K codestream unsigned, Pixel Representation signed",
    "image_dfl.dcm": "deflated explicit LE",
    "MR_small_padded.dcm": "pixel data with excess padding",
    "JPEGLSNearLossless_16.dcm": "JPEG-LS near-lossless 16-bit (deterministic decode)",
    "JPEGLSNearLossless_08.dcm": "JPEG-LS near-lossless 8-bit",
    "693_J2KI.dcm": "JPEG 2000 lossy, 14 bits stored, signed",
    "JPEG2000.dcm": "JPEG 2000 lossy, signed",
}
LOSSY_JPEG_FILES = {"JPGExtended.dcm": "JPEG extended 12-bit (IDCTs may differ by 1)"}


def _testdata(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:  # pragma: no cover - the wheel ships these
        pytest.skip(f"{name} is not in this pydicom wheel")
    return str(path)


def _pydicom_pixels(path: str | Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array
    return arr[0] if int(ds.get("NumberOfFrames", 1) or 1) > 1 else arr


@pytest.mark.parametrize("name", list(LOSSLESS_FILES), ids=list(LOSSLESS_FILES))
def test_pydicom_files_decode_exactly_as_pydicom(name: str) -> None:
    path = _testdata(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decoded = decode_pixels(read_dataset(path))
    expected = _pydicom_pixels(path)
    assert decoded.decoder != "pydicom", "a fast path should handle this grey file"
    assert decoded.pixels.dtype.kind == expected.dtype.kind
    assert decoded.pixels.dtype.itemsize == expected.dtype.itemsize
    np.testing.assert_array_equal(decoded.pixels, expected)


SAME_IMAGE = {  # pydicom ships one image in several syntaxes: each must decode to its uncompressed twin
    "MR_small_RLE.dcm": "MR_small.dcm",
    "MR_small_jp2klossless.dcm": "MR_small.dcm",
    "MR_small_jpeg_ls_lossless.dcm": "MR_small.dcm",
    "MR_small_bigendian.dcm": "MR_small.dcm",
    "MR_small_expb.dcm": "MR_small.dcm",
    "MR_small_implicit.dcm": "MR_small.dcm",
    "rtdose_rle_1frame.dcm": "rtdose_1frame.dcm",
    "liver_expb_1frame.dcm": "liver_1frame.dcm",
}


@pytest.mark.parametrize("name", list(SAME_IMAGE), ids=list(SAME_IMAGE))
def test_lossless_pydicom_files_equal_their_uncompressed_original(name: str) -> None:
    original = decode_pixels(read_dataset(_testdata(SAME_IMAGE[name]))).pixels
    np.testing.assert_array_equal(decode_pixels(read_dataset(_testdata(name))).pixels, original)


@pytest.mark.parametrize("name", list(LOSSY_JPEG_FILES), ids=list(LOSSY_JPEG_FILES))
def test_lossy_jpeg_within_one_level_of_pydicom(name: str) -> None:
    path = _testdata(name)
    decoded = decode_pixels(read_dataset(path))
    diff = np.abs(decoded.pixels.astype(np.int32) - _pydicom_pixels(path).astype(np.int32))
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.1


def test_colour_and_32_bit_files_fall_back_to_pydicom() -> None:
    for name in ("SC_rgb_jpeg.dcm", "rtdose_rle_1frame.dcm"):
        path = _testdata(name)
        decoded = decode_pixels(read_dataset(path))
        assert decoded.decoder == "pydicom"
        np.testing.assert_array_equal(decoded.pixels, _pydicom_pixels(path))


def test_real_siim_jpeg_baseline(realdata: Path) -> None:
    path = realdata_path("images", "dicom", "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm")
    decoded = decode_pixels(read_dataset(path))
    assert decoded.pixels.shape == (1024, 1024) and decoded.pixels.dtype == np.uint8
    diff = np.abs(decoded.pixels.astype(np.int16) - _pydicom_pixels(path).astype(np.int16))
    assert diff.max() <= 1  # lossy: libjpeg-turbo and pydicom's plugin round a few IDCT outputs apart


LOSSLESS = sorted(name for name, uid in TRANSFER_SYNTAXES.items() if uid in LOSSLESS_SYNTAXES)


@pytest.mark.parametrize("syntax", LOSSLESS, ids=LOSSLESS)
def test_phantom_lossless_bit_identical(syntax: str, tmp_path: Path) -> None:
    stored = chest_like(301, 257, bits=12, seed=1)  # odd sizes catch stride and padding errors
    path = make_dicom(
        tmp_path, f"{syntax}.dcm", stored, transfer_syntax=TRANSFER_SYNTAXES[syntax], bits_stored=12
    )
    decoded = decode_pixels(read_dataset(path))
    assert decoded.decoder != "pydicom"
    assert decoded.pixels.dtype == np.uint16
    np.testing.assert_array_equal(decoded.pixels, stored)
    np.testing.assert_array_equal(decoded.pixels, _pydicom_pixels(path))


SIGNED_OK = [
    s for s in ("explicit_le", "explicit_be", "rle", "jpegls_lossless", "j2k_lossless") if s in LOSSLESS
]


@pytest.mark.parametrize("syntax", SIGNED_OK, ids=SIGNED_OK)
def test_phantom_signed_pixels_bit_identical(syntax: str, tmp_path: Path) -> None:
    stored = chest_like(64, 80, bits=13, seed=2, signed=True)
    assert stored.min() < 0
    path = make_dicom(
        tmp_path,
        f"s_{syntax}.dcm",
        stored,
        transfer_syntax=TRANSFER_SYNTAXES[syntax],
        bits_stored=13,
        pixel_representation=1,
    )
    decoded = decode_pixels(read_dataset(path))
    assert decoded.pixels.dtype == np.int16
    np.testing.assert_array_equal(decoded.pixels, stored)


def test_unused_high_bits_are_cleared_like_pydicom(tmp_path: Path) -> None:
    stored = chest_like(40, 50, bits=12, seed=3)
    path = make_dicom(tmp_path, "garbage_bits.dcm", stored, bits_stored=12)
    ds = pydicom.dcmread(path)
    dirty = stored | np.uint16(0xA000)  # overlay-like bits above Bits Stored
    ds.PixelData = dirty.tobytes()
    ds.save_as(path)
    decoded = decode_pixels(read_dataset(path))
    np.testing.assert_array_equal(decoded.pixels, stored)
    np.testing.assert_array_equal(decoded.pixels, _pydicom_pixels(path))


INFERRABLE = [
    s for s in ("explicit_le", "implicit_le", "explicit_be", "rle", "jpegls_lossless", "j2k_lossless",
                "jpeg_lossless_sv1", "htj2k_lossless") if s in TRANSFER_SYNTAXES
]  # fmt: skip


@pytest.mark.parametrize("syntax", INFERRABLE, ids=INFERRABLE)
def test_missing_transfer_syntax_is_inferred(syntax: str, tmp_path: Path) -> None:
    stored = chest_like(48, 40, bits=12, seed=4)
    uid = TRANSFER_SYNTAXES[syntax]
    path = make_dicom(
        tmp_path, f"nots_{syntax}.dcm", stored, transfer_syntax=uid, omit_transfer_syntax_in_meta=True
    )
    assert "TransferSyntaxUID" not in pydicom.dcmread(path).file_meta
    decoded = decode_pixels(read_dataset(path))
    assert decoded.syntax_inferred
    np.testing.assert_array_equal(decoded.pixels, stored)
    if syntax == "htj2k_lossless":
        assert decoded.transfer_syntax.startswith("1.2.840.10008.1.2.4.20")
    elif syntax.startswith(("explicit", "implicit", "j2k", "jpegls", "rle")):
        assert decoded.transfer_syntax == uid
    assert "TransferSyntaxUID" not in pydicom.dcmread(path).file_meta  # inferred in memory only


def test_missing_pixel_data_is_a_clear_error(tmp_path: Path) -> None:
    path = make_dicom(tmp_path, "nopix.dicom", chest_like(16, 16), omit_pixel_data=True)
    with pytest.raises(DecodeError, match=r"nopix\.dicom: the file has no Pixel Data"):
        read_dataset(path)


@pytest.mark.parametrize(
    "content",
    [pytest.param(b"not a dicom at all" * 50, id="garbage"), pytest.param(b"", id="empty")],
)
def test_unreadable_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.dcm"
    path.write_bytes(content)
    with pytest.raises(DecodeError, match=r"broken\.dcm"):
        read_dataset(path)


def test_truncated_compressed_file_fails_with_its_name(tmp_path: Path) -> None:
    path = make_dicom(
        tmp_path, "cut.dcm", chest_like(64, 64), transfer_syntax=TRANSFER_SYNTAXES["jpegls_lossless"]
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match=r"cut\.dcm"):
        decode_pixels(read_dataset(path), path=path)


@pytest.mark.parametrize(
    ("size", "target", "levels", "expected"),
    [
        ((2500, 2048), (1024, 1024), 5, 1),  # half is 1250 x 1024: still >= target
        ((3000, 3000), (512, 512), 5, 2),  # 750 >= 512, 375 < 512
        ((3000, 3000), (512, 512), 1, 1),  # limited by the decomposition levels in the codestream
        ((1000, 1000), (1024, 1024), 5, 0),  # enlarging: full resolution
        ((2049, 2049), (1025, 1025), 5, 1),  # ceil(2049 / 2) = 1025: just enough
    ],
)
def test_j2k_reduce_level(size: tuple[int, int], target: tuple[int, int], levels: int, expected: int) -> None:
    level = j2k_reduce_level(*size, *target, levels)
    assert level == expected
    assert level == 0 or (
        math.ceil(size[0] / 2**level) >= target[0] and math.ceil(size[1] / 2**level) >= target[1]
    )


@pytest.mark.parametrize(
    "syntax", [s for s in ("j2k_lossless", "j2k", "htj2k_lossless") if s in TRANSFER_SYNTAXES]
)
def test_j2k_reduced_resolution_matches_area_resize(syntax: str, tmp_path: Path) -> None:
    stored = chest_like(600, 520, bits=12, seed=5)
    path = make_dicom(tmp_path, f"r_{syntax}.dcm", stored, transfer_syntax=TRANSFER_SYNTAXES[syntax])
    decoded = decode_pixels(read_dataset(path), target=(128, 128))
    assert decoded.reduce == 2
    assert decoded.pixels.shape == (150, 130)
    area = cv2.resize(stored, (130, 150), interpolation=cv2.INTER_AREA).astype(np.float64)
    error = np.abs(decoded.pixels.astype(np.float64) - area)
    assert np.median(error) < 0.01 * 4095  # the wavelet low band is a smoothed half-size image


@pytest.mark.parametrize("bits", [12, 15])
def test_signed_jpeg_lossless_is_sign_extended_like_pydicom(bits: int, tmp_path: Path) -> None:
    """A signed image in JPEG lossless: the codestream holds the two's-complement bit patterns at
    ``bits`` precision; libjpeg-turbo returns them unsigned, pydicom sign-extends (so must we)."""
    import imagecodecs
    from pydicom.encaps import encapsulate

    stored = chest_like(40, 48, bits=bits, seed=31, signed=True)
    assert stored.min() < 0
    ds = read_dataset(make_dicom(tmp_path, "s.dcm", stored, bits_stored=bits, pixel_representation=1))
    patterns = stored.view(np.uint16) & np.uint16(2**bits - 1)
    ds.PixelData = encapsulate([imagecodecs.ljpeg_encode(patterns, bitspersample=bits)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGLosslessSV1
    decoded = decode_pixels(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(ds.pixel_array, stored)  # the case is what we think it is
    np.testing.assert_array_equal(decoded.pixels, stored)


@pytest.mark.parametrize(
    ("fragments", "offset_table", "delimited"),
    [(1, False, False), (1, True, False), (1, False, True), (2, False, False), (3, True, False)],
)
def test_first_frame_view_equals_pydicoms_frame(fragments: int, offset_table: bool, delimited: bool) -> None:
    """The codestream taken without a copy from a single-fragment frame is pydicom's frame; other layouts
    (several fragments) are left to pydicom."""
    from pydicom.encaps import encapsulate, generate_frames

    from cxrlab.imaging.decoders import SEQUENCE_DELIMITER, _first_frame, _single_fragment

    frame = bytes(np.random.default_rng(fragments).integers(0, 256, 1001, dtype=np.uint8)) + b"\xff\xd9"
    data = encapsulate([frame], fragments_per_frame=fragments, has_bot=offset_table)
    data += SEQUENCE_DELIMITER + b"\0\0\0\0" if delimited else b""
    expected = next(generate_frames(data, number_of_frames=1))
    view = _single_fragment(data)
    assert (view is not None) == (fragments == 1)
    ds = pydicom.Dataset()
    ds.PixelData = data
    assert bytes(_first_frame(ds)) == expected
    assert _single_fragment(data[:-3] if not delimited else data[:-11]) is None  # a cut fragment
