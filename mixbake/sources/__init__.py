"""Sources: list a dataset once into a :class:`Catalog`, and read the bytes of a chunk of it later.

A catalog is the stable, sorted list of items (labels and a human-readable reference each) cut into
*chunks* that are cheap to read sequentially (one file of a folder, one row group of a Parquet file).
Listing never decodes an image and never loads a Parquet dataset's image bytes.
The *reader* is a small picklable object that a worker uses to fetch one chunk's payloads.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from ..errors import MixbakeError
from ..store import Store, redact


def take_csr(offsets: np.ndarray, items) -> Tuple[np.ndarray, np.ndarray]:
    """(new offsets, entry indices) of the rows ``items`` of a CSR layout, in that order."""
    items = np.asarray(items, np.int64)
    lo, hi = offsets[items], offsets[items + 1]
    counts = hi - lo
    new = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return new, np.repeat(lo - new[:-1], counts) + np.arange(int(new[-1]))


@dataclass(frozen=True)
class ItemSets:
    """Per item a set of class indices, as columns (CSR): item ``i`` holds
    ``index[offsets[i]:offsets[i+1]]``, ascending and distinct. A multi-label source's labels."""
    offsets: np.ndarray            # int64, len(items) + 1
    index: np.ndarray              # int32 class indices

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def take(self, items: np.ndarray) -> "ItemSets":
        """The sets of ``items`` (in that order), as a new ItemSets."""
        offsets, at = take_csr(self.offsets, items)
        return ItemSets(offsets, self.index[at])

    def of(self, i: int) -> np.ndarray:
        return self.index[self.offsets[i]:self.offsets[i + 1]]


@dataclass(frozen=True)
class ItemObjects:
    """Per item its annotated objects (detection boxes), as columns (CSR): item ``i`` holds boxes
    ``boxes[offsets[i]:offsets[i+1]]`` (x0, y0, x1, y1: source pixels of the oriented image, or
    fractions of its width and height where ``normalised``, as YOLO's labels are) and their
    ``category`` (class indices). A detection source's targets (``mixbake.targets.boxes``)."""
    offsets: np.ndarray            # int64, len(items) + 1
    boxes: np.ndarray              # float64 (m, 4)
    category: np.ndarray           # int32 (m,)
    normalised: bool = False

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def take(self, items: np.ndarray) -> "ItemObjects":
        """The objects of ``items`` (in that order), as a new ItemObjects."""
        offsets, at = take_csr(self.offsets, items)
        return ItemObjects(offsets, self.boxes[at], self.category[at], self.normalised)

    def of(self, i: int) -> Tuple[np.ndarray, np.ndarray]:
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return self.boxes[lo:hi], self.category[lo:hi]


@dataclass(frozen=True)
class ItemPayload:
    """What a reader yields for an item when the source carries more than the image: the image's
    payload (bytes, None or an array, as a reader yields alone), and per item a soft-label input
    (float32, the K values as stored, checked by the worker) and/or its mask's encoded bytes."""
    image: object
    soft: Optional[np.ndarray] = None
    mask: Optional[bytes] = None


@dataclass
class Catalog:
    """Held as columns (numpy, Arrow) and a few numbers per chunk, never as Python objects per
    item: a 20-million-item source costs the parent some 30 bytes per item (see ``refs``)."""
    kind: str                      # folder | parquet | demo
    uri: str                       # where it was read, without credentials (store.redact)
    classes: Tuple[str, ...]
    labels: np.ndarray             # int32 per item; -1 where the label itself is bad (see ``bad``)
    refs: Sequence[str]            # per item: relative path, or "file.parquet#row" (sources.refs)
    reader: object                 # picklable, has read_chunk(locator, stamp) -> iterable of payloads
    fingerprint: str
    # chunk c holds items [chunk_bounds[c], chunk_bounds[c+1]); None: one item per chunk (a folder)
    chunk_bounds: Optional[np.ndarray] = None
    chunk_locators: Optional[Sequence] = None  # per chunk: what the reader needs; None: the refs
    options: Dict[str, object] = field(default_factory=dict)   # resolved source options (columns ...)
    ignored_files: int = 0
    notes: Tuple[str, ...] = ()    # listing remarks for the summary (empty class folders ...)
    bad: Dict[int, str] = field(default_factory=dict)          # item -> reason known at listing time
    # (file, reason) of whole source files left out at listing (--on-error skip): an unreadable
    # Parquet file. Its rows are not items (they could not be counted); errors.jsonl names the file.
    skipped_files: Tuple[Tuple[str, str], ...] = ()
    label_kind: str = "class"      # what an item's label is (mixbake.targets): class | multi | soft
    # label_kind "multi": each item's set of classes (``labels`` then holds its first class, or 0
    # for an empty set: only pairing looks at it)
    targets: Optional[ItemSets] = None
    has_masks: bool = False        # the reader yields each item's mask too (ItemPayload.mask)
    # a detection source: each item's boxes and their categories (``label_kind`` is then "multi":
    # ``targets`` holds each item's set of categories, the image-level tags)
    objects: Optional[ItemObjects] = None
    # per chunk the stamp key (store.stamp_key: size and mtime_ns) of the file it is read from, as
    # listed: a worker that finds a file otherwise stops the bake (the source changed under it); None
    # where nothing can change (demo)
    chunk_stamps: Optional[np.ndarray] = None
    state: str = ""                # the listing with mtimes: re-checked before the commit

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_chunks(self) -> int:
        return len(self.labels) if self.chunk_bounds is None else len(self.chunk_bounds) - 1

    def chunk_sizes(self):
        """Items per chunk (an int, the number of chunks, when each holds one item)."""
        return self.num_chunks if self.chunk_bounds is None else np.diff(self.chunk_bounds)

    def chunk_items(self, chunks: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(items, sizes) of some chunks: their items chunk after chunk, and each chunk's size."""
        chunks = np.asarray(chunks, np.int64)
        if self.chunk_bounds is None:
            return chunks, np.ones(len(chunks), np.int64)
        bounds = self.chunk_bounds
        starts, sizes = bounds[chunks], bounds[chunks + 1] - bounds[chunks]
        # start of its chunk + offset within it
        items = np.arange(int(sizes.sum()), dtype=np.int64) + np.repeat(starts - (np.cumsum(sizes) - sizes), sizes)
        return items, sizes

    def locators_of(self, chunks: np.ndarray) -> tuple:
        if self.chunk_locators is None:
            return tuple(self.refs.take(chunks)) if hasattr(self.refs, "take") else tuple(self.refs[c] for c in chunks)
        return tuple(self.chunk_locators[c] for c in np.asarray(chunks).tolist())

    def refs_of(self, items: np.ndarray) -> Tuple[str, ...]:
        """The printable references of some items."""
        refs = self.refs.take(items) if hasattr(self.refs, "take") else [self.refs[i] for i in items.tolist()]
        return tuple(display_ref(r) for r in refs)

    def summary(self) -> dict:
        summary = {
            "kind": self.kind,
            "uri": self.uri,
            "items": len(self),
            "fingerprint": self.fingerprint,
            "options": dict(self.options),
            "ignored_files": self.ignored_files,
        }
        if self.skipped_files:  # only then: the manifests of every other build keep their bytes
            summary["skipped_files"] = len(self.skipped_files)
        return summary


@dataclass(frozen=True)
class BadPayload:
    """What a reader yields in place of an item's payload when it cannot fetch it (an image file
    named by a Parquet cell, gone since listing): the worker records ``reason`` as the item's error,
    and the rest of the chunk is read on."""
    reason: str


@dataclass(frozen=True)
class SourceOptions:
    """How to read a source beyond where it is: one object, passed through whole (bake, plan,
    preview, verify; the recipe keys and the CLI's flags are its fields, documented in ``HELP``).
    What a source resolved (the Parquet columns it found) is recorded in the manifest as
    ``source.options``, and ``from_recorded`` reads it back."""
    image_column: Optional[str] = None
    label_column: Optional[str] = None
    classes: Optional[str] = None
    masks: Optional[str] = None
    mask_column: Optional[str] = None
    annotations: Optional[str] = None
    objects_column: Optional[str] = None
    bbox_format: Optional[str] = None

    HELP = {
        "image_column": "Parquet: the image column (struct<bytes, path> or binary) [default: the only one].",
        "label_column": "Parquet: the label column: an int class index or string name; a list of them "
                        "(multi-label); or, named here, a list<float> of K soft-label weights [default: the only one].",
        "classes": "A text file of class names, one a line in class-index order, for a soft-label column "
                   "[default: 0..K-1].",
        "masks": "Image folder: a directory of segmentation masks mirroring the images' tree (the mask of "
                 "cat/1.jpg is DIR/cat/1.png: class index per pixel, PNG mode L or P).",
        "mask_column": "Parquet: the column of segmentation masks (PNG bytes, or an Image struct).",
        "annotations": "Detection: a COCO instances JSON whose images' file_name are relative to SOURCE "
                       "(a folder of images); its categories are the classes.",
        "objects_column": "Parquet detection: the objects column, struct<bbox: list<list<float>>, category: "
                          "list<int>> (Hugging Face's detection convention) [default: a column named objects].",
        "bbox_format": "Parquet detection: the boxes' spelling, xywh (COCO's, the default) or xyxy.",
    }

    METAVARS = {"image_column": "COLUMN", "label_column": "COLUMN", "classes": "FILE", "masks": "DIR",
                "mask_column": "COLUMN", "annotations": "FILE", "objects_column": "COLUMN", "bbox_format": "xywh|xyxy"}

    @classmethod
    def names(cls) -> Tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def take(cls, options: dict) -> "SourceOptions":
        """Pop this object's fields out of a dict of keyword options."""
        return cls(**{name: options.pop(name) for name in cls.names() if name in options})

    @classmethod
    def from_recorded(cls, recorded: Optional[dict]) -> "SourceOptions":
        return cls(**{k: v for k, v in (recorded or {}).items() if k in cls.names()})

    def given(self) -> Dict[str, object]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def open_source(source: str, options: Optional[SourceOptions] = None,
                map_each: Callable = lambda fn, items: [fn(item) for item in items],
                on_error: str = "fail") -> Catalog:
    """List SOURCE: the word ``demo``, an image folder, or a Parquet file / directory / glob.
    ``map_each(fn, items)`` runs independent listing steps (one per class folder): ``Session.map`` spreads
    them over the worker processes. ``on_error`` is the bake's policy for a source file that cannot
    be listed at all (an unreadable Parquet file): 'fail' names it, 'skip' leaves it out
    (``Catalog.skipped_files``). Bad items are judged later, by the workers."""
    options = options or SourceOptions()
    image_column, label_column = options.image_column, options.label_column
    source = os.fspath(source)
    if source == "demo":
        from . import demo
        return demo.demo_catalog()
    from . import folder, parquet
    store = Store.open(source) if not any(ch in source for ch in "*?[") else None
    if store is not None and not store.exists():
        raise MixbakeError(f"Source {redact(source)!r} does not exist (expected 'demo', an image folder, or Parquet).")
    if options.bbox_format not in (None, "xywh", "xyxy"):
        raise MixbakeError(f"--bbox-format must be xywh or xyxy, got {options.bbox_format!r}.")
    if options.annotations is not None:
        if store is None or not store.isdir():
            raise MixbakeError("--annotations FILE (COCO) goes with a folder of images as SOURCE (the images' "
                               "file_name are relative to it).")
        if image_column or label_column or options.classes or options.mask_column or options.objects_column \
                or options.bbox_format:
            raise MixbakeError("--annotations (COCO) gives the labels and boxes of a folder of images: "
                               "--image-column/--label-column/--classes/--mask-column/--objects-column/--bbox-format "
                               "do not apply (a COCO bbox is [x, y, w, h]).")
        from .coco import coco_catalog
        return _with_masks(coco_catalog(store, options.annotations), options)
    if parquet.looks_like_parquet(source):
        if options.masks:
            raise MixbakeError("--masks DIR applies to an image folder; a Parquet source names its --mask-column.")
        return parquet.parquet_catalog(source, image_column, label_column, on_error, options.classes,
                                       options.mask_column, options.objects_column, options.bbox_format)
    if store.isdir():
        if image_column or label_column or options.classes or options.mask_column or options.objects_column \
                or options.bbox_format:
            raise MixbakeError("--image-column/--label-column/--classes/--mask-column/--objects-column/--bbox-format "
                               "apply to Parquet sources, not to an image folder.")
        from .yolo import is_yolo_layout, yolo_catalog
        if is_yolo_layout(store):
            return _with_masks(yolo_catalog(store), options)
        return _with_masks(folder.folder_catalog(store, map_each), options)
    raise MixbakeError(f"Source {redact(source)!r} is neither an image folder nor a Parquet file.")


def _with_masks(catalog: Catalog, options: SourceOptions) -> Catalog:
    """A folder-like catalog (an image folder, COCO, YOLO) with its --masks tree, if given."""
    if not options.masks:
        return catalog
    from .masks import with_folder_masks
    return with_folder_masks(catalog, options.masks)


def display_ref(path: str) -> str:
    """A printable, UTF-8-safe spelling of a file name that may hold undecodable bytes."""
    if path.isascii():  # nearly every name, and the only case on hot paths: nothing to escape
        return path
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
