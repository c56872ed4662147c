"""Label kinds ("targets"): what a sample's label is, and how an op mixes two of them.

An op never computes a label itself: it calls the label kind's interface (its *target rule*, see
``Op.mix_targets``), so a new kind slots in without touching any op:

- ``keep(a)``: the sample is source a's (none, the originals);
- ``blend(a, b, lam)``: a weighted mix, lam for a (mixup);
- ``paste(a, b, lam, boxes)``: b's content inside ``boxes`` replaces a's; lam is the share of the
  image kept from a (cutmix: the pixel area after clipping);
- ``erase(a, holes)``: a with ``holes`` removed (cutout).

Arguments are row-aligned arrays for the rows of one op (``a``, ``b`` the per-row target values of
the sources, ``lam`` float64, ``boxes`` a sequence of (k, 4) arrays); each method returns the
kind's mixed value for those rows, which the kind alone turns into output columns (``columns``),
declares in the schema (``fields``, ``features``), checks (``row_problems``) and summarises.
Today's kind is one class per item (``classes.ClassLabels``); multi-label, soft-label, mask and box
kinds are the next rooms here. A source says which kind its items carry (``Catalog.label_kind``);
a manifest without ``label_kind`` holds class labels.
"""
from __future__ import annotations

import importlib
from typing import Optional

KINDS = {"class": "classes"}  # label kind -> its module here


class Target:
    name: str = ""

    def keep(self, a):
        raise NotImplementedError

    def blend(self, a, b, lam):
        raise NotImplementedError

    def paste(self, a, b, lam, boxes):
        raise NotImplementedError

    def erase(self, a, holes):
        raise NotImplementedError


def get(kind: Optional[str] = None) -> Target:
    """The label kind called ``kind`` (None: one class per item)."""
    kind = kind or "class"
    if kind not in KINDS:
        raise ValueError(f"unknown label kind {kind!r}")
    return importlib.import_module(f"{__name__}.{KINDS[kind]}").KIND
