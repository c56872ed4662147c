"""Who met whom: distinct partners per item and the spread of lam, from (src_a, src_b, lam) columns.

A model trained on a bake learns fixed pairs as it learns noisy labels: an item's copies should
meet as many different partners as online mixup's epochs would. ``plan`` checks it before a bake,
``inspect`` after. O(rows), numpy only.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

FEW = 0.9  # below this share of an item's mixed rows as distinct partners, plan warns


def partner_stats(src_a: np.ndarray, src_b: np.ndarray, lam: np.ndarray) -> Optional[dict]:
    """For the rows that have a partner (``src_b >= 0``): per source item, how many of its rows
    there are, how many distinct partners they have, and the standard deviation of their lam.
    Medians and minimums over items; None when no row has a partner."""
    src_a, src_b = np.asarray(src_a, np.int64), np.asarray(src_b, np.int64)
    mixed = src_b >= 0
    if not mixed.any():
        return None
    a, b, lam = src_a[mixed], src_b[mixed], np.asarray(lam, np.float64)[mixed]
    base = int(max(a.max(), b.max())) + 1
    items, rows = np.unique(a, return_counts=True)
    pairs = np.unique(a * base + b)
    distinct = np.bincount(pairs // base, minlength=base)[items]
    total = np.bincount(a, weights=lam, minlength=base)[items]
    square = np.bincount(a, weights=lam * lam, minlength=base)[items]
    spread = np.sqrt(np.maximum(square / rows - (total / rows) ** 2, 0.0))
    return {
        "items": int(len(items)),
        "mixed_rows_per_item": float(np.median(rows)),
        "partners_median": float(np.median(distinct)),
        "partners_min": int(distinct.min()),
        "distinct_share": round(float(np.median(distinct / rows)), 4),
        "lam_spread_median": round(float(np.median(spread)), 4),
    }


def few_partners(stats: Optional[dict]) -> bool:
    """Do an item's copies meet the same partners again (median distinct share below FEW)?"""
    return stats is not None and stats["mixed_rows_per_item"] >= 2 and stats["distinct_share"] < FEW
