"""``--hflip P`` / ``--vflip P``: mirror the view left-right / upside-down with probability P
(torchvision ``RandomHorizontalFlip`` / ``RandomVerticalFlip``: flipped when a uniform draw < P)."""
from __future__ import annotations

from ..options import probability
from . import Step


class Flip(Step):
    name = "flip"
    stream = "flip"
    options = (probability("hflip", "Mirror each view left-right with probability P."),
               probability("vflip", "Mirror each view upside-down with probability P."))

    def on(self, config) -> bool:
        return config.hflip > 0 or config.vflip > 0

    def draw(self, config, rng, views):
        return rng.random((views, 2))

    def record(self, config, drawn, record):
        record.hflip = bool(drawn[0] < config.hflip)
        record.vflip = bool(drawn[1] < config.vflip)

    def describe(self, config):
        return " + ".join(f"{name} {p:g}" for name, p in (("hflip", config.hflip), ("vflip", config.vflip)) if p)


STEP = Flip()
