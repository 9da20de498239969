"""Render synthetic PA chest radiographs with lesions drawn exactly where their boxes say.

Boxes: ``x_min, y_min, x_max, y_max``, pixels of the rendered image, origin top-left (docs/conventions.md).
The image is an *attenuation* map in [0, 1]: bone, soft tissue and lesions bright, air dark, as a
MONOCHROME2 radiograph shows it. Writers turn it into stored values (and invert it for MONOCHROME1).

The smooth anatomy (body, lungs, heart, mediastinum, spine, ribs, clavicles, diaphragm, lung markings) is
drawn on a grid of at most ~320 pixels and resized, which keeps a 1024 px image at a few tens of ms;
lesions and quantum noise are drawn at full resolution, each only inside its box's neighbourhood.
A chest's layout (:class:`ChestGeometry`) is sampled first so that :func:`place_lesion` can put a box in
the right anatomical place (a nodule inside a lung, an effusion at a costophrenic angle, ...), and the
same geometry is then rendered.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

__all__ = [
    "LESION_KINDS",
    "ChestGeometry",
    "Lesion",
    "place_lesion",
    "render_chest",
    "sample_geometry",
]

LESION_KINDS: tuple[str, ...] = (
    "nodule",
    "mass",
    "calcification",
    "opacity",
    "consolidation",
    "infiltration",
    "edema",
    "ild",
    "fibrosis",
    "atelectasis",
    "effusion",
    "pleural_thickening",
    "pneumothorax",
    "emphysema",
    "cavity",
    "cyst",
    "aortic_enlargement",
    "enlarged_pa",
    "mediastinal_shift",
    "rib_fracture",
    "clavicle_fracture",
    "cardiomegaly",
    "other",
)
"""What :func:`render_chest` can draw; datasets map their labels onto these."""

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Lesion:
    """One drawn abnormality: its kind (of :data:`LESION_KINDS`) and its box in image pixels."""

    kind: str
    box: Box
    strength: float = 1.0
    """Contrast multiplier (1 = clearly visible; 0.5 = subtle)."""

    def __post_init__(self) -> None:
        if self.kind not in LESION_KINDS:
            raise ValueError(f"unknown lesion kind {self.kind!r}; known: {', '.join(LESION_KINDS)}")


@dataclass(frozen=True)
class ChestGeometry:
    """Where the organs are, in fractions of the image width (x) and height (y)."""

    height: int
    width: int
    lung_cx: tuple[float, float] = (0.31, 0.69)
    """Centres of the patient's right lung (image left) and left lung (image right)."""
    lung_cy: float = 0.42
    lung_rx: float = 0.155
    lung_ry: float = 0.33
    diaphragm: tuple[float, float] = (0.70, 0.73)
    """Height of each hemidiaphragm at its lateral end."""
    dome: float = 0.06
    mediastinum: float = 0.075
    """Half width of the mediastinum above the heart."""
    heart_cx: float = 0.545
    heart_cy: float = 0.61
    heart_rx: float = 0.15
    heart_ry: float = 0.11
    rib_start: float = 0.11
    rib_step: float = 0.058
    body_rx: float = 0.47
    tilt: float = 0.0
    """Small left-right asymmetry of the whole chest (fraction of the width)."""

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def heart_box(self) -> Box:
        """The heart's bounding box in pixels (the box a reader draws for cardiomegaly)."""
        w, h = self.width, self.height
        cx = self.heart_cx + self.tilt
        return (
            (cx - self.heart_rx) * w,
            (self.heart_cy - self.heart_ry) * h,
            (cx + self.heart_rx) * w,
            (self.heart_cy + self.heart_ry) * h,
        )

    def thorax_width(self) -> float:
        """Widest span of the lungs in pixels (cardiothoracic ratio denominator)."""
        return (self.lung_cx[1] - self.lung_cx[0] + 2 * self.lung_rx) * self.width

    def lung_mask(
        self, x: np.ndarray, y: np.ndarray, side: int | None = None, edge: float = 0.0
    ) -> np.ndarray:
        """Lung membership of normalized points (1 in, 0 out, soft over ``edge``); side 0, 1 or None."""
        sides = (0, 1) if side is None else (side,)
        out = np.zeros(np.broadcast(x, y).shape, dtype=np.float32)
        for s in sides:
            out = np.maximum(out, self._one_lung(x, y, s, edge))
        heart = _ellipse(x, y, self.heart_cx + self.tilt, self.heart_cy, self.heart_rx, self.heart_ry, edge)
        return out * (1 - heart)

    def _one_lung(self, x: np.ndarray, y: np.ndarray, s: int, edge: float) -> np.ndarray:
        cx = self.lung_cx[s] + self.tilt
        ell = _ellipse(x, y, cx, self.lung_cy, self.lung_rx, self.lung_ry, edge)
        t = np.clip((x - cx) / self.lung_rx, -1, 1)
        dome_y = self.diaphragm[s] - self.dome * (1 - t**2) * 0.9 + (0.02 if s == 1 else 0.0) * (1 - t**2)
        below = _step(dome_y - y, edge)
        medial_x = 0.5 + self.tilt + (self.mediastinum if s == 1 else -self.mediastinum)
        lateral = _step((x - medial_x) if s == 1 else (medial_x - x), edge)
        return ell * below * lateral


def _step(d: np.ndarray, edge: float) -> np.ndarray:
    """Soft indicator of d > 0 over a ramp of width ``edge`` (hard when edge is 0)."""
    if edge <= 0:
        return (np.asarray(d) > 0).astype(np.float32)
    return np.clip(0.5 + np.asarray(d, dtype=np.float32) / edge, 0, 1).astype(np.float32)


def _ellipse(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float, edge: float
) -> np.ndarray:
    r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return _step((1 - r) * min(rx, ry), edge)


def sample_geometry(rng: np.random.Generator, shape: tuple[int, int]) -> ChestGeometry:
    """A plausible chest layout for an image of ``shape`` (rows, cols), varied by ``rng``."""
    u = rng.uniform
    sep = u(0.36, 0.40)
    tilt = u(-0.015, 0.015)
    return ChestGeometry(
        height=int(shape[0]),
        width=int(shape[1]),
        lung_cx=(0.5 - sep / 2, 0.5 + sep / 2),
        lung_cy=u(0.40, 0.44),
        lung_rx=u(0.145, 0.165),
        lung_ry=u(0.31, 0.35),
        diaphragm=(u(0.68, 0.72), u(0.71, 0.75)),
        dome=u(0.045, 0.075),
        mediastinum=u(0.065, 0.085),
        heart_cx=u(0.53, 0.56),
        heart_cy=u(0.59, 0.63),
        heart_rx=u(0.13, 0.16),
        heart_ry=u(0.095, 0.115),
        rib_start=u(0.10, 0.12),
        rib_step=u(0.054, 0.062),
        body_rx=u(0.44, 0.49),
        tilt=tilt,
    )


# ----------------------------------------------------------------------------------------- lesion placement
def place_lesion(
    kind: str, geometry: ChestGeometry, rng: np.random.Generator, *, strength: float = 1.0
) -> Lesion:
    """A lesion of ``kind`` with a box at an anatomically sensible place of ``geometry`` (pixels)."""
    g = geometry
    u = rng.uniform
    side = int(rng.integers(0, 2))
    if kind in ("nodule", "mass", "calcification", "cavity", "cyst", "other"):
        r = {
            "nodule": u(0.012, 0.028),
            "mass": u(0.035, 0.06),
            "calcification": u(0.006, 0.012),
            "cavity": u(0.025, 0.045),
            "cyst": u(0.02, 0.04),
            "other": u(0.02, 0.05),
        }[kind]
        cx, cy = _point_in_lung(g, rng, side, margin=r * 1.2, upper=kind in ("cavity",))
        return _lesion(
            kind, g, cx - r, cy - r * g.width / g.height, cx + r, cy + r * g.width / g.height, strength
        )
    lcx = g.lung_cx[side] + g.tilt
    lateral = -1 if side == 0 else 1
    outer = lcx + lateral * g.lung_rx  # lateral lung edge, normalized x
    base = g.diaphragm[side]
    apex = g.lung_cy - g.lung_ry
    if kind in ("opacity", "consolidation", "infiltration", "edema", "ild", "fibrosis", "emphysema"):
        bw = u(0.07, 0.14) if kind != "edema" else u(0.12, 0.18)
        bh = u(0.08, 0.18) if kind not in ("edema", "emphysema") else u(0.15, 0.25)
        upper = kind in ("fibrosis", "emphysema")
        lower = kind in ("consolidation", "edema")
        cx, cy = _point_in_lung(g, rng, side, margin=0.6 * min(bw, bh), upper=upper, lower=lower)
        return _lesion(kind, g, cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, strength)
    if kind == "atelectasis":
        bw, bh = u(0.08, 0.15), u(0.03, 0.06)
        cx, cy = _point_in_lung(g, rng, side, margin=bw / 2, lower=True)
        return _lesion(kind, g, cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, strength)
    if kind == "effusion":
        bw, bh = u(0.10, 0.18), u(0.08, 0.16)
        x0, x1 = sorted((outer - lateral * 0.01, outer - lateral * (bw + 0.01)))
        return _lesion(kind, g, x0, base - bh, x1, base + 0.015, strength)
    if kind == "pleural_thickening":
        if rng.random() < 0.5:  # apical cap
            bw, bh = u(0.08, 0.14), u(0.025, 0.045)
            return _lesion(kind, g, lcx - bw / 2, apex + 0.005, lcx + bw / 2, apex + 0.005 + bh, strength)
        bw, bh = u(0.025, 0.04), u(0.12, 0.22)
        cy = u(g.lung_cy - 0.1, g.lung_cy + 0.12)
        x0, x1 = sorted((outer - lateral * 0.005, outer - lateral * (0.005 + bw)))
        return _lesion(kind, g, x0, cy - bh / 2, x1, cy + bh / 2, strength)
    if kind == "pneumothorax":
        bw, bh = u(0.06, 0.11), u(0.18, 0.32)
        x0, x1 = sorted((outer - lateral * 0.005, outer - lateral * (0.005 + bw)))
        y0 = apex + 0.05
        return _lesion(kind, g, x0, y0, x1, y0 + bh, strength)
    if kind == "aortic_enlargement":
        cx, cy = 0.5 + g.tilt + g.mediastinum + u(0.0, 0.015), g.lung_cy - u(0.12, 0.15)
        rw, rh = u(0.04, 0.06), u(0.035, 0.05)
        return _lesion(kind, g, cx - rw, cy - rh, cx + rw, cy + rh, strength)
    if kind == "enlarged_pa":
        cx, cy = 0.5 + g.tilt + g.mediastinum + u(0.01, 0.03), g.lung_cy + u(-0.03, 0.01)
        rw, rh = u(0.03, 0.045), u(0.03, 0.045)
        return _lesion(kind, g, cx - rw, cy - rh, cx + rw, cy + rh, strength)
    if kind == "mediastinal_shift":
        cx = 0.5 + g.tilt + u(-0.02, 0.02)
        return _lesion(kind, g, cx - 0.08, g.lung_cy - 0.25, cx + 0.08, g.heart_cy - 0.05, strength)
    if kind == "rib_fracture":
        k = int(rng.integers(2, 8))
        d = u(0.2, 0.38)
        cx = 0.5 + g.tilt + lateral * d
        cy = float(_rib_y(g, k, d))
        r = u(0.015, 0.025)
        return _lesion(kind, g, cx - r, cy - r, cx + r, cy + r, strength)
    if kind == "clavicle_fracture":
        d = u(0.12, 0.3)
        cx, cy = 0.5 + g.tilt + lateral * d, float(_clavicle_y(g, d))
        r = u(0.015, 0.025)
        return _lesion(kind, g, cx - r, cy - r, cx + r, cy + r, strength)
    if kind == "cardiomegaly":
        raise ValueError("cardiomegaly changes the geometry: use enlarge_heart()")
    raise ValueError(f"unknown lesion kind {kind!r}")


def enlarge_heart(geometry: ChestGeometry, rng: np.random.Generator) -> tuple[ChestGeometry, Lesion]:
    """A geometry whose heart is wider than half the thorax, and its cardiomegaly lesion (the heart box)."""
    g = geometry
    target_ctr = rng.uniform(0.56, 0.66)
    rx = target_ctr * g.thorax_width() / g.width / 2
    g2 = replace(g, heart_rx=rx, heart_ry=g.heart_ry * rng.uniform(1.05, 1.2), heart_cx=g.heart_cx + 0.01)
    return g2, Lesion("cardiomegaly", g2.heart_box())


def _lesion(
    kind: str, g: ChestGeometry, x0: float, y0: float, x1: float, y1: float, strength: float
) -> Lesion:
    return Lesion(kind, (x0 * g.width, y0 * g.height, x1 * g.width, y1 * g.height), strength)


def _point_in_lung(
    g: ChestGeometry,
    rng: np.random.Generator,
    side: int,
    *,
    margin: float,
    upper: bool = False,
    lower: bool = False,
) -> tuple[float, float]:
    """A normalized point well inside one lung (falls back to the lung's centre)."""
    lcx = g.lung_cx[side] + g.tilt
    y_lo, y_hi = g.lung_cy - g.lung_ry * 0.8, g.diaphragm[side] - 0.05
    if upper:
        y_hi = g.lung_cy
    if lower:
        y_lo = g.lung_cy
    for _ in range(40):
        x = rng.uniform(lcx - g.lung_rx, lcx + g.lung_rx)
        y = rng.uniform(y_lo, y_hi)
        pts_x = np.array([x - margin, x + margin, x, x])
        pts_y = np.array([y, y, y - margin, y + margin])
        if g.lung_mask(pts_x, pts_y, side).min() > 0.5:
            return float(x), float(y)
    return float(lcx), float(g.lung_cy)


def _rib_y(g: ChestGeometry, k: int, d: float | np.ndarray) -> float | np.ndarray:
    """Centre line of posterior rib ``k`` at lateral distance ``d`` from the midline (normalized)."""
    return g.rib_start + k * g.rib_step - 0.12 * d + 0.95 * d**2


def _clavicle_y(g: ChestGeometry, d: float | np.ndarray) -> float | np.ndarray:
    apex = g.lung_cy - g.lung_ry
    return apex + 0.055 - 0.24 * d + 0.2 * d**2


# -------------------------------------------------------------------------------------------- rendering
_LOWRES = 320


def render_chest(
    rng: np.random.Generator,
    size: int | tuple[int, int],
    lesions: list[Lesion],
    *,
    geometry: ChestGeometry | None = None,
    noise: float = 0.012,
) -> np.ndarray:
    """A PA chest radiograph with ``lesions``: float32 attenuation in [0, 1], shape (rows, cols).

    ``size`` is an int for a square image or (rows, cols). Without ``geometry`` one is sampled from ``rng``.
    A ``cardiomegaly`` lesion resizes the heart to its box.
    """
    rows, cols = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    g = geometry if geometry is not None else sample_geometry(rng, (rows, cols))
    if (g.height, g.width) != (rows, cols):
        g = replace(g, height=rows, width=cols)
    for lesion in lesions:
        if lesion.kind == "cardiomegaly":
            x0, y0, x1, y1 = lesion.box
            g = replace(
                g,
                heart_cx=(x0 + x1) / 2 / cols - g.tilt,
                heart_cy=(y0 + y1) / 2 / rows,
                heart_rx=(x1 - x0) / 2 / cols,
                heart_ry=(y1 - y0) / 2 / rows,
            )
    scale = min(1.0, _LOWRES / max(rows, cols))
    lr, lc = max(8, round(rows * scale)), max(8, round(cols * scale))
    low = _anatomy(g, rng, lr, lc)
    img = low if (lr, lc) == (rows, cols) else cv2.resize(low, (cols, rows), interpolation=cv2.INTER_LINEAR)
    for lesion in lesions:
        if lesion.kind != "cardiomegaly":
            _draw_lesion(img, lesion, g, rng)
    if noise > 0:
        img += rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(noise)
    np.clip(img, 0.0, 1.0, out=img)
    return img


def _anatomy(g: ChestGeometry, rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """The lesion-free chest on a (rows, cols) grid."""
    y = ((np.arange(rows, dtype=np.float32) + 0.5) / rows)[:, None]
    x = ((np.arange(cols, dtype=np.float32) + 0.5) / cols)[None, :]
    edge = 3.0 / min(rows, cols)
    mid = 0.5 + g.tilt
    img = np.full((rows, cols), 0.04, dtype=np.float32)

    body = _ellipse(x, y, mid, 0.66, g.body_rx, 0.78, edge * 4)
    shoulders = _step(y - (0.04 + 0.10 * ((x - mid) / 0.5) ** 2), edge * 4)
    body = body * shoulders
    img += body * 0.40
    # soft tissue thicker towards the middle and the abdomen
    img += body * (0.08 * (1 - np.abs(x - mid) / 0.5) + 0.06 * np.clip((y - 0.7) / 0.3, 0, 1))

    lungs = g.lung_mask(x, y, edge=edge * 2)
    heart = _ellipse(x, y, g.heart_cx + g.tilt, g.heart_cy, g.heart_rx, g.heart_ry, edge * 2)
    img -= lungs * 0.30
    img += heart * 0.06

    # mediastinum above the heart, aortic knob, spine with vertebral end plates
    med = _step(g.mediastinum - np.abs(x - mid), edge) * _step(g.heart_cy - y, edge * 3) * body
    img += med * 0.05
    img += _ellipse(x, y, mid + g.mediastinum * 0.9, g.lung_cy - 0.13, 0.03, 0.025, edge) * 0.05
    spine = _step(0.035 - np.abs(x - mid), edge) * body
    plates = 0.75 + 0.25 * np.cos(2 * math.pi * y / 0.045) ** 8
    img += spine * plates * 0.07

    # posterior ribs (both sides at once) and clavicles
    d = np.abs(x - mid)
    outer = (g.lung_cx[1] - g.lung_cx[0]) / 2 + g.lung_rx + 0.03
    along = _step(d - 0.035, edge) * np.clip((outer - d) / 0.06, 0, 1)
    ribs = np.zeros((rows, cols), dtype=np.float32)
    for k in range(11):
        centre = _rib_y(g, k, d)
        half = 0.011 + 0.0015 * k
        off = np.abs(y - centre) / half
        ribs = np.maximum(ribs, np.clip(1 - off**2, 0, 1) * (0.7 + 0.3 * (off > 0.6)))
    img += ribs * along * body * (0.04 + 0.06 * lungs)
    clav = np.clip(1 - (np.abs(y - _clavicle_y(g, d)) / 0.014) ** 2, 0, 1) * _step(0.33 - d, edge * 2)
    img += clav * _step(d - 0.04, edge) * 0.12

    # gastric air bubble under the left hemidiaphragm
    img -= _ellipse(x, y, g.lung_cx[1] + g.tilt, g.diaphragm[1] + 0.05, 0.05, 0.025, edge * 3) * 0.08

    # lung markings: vessel-like ridges, dense at the hila, fading to the periphery
    n: np.ndarray = rng.standard_normal((rows, cols)).astype(np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigmaX=max(1.0, cols / 160))
    n = n / (float(n.std()) + 1e-6)
    vessels = np.exp(-((n / 0.35) ** 2))
    hilum = np.exp(-(((np.abs(x - mid) - 0.1) / 0.16) ** 2) - ((y - g.lung_cy - 0.03) / 0.25) ** 2)
    img += lungs * (1 - heart) * vessels * (0.02 + 0.06 * hilum)
    return img


@dataclass
class _Patch:
    """A lesion's neighbourhood: the image view ``roi`` and coordinates across the box.

    ``u``, ``v`` run over [-1, 1] across the box, ``r`` is their radius; ``xx``, ``yy`` are pixel centres;
    ``s`` the lesion's strength; ``soft`` a couple of pixels of edge in box units.
    """

    roi: np.ndarray
    box: tuple[float, float, float, float]
    bw: float
    bh: float
    xx: np.ndarray
    yy: np.ndarray
    u: np.ndarray
    v: np.ndarray
    r: np.ndarray
    s: np.float32
    soft: float
    img_shape: tuple[int, int]
    rng: np.random.Generator

    def blob(self, amp: float, sharp: float | None = None) -> np.ndarray:
        return np.clip((1 - self.r) / (self.soft if sharp is None else sharp), 0, 1) * amp

    def texture(self, sigma: float) -> np.ndarray:
        t: np.ndarray = self.rng.standard_normal(self.roi.shape).astype(np.float32)
        t = cv2.GaussianBlur(t, (0, 0), sigmaX=max(sigma, 0.8))
        return t / (float(t.std()) + 1e-6)

    def lateral_t(self) -> np.ndarray:
        """0 at the lateral chest wall, 1 medially, for a box on either side."""
        x0, _, x1, _ = self.box
        cols = self.img_shape[1]
        return (self.xx - x0) / self.bw if (x0 + x1) / 2 < cols / 2 else (x1 - self.xx) / self.bw


def _draw_lesion(img: np.ndarray, lesion: Lesion, g: ChestGeometry, rng: np.random.Generator) -> None:
    """Add one lesion to ``img`` in place, inside a neighbourhood of its box."""
    painter = _PAINTERS.get(lesion.kind)  # cardiomegaly is drawn as the heart itself, not here
    patch = _patch(img, lesion, rng) if painter is not None else None
    if painter is not None and patch is not None:
        painter(patch, lesion.kind, g)


def _patch(img: np.ndarray, lesion: Lesion, rng: np.random.Generator) -> _Patch | None:
    rows, cols = img.shape
    x0, y0, x1, y1 = lesion.box
    bw, bh = max(x1 - x0, 2.0), max(y1 - y0, 2.0)
    pad = 0.25 * max(bw, bh) + 2
    c0, c1 = max(0, int(x0 - pad)), min(cols, math.ceil(x1 + pad))
    r0, r1 = max(0, int(y0 - pad)), min(rows, math.ceil(y1 + pad))
    if c1 <= c0 or r1 <= r0:
        return None
    yy = np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5
    xx = np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5
    u = (xx - (x0 + x1) / 2) / (bw / 2)
    v = (yy - (y0 + y1) / 2) / (bh / 2)
    r = np.sqrt(u**2 + v**2)
    soft = 2.0 / max(min(bw, bh), 4.0)
    box = (x0, y0, x1, y1)
    return _Patch(img[r0:r1, c0:c1], box, bw, bh, xx, yy, u, v, r, np.float32(lesion.strength), soft,
                  (rows, cols), rng)  # fmt: skip


def _nodule(p: _Patch, kind: str, g: ChestGeometry) -> None:
    profile = np.sqrt(np.clip(1 - p.r**2, 0, 1))
    if kind == "mass":
        lobes = 1 + 0.12 * np.cos(5 * np.arctan2(p.v, p.u) + p.rng.uniform(0, 6.28))
        profile = np.sqrt(np.clip(1 - (p.r / lobes) ** 2, 0, 1))
    p.roi += (0.10 + 0.14 * profile) * (profile > 0) * p.s


def _calcification(p: _Patch, kind: str, g: ChestGeometry) -> None:
    p.roi += p.blob(0.35, 0.3) * p.s


def _opacity(p: _Patch, kind: str, g: ChestGeometry) -> None:
    shape = np.clip((1 - p.r) / 0.35, 0, 1)
    shape = shape * shape * (3 - 2 * shape)  # smooth edge
    side = min(p.bw, p.bh)
    if kind in ("ild", "fibrosis"):
        t = p.texture(max(1.0, side / 30))
        pattern, amp = 0.35 + 0.65 * np.exp(-((t / 0.45) ** 2)), 0.15
    elif kind == "consolidation":
        t = p.texture(max(1.0, side / 25))
        pattern, amp = 1 - 0.5 * np.exp(-((t / 0.25) ** 2)), 0.20  # dark air bronchograms
    elif kind == "infiltration":
        pattern, amp = np.clip(0.6 + 0.4 * p.texture(max(1.0, side / 10)), 0.1, 1.4), 0.13
    elif kind == "edema":
        pattern, amp = np.clip(0.8 + 0.2 * p.texture(max(1.0, side / 8)), 0.4, 1.2), 0.11
    else:
        pattern, amp = np.clip(0.75 + 0.25 * p.texture(max(1.0, side / 8)), 0.3, 1.3), 0.16
    p.roi += shape * pattern * amp * p.s


def _atelectasis(p: _Patch, kind: str, g: ChestGeometry) -> None:
    band = np.clip((1 - np.sqrt(p.u**2 + (p.v * 1.0) ** 2)) / 0.3, 0, 1)
    p.roi += band * 0.17 * p.s


def _effusion(p: _Patch, kind: str, g: ChestGeometry) -> None:
    _, y0, _, y1 = p.box
    rows, cols = p.img_shape
    t = p.lateral_t()
    meniscus = y0 + p.bh * (0.02 + 0.45 * np.clip(t, 0, 1) ** 0.8)
    fluid = _step(p.yy - meniscus, 3.0) * _step(1.02 - np.abs(p.u), 0.05) * _step(y1 + 2 - p.yy, 3.0)
    level = 0.50 + 0.03 * np.clip((p.yy - y0) / p.bh, 0, 1)
    lung = g.lung_mask(p.xx / cols, p.yy / rows, edge=8.0 / cols)
    p.roi[...] = p.roi + fluid * (np.maximum(level - p.roi, 0) + 0.04 * lung) * p.s


def _pleural_thickening(p: _Patch, kind: str, g: ChestGeometry) -> None:
    if p.bw > p.bh:  # apical cap: thickest at the top middle
        band = np.clip(1 - np.abs(p.u), 0, 1) ** 0.5 * _step(1 - np.abs(p.v), 0.2)
    else:
        band = _step(1 - np.abs(p.u), 0.3) * np.clip(1 - np.abs(p.v), 0, 1) ** 0.5
    p.roi += band * 0.16 * p.s


def _pneumothorax(p: _Patch, kind: str, g: ChestGeometry) -> None:
    rows, cols = p.img_shape
    t = p.lateral_t()
    curve = 0.85 + 0.15 * p.v**2  # the pleural line bows towards the middle
    lung = g.lung_mask(p.xx / cols, p.yy / rows, edge=4.0 / cols)
    rim = _step(1 - np.abs(p.v), 0.08)
    inside = _step(curve - t, 2.0 / p.bw) * _step(t + 0.3, 0.1) * rim * lung
    smooth = cv2.GaussianBlur(p.roi, (0, 0), sigmaX=max(2.0, min(p.bw, p.bh) / 8))
    darker = smooth - 0.10 * p.s
    p.roi[...] = p.roi * (1 - inside) + darker * inside
    line = np.exp(-(((t - curve) * p.bw / 1.5) ** 2)) * rim * lung
    p.roi += line * 0.08 * p.s


def _emphysema(p: _Patch, kind: str, g: ChestGeometry) -> None:
    shape = np.clip((1 - p.r) / 0.4, 0, 1)
    smooth = cv2.GaussianBlur(p.roi, (0, 0), sigmaX=max(2.0, min(p.bw, p.bh) / 10))
    p.roi[...] = p.roi * (1 - shape) + (smooth - 0.07 * p.s) * shape


def _cavity(p: _Patch, kind: str, g: ChestGeometry) -> None:
    wall = 0.22 if kind == "cavity" else 0.1
    ring = np.exp(-(((p.r - 0.85) / wall) ** 2))
    p.roi += ring * (0.18 if kind == "cavity" else 0.10) * p.s
    p.roi -= np.clip((0.75 - p.r) / 0.1, 0, 1) * 0.05 * p.s


def _mediastinal(p: _Patch, kind: str, g: ChestGeometry) -> None:
    amp = {"aortic_enlargement": 0.14, "enlarged_pa": 0.12, "mediastinal_shift": 0.09}[kind]
    if kind == "mediastinal_shift":
        shape = _step(1 - np.abs(p.u), 0.2) * _step(1 - np.abs(p.v), 0.2)
    else:
        shape = np.clip((1 - p.r) / 0.3, 0, 1)
    p.roi += shape * amp * p.s


def _fracture(p: _Patch, kind: str, g: ChestGeometry) -> None:
    callus = np.clip((1 - p.r) / 0.4, 0, 1)
    gap = np.exp(-(((p.u * 0.8 + p.v * 0.6) / 0.12) ** 2)) * (p.r < 0.9)
    p.roi += (callus * 0.16 - gap * 0.08) * p.s


_Painter = Callable[[_Patch, str, ChestGeometry], None]
_PAINTERS: dict[str, _Painter] = {
    "nodule": _nodule, "mass": _nodule, "calcification": _calcification,
    **dict.fromkeys(("opacity", "consolidation", "infiltration", "edema", "ild", "fibrosis"), _opacity),
    "other": _opacity,
    "atelectasis": _atelectasis, "effusion": _effusion, "pleural_thickening": _pleural_thickening,
    "pneumothorax": _pneumothorax, "emphysema": _emphysema, "cavity": _cavity, "cyst": _cavity,
    "aortic_enlargement": _mediastinal, "enlarged_pa": _mediastinal, "mediastinal_shift": _mediastinal,
    "rib_fracture": _fracture, "clavicle_fracture": _fracture,
}  # fmt: skip
