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


@dataclass
class Catalog:
    kind: str                      # folder | parquet | demo
    uri: str                       # where it was read, without credentials (store.redact)
    classes: Tuple[str, ...]
    labels: np.ndarray             # int64 per item; -1 where the label itself is bad (see ``bad``)
    refs: Sequence[str]            # per item: relative path, or "file.parquet#row"
    chunk_bounds: np.ndarray       # int64, len = chunks + 1: chunk c holds items [b[c], b[c+1])
    chunk_locators: Sequence       # per chunk: what the reader needs to fetch it
    reader: object                 # picklable, has read_chunk(locator) -> iterable of payloads
    fingerprint: str
    options: Dict[str, object] = field(default_factory=dict)   # resolved source options (columns ...)
    ignored_files: int = 0
    notes: Tuple[str, ...] = ()    # listing remarks for the summary (empty class folders ...)
    bad: Dict[int, str] = field(default_factory=dict)          # item -> reason known at listing time
    label_kind: str = "class"      # what an item's label is (mixbake.targets)

    def __len__(self) -> int:
        return len(self.labels)

    def summary(self) -> dict:
        return {
            "kind": self.kind,
            "uri": self.uri,
            "items": len(self),
            "fingerprint": self.fingerprint,
            "options": dict(self.options),
            "ignored_files": self.ignored_files,
        }


@dataclass(frozen=True)
class SourceOptions:
    """How to read a source beyond where it is: one object, passed through whole (bake, plan,
    preview, verify; the recipe keys and the CLI's flags are its fields, documented in ``HELP``).
    What a source resolved (the Parquet columns it found) is recorded in the manifest as
    ``source.options``, and ``from_recorded`` reads it back."""
    image_column: Optional[str] = None
    label_column: Optional[str] = None

    HELP = {
        "image_column": "Parquet: the image column (struct<bytes, path> or binary) [default: the only one].",
        "label_column": "Parquet: the label column (int class index or string name) [default: the only one].",
    }

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
                map_each: Callable = lambda fn, items: [fn(item) for item in items]) -> Catalog:
    """List SOURCE: the word ``demo``, an image folder, or a Parquet file / directory / glob.
    ``map_each(fn, items)`` runs independent listing steps (one per class folder): ``Session.map`` spreads
    them over the worker processes."""
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
    if parquet.looks_like_parquet(source):
        return parquet.parquet_catalog(source, image_column, label_column)
    if store.isdir():
        if image_column or label_column:
            raise MixbakeError("--image-column/--label-column apply to Parquet sources, not to an image folder.")
        return folder.folder_catalog(store, map_each)
    raise MixbakeError(f"Source {redact(source)!r} is neither an image folder nor a Parquet file.")


def display_ref(path: str) -> str:
    """A printable, UTF-8-safe spelling of a file name that may hold undecodable bytes."""
    if path.isascii():  # nearly every name, and the only case on hot paths: nothing to escape
        return path
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
