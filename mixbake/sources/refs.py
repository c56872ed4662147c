"""Item references held as columns, not as a Python string per item.

A catalog of 20 million items held ~140 bytes of Python objects per item in the parent (a
``"file#row"`` string each, labels as Python ints). These keep what a reference needs: the
relative paths of a folder as one Arrow binary column (bytes, so a name that is not UTF-8 survives:
it is decoded with ``surrogateescape``, as ``os`` does), and the rows of a Parquet source as
nothing at all (a row's reference is made from its row group when asked for).
"""
from __future__ import annotations

import os
from typing import Iterator, List, Sequence, Tuple

import numpy as np


class Refs:
    """A sequence of item references: ``refs[i]``, ``len(refs)``, ``refs.take(items)``."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, i: int) -> str:
        raise NotImplementedError

    def take(self, items) -> List[str]:
        return [self[int(i)] for i in items]

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other) -> bool:
        return list(self) == list(other)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class PathRefs(Refs):
    """Relative paths as one byte string and its offsets: the path's bytes plus 4 for its offset,
    against ~70 for a Python str. (Plain numpy and bytes: no Arrow compute, which a bake never
    loads.)"""

    def __init__(self, data: bytes, offsets: np.ndarray):
        self.data, self.offsets = data, offsets

    @classmethod
    def join(cls, parts: Sequence[Tuple[bytes, np.ndarray]]) -> "PathRefs":
        """Joined from (data, lengths) pieces, e.g. one per class folder."""
        lengths = np.concatenate([np.asarray(lens, np.int64) for _, lens in parts]) if parts else np.zeros(0, np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        # 4 bytes an offset while the paths fit 2 GiB (8 beyond)
        return cls(b"".join(data for data, _ in parts), offsets.astype(np.int32 if offsets[-1] < 2**31 else np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return _decode(self.data[self.offsets[i]:self.offsets[i + 1]])

    def take(self, items) -> List[str]:
        data, offsets = self.data, self.offsets
        return [_decode(data[offsets[i]:offsets[i + 1]]) for i in np.asarray(items, np.int64).tolist()]

    def parts(self, size: int = 65536) -> Iterator[List[str]]:
        """The paths, ``size`` at a time (for hashing a listing without a Python string per item)."""
        for start in range(0, len(self), size):
            yield self.take(range(start, min(start + size, len(self))))


def encode_paths(paths: Sequence[str]) -> Tuple[bytes, np.ndarray]:
    """(data, lengths) of some paths, as ``PathRefs.join`` takes them."""
    raw = [os.fsencode(p) for p in paths]
    return b"".join(raw), np.fromiter(map(len, raw), dtype=np.int32, count=len(raw))


class RowRefs(Refs):
    """``file.parquet#row`` of a Parquet source, made when asked for from its row groups."""

    def __init__(self, files: Sequence[str], chunk_file: np.ndarray, chunk_row: np.ndarray, bounds: np.ndarray):
        self.files = tuple(files)
        self.chunk_file = chunk_file    # per chunk (row group): the index of its file
        self.chunk_row = chunk_row      # per chunk: the row of its first item within its file
        self.bounds = bounds            # chunk c holds items [bounds[c], bounds[c+1])

    def __len__(self) -> int:
        return int(self.bounds[-1])

    def __getitem__(self, i: int) -> str:
        c = int(np.searchsorted(self.bounds, i, side="right") - 1)
        return f"{self.files[self.chunk_file[c]]}#{int(self.chunk_row[c] + i - self.bounds[c])}"

    def take(self, items) -> List[str]:
        items = np.asarray(items, np.int64)
        chunks = np.searchsorted(self.bounds, items, side="right") - 1
        rows = self.chunk_row[chunks] + items - self.bounds[chunks]
        return [f"{self.files[f]}#{r}" for f, r in zip(self.chunk_file[chunks].tolist(), rows.tolist())]
