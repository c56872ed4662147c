"""``--erase P``: torchvision ``RandomErasing(P, --erase-scale, --erase-ratio)`` on each view: with
probability P, a box of area uniform in ``--erase-scale`` x the image and aspect ratio (h/w)
log-uniform in ``--erase-ratio``, up to 10 tries for one strictly inside the image (else nothing is
erased), placed uniformly, filled with zeros or uniform uint8 noise.

Unlike the ``cutout`` op it is a step of the chain: it combines with a mix (as in timm and DeiT),
and it leaves the label alone. Recorded as ``("erase", 0.0 zeros | 1.0 noise)`` with its box
(x0, y0, x1, y1 in output pixels) in the record's ``boxes``; the noise is
``numpy.random.default_rng([seed, src, copy]).integers(0, 256, (y1-y0, x1-x0, 3), dtype=uint8)``
for the build's seed and the view's source item and copy, so it replays too.
"""
from __future__ import annotations

import math

import numpy as np

from ..options import Option, probability, span
from . import Step

TRIES = 10
FILLS = ("zero", "noise")


def erase_box(width: int, height: int, drawn: np.ndarray, scale, ratio):
    """The box (x0, y0, x1, y1) from one view's uniforms, as ``RandomErasing.get_params`` computes it;
    None when no try fits."""
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for t in range(TRIES):
        target = area * (scale[0] + drawn[1 + t] * (scale[1] - scale[0]))
        aspect = math.exp(log_lo + drawn[1 + TRIES + t] * (log_hi - log_lo))
        h = int(round(math.sqrt(target * aspect)))
        w = int(round(math.sqrt(target / aspect)))
        if h < height and w < width:
            y0 = min(int(drawn[1 + 2 * TRIES] * (height - h + 1)), height - h)
            x0 = min(int(drawn[2 + 2 * TRIES] * (width - w + 1)), width - w)
            return x0, y0, x0 + w, y0 + h
    return None


def noise(key, shape) -> np.ndarray:
    """The noise of an --erase box of ``shape`` in the view ``key`` (a ``ViewKey``)."""
    return np.random.default_rng([key.seed, key.item, key.copy]).integers(0, 256, shape, dtype=np.uint8)


class Erase(Step):
    name = "erase"
    stream = "erase"
    options = (
        probability("erase", "Random erasing of each view with probability P (torchvision RandomErasing; "
                             "combines with a mix, unlike the cutout op)."),
        span("erase_scale", (0.02, 0.33), "--erase box area as a fraction of the image, uniform in [LO, HI].",
             0, 1, "is an area fraction"),
        span("erase_ratio", (0.3, 3.3), "--erase box aspect ratio h/w, log-uniform in [LO, HI].", 0, 100,
             "is an aspect ratio"),
        Option("erase_value", "zero", "choice", "Fill of the --erase box: zeros, or seeded uniform noise.",
               choices=FILLS, since=2),
    )

    def on(self, config) -> bool:
        return config.erase > 0

    def inert(self, config):
        return {} if self.on(config) else {o.name: "--erase 0" for o in self.options[1:]}

    def draw(self, config, rng, views):
        return rng.random((views, 3 + 2 * TRIES))

    def record(self, config, drawn, record):
        if drawn[0] >= config.erase:
            return
        box = erase_box(*config.size, drawn, config.erase_scale, config.erase_ratio)
        if box is not None:
            record.add("erase", float(config.erase_value == "noise"))
            record.boxes.append(box)

    def describe(self, config):
        (s0, s1), (r0, r1) = config.erase_scale, config.erase_ratio
        return f"erase p {config.erase:g} (area {s0:g}-{s1:g}, ratio {r0:g}-{r1:g}, {config.erase_value})"


STEP = Erase()
