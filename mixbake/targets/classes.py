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


@dataclass
class ClassMix:
    """Mixed class targets of some rows: weight ``lam`` on class ``a``, the rest on ``b`` (-1: on a)."""
    a: np.ndarray
    b: np.ndarray
    lam: np.ndarray


class ClassLabels(Target):
    name = "class"

    def keep(self, a):
        return ClassMix(a, np.full(len(a), -1, np.int64), np.ones(len(a)))

    def blend(self, a, b, lam):
        return ClassMix(a, b, lam)

    def paste(self, a, b, lam, boxes):
        return ClassMix(a, b, lam)  # lam is already the pasted area's complement

    def erase(self, a, holes):
        return self.keep(a)

    def columns(self, mixes: Sequence[ClassMix], rows: Sequence[np.ndarray], total: int, num_classes: int,
                smoothing: float) -> dict:
        """``label`` and ``soft_label`` of every row, from the ops' mixes of their rows."""
        a, b, lam = np.zeros(total, np.int64), np.full(total, -1, np.int64), np.ones(total)
        for mix, where in zip(mixes, rows):
            a[where], b[where], lam[where] = mix.a, mix.b, mix.lam
        soft = soft_labels(a, b, lam, num_classes, smoothing)
        return {"label": np.argmax(soft, axis=1), "soft_label": soft}

    def malformed(self, row: dict, num_classes: int) -> Optional[str]:
        """Why a stored row cannot be checked further, or None."""
        if len(row["soft_label"]) != num_classes:
            return f"soft_label has {len(row['soft_label'])} entries for {num_classes} classes"
        return None

    def row_problems(self, row: dict, num_classes: int, smoothing: float) -> Iterator[str]:
        """What verify holds every well-formed stored row to."""
        soft = np.asarray(row["soft_label"], dtype=np.float64)
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
        """(class index, mass) of the largest soft-label entries, largest first (ties: lower index)."""
        soft = np.asarray(row["soft_label"], dtype=np.float64)
        order = np.argsort(-soft, kind="stable")[:top]
        return [(int(c), float(soft[c])) for k, c in enumerate(order) if k == 0 or soft[c] >= floor]


KIND = ClassLabels()
