"""The maths, as small pure functions: sampling parameters (given an explicit generator) is kept
apart from applying them to pixels, so the plan can draw everything and workers only apply.

Boxes are ``(x0, y0, x1, y1)``: half-open pixel coordinates ``[y0:y1, x0:x1)`` in the *output* grid.
``lam`` is always the weight of source ``a``.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

try:  # cv2 (a dependency of mixbake) is what bakes use; the numpy fallback serves the maths alone
    import cv2
except ImportError:  # pragma: no cover - opencv is a hard dependency, kept optional for pure-maths use
    cv2 = None


# ---------------------------------------------------------------- sampling (vectorised, explicit rng)

def cutmix_boxes(lam, centre_y, centre_x, height: int, width: int, minmax=None, side_fracs=None):
    """Boxes of area ~(1 - lam) centred at (centre_y, centre_x), clipped to the image.

    With ``minmax`` the box sides are ``side_fracs`` (uniform [0, 1) draws, shape (n, 2)) scaled into
    [lo, hi] of each side, and ``lam`` is ignored (as in timm's ``rand_bbox_minmax``).
    Returns an int64 array of x0, y0, x1, y1: shape (n, 4) for n boxes, (4,) for scalar arguments.
    ValueError for lam outside [0, 1], or ``minmax`` without ``side_fracs``.
    """
    lam = np.asarray(lam, dtype=np.float64)
    if np.any((lam < 0) | (lam > 1)):
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    if minmax is not None and side_fracs is None:
        raise ValueError("minmax needs side_fracs: uniform [0, 1) draws of shape (n, 2)")
    if minmax is None:
        ratio = np.sqrt(1.0 - lam)
        cut_h = (height * ratio).astype(np.int64)
        cut_w = (width * ratio).astype(np.int64)
    else:
        lo, hi = minmax
        cut_h = (height * (lo + (hi - lo) * side_fracs[:, 0])).astype(np.int64)
        cut_w = (width * (lo + (hi - lo) * side_fracs[:, 1])).astype(np.int64)
    y0 = np.clip(centre_y - cut_h // 2, 0, height)
    x0 = np.clip(centre_x - cut_w // 2, 0, width)
    y1 = np.clip(centre_y - cut_h // 2 + cut_h, 0, height)
    x1 = np.clip(centre_x - cut_w // 2 + cut_w, 0, width)
    return np.stack([x0, y0, x1, y1], axis=-1).astype(np.int64)


def box_area(box):
    """Pixels inside ``(x0, y0, x1, y1)`` (0 when empty): an int for one box, an int64 array for
    an (n, 4) array of boxes."""
    x0, y0, x1, y1 = np.moveaxis(np.asarray(box, dtype=np.int64), -1, 0)
    area = np.maximum(0, x1 - x0) * np.maximum(0, y1 - y0)
    return int(area) if area.ndim == 0 else area


def cutmix_lam(box, height: int, width: int):
    """The label weight of source a: the share of output pixels NOT pasted from b (after clipping).
    A float for one box, a float64 array for an (n, 4) array of boxes (the same arithmetic)."""
    return 1.0 - box_area(box) / float(height * width)


def cutout_boxes(centre_y, centre_x, height: int, width: int, size_frac: float):
    """Square-ish holes of ``size_frac`` of each side, centred anywhere, clipped (DeVries & Taylor)."""
    hole_h = max(1, int(round(height * size_frac)))
    hole_w = max(1, int(round(width * size_frac)))
    y0 = np.clip(centre_y - hole_h // 2, 0, height)
    x0 = np.clip(centre_x - hole_w // 2, 0, width)
    y1 = np.clip(centre_y - hole_h // 2 + hole_h, 0, height)
    x1 = np.clip(centre_x - hole_w // 2 + hole_w, 0, width)
    return np.stack([x0, y0, x1, y1], axis=-1).astype(np.int64)


# ---------------------------------------------------------------- labels

def soft_label(label_a: int, label_b, lam: float, num_classes: int, smoothing: float = 0.0) -> np.ndarray:
    """``lam*onehot(a) + (1-lam)*onehot(b)``, then label smoothing applied exactly once (float32).
    ``label_b`` None or -1: no partner. ValueError for a label outside ``0..num_classes-1``, lam
    outside [0, 1] or smoothing outside [0, 1)."""
    if not 0 <= label_a < num_classes or (label_b is not None and not -1 <= label_b < num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1} (label_b: or None/-1), got {label_a}, {label_b}")
    if not 0.0 <= lam <= 1.0 or not 0.0 <= smoothing < 1.0:
        raise ValueError(f"lam must be in [0, 1] and smoothing in [0, 1), got {lam}, {smoothing}")
    y = np.zeros(num_classes, dtype=np.float64)
    y[label_a] += lam
    if label_b is not None and label_b >= 0:
        y[label_b] += 1.0 - lam
    else:
        y[label_a] += 1.0 - lam
    if smoothing:
        y = y * (1.0 - smoothing) + smoothing / num_classes
    return y.astype(np.float32)


def soft_labels(label_a, label_b, lam, num_classes: int, smoothing: float = 0.0) -> np.ndarray:
    """Row-wise :func:`soft_label` (label_b < 0: no partner); the same float64 arithmetic, then float32."""
    label_a = np.asarray(label_a, dtype=np.int64)
    label_b = np.asarray(label_b, dtype=np.int64)
    lam = np.asarray(lam, dtype=np.float64)
    rows = np.arange(len(label_a))
    y = np.zeros((len(label_a), num_classes), dtype=np.float64)
    y[rows, label_a] += lam
    y[rows, np.where(label_b >= 0, label_b, label_a)] += 1.0 - lam
    if smoothing:
        y = y * (1.0 - smoothing) + smoothing / num_classes
    return y.astype(np.float32)


# ---------------------------------------------------------------- pixels

def mixup(image_a: np.ndarray, image_b: np.ndarray, lam: float) -> np.ndarray:
    """Rounded blend ``lam*a + (1-lam)*b`` (never truncated), as OpenCV's ``addWeighted`` computes it:
    in float32, so where the exact value is within float32 error of a .5 the result can differ by 1
    from float64 rounding (e.g. ``lam=0.1`` of 1 and 6 gives 5). Without OpenCV: float64, rounded half
    to even, which can then differ by 1 from a bake's pixels."""
    if cv2 is not None:
        return cv2.addWeighted(image_a, float(lam), image_b, 1.0 - float(lam), 0.0)
    blend = image_a.astype(np.float64) * lam + image_b.astype(np.float64) * (1.0 - lam)
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)


def cutmix(image_a: np.ndarray, image_b: np.ndarray, box) -> np.ndarray:
    """Paste ``image_b[box]`` into a copy of ``image_a`` (the box clipped to the image)."""
    x0, y0, x1, y1 = _clip(box, image_a.shape)
    out = image_a.copy()
    out[y0:y1, x0:x1] = image_b[y0:y1, x0:x1]
    return out


def cutout(image: np.ndarray, boxes, fill: str, fill_seed: int = 0) -> np.ndarray:
    """Fill each box (clipped to the image) with zeros, the image's per-channel mean (rounded), or
    seeded uniform noise."""
    if fill not in ("zero", "mean", "noise"):
        raise ValueError(f"fill must be 'zero', 'mean' or 'noise', got {fill!r}")
    out = image.copy()
    if fill == "mean":
        mean = np.rint(image.reshape(-1, image.shape[-1]).mean(axis=0)).astype(np.uint8)
    rng = np.random.default_rng(fill_seed) if fill == "noise" else None
    for box in boxes:
        x0, y0, x1, y1 = _clip(box, image.shape)
        if fill == "zero":
            out[y0:y1, x0:x1] = 0
        elif fill == "mean":
            out[y0:y1, x0:x1] = mean
        else:
            out[y0:y1, x0:x1] = rng.integers(0, 256, size=(y1 - y0, x1 - x0, image.shape[-1]), dtype=np.uint8)
    return out


def _clip(box, shape) -> Tuple[int, int, int, int]:
    """``[x0, y0, x1, y1)`` inside an image of ``shape`` (H, W, ...): never a negative index (numpy
    would count it from the far side), and x1 >= x0, y1 >= y0. A planned box is unchanged."""
    height, width = shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, x1 = min(max(x0, 0), width), min(max(x1, 0), width)
    y0, y1 = min(max(y0, 0), height), min(max(y1, 0), height)
    return x0, y0, max(x0, x1), max(y0, y1)
