"""Write one de-identified chest radiograph DICOM in any transfer syntax the installed libraries encode.

The phantom VinDr-CXR generator and the imaging tests both need files with the variety of the real release:
MONOCHROME1/2, 10-16 bits stored, rescale, one or several windows, a VOI LUT sequence,
uncompressed and compressed syntaxes, the missing-transfer-syntax quirk. ``write_dicom`` takes the *stored*
values (what a decoder must give back) and a :class:`DicomSpec` saying how to encode them.

Encoders: pydicom's ``Dataset.compress`` for RLE, JPEG-LS and JPEG 2000 (plugins pydicom/pylibjpeg, pyjpegls,
pylibjpeg-openjpeg); imagecodecs for the JPEG process 1/14 family and HTJ2K, which pydicom cannot encode.
Only the tags of :data:`DEIDENTIFIED_KEYWORDS` are ever written: no names, ids, dates or institutions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom import uid as _uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence

from cxrlab.atomic import atomic_path

__all__ = [
    "DEIDENTIFIED_KEYWORDS",
    "LOSSLESS_SYNTAXES",
    "SOP_CLASSES",
    "TRANSFER_SYNTAXES",
    "DicomSpec",
    "make_uid",
    "write_dicom",
]

IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.10.1583.1"  # cxrlab's implementation UID, under a demo root
IMPLEMENTATION_VERSION = "CXRLAB_PHANTOM"
UID_ROOT = "1.2.826.0.1.3680043.10.1583."

SOP_CLASSES: dict[str, str] = {
    "DX": _uid.DigitalXRayImageStorageForPresentation,
    "CR": _uid.ComputedRadiographyImageStorage,
    "SC": _uid.SecondaryCaptureImageStorage,
}
_MODALITY = {"DX": "DX", "CR": "CR", "SC": "OT"}


def _pydicom_encodable(syntax: str) -> bool:
    from pydicom.pixels import get_encoder

    try:
        return bool(get_encoder(syntax).is_available)
    except NotImplementedError:
        return False


def _imagecodecs_has(name: str) -> bool:
    try:
        import imagecodecs
    except ImportError:  # pragma: no cover - imagecodecs is a runtime dependency
        return False
    codec = getattr(imagecodecs, name.upper(), None)
    return bool(getattr(codec, "available", False)) and hasattr(imagecodecs, f"{name}_encode")


def _pydicom_decodable(syntax: str) -> bool:
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(syntax).is_available)
    except NotImplementedError:  # pragma: no cover
        return False


_CANDIDATES: list[tuple[str, str, Callable[[], bool]]] = [
    ("explicit_le", _uid.ExplicitVRLittleEndian, lambda: True),
    ("implicit_le", _uid.ImplicitVRLittleEndian, lambda: True),
    ("explicit_be", _uid.ExplicitVRBigEndian, lambda: True),
    ("deflated_le", _uid.DeflatedExplicitVRLittleEndian, lambda: True),
    ("rle", _uid.RLELossless, lambda: _pydicom_encodable(_uid.RLELossless)),
    ("jpegls_lossless", _uid.JPEGLSLossless, lambda: _pydicom_encodable(_uid.JPEGLSLossless)),
    ("jpegls_near_lossless", _uid.JPEGLSNearLossless, lambda: _pydicom_encodable(_uid.JPEGLSNearLossless)),
    ("j2k_lossless", _uid.JPEG2000Lossless, lambda: _pydicom_encodable(_uid.JPEG2000Lossless)),
    ("j2k", _uid.JPEG2000, lambda: _pydicom_encodable(_uid.JPEG2000)),
    ("jpeg_lossless_sv1", _uid.JPEGLosslessSV1, lambda: _imagecodecs_has("jpeg8")),
    ("jpeg_lossless", _uid.JPEGLossless, lambda: _imagecodecs_has("jpeg8")),
    ("jpeg_baseline", _uid.JPEGBaseline8Bit, lambda: _imagecodecs_has("jpeg8")),
    (
        "htj2k_lossless",
        _uid.HTJ2KLossless,
        lambda: _imagecodecs_has("htj2k") and _pydicom_decodable(_uid.HTJ2KLossless),
    ),
]

TRANSFER_SYNTAXES: dict[str, str] = {name: str(syntax) for name, syntax, ok in _CANDIDATES if ok()}
"""Short name -> Transfer Syntax UID of every syntax :func:`write_dicom` can write with the installed libs."""

LOSSY_SYNTAXES: frozenset[str] = frozenset(
    str(s) for s in (_uid.JPEGLSNearLossless, _uid.JPEG2000, _uid.JPEGBaseline8Bit)
)
LOSSLESS_SYNTAXES: frozenset[str] = frozenset(set(TRANSFER_SYNTAXES.values()) - LOSSY_SYNTAXES)
"""Syntaxes whose decoded pixels equal the stored array bit for bit."""

DEIDENTIFIED_KEYWORDS: frozenset[str] = frozenset(
    {
        # identity of the object (regenerated UIDs, not identifying)
        "SpecificCharacterSet",
        "SOPClassUID",
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "Modality",
        "PatientIdentityRemoved",
        # the VinDr whitelist: patient size/sex/age/weight and the image description
        "PatientSex",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "Rows",
        "Columns",
        "PixelSpacing",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "WindowCenter",
        "WindowWidth",
        "WindowCenterWidthExplanation",
        "VOILUTFunction",
        "VOILUTSequence",
        "RescaleIntercept",
        "RescaleSlope",
        "RescaleType",
        "LossyImageCompression",
        "LossyImageCompressionRatio",
        "LossyImageCompressionMethod",
        "PixelData",
    }
)
"""Every keyword :func:`write_dicom` may put in the dataset (besides the file meta group)."""


@dataclass
class DicomSpec:
    """How to encode one image: syntax, pixel description, modality/VOI LUTs and the few patient tags."""

    transfer_syntax: str = str(_uid.ExplicitVRLittleEndian)
    photometric: str = "MONOCHROME2"
    bits_stored: int = 12
    bits_allocated: int = 16
    pixel_representation: int = 0
    rescale_slope: float | None = None
    rescale_intercept: float | None = None
    windows: list[tuple[float, float]] = field(default_factory=list)
    """(center, width) pairs in output units of the modality LUT; 0, 1 or several."""
    voi_lut: bool = False
    """Add a VOILUTSequence (one LUT spanning the first window, or the stored range)."""
    voi_lut_function: str | None = None
    sex: str | None = None
    age: str | None = None
    pixel_spacing: tuple[float, float] | None = (0.14, 0.14)
    omit_transfer_syntax_in_meta: bool = False
    omit_pixel_data: bool = False
    sop_class: str = "DX"
    """Key of :data:`SOP_CLASSES`: ``DX``, ``CR`` or ``SC``."""
    sop_instance_uid: str | None = None
    """None derives a UID from the pixel bytes and the spec (deterministic)."""
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    lossy_ratio: float = 10.0
    """Target compression ratio of the lossy syntaxes (JPEG 2000 lossy)."""


def make_uid(*parts: object) -> str:
    """A deterministic DICOM UID under cxrlab's root from any values (seed, image number, ...)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    number = int.from_bytes(digest[:16], "big")
    return (UID_ROOT + str(number))[:64]


def write_dicom(path: Path, stored: np.ndarray, spec: DicomSpec) -> None:
    """Write ``stored`` (the stored values, shape (rows, cols)) to ``path`` as the DICOM file ``spec`` says.

    Lossless syntaxes decode back to exactly ``stored``. MONOCHROME1 is written as given: a caller that
    wants the image to look the same in both photometrics inverts the values itself. The file appears
    atomically (temporary name, then rename).
    """
    path = Path(path)
    arr = _check(stored, spec)
    syntax = _uid.UID(spec.transfer_syntax)
    ds = _base_dataset(arr, spec)
    _add_voi(ds, arr, spec)

    if not spec.omit_pixel_data:
        _add_pixels(ds, arr, spec, syntax)

    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = _uid.UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128

    implicit = syntax == _uid.ImplicitVRLittleEndian
    little = syntax != _uid.ExplicitVRBigEndian
    if spec.omit_transfer_syntax_in_meta:
        del meta.TransferSyntaxUID
        if syntax == _uid.DeflatedExplicitVRLittleEndian:
            raise ValueError(
                "a deflated file cannot omit its Transfer Syntax UID: readers could not inflate it"
            )
        if "PixelData" in ds:
            ds["PixelData"].is_undefined_length = syntax.is_compressed

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        if spec.omit_transfer_syntax_in_meta:
            dcmwrite(fh, ds, implicit_vr=implicit, little_endian=little, enforce_file_format=False)
        else:
            dcmwrite(fh, ds, enforce_file_format=True)


def _check(stored: np.ndarray, spec: DicomSpec) -> np.ndarray:
    arr = np.asarray(stored)
    if arr.ndim != 2:
        raise ValueError(f"stored must be 2-D (rows, cols), got shape {arr.shape}")
    if spec.bits_allocated not in (8, 16):
        raise ValueError(f"BitsAllocated must be 8 or 16, got {spec.bits_allocated}")
    if not 1 <= spec.bits_stored <= spec.bits_allocated:
        raise ValueError(f"BitsStored {spec.bits_stored} must be in 1..{spec.bits_allocated}")
    if spec.photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {spec.photometric!r}")
    if spec.transfer_syntax not in TRANSFER_SYNTAXES.values():
        raise ValueError(
            f"cannot write transfer syntax {spec.transfer_syntax}; available: {sorted(TRANSFER_SYNTAXES)}"
        )
    if spec.transfer_syntax == _uid.JPEGBaseline8Bit and spec.bits_allocated != 8:
        raise ValueError("JPEG baseline holds 8-bit data only: use bits_allocated=8, bits_stored=8")
    signed = spec.pixel_representation == 1
    dtype = np.dtype(f"{'i' if signed else 'u'}{spec.bits_allocated // 8}")
    if signed:
        lo, hi = -(1 << (spec.bits_stored - 1)), (1 << (spec.bits_stored - 1)) - 1
    else:
        lo, hi = 0, (1 << spec.bits_stored) - 1
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        raise ValueError(
            f"stored values {int(arr.min())}..{int(arr.max())} do not fit BitsStored {spec.bits_stored} "
            f"({'signed' if signed else 'unsigned'}: {lo}..{hi})"
        )
    return np.ascontiguousarray(arr.astype(dtype, copy=False))


def _ds_str(value: float) -> str:
    """A Decimal String of at most 16 characters."""
    text = f"{value:.6g}"
    return text if len(text) <= 16 else f"{value:.8e}"[:16]


def _base_dataset(arr: np.ndarray, spec: DicomSpec) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = SOP_CLASSES[spec.sop_class]
    pixel_key = hashlib.sha256(arr.tobytes()).hexdigest()[:16]
    ds.SOPInstanceUID = spec.sop_instance_uid or make_uid("sop", pixel_key, spec.transfer_syntax)
    ds.StudyInstanceUID = spec.study_instance_uid or make_uid("study", ds.SOPInstanceUID)
    ds.SeriesInstanceUID = spec.series_instance_uid or make_uid("series", ds.SOPInstanceUID)
    ds.Modality = _MODALITY[spec.sop_class]
    ds.PatientIdentityRemoved = "YES"
    if spec.sex is not None:
        ds.PatientSex = spec.sex
    if spec.age is not None:
        ds.PatientAge = spec.age
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = spec.photometric
    ds.Rows, ds.Columns = int(arr.shape[0]), int(arr.shape[1])
    if spec.pixel_spacing is not None:
        ds.PixelSpacing = [_ds_str(v) for v in spec.pixel_spacing]
    ds.BitsAllocated = spec.bits_allocated
    ds.BitsStored = spec.bits_stored
    ds.HighBit = spec.bits_stored - 1
    ds.PixelRepresentation = spec.pixel_representation
    if spec.rescale_slope is not None or spec.rescale_intercept is not None:
        ds.RescaleIntercept = _ds_str(spec.rescale_intercept if spec.rescale_intercept is not None else 0.0)
        ds.RescaleSlope = _ds_str(spec.rescale_slope if spec.rescale_slope is not None else 1.0)
        ds.RescaleType = "US"
    return ds


def _add_voi(ds: Dataset, arr: np.ndarray, spec: DicomSpec) -> None:
    if spec.windows:
        centers = [_ds_str(c) for c, _ in spec.windows]
        widths = [_ds_str(max(w, 1.0)) for _, w in spec.windows]
        ds.WindowCenter = centers if len(centers) > 1 else centers[0]
        ds.WindowWidth = widths if len(widths) > 1 else widths[0]
        names = ["NORMAL", "HARDER", "SOFTER", "WIDE"]
        explanation = [names[i % len(names)] for i in range(len(spec.windows))]
        ds.WindowCenterWidthExplanation = explanation if len(explanation) > 1 else explanation[0]
    if spec.voi_lut_function is not None:
        ds.VOILUTFunction = spec.voi_lut_function
    if spec.voi_lut:
        ds.VOILUTSequence = Sequence([_voi_lut_item(arr, spec)])


def _voi_lut_item(arr: np.ndarray, spec: DicomSpec) -> Dataset:
    """One VOI LUT: a 12-bit sigmoid over the first window (or the stored range), in modality-LUT units.

    Entries map consecutive input values, so a window wider than 32767 is covered only in part.
    """
    slope = spec.rescale_slope if spec.rescale_slope is not None else 1.0
    intercept = spec.rescale_intercept if spec.rescale_intercept is not None else 0.0
    if spec.windows:
        center, width = spec.windows[0]
    else:
        lo, hi = float(arr.min()) * slope + intercept, float(arr.max()) * slope + intercept
        center, width = (lo + hi) / 2, max(hi - lo, 2.0)
    first = int(np.floor(center - width / 2))
    entries = int(np.clip(np.ceil(width), 2, 32767))  # one entry per input value; US holds < 32768 values
    x = first + np.arange(entries, dtype=np.float64)
    y = 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    y = (y - y.min()) / max(float(y.max() - y.min()), 1e-9)
    data = np.round(y * 4095).astype(np.uint16)
    item = Dataset()
    # LUT Descriptor: entries, first input value mapped, bits per entry (US; first value SS when negative)
    item.add_new(0x00283002, "US" if first >= 0 else "SS", [entries, first, 12])
    item.LUTExplanation = "PHANTOM SIGMOID"
    item.add_new(0x00283006, "US", data.tolist())  # LUT Data
    return item


def _add_pixels(ds: Dataset, arr: np.ndarray, spec: DicomSpec, syntax: _uid.UID) -> None:
    if not syntax.is_compressed:
        data = (
            arr.astype(arr.dtype.newbyteorder(">")).tobytes() if syntax == _uid.ExplicitVRBigEndian else None
        )
        ds.PixelData = data if data is not None else arr.tobytes()
        ds["PixelData"].VR = "OW" if spec.bits_allocated == 16 else "OB"
        return

    if syntax in (_uid.RLELossless, _uid.JPEGLSLossless, _uid.JPEG2000Lossless):
        ds.compress(syntax, arr, generate_instance_uid=False)
    elif syntax == _uid.JPEGLSNearLossless:
        ds.compress(syntax, arr, generate_instance_uid=False, jls_error=2)
    elif syntax == _uid.JPEG2000:
        ds.compress(syntax, arr, generate_instance_uid=False, j2k_cr=[spec.lossy_ratio])
    else:
        ds.PixelData = encapsulate([_imagecodecs_encode(arr, spec, syntax)])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True

    if str(syntax) in LOSSY_SYNTAXES:
        raw = arr.nbytes
        ratio = raw / max(_encoded_size(ds), 1)
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionRatio = _ds_str(round(ratio, 2))
        ds.LossyImageCompressionMethod = {
            _uid.JPEG2000: "ISO_15444_1",
            _uid.JPEGLSNearLossless: "ISO_14495_1",
            _uid.JPEGBaseline8Bit: "ISO_10918_1",
        }[syntax]
    elif "LossyImageCompression" in ds:
        ds.LossyImageCompression = "00"
    # compress() may add tags outside the whitelist in future versions: drop them
    for keyword in [e.keyword for e in ds if e.keyword not in DEIDENTIFIED_KEYWORDS]:
        delattr(ds, keyword)


def _encoded_size(ds: Dataset) -> int:
    return len(ds.PixelData)


def _imagecodecs_encode(arr: np.ndarray, spec: DicomSpec, syntax: _uid.UID) -> bytes:
    import imagecodecs

    if spec.pixel_representation == 1:
        raise ValueError(f"{syntax.name}: signed pixel data is not supported by the phantom's JPEG encoder")
    if syntax == _uid.JPEGLosslessSV1:
        return bytes(
            imagecodecs.jpeg8_encode(arr, lossless=True, predictor=1, bitspersample=spec.bits_stored)
        )
    if syntax == _uid.JPEGLossless:
        return bytes(
            imagecodecs.jpeg8_encode(arr, lossless=True, predictor=6, bitspersample=spec.bits_stored)
        )
    if syntax == _uid.JPEGBaseline8Bit:
        return bytes(imagecodecs.jpeg8_encode(arr.astype(np.uint8), level=92))
    if syntax == _uid.HTJ2KLossless:
        return bytes(imagecodecs.htj2k_encode(arr, reversible=True))
    raise ValueError(f"no encoder for {syntax}")  # pragma: no cover
