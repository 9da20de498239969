"""Display renditions: each original decoded once through :mod:`cxrlab.imaging` into a 16-bit grey PNG at
full resolution, cached, and made ahead of the reader.

The rendition keeps the full bit depth so the viewer windows on the client: the modality LUT is applied; a
VOI LUT in the file is applied (it is not linear, a client window cannot redo it); otherwise the full range
of the modality values is mapped linearly to 0..65535, and the file's own windows become presets in those
units. MONOCHROME1 is inverted, so air is dark in every rendition. Pixel (x, y) of level 0 is pixel (x, y) of
the original: boxes need no scaling; smaller levels (each half the previous, down to screen size) say their
``scale``. Presets ``auto`` (0.5-99.5 percentiles), ``lung`` and
``mediastinum`` (the lower and upper parts of that range: a heuristic, radiographs have no absolute units)
and ``full`` are added for every image.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cxrlab.atomic import write_bytes_atomic
from cxrlab.errors import CxrlabError
from cxrlab.imaging.decoders import decode_pixels, read_dataset
from cxrlab.imaging.dicom import DisplayOptions, to_display, voi_step

TOP = 65535
SCREEN = 1280


@dataclass(frozen=True)
class ImageRef:
    """What a rendition needs of an image row (plain values: safe to hand to another thread)."""

    id: int
    project_id: int
    kind: str
    source: str


def _windows(ds: Any) -> list[tuple[float, float]]:
    centers, widths = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centers is None or widths is None:
        return []
    centers = list(centers) if hasattr(centers, "__iter__") and not isinstance(centers, str) else [centers]
    widths = list(widths) if hasattr(widths, "__iter__") and not isinstance(widths, str) else [widths]
    return [(float(c), float(w)) for c, w in zip(centers, widths, strict=False) if float(w) > 0]


def render_dicom(path: str) -> tuple[np.ndarray, dict[str, Any]]:
    ds = read_dataset(path)
    pixels = decode_pixels(ds, path=path).pixels
    if pixels.ndim == 3:
        grey = cv2.cvtColor(pixels[..., :3], cv2.COLOR_RGB2GRAY)
        return grey.astype(np.uint16) * (257 if grey.dtype == np.uint8 else 1), {"voi": "colour: luminance"}
    lut = voi_step(ds) == "lut"
    out, applied = to_display(pixels, ds, DisplayOptions(bits=16, voi="auto" if lut else "none"))
    info: dict[str, Any] = {
        "voi": applied.voi_detail or applied.voi,
        "inverted": applied.inverted,
        "windows": [],
    }
    low, high = applied.range_low, applied.range_high
    if not lut and low is not None and high is not None and high > low:
        scale = TOP / (high - low)
        for i, (center, width) in enumerate(_windows(ds), 1):
            mapped = (center - low) * scale
            info["windows"].append(
                {
                    "name": f"DICOM window {i}",
                    "center": TOP - mapped if applied.inverted else mapped,
                    "width": width * scale,
                }
            )
    return np.asarray(out, dtype=np.uint16), info


def render_png(path: str) -> tuple[np.ndarray, dict[str, Any]]:
    img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise CxrlabError(f"{path}: not a readable PNG file")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    if img.dtype == np.uint8:
        img = img.astype(np.uint16) * 257
    return img, {"voi": "PNG: stored values", "inverted": False, "windows": []}


def presets(img: np.ndarray, windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sample = img[::4, ::4]
    lo, p40, p60, hi = (float(v) for v in np.percentile(sample, [0.5, 40, 60, 99.5]))
    hi = max(hi, lo + 1)

    def span(name: str, a: float, b: float) -> dict[str, Any]:
        return {"name": name, "center": (a + b) / 2, "width": max(b - a, 1.0)}

    return [
        *windows,
        span("auto", lo, hi),
        span("lung", lo, max(p60, lo + 1)),
        span("mediastinum", min(p40, hi - 1), hi),
        span("full", 0, TOP),
    ]


def pyramid(img: np.ndarray) -> list[np.ndarray]:
    """Level 0 is the full image; each next level halves it (area averaging) while the previous one is still
    larger than a screen (``SCREEN`` px on its long side): the viewer shows the smallest level that fills its
    canvas and fetches the full resolution when the reader zooms in."""
    levels = [img]
    while max(levels[-1].shape) > SCREEN:
        h, w = levels[-1].shape
        levels.append(cv2.resize(levels[-1], (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA))
    return levels


class RenditionCache:
    """``DIR/PROJECT/IMAGE.png`` + ``.json``; one build at a time per image, prefetch on one thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rendition")
        self._queued: set[int] = set()

    def paths(self, ref: ImageRef) -> tuple[Path, Path]:
        return self._paths(ref.project_id, ref.id)

    def _paths(self, project_id: int, image_id: int) -> tuple[Path, Path]:
        """The image's full-resolution rendition and its metadata file (written last)."""
        base = self.folder / str(project_id) / str(image_id)
        return base.with_suffix(".png"), base.with_suffix(".json")

    def ready(self, project_id: int, image_id: int) -> bool:
        """Whether the image's renditions are all made (its metadata file is written last)."""
        return self._paths(project_id, image_id)[1].is_file()

    def _lock(self, image_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(image_id, threading.Lock())

    def ensure(self, ref: ImageRef) -> tuple[Path, dict[str, Any]]:
        """The rendition's PNG path and its metadata, made now if not cached."""
        png, meta = self.paths(ref)
        if not meta.is_file():
            with self._lock(ref.id):
                if not meta.is_file():
                    self._build(ref, png, meta)
        return png, json.loads(meta.read_text())

    def level_path(self, ref: ImageRef, level: int) -> Path:
        png = self.paths(ref)[0]
        return png if level == 0 else png.with_suffix(f".L{level}.png")

    def _build(self, ref: ImageRef, png: Path, meta: Path) -> None:
        img, info = render_dicom(ref.source) if ref.kind == "dicom" else render_png(ref.source)
        levels = []
        for level, scaled in enumerate(pyramid(img)):
            ok, encoded = cv2.imencode(".png", scaled, [cv2.IMWRITE_PNG_COMPRESSION, 1])
            if not ok:
                raise CxrlabError(f"image {ref.id}: the rendition could not be encoded")
            write_bytes_atomic(self.level_path(ref, level), encoded.tobytes())
            levels.append(
                {
                    "level": level,
                    "width": int(scaled.shape[1]),
                    "height": int(scaled.shape[0]),
                    "scale": scaled.shape[1] / img.shape[1],
                }
            )
        info.update(
            width=int(img.shape[1]),
            height=int(img.shape[0]),
            bits=16,
            levels=levels,
            presets=presets(img, info.pop("windows")),
        )
        write_bytes_atomic(meta, json.dumps(info).encode())  # last: its presence means all levels are there

    def prefetch(self, refs: list[ImageRef]) -> None:
        """Make the renditions of ``refs`` in the background (the next images of a reader's queue)."""
        for ref in refs:
            if self.ready(ref.project_id, ref.id):
                continue
            with self._guard:
                if ref.id in self._queued:
                    continue
                self._queued.add(ref.id)
            self._pool.submit(self._prefetch_one, ref)

    def _prefetch_one(self, ref: ImageRef) -> None:
        try:
            self.ensure(ref)
        except Exception:  # a broken file is reported when the reader opens it, not here
            pass
        finally:
            with self._guard:
                self._queued.discard(ref.id)

    def level(self, ref: ImageRef, level: int) -> tuple[Path, dict[str, Any]]:
        """The PNG of one pyramid level (0: full resolution) and that level's size; KeyError if absent."""
        _, meta = self.ensure(ref)
        found = [entry for entry in meta.get("levels", [{"level": 0}]) if entry["level"] == level]
        if not found:
            raise KeyError(level)
        return self.level_path(ref, level), {**meta, **found[0]}

    def raw(self, ref: ImageRef, level: int = 0) -> tuple[bytes, dict[str, Any]]:
        """A level as little-endian uint16 rows (for a client without a 16-bit PNG decoder)."""
        png, meta = self.level(ref, level)
        img = cv2.imdecode(np.fromfile(png, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise CxrlabError(f"image {ref.id}: its cached rendition is unreadable (delete {png} to rebuild)")
        return img.astype("<u2").tobytes(), meta

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
