"""Arrow arrays built from buffers (never through ``pa.array``).

``pa.array()`` and ``pq.write_table()`` first ask "is this a pandas object?", and answering that
imports pandas whenever it is installed: ~0.45 s in every process that does it, longer than a whole
shard of small images takes to bake. Building arrays from their buffers skips the question (and
the per-row Python conversion). ``tests/test_speed_guards.py`` checks that a bake never imports
pandas.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pyarrow as pa

_NUMPY = {pa.int8(): np.int8, pa.int32(): np.int32, pa.int64(): np.int64, pa.float32(): np.float32,
          pa.float64(): np.float64}
_OFFSET_LIMIT = 2**31 - 1


def _validity(valid: Optional[np.ndarray]):
    """(bitmap buffer or None, null count) for a boolean 'is valid' array."""
    if valid is None or valid.all():
        return None, 0
    return pa.py_buffer(np.packbits(valid, bitorder="little")), int(len(valid) - valid.sum())


def numeric(values, type: pa.DataType = pa.int64(), valid: Optional[np.ndarray] = None) -> pa.Array:
    """A numeric array (int32/int64/float32/float64) from anything numpy can convert."""
    data = np.ascontiguousarray(values, dtype=_NUMPY[type])
    bitmap, nulls = _validity(None if valid is None else np.asarray(valid, dtype=bool))
    return pa.Array.from_buffers(type, len(data), [bitmap, pa.py_buffer(data)], null_count=nulls)


def nullable(values, type: pa.DataType = pa.int64()) -> pa.Array:
    """Integers where a negative value means 'none' -> a nullable column."""
    values = np.asarray(values, dtype=_NUMPY[type])
    return numeric(values, type, valid=values >= 0)


def binary(items: Sequence[Optional[bytes]], type: pa.DataType = pa.binary()) -> pa.Array:
    """binary (or string, for UTF-8 bytes) array; None items are nulls."""
    n = len(items)
    lengths = np.fromiter((0 if b is None else len(b) for b in items), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] > _OFFSET_LIMIT:
        raise ValueError(f"{offsets[-1]} bytes do not fit one Arrow {type} array (limit 2 GiB)")
    valid = np.fromiter((b is not None for b in items), dtype=bool, count=n)
    bitmap, nulls = _validity(valid)
    data = b"".join(b for b in items if b is not None)
    return pa.Array.from_buffers(type, n, [bitmap, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)],
                                 null_count=nulls)


def strings(items: Sequence[Optional[str]]) -> pa.Array:
    """string array from Python str (None -> null)."""
    return binary([None if s is None else s.encode("utf-8") for s in items], pa.string())


def lists(values: pa.Array, offsets: np.ndarray) -> pa.Array:
    """list<values.type> with row i holding values[offsets[i]:offsets[i+1]]."""
    return pa.ListArray.from_arrays(numeric(offsets, pa.int32()), values)
