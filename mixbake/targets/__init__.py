"""Label kinds ("targets"): what a sample's label is, and how an op mixes two of them.

An op never computes a label itself: it calls the label kind's interface (its *target rule*, see
``Op.mix_targets``), so a new kind slots in without touching any op:

- ``keep(a)``: the sample is source a's (none, the originals);
- ``blend(a, b, lam)``: a weighted mix, lam for a (mixup);
- ``paste(a, b, lam, boxes)``: b's content inside ``boxes`` replaces a's; lam is the share of the
  image kept from a (cutmix: the pixel area after clipping);
- ``erase(a, holes)``: a with ``holes`` removed (cutout);
- ``mosaic(sources, weights)``: four sources weighted by the shares of the image their cells take
  (mosaic; the kinds whose targets are weights: sets of classes and soft labels).

Arguments are row-aligned arrays for the rows of one op (``a``, ``b`` the per-row target values of
the sources, ``lam`` float64, ``boxes`` a sequence of (k, 4) arrays); each method returns the
kind's mixed value for those rows, which the kind alone turns into output columns (``columns``),
declares in the schema (``fields``, ``features``), checks (``row_problems``) and summarises.
Kinds: one class per item (``classes.ClassLabels``); multi-label sets and soft-label inputs
(``weights.Weights``, whose ops get pool positions and a table bound per pool). A source says which kind its items carry (``Catalog.label_kind``);
a manifest without ``label_kind`` holds class labels.
"""
from __future__ import annotations

import importlib
from typing import Optional

KINDS = {"class": ("classes", "KIND"), "multi": ("weights", "MULTI"), "soft": ("weights", "SOFT")}  # kind -> where


class Target:
    name: str = ""

    def bind(self, table) -> "Target":
        """This kind for one pool whose per-position targets are ``table`` (kinds that need one)."""
        return self

    def sources(self, task, positions):
        """What the ops get as each row's source target, from its pool position (-1: none)."""
        raise NotImplementedError

    def provenance(self, a, b) -> dict:
        """The columns naming the sources' own labels (``a``, ``b``: what ``sources`` gave)."""
        raise NotImplementedError

    def keep(self, a):
        raise NotImplementedError

    def blend(self, a, b, lam):
        raise NotImplementedError

    def paste(self, a, b, lam, boxes):
        raise NotImplementedError

    def erase(self, a, holes):
        raise NotImplementedError

    def mosaic(self, sources, weights):
        """Four sources' targets (``sources``: a, b, c, d) weighted by ``weights`` (rows, 4): each
        row's cells' shares of the image (mosaic)."""
        raise NotImplementedError


def get(kind: Optional[str] = None) -> Target:
    """The label kind called ``kind`` (None: one class per item)."""
    kind = kind or "class"
    if kind not in KINDS:
        raise ValueError(f"unknown label kind {kind!r}")
    module, name = KINDS[kind]
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
