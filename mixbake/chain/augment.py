"""``--auto-augment randaugment|trivialaugment``: torchvision's ``RandAugment(--ra-ops,
--ra-magnitude, --ra-bins)`` and ``TrivialAugmentWide(--ra-bins)``, with their op sets, magnitude
bins and signs, NEAREST interpolation and black fill for the geometric ops.

RandAugment applies ``--ra-ops`` ops, each chosen uniformly from the 14 (repeats allowed), all at
bin ``--ra-magnitude``; TrivialAugment one op at a uniform bin. A signed op's magnitude is negated
with probability 1/2. Recorded as (torchvision's op name, the magnitude ``RandAugment`` passes to
``_apply_image_or_video_transform``): e.g. ``Solarize`` as a fraction of 255, ``TranslateX`` in
pixels of the output (torchvision then truncates it with ``int()``), ``Posterize`` in bits.
"""
from __future__ import annotations

import functools
from typing import Dict, Tuple

import numpy as np

from ..errors import MixbakeError
from ..options import Option
from . import Step

KINDS = ("none", "randaugment", "trivialaugment")
NAMES = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
         "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")  # torchvision's order
SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness"}


def _spans(kind: str, width: int, height: int) -> Dict[str, Tuple[float, float]]:
    """The (first, last) magnitude of each op's bins (torchvision's ``_AUGMENTATION_SPACE``)."""
    wide = kind == "trivialaugment"
    shear, colour = (0.99, 0.99) if wide else (0.3, 0.9)
    spans = {"ShearX": (0.0, shear), "ShearY": (0.0, shear),
             "TranslateX": (0.0, 32.0 if wide else 150.0 / 331.0 * width),
             "TranslateY": (0.0, 32.0 if wide else 150.0 / 331.0 * height),
             "Rotate": (0.0, 135.0 if wide else 30.0), "Solarize": (1.0, 0.0)}
    spans.update({name: (0.0, colour) for name in ("Brightness", "Color", "Contrast", "Sharpness")})
    return spans


def linspace32(start: float, end: float, steps: int) -> np.ndarray:
    """``torch.linspace(start, end, steps)`` in float32, to the bit: torch steps from each end with a
    fused multiply-add (numpy's float64 linspace cast to float32 is 1 ulp off in most tables, which
    moves pixels, e.g. an ``int()`` of a translate)."""
    start32, end32 = np.float32(start), np.float32(end)
    step = (end32 - start32) / np.float32(max(steps - 1, 1))
    i = np.arange(steps)
    lo = (np.float64(start32) + np.float64(step) * i).astype(np.float32)
    hi = (np.float64(end32) - np.float64(step) * (steps - 1 - i)).astype(np.float32)
    return np.where(i < steps // 2, lo, hi)


@functools.lru_cache(maxsize=64)
def magnitudes(kind: str, bins: int, width: int, height: int) -> Dict[str, np.ndarray]:
    """Each op's magnitude per bin (float32, as torchvision's ``torch.linspace``); the ops without
    one (Identity, AutoContrast, Equalize) are absent. (Cached: read-only.)"""
    table = {name: linspace32(lo, hi, bins) for name, (lo, hi) in _spans(kind, width, height).items()}
    levels = 6 if kind == "trivialaugment" else 4
    table["Posterize"] = np.round(8 - np.arange(bins, dtype=np.float32) / np.float32((bins - 1) / levels)) \
        .astype(np.float32)
    return table


class AutoAugment(Step):
    name = "augment"
    stream = "augment"
    options = (
        Option("auto_augment", "none", "choice", "Auto-augment each view: torchvision RandAugment or "
               "TrivialAugmentWide (op set, bins and signs as torchvision).", choices=KINDS, since=2),
        Option("ra_ops", 2, "int", "RandAugment: ops applied per view.", metavar="N", lo=1, hi=16, since=2,
               check=lambda v: 1 <= v <= 16, problem="{flag} must be in 1..16, got {value}."),
        Option("ra_magnitude", 9, "int", "RandAugment: the magnitude bin, 0..bins-1.", metavar="M", lo=0, since=2,
               check=lambda v: v >= 0, problem="{flag} must be >= 0, got {value}."),
        Option("ra_bins", 31, "int", "Magnitude bins of RandAugment / TrivialAugment.", lo=2, hi=1000, since=2,
               check=lambda v: 2 <= v <= 1000, problem="{flag} must be in 2..1000, got {value}."),
    )

    def on(self, config) -> bool:
        return config.auto_augment != "none"

    def inert(self, config):
        if not self.on(config):
            return {o.name: "--auto-augment none" for o in self.options[1:]}
        if config.auto_augment == "trivialaugment":
            return {"ra_ops": "--auto-augment trivialaugment", "ra_magnitude": "--auto-augment trivialaugment"}
        return {}

    def validate(self, config):
        if self.on(config) and config.ra_magnitude >= config.ra_bins:
            raise MixbakeError(f"--ra-magnitude {config.ra_magnitude} is past the last of --ra-bins "
                               f"{config.ra_bins} bins (0..{config.ra_bins - 1}).")

    def slots(self, config) -> int:
        return config.ra_ops if config.auto_augment == "randaugment" else 1

    def draw(self, config, rng, views):
        return rng.random((views, 3 * self.slots(config)))  # per op: which op, which bin, the sign

    def record(self, config, drawn, record):
        width, height = config.size
        table = magnitudes(config.auto_augment, config.ra_bins, width, height)
        for slot in range(self.slots(config)):
            pick, level, sign = drawn[3 * slot:3 * slot + 3]
            name = NAMES[min(int(pick * len(NAMES)), len(NAMES) - 1)]
            value = 0.0
            if name in table:
                bin_ = config.ra_magnitude if config.auto_augment == "randaugment" \
                    else min(int(level * config.ra_bins), config.ra_bins - 1)
                value = float(table[name][bin_])
                if name in SIGNED and sign <= 0.5:
                    value = -value
            record.add(name, value)

    def describe(self, config):
        if config.auto_augment == "trivialaugment":
            return f"trivialaugment ({config.ra_bins} bins)"
        return f"randaugment {config.ra_ops} ops, magnitude {config.ra_magnitude}/{config.ra_bins - 1}"


STEP = AutoAugment()
