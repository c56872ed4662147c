"""The augmentation chain: what happens to each source image *before* the mix op, one module per step.

A chain turns one source item into its *view* for one copy: decode -> orient -> crop/resize
(``crop``) -> flips (``flip``) -> rotate (``rotate``) -> colour jitter (``jitter``) -> auto-augment
(``augment``) -> random erasing (``erase``); the mix op (``mixbake.ops``) then combines two views.
Every parameter a step uses is drawn in the plan (``plan.plan_views``) from the step's own random
stream, for every view of a pool whatever its item's fate, and recorded in the view's
:class:`Record` (the ``aug_a``/``aug_b`` columns), which replays with torchvision (``docs/chain.md``).

A step owns its options (with checks), the warnings for options the config makes inert, its draws,
its pixels and what it records. Adding a step: a module here defining a :class:`Step` subclass,
its line in ``_MODULES`` (the order steps run in), its stream (appended to ``plan.STREAMS``: never
reordered), and its tests. Every option is ``since=2`` and off by default: a config without a
chain bakes the bytes it always did.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..options import Option

_MODULES = ("crop", "flip", "rotate", "jitter", "augment", "erase")  # the order steps run in


@dataclass
class Record:
    """What one view went through, as the ``aug_a``/``aug_b`` struct stores it: the crop box
    (x0, y0, x1, y1 in oriented source pixels; None when --resize fitted the image as without a
    chain), the flips, then every later step in applied order as (op, value), and the boxes of
    the steps that have one (erase)."""
    crop: Optional[Tuple[int, int, int, int]] = None
    hflip: bool = False
    vflip: bool = False
    ops: List[Tuple[str, float]] = field(default_factory=list)
    boxes: List[Tuple[int, int, int, int]] = field(default_factory=list)

    def add(self, op: str, value: float) -> float:
        """Record an op; returns the value as stored (float32), which is the value applied, so a
        replay from the record computes what the bake computed."""
        value = float(np.float32(value))
        self.ops.append((op, value))
        return value

    def to_dict(self) -> dict:
        return {"crop": None if self.crop is None else list(self.crop), "hflip": self.hflip, "vflip": self.vflip,
                "ops": [{"op": op, "value": value} for op, value in self.ops],
                "boxes": [list(box) for box in self.boxes]}


@dataclass(frozen=True)
class ViewKey:
    """Whose view this is: the build's seed, the item's catalog index and the copy (what a step
    that draws pixels, erase's noise, seeds from: replayable from a row's src and key)."""
    seed: int
    item: int
    copy: int


class Step:
    name: str = ""
    stream: str = ""                # its random stream in the plan (plan.STREAMS)
    options: Tuple[Option, ...] = ()

    def on(self, config) -> bool:
        """Whether this step changes anything under ``config``."""
        return False

    def inert(self, config) -> Dict[str, str]:
        """{option: why it has no effect} for this step's options under ``config``."""
        return {}

    def validate(self, config) -> None:
        """Checks across this step's options (each option checks itself)."""

    def draw(self, config, rng: np.random.Generator, views: int) -> np.ndarray:
        """This step's random numbers for ``views`` views (every view draws the same amount)."""
        return np.zeros((views, 0))

    def record(self, config, drawn: np.ndarray, record: Record) -> None:
        """Append this step's parameters for one view (its uniforms ``drawn``) to ``record``: the
        output size is ``config.size``; nothing here looks at pixels (``verify --deep`` re-plans
        records without decoding)."""

    def describe(self, config) -> str:
        """The step as ``mixbake plan`` lists it."""
        return self.name


def _load() -> List[Step]:
    return [importlib.import_module(f"{__name__}.{module}").STEP for module in _MODULES]


REGISTRY: List[Step] = _load()
BY_NAME: Dict[str, Step] = {step.name: step for step in REGISTRY}
STREAMS: Tuple[str, ...] = tuple(step.stream for step in REGISTRY)


def options() -> List[Option]:
    return [o for step in REGISTRY for o in step.options]


def active(config) -> List[Step]:
    """The steps on under ``config``, in the order they run."""
    return [step for step in REGISTRY if step.on(config)]


def enabled(config) -> bool:
    """Whether ``config`` has a chain at all (its rows then record ``aug_a``/``aug_b``)."""
    return any(step.on(config) for step in REGISTRY)


def inert(config) -> Dict[str, str]:
    found = {}
    for step in REGISTRY:
        found.update(step.inert(config))
    return found


def validate(config) -> None:
    for step in REGISTRY:
        step.validate(config)


def describe(config) -> List[str]:
    return [step.describe(config) for step in active(config)]


def plan_record(config, draws: Dict[str, np.ndarray], v: int) -> Record:
    """View ``v``'s record from the pool's draws, every step but the crop (which needs the source's
    size: ``crop.STEP.chooser`` fills it in when the source is opened)."""
    record = Record()
    for step in REGISTRY[1:]:
        if step.on(config):
            step.record(config, draws[step.name][v], record)
    return record


_SHORT = {"rotate": "rot", "brightness": "B", "contrast": "C", "saturation": "S", "hue": "H", "Identity": "id",
          "ShearX": "shX", "ShearY": "shY", "TranslateX": "tX", "TranslateY": "tY", "Rotate": "rot",
          "Brightness": "bri", "Color": "col", "Contrast": "con", "Sharpness": "shp", "Posterize": "post",
          "Solarize": "sol", "AutoContrast": "autoC", "Equalize": "eq", "erase": "erase"}


def short(record: Optional[dict]) -> str:
    """A record in a few characters, for a preview caption: 'crop 117x95 hflip rot-9 post7 erase'."""
    if not record:
        return "-"
    parts = []
    if record.get("crop"):
        x0, y0, x1, y1 = record["crop"]
        parts.append(f"crop {x1 - x0}x{y1 - y0}")
    parts += [mark for flag, mark in (("hflip", "hflip"), ("vflip", "vflip")) if record.get(flag)]
    for entry in record.get("ops") or ():
        op, value = entry["op"], entry["value"]
        text = _SHORT.get(op, op)
        if op not in ("Identity", "AutoContrast", "Equalize", "erase"):
            text += f"{value:.2g}".replace("0.", ".")
        parts.append(text)
    return " ".join(parts) or "plain"

