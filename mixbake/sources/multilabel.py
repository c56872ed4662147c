"""Multi-label listings: per item a list of class indices made into a catalog's ``ItemSets``.

Every multi-label source (a Parquet ``list<int>``/``list<string>`` column, an image folder's
``metadata.csv``/``metadata.jsonl``) comes down to the same columns: per item the count of its
entries, the entries as candidate class indices, which entries are null, which items are null. This
module checks them against the classes (a bad item: ``Catalog.bad`` names the value), sorts and
de-duplicates each item's set, and gives each item its first class (``Catalog.labels``). Plain
numpy: no Python object per item or per entry.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..errors import MixbakeError
from . import ItemSets

MAX_UNNAMED_CLASSES = 10_000_000  # an integer label past this is not a class index


def offsets_of(counts: np.ndarray) -> np.ndarray:
    """CSR offsets (int64, len + 1) of per-item entry counts."""
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def unnamed_classes(values: np.ndarray, valid: np.ndarray, where: str) -> Tuple[str, ...]:
    """Class names 0..max of integer labels that come without names; refused past
    MAX_UNNAMED_CLASSES (an identifier, not a class index)."""
    top = int(values.max(initial=-1, where=valid))
    if top >= MAX_UNNAMED_CLASSES:
        shown = f"{top} or more" if top == 2**31 - 1 else str(top)
        raise MixbakeError(f"{where} holds a label of {shown}: as class indices that would be {top + 1} "
                           f"classes (name the classes, or use indices 0..K-1).")
    return tuple(str(i) for i in range(top + 1))


def finish(counts: np.ndarray, values: np.ndarray, valid: np.ndarray, item_valid: np.ndarray,
           num_classes: int, bad: Optional[Dict[int, str]] = None) -> Tuple[ItemSets, np.ndarray, Dict[int, str]]:
    """(targets, labels, bad) of items whose entries are ``values`` (candidate class indices, item
    after item, ``counts`` per item; ``valid``: the entry is not null; ``item_valid``: the item's
    list is not null). An item with a null list, a null entry, or an index outside 0..K-1 is bad
    (the first reason found is kept; reasons already in ``bad`` win) and its set is empty; a good
    item's set is its distinct entries, ascending. labels: an item's first class, 0 for an empty
    set, -1 for a bad item."""
    bad = dict(bad or {})
    n = len(counts)
    rows = np.repeat(np.arange(n, dtype=np.int64), counts)
    for i in np.flatnonzero(~item_valid).tolist():
        bad.setdefault(i, "label list is null")
    first_reasons(bad, rows, ~valid & item_valid[rows], lambda at: "label list holds a null")
    outside = valid & ((values < 0) | (values >= num_classes))
    first_reasons(bad, rows, outside, lambda at: f"label {values[at]} is outside the {num_classes} classes")
    is_bad = np.zeros(n, bool)
    is_bad[list(bad)] = True
    keep = ~is_bad[rows] if len(rows) else np.zeros(0, bool)
    targets = _sets(rows[keep], values[keep], n, max(num_classes, 1))
    labels = np.zeros(n, np.int32)
    has = np.diff(targets.offsets) > 0
    labels[has] = targets.index[targets.offsets[:-1][has]]
    labels[is_bad] = -1
    return targets, labels, bad


def first_reasons(bad: Dict[int, str], rows: np.ndarray, where: np.ndarray, reason) -> None:
    """For each item with an entry in ``where``: reason(position of its first such entry)."""
    at = np.flatnonzero(where)
    if not len(at):
        return
    items, first = np.unique(rows[at], return_index=True)
    for item, pos in zip(items.tolist(), at[first].tolist()):
        bad.setdefault(item, reason(pos))


def _sets(rows: np.ndarray, values: np.ndarray, n: int, k: int) -> ItemSets:
    """The ItemSets of (item, class) entries given in item order: each item's classes sorted,
    duplicates dropped (one int64 key per entry; sorted only when some item is not already, and not
    by np.unique, whose hashing took 2.2 s of 2M items' 4M entries where a sort takes 0.03 s)."""
    key = rows * k + values.astype(np.int64)
    if len(key) > 1 and not (key[1:] > key[:-1]).all():
        key.sort()
        key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    rows = key // k
    index = (key - rows * k).astype(np.int32)
    return ItemSets(offsets_of(np.bincount(rows, minlength=n)), index)


def name_codes(names: Sequence[Optional[str]], index: Dict[str, int], base: int, item_of,
               bad: Dict[int, str]) -> np.ndarray:
    """Class indices of some entries given as names (-1 where null or unknown): an unknown name
    makes its item bad (``item_of(position)``, positions counted from ``base``), naming it."""
    codes = np.fromiter((index.get(s, -1) if s is not None else -1 for s in names), np.int64, count=len(names))
    for pos in np.flatnonzero(codes < 0).tolist():
        if names[pos] is not None:
            bad.setdefault(item_of(base + pos), f"label {names[pos]!r} is not one of the {len(index)} classes")
    return codes
