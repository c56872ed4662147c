"""Parquet source: a file, a directory of ``*.parquet``, or a glob. One chunk per row group.

Listing reads only footers and the label column; image bytes are read later, a row group at a time.
"""
from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MixbakeError
from ..store import Store, is_uri, redact
from . import Catalog

LABEL_NAMES = ("label", "labels", "class", "target", "category", "y")
IMAGE_NAMES = ("image", "img", "jpg", "png", "picture")


def looks_like_parquet(source: str) -> bool:
    if any(ch in source for ch in "*?["):
        return True
    if source.endswith(".parquet"):
        return True
    store = Store.open(source)
    if store.local and os.path.isfile(store.root):
        return _has_parquet_magic(store.root)
    # a directory of *.parquet; one with (class) sub-folders is an image folder, whatever else it holds
    entries = store.entries()
    has_dirs = any(is_dir and not name.startswith(".") for name, is_dir in entries)
    return not has_dirs and any(name.endswith(".parquet") for name, _ in entries)


def _has_parquet_magic(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PAR1"
    except OSError:
        return False


def _list_files(source: str) -> Tuple[Store, List[str]]:
    """The store holding the files and their paths relative to it, sorted."""
    if any(ch in source for ch in "*?["):
        return _glob(source)
    store = Store.open(source)
    if store.isdir():
        files = [n for n, is_dir in store.entries() if not is_dir and n.endswith(".parquet")]
    else:
        if not store.exists():
            raise MixbakeError(f"Parquet source {redact(source)!r} does not exist.")
        parent, _, name = source.rstrip("/").rpartition("/")
        store, files = Store.open(parent or "."), [name]
    if not files:
        raise MixbakeError(f"No Parquet files in {redact(source)!r}.")
    return store, files


def _glob(pattern: str) -> Tuple[Store, List[str]]:
    if is_uri(pattern):  # object stores: a pattern in the last path component only
        parent, _, name_pattern = pattern.rpartition("/")
        store = Store.open(parent)
        files = [n for n, is_dir in store.entries() if not is_dir and fnmatch.fnmatch(n, name_pattern)]
    else:
        matches = sorted(os.path.abspath(p) for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        base = os.path.commonpath([os.path.dirname(p) for p in matches]) if matches else "."
        store = Store.open(base)
        files = [os.path.relpath(p, base).replace(os.sep, "/") for p in matches]
    if not files:
        raise MixbakeError(f"No Parquet files match {redact(pattern)!r}.")
    return store, sorted(files)


def _open(store: Store, rel: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(store.open_input(rel))
    except (pa.ArrowException, OSError) as exc:
        raise MixbakeError(f"{store.display(rel)}: not a readable Parquet file ({exc}).") from None


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _is_image_type(t: pa.DataType) -> bool:
    if pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        return "bytes" in names and _is_binary(t.field("bytes").type)
    return _is_binary(t)


def _is_label_type(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)


def _pick(schema: pa.Schema, wanted: Optional[str], accept, preferred, what: str, flag: str, where: str,
          exclude: Sequence[str] = ()) -> str:
    """The column holding ``what``: the one asked for, else the only candidate, else the only
    candidate with a conventional name. Errors name the file and every column with its type."""
    listing = ", ".join(f"{n} ({schema.field(n).type})" for n in schema.names)
    if wanted is not None:
        if wanted not in schema.names:
            raise MixbakeError(f"{where}: {flag} {wanted!r} is not a column; columns are: {listing}.")
        if not accept(schema.field(wanted).type):
            raise MixbakeError(f"{where}: {flag} {wanted!r} has type {schema.field(wanted).type}, "
                               f"which is not {what}.")
        return wanted
    candidates = [n for n in schema.names if n not in exclude and accept(schema.field(n).type)]
    named = [n for n in candidates if n.lower() in preferred]
    if len(candidates) == 1:
        return candidates[0]
    if len(named) == 1:
        return named[0]
    if not candidates:
        raise MixbakeError(f"{where}: no column holds {what}; columns are: {listing} (choose with {flag}).")
    raise MixbakeError(f"{where}: several columns could hold {what} ({', '.join(candidates)}): "
                       f"choose one with {flag}.")


@dataclass(frozen=True)
class ParquetReader:
    store: Store
    files: Tuple[str, ...]
    image_column: str

    def read_chunk(self, locator):
        """Payloads (bytes or None) of one row group, in row order, streamed in small batches so a
        worker never holds a whole row group's image bytes twice (Arrow buffers + Python bytes)."""
        file_index, row_group = locator
        with self.store.open_input(self.files[file_index]) as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=64, row_groups=[row_group],
                                                       columns=[self.image_column], use_threads=False):
                column = batch.column(0)
                if pa.types.is_struct(column.type):  # flatten(): a null struct gives null fields
                    column = column.flatten()[column.type.get_field_index("bytes")]
                yield from column.to_pylist()


def _class_names(pf: pq.ParquetFile, label_column: str) -> Optional[List[str]]:
    raw = (pf.schema_arrow.metadata or {}).get(b"huggingface")
    if not raw:
        return None
    try:
        feature = json.loads(raw)["info"]["features"][label_column]
        if feature.get("_type") == "ClassLabel" and feature.get("names"):
            return [str(n) for n in feature["names"]]
    except (ValueError, KeyError, TypeError):
        return None
    return None


def parquet_catalog(source: str, image_column: Optional[str], label_column: Optional[str]) -> Catalog:
    store, files = _list_files(source)
    handles = [_open(store, f) for f in files]
    schema = handles[0].schema_arrow
    where = store.display(files[0])
    image_column = _pick(schema, image_column, _is_image_type, IMAGE_NAMES,
                         "images (struct<bytes, path> or binary)", "--image-column", where)
    label_column = _pick(schema, label_column, _is_label_type, LABEL_NAMES,
                         "labels (integer or string)", "--label-column", where, exclude=(image_column,))
    for f, pf in zip(files, handles):
        s = pf.schema_arrow
        for col, ok in ((image_column, _is_image_type), (label_column, _is_label_type)):
            if col not in s.names or not ok(s.field(col).type):
                raise MixbakeError(f"{store.display(f)}: column {col!r} is missing or has another type than "
                                   f"in {files[0]}.")
    raw_labels = [pf.read(columns=[label_column]).column(0) for pf in handles]
    classes, labels, bad = _resolve_labels(handles[0], label_column, raw_labels)
    bounds, locators, refs = [0], [], []
    for fi, (rel, pf) in enumerate(zip(files, handles)):
        row_in_file = 0
        for rg in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(rg).num_rows
            if n:
                locators.append((fi, rg))
                bounds.append(bounds[-1] + n)
                refs.extend(f"{rel}#{row_in_file + r}" for r in range(n))
            row_in_file += n
    if not refs:
        raise MixbakeError(f"Parquet source {redact(source)!r} holds no rows.")
    return Catalog(
        kind="parquet", uri=redact(source) if is_uri(source) else os.path.abspath(source),
        classes=tuple(classes), labels=labels, refs=refs,
        chunk_bounds=np.asarray(bounds, dtype=np.int64), chunk_locators=locators,
        reader=ParquetReader(store, tuple(files), image_column),
        fingerprint=_fingerprint(store, files, handles),
        options={"image_column": image_column, "label_column": label_column}, bad=bad,
    )


def _resolve_labels(pf, label_column, raw_labels):
    """Class names (HF ClassLabel metadata > distinct strings > 0..K-1) and int64 labels (-1: bad)."""
    column = pa.chunked_array([c for arr in raw_labels for c in arr.chunks], type=raw_labels[0].type)
    bad = {}
    if pa.types.is_integer(column.type):
        names = _class_names(pf, label_column)
        # via Python ints: pyarrow's to_numpy/__array__ import pandas when it is installed (0.4 s)
        raw = column.to_pylist()
        valid = np.array([v is not None for v in raw], dtype=bool)
        ints = np.array([v if v is not None else -1 for v in raw], dtype=np.int64)
        if names is None:
            top = int(ints[valid].max()) if valid.any() else -1
            names = [str(i) for i in range(top + 1)]
        out_of_range = valid & ((ints < 0) | (ints >= len(names)))
        for i in np.flatnonzero(out_of_range):
            bad[int(i)] = f"label {ints[i]} is outside the {len(names)} classes"
        labels = np.where(valid & ~out_of_range, ints, -1)
    else:
        strings = column.to_pylist()
        names = sorted({s for s in strings if s is not None})
        index = {n: i for i, n in enumerate(names)}
        labels = np.asarray([index.get(s, -1) if s is not None else -1 for s in strings], dtype=np.int64)
        valid = labels >= 0
    for i in np.flatnonzero(~np.asarray(valid)):
        bad.setdefault(int(i), "label is null")
    return names, labels.astype(np.int64), bad


def _fingerprint(store: Store, files, handles) -> str:
    h = hashlib.sha256()
    for rel, pf in zip(files, handles):
        h.update(f"{rel}\0{store.size(rel)}\0{pf.metadata.num_rows}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()
