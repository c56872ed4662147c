"""Box maths shared by the ops, as small pure functions (numpy only).

Boxes are ``(x0, y0, x1, y1)``: half-open pixel coordinates ``[y0:y1, x0:x1)`` in the *output* grid.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

NO_BOX = np.zeros((0, 4), dtype=np.int64)


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
    return centred(centre_y, centre_x, cut_h, cut_w, height, width)


def centred(centre_y, centre_x, box_h, box_w, height: int, width: int):
    """Boxes of box_h x box_w centred at (centre_y, centre_x), clipped to a height x width image."""
    y0 = np.clip(centre_y - box_h // 2, 0, height)
    x0 = np.clip(centre_x - box_w // 2, 0, width)
    y1 = np.clip(centre_y - box_h // 2 + box_h, 0, height)
    x1 = np.clip(centre_x - box_w // 2 + box_w, 0, width)
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
    return centred(centre_y, centre_x, hole_h, hole_w, height, width)


def clip_box(box, shape) -> Tuple[int, int, int, int]:
    """``[x0, y0, x1, y1)`` inside an image of ``shape`` (H, W, ...): never a negative index (numpy
    would count it from the far side), and x1 >= x0, y1 >= y0. A planned box is unchanged."""
    height, width = shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, x1 = min(max(x0, 0), width), min(max(x1, 0), width)
    y0, y1 = min(max(y0, 0), height), min(max(y1, 0), height)
    return x0, y0, max(x0, x1), max(y0, y1)


def boxes_inside(boxes, width: int, height: int):
    """Problems of boxes that are empty or leave the image (verify)."""
    for box in boxes:
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            yield f"box {box} is empty or outside the {width}x{height} image"
