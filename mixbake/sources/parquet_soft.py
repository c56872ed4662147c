"""Soft-label inputs in Parquet: a ``list<float>`` label column of K weights per row (teacher
outputs, an earlier bake's ``soft_label``), chosen with ``--label-column``.

The parent never reads the weights (that would be rows x K): it learns K from the footer's feature
(``Sequence(Value("float32"), length=K)``) or the first row, and the class names from
``--classes FILE`` (one name a line) else ``0..K-1``. Workers read each row's weights with its
image and check them (K finite non-negative values summing to 1 within 1e-3), so a bad row is a
bad item naming why.
"""
from __future__ import annotations

import json
from typing import List, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MixbakeError
from ..store import Store


def is_soft_type(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) \
        and pa.types.is_floating(t.value_type)


def soft_width(pf: pq.ParquetFile, column: str, where: str) -> int:
    """K: the footer feature's length, a fixed-size list's, else the first non-null row's."""
    field_type = pf.schema_arrow.field(column).type
    if pa.types.is_fixed_size_list(field_type):
        return field_type.list_size
    length = _footer_length(pf, column)
    if length:
        return length
    for rg in range(pf.num_row_groups):
        values = pf.read_row_group(rg, columns=[column]).column(0).drop_null()
        if len(values):
            return len(values[0])
    raise MixbakeError(f"{where}: the soft-label column {column!r} holds no row to tell how many classes it has.")


def _footer_length(pf: pq.ParquetFile, column: str) -> Optional[int]:
    raw = (pf.schema_arrow.metadata or {}).get(b"huggingface")
    try:
        feature = json.loads(raw)["info"]["features"][column]
        length = feature.get("length", -1) if isinstance(feature, dict) else -1
    except (TypeError, ValueError, KeyError, AttributeError):
        return None
    return length if isinstance(length, int) and length > 0 else None


def class_names(classes_file: Optional[str], width: int) -> List[str]:
    """The K class names: the file's lines (exactly K, distinct), else 0..K-1."""
    if classes_file is None:
        return [str(i) for i in range(width)]
    parent, _, name = classes_file.rstrip("/").rpartition("/")
    try:
        text = Store.open(parent or ".").read_bytes(name).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MixbakeError(f"--classes {classes_file}: cannot read it ({getattr(exc, 'strerror', None) or exc}).") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != width or len(set(names)) != len(names):
        raise MixbakeError(f"--classes {classes_file}: {len(names)} names ({len(set(names))} distinct) for a "
                           f"soft label of {width} classes: give one distinct name per class, a line each.")
    return names


def row_weights(column: pa.Array) -> list:
    """Per row of a batch its weights (a float32 view; None for a null row)."""
    if pa.types.is_fixed_size_list(column.type):
        column = column.cast(pa.list_(column.type.value_type))
    offsets = np.frombuffer(column.buffers()[1], np.int64 if pa.types.is_large_list(column.type) else np.int32,
                            count=len(column) + 1 + column.offset)[column.offset:]
    values = column.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    return [values[offsets[i]:offsets[i + 1]] if valid[i] else None for i in range(len(column))]
