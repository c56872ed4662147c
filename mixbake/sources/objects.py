"""Detection listings: per item a list of (box, category) made into a catalog's ``ItemObjects``.

Every detection source (COCO instances JSON, YOLO label files, a Parquet ``objects`` column) comes
down to the same columns: per item the count of its boxes, the boxes (x0, y0, x1, y1), their
category indices. This module checks what can be checked without the image (a negative or empty
size, a non-finite coordinate, a category that is not one of the classes: a bad item naming the
box), and gives each item its set of categories (the image-level tags: the detection build's label
kind is "multi", see ``mixbake.targets.boxes``). Whether a box lies inside its image is checked by
the worker, which reads the image's size. Plain numpy: no Python object per item or per box.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from ..errors import MixbakeError
from . import ItemObjects, ItemSets
from .multilabel import first_reasons, finish, offsets_of


def objects_of(counts: np.ndarray, boxes: np.ndarray, category: np.ndarray, num_classes: int,
               bad: Dict[int, str], normalised: bool = False
               ) -> Tuple[ItemObjects, ItemSets, np.ndarray, Dict[int, str]]:
    """(objects, targets, labels, bad) of items with ``counts`` boxes each (``boxes`` (m, 4) as
    x0, y0, x1, y1; ``category`` (m,) class indices). A bad item keeps no boxes."""
    counts = np.asarray(counts, np.int64)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    category = np.asarray(category, np.int64)
    bad = dict(bad)
    rows = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    first_reasons(bad, rows, ~np.isfinite(boxes).all(axis=1),
                  lambda at: f"box {_nth(at, rows)} has a non-finite coordinate")
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    first_reasons(bad, rows, empty, lambda at: f"box {_nth(at, rows)} has a negative or zero size "
                                          f"({_spelled(boxes[at])})")
    if not normalised:
        first_reasons(bad, rows, (boxes[:, :2] < 0).any(axis=1),
                 lambda at: f"box {_nth(at, rows)} ({_spelled(boxes[at])}) starts outside the image")
    else:
        first_reasons(bad, rows, ((boxes < -1e-6) | (boxes > 1 + 1e-6)).any(axis=1),
                 lambda at: f"box {_nth(at, rows)} ({_spelled(boxes[at])}) is outside the image (normalised "
                            f"coordinates are in 0..1)")
    targets, labels, bad = finish(counts, category, np.ones(len(category), bool), np.ones(len(counts), bool),
                                  num_classes, bad)
    bad = {i: r.replace("label ", "category ", 1) if r.startswith("label ") else r for i, r in bad.items()}
    keep = np.ones(len(counts), bool)
    keep[list(bad)] = False
    kept = keep[rows] if len(rows) else np.zeros(0, bool)
    objects = ItemObjects(offsets_of(np.where(keep, counts, 0)), boxes[kept], category[kept].astype(np.int32),
                          normalised)
    return objects, targets, labels, bad


def _nth(at: int, rows: np.ndarray) -> int:
    """The 0-based index of entry ``at`` among its item's boxes."""
    return int(at - np.searchsorted(rows, rows[at]))


def _spelled(box) -> str:
    return "x0 {:g}, y0 {:g}, x1 {:g}, y1 {:g}".format(*(float(v) for v in box))


def check_distinct(names, where: str) -> None:
    """Class names must be distinct (readers such as ``datasets`` refuse a ClassLabel that repeats one)."""
    seen = set()
    for name in names:
        if name in seen:
            raise MixbakeError(f"{where}: the category name {name!r} is given to more than one category; "
                               f"class names must be distinct.")
        seen.add(name)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    half = boxes[:, 2:] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)
