"""The DICOM display pipeline, in the standard's order: modality LUT, VOI LUT, then MONOCHROME1 inversion.

Step functions take ``(arr, ds)`` and follow pydicom's ``pixels.processing`` names and semantics
(``apply_modality_lut``, ``apply_voi_lut`` = ``apply_voi`` or ``apply_windowing``), so each can be checked
against pydicom's own; ``invert_monochrome1`` and ``to_output`` finish the chain. Converting thousands of
large radiographs through them costs ~100 ms per image, so :func:`display_table` folds the whole chain into
one lookup table indexed by the stored value (2**BitsAllocated entries, built by running the same step
functions on every possible stored value): applying it costs one gather and gives the same result.

The output range: a VOI LUT's entries span ``0 .. 2**bits - 1``; a window spans pydicom's ``y_min .. y_max``
(the stored range after rescale); without a VOI step (``voi="none"`` or none in the file) the range is the
data's own, min-max or percentiles of the modality values. MONOCHROME1 is inverted inside that range, so air
comes out dark and bone bright, then the range is scaled to 8 or 16 bits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from struct import unpack_from
from typing import Any, Literal, cast, get_args

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID
from pydicom.valuerep import VR

from cxrlab.errors import CxrlabError, ParameterError
from cxrlab.params import check_choice

__all__ = [
    "Applied",
    "DisplayOptions",
    "apply_modality_lut",
    "apply_voi",
    "apply_voi_lut",
    "apply_windowing",
    "display_reference",
    "display_table",
    "invert_monochrome1",
    "to_display",
    "to_output",
    "voi_step",
]

VoiMode = Literal["auto", "none"]
FullRange = Literal["minmax", "percentile"]


@dataclass(frozen=True)
class DisplayOptions:
    """What the display pipeline does besides the file's own LUTs.

    ``voi="none"`` skips the VOI step and keeps the full range of the data (``full_range``: min-max, or the
    ``percentiles`` of the modality values); the full range is also used when a file has no VOI at all.
    ``window_index`` picks one of several windows or VOI LUTs (the first by default).
    """

    voi: VoiMode = "auto"
    window_index: int = 0
    prefer_lut: bool = True
    full_range: FullRange = "minmax"
    percentiles: tuple[float, float] = (0.5, 99.5)
    bits: int = 8

    def __post_init__(self) -> None:
        if self.bits not in (8, 16):
            raise ParameterError("bits", f"must be 8 or 16 (got {self.bits})")
        check_choice(self.voi, get_args(VoiMode), "voi")
        check_choice(self.full_range, get_args(FullRange), "full_range")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            shown = f"(got {self.percentiles})"
            raise ParameterError("percentiles", f"must satisfy 0 <= low < high <= 100 {shown}")
        if self.window_index < 0:
            raise ParameterError("window_index", f"must be >= 0 (got {self.window_index})")


@dataclass
class Applied:
    """What the pipeline did to one image: enough to reproduce it and to audit a dataset."""

    photometric: str = ""
    modality: str = "none"
    """``none``, ``rescale`` or ``lut``."""
    rescale_slope: float | None = None
    rescale_intercept: float | None = None
    voi: str = "none"
    """``lut``, ``window``, or ``full-range`` (no VOI step)."""
    voi_detail: str = ""
    window_center: float | None = None
    window_width: float | None = None
    voi_function: str | None = None
    range_low: float | None = None
    range_high: float | None = None
    inverted: bool = False
    bits: int = 8
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = "; ".join(self.notes)
        return d


class DisplayError(CxrlabError):
    """A display attribute that cannot be applied (an invalid window, a malformed LUT)."""


# ---------------------------------------------------------------- LUT sequences


def _lut(item: Dataset, ds: Dataset) -> tuple[np.ndarray, int, int, int]:
    """(entries, first mapped value, number of entries, bits per entry) of a Modality or VOI LUT item."""
    descriptor = cast(list[int], item.LUTDescriptor)
    nr_entries = int(descriptor[0]) or 2**16
    first_map = int(descriptor[1])
    depth = int(descriptor[2])
    dtype = "uint8" if depth == 8 else "uint16"
    element = item["LUTData"]
    data: Iterable[int]
    if element.VR == VR.OW:
        little = _is_little_endian(ds)
        data = unpack_from(f"{'><'[little]}{nr_entries}H", cast(bytes, element.value))
    else:
        value = element.value
        data = [value] if isinstance(value, int) else cast(list[int], value)
    return np.asarray(data, dtype=dtype), first_map, nr_entries, depth


def _is_little_endian(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID"):
        syntax = UID(str(meta.TransferSyntaxUID))
        if syntax.is_transfer_syntax:
            return bool(syntax.is_little_endian)
    little = ds.original_encoding[1]
    if little is None:
        raise DisplayError("cannot tell the byte order of an OW LUT: the dataset has no Transfer Syntax UID")
    return bool(little)


def _lut_index(arr: np.ndarray, first_map: int, nr_entries: int) -> np.ndarray:
    """Entry of each value: ``value - first_map`` clipped to ``0 .. nr_entries - 1``, in int64.

    pydicom computes it in the data's or the entries' dtype, where it wraps around: an 8-bit LUT of 4096
    entries maps 256 to entry 0, and int16 values near 32767 minus a negative first value go negative.
    Non-integer inputs (a fractional rescale) are floored, as pydicom's truncation does for them.
    """
    values = np.asarray(arr)
    if values.dtype.kind == "f":
        values = np.floor(values)
    index = values.astype(np.int64) - int(first_map)
    return np.clip(index, 0, nr_entries - 1, out=index)


# ---------------------------------------------------------------- step functions


def apply_modality_lut(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """Modality LUT Sequence (uint8/16 entries) or Rescale Slope/Intercept (float64), else ``arr`` as is."""
    if ds.get("ModalityLUTSequence"):
        lut, first_map, nr_entries, _ = _lut(ds.ModalityLUTSequence[0], ds)
        return cast(np.ndarray, lut[_lut_index(arr, first_map, nr_entries)])
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        out = arr.astype(np.float64) * float(ds.RescaleSlope)
        out += float(ds.RescaleIntercept)
        return out
    return arr


def apply_voi(arr: np.ndarray, ds: Dataset, index: int = 0) -> np.ndarray:
    """Item ``index`` of the VOI LUT Sequence (uint8/16 entries), else ``arr`` unchanged."""
    if not ds.get("VOILUTSequence"):
        return arr
    item = _item(ds.VOILUTSequence, index, "VOI LUT Sequence")
    lut, first_map, nr_entries, depth = _lut(item, ds)
    if depth != 8 and not 10 <= depth <= 16:
        raise DisplayError(f"a VOI LUT of {depth} bits per entry is not allowed (8 or 10-16)")
    return cast(np.ndarray, lut[_lut_index(arr, first_map, nr_entries)])


def _item(seq: Any, index: int, what: str) -> Dataset:
    if index >= len(seq):
        raise DisplayError(f"{what} has {len(seq)} item(s); item {index + 1} was asked for")
    return cast(Dataset, seq[index])


def _window(ds: Dataset, index: int) -> tuple[float, float]:
    values = []
    for keyword in ("WindowCenter", "WindowWidth"):
        element = ds[keyword]
        if element.VM > 1:
            if index >= element.VM:
                raise DisplayError(f"{keyword} has {element.VM} values; window {index + 1} was asked for")
            values.append(float(element.value[index]))
        else:
            if index > 0:
                raise DisplayError(f"{keyword} has 1 value; window {index + 1} was asked for")
            values.append(float(element.value))
    return values[0], values[1]


def window_range(ds: Dataset) -> tuple[float, float]:
    """pydicom's (y_min, y_max) of a windowing output: the stored range, through the modality step."""
    bits_stored = int(ds.BitsStored)
    if ds.get("ModalityLUTSequence"):
        y_min, y_max = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(ds.PixelRepresentation) == 0:
        y_min, y_max = 0.0, float(2**bits_stored - 1)
    else:
        y_min, y_max = float(-(2 ** (bits_stored - 1))), float(2 ** (bits_stored - 1) - 1)
    if ds.get("RescaleSlope") is not None and ds.get("RescaleIntercept") is not None:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        y_min, y_max = y_min * slope + intercept, y_max * slope + intercept
    return y_min, y_max


def apply_windowing(arr: np.ndarray, ds: Dataset, index: int = 0) -> np.ndarray:
    """Window Center/Width ``index`` with VOI LUT Function LINEAR, LINEAR_EXACT or SIGMOID (float64)."""
    if "WindowWidth" not in ds and "WindowCenter" not in ds:
        return arr
    if ds.PhotometricInterpretation not in ("MONOCHROME1", "MONOCHROME2"):
        raise DisplayError(f"windowing needs MONOCHROME1/2, not {ds.PhotometricInterpretation}")
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    center, width = _window(ds, index)
    y_min, y_max = window_range(ds)
    y_range = y_max - y_min
    out = arr.astype(np.float64)
    if function in ("LINEAR", "LINEAR_EXACT"):
        if function == "LINEAR":
            if width < 1:
                raise DisplayError(f"Window Width {width} must be >= 1 for a LINEAR window")
            center -= 0.5
            width -= 1
        elif width <= 0:
            raise DisplayError(f"Window Width {width} must be > 0 for a LINEAR_EXACT window")
        below = out <= (center - width / 2)
        above = out > (center + width / 2)
        between = ~below & ~above
        out[below] = y_min
        out[above] = y_max
        if between.any():
            out[between] = ((out[between] - center) / width + 0.5) * y_range + y_min
        return out
    if function == "SIGMOID":
        if width <= 0:
            raise DisplayError(f"Window Width {width} must be > 0 for a SIGMOID window")
        return cast(np.ndarray, y_range / (1 + np.exp(-4 * (out - center) / width)) + y_min)
    raise DisplayError(f"VOI LUT Function '{function}' is not one of LINEAR, LINEAR_EXACT, SIGMOID")


def _has_voi_lut(ds: Dataset) -> bool:
    seq = ds.get("VOILUTSequence")
    return bool(seq) and None not in (seq[0].get("LUTDescriptor"), seq[0].get("LUTData"))


def _has_window(ds: Dataset) -> bool:
    return ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None


def voi_step(ds: Dataset, prefer_lut: bool = True) -> str:
    """Which VOI step :func:`apply_voi_lut` takes for ``ds``: ``lut``, ``window`` or ``none``."""
    lut, window = _has_voi_lut(ds), _has_window(ds)
    if lut and (prefer_lut or not window):
        return "lut"
    if window:
        return "window"
    return "none"


def apply_voi_lut(arr: np.ndarray, ds: Dataset, index: int = 0, prefer_lut: bool = True) -> np.ndarray:
    """The VOI LUT Sequence, else the window; with both, ``prefer_lut`` chooses (pydicom's dispatcher)."""
    step = voi_step(ds, prefer_lut)
    if step == "lut":
        return apply_voi(arr, ds, index)
    if step == "window":
        return apply_windowing(arr, ds, index)
    return arr


def invert_monochrome1(arr: np.ndarray, ds: Dataset, low: float, high: float) -> np.ndarray:
    """MONOCHROME1 (minimum = white) becomes MONOCHROME2 within the display range ``[low, high]``."""
    if str(ds.get("PhotometricInterpretation", "")) != "MONOCHROME1":
        return arr
    return (low + high) - np.asarray(arr, dtype=np.float64)


def to_output(arr: np.ndarray, low: float, high: float, bits: int = 8) -> np.ndarray:
    """Scale ``[low, high]`` to ``0 .. 2**bits - 1`` (rounded, clipped): uint8 or uint16."""
    top = 2**bits - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    if high == low:
        return np.zeros(np.shape(arr), dtype=dtype)
    scaled = (np.asarray(arr, dtype=np.float64) - low) * (top / (high - low))
    return cast(np.ndarray, np.clip(np.rint(scaled), 0, top).astype(dtype))


# ---------------------------------------------------------------- the whole chain


def _lut_range(ds: Dataset, index: int, applied: Applied) -> tuple[float, float]:
    """Output range of the VOI LUT: 2**bits - 1, or fewer bits when every entry fits in them (a known
    quirk: LUTs declared 16-bit whose entries stop at 4095 would otherwise display nearly black)."""
    item = _item(ds.VOILUTSequence, index, "VOI LUT Sequence")
    lut, _, _, depth = _lut(item, ds)
    used = max(8, int(lut.max()).bit_length()) if lut.size else depth
    if used < depth:
        applied.notes.append(f"VOI LUT entries use {used} of the {depth} bits declared; range set to {used}")
        depth = used
    return 0.0, float(2**depth - 1)


def _window_problem(ds: Dataset, index: int) -> str | None:
    """Why the window cannot be applied (pydicom would raise), or None."""
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        return f"VOI LUT Function '{function}' is unknown"
    try:
        _, width = _window(ds, index)  # a window index the file lacks stays an error
    except (ValueError, TypeError) as exc:
        return f"malformed window ({exc})"
    if (function == "LINEAR" and width < 1) or width <= 0:
        return f"Window Width {width:g} is invalid for {function}"
    return None


def _plan(ds: Dataset, options: DisplayOptions, modality_values: np.ndarray | None,
          weights: np.ndarray | None) -> tuple[str, Applied]:  # fmt: skip
    """Decide the steps and fill in what will be applied (the full range needs modality values)."""
    applied = Applied(photometric=str(ds.get("PhotometricInterpretation", "")), bits=options.bits)
    if ds.get("ModalityLUTSequence"):
        applied.modality = "lut"
    elif "RescaleSlope" in ds and "RescaleIntercept" in ds:
        applied.modality = "rescale"
        applied.rescale_slope = float(ds.RescaleSlope)
        applied.rescale_intercept = float(ds.RescaleIntercept)
    step = voi_step(ds, options.prefer_lut) if options.voi == "auto" else "none"
    idx = options.window_index
    if step == "window" and (problem := _window_problem(ds, idx)):
        applied.notes.append(f"{problem}: window not applied, full range used instead")
        step = "none"
    if step == "lut":
        n = len(ds.VOILUTSequence)
        applied.voi = "lut"
        applied.voi_detail = f"VOI LUT {idx + 1} of {n}"
        applied.range_low, applied.range_high = _lut_range(ds, idx, applied)
    elif step == "window":
        center, width = _window(ds, idx)
        n = ds["WindowCenter"].VM
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        applied.voi = "window"
        applied.window_center, applied.window_width, applied.voi_function = center, width, function
        applied.voi_detail = f"window {idx + 1} of {n}: center {center:g} width {width:g} {function}"
        applied.range_low, applied.range_high = window_range(ds)
    else:
        applied.voi = "full-range"
        why = "VOI skipped" if options.voi == "none" else "no VOI in the file"
        if applied.notes and options.voi != "none":
            why = "window unusable"
        if modality_values is None or modality_values.size == 0:
            raise DisplayError("the full range needs the image's values")
        if options.full_range == "minmax":
            low, high = float(np.min(modality_values)), float(np.max(modality_values))
            applied.voi_detail = f"{why}: full range min-max"
        else:
            if weights is None:
                modality_values, weights = _value_counts(modality_values)
            low, high = _weighted_percentiles(modality_values, weights, options.percentiles)
            applied.voi_detail = (
                f"{why}: full range percentiles {options.percentiles[0]:g}-{options.percentiles[1]:g}"
            )
        applied.range_low, applied.range_high = low, high
    applied.inverted = applied.photometric == "MONOCHROME1"
    return step, applied


def _weighted_percentiles(values: np.ndarray, weights: np.ndarray,
                          q: tuple[float, float]) -> tuple[float, float]:  # fmt: skip
    """Percentiles of ``values`` repeated ``weights`` times, by the inverted CDF (the smallest value whose
    cumulative share reaches q; numpy's ``method="inverted_cdf"``)."""
    order = np.argsort(values, kind="stable")
    v, cdf = values[order], np.cumsum(weights[order], dtype=np.int64)
    total = int(cdf[-1])
    out = []
    for p in q:
        # the k-th smallest value, k = ceil(total * p / 100) (at least 1), in exact integer arithmetic
        k = max(1, -(-round(total * p * 1_000_000) // 100_000_000))
        out.append(float(v[min(int(np.searchsorted(cdf, k, side="left")), len(v) - 1)]))
    return out[0], out[1]


def _value_counts(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, counts = np.unique(np.asarray(arr).ravel(), return_counts=True)
    return np.asarray(values, dtype=np.float64), counts


def _chain(
    values: np.ndarray, ds: Dataset, step: str, applied: Applied, options: DisplayOptions
) -> np.ndarray:
    modality = apply_modality_lut(values, ds)
    if step == "lut":
        voi = apply_voi(modality, ds, options.window_index)
    elif step == "window":
        voi = apply_windowing(modality, ds, options.window_index)
    else:
        voi = modality
    low, high = cast(float, applied.range_low), cast(float, applied.range_high)
    shown = invert_monochrome1(voi, ds, low, high)
    return to_output(shown, low, high, options.bits)


def display_reference(stored: np.ndarray, ds: Dataset, options: DisplayOptions | None = None
                      ) -> tuple[np.ndarray, Applied]:  # fmt: skip
    """The chain applied step by step to the whole image: slow, obvious, and the table's reference."""
    options = options or DisplayOptions()
    stats = apply_modality_lut(stored, ds) if _needs_stats(ds, options) else None
    step, applied = _plan(ds, options, None if stats is None else np.asarray(stats).ravel(), None)
    return _chain(stored, ds, step, applied, options), applied


def _needs_stats(ds: Dataset, options: DisplayOptions) -> bool:
    if options.voi == "none":
        return True
    step = voi_step(ds, options.prefer_lut)
    return step == "none" or (step == "window" and _window_problem(ds, options.window_index) is not None)


def _all_values(ds: Dataset) -> np.ndarray:
    allocated = int(ds.BitsAllocated)
    if allocated > 16:
        raise DisplayError(f"a lookup table needs at most 16 bits allocated, not {allocated}")
    bits = 8 if allocated <= 8 else 16  # 1-bit data decodes to uint8, 12-bit packed to uint16
    unsigned = np.arange(2**bits, dtype=np.uint8 if bits == 8 else np.uint16)
    return unsigned.view(np.int8 if bits == 8 else np.int16) if int(ds.PixelRepresentation) == 1 else unsigned


def display_table(ds: Dataset, options: DisplayOptions | None = None, stats_of: np.ndarray | None = None
                  ) -> tuple[np.ndarray, Applied]:  # fmt: skip
    """One table of 2**BitsAllocated entries (uint8/16) folding modality, VOI, inversion and scaling.

    Index it with the stored values viewed as unsigned (``stored.view(uint16)`` also serves signed data).
    ``stats_of``: stored values whose modality range sets the full range when there is no VOI step (the
    whole image, or a resized copy: cheaper, and what :mod:`cxrlab.imaging.convert` uses).
    """
    options = options or DisplayOptions()
    key = _table_key(ds, options)
    cached = _TABLES.get(key) if key is not None else None
    if cached is not None:
        return cached[0], replace(cached[1], notes=list(cached[1].notes))
    values = _all_values(ds)
    modality_values = weights = None
    if _needs_stats(ds, options):
        if stats_of is None:
            raise DisplayError("the full range needs the image's values (stats_of)")
        counts = np.bincount(_as_unsigned(stats_of).ravel(), minlength=values.size)
        present = counts > 0
        modality_values = np.asarray(apply_modality_lut(values[present], ds), dtype=np.float64)
        weights = counts[present]
    step, applied = _plan(ds, options, modality_values, weights)
    table = _chain(values, ds, step, applied, options)
    if key is not None and modality_values is None:  # the table depends on the header alone: keep it
        if len(_TABLES) >= TABLES_KEPT:
            _TABLES.clear()
        table.flags.writeable = False
        _TABLES[key] = (table, replace(applied, notes=list(applied.notes)))
    return table, applied


TABLE_ATTRIBUTES = (
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "RescaleSlope",
    "RescaleIntercept",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
)
"""Every attribute the table is made of when the file has no LUT sequence (the sequences are not cached)."""
TABLES_KEPT = 64
_TABLES: dict[tuple[Any, ...], tuple[np.ndarray, Applied]] = {}
"""Tables already made in this process, by :func:`_table_key`: a dataset's images usually share one
window and one bit depth, and building the 65536-entry table is ~0.3-0.5 ms of a ~15 ms conversion."""


def _table_key(ds: Dataset, options: DisplayOptions) -> tuple[Any, ...] | None:
    """The header values the table depends on (their text as stored: a different spelling of the same
    number is only a miss), or None when the file has a LUT sequence (then the table is made each time)."""
    if "ModalityLUTSequence" in ds or "VOILUTSequence" in ds:
        return None
    key: list[Any] = [options]
    for keyword in TABLE_ATTRIBUTES:
        if keyword not in ds:
            key.append(None)
            continue
        value = ds[keyword].value
        key.append(tuple(map(str, value)) if isinstance(value, list | tuple | MultiValue) else (str(value),))
    return tuple(key)


def _as_unsigned(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "u":
        return arr
    return arr.view(np.dtype(f"u{arr.dtype.itemsize}"))


def apply_table(stored: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Gather ``table[stored]``, treating signed stored values as their unsigned bit patterns."""
    index = _as_unsigned(stored)
    if index.dtype == np.uint8 and table.dtype == np.uint8:
        import cv2

        return cast(np.ndarray, cv2.LUT(index, table))
    return cast(np.ndarray, np.take(table, index))


def to_display(stored: np.ndarray, ds: Dataset, options: DisplayOptions | None = None,
               stats_of: np.ndarray | None = None) -> tuple[np.ndarray, Applied]:  # fmt: skip
    """Stored values -> display values by the folded table (the step functions for unusual data)."""
    options = options or DisplayOptions()
    if stored.dtype.kind not in "ui" or stored.dtype.itemsize not in (1, 2) or stored.ndim != 2:
        return display_reference(stored, ds, options)
    table, applied = display_table(ds, options, stored if stats_of is None else stats_of)
    return apply_table(stored, table), applied
