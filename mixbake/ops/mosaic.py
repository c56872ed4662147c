"""Mosaic (Bochkovskiy et al. 2020, YOLOv4; as YOLOv5 bakes it): four sources in a 2x2 layout
around a random centre. The centre is uniform in ``--mosaic-center LO HI`` of each side (YOLOv5:
0.5s..1.5s of its 2s canvas, i.e. 0.25..0.75); each source's view is fitted into its cell by the
build's ``--resize`` rule (crop: cover and centre-crop; pad: letterbox; stretch), a top-left, b
top-right, c bottom-left, d bottom-right. A row's ``boxes`` are the four cells in that order (the
centre is cell a's bottom-right corner), ``lam`` is cell a's share of the image, and the targets are
the four sources' weighted by their cells' areas (``Target.mosaic``); detection boxes are each
source's, moved into its cell (``targets.boxes``), with ``source`` 0..3.

The third and fourth sources are drawn per row from the plan's ``mosaic_partners`` stream
(``plan._more_partners``); the second is the row's planned partner, as for mixup and cutmix.
"""
from __future__ import annotations

from typing import List

import numpy as np

from ..options import Option
from . import Op

TOLERANCE = 1e-5


def cells(cx: int, cy: int, width: int, height: int) -> np.ndarray:
    """The four cells (x0, y0, x1, y1) around the centre (cx, cy): a, b, c, d."""
    return np.array([[0, 0, cx, cy], [cx, 0, width, cy], [0, cy, cx, height], [cx, cy, width, height]], np.int64)


def fit_resize(config) -> str:
    """How a view is fitted into its cell: the build's --resize (a random crop has made the view)."""
    return "crop" if config.resize == "random-crop" else config.resize


def mosaic(images: List[np.ndarray], boxes: np.ndarray, resize: str) -> np.ndarray:
    """The 2x2 mosaic of ``images`` (each the output's size) into the cells ``boxes``."""
    from ..imaging import fit
    out = np.zeros_like(images[0])
    for image, (x0, y0, x1, y1) in zip(images, boxes.tolist()):
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = fit(image, (x1 - x0, y1 - y0), resize)
    return out


CENTER = Option("mosaic_center", (0.25, 0.75), "pair", "Mosaic: the layout's centre, uniform in [LO, HI] x each "
                "side (YOLOv5's 0.5s..1.5s of its 2s canvas).", metavar="LO HI", since=2,
                check=lambda v: 0 < v[0] <= v[1] < 1, problem="{flag} needs 0 < LO <= HI < 1, got {value[0]} {value[1]}.")


class Mosaic(Op):
    name = "mosaic"
    share = Option("mosaic", 0.0, "share", "Share made by mosaic: four sources in a 2x2 layout around a random "
                   "centre (YOLOv4/v5), labels weighted by their cells' areas (a soft label of up to four "
                   "classes).", since=2,
                   check=lambda v: np.isfinite(v) and v >= 0, problem="{flag} must be a share >= 0, got {value}.")
    options = (CENTER,)
    target_rule = "mosaic"
    streams = ("mosaic", "mosaic_partners")
    partner = True
    sources = 4
    varies_lam = True
    color = (129, 201, 149)

    def inert(self, config):
        return {"mosaic_center": "--mosaic 0"} if config.mosaic == 0 else {}

    def sample(self, config, streams, rows, height, width):
        if config.mosaic == 0:
            return {}
        lo, hi = config.mosaic_center
        u = streams["mosaic"].uniform(lo, hi, size=(rows, 2))
        cx = np.clip(np.rint(u[:, 0] * width), 1, max(1, width - 1)).astype(np.int64)
        cy = np.clip(np.rint(u[:, 1] * height), 1, max(1, height - 1)).astype(np.int64)
        return {"cx": cx, "cy": cy}

    def resolve(self, config, draws, rows, plan):
        width, height = config.size
        for r in rows.tolist():
            plan.boxes[r] = cells(int(draws["cx"][r]), int(draws["cy"][r]), width, height)
            plan.lam[r] = draws["cx"][r] * draws["cy"][r] / float(width * height)

    def render(self, config, image_a, image_b, lam, boxes, fill_seed, others=()):
        return mosaic([image_a, image_b, *others], np.asarray(boxes), fit_resize(config))

    def mix_targets(self, target, a, b, lam, boxes, c=None, d=None):
        if not len(a):  # (no mosaic row: every kind can keep nothing)
            return target.keep(a)
        weights = np.array([[(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in np.asarray(cell).tolist()] for cell in boxes],
                           np.float64).reshape(-1, 4)
        weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1)
        return target.mosaic([a, b, c, d], weights)

    def check_rows(self, lam, first_box, has_box, width, height):
        x0, y0, x1, y1 = first_box.T
        share_a = (x1 - x0) * (y1 - y0) / float(width * height)
        wrong = ~has_box | (np.abs(share_a - lam) > TOLERANCE) | (x0 != 0) | (y0 != 0)
        return [(int(r), "mosaic lam is not cell a's share of the image, or cell a is not at the top left")
                for r in np.flatnonzero(wrong)]

    def caption(self, row):
        (_, _, cx, cy) = row["boxes"][0] if row["boxes"] else (0, 0, 0, 0)
        return f"  centre {cx},{cy}"

    def outline(self, row):
        return row["boxes"]


OP = Mosaic()
