"""The bake configuration: one frozen value that, with the source and seed, decides every output byte.

``BakeConfig`` is assembled from the options each room declares: the core ones here, each op's in
its module (``mixbake.ops``), the output formats' choice from ``mixbake.formats``. Execution-only
settings (workers, quiet, executor, the --on-error policy) are deliberately *not* here: they must
not change what is baked, so they stay out of the manifest and the fingerprint.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from typing import Dict, List, Tuple

from . import chain, formats, ops
from .errors import MixbakeError
from .options import Option, coerce, pair

RESIZE_MODES = ("crop", "pad", "stretch", "random-crop")
IMAGE_FORMATS = ("jpeg", "png", "webp", "raw")
PAIRINGS = ("random", "cross-class")
ERROR_POLICIES = ("fail", "skip")
OUTPUT_FORMATS = formats.NAMES
FORMAT_VERSIONS = (1, 2)
# Pillow's own decompression-bomb threshold: big enough for any real photo, small enough to refuse
# a 20000x20000 header that would need 1.2 GB to decode.
DEFAULT_MAX_PIXELS = 89_478_485
log = logging.getLogger("mixbake")

OUTPUT_OPTIONS = (
    Option("size", (224, 224), "size", "Output image size: N for NxN, or WIDTHxHEIGHT.", metavar="N|WxH"),
    Option("resize", "crop", "choice", "Fit to --size: centre-crop to cover, pad (black) to fit, stretch, or "
           "random-crop (torchvision RandomResizedCrop: --crop-scale, --crop-ratio; each copy its own crop).",
           choices=RESIZE_MODES),
    Option("format", "parquet", "choice", "parquet: data/train-*.parquet shards (HF datasets, DuckDB, Polars, "
           "Arrow); webdataset: train-*.tar; folder: images/<class>/<key>.<ext> + labels.csv.",
           choices=OUTPUT_FORMATS),
    Option("image_format", "jpeg", "choice", "Encoding of output images; raw = uint8 HxWx3 bytes "
           "(+height/width/channels).", choices=IMAGE_FORMATS),
    Option("quality", 90, "int", "JPEG/WebP quality.", lo=1, hi=100, check=lambda v: 1 <= v <= 100,
           problem="{flag} must be in 1..100, got {value}."),
)
SAMPLE_OPTIONS = (
    Option("label_smoothing", 0.0, "float", "Soft labels become y*(1-EPS) + EPS/K, applied exactly once.",
           metavar="EPS", check=lambda v: 0 <= v < 1, problem="{flag} must be in [0, 1), got {value}."),
    Option("copies", 1, "int", "Augmented outputs per source item.", check=lambda v: 1 <= v <= 1000,
           problem="{flag} must be in 1..1000, got {value}."),
    Option("soft_label", "auto", "choice", "How the soft label is stored: dense (soft_label, K floats a row), "
           "sparse (soft_index + soft_value: the non-zeros, before smoothing), or both; auto: dense up to "
           "1000 classes, sparse above.", choices=("auto", "dense", "sparse", "both"), since=2),
    Option("keep_originals", False, "flag", "Also write each source item unaugmented."),
    Option("pairing", "random", "choice", "Partner choice (never the item itself); cross-class: a partner of "
           "another class.", choices=PAIRINGS),
    Option("shard_size", 500, "int", "Rows per shard (about).", check=lambda v: v >= 2,
           problem="{flag} must be at least 2 rows, got {value}."),
    Option("pool_size", None, "int", "Source items decoded together; partners are drawn inside a pool, which a "
           "worker holds decoded: memory per worker ~ 150 MB + pool size x output pixels x 3 bytes "
           "[default: the items of one shard, shard size / (1 + keep-originals)].", metavar="ITEMS",
           lo=2, hi=1_000_000, check=lambda v: 2 <= v <= 1_000_000,
           problem="{flag} must be in 2..1000000 source items, got {value}.", since=2),
    Option("copies_per_pass", None, "int", "With --copies > 1: copies made from one decode of a pool. Each pass "
           "re-shuffles the source into new pools, so an item meets partners from all over the dataset across "
           "passes; larger K decodes less [default: 4, or every copy at once when the source fits one pool; 1 with "
           "--resize random-crop, which decodes every view anyway].",
           metavar="K", lo=1, hi=1000, check=lambda v: 1 <= v <= 1000,
           problem="{flag} must be in 1..1000, got {value}.", since=2),
    Option("seed", 0, "seed", "Everything random flows from this seed.", check=lambda v: 0 <= v < 2**63,
           problem="{flag} must be an integer in 0..2**63-1, got {value}."),
    Option("max_pixels", DEFAULT_MAX_PIXELS, "int", "Refuse images with more pixels than this "
           "(decompression-bomb guard).", check=lambda v: v >= 1, problem="{flag} must be positive, got {value}."),
    Option("mask_ignore_index", 255, "int", "Segmentation masks: the class index that means 'no label' (the fill "
           "of pad borders, rotated corners and holes).", metavar="I", lo=0, hi=255, since=2,
           check=lambda v: 0 <= v <= 255, problem="{flag} must be in 0..255, got {value}."),
    Option("mask_classes", None, "int", "Segmentation masks: the number of mask classes; a mask pixel that is "
           "neither below it nor the ignore index makes its item bad, and verify checks every stored mask "
           "[default: unchecked].", metavar="N", lo=1, hi=256, since=2,
           check=lambda v: 1 <= v <= 256, problem="{flag} must be in 1..256, got {value}."),
    Option("mask_cutout", "ignore", "choice", "Segmentation masks: cutout holes and --erase boxes set to the ignore "
           "index, or keep the source's classes.", choices=("ignore", "keep"), since=2),
    Option("min_visibility", 0.2, "float", "Detection: a box is kept where the visible share of its area (after "
           "crops, clipping, cutmix's paste, cutout and erase holes) is at least this; else it is dropped (counted "
           "in the row's objects_dropped).", metavar="F", since=2,
           check=lambda v: 0.0 <= v <= 1.0, problem="{flag} must be in 0..1, got {value}."),
    # what the source carries, set from the catalog: it decides the label columns
    Option("with_masks", False, "flag", "The source's items carry segmentation masks.", cli=False, since=2),
    Option("with_boxes", False, "flag", "The source's items carry detection boxes.", cli=False, since=2),
    Option("label_kind", "class", "choice", "The kind of label the source's items carry.", cli=False,
           choices=("class", "multi", "soft"), since=2),
    # the output rules a build follows: None for the newest; 1 rebuilds a format-1 build (its pairing)
    Option("format_version", None, "int", "The output format's rules to follow.", cli=False,
           check=lambda v: v in FORMAT_VERSIONS, problem="format_version must be one of 1, 2, got {value}."),
)


def all_options() -> List[Option]:
    """Every bake option, in the CLI's order: output, the chain's steps, ops, then the rest."""
    return [*OUTPUT_OPTIONS, *chain.options(), *ops.options(), *SAMPLE_OPTIONS]


OPTIONS: Dict[str, Option] = {o.name: o for o in all_options()}
LATER_FIELDS = tuple(o.name for o in OPTIONS.values() if o.since > 1)  # recorded only when not at their default
NOT_RECORDED = ("format_version", "label_kind", "with_masks", "with_boxes")  # the identity records these at the top level


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


class _Config:
    """The methods of :class:`BakeConfig` (its fields come from the options)."""

    def __post_init__(self):
        for option in OPTIONS.values():
            value = getattr(self, option.name)
            if option.kind == "size":
                value = parse_size(value)
            elif option.kind == "pair":
                value = pair(option, value)
            else:
                value = coerce(option, value)
            object.__setattr__(self, option.name, value)
        for option in OPTIONS.values():
            option.validate(getattr(self, option.name))
        _validate(self)

    @property
    def shares(self) -> Tuple[float, ...]:
        """Normalised probability of each op, in the ops registry's order."""
        return ops.shares(self)

    @property
    def rows_per_item(self) -> int:
        return self.copies + int(self.keep_originals)

    def to_dict(self) -> dict:
        """The config as recorded and hashed. Options added after format 1 appear only when set, so
        a config that baked before keeps its identity (and its bytes); ``format_version`` is not a
        config key: the build identity records the format its rules follow."""
        d = {name: getattr(self, name) for name in OPTIONS if name not in NOT_RECORDED}
        d = {k: v for k, v in d.items() if not (k in LATER_FIELDS and v == OPTIONS[k].default)}
        d["size"] = list(self.size)
        d.update({name: list(v) for name, v in d.items() if OPTIONS[name].kind == "pair" and v})
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BakeConfig":
        unknown = sorted(set(d) - set(OPTIONS))
        if unknown:
            raise MixbakeError(f"Unknown bake option(s): {', '.join(unknown)}.")
        return cls(**d)

    @classmethod
    def of_manifest(cls, doc: dict) -> "BakeConfig":
        """The config of a finished build (its manifest), with the format its rules followed."""
        return cls.from_dict({**doc["config"], "format_version": doc.get("format_version", 1),
                              "label_kind": doc.get("label_kind", "class"), "with_masks": bool(doc.get("masks")),
                              "with_boxes": bool(doc.get("boxes"))})

    def for_catalog(self, catalog) -> "BakeConfig":
        """This config for a source: its label kind, masks and boxes (which decide the columns) are the source's."""
        boxes = catalog.objects is not None
        if self.format == "yolo" and not boxes:
            raise MixbakeError("--format yolo writes detection labels (labels/<key>.txt); this source has no boxes "
                               "(give --annotations, a YOLO layout or a Parquet objects column).")
        if (catalog.label_kind, catalog.has_masks, boxes) == (self.label_kind, self.with_masks, self.with_boxes):
            return self
        return dataclasses.replace(self, label_kind=catalog.label_kind, with_masks=catalog.has_masks, with_boxes=boxes)

    def soft_form(self, num_classes: int) -> str:
        """How this build stores its soft label over ``num_classes`` classes (see ``columns``)."""
        from .columns import soft_form
        return soft_form(self.soft_label, num_classes, self.format_version)

    def label_fields(self, num_classes: int) -> list:
        """The label columns of this build's rows (``mixbake.columns``)."""
        from .columns import label_fields
        return label_fields(self.soft_form(num_classes), chain.enabled(self), self.label_kind, self.with_boxes,
                            self.mosaic > 0)

    def inert(self) -> Dict[str, str]:
        """{option: why it has no effect}: options the rest of this config makes inert."""
        found = chain.inert(self)
        for op in ops.REGISTRY:
            found.update(op.inert(self))
        if self.image_format in ("png", "raw"):
            found["quality"] = f"--image-format {self.image_format}"
        return found


BakeConfig = dataclasses.make_dataclass(
    "BakeConfig", [(o.name, object, dataclasses.field(default=o.default)) for o in OPTIONS.values()],
    bases=(_Config,), frozen=True)
BakeConfig.__module__ = __name__  # picklable as mixbake.config.BakeConfig (make_dataclass cannot say so on 3.9)
BakeConfig.__doc__ = "The bake options (``config.OPTIONS``), coerced and validated: one frozen value."


def warn_inert(config: BakeConfig, explicit) -> None:
    """Options the user gave that the rest of the config makes inert: said, not silently kept."""
    for name, why in config.inert().items():
        if name in explicit:
            log.warning("--%s has no effect with %s (it is still part of the build's config)",
                        name.replace("_", "-"), why)


SOURCE_OPTIONS = {"min_visibility": "with_boxes", "mask_ignore_index": "with_masks", "mask_cutout": "with_masks",
                  "mask_classes": "with_masks"}  # options that act on what only some sources carry


def warn_inert_for_source(config: BakeConfig, explicit) -> None:
    """Options the user gave for boxes or masks the source does not carry (``config`` made for it)."""
    for name, needs in SOURCE_OPTIONS.items():
        if name in explicit and not getattr(config, needs):
            what = "detection boxes" if needs == "with_boxes" else "segmentation masks"
            log.warning("--%s has no effect: this source has no %s (it is still part of the build's config)",
                        name.replace("_", "-"), what)


def _validate(c) -> None:
    if sum(getattr(c, op.name) for op in ops.REGISTRY) <= 0:
        raise MixbakeError("All op shares are zero: give at least one of "
                           f"{', '.join('--' + n for n in ops.NAMES)} a share > 0.")
    for op in ops.REGISTRY:
        op.validate(c)
    chain.validate(c)
    if c.format == "yolo" and c.image_format == "raw":
        raise MixbakeError("--format yolo writes images YOLO trainers decode: choose --image-format jpeg, png or "
                           "webp (raw pixels are no YOLO image).")
    if c.label_kind != "class" and c.pairing == "cross-class":
        raise MixbakeError(f"--pairing cross-class needs one class per item; this source's labels are "
                           f"{'sets of classes' if c.label_kind == 'multi' else 'soft labels'}.")
    if c.format_version == 1 and (c.pool_size is not None or c.copies_per_pass is not None):
        raise MixbakeError("--pool-size and --copies-per-pass are format-2 options: a format-1 build has neither.")


def canonical_json(obj) -> str:
    """The one JSON spelling we hash and write: sorted keys, no whitespace variance."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(obj) -> str:
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()

