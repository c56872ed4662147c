"""Labels that are weights over the classes: multi-label items (a set of classes: multi-hot, each
weight 1) and soft-label inputs (K weights summing to 1: teacher outputs, an earlier bake's soft
labels). An op mixes two such targets as it mixes pixels:

- ``blend`` / ``paste``: ``lam * y_a + (1 - lam) * y_b`` (cutmix's lam is the pasted area kept
  from a); a multi-hot mix is *not* normalised: each class weight stays in [0, 1], for a sigmoid /
  BCE loss, and a class both sources hold keeps weight 1;
- ``keep`` / ``erase``: ``y_a``.

Label smoothing, if asked, is then applied once: ``y*(1-eps) + eps/K`` (the dense column; the
sparse one stores the weights before it, as for classes). Rows are sparse throughout (the
non-zeros of each row), so nothing is ever ``rows x K`` but the dense column when it is stored.

A pool's targets are a table of per-position weights (``bind``); the ops pass pool positions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from . import Target


@dataclass
class WeightRows:
    """Per row its classes (``index``, ascending) and their weights (float64), as CSR."""
    offsets: np.ndarray
    index: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def empty(cls, rows: int = 0) -> "WeightRows":
        return cls(np.zeros(rows + 1, np.int64), np.zeros(0, np.int32), np.zeros(0))

    def take(self, rows: np.ndarray) -> "WeightRows":
        """The rows at ``rows`` (-1: an empty row), in that order."""
        rows = np.asarray(rows, np.int64)
        lo = np.where(rows >= 0, self.offsets[np.maximum(rows, 0)], 0)
        counts = np.where(rows >= 0, self.offsets[np.maximum(rows, 0) + 1] - lo, 0)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        at = np.repeat(lo - offsets[:-1], counts) + np.arange(int(offsets[-1]))
        return WeightRows(offsets, self.index[at], self.value[at])

    def row_ids(self) -> np.ndarray:
        return np.repeat(np.arange(len(self)), np.diff(self.offsets))

    def argmax(self) -> np.ndarray:
        """Each row's class of largest weight (ties: the lower class; -1 for an empty row)."""
        out = np.full(len(self), -1, np.int64)
        if len(self.index):
            order = np.lexsort((self.index, -self.value, self.row_ids()))
            first = np.concatenate([[True], np.diff(self.row_ids()[order]) != 0])
            out[self.row_ids()[order][first]] = self.index[order][first]
        return out


def merge(rows: np.ndarray, index: np.ndarray, value: np.ndarray, total: int, multi_hot: bool) -> WeightRows:
    """Entries (row, class, weight) -> CSR rows, a class's weights in a row summed (multi-hot: capped
    at 1), zero weights dropped."""
    keep = value > 0
    rows, index, value = rows[keep], index[keep], value[keep]
    order = np.lexsort((index, rows))
    rows, index, value = rows[order], index[order], value[order]
    start = np.concatenate([[True], (np.diff(rows) != 0) | (np.diff(index) != 0)]) if len(rows) else np.zeros(0, bool)
    heads = np.flatnonzero(start)
    summed = np.add.reduceat(value, heads) if len(heads) else np.zeros(0)
    if multi_hot:
        summed = np.minimum(summed, 1.0)
    counts = np.bincount(rows[heads], minlength=total)
    return WeightRows(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), index[heads].astype(np.int32), summed)


class Weights(Target):
    """One kind of weight label (``multi`` or ``soft``), bound to a pool's table by ``bind``."""

    def __init__(self, name: str, multi_hot: bool, table: Optional[WeightRows] = None):
        self.name, self.multi_hot, self.table = name, multi_hot, table

    def bind(self, table: WeightRows) -> "Weights":
        """This kind for one pool: ``table`` holds each pool position's weights."""
        return Weights(self.name, self.multi_hot, table)

    def sources(self, task, positions: np.ndarray) -> np.ndarray:
        """What the ops pass for each row's source: its pool position (-1: none)."""
        return np.asarray(positions, np.int64)

    def keep(self, a):
        return self.table.take(a)

    def erase(self, a, holes):
        return self.keep(a)

    def blend(self, a, b, lam):
        ya, yb = self.table.take(a), self.table.take(b)
        lam = np.asarray(lam, np.float64)
        rows = np.concatenate([ya.row_ids(), yb.row_ids()])
        value = np.concatenate([ya.value * lam[ya.row_ids()], yb.value * (1.0 - lam)[yb.row_ids()]])
        return merge(rows, np.concatenate([ya.index, yb.index]), value, len(a), self.multi_hot)

    def paste(self, a, b, lam, boxes):
        return self.blend(a, b, lam)

    def mosaic(self, sources, weights):
        weights = np.asarray(weights, np.float64)
        ys = [self.table.take(np.asarray(s, np.int64)) for s in sources]
        rows = np.concatenate([y.row_ids() for y in ys])
        value = np.concatenate([y.value * weights[y.row_ids(), k] for k, y in enumerate(ys)])
        return merge(rows, np.concatenate([y.index for y in ys]), value, len(weights), self.multi_hot)

    def columns(self, mixes: Sequence[WeightRows], groups: Sequence[np.ndarray], total: int, num_classes: int,
                smoothing: float, form: str = "dense") -> dict:
        """The rows' label columns from the ops' mixes of their rows (``groups``: which rows each)."""
        rows = np.concatenate([np.asarray(g, np.int64)[m.row_ids()] for m, g in zip(mixes, groups)] or [np.zeros(0, np.int64)])
        index = np.concatenate([m.index for m in mixes] or [np.zeros(0, np.int32)])
        value = np.concatenate([m.value for m in mixes] or [np.zeros(0)])
        mixed = merge(rows, index, value, total, self.multi_hot)
        out = {}
        if form in ("dense", "both"):
            dense = np.zeros((total, num_classes))
            dense[mixed.row_ids(), mixed.index] = mixed.value
            if smoothing:
                dense = dense * (1.0 - smoothing) + smoothing / num_classes
            out["soft_label"] = dense.astype(np.float32)
        if form in ("sparse", "both"):
            from ..columns import SparseRows
            out["soft_index"] = SparseRows(mixed.index, mixed.value.astype(np.float32), mixed.offsets)
        out["label"] = np.full(total, -1, np.int64) if self.multi_hot else mixed.argmax()
        return out

    def provenance(self, a: np.ndarray, b: np.ndarray) -> dict:
        """The sources' own labels per row: their sets (multi) or their argmax classes (soft)."""
        if self.multi_hot:
            from ..sources import ItemSets
            ya, yb = self.table.take(a), self.table.take(b)
            return {"labels_a": (np.ones(len(a), bool), ItemSets(ya.offsets, ya.index)),
                    "labels_b": (np.asarray(b) >= 0, ItemSets(yb.offsets, yb.index))}
        return {"label_a": self.table.take(a).argmax(), "label_b": np.where(np.asarray(b) >= 0, self.table.take(b).argmax(), -1)}

    def top(self, row: dict, top: int = 2, floor: float = 0.005) -> List[tuple]:
        from .classes import KIND as CLASSES
        return CLASSES.top(row, top, floor)


MULTI = Weights("multi", multi_hot=True)
SOFT = Weights("soft", multi_hot=False)
