"""Parquet source: a file, a directory of ``*.parquet``, or a glob. One chunk per row group.

Listing reads only footers and the label column; image bytes are read later, a row group at a time.
"""
from __future__ import annotations

import fnmatch
import glob
import hashlib
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MixbakeError, changed
from ..humanize import count
from ..store import Store, is_uri, redact, stamp_key
from . import Catalog, ItemPayload
from .masks import check_mask_column, mask_cells
from .parquet_objects import detection_labels, find_objects_column, is_objects_type
from .parquet_soft import class_names, is_soft_type, row_weights, soft_width
from .multilabel import MAX_UNNAMED_CLASSES
from .refs import RowRefs
from .parquet_lists import footer_feature, is_list_label_type, list_item_feature, read_list_labels, resolve_list_labels
from .parquet_paths import find_named_images, read_named

SKIPPED_NOTES = 5  # unreadable files named one by one in the listing's notes (all are in errors.jsonl)
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


def _readable(store: Store, entries, read, what: str, on_error: str, skipped: list) -> list:
    """[(rel, read(value))] for the (rel, value) entries whose file ``read`` can read. A file it cannot
    stops the listing, naming it; with --on-error skip it is left out instead, and added to ``skipped``
    as (rel, reason), so one corrupt file among many does not cost the whole source."""
    kept = []
    for rel, value in entries:
        try:
            kept.append((rel, read(value)))
        except (pa.ArrowException, OSError) as exc:
            reason = f"{what} ({_one_line(exc)})"
            if on_error != "skip":
                raise MixbakeError(f"{store.display(rel)}: {reason}.") from None
            skipped.append((rel, reason))
    return kept


def _one_line(exc: Exception) -> str:
    """An Arrow error as part of one sentence (Thrift's messages span lines and hold stray control bytes)."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in str(exc)).split())


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _is_image_type(t: pa.DataType) -> bool:
    if pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        return "bytes" in names and _is_binary(t.field("bytes").type)
    return _is_binary(t)


def _is_class_type(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_label_type(t: pa.DataType) -> bool:
    """A class per row (integer index or string name), or a set of them (a list of either)."""
    return _is_class_type(t) or is_list_label_type(t)


def _label_family(t: pa.DataType) -> str:
    """What a label column holds, whatever its widths: every file's must be alike."""
    if is_soft_type(t):
        return "soft"
    if is_list_label_type(t):
        return "list<" + _label_family(t.value_type) + ">"
    return "int" if pa.types.is_integer(t) else "string"


def _pick(schema: pa.Schema, wanted: Optional[str], accept, preferred, what: str, flag: str, where: str,
          exclude: Sequence[str] = (), fallback=None) -> str:
    """The column holding ``what``: the one asked for, else the only candidate, else the only
    candidate with a conventional name, else (``fallback``, a narrower ``accept``) the one the
    narrower test picks so. Errors name the file and every column with its type."""
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
    if fallback is not None and len(candidates) > 1:
        # a label column as sources listed before list columns were labels: every such source
        # keeps its column (an int `label` beside a list `labels`, a list beside an unnamed int)
        try:
            return _pick(schema, None, fallback, preferred, what, flag, where, exclude)
        except MixbakeError:
            pass
    if not candidates:
        raise MixbakeError(f"{where}: no column holds {what}; columns are: {listing} (choose with {flag}).")
    raise MixbakeError(f"{where}: several columns could hold {what} ({', '.join(candidates)}): "
                       f"choose one with {flag}.")


@dataclass(frozen=True)
class ParquetReader:
    store: Store
    files: Tuple[str, ...]
    image_column: str
    image_files: Optional[Store] = None  # where the files named by path-only cells are (None: no such cell)
    soft_column: Optional[str] = None    # a soft-label input column: read with the images (ItemPayload)
    mask_column: Optional[str] = None    # a mask column: read with the images (ItemPayload)

    def read_chunk(self, locator, stamp=None):
        """Payloads (bytes or None) of one row group, in row order, streamed in small batches so a
        worker never holds a whole row group's image bytes twice (Arrow buffers + Python bytes).
        A locator (file index, row group, locations) also names, per row, the file to read where the
        cell has a path and no bytes (a string array, see ``parquet_paths``). A Parquet file no
        longer as listed (``stamp``: size, mtime_ns) is SourceChanged: the bake stops."""
        file_index, row_group, *named = locator
        locations, row = (named[0] if named else None), 0
        rel = self.files[file_index]
        if stamp is not None:
            size, mtime = self.store.stamp(rel)
            if int(stamp_key(size, mtime)) != stamp:
                raise changed(self.store.display(rel), size)
        with self.store.open_input(rel) as f:
            columns = [self.image_column] + [c for c in (self.soft_column, self.mask_column) if c]
            for batch in pq.ParquetFile(f).iter_batches(batch_size=64, row_groups=[row_group],
                                                       columns=columns, use_threads=False):
                column = batch.column(0)
                if pa.types.is_struct(column.type):  # flatten(): a null struct gives null fields
                    column = column.flatten()[column.type.get_field_index("bytes")]
                payloads = column.to_pylist()
                if locations is not None:
                    named_files = locations.slice(row, len(payloads)).to_pylist()
                    payloads = [read_named(self.image_files, location) if payload is None and location else payload
                                for payload, location in zip(payloads, named_files)]
                    row += len(payloads)
                if self.soft_column or self.mask_column:
                    payloads = self._with_extras(payloads, batch)
                yield from payloads

    def _with_extras(self, payloads, batch) -> list:
        n = len(payloads)
        soft = row_weights(batch.column(self.soft_column)) if self.soft_column else [None] * n
        masks = mask_cells(batch.column(self.mask_column)) if self.mask_column else [None] * n
        return [ItemPayload(p, soft=w, mask=m) for p, w, m in zip(payloads, soft, masks)]


def _class_names(pf: pq.ParquetFile, label_column: str, multi: bool = False) -> Optional[List[str]]:
    """The names of the column's `datasets` ClassLabel feature (``multi``: of its list feature's
    items, a Sequence/List of ClassLabel), or None."""
    feature = footer_feature(pf, label_column)
    if multi:
        feature = list_item_feature(feature)
    if feature is None:
        return None
    try:
        if feature.get("_type") == "ClassLabel" and feature.get("names"):
            return [str(n) for n in feature["names"]]
    except (AttributeError, TypeError):
        return None
    return None


def _labels_of(store, files, handles, label_column: str, columns, classes_file: Optional[str]):
    """(label kind, classes, labels, bad, targets) of the listed label columns."""
    field_type = handles[0].schema_arrow.field(label_column).type
    if is_soft_type(field_type):
        width = soft_width(handles[0], label_column, store.display(files[0]))
        return "soft", class_names(classes_file, width), np.zeros(sum(pf.metadata.num_rows for pf in handles),
                                                                   np.int32), {}, None
    if classes_file is not None:
        raise MixbakeError("--classes names the classes of a soft-label column (list<float>); this label column's "
                           "names come from its ClassLabel footer or its values.")
    if is_list_label_type(field_type):
        classes, labels, bad, targets = resolve_list_labels(_class_names(handles[0], label_column, True),
                                                            label_column, columns)
        return "multi", classes, labels, bad, targets
    return ("class", *_resolve_labels(handles[0], label_column, columns), None)


def parquet_catalog(source: str, image_column: Optional[str], label_column: Optional[str],
                    on_error: str = "fail", classes_file: Optional[str] = None,
                    mask_column: Optional[str] = None, objects_column: Optional[str] = None,
                    bbox_format: Optional[str] = None) -> Catalog:
    store, files = _list_files(source)
    skipped: List[Tuple[str, str]] = []
    opened = _readable(store, [(rel, rel) for rel in files], lambda rel: pq.ParquetFile(store.open_input(rel)),
                       "not a readable Parquet file", on_error, skipped)
    _refuse_none_readable(source, store, files, opened, skipped)
    objects_column = find_objects_column(opened[0][1].schema_arrow, objects_column, store.display(opened[0][0]))
    if objects_column is not None:
        return _detection_catalog(source, store, files, opened, skipped, image_column, label_column, objects_column,
                                  bbox_format, mask_column)
    if bbox_format is not None:
        raise MixbakeError("--bbox-format applies to a detection source (an objects column); this one has none.")
    image_column, label_column = _columns(store, opened, image_column, label_column)
    for rel, pf in opened:
        check_mask_column(pf.schema_arrow, mask_column, store.display(rel))
    listed = _readable(store, opened, lambda pf: (pf, _read_labels(pf, label_column)),
                       f"cannot read its column {label_column!r}", on_error, skipped)
    _refuse_none_readable(source, store, files, listed, skipped)
    skipped.sort()  # in file order, whichever step found the file unreadable
    files = [rel for rel, _ in listed]
    handles = [pf for _, (pf, _) in listed]
    columns = [column for _, (_, column) in listed]
    del listed  # (the label columns go as they are turned into int32 labels)
    kind, classes, labels, bad, targets = _labels_of(store, files, handles, label_column, columns, classes_file)
    bounds, locators, refs = _row_groups(files, handles)
    if not len(refs):
        raise MixbakeError(f"Parquet source {redact(source)!r} holds no rows.")
    named = find_named_images(store, files, handles, image_column, locators, bounds)
    file_stamps = [store.stamp(rel) for rel in files]
    keys = [int(stamp_key(*file_stamps[loc[0]])) for loc in locators]
    stamps = np.asarray(keys, dtype=np.uint64)
    locators = [loc + (named.locations[c],) if c in named.locations else loc for c, loc in enumerate(locators)]
    bad = {**named.bad, **bad}  # a bad label is the reason given, when a row has both
    return Catalog(
        kind="parquet", uri=redact(source) if is_uri(source) else os.path.abspath(source),
        classes=tuple(classes), labels=labels, refs=refs,
        chunk_bounds=bounds, chunk_locators=locators,
        reader=ParquetReader(store, tuple(files), image_column, named.store, label_column if kind == "soft" else None,
                             mask_column),
        fingerprint=_fingerprint(store, files, handles, skipped, named.fingerprint()),
        options={"image_column": image_column, "label_column": label_column,
                 **({"mask_column": mask_column} if mask_column else {})}, bad=bad, has_masks=mask_column is not None,
        notes=_skipped_notes(store, skipped), skipped_files=tuple(skipped), chunk_stamps=stamps,
        label_kind=kind, targets=targets,
        state=hashlib.sha256(repr(list(zip(files, file_stamps))).encode("utf-8", "surrogateescape")).hexdigest(),
    )


def _detection_catalog(source, store, files, opened, skipped, image_column, label_column, objects_column,
                       bbox_format, mask_column) -> Catalog:
    """A Parquet file of images and their objects (``parquet_objects``): the categories are the classes."""
    if label_column is not None:
        raise MixbakeError(f"--label-column does not apply to a detection source: its labels are the categories "
                           f"of its {objects_column!r} column.")
    schema, first = opened[0][1].schema_arrow, store.display(opened[0][0])
    image_column = _pick(schema, image_column, _is_image_type, IMAGE_NAMES, "images (struct<bytes, path> or binary)",
                         "--image-column", first)
    for rel, pf in opened:
        s = pf.schema_arrow
        check_mask_column(s, mask_column, store.display(rel))
        for col, ok in ((image_column, _is_image_type), (objects_column, is_objects_type)):
            if col not in s.names or not ok(s.field(col).type):
                raise MixbakeError(f"{store.display(rel)}: column {col!r} is missing or has another type than "
                                   f"in {opened[0][0]}.")
    files = [rel for rel, _ in opened]
    handles = [pf for _, pf in opened]
    classes, labels, bad, targets, objects = detection_labels(store, files, handles, objects_column, bbox_format)
    bounds, locators, refs = _row_groups(files, handles)
    if not len(refs):
        raise MixbakeError(f"Parquet source {redact(source)!r} holds no rows.")
    named = find_named_images(store, files, handles, image_column, locators, bounds)
    file_stamps = [store.stamp(rel) for rel in files]
    stamps = np.asarray([int(stamp_key(*file_stamps[loc[0]])) for loc in locators], dtype=np.uint64)
    locators = [loc + (named.locations[c],) if c in named.locations else loc for c, loc in enumerate(locators)]
    return Catalog(
        kind="parquet", uri=redact(source) if is_uri(source) else os.path.abspath(source),
        classes=tuple(classes), labels=labels, refs=refs, chunk_bounds=bounds, chunk_locators=locators,
        reader=ParquetReader(store, tuple(files), image_column, named.store, None, mask_column),
        fingerprint=_fingerprint(store, files, handles, skipped, named.fingerprint()),
        options={"image_column": image_column, "objects_column": objects_column,
                 **({"bbox_format": bbox_format} if bbox_format else {}),
                 **({"mask_column": mask_column} if mask_column else {})}, has_masks=mask_column is not None,
        bad={**named.bad, **bad}, notes=_skipped_notes(store, skipped), skipped_files=tuple(skipped),
        chunk_stamps=stamps, label_kind="multi", targets=targets, objects=objects,
        state=hashlib.sha256(repr(list(zip(files, file_stamps))).encode("utf-8", "surrogateescape")).hexdigest(),
    )


def _refuse_none_readable(source: str, store: Store, files, readable, skipped) -> None:
    """--on-error skip with every file unreadable would list nothing at all: refuse, naming one."""
    if not readable:
        rel, reason = skipped[0]
        lead = "" if len(files) == 1 else f"None of the {len(files)} Parquet files of {redact(source)!r} is readable: "
        raise MixbakeError(f"{lead}{store.display(rel)}: {reason}.")


def _columns(store: Store, opened, image_column: Optional[str], label_column: Optional[str]) -> Tuple[str, str]:
    """The image and label columns, chosen in the first file, and present alike in every file."""
    first, schema = opened[0][0], opened[0][1].schema_arrow
    where = store.display(first)
    image_column = _pick(schema, image_column, _is_image_type, IMAGE_NAMES,
                         "images (struct<bytes, path> or binary)", "--image-column", where)
    lists = any(is_list_label_type(schema.field(n).type) for n in schema.names)
    what = "labels (integer or string, or a list of either)" if lists else "labels (integer or string)"
    given = label_column is not None  # (a soft label, list<float>, is taken when asked for by name only)
    try:
        label_column = _pick(schema, label_column, lambda t: _is_label_type(t) or (given and is_soft_type(t)),
                             LABEL_NAMES, what + (" or soft labels (list<float>)" if given else ""), "--label-column",
                             where, exclude=(image_column,), fallback=_is_class_type)
    except MixbakeError as exc:
        if given or "no column holds" not in str(exc):
            raise
        raise MixbakeError(f"{exc} A detection source's boxes are read from a column named objects "
                           f"(struct<bbox, category>), or the one --objects-column names.") from None
    family = _label_family(schema.field(label_column).type)
    for rel, pf in opened:
        s = pf.schema_arrow
        for col, ok in ((image_column, _is_image_type),
                        (label_column, lambda t: (_is_label_type(t) or is_soft_type(t)) and _label_family(t) == family)):
            if col not in s.names or not ok(s.field(col).type):
                raise MixbakeError(f"{store.display(rel)}: column {col!r} is missing or has another type than "
                                   f"in {first}.")
    return image_column, label_column


def _row_groups(files, handles):
    """Chunk bounds, locators (file index, row group) and item references (``file.parquet#row``,
    made when asked for: sources.refs), one chunk per non-empty row group."""
    bounds, locators, first_rows = [0], [], []
    for fi, pf in enumerate(handles):
        row_in_file = 0
        for rg in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(rg).num_rows
            if n:
                locators.append((fi, rg))
                first_rows.append(row_in_file)
                bounds.append(bounds[-1] + n)
            row_in_file += n
    bounds = np.asarray(bounds, dtype=np.int64)
    refs = RowRefs(files, np.asarray([fi for fi, _ in locators], np.int64), np.asarray(first_rows, np.int64), bounds)
    return bounds, locators, refs


def _skipped_notes(store: Store, skipped) -> Tuple[str, ...]:
    shown = SKIPPED_NOTES
    notes = [f"{store.display(rel)} left out: {reason}; its rows are not items of the source "
             f"(errors.jsonl names the file)" for rel, reason in skipped[:shown]]
    if len(skipped) > shown:
        notes.append(f"... and {count(len(skipped) - shown, 'more unreadable Parquet file')} left out")
    return tuple(notes)


def _read_labels(pf: pq.ParquetFile, label_column: str):
    """One file's label column: integers as (int32 values, valid), read a row group at a time (the
    parent never holds the column as int64, nor an Arrow copy of it); strings as Arrow; lists as
    ``parquet_lists.ListLabels``."""
    if is_soft_type(pf.schema_arrow.field(label_column).type):
        return None  # (rows x K: the workers read it, with the images)
    if is_list_label_type(pf.schema_arrow.field(label_column).type):
        return read_list_labels(pf, label_column)
    if not pa.types.is_integer(pf.schema_arrow.field(label_column).type):
        return pf.read(columns=[label_column]).column(0)
    values, valid = np.empty(pf.metadata.num_rows, np.int32), np.empty(pf.metadata.num_rows, bool)
    at = 0
    for rg in range(pf.num_row_groups):  # (into place: small arrays per row group fragmented the heap)
        at = _ints(pf.read_row_group(rg, columns=[label_column]).column(0), values, valid, at)
    return values, valid


def _resolve_labels(pf, label_column, raw_labels):
    """Class names (HF ClassLabel metadata > distinct strings > 0..K-1) and int32 labels (-1: bad)."""
    bad = {}
    if isinstance(raw_labels[0], tuple):  # integers (_read_labels)
        names = _class_names(pf, label_column)
        ints = np.concatenate([v for v, _ in raw_labels])
        valid = np.concatenate([ok for _, ok in raw_labels])
        raw_labels.clear()
        if names is None:
            top = int(ints.max(initial=-1, where=valid))
            if top >= MAX_UNNAMED_CLASSES:
                shown = f"{top} or more" if top == 2**31 - 1 else str(top)
                raise MixbakeError(f"Label column {label_column!r} holds a label of {shown}: as class indices that "
                                   f"would be {top + 1} classes (name the classes with a ClassLabel feature, or use "
                                   f"indices 0..K-1).")
            names = [str(i) for i in range(top + 1)]
        out_of_range = valid & ((ints < 0) | (ints >= len(names)))
        for i in np.flatnonzero(out_of_range):
            bad[int(i)] = f"label {ints[i]} is outside the {len(names)} classes"
        labels = ints
        labels[~valid | out_of_range] = -1
    else:  # strings, a chunk at a time (no Python string per row held; pyarrow.compute not loaded)
        chunks = [c for arr in raw_labels for c in arr.chunks]
        raw_labels.clear()
        names = sorted({s for c in chunks for s in set(c.to_pylist())} - {None})
        index = {n: i for i, n in enumerate(names)}
        labels = np.empty(sum(len(c) for c in chunks), np.int32)
        at = 0
        for c in chunks:
            labels[at:at + len(c)] = [index.get(s, -1) if s is not None else -1 for s in c.to_pylist()]
            at += len(c)
        valid = labels >= 0
    for i in np.flatnonzero(~np.asarray(valid)):
        bad.setdefault(int(i), "label is null")
    return names, labels.astype(np.int32, copy=False), bad


def _ints(column: pa.ChunkedArray, values: Optional[np.ndarray] = None, valid: Optional[np.ndarray] = None,
          at: int = 0):
    """An integer column as int32 values (-1 where null, values past int32 clipped to its range) and
    its validity, a chunk at a time, straight from its buffers: no Python object per row, no int64
    copy of the whole column, no compute kernel (their allocations stayed in the parent's heap).
    Written into ``values``/``valid`` from ``at`` (returns where it stopped), or new arrays returned."""
    given = values is not None
    if not given:
        values, valid = np.empty(len(column), np.int32), np.empty(len(column), bool)
    for chunk in column.chunks:
        n, start = len(chunk), chunk.offset
        bitmap, data = chunk.buffers()[:2]
        kind = np.dtype(f"{'i' if pa.types.is_signed_integer(chunk.type) else 'u'}{chunk.type.bit_width // 8}")
        raw = np.frombuffer(data, kind, count=start + n)[start:] if n else np.zeros(0, kind)
        ok = np.unpackbits(np.frombuffer(bitmap, np.uint8), count=start + n, bitorder="little")[start:].view(bool) \
            if bitmap is not None and chunk.null_count else np.ones(n, bool)
        top = np.array(min(2**31 - 1, np.iinfo(kind).max), kind)  # (in the column's own type: no overflow)
        wide = np.minimum(raw, top).astype(np.int64).clip(-2**31)
        values[at:at + n] = np.where(ok, wide, -1)
        valid[at:at + n] = ok
        at += n
    return at if given else (values, valid)


def _fingerprint(store: Store, files, handles, skipped=(), named_images: Optional[str] = None) -> str:
    h = hashlib.sha256()
    for rel, pf in zip(files, handles):
        h.update(f"{rel}\0{store.size(rel)}\0{pf.metadata.num_rows}\n".encode("utf-8", "surrogateescape"))
    # the files named by path-only cells (their own digest, see parquet_paths); none for a source
    # whose cells hold their bytes, whose fingerprint is then what it always was
    if named_images is not None:
        h.update(f"named images\0{named_images}\n".encode())
    # a file left out still belongs to the source's identity (a build that skipped it is not the build
    # of the repaired file); appended only when there is one, so every other source keeps its fingerprint
    for rel, _ in skipped:
        h.update(f"{rel}\0{_size(store, rel)}\0unreadable\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _size(store: Store, rel: str) -> int:
    try:
        return store.size(rel)
    except OSError:  # unreadable may mean unstattable (a broken link): -1, as folder sources do
        return -1
