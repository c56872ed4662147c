"""The mixing ops: one module each, one registry.

An op owns everything about itself: its share and its options (with defaults and checks), the
warnings for options the rest of the config makes inert, its sampling in the plan (from its own
named random streams, so one op's draws never move another's), its pixel rule, its target rule
(which call of the label kind's interface mixes the targets, see ``mixbake.targets``), its verify
check, its preview caption and outline, and its inspect category.

The registry's order is part of the output format: a row's op is drawn as an index into it
(``Generator.choice``), so ops are only ever appended. Adding an op: a module here defining an
:class:`Op` subclass, its line in ``_MODULES``, and its tests.
"""
from __future__ import annotations

import importlib
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..options import Option

_MODULES = ("mixup", "cutmix", "cutout", "none", "mosaic")  # the registry order: never reordered


class Op:
    name: str = ""
    share: Option                   # its share of the outputs, --<name>
    options: Tuple[Option, ...] = ()
    streams: Tuple[str, ...] = ()   # the plan's random streams its sampling draws from
    partner: bool = False           # needs a second source b (without one, a row becomes none)
    sources: int = 2                # how many sources a row mixes at most (mosaic: 4; render gets the others)
    varies_lam: bool = False        # lam varies per row: inspect shows its histogram
    color: Tuple[int, int, int] = (154, 160, 166)   # preview
    target_rule: str = "keep"       # which call of the label kind's interface mixes its targets
    code: int = -1                  # its index in the registry (set by the registry)

    # ---- configuration
    def validate(self, config) -> None:
        """Checks across this op's options (each option checks itself)."""

    def inert(self, config) -> Dict[str, str]:
        """{option name: why it has no effect} for this op's options under ``config``."""
        if getattr(config, self.name) == 0:
            return {option.name: f"--{self.name} 0" for option in self.options}
        return {}

    # ---- the plan: sampling (every row draws, whatever its op) and the rows' parameters
    def sample(self, config, streams: dict, rows: int, height: int, width: int) -> dict:
        return {}

    def resolve(self, config, draws: dict, rows: np.ndarray, plan: "PlanColumns") -> None:
        """Fill ``plan``'s lam / boxes for this op's ``rows`` (indices) from its draws."""

    # ---- the worker
    def render(self, config, image_a: np.ndarray, image_b: Optional[np.ndarray], lam: float, boxes,
               fill_seed: int) -> np.ndarray:
        return image_a

    def mix_targets(self, target, a, b, lam, boxes):
        """This op's rows' targets, mixed by its ``target_rule`` (see ``mixbake.targets``)."""
        return _TARGET_RULES[self.target_rule](target, a, b, lam, boxes)

    # ---- reading a build back
    def check_rows(self, lam: np.ndarray, first_box: np.ndarray, has_box: np.ndarray, width: int,
                   height: int) -> List[Tuple[int, str]]:
        """(row, problem) of this op's stored rows that its rule forbids (verify): ``lam`` and each
        row's first box (x0, y0, x1, y1; ``has_box`` where there is one), all at once."""
        return []

    def caption(self, row: dict) -> str:
        """What follows the op's name in a preview caption."""
        return ""

    def outline(self, row: dict) -> Sequence:
        """Boxes a preview outlines on the tile."""
        return ()


_TARGET_RULES = {
    "keep": lambda target, a, b, lam, boxes: target.keep(a),
    "blend": lambda target, a, b, lam, boxes: target.blend(a, b, lam),
    "paste": lambda target, a, b, lam, boxes: target.paste(a, b, lam, boxes),
    "erase": lambda target, a, b, lam, boxes: target.erase(a, boxes),
}


class PlanColumns:
    """The per-row parameters ops fill while a pool is planned: lam (the weight of source a), the
    boxes of each row, and a seed for what a render draws (cutout's noise)."""

    def __init__(self, rows: int):
        self.lam = np.ones(rows)
        self.boxes: List[np.ndarray] = [None] * rows
        self.seed = np.zeros(rows, dtype=np.uint64)


def _load() -> List[Op]:
    ops = []
    for code, module in enumerate(_MODULES):
        op = importlib.import_module(f"{__name__}.{module}").OP
        op.code = code
        ops.append(op)
    return ops


REGISTRY: List[Op] = _load()
NAMES: Tuple[str, ...] = tuple(op.name for op in REGISTRY)
BY_NAME: Dict[str, Op] = {op.name: op for op in REGISTRY}
NONE_CODE = BY_NAME["none"].code


def options() -> List[Option]:
    """Every op's share, then every op's own options (the CLI's order)."""
    return [op.share for op in REGISTRY] + [o for op in REGISTRY for o in op.options]


def shares(config) -> Tuple[float, ...]:
    """Normalised probability of each op, in registry order."""
    raw = [getattr(config, op.name) for op in REGISTRY]
    total = sum(raw)
    return tuple(r / total for r in raw)


def with_lam() -> Tuple[str, ...]:
    """The ops whose lam varies (inspect's lam histograms, the cross-class share)."""
    return tuple(op.name for op in REGISTRY if op.varies_lam)
