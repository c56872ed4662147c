"""The bake configuration: one frozen value that, with the source and seed, decides every output byte.

Execution-only settings (workers, quiet, executor, the --on-error policy) are deliberately *not* here: they must not change
what is baked (a build that fails on a bad item has no bad items in its finished shards, exactly as
the same build with ``skip`` would), so they stay out of the manifest and the fingerprint.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Optional, Tuple

from .errors import MixbakeError

OPS = ("mixup", "cutmix", "cutout", "none")
RESIZE_MODES = ("crop", "pad", "stretch")
IMAGE_FORMATS = ("jpeg", "png", "webp", "raw")
CUTOUT_FILLS = ("zero", "mean", "noise")
PAIRINGS = ("random", "cross-class")
ERROR_POLICIES = ("fail", "skip")
OUTPUT_FORMATS = ("parquet", "webdataset", "folder")
# Pillow's own decompression-bomb threshold: big enough for any real photo, small enough to refuse
# a 20000x20000 header that would need 1.2 GB to decode.
DEFAULT_MAX_PIXELS = 89_478_485


def parse_size(text) -> Tuple[int, int]:
    """'224' -> (224, 224); '320x240' -> (320, 240) as (width, height)."""
    if isinstance(text, (tuple, list)):
        parts = [str(p) for p in text]
    else:
        parts = str(text).lower().replace("*", "x").split("x")
    if len(parts) == 1:
        parts = parts * 2
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise MixbakeError(f"--size must be N or WxH (e.g. 224 or 320x240), got {text!r}.") from None
    if not (1 <= width <= 16384 and 1 <= height <= 16384):
        raise MixbakeError(f"--size must be between 1 and 16384 pixels per side, got {text!r}.")
    return width, height


@dataclass(frozen=True)
class BakeConfig:
    size: Tuple[int, int] = (224, 224)  # (width, height) of every output image
    resize: str = "crop"
    image_format: str = "jpeg"
    quality: int = 90
    mixup: float = 0.5
    cutmix: float = 0.5
    cutout: float = 0.0
    none: float = 0.0
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    cutmix_minmax: Optional[Tuple[float, float]] = None
    cutout_size: float = 0.5
    cutout_holes: int = 1
    cutout_fill: str = "zero"
    label_smoothing: float = 0.0
    copies: int = 1
    keep_originals: bool = False
    pairing: str = "random"
    shard_size: int = 500  # rows per shard
    seed: int = 0
    max_pixels: int = DEFAULT_MAX_PIXELS
    format: str = "parquet"
    # ---- added in format 2: omitted from to_dict() while unset, so format-1 configs keep their identity
    pool_size: Optional[int] = None        # source items decoded together (None: the items of one shard)
    copies_per_pass: Optional[int] = None  # copies made per decode of a pool (None: see plan.resolve_pairing)
    # the output rules a build follows: None for the newest; 1 rebuilds a format-1 build (its pairing)
    format_version: Optional[int] = None

    def __post_init__(self):
        object.__setattr__(self, "size", parse_size(self.size))
        # One spelling per value: mixup=1 (API) and --mixup 1 (CLI) must be the same build.
        for name in _FLOAT_FIELDS:
            _coerce(self, name, float)
        for name in _INT_FIELDS:
            _coerce(self, name, int)
        _require(isinstance(self.keep_originals, (bool, int)) and self.keep_originals in (0, 1),
                 f"--keep-originals is a flag (True or False), got {self.keep_originals!r}.")
        object.__setattr__(self, "keep_originals", bool(self.keep_originals))
        if self.cutmix_minmax is not None:
            object.__setattr__(self, "cutmix_minmax", _pair(self.cutmix_minmax))
        _validate(self)

    @property
    def shares(self) -> Tuple[float, ...]:
        """Normalised probability of each op in OPS order."""
        raw = [getattr(self, op) for op in OPS]
        total = sum(raw)
        return tuple(r / total for r in raw)

    @property
    def rows_per_item(self) -> int:
        return self.copies + int(self.keep_originals)

    def to_dict(self) -> dict:
        """The config as recorded and hashed. Options added after format 1 appear only when set, so
        a config that baked before keeps its identity (and its bytes); ``format_version`` is not a
        config key: the build identity records the format its rules follow."""
        d = dataclasses.asdict(self)
        d["size"] = list(self.size)
        d["cutmix_minmax"] = list(self.cutmix_minmax) if self.cutmix_minmax else None
        del d["format_version"]
        for name in LATER_FIELDS:
            if d[name] is None:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BakeConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise MixbakeError(f"Unknown bake option(s): {', '.join(unknown)}.")
        return cls(**d)


LATER_FIELDS = ("pool_size", "copies_per_pass")  # recorded only when set (see to_dict)
FORMAT_VERSIONS = (1, 2)
_FLOAT_FIELDS = ("mixup", "cutmix", "cutout", "none", "mixup_alpha", "cutmix_alpha", "cutout_size",
                 "label_smoothing")
_INT_FIELDS = ("quality", "cutout_holes", "copies", "shard_size", "seed", "max_pixels", "pool_size",
               "copies_per_pass", "format_version")
_OPTIONAL_INT_FIELDS = ("pool_size", "copies_per_pass", "format_version")


def _coerce(config, name: str, kind) -> None:
    value = getattr(config, name)
    if value is None and name in _OPTIONAL_INT_FIELDS:
        return
    try:
        converted = kind(value)
    except (TypeError, ValueError):
        raise MixbakeError(f"--{name.replace('_', '-')} must be a number, got {value!r}.") from None
    if kind is int and isinstance(value, float) and value != converted:
        raise MixbakeError(f"--{name.replace('_', '-')} must be a whole number, got {value!r}.")
    object.__setattr__(config, name, converted)


def _pair(value) -> Tuple[float, float]:
    """--cutmix-minmax: two numbers (LO, HI)."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise MixbakeError(f"--cutmix-minmax needs two numbers LO HI, got {value!r}.") from None
    return lo, hi


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise MixbakeError(message)


def _choice(value, name, allowed) -> None:
    _require(value in allowed, f"--{name} must be one of {', '.join(allowed)}, got {value!r}.")


def _validate(c: BakeConfig) -> None:
    _choice(c.resize, "resize", RESIZE_MODES)
    _choice(c.image_format, "image-format", IMAGE_FORMATS)
    _choice(c.cutout_fill, "cutout-fill", CUTOUT_FILLS)
    _choice(c.pairing, "pairing", PAIRINGS)
    _choice(c.format, "format", OUTPUT_FORMATS)
    _require(1 <= c.quality <= 100, f"--quality must be in 1..100, got {c.quality}.")
    for op in OPS:
        share = getattr(c, op)
        _require(math.isfinite(share) and share >= 0, f"--{op} must be a share >= 0, got {share}.")
    _require(sum(getattr(c, op) for op in OPS) > 0,
             "All op shares are zero: give at least one of --mixup, --cutmix, --cutout, --none a share > 0.")
    for name in ("mixup_alpha", "cutmix_alpha"):
        alpha = getattr(c, name)
        _require(math.isfinite(alpha) and alpha > 0,
                 f"--{name.replace('_', '-')} must be > 0 (Beta(a, a) needs a > 0), got {alpha}.")
    if c.cutmix_minmax is not None:
        lo, hi = c.cutmix_minmax
        _require(0 < lo <= hi <= 1, f"--cutmix-minmax needs 0 < LO <= HI <= 1, got {lo} {hi}.")
    _require(0 < c.cutout_size <= 1, f"--cutout-size is a fraction of the side in (0, 1], got {c.cutout_size}.")
    _require(1 <= c.cutout_holes <= 64, f"--cutout-holes must be in 1..64, got {c.cutout_holes}.")
    _require(0 <= c.label_smoothing < 1, f"--label-smoothing must be in [0, 1), got {c.label_smoothing}.")
    _require(1 <= c.copies <= 1000, f"--copies must be in 1..1000, got {c.copies}.")
    _require(c.shard_size >= 2, f"--shard-size must be at least 2 rows, got {c.shard_size}.")
    _require(c.pool_size is None or 2 <= c.pool_size <= 1_000_000,
             f"--pool-size must be in 2..1000000 source items, got {c.pool_size}.")
    _require(c.copies_per_pass is None or 1 <= c.copies_per_pass <= 1000,
             f"--copies-per-pass must be in 1..1000, got {c.copies_per_pass}.")
    _require(c.format_version is None or c.format_version in FORMAT_VERSIONS,
             f"format_version must be one of {', '.join(map(str, FORMAT_VERSIONS))}, got {c.format_version}.")
    _require(c.format_version != 1 or (c.pool_size is None and c.copies_per_pass is None),
             "--pool-size and --copies-per-pass are format-2 options: a format-1 build has neither.")
    _require(0 <= c.seed < 2**63, f"--seed must be an integer in 0..2**63-1, got {c.seed}.")
    _require(c.max_pixels >= 1, f"--max-pixels must be positive, got {c.max_pixels}.")


def canonical_json(obj) -> str:
    """The one JSON spelling we hash and write: sorted keys, no whitespace variance."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(obj) -> str:
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()
