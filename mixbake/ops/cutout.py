"""Cutout (DeVries & Taylor 2017): holes filled with zeros, the image's mean colour, or seeded
noise; the target stays the source's."""
from __future__ import annotations

import numpy as np

from ..options import Option, share
from .boxes import clip_box, cutout_boxes
from . import Op

FILLS = ("zero", "mean", "noise")


def cutout(image: np.ndarray, boxes, fill: str, fill_seed: int = 0) -> np.ndarray:
    """Fill each box (clipped to the image) with zeros, the image's per-channel mean (rounded), or
    seeded uniform noise."""
    if fill not in FILLS:
        raise ValueError(f"fill must be 'zero', 'mean' or 'noise', got {fill!r}")
    out = image.copy()
    if fill == "mean":
        mean = np.rint(image.reshape(-1, image.shape[-1]).mean(axis=0)).astype(np.uint8)
    rng = np.random.default_rng(fill_seed) if fill == "noise" else None
    for box in boxes:
        x0, y0, x1, y1 = clip_box(box, image.shape)
        if fill == "zero":
            out[y0:y1, x0:x1] = 0
        elif fill == "mean":
            out[y0:y1, x0:x1] = mean
        else:
            out[y0:y1, x0:x1] = rng.integers(0, 256, size=(y1 - y0, x1 - x0, image.shape[-1]), dtype=np.uint8)
    return out


class Cutout(Op):
    name = "cutout"
    share = share("cutout", 0.0, "Share made by cutout.")
    options = (
        Option("cutout_size", 0.5, "float", "Cutout hole side as a fraction of the image side.",
               check=lambda v: 0 < v <= 1, problem="{flag} is a fraction of the side in (0, 1], got {value}."),
        Option("cutout_holes", 1, "int", "Holes per cutout sample.", check=lambda v: 1 <= v <= 64,
               problem="{flag} must be in 1..64, got {value}."),
        Option("cutout_fill", "zero", "choice", "Fill holes with zeros, the image's mean colour, or seeded noise.",
               choices=FILLS),
    )
    target_rule = "erase"
    streams = ("cutout",)
    color = (242, 139, 130)

    def sample(self, config, streams, rows, height, width):
        centres = streams["cutout"].integers(0, [height, width], size=(rows, config.cutout_holes, 2))
        fill_seed = streams["cutout"].integers(0, 2**63, size=rows, dtype=np.int64).astype(np.uint64)
        return {"holes": cutout_boxes(centres[..., 0], centres[..., 1], height, width, config.cutout_size),
                "fill_seed": fill_seed}

    def resolve(self, config, draws, rows, plan):
        holes = draws["holes"]
        plan.seed[rows] = draws["fill_seed"][rows]
        open_holes = (holes[..., 2] > holes[..., 0]) & (holes[..., 3] > holes[..., 1])
        for r in rows.tolist():
            plan.boxes[r] = holes[r][open_holes[r]]

    def render(self, config, image_a, image_b, lam, boxes, fill_seed):
        return cutout(image_a, boxes, config.cutout_fill, fill_seed)


    def outline(self, row):
        return row["boxes"]


OP = Cutout()
