"""Decode the stored pixel values of one DICOM frame with the fastest decoder installed for its syntax.

pydicom's default plugins are correct but slow for large radiographs (measured on 2500 px chest images):
CharLS through imagecodecs is ~4x faster than pylibjpeg for JPEG-LS, libjpeg-turbo ~5x for JPEG lossless,
pylibjpeg-rle ~6x for RLE, and OpenJPEG can skip wavelet resolution levels of a JPEG 2000 when a small
output is wanted. :data:`FAST_DECODERS` says which package serves which syntax. Each fast path returns
exactly what ``ds.pixel_array`` returns (same dtype, same unused-bit and sign corrections), and anything a
fast path does not handle (colour, multi-sample, 1- or 32-bit data, a decoder error) falls back to pydicom;
a fast decoder that is not installed is a :class:`MissingDecoderWarning` and a note in the manifest, never
a silent fallback. Files whose meta lacks the Transfer Syntax UID (a real VinDr-CXR quirk) get it inferred
from the encoding of the dataset and, for encapsulated data, from the codestream's own markers.
"""

from __future__ import annotations

import functools
import importlib
import io
import math
import os
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from pydicom import uid as _uid
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from cxrlab.imaging.reading import DecodeError, read_dicom

ITEM_TAG = b"\xfe\xff\x00\xe0"
"""(FFFE,E000) little endian: an item of encapsulated Pixel Data."""
SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0"
J2K_HEAD = 4096
"""Bytes of a JPEG 2000 codestream searched first for its SIZ and COD markers (its main header)."""

__all__ = [
    "FAST_DECODERS",
    "DecodeError",
    "Decoded",
    "FastDecoder",
    "MissingDecoderWarning",
    "decode_pixels",
    "infer_transfer_syntax",
    "j2k_reduce_level",
    "missing_fast_decoders",
    "read_dataset",
    "syntax_name",
    "transfer_syntax",
]

NATIVE_LE = {str(_uid.ExplicitVRLittleEndian), str(_uid.ImplicitVRLittleEndian)}
DEFLATED = str(_uid.DeflatedExplicitVRLittleEndian)
BIG_ENDIAN = str(_uid.ExplicitVRBigEndian)
JPEG_FAMILY = {
    str(_uid.JPEGBaseline8Bit),
    str(_uid.JPEGExtended12Bit),
    str(_uid.JPEGLossless),
    str(_uid.JPEGLosslessSV1),
}
JPEG_LS = {str(_uid.JPEGLSLossless), str(_uid.JPEGLSNearLossless)}
JPEG_2000 = {str(_uid.JPEG2000Lossless), str(_uid.JPEG2000)}
HTJ2K = {str(_uid.HTJ2KLossless), str(_uid.HTJ2KLosslessRPCL), str(_uid.HTJ2K)}
RLE = str(_uid.RLELossless)


@dataclass(frozen=True)
class FastDecoder:
    """The package that decodes a family of transfer syntaxes fastest (measured: see the module docstring)."""

    family: str
    syntaxes: frozenset[str]
    module: str
    """Import name; its absence means the slower pydicom plugin is used, with a warning and a note."""
    package: str
    """What to ``pip install``."""


FAST_DECODERS = (
    FastDecoder("uncompressed", frozenset(NATIVE_LE | {BIG_ENDIAN}), "numpy", "numpy"),
    FastDecoder("deflate", frozenset({DEFLATED}), "imagecodecs", "imagecodecs (libdeflate)"),
    FastDecoder("JPEG", frozenset(JPEG_FAMILY), "imagecodecs", "imagecodecs (libjpeg-turbo)"),
    FastDecoder("JPEG-LS", frozenset(JPEG_LS), "imagecodecs", "imagecodecs (CharLS)"),
    FastDecoder("JPEG 2000", frozenset(JPEG_2000), "imagecodecs", "imagecodecs (OpenJPEG)"),
    FastDecoder("JPEG 2000 reduced", frozenset(JPEG_2000), "PIL", "Pillow (OpenJPEG, reduced)"),
    FastDecoder("HTJ2K", frozenset(HTJ2K), "imagecodecs", "imagecodecs (OpenJPH)"),
    FastDecoder("RLE", frozenset({RLE}), "rle", "pylibjpeg-rle"),
)
"""Which package serves which transfer syntax: the one table; :func:`missing_fast_decoders` checks it."""


class MissingDecoderWarning(UserWarning):
    """A fast decoder is not installed: pydicom's plugin decodes instead, correctly but slower."""


@functools.cache
def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def missing_fast_decoders(syntax: str) -> list[FastDecoder]:
    """The fast decoders of ``syntax`` that are not installed (warned once per package)."""
    missing = [d for d in FAST_DECODERS if syntax in d.syntaxes and not _importable(d.module)]
    for decoder in missing:
        _warn_once(decoder.package, decoder.family)
    return missing


@functools.cache
def _warn_once(package: str, family: str) -> None:
    warnings.warn(
        f"{package} is not installed: {family} files are decoded by pydicom's plugin, correctly but slower",
        MissingDecoderWarning,
        stacklevel=3,
    )


class HeaderMismatch(ValueError):
    """The codestream's own size differs from the header's Rows x Columns."""


@dataclass
class Decoded:
    """Stored values of frame 0 and how they were obtained.

    ``pixels``: (rows, cols) at full resolution, or about ``2**-reduce`` of it for a JPEG 2000 decoded at a
    reduced resolution level; dtype as pydicom gives it (uint8/16 or int8/16 after Pixel Representation).
    """

    pixels: np.ndarray
    transfer_syntax: str
    syntax_inferred: bool
    decoder: str
    reduce: int = 0
    frames: int = 1
    notes: list[str] = field(default_factory=list)


def syntax_name(uid: str) -> str:
    """Human name of a transfer syntax UID (``JPEG-LS Lossless Image Compression``), or the UID itself."""
    try:
        return str(_uid.UID(uid).name)
    except Exception:  # pragma: no cover - pydicom knows every standard UID
        return uid


def read_dataset(path: str | Path) -> Dataset:
    """Read a DICOM file (header and pixel bytes) strictly (:func:`cxrlab.imaging.reading.read_dicom`).

    Raises :class:`DecodeError` naming the file for anything unreadable, including a missing Pixel Data.
    A missing Transfer Syntax UID is left missing: :func:`decode_pixels` infers it. The file is opened
    read-only; nothing is ever written back.
    """
    path = Path(path)
    ds = read_dicom(path, pixels=True)
    if "PixelData" not in ds:
        if "Rows" not in ds and "SOPClassUID" not in ds:
            raise DecodeError(f"{path}: not a DICOM file (no image attributes found)")
        raise DecodeError(f"{path}: the file has no Pixel Data (7FE0,0010); there is no image to convert")
    for keyword in ("Rows", "Columns", "BitsAllocated"):
        if keyword not in ds:
            raise DecodeError(f"{path}: the image lacks {keyword}, needed to read its pixels")
    ds.setdefault("PhotometricInterpretation", "MONOCHROME2")
    ds.setdefault("SamplesPerPixel", 1)
    ds.setdefault("PixelRepresentation", 0)
    ds.setdefault("BitsStored", ds.BitsAllocated)
    return ds


def transfer_syntax(ds: Dataset, path: str | Path = "") -> tuple[str, bool]:
    """(the file's transfer syntax UID, whether it was inferred because the file meta lacks it)."""
    declared = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if declared:
        return str(declared), False
    return infer_transfer_syntax(ds, path), True


def infer_transfer_syntax(ds: Dataset, path: str | Path = "") -> str:
    """The syntax a file without (0002,0010) must have: from the dataset encoding, or the codestream."""
    element = ds["PixelData"]
    implicit, little = ds.original_encoding
    if not element.is_undefined_length:
        if little is False:
            return BIG_ENDIAN
        return str(_uid.ImplicitVRLittleEndian if implicit else _uid.ExplicitVRLittleEndian)
    try:
        first = next(generate_frames(element.value, number_of_frames=1))
    except Exception as exc:
        raise DecodeError(
            f"{path}: no Transfer Syntax UID in the file meta and the encapsulated Pixel Data is unreadable "
            f"({exc})"
        ) from None
    syntax = _sniff_codestream(bytes(first[:65536]))
    if syntax is None:
        raise DecodeError(
            f"{path}: no Transfer Syntax UID in the file meta and the compressed Pixel Data matches no known "
            "codec (JPEG, JPEG-LS, JPEG 2000, RLE)"
        )
    return syntax


def _sniff_codestream(head: bytes) -> str | None:
    """The transfer syntax of an encapsulated frame from its first bytes (markers, boxes, RLE header)."""
    if head[:2] == b"\xff\xd8":
        return _sniff_jpeg(head)
    if head[:4] == b"\xff\x4f\xff\x51" or head[4:8] == b"jP  ":
        return _sniff_j2k(head)
    if len(head) >= 64:
        count, first_offset = struct.unpack_from("<II", head)
        if 1 <= count <= 15 and first_offset == 64:
            return RLE
    return None


def _sniff_jpeg(head: bytes) -> str | None:
    i = 2
    while i + 4 <= len(head):
        if head[i] != 0xFF:
            i += 1
            continue
        marker = head[i + 1]
        if marker in (0xFF, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2 if marker != 0xFF else 1
            continue
        length = struct.unpack_from(">H", head, i + 2)[0]
        if marker == 0xC0:
            return str(_uid.JPEGBaseline8Bit)
        if marker == 0xC1:
            return str(_uid.JPEGExtended12Bit)
        if marker == 0xC3:
            return str(_uid.JPEGLosslessSV1)
        if marker == 0xF7:  # SOF55: JPEG-LS; NEAR is in the SOS segment
            j = head.find(b"\xff\xda", i)
            if j >= 0 and j + 4 < len(head):
                ns = head[j + 4]
                near_at = j + 5 + 2 * ns
                if near_at < len(head) and head[near_at] != 0:
                    return str(_uid.JPEGLSNearLossless)
            return str(_uid.JPEGLSLossless)
        i += 2 + length
    return None


def _sniff_j2k(head: bytes) -> str:
    start = head.find(b"\xff\x4f\xff\x51")
    body = head[start:] if start >= 0 else head
    if b"\xff\x50" in body[: body.find(b"\xff\x90") if b"\xff\x90" in body else len(body)]:
        return str(_uid.HTJ2K)  # CAP marker: High-Throughput JPEG 2000
    cod = body.find(b"\xff\x52")
    if cod >= 0 and cod + 13 < len(body):
        reversible = body[cod + 13] == 1  # SPcod transform: 1 = 5/3 reversible
        return str(_uid.JPEG2000Lossless if reversible else _uid.JPEG2000)
    return str(_uid.JPEG2000)


def j2k_reduce_level(width: int, height: int, target_w: int, target_h: int, levels: int) -> int:
    """The most resolution levels a JPEG 2000 decode may skip while staying at or above the target size."""
    if target_w <= 0 or target_h <= 0:
        return 0
    r = 0
    while r < levels:
        nxt = r + 1
        if math.ceil(width / 2**nxt) < target_w or math.ceil(height / 2**nxt) < target_h:
            break
        r = nxt
    return r


def _j2k_header(codestream: bytes | memoryview) -> tuple[int, bool, int]:
    """(precision, signed, decomposition levels) from the SIZ and COD markers of a J2K codestream.

    The markers open the codestream: they are looked for in its first bytes, then in all of it."""
    head = bytes(codestream[:J2K_HEAD])
    start = head.find(b"\xff\x4f\xff\x51")
    cod = head.find(b"\xff\x52", start + 2) if start >= 0 else -1
    if cod < 0 or len(head) < max(start + 48, cod + 10):
        head = bytes(codestream)
    return _j2k_markers(head)


def _j2k_markers(frame: bytes) -> tuple[int, bool, int]:
    start = frame.find(b"\xff\x4f\xff\x51")
    if start < 0:
        raise ValueError("no J2K codestream (SOC/SIZ markers) in the frame")
    siz = start + 2
    ssiz = frame[siz + 40]  # after Lsiz, Rsiz, 8 four-byte sizes and Csiz
    cod = frame.find(b"\xff\x52", siz)
    levels = frame[cod + 9] if cod >= 0 else 0
    return (ssiz & 0x7F) + 1, bool(ssiz & 0x80), levels


def _target_dtype(ds: Dataset) -> np.dtype[Any]:
    signed = int(ds.PixelRepresentation) == 1
    return np.dtype(f"{'i' if signed else 'u'}{int(ds.BitsAllocated) // 8}")


def _shift_correct(arr: np.ndarray, bits: int) -> np.ndarray:
    """Clear unused high bits (unsigned) or sign-extend (signed), as pydicom does for short Bits Stored."""
    shift = 8 * arr.dtype.itemsize - bits
    if shift <= 0:
        return arr
    if arr.dtype.kind == "u":
        if int(arr.max()) >> bits == 0:  # the usual case: nothing to clear, no copy (a read-only pass)
            return arr
        if not arr.flags.writeable:
            arr = arr.copy()
        return np.bitwise_and(arr, (1 << bits) - 1, out=arr)
    if not arr.flags.writeable:
        arr = arr.copy()
    np.left_shift(arr, shift, out=arr)
    np.right_shift(arr, shift, out=arr)
    return arr


def _first_frame(ds: Dataset) -> bytes | memoryview:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    single = _single_fragment(ds.PixelData) if frames == 1 else None
    if single is not None:
        return single
    return bytes(next(generate_frames(ds.PixelData, number_of_frames=frames)))


def _single_fragment(data: bytes) -> memoryview | None:
    """The codestream of a single-frame encapsulated Pixel Data held in one fragment (the usual layout), as
    a view: copying it out, as pydicom's ``generate_frames`` does, costs ~0.3 ms per file for a 5 MB
    codestream. None for any other layout (several fragments, an odd Basic Offset Table)."""
    if len(data) < 16 or data[:4] != ITEM_TAG:
        return None
    start = 8 + struct.unpack_from("<I", data, 4)[0]  # after the Basic Offset Table item
    if len(data) < start + 8 or data[start : start + 4] != ITEM_TAG:
        return None
    end = start + 8 + struct.unpack_from("<I", data, start + 4)[0]
    if end > len(data) or (end < len(data) and data[end : end + 4] != SEQUENCE_DELIMITER):
        return None
    return memoryview(data)[start + 8 : end]


def _fast_decode(
    ds: Dataset, syntax: str, target: tuple[int, int] | None
) -> tuple[np.ndarray, str, int] | None:
    rows, cols = int(ds.Rows), int(ds.Columns)
    bits_stored = int(ds.BitsStored)
    dtype = _target_dtype(ds)
    n = rows * cols
    if syntax in NATIVE_LE or syntax in (DEFLATED, BIG_ENDIAN):
        if syntax == BIG_ENDIAN and dtype.itemsize == 1:
            return None  # pydicom handles OW-swapped 8-bit big endian data
        raw = np.frombuffer(
            ds.PixelData, dtype=dtype.newbyteorder(">" if syntax == BIG_ENDIAN else "<"), count=n
        )
        arr = raw.reshape(rows, cols)
        arr = arr.astype(dtype) if syntax == BIG_ENDIAN else arr
        if bits_stored < 8 * dtype.itemsize:
            arr = _shift_correct(arr, bits_stored)
        return arr, "numpy", 0

    import imagecodecs

    frame = cast(bytes, _first_frame(ds))  # a view (no copy) or bytes: the codecs take any buffer
    if syntax in JPEG_FAMILY:
        out = imagecodecs.jpeg8_decode(frame)
        arr = _finish(out, dtype, rows, cols)
        if dtype.kind == "i":  # the codestream holds two's-complement patterns, returned unsigned
            arr = _shift_correct(arr, bits_stored)
        return arr, "imagecodecs.jpeg8 (libjpeg-turbo)", 0
    if syntax in JPEG_LS:
        out = imagecodecs.jpegls_decode(frame)
        arr = _finish(out, dtype, rows, cols)
        if dtype.kind == "i":
            arr = _shift_correct(arr, bits_stored)
        return arr, "imagecodecs.jpegls (CharLS)", 0
    if syntax in JPEG_2000 or syntax in HTJ2K:
        precision, j2k_signed, levels = _j2k_header(frame)
        reduce = j2k_reduce_level(cols, rows, *target, levels) if target is not None else 0
        j2k: np.ndarray | None = None
        if syntax in HTJ2K:
            j2k = (
                imagecodecs.htj2k_decode(frame, skipres=reduce) if reduce else imagecodecs.htj2k_decode(frame)
            )
            name = "imagecodecs.htj2k (OpenJPH)"
        else:
            if reduce and not j2k_signed:  # Pillow reads signed codestreams as unsigned
                j2k = _pillow_j2k(frame, reduce, precision)
                name = f"Pillow (OpenJPEG), {reduce} resolution level(s) skipped"
            if j2k is None:
                reduce = 0
                j2k = imagecodecs.jpeg2k_decode(frame, numthreads=1)
                name = "imagecodecs.jpeg2k (OpenJPEG)"
        expected = (math.ceil(rows / 2**reduce), math.ceil(cols / 2**reduce))
        if j2k.ndim != 2:
            return None
        if j2k.shape != expected:
            raise HeaderMismatch(f"the codestream is {j2k.shape[0]} x {j2k.shape[1]} (rows x columns)")
        arr = j2k.view(dtype) if j2k.dtype.itemsize == dtype.itemsize else j2k.astype(dtype)
        if j2k_signed != (dtype.kind == "i"):  # pydicom's J2K sign correction
            arr = _shift_correct(np.array(arr), precision)
        return np.ascontiguousarray(arr), name, reduce
    if syntax == RLE:
        from rle.utils import decode_pixel_data

        with _stderr_silenced():  # a malformed stream makes the Rust decoder panic: reported by the caller
            data = decode_pixel_data(
                bytes(frame), version=2, rows=rows, columns=cols, bits_allocated=8 * dtype.itemsize
            )
        arr = np.frombuffer(data, dtype=dtype.newbyteorder("<"), count=n).reshape(rows, cols)
        if bits_stored < 8 * dtype.itemsize:
            arr = _shift_correct(arr, bits_stored)
        return arr, "pylibjpeg-rle", 0
    return None


def _finish(out: np.ndarray, dtype: np.dtype[Any], rows: int, cols: int) -> np.ndarray:
    if out.ndim != 2:
        raise ValueError(f"decoded shape {out.shape}: not one grey frame")
    if out.shape != (rows, cols):
        raise HeaderMismatch(f"the codestream is {out.shape[0]} x {out.shape[1]} (rows x columns)")
    if out.dtype == dtype:
        return out
    if out.dtype.itemsize == dtype.itemsize:
        return out.view(dtype)
    return out.astype(dtype)


def _pillow_j2k(frame: bytes | memoryview, reduce: int, precision: int) -> np.ndarray | None:
    """Decode skipping ``reduce`` resolution levels (Pillow scales 9-16 bit samples up to 16 bits).

    The JPEG 2000 plugin's image class is opened directly: ``Image.open`` would first import every Pillow
    plugin to identify the stream (~25 ms of a run's start-up), and the frame is known to be JPEG 2000."""
    from PIL import Jpeg2KImagePlugin

    with Jpeg2KImagePlugin.Jpeg2KImageFile(io.BytesIO(frame)) as im:
        if im.mode not in ("L", "I;16"):
            return None
        im.reduce = reduce  # type: ignore[assignment,method-assign]
        im.load()
        arr = np.asarray(im)
    if arr.dtype == np.uint16 and precision < 16:
        arr = arr >> (16 - precision)
    return arr


def decode_pixels(ds: Dataset, *, target: tuple[int, int] | None = None, path: str | Path = "") -> Decoded:
    """Stored values of frame 0 of ``ds`` (from :func:`read_dataset`), by the fastest decoder that applies.

    ``target`` (width, height) lets a JPEG 2000 be decoded at the smallest resolution level still at least
    that large; the result then says how many levels were skipped in ``reduce``. Other syntaxes ignore it.
    A decoder that crashes (a Rust codec panics with a ``BaseException``) is this file's
    :class:`DecodeError`; so is a decoded frame whose shape differs from the header's Rows x Columns.
    """
    syntax, inferred = transfer_syntax(ds, path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    length_note = _check_native_length(ds, syntax, frames, path)
    notes = [length_note] if length_note else []
    simple = int(ds.SamplesPerPixel) == 1 and int(ds.BitsAllocated) in (8, 16)
    fast = None
    if simple:
        try:
            fast = _fast_decode(ds, syntax, target)
        except HeaderMismatch as exc:  # the codestream states its size: pydicom would reshape it wrongly
            raise DecodeError(
                f"{path or 'dataset'}: {exc} but the header says Rows {ds.Rows} x Columns {ds.Columns}: "
                "the header disagrees with the pixel data"
            ) from None
        except Exception:  # a codec refusing an unusual stream: pydicom's plugins may still read it
            fast = None
        except BaseException as exc:  # a Rust codec's panic: the stream contradicts the header
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise DecodeError(
                f"{path or 'dataset'}: the {syntax_name(syntax)} decoder crashed on this file "
                f"({type(exc).__name__}: {exc}); is the header (Rows {ds.Rows}, Columns {ds.Columns}) right?"
            ) from None
    for decoder in missing_fast_decoders(syntax) if simple else []:
        notes.append(f"{decoder.package} not installed: {decoder.family} decoded by pydicom (slower)")
    if fast is not None:
        arr, name, reduce = fast
        _check_shape(ds, arr, reduce, path)
        return Decoded(arr, syntax, inferred, name, reduce, frames, notes)
    if inferred:  # pydicom's plugins need the syntax: set the real element, in memory only
        ds.file_meta.TransferSyntaxUID = _uid.UID(syntax)
    try:
        with warnings.catch_warnings(), _stderr_silenced():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array if frames == 1 else ds.pixel_array[0]
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise DecodeError(
            f"{path or 'dataset'}: cannot decode {syntax_name(syntax)} pixel data "
            f"({type(exc).__name__}: {exc})"
        ) from None
    arr = np.asarray(arr)
    _check_shape(ds, arr, 0, path)
    return Decoded(arr, syntax, inferred, "pydicom", 0, frames, notes)


def _check_native_length(ds: Dataset, syntax: str, frames: int, path: str | Path) -> str | None:
    """Uncompressed Pixel Data must hold what Rows x Columns x samples x bits say; a little trailing padding
    of whole rows is noted (the returned note), anything else fails: the image would be cut or sheared.
    (A square image whose header understates Columns by k looks like k padding rows: length alone cannot
    tell; the 2% bound keeps that to a few columns.)"""
    if syntax not in NATIVE_LE and syntax not in (DEFLATED, BIG_ENDIAN):
        return None
    allocated = int(ds.BitsAllocated)
    if allocated % 8:
        return None  # 1-bit data is packed: pydicom checks it
    needed = int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) * allocated // 8 * frames
    held = len(ds.PixelData)
    if held < needed:
        raise DecodeError(
            f"{path}: the Pixel Data holds {held} bytes but Rows x Columns x samples x Bits Allocated need "
            f"{needed}: the file is truncated or its header disagrees with its pixels"
        )
    excess = held - needed
    if excess <= 1:  # the pad byte of an odd length
        return None
    row = int(ds.Columns) * int(ds.SamplesPerPixel) * allocated // 8
    if excess % row == 0 and excess <= 0.02 * needed:  # trailing padding (pydicom ignores it too)
        return f"Pixel Data holds {excess} bytes more than the header needs (padding): ignored"
    raise DecodeError(
        f"{path}: the Pixel Data holds {held} bytes, more than the {needed} that Rows x Columns x samples "
        "x Bits Allocated need: the header disagrees with the pixels"
    )


def _check_shape(ds: Dataset, arr: np.ndarray, reduce: int, path: str | Path) -> None:
    rows, cols = int(ds.Rows), int(ds.Columns)
    expected = (math.ceil(rows / 2**reduce), math.ceil(cols / 2**reduce))
    if arr.ndim < 2 or tuple(arr.shape[:2]) != expected:
        raise DecodeError(
            f"{path}: the decoded frame is {' x '.join(map(str, arr.shape))} but the header says "
            f"Rows {rows} x Columns {cols}: the header disagrees with the pixel data"
        )


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: a Rust codec's panic hook prints there before raising, and
    the failure is reported once, by the caller, naming the file."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
