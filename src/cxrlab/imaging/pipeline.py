"""Convert one image: read -> fastest decoder -> resize the stored values -> one display table -> encode.

:func:`convert_file` runs in a worker (see :mod:`cxrlab.imaging.runner`) and never raises for a problem of
its file: a file that cannot be read, whose header disagrees with its pixels, or whose decoder crashes (a
Rust codec panics with a ``BaseException``) becomes a ``failed`` record naming the file. Only a problem of the
output folder (disk full, read-only) raises, as ``OSError``: it would fail every file, so the run stops.
"""

from __future__ import annotations

import io
import os
import resource
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydicom.dataset import Dataset

from cxrlab.atomic import write_bytes_atomic
from cxrlab.errors import CxrlabError, ParameterError
from cxrlab.imaging.allocator import keep_freed_memory
from cxrlab.imaging.decoders import DecodeError, decode_pixels, read_dataset, syntax_name
from cxrlab.imaging.dicom import Applied, DisplayOptions, apply_table, display_reference, display_table
from cxrlab.imaging.png import encode_png
from cxrlab.imaging.runner import Task
from cxrlab.imaging.transform import Resize, plan_resize, resize_image
from cxrlab.params import check_choice

__all__ = ["FORMATS", "PNG_PARAMS", "ConvertOptions", "convert_file", "encode_image"]

FORMATS = {"png": ".png", "png16": ".png", "npy": ".npy"}


@dataclass(frozen=True)
class ConvertOptions:
    """How every image is converted; the same options give byte-identical outputs.

    ``j2k_full``: decode JPEG 2000 at full resolution before the resize, instead of skipping the wavelet
    levels finer than the output (faster; a few grey levels off, see the README's benchmark section).
    ``exact_voi``: apply the display table (modality, VOI, inversion) to the full image, then resize: the
    order a viewer shows. The default resizes the stored values first (the table then maps ~6x fewer
    pixels): on real chest windows within ~2 grey levels of the exact order, but a narrow window across
    sharp edges maps averaged values that no pixel had, up to ~127 levels off on those edges.
    """

    size: int | None = 1024
    keep_aspect: bool = False
    format: str = "png"
    display: DisplayOptions = field(default_factory=DisplayOptions)
    png_level: int = 1
    j2k_full: bool = False
    exact_voi: bool = False

    def __post_init__(self) -> None:
        check_choice(self.format, FORMATS, "format")
        if self.size is not None and self.size <= 0:
            raise ParameterError("size", f"must be positive (got {self.size})")
        if not 0 <= self.png_level <= 9:
            raise ParameterError("png_level", f"must be 0-9 (got {self.png_level})")
        bits = 8 if self.format == "png" else 16 if self.format == "png16" else self.display.bits
        if bits != self.display.bits:
            object.__setattr__(self, "display", replace(self.display, bits=bits))

    def settings(self) -> dict[str, Any]:
        d = asdict(self)
        d["display"]["percentiles"] = list(self.display.percentiles)
        for option in ("j2k_full", "exact_voi"):  # absent from settings written before they existed
            if not d[option]:
                d.pop(option)
        return d


PNG_PARAMS = [
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_RLE,
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FAST_FILTERS,
]
"""OpenCV's best PNG setting at level 1 (zlib's RLE strategy, libpng's fast filters), used only when
imagecodecs is missing: :func:`cxrlab.imaging.png.encode_png` is ~2x faster for ~10% more bytes."""


def encode_image(img: np.ndarray, fmt: str, png_level: int = 1) -> bytes:
    """PNG (8 or 16 bit grey: :func:`cxrlab.imaging.png.encode_png`, the Average filter and libdeflate at
    ``png_level``; level 6 is ~4x slower for ~5% fewer bytes) or .npy."""
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, img, allow_pickle=False)
        return buf.getvalue()
    if img.ndim == 2 and img.dtype in (np.uint8, np.uint16):
        try:
            return encode_png(img, png_level)
        except ImportError:  # no imagecodecs (the decoder table warns about it): OpenCV's libpng
            pass
    ok, encoded = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, png_level, *PNG_PARAMS])
    if not ok:  # pragma: no cover - cv2 encodes any 8/16-bit gray array
        raise CxrlabError("PNG encoding failed")
    return encoded.tobytes()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _named(source: Path, message: str) -> str:
    """Every failure names its file, whatever layer raised it."""
    return message if str(source) in message else f"{source}: {message}"


def convert_file(task: Task, options: ConvertOptions) -> dict[str, Any]:
    """Convert one image and return its manifest record; a failure of the file is a record too.

    Raises only ``OSError`` from writing the output (the folder's problem, not the file's). The first call
    tunes the process's allocator (:func:`cxrlab.imaging.allocator.keep_freed_memory`).
    """
    started = time.perf_counter()
    keep_freed_memory()
    source = Path(task.source)
    record: dict[str, Any] = {"image_id": task.image_id, "source": task.source, "output": task.output}
    img = None
    try:
        stat = source.stat()
        record.update(source_bytes=stat.st_size, source_mtime_ns=stat.st_mtime_ns)
        if source.suffix.lower() == ".png":
            img, info = _png_pipeline(source, options)
        else:
            img, info = _dicom_pipeline(source, options)
        record.update(info)
        data = encode_image(img, options.format, options.png_level)
    except CxrlabError as exc:
        record.update(status="failed", error=_named(source, str(exc)))
    except BaseException as exc:  # a codec crashing on one odd file (a Rust panic) must not stop the rest
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        record.update(status="failed", error=_named(source, f"{type(exc).__name__}: {exc}"))
    else:
        output = Path(task.output)
        write_bytes_atomic(output, data, temp_name=f".{output.name}.{os.getpid()}.tmp")
        record.update(status="ok", error="")
    record.update(
        seconds=round(time.perf_counter() - started, 4),
        worker_pid=os.getpid(),
        worker_peak_rss_mb=round(_peak_rss_mb(), 1),
    )
    return record


def _size_record(plan: Resize) -> dict[str, Any]:
    return {
        "orig_width": plan.orig_width,
        "orig_height": plan.orig_height,
        "width": plan.width,
        "height": plan.height,
        "scale_x": plan.scale_x,
        "scale_y": plan.scale_y,
    }


def header_notes(ds: Dataset, source: Path) -> list[str]:
    """Check the header attributes that would make a wrong image: fail (DecodeError) where the output would
    be wrong, note where the file is odd but the image is still right; fixes are made in memory only."""
    notes: list[str] = []
    rows, cols = int(ds.Rows), int(ds.Columns)
    if rows <= 0 or cols <= 0:
        raise DecodeError(f"{source}: the image is {cols} x {rows} pixels (Columns x Rows): nothing to show")
    if "RescaleSlope" in ds and ds.RescaleSlope is not None and float(ds.RescaleSlope) == 0:
        raise DecodeError(f"{source}: Rescale Slope is 0: every pixel maps to the intercept (a blank image)")
    allocated, stored = int(ds.BitsAllocated), int(ds.BitsStored)
    if stored > allocated:
        notes.append(f"Bits Stored {stored} > Bits Allocated {allocated}: {allocated} used")
        ds.BitsStored = allocated
        ds.HighBit = allocated - 1
    elif stored <= 0:
        raise DecodeError(f"{source}: Bits Stored is {stored}")
    photometric = str(ds.PhotometricInterpretation or "MONOCHROME2").upper()
    if int(ds.SamplesPerPixel) == 1 and photometric not in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR"):
        notes.append(f"Photometric Interpretation {photometric} with one sample: read as MONOCHROME2")
        ds.PhotometricInterpretation = "MONOCHROME2"
    return notes


def _dicom_pipeline(source: Path, options: ConvertOptions) -> tuple[np.ndarray, dict[str, Any]]:
    ds = read_dataset(source)
    notes = header_notes(ds, source)
    plan = plan_resize(int(ds.Columns), int(ds.Rows), options.size, options.keep_aspect)
    target = None if options.j2k_full else (plan.width, plan.height)
    decoded = decode_pixels(ds, target=target, path=source)
    pixels = decoded.pixels
    palette = str(ds.PhotometricInterpretation).upper() == "PALETTE COLOR" and pixels.ndim == 2
    if palette:
        pixels = _apply_palette(pixels, ds, source)
    if (
        pixels.ndim == 2
        and pixels.dtype.kind in "ui"
        and pixels.dtype.itemsize in (1, 2)
        and options.exact_voi
    ):
        table, applied = display_table(ds, options.display, stats_of=pixels)
        img = resize_image(apply_table(pixels, table), plan.width, plan.height)
    elif pixels.ndim == 2 and pixels.dtype.kind in "ui" and pixels.dtype.itemsize in (1, 2):
        small = resize_image(pixels, plan.width, plan.height)  # stored values first: 6x fewer to map
        table, applied = display_table(ds, options.display, stats_of=small)
        img = apply_table(small, table)
    elif pixels.ndim == 3:  # colour (secondary captures, palettes): luminance, no VOI
        img, applied = _colour_to_grey(pixels, options.display.bits)
        img = resize_image(img, plan.width, plan.height)
    else:
        full, applied = display_reference(pixels, ds, options.display)
        img = resize_image(full, plan.width, plan.height)
    if palette:
        applied.notes.append("PALETTE COLOR: the palette applied, then converted to luminance")
    applied.notes[:0] = notes + decoded.notes
    if decoded.reduce:
        applied.notes.append(
            f"JPEG 2000 decoded at resolution level {decoded.reduce} "
            f"({pixels.shape[1]} x {pixels.shape[0]}), the smallest still >= the output size"
        )
    if decoded.syntax_inferred:
        applied.notes.append("Transfer Syntax UID missing from the file meta: inferred from the data")
    if decoded.frames > 1:
        applied.notes.append(f"multi-frame ({decoded.frames}): frame 1 converted")
    info = _size_record(plan)
    info.update(
        transfer_syntax=decoded.transfer_syntax,
        transfer_syntax_name=syntax_name(decoded.transfer_syntax),
        syntax_inferred=decoded.syntax_inferred,
        decoder=decoded.decoder,
        j2k_reduce=decoded.reduce,
    )
    info.update(applied.as_dict())
    return img, info


def _apply_palette(pixels: np.ndarray, ds: Dataset, source: Path) -> np.ndarray:
    from pydicom.pixels import apply_color_lut

    try:
        return np.asarray(apply_color_lut(pixels, ds))
    except Exception as exc:
        raise DecodeError(f"{source}: PALETTE COLOR image whose palette cannot be applied ({exc})") from None


def _colour_to_grey(pixels: np.ndarray, bits: int) -> tuple[np.ndarray, Applied]:
    grey = cv2.cvtColor(pixels[..., :3], cv2.COLOR_RGB2GRAY)
    applied = Applied(photometric="RGB", voi="none", voi_detail="colour image: luminance", bits=bits)
    if bits == 16:
        grey = grey.astype(np.uint16) * (257 if grey.dtype == np.uint8 else 1)
    elif grey.dtype != np.uint8:
        grey = (grey // 257).astype(np.uint8)
    return grey, applied


def _png_pipeline(source: Path, options: ConvertOptions) -> tuple[np.ndarray, dict[str, Any]]:
    data = np.fromfile(source, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DecodeError(f"{source}: not a readable PNG file")
    notes = []
    if img.ndim == 3:
        notes.append(f"{img.shape[2]}-channel PNG read as grey")
        code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        img = cv2.cvtColor(img, code)
    bits = options.display.bits
    if bits == 16 and img.dtype == np.uint8:
        img = img.astype(np.uint16) * 257
    elif bits == 8 and img.dtype == np.uint16:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    plan = plan_resize(img.shape[1], img.shape[0], options.size, options.keep_aspect)
    img = resize_image(img, plan.width, plan.height)
    info = _size_record(plan)
    info.update(
        decoder="cv2 (PNG)",
        photometric="MONOCHROME2",
        voi="none",
        voi_detail="PNG input: no display pipeline",
        bits=bits,
        notes="; ".join(notes),
    )
    return img, info
