"""The plan: the only place randomness is drawn.

``make_pools`` shuffles the catalog's chunks with the seed and cuts them into pools, one per shard.
``plan_shard`` decides, for every output row of one shard, the op, the two sources, lam, the boxes
and the fill seed. Each shard draws from its own generator,
``SeedSequence(seed, spawn_key=(1, shard_id))``, so any shard can be re-planned alone, on any
machine, in any order; the chunk shuffle uses ``spawn_key=(0,)``.

Every random array is drawn for every row whatever its op, each kind of decision from its own child
stream (``shard_streams``), so changing one op's option does not move the others' draws, and an
item found bad only changes the partners chosen, reproducibly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from . import ops
from .config import OPS, BakeConfig
from .errors import MixbakeError

MIXUP, CUTMIX, CUTOUT, NONE = range(4)
ORIGINAL = -1  # the copy index recorded for --keep-originals rows


def pool_target(config: BakeConfig) -> int:
    """Source items per pool, so that a shard holds about ``shard_size`` rows."""
    return max(2, math.ceil(config.shard_size / config.rows_per_item))


def make_pools(config: BakeConfig, chunk_bounds: np.ndarray) -> List[np.ndarray]:
    """Chunk ids of each pool: chunks shuffled globally, then cut into runs of ~pool_target items."""
    sizes = np.diff(chunk_bounds)
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(0,)))
    order = rng.permutation(len(sizes))
    starts = np.concatenate([[0], np.cumsum(sizes[order])[:-1]])
    target = pool_target(config)
    _, pool_of_chunk = np.unique(starts // target, return_inverse=True)
    cuts = np.flatnonzero(np.diff(pool_of_chunk)) + 1
    pools = np.split(order, cuts)
    if len(pools) > 1 and sizes[pools[-1]].sum() < max(2, target // 2):
        pools[-2:] = [np.concatenate(pools[-2:])]  # a tiny tail pool would pair poorly
    return pools


def check_pairable(config: BakeConfig, labels: np.ndarray, classes) -> None:
    needs_partner = config.mixup > 0 or config.cutmix > 0
    if needs_partner and len(labels) < 2:
        raise MixbakeError("The source has a single item: mixup and cutmix need at least two.")
    if needs_partner and config.pairing == "cross-class" and len(np.unique(labels[labels >= 0])) < 2:
        raise MixbakeError(f"The source has a single class ({classes[0] if classes else '?'}): "
                           f"--pairing cross-class needs at least two classes.")


@dataclass(frozen=True)
class ShardPlan:
    """Row-aligned arrays, already in output order. Positions index the shard's pool."""
    op: np.ndarray          # int8 codes into config.OPS
    a: np.ndarray           # int64 pool position of source a
    b: np.ndarray           # int64 pool position of source b, -1 when there is none
    copy: np.ndarray        # int64 copy index, ORIGINAL for --keep-originals rows
    lam: np.ndarray         # float64 weight of source a (cutmix: from the clipped box's pixel area)
    boxes: Tuple[np.ndarray, ...]  # per row (k, 4) int64 x0, y0, x1, y1
    fill_seed: np.ndarray   # uint64 seed for cutout noise

    def __len__(self) -> int:
        return len(self.op)


STREAMS = ("op", "partner", "mixup", "cutmix", "box", "cutout", "order")


def shard_streams(seed: int, shard_id: int) -> dict:
    """One generator per kind of decision, all children of ``SeedSequence(seed, spawn_key=(1, shard))``.

    Separate streams matter: ``Generator.beta`` consumes a data-dependent number of raw draws, so
    with a single stream a new --mixup-alpha would move every later draw (boxes, holes, row order).
    """
    children = np.random.SeedSequence(seed, spawn_key=(1, shard_id)).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}


def plan_shard(config: BakeConfig, shard_id: int, labels: np.ndarray, valid: np.ndarray) -> ShardPlan:
    """Every decision for one shard, from (config, shard_id, pool labels, which pool items are usable)."""
    streams = shard_streams(config.seed, shard_id)
    n, copies = len(labels), config.copies
    width, height = config.size
    a = np.repeat(np.arange(n, dtype=np.int64), copies)
    rows = len(a)
    op = streams["op"].choice(len(OPS), size=rows, p=config.shares).astype(np.int8)
    b = _partners(streams["partner"], a, labels, valid, config.pairing)
    lam_mix = streams["mixup"].beta(config.mixup_alpha, config.mixup_alpha, size=rows)
    lam_cut = streams["cutmix"].beta(config.cutmix_alpha, config.cutmix_alpha, size=rows)
    centres = streams["box"].integers(0, [height, width], size=(rows, 2))
    side_fracs = streams["box"].random((rows, 2))
    hole_centres = streams["cutout"].integers(0, [height, width], size=(rows, config.cutout_holes, 2))
    fill_seed = streams["cutout"].integers(0, 2**63, size=rows, dtype=np.int64).astype(np.uint64)
    total = rows + (n if config.keep_originals else 0)
    order = streams["order"].permutation(total)

    cut_boxes = ops.cutmix_boxes(lam_cut, centres[:, 0], centres[:, 1], height, width,
                                 config.cutmix_minmax, side_fracs)
    lam, boxes, op, b = _resolve(config, op, b, lam_mix, cut_boxes, hole_centres, height, width)
    copy = np.tile(np.arange(copies, dtype=np.int64), n)
    if config.keep_originals:
        a = np.concatenate([a, np.arange(n, dtype=np.int64)])
        b = np.concatenate([b, np.full(n, -1, dtype=np.int64)])
        op = np.concatenate([op, np.full(n, NONE, dtype=np.int8)])
        copy = np.concatenate([copy, np.full(n, ORIGINAL, dtype=np.int64)])
        lam = np.concatenate([lam, np.ones(n)])
        boxes = boxes + [_NO_BOX] * n
        fill_seed = np.concatenate([fill_seed, np.zeros(n, dtype=np.uint64)])
    keep = order[valid[a[order]]]  # output order, rows of unusable items dropped
    return ShardPlan(op=op[keep], a=a[keep], b=b[keep], copy=copy[keep], lam=lam[keep],
                     boxes=tuple(boxes[i] for i in keep), fill_seed=fill_seed[keep])


_NO_BOX = np.zeros((0, 4), dtype=np.int64)


def _resolve(config, op, b, lam_mix, cut_boxes, hole_centres, height, width):
    """Every row's op-specific parameters, vectorised: (lam, boxes, op, b).

    A mixup/cutmix row without a usable partner becomes an unmixed row; a cutmix box clipped to
    nothing is an identity (lam 1, no box); cutout holes are clipped and empty ones dropped."""
    paired = (op == MIXUP) | (op == CUTMIX)
    op = np.where(paired & (b < 0), NONE, op).astype(np.int8)
    b = np.where((op == MIXUP) | (op == CUTMIX), b, -1)
    pasted = (op == CUTMIX) & (ops.box_area(cut_boxes) > 0)
    lam = np.where(op == MIXUP, lam_mix, 1.0)
    lam = np.where(pasted, ops.cutmix_lam(cut_boxes, height, width), lam)
    holes = ops.cutout_boxes(hole_centres[..., 0], hole_centres[..., 1], height, width, config.cutout_size)
    open_holes = (holes[..., 2] > holes[..., 0]) & (holes[..., 3] > holes[..., 1])
    boxes = [_NO_BOX] * len(op)
    for r in np.flatnonzero(pasted).tolist():
        boxes[r] = cut_boxes[r:r + 1]
    for r in np.flatnonzero(op == CUTOUT).tolist():
        boxes[r] = holes[r][open_holes[r]]
    return lam, boxes, op, b


def _partners(rng, a, labels, valid, pairing) -> np.ndarray:
    """A partner pool position for every row: never the row's own item; -1 when none is usable.

    One uniform draw per row. ``cross-class`` picks among usable items of another class when the
    pool has any, else falls back to any other usable item.
    """
    u = rng.random(len(a))
    cand = np.flatnonzero(valid)
    m = len(cand)
    partner = np.full(len(a), -1, dtype=np.int64)
    if m < 2:
        return partner
    self_idx = np.searchsorted(cand, a)
    k = np.minimum((u * (m - 1)).astype(np.int64), m - 2)
    partner[:] = cand[k + (k >= self_idx)]
    if pairing == "cross-class":
        by_label = cand[np.argsort(labels[cand], kind="stable")]
        sorted_labels = labels[by_label]
        start = np.searchsorted(sorted_labels, labels[a], side="left")
        count = np.searchsorted(sorted_labels, labels[a], side="right") - start
        others = m - count
        k = np.minimum((u * others).astype(np.int64), np.maximum(others - 1, 0))
        idx = np.where(k < start, k, k + count)
        partner = np.where(others > 0, by_label[np.minimum(idx, m - 1)], partner)
    return partner
