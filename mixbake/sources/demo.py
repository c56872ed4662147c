"""Built-in procedural demo dataset, so ``mixbake bake demo out/`` works offline.

The dataset has ``len(DEMO_CLASSES) * DEMO_PER_CLASS`` items. Item ``i`` has
label ``i // DEMO_PER_CLASS`` and shows one saturated shape of that class
(random position, size, rotation and colour, with a soft drop shadow) on a
muted textured background: a two-colour gradient plus low-frequency noise
and faint stripes at a random angle.

Every image is a pure function of its index. All randomness comes from a
``numpy.random.Generator`` seeded with ``SeedSequence([_SEED, index])``, and
the pixel maths sticks to operations whose results do not depend on which
SIMD path the CPU takes: integer drawing (cv2 fixed-point, anti-aliased),
uint8 resizes (``INTER_CUBIC``/``INTER_LINEAR_EXACT`` are fixed-point for
8-bit), uint8 Gaussian blur (bit-exact in OpenCV 4) and elementwise numpy
arithmetic; trigonometry is only done on scalars (Python's math module). So the
bytes are identical across calls and processes, and are meant to be identical
across machines with the same numpy/opencv versions.
Nothing is read from or written to disk.

Arrays are RGB throughout; cv2 drawing functions never interpret channel
order, they just write the three numbers they are given.
"""

from __future__ import annotations

import colorsys
import math
import operator

import numpy as np

DEMO_CLASSES: tuple[str, ...] = ("circle", "cross", "ring", "square", "star", "triangle")
DEMO_PER_CLASS: int = 48
DEMO_SIZE: int = 128

_SEED = 0x6D69  # "mi"; part of the dataset's identity, never change it.
_SHIFT = 4  # cv2 sub-pixel bits: vertices carry 1/16 px precision for smooth AA edges.
_LO = 32  # the smooth parts (gradient, noise, shadow) are built at this size, then upscaled.
_LO_POS = (np.arange(_LO, dtype=np.float32) + 0.5) / _LO  # coarse pixel centres in [0, 1]
_HI_POS = np.arange(DEMO_SIZE, dtype=np.float32)  # full-res pixel coordinates for stripes


def demo_count() -> int:
    """Number of items in the demo dataset."""
    return len(DEMO_CLASSES) * DEMO_PER_CLASS


def _check(index: int) -> int:
    # operator.index accepts numpy integers but rejects floats, like list indexing.
    index = operator.index(index)
    if not 0 <= index < demo_count():
        raise IndexError(f"demo index {index} out of range [0, {demo_count()})")
    return index


def demo_label(index: int) -> int:
    """Class id of item ``index`` (its position in ``DEMO_CLASSES``)."""
    return _check(index) // DEMO_PER_CLASS


def demo_relpath(index: int) -> str:
    """Readable reference for item ``index``, e.g. ``"star/star_0007"``."""
    index = _check(index)
    name = DEMO_CLASSES[index // DEMO_PER_CLASS]
    return f"{name}/{name}_{index % DEMO_PER_CLASS:04d}"


def _rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (r * 255.0, g * 255.0, b * 255.0)


def _smooth_field(rng: np.random.Generator, hue: float) -> np.ndarray:
    """Muted gradient plus blobby noise, built at _LO x _LO, as uint8 RGB."""
    import cv2
    # Two low-saturation colours near one hue, so the saturated shape pops out.
    c0 = np.array(_rgb(hue + rng.uniform(-0.08, 0.08), rng.uniform(0.15, 0.35),
                       rng.uniform(0.75, 0.95)), np.float32)
    c1 = np.array(_rgb(hue + rng.uniform(-0.08, 0.08), rng.uniform(0.25, 0.5),
                       rng.uniform(0.45, 0.7)), np.float32)
    a = rng.uniform(0.0, 2.0 * math.pi)
    ca, sa = math.cos(a) * 1.2, math.sin(a) * 1.2
    t = np.clip(ca * (_LO_POS[None, :] - 0.5) + sa * (_LO_POS[:, None] - 0.5) + 0.5, 0.0, 1.0)
    field = c0 + t[..., None] * (c1 - c0)
    # Integer noise grid, cubic-upsampled in fixed point: a cheap Perlin stand-in.
    grid = rng.integers(0, 256, size=(5, 5, 3), dtype=np.uint8)
    noise = cv2.resize(grid, (_LO, _LO), interpolation=cv2.INTER_CUBIC)
    field += (noise.astype(np.float32) - 127.5) * 0.12
    return np.rint(np.clip(field, 0.0, 255.0)).astype(np.uint8)


def _stripes(rng: np.random.Generator) -> np.ndarray:
    """Faint triangle-wave stripes at a random angle/period, as a uint16 darkening (0..10)."""
    b = rng.uniform(0.0, math.pi)
    freq = 1.0 / rng.uniform(8.0, 18.0)  # cycles per pixel
    u = _HI_POS[None, :] * (math.cos(b) * freq) + _HI_POS[:, None] * (math.sin(b) * freq)
    u += rng.uniform(0.0, 1.0)
    u -= np.floor(u)  # fractional part; plain arithmetic keeps it bit-reproducible
    return (np.abs(u - 0.5) * (2.0 * rng.uniform(4.0, 10.0))).astype(np.uint16)


def _polar(cx: float, cy: float, rot: float, radii: list[float]) -> list[tuple[float, float]]:
    """Vertices at evenly spaced angles starting at ``rot``, one per radius."""
    k = len(radii)
    return [(cx + r * math.cos(rot + 2 * math.pi * j / k), cy + r * math.sin(rot + 2 * math.pi * j / k))
            for j, r in enumerate(radii)]


def _outline(kind: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    """Polygon vertices (float pixel coords) of a non-round shape."""
    if kind == "square":
        return _polar(cx, cy, rot, [r * 0.9] * 4)
    if kind == "triangle":
        return _polar(cx, cy, rot, [r * 1.05] * 3)
    if kind == "star":
        return _polar(cx, cy, rot, [r * 1.05, r * 0.45] * 5)
    if kind == "cross":
        # Plus sign as one 12-gon with arm half-width w, rotated by hand.
        w, c, s = r * 0.3, math.cos(rot), math.sin(rot)
        base = [(w, r), (w, w), (r, w), (r, -w), (w, -w), (w, -r),
                (-w, -r), (-w, -w), (-r, -w), (-r, w), (-w, w), (-w, r)]
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in base]
    raise ValueError(f"unknown demo shape {kind!r}")


def _draw(img: np.ndarray, kind: str, cx: float, cy: float, r: float, rot: float,
          hole: float, scale: float, color: tuple) -> None:
    """Anti-aliased shape, geometry scaled by ``scale``, drawn in cv2 fixed point."""
    import cv2
    k = scale * (1 << _SHIFT)
    if kind in ("circle", "ring"):
        # cv2.circle's AA edge is visibly cleaner than a fillPoly'd polygon.
        centre = (round(cx * k), round(cy * k))
        if kind == "circle":
            cv2.circle(img, centre, round(r * k), color, -1, cv2.LINE_AA, _SHIFT)
        else:
            thick = max(1, round(r * (1.0 - hole) * scale))
            cv2.circle(img, centre, round(r * (1.0 + hole) / 2 * k), color, thick, cv2.LINE_AA, _SHIFT)
        return
    pts = np.rint(np.array(_outline(kind, cx, cy, r, rot), np.float64) * k).astype(np.int32)
    cv2.fillPoly(img, [pts], color, cv2.LINE_AA, _SHIFT)


def demo_image(index: int) -> np.ndarray:
    """RGB uint8 image ``(DEMO_SIZE, DEMO_SIZE, 3)`` of item ``index``; pure in ``index``.
    (OpenCV is imported when an image is drawn: listing the demo needs none.)"""
    import cv2
    index = _check(index)
    kind = DEMO_CLASSES[index // DEMO_PER_CLASS]
    rng = np.random.default_rng(np.random.SeedSequence([_SEED, index]))
    n = DEMO_SIZE
    hue = rng.uniform(0.0, 1.0)
    field = _smooth_field(rng, hue + 0.5)  # complementary hue keeps the shape readable
    stripes = _stripes(rng)
    r = rng.uniform(0.2, 0.34) * n
    margin = r * 1.05 + 2
    cx, cy = rng.uniform(margin, n - margin), rng.uniform(margin, n - margin)
    rot = rng.uniform(0.0, 2.0 * math.pi)
    # Ring inner/outer radius ratio; sampled for every class so all items consume the same draws.
    hole = rng.uniform(0.55, 0.72)
    fill = tuple(round(v) for v in _rgb(hue, rng.uniform(0.65, 0.95), rng.uniform(0.8, 1.0)))
    # Drop shadow: drawn offset at coarse size, blurred, upscaled -> soft for little cost.
    shadow = np.zeros((_LO, _LO), np.uint8)
    _draw(shadow, kind, cx + 3, cy + 4, r, rot, hole, _LO / n, (255,))
    shadow = cv2.resize(cv2.GaussianBlur(shadow, (0, 0), 0.8), (n, n),
                        interpolation=cv2.INTER_LINEAR_EXACT)
    # One integer multiply applies stripes and shadow: factor/256 in (0.46, 1].
    factor = 256 - stripes - (shadow >> 1).astype(np.uint16)
    bg = cv2.resize(field, (n, n), interpolation=cv2.INTER_LINEAR_EXACT).astype(np.uint16)
    out = ((bg * cv2.cvtColor(factor, cv2.COLOR_GRAY2RGB)) >> 8).astype(np.uint8)
    _draw(out, kind, cx, cy, r, rot, hole, 1.0, fill)
    return out


# ---------------------------------------------------------------- the demo as a mixbake source

class DemoReader:
    """A demo 'chunk' is one item; its payload is the generated RGB array (no decode needed)."""

    def read_chunk(self, locator: int, stamp=None) -> list:
        return [demo_image(locator)]


def demo_catalog():
    import hashlib

    from . import Catalog

    n = demo_count()
    refs = [demo_relpath(i) for i in range(n)]
    identity = "|".join(DEMO_CLASSES) + f"|{DEMO_PER_CLASS}|{DEMO_SIZE}|v1"
    return Catalog(
        kind="demo", uri="demo", classes=tuple(DEMO_CLASSES),
        labels=np.asarray([demo_label(i) for i in range(n)], dtype=np.int32),
        refs=refs, chunk_locators=list(range(n)),
        reader=DemoReader(), fingerprint=hashlib.sha256(identity.encode()).hexdigest(),
    )
