"""One class per item: the soft label of a mixed row is ``lam*onehot(a) + (1-lam)*onehot(b)``, then
label smoothing ``y*(1-eps) + eps/K`` applied exactly once; ``label`` is its argmax."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence

import numpy as np

from . import Target

TOLERANCE = 1e-5


def soft_label(label_a: int, label_b, lam: float, num_classes: int, smoothing: float = 0.0) -> np.ndarray:
    """``lam*onehot(a) + (1-lam)*onehot(b)``, then label smoothing applied exactly once (float32).
    ``label_b`` None or -1: no partner. ValueError for a label outside ``0..num_classes-1``, lam
    outside [0, 1] or smoothing outside [0, 1)."""
    if not 0 <= label_a < num_classes or (label_b is not None and not -1 <= label_b < num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1} (label_b: or None/-1), got {label_a}, {label_b}")
    if not 0.0 <= lam <= 1.0 or not 0.0 <= smoothing < 1.0:
        raise ValueError(f"lam must be in [0, 1] and smoothing in [0, 1), got {lam}, {smoothing}")
    b = -1 if label_b is None else label_b
    return soft_labels([label_a], [b], [lam], num_classes, smoothing)[0]


def soft_labels(label_a, label_b, lam, num_classes: int, smoothing: float = 0.0) -> np.ndarray:
    """Row-wise :func:`soft_label` (label_b < 0: no partner): float64 arithmetic, then float32."""
    label_a = np.asarray(label_a, dtype=np.int64)
    label_b = np.asarray(label_b, dtype=np.int64)
    lam = np.asarray(lam, dtype=np.float64)
    rows = np.arange(len(label_a))
    y = np.zeros((len(label_a), num_classes), dtype=np.float64)
    y[rows, label_a] += lam
    y[rows, np.where(label_b >= 0, label_b, label_a)] += 1.0 - lam
    if smoothing:
        y = y * (1.0 - smoothing) + smoothing / num_classes
    return y.astype(np.float32)


def sparse_soft_labels(label_a, label_b, lam):
    """Row-wise non-zeros of ``lam*onehot(a) + (1-lam)*onehot(b)`` before smoothing, classes ascending
    (``columns.SparseRows``): one entry when a and b are one class (or b is none), else two, less
    any of weight 0 (a cutmix box that covers the image)."""
    from ..columns import SparseRows
    a, b, lam = np.asarray(label_a, np.int64), np.asarray(label_b, np.int64), np.asarray(lam, np.float64)
    one = (b < 0) | (b == a)
    low, high = np.where(one | (a < b), a, b), np.where(one | (a < b), b, a)
    w_low = np.where(one, 1.0, np.where(a < b, lam, 1.0 - lam))
    w_high = np.where(one, 0.0, np.where(a < b, 1.0 - lam, lam))
    index = np.stack([low, high], axis=1)
    value = np.stack([w_low, w_high], axis=1)
    keep = value > 0
    offsets = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
    return SparseRows(index[keep].astype(np.int32), value[keep].astype(np.float32), offsets.astype(np.int64))


def sparse_argmax(label_a, label_b, lam, num_classes: int, smoothing: float = 0.0) -> np.ndarray:
    """The argmax of each row's dense soft label, exactly as ``np.argmax(soft_labels(...))`` gives
    it (the same float64 arithmetic, rounded to float32; a tie goes to the lower class), from its two
    candidates alone."""
    a, b, lam = np.asarray(label_a, np.int64), np.asarray(label_b, np.int64), np.asarray(lam, np.float64)
    one = (b < 0) | (b == a)
    w_a = np.where(one, lam + (1.0 - lam), lam)
    w_b = np.where(one, 0.0, 1.0 - lam)
    if smoothing:
        w_a, w_b = w_a * (1.0 - smoothing) + smoothing / num_classes, w_b * (1.0 - smoothing) + smoothing / num_classes
    v_a, v_b = w_a.astype(np.float32), w_b.astype(np.float32)
    return np.where(one | (v_a > v_b) | ((v_a == v_b) & (a < b)), a, b)


@dataclass
class ClassMix:
    """Mixed class targets of some rows: weight ``lam`` on class ``a``, the rest on ``b`` (-1: on a);
    a mosaic's rows instead weigh four classes (``four``: (classes (n, 4), weights (n, 4)))."""
    a: np.ndarray
    b: np.ndarray
    lam: np.ndarray
    four: Optional[tuple] = None


def _mosaic_weights(rows: np.ndarray, classes: np.ndarray, weights: np.ndarray, total: int):
    """The (row, class) weights of mosaic rows, a class's cells summed (``weights.WeightRows``)."""
    from .weights import merge
    return merge(np.repeat(rows, 4), classes.ravel().astype(np.int32), weights.ravel(), total, multi_hot=False)


def _smoothed_argmax(weights, num_classes: int, smoothing: float) -> np.ndarray:
    """Per row the argmax of its dense float32 soft label (smoothed), a tie to the lower class."""
    value = (weights.value * (1 - smoothing) + smoothing / num_classes).astype(np.float32) if smoothing else \
        weights.value.astype(np.float32)
    rows = weights.row_ids()
    order = np.lexsort((weights.index, -value, rows))
    first = np.concatenate([[True], np.diff(rows[order]) != 0]) if len(order) else np.zeros(0, bool)
    out = np.zeros(len(weights), np.int64)
    out[rows[order][first]] = weights.index[order][first]
    return out


def _mosaic_columns(out: dict, fours, total: int, num_classes: int, smoothing: float) -> None:
    """Overwrite the mosaic rows of ``out``'s soft label (dense, sparse) and label."""
    from ..columns import SparseRows
    rows = np.concatenate([np.asarray(w, np.int64) for w, _ in fours])
    classes = np.concatenate([f[0] for _, f in fours])
    weights = np.concatenate([f[1] for _, f in fours])
    mixed = _mosaic_weights(np.arange(len(rows)), classes, weights, len(rows))
    out["label"] = np.asarray(out["label"]).copy()
    out["label"][rows] = _smoothed_argmax(mixed, num_classes, smoothing)
    if "soft_label" in out:
        dense = np.zeros((len(rows), num_classes))
        dense[mixed.row_ids(), mixed.index] = mixed.value
        if smoothing:
            dense = dense * (1.0 - smoothing) + smoothing / num_classes
        out["soft_label"][rows] = dense.astype(np.float32)
    if "soft_index" in out:
        old = out["soft_index"]
        old_rows = np.repeat(np.arange(total), np.diff(old.offsets))
        keep = ~np.isin(old_rows, rows)
        all_rows = np.concatenate([old_rows[keep], rows[mixed.row_ids()]])
        index = np.concatenate([old.index[keep].astype(np.int64), mixed.index.astype(np.int64)])
        value = np.concatenate([old.value[keep], mixed.value.astype(np.float32)])
        order = np.lexsort((index, all_rows))
        offsets = np.concatenate([[0], np.cumsum(np.bincount(all_rows, minlength=total))]).astype(np.int64)
        out["soft_index"] = SparseRows(index[order].astype(np.int32), value[order].astype(np.float32), offsets)


class ClassLabels(Target):
    name = "class"

    def sources(self, task, positions):
        positions = np.asarray(positions, np.int64)
        return np.where(positions >= 0, task.labels[np.maximum(positions, 0)], -1)

    def provenance(self, a, b) -> dict:
        return {"label_a": a, "label_b": b}

    def keep(self, a):
        return ClassMix(a, np.full(len(a), -1, np.int64), np.ones(len(a)))

    def blend(self, a, b, lam):
        return ClassMix(a, b, lam)

    def paste(self, a, b, lam, boxes):
        return ClassMix(a, b, lam)  # lam is already the pasted area's complement

    def erase(self, a, holes):
        return self.keep(a)

    def mosaic(self, sources, weights):
        classes = np.stack([np.asarray(c, np.int64) for c in sources], axis=1)
        weights = np.asarray(weights, np.float64)
        return ClassMix(classes[:, 0], classes[:, 1], weights[:, 0], (classes, weights))

    def columns(self, mixes: Sequence[ClassMix], rows: Sequence[np.ndarray], total: int, num_classes: int,
                smoothing: float, form: str = "dense") -> dict:
        """``label`` and the soft label of every row (dense ``soft_label``, sparse ``soft_index``
        holding ``columns.SparseRows``, or both), from the ops' mixes of their rows. The sparse form
        is computed without a row of K values: a row has at most two non-zeros."""
        a, b, lam = np.zeros(total, np.int64), np.full(total, -1, np.int64), np.ones(total)
        for mix, where in zip(mixes, rows):
            a[where], b[where], lam[where] = mix.a, mix.b, mix.lam
        out = {}
        if form in ("dense", "both"):
            soft = soft_labels(a, b, lam, num_classes, smoothing)
            out["label"], out["soft_label"] = np.argmax(soft, axis=1), soft
        if form in ("sparse", "both"):
            out["label"] = sparse_argmax(a, b, lam, num_classes, smoothing)
            out["soft_index"] = sparse_soft_labels(a, b, lam)
        fours = [(where, mix.four) for mix, where in zip(mixes, rows) if mix.four is not None and len(where)]
        if fours:  # mosaic rows: four classes weighted by their cells
            _mosaic_columns(out, fours, total, num_classes, smoothing)
        return out

    def malformed(self, row: dict, num_classes: int) -> Optional[str]:
        """Why a stored row cannot be checked further, or None."""
        if "soft_label" in row and len(row["soft_label"]) != num_classes:
            return f"soft_label has {len(row['soft_label'])} entries for {num_classes} classes"
        if "soft_index" in row:
            index = row["soft_index"]
            if len(index) != len(row["soft_value"]) or not all(0 <= c < num_classes for c in index) \
                    or any(x >= y for x, y in zip(index, index[1:])):
                return f"soft_index {index} is not ascending classes in 0..{num_classes - 1} with one value each"
        return None

    def dense(self, row: dict, num_classes: int, smoothing: float) -> np.ndarray:
        """A stored row's dense soft label (from its sparse form: ``(1-eps)*sparse + eps/K``)."""
        if "soft_label" in row:
            return np.asarray(row["soft_label"], dtype=np.float64)
        soft = np.zeros(num_classes)
        soft[row["soft_index"]] = row["soft_value"]
        return soft * (1 - smoothing) + smoothing / num_classes if smoothing else soft

    def row_problems(self, row: dict, num_classes: int, smoothing: float) -> Iterator[str]:
        """What verify holds every well-formed stored row to."""
        if "soft_label" in row and "soft_index" in row:
            sparse = self.dense({k: v for k, v in row.items() if k != "soft_label"}, num_classes, smoothing)
            if np.abs(sparse - np.asarray(row["soft_label"])).max() > TOLERANCE:
                yield "soft_index/soft_value differ from soft_label"
        soft = self.dense(row, num_classes, smoothing)
        lam = row["lam"]
        if abs(soft.sum() - 1.0) > TOLERANCE:
            yield f"soft_label sums to {soft.sum():.6f}"
        if row["label"] != int(np.argmax(soft)):
            yield f"label {row['label']} is not the argmax of soft_label ({int(np.argmax(soft))})"
        expected = np.zeros(num_classes)
        expected[row["label_a"]] += lam
        expected[row["label_b"] if row["label_b"] is not None else row["label_a"]] += 1.0 - lam
        expected = expected * (1 - smoothing) + smoothing / num_classes
        if np.abs(expected - soft).max() > TOLERANCE:
            yield "soft_label differs from lam*onehot(label_a) + (1-lam)*onehot(label_b)"

    def top(self, row: dict, top: int = 2, floor: float = 0.005) -> List[tuple]:
        """(class index, mass) of the largest soft-label entries, largest first (ties: lower index);
        from the sparse form when the row has one (no row of K values)."""
        if "soft_index" in row:
            index, value = np.asarray(row["soft_index"]), np.asarray(row["soft_value"], dtype=np.float64)
        else:
            value = np.asarray(row["soft_label"], dtype=np.float64)
            index = np.arange(len(value))
        order = np.lexsort((index, -value))[:top]
        return [(int(index[k]), float(value[k])) for j, k in enumerate(order) if j == 0 or value[k] >= floor]


KIND = ClassLabels()
