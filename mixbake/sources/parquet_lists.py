"""Parquet multi-label columns: ``list<int>`` or ``list<string>`` (also ``large_list``), one set of
classes per row.

Read a row group at a time from each list array's own buffers (its offsets and validity) and its
values (integers through ``parquet._ints``, from their buffers too): no compute kernel, no Python
object per row. String entries are kept as Arrow until the class names are known, then mapped a
chunk at a time (a transient Python list per chunk), as single string labels are.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import ItemSets
from .multilabel import finish, name_codes, offsets_of, unnamed_classes

LIST_TYPES = ("Sequence", "List", "LargeList")  # how `datasets` spells a list feature (old, new, large)


def is_list_label_type(t: pa.DataType) -> bool:
    if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
        return False
    v = t.value_type
    return pa.types.is_integer(v) or pa.types.is_string(v) or pa.types.is_large_string(v)


def list_item_feature(feature):
    """The item feature of a `datasets` list feature: ``{"_type": "Sequence" | "List" | "LargeList",
    "feature": ...}`` (datasets < 4 wrote Sequence, 4 writes List), or the one-element JSON list
    of a feature given as ``[ClassLabel(...)]``; None for anything else."""
    if isinstance(feature, list) and len(feature) == 1:
        return feature[0]
    if isinstance(feature, dict) and feature.get("_type") in LIST_TYPES:
        return feature.get("feature")
    return None


@dataclass
class ListLabels:
    """One file's list column: per row its entry count and whether its list is null, per entry
    whether it is null, and the entries (int32 for integers; Arrow arrays for strings)."""
    counts: np.ndarray
    item_valid: np.ndarray
    valid: np.ndarray
    values: Optional[np.ndarray] = None
    strings: Optional[List[pa.Array]] = None


def read_list_labels(pf: pq.ParquetFile, column: str) -> ListLabels:
    """One file's list label column, a row group at a time."""
    from .parquet import _ints
    strings = not pa.types.is_integer(pf.schema_arrow.field(column).type.value_type)
    counts, item_valid, valid, values, entries = [], [], [], [], []
    for rg in range(pf.num_row_groups):
        for chunk in pf.read_row_group(rg, columns=[column]).column(0).chunks:
            n_entries, ok, child = _list_parts(chunk)
            counts.append(n_entries)
            item_valid.append(ok)
            if strings:
                entries.append(child)
                valid.append(_validity(child))
            else:
                ints, entry_ok = _ints(pa.chunked_array([child], child.type))
                values.append(ints)
                valid.append(entry_ok)
    join = (lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype))
    return ListLabels(join(counts, np.int64), join(item_valid, bool), join(valid, bool),
                      None if strings else join(values, np.int32), entries if strings else None)


def _list_parts(chunk) -> Tuple[np.ndarray, np.ndarray, pa.Array]:
    """(entries per row, row is not null, the rows' entries as one array) of a list array."""
    n, start = len(chunk), chunk.offset
    width = np.int64 if pa.types.is_large_list(chunk.type) else np.int32
    if n:
        offsets = np.frombuffer(chunk.buffers()[1], width, count=start + n + 1)[start:].astype(np.int64)
    else:
        offsets = np.zeros(1, np.int64)
    child = chunk.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    return np.diff(offsets), _validity(chunk), child


def _validity(array: pa.Array) -> np.ndarray:
    """Per value: not null, from the array's validity bitmap."""
    n, start = len(array), array.offset
    bitmap = array.buffers()[0]
    if bitmap is None or not array.null_count:
        return np.ones(n, bool)
    return np.unpackbits(np.frombuffer(bitmap, np.uint8), count=start + n, bitorder="little")[start:].view(bool)


def resolve_list_labels(names: Optional[List[str]], column: str, raw: List[ListLabels]
                        ) -> Tuple[List[str], np.ndarray, Dict[int, str], ItemSets]:
    """(class names, labels, bad, targets) of the list label column of every file, in file order.
    Names: the ClassLabel of the column's list feature, else 0..max (integers) or the sorted
    distinct names (strings)."""
    counts = np.concatenate([r.counts for r in raw])
    item_valid = np.concatenate([r.item_valid for r in raw])
    valid = np.concatenate([r.valid for r in raw])
    bad: Dict[int, str] = {}
    if raw[0].values is not None:
        values = np.concatenate([r.values for r in raw])
        raw.clear()
        if names is None:
            names = list(unnamed_classes(values, valid & np.repeat(item_valid, counts),
                                         f"Label column {column!r}"))
    else:
        chunks = [c for r in raw for c in r.strings]
        raw.clear()
        if names is None:
            names = sorted({s for c in chunks for s in set(c.to_pylist())} - {None})
        values = _string_codes(chunks, names, offsets_of(counts), bad)
    targets, labels, bad = finish(counts, values, valid, item_valid, len(names), bad)
    return list(names), labels, bad, targets


def _string_codes(chunks: List[pa.Array], names: List[str], offsets: np.ndarray, bad: Dict[int, str]) -> np.ndarray:
    """The entries' class indices, a chunk at a time; an unknown name (possible when the names come
    from the footer) makes its item bad."""
    index = {name: i for i, name in enumerate(names)}
    codes = np.empty(int(offsets[-1]), np.int64)
    at = 0

    def item_of(pos: int) -> int:
        return int(np.searchsorted(offsets, pos, side="right") - 1)
    chunks.reverse()
    while chunks:
        chunk = chunks.pop()  # (each chunk's Arrow and Python strings go once mapped)
        codes[at:at + len(chunk)] = name_codes(chunk.to_pylist(), index, at, item_of, bad)
        at += len(chunk)
    return codes


def footer_feature(pf: pq.ParquetFile, column: str):
    """The `datasets` feature of ``column`` recorded in the file's ``huggingface`` footer, or None."""
    raw = (pf.schema_arrow.metadata or {}).get(b"huggingface")
    if not raw:
        return None
    try:
        return json.loads(raw)["info"]["features"][column]
    except (ValueError, KeyError, TypeError):
        return None
