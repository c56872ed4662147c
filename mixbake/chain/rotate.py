"""``--rotate DEG``: rotate the view by an angle uniform in [-DEG, DEG] degrees (counter-clockwise
positive), about its centre, size kept, black fill, nearest-neighbour sampling (torchvision
``RandomRotation(DEG)``'s defaults). Recorded as ``("rotate", degrees)``."""
from __future__ import annotations

from ..options import Option
from . import Step


class Rotate(Step):
    name = "rotate"
    stream = "rotate"
    options = (Option("rotate", 0.0, "float", "Rotate each view by an angle uniform in [-DEG, DEG] (black fill, "
                      "size kept).", metavar="DEG", since=2, check=lambda v: 0 <= v <= 180,
                      problem="{flag} is a maximum angle in degrees, 0..180, got {value}."),)

    def on(self, config) -> bool:
        return config.rotate > 0

    def draw(self, config, rng, views):
        return rng.random((views, 1))

    def record(self, config, drawn, record):
        record.add("rotate", config.rotate * (2 * drawn[0] - 1))

    def describe(self, config):
        return f"rotate ±{config.rotate:g}°"


STEP = Rotate()
