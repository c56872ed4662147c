"""The declaration of one bake option: its name, kind, default, help and check, in one place.

Each room of the house declares its own options (``config.CORE_OPTIONS``, each op in ``ops/``);
``config.BakeConfig`` is assembled from them, the CLI's flags and the recipe keys are generated
from them, and so is the options table in ``docs/options.md``. An option added after format 1
says so (``since``): it is left out of a config's recorded identity while it is unset, so a
recipe that baked before keeps its bytes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from .errors import MixbakeError

KINDS = ("share", "float", "int", "choice", "flag", "pair", "size", "seed")


@dataclass(frozen=True)
class Option:
    name: str                       # the config field; the flag is --name-with-dashes
    default: object
    kind: str                       # one of KINDS
    help: str
    choices: Tuple[str, ...] = ()
    metavar: Optional[str] = None
    check: Optional[Callable[[object], bool]] = None   # value -> ok?
    problem: str = ""               # the sentence when check fails; {value} is the value
    since: int = 1                  # the output format that added it
    lo: Optional[float] = None      # kind int: the range the CLI accepts (click.IntRange)
    hi: Optional[float] = None
    cli: bool = True                # offered as a flag (format_version is not)
    nargs: int = 2                  # kind "pair": how many numbers (--color-jitter takes 4)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def validate(self, value) -> None:
        if self.kind == "choice" and value not in self.choices:
            raise MixbakeError(f"{self.flag} must be one of {', '.join(self.choices)}, got {value!r}.")
        if self.check is not None and value is not None and not self.check(value):
            raise MixbakeError(self.problem.format(value=value, flag=self.flag))


def share(name: str, default: float, help: str) -> Option:
    """An op's share of the outputs (--mixup 0.5): shares are normalised over the ops."""
    return Option(name, default, "share", help, check=lambda v: math.isfinite(v) and v >= 0,
                  problem="{flag} must be a share >= 0, got {value}.")


def beta_alpha(name: str, default: float, help: str) -> Option:
    return Option(name, default, "float", help, check=lambda v: math.isfinite(v) and v > 0,
                  problem="{flag} must be > 0 (Beta(a, a) needs a > 0), got {value}.")


def coerce(option: Option, value):
    """One spelling per value: mixup=1 (API) and --mixup 1 (CLI) must be the same build."""
    if value is None or option.kind in ("choice", "size", "pair"):
        return value
    if option.kind == "flag":
        if not (isinstance(value, (bool, int)) and value in (0, 1)):
            raise MixbakeError(f"{option.flag} is a flag (True or False), got {value!r}.")
        return bool(value)
    kind = int if option.kind in ("int", "seed") else float
    try:
        converted = kind(value)
    except (TypeError, ValueError):
        raise MixbakeError(f"{option.flag} must be a number, got {value!r}.") from None
    if kind is int and isinstance(value, float) and value != converted:
        raise MixbakeError(f"{option.flag} must be a whole number, got {value!r}.")
    return converted


def pair(option: Option, value) -> Optional[Tuple[float, ...]]:
    """A kind-"pair" option: ``option.nargs`` numbers (two: LO HI)."""
    if value is None:
        return None
    words = option.metavar or "LO HI"
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != option.nargs or not all(map(math.isfinite, numbers)):
        count = {2: "two", 4: "four"}.get(option.nargs, str(option.nargs))
        raise MixbakeError(f"{option.flag} needs {count} numbers {words}, got {value!r}.") from None
    return numbers


def span(name: str, default, help: str, lo: float, hi: float, what: str, since: int = 2) -> Option:
    """A kind-"pair" option LO HI with ``lo <= LO <= HI <= hi`` (``lo`` itself excluded when it is 0)."""
    def ok(v):
        return (v[0] > lo if lo == 0 else v[0] >= lo) and v[0] <= v[1] <= hi
    low = f"0 < LO" if lo == 0 else f"{lo:g} <= LO"
    return Option(name, default, "pair", help, check=ok, since=since,
                  problem=f"{{flag}} {what}: needs {low} <= HI <= {hi:g}, got {{value}}.")


def probability(name: str, help: str, since: int = 2) -> Option:
    return Option(name, 0.0, "float", help, metavar="P", since=since, check=lambda v: 0 <= v <= 1,
                  problem="{flag} is a probability in [0, 1], got {value}.")
