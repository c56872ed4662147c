"""``--color-jitter B C S H``: torchvision ``ColorJitter(B, C, S, H)``: brightness, contrast and
saturation factors uniform in [max(0, 1-X), 1+X], the hue shift uniform in [-H, H], applied in a
random order of the four (a fresh permutation per view); a 0 turns its component off. Recorded as
``("brightness" | "contrast" | "saturation" | "hue", factor)`` in applied order."""
from __future__ import annotations

import numpy as np

from ..options import Option
from . import Step

COMPONENTS = ("brightness", "contrast", "saturation", "hue")


def _ok(v) -> bool:
    return min(v[:3]) >= 0 and 0 <= v[3] <= 0.5


class Jitter(Step):
    name = "jitter"
    stream = "jitter"
    options = (Option("color_jitter", (0.0, 0.0, 0.0, 0.0), "pair", "Colour jitter of each view, torchvision "
                      "ColorJitter(B, C, S, H): factors in [1-X, 1+X], hue shift in [-H, H], in a random order.",
                      metavar="B C S H", nargs=4, since=2, check=_ok,
                      problem="{flag} takes B C S >= 0 and H in [0, 0.5], got {value}."),)

    def on(self, config) -> bool:
        return any(config.color_jitter)

    def draw(self, config, rng, views):
        return rng.random((views, 8))

    def record(self, config, drawn, record):
        for c in np.argsort(drawn[:4], kind="stable"):
            strength = config.color_jitter[c]
            if strength == 0:
                continue
            name = COMPONENTS[c]
            lo, hi = (-strength, strength) if name == "hue" else (max(0.0, 1 - strength), 1 + strength)
            record.add(name, lo + drawn[4 + c] * (hi - lo))

    def describe(self, config):
        parts = [f"{name[0].upper()} {v:g}" for name, v in zip(COMPONENTS, config.color_jitter) if v]
        return "color-jitter " + " ".join(parts)


STEP = Jitter()
