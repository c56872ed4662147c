"""The plan: the only place randomness is drawn.

How items are pooled (the *pairing layout*) and what each pool makes:

- **format 2** (``passes``): the copies of every item are made in *passes* of ``copies_per_pass``
  copies. Each pass shuffles the catalog's chunks with its own generator,
  ``SeedSequence(seed, spawn_key=(2, pass))``, and cuts them into pools of ``pool_size`` source
  items. A pool decodes each of its items once and makes that pass's copies of them, with partners
  drawn inside the pool: an item meets other partners, from other pools, in every pass, as it would
  in every epoch of online mixup. A pool writes as many shards (of ~``shard_size`` rows) as its rows
  need; pool ``i`` of pass ``p`` draws from ``SeedSequence(seed, spawn_key=(3, p, i))``.
- **format 1** (``shard-pools``, every build before format 2, and still every ``--copies 1``
  build, whose bytes it keeps): one pass holding every copy; pools of ``shard_size / (copies +
  originals)`` items, one shard each; the shuffle uses ``spawn_key=(0,)``, shard ``s`` draws from
  ``spawn_key=(1, s)``. (With many copies its pools shrink to a few items, which then meet the
  same few partners in every copy: format 2 replaced it for ``--copies > 1``.)

``plan_pool`` decides, for every output row of one pool, the op, the two sources, lam, the boxes
and the fill seed, from the pool's own generator, so any pool can be re-planned alone, on any
machine, in any order. Every random array is drawn for every row whatever its op, each kind of
decision from its own child stream (``pool_streams``), so changing one op's option does not move
the others' draws, and an item found bad only changes the partners chosen, reproducibly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import numpy as np

from . import chain, ops
from .config import BakeConfig
from .errors import MixbakeError
from .ops.boxes import NO_BOX

MIXUP, CUTMIX, CUTOUT, NONE = (ops.BY_NAME[name].code for name in ("mixup", "cutmix", "cutout", "none"))
ORIGINAL = -1  # the copy index recorded for --keep-originals rows
SCHEMES = {1: "shard-pools", 2: "passes"}
COPIES_PER_PASS = 4  # format 2's default: copies made from one decode of a pool (see the README)


@dataclass(frozen=True)
class Pairing:
    """The resolved pairing layout of a config (what ``manifest.json`` → ``pairing`` records)."""
    format_version: int
    pool_size: int          # source items per pool (target; chunks are never split)
    copies_per_pass: int
    passes: int

    @property
    def scheme(self) -> str:
        return SCHEMES[self.format_version]

    def to_dict(self) -> dict:
        return {"scheme": self.scheme, "pool_size": self.pool_size, "copies_per_pass": self.copies_per_pass,
                "passes": self.passes}


def pairing_format(config: BakeConfig) -> int:
    """The format whose pairing rules a config follows: 1 when asked for, or when format 2 would lay
    the build out the same way (one copy, no pairing option): such builds keep their bytes."""
    if config.format_version == 1:
        return 1
    if config.copies == 1 and config.pool_size is None and config.copies_per_pass is None:
        return 1
    return 2


def resolve_pairing(config: BakeConfig, sizes) -> Pairing:
    """Pool size, copies per pass and passes of ``config`` over a catalog whose chunks hold ``sizes``
    items (an array, or the number of chunks when each holds one item)."""
    version = pairing_format(config)
    if version == 1:
        return Pairing(1, max(2, math.ceil(config.shard_size / config.rows_per_item)), config.copies, 1)
    pool_size = config.pool_size or max(2, math.ceil(config.shard_size / (1 + int(config.keep_originals))))
    per_pass = config.copies_per_pass
    if per_pass is None and chain.enabled(config):
        # a worker holds a view per item and copy of its pass; a random crop decodes every view anyway
        per_pass = 1 if config.resize == "random-crop" else COPIES_PER_PASS
    if per_pass is None:
        # the whole catalog in one pool: every copy from a single decode, partners from everywhere
        one_pool = len(_cut_positions(_sizes(sizes), pool_size, None)) == 2
        per_pass = config.copies if one_pool else COPIES_PER_PASS
    per_pass = min(per_pass, config.copies)
    return Pairing(2, pool_size, per_pass, math.ceil(config.copies / per_pass))


@dataclass(frozen=True)
class Pool:
    """One unit of work: chunks decoded together, and the rows they make."""
    pool_id: int            # position in the build's sequence of pools
    pass_id: int
    index: int              # position within its pass
    chunks: np.ndarray      # int64 chunk ids, in pool order
    first_copy: int
    copies: int             # copies of each item made here
    originals: bool         # the --keep-originals rows are made here too
    first_shard: int
    shards: int
    format_version: int = 1

    @property
    def shard_ids(self) -> range:
        return range(self.first_shard, self.first_shard + self.shards)


def _sizes(sizes) -> np.ndarray:
    """Chunk sizes as an array (an int n stands for n chunks of one item: a folder)."""
    return np.ones(sizes, dtype=np.int64) if isinstance(sizes, (int, np.integer)) else np.asarray(sizes, np.int64)


def pass_order(config: BakeConfig, pairing: Pairing, num_chunks: int, pass_id: int) -> np.ndarray:
    """The chunks of one pass, shuffled with the pass's own generator."""
    key = (0,) if pairing.format_version == 1 else (2, pass_id)
    return np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=key)).permutation(num_chunks)


def _cut_positions(sizes: np.ndarray, target: int, order) -> np.ndarray:
    """Where the pools of a pass start in its ``order`` of chunks (and its length, last): runs of
    ~``target`` items, never splitting a chunk; a tiny tail joins the pool before it."""
    in_order = sizes if order is None else sizes[order]
    starts = np.concatenate([[0], np.cumsum(in_order)[:-1]])
    bucket = starts // target
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(bucket)) + 1, [len(in_order)]])
    if len(cuts) > 2 and in_order[cuts[-2]:].sum() < max(2, target // 2):
        cuts = np.delete(cuts, -2)  # a tiny tail pool would pair poorly
    return cuts


class Layout:
    """Every pool of a build, pass after pass, made afresh when iterated (a pass's shuffle is drawn
    again from its seed), so the parent holds a few numbers per pool, never every pool's chunks."""

    def __init__(self, config: BakeConfig, sizes):
        self.config = config
        self.num_chunks = int(sizes) if isinstance(sizes, (int, np.integer)) else len(sizes)
        self._sizes = None if isinstance(sizes, (int, np.integer)) else np.asarray(sizes, np.int64)
        self.pairing = resolve_pairing(config, sizes)
        self._cuts, self._items = [], []
        for pass_id in range(self.pairing.passes):
            in_order = self._chunk_sizes()[self._order(pass_id)]
            cuts = _cut_positions(in_order, self.pairing.pool_size, None)
            self._cuts.append(cuts)
            self._items.append(np.add.reduceat(in_order, cuts[:-1]))
        self._shards = [self._pass_shards(p) for p in range(self.pairing.passes)]
        self.num_shards = int(sum(s.sum() for s in self._shards))
        self.num_pools = sum(len(s) for s in self._shards)
        self.total_rows = int(sum((items * self._rows_per_item(p)).sum() for p, items in enumerate(self._items)))

    def _chunk_sizes(self) -> np.ndarray:
        return self._sizes if self._sizes is not None else _sizes(self.num_chunks)

    def _order(self, pass_id: int) -> np.ndarray:
        return pass_order(self.config, self.pairing, self.num_chunks, pass_id)

    def _copies(self, pass_id: int) -> Tuple[int, int, bool]:
        first = pass_id * self.pairing.copies_per_pass
        return first, min(self.pairing.copies_per_pass, self.config.copies - first), \
            self.config.keep_originals and pass_id == 0

    def _rows_per_item(self, pass_id: int) -> int:
        _, copies, originals = self._copies(pass_id)
        return copies + int(originals)

    def _pass_shards(self, pass_id: int) -> np.ndarray:
        rows = self._items[pass_id] * self._rows_per_item(pass_id)
        if self.pairing.format_version == 1:
            return np.ones(len(rows), np.int64)
        return np.maximum(1, -(-rows // self.config.shard_size))

    def __len__(self) -> int:
        return self.num_pools

    def __iter__(self) -> Iterator[Pool]:
        pool_id, shard = 0, 0
        for pass_id, (cuts, shards) in enumerate(zip(self._cuts, self._shards)):
            order = self._order(pass_id)
            first, copies, originals = self._copies(pass_id)
            for index in range(len(cuts) - 1):
                yield Pool(pool_id, pass_id, index, order[cuts[index]:cuts[index + 1]].copy(), first, copies,
                           originals, shard, int(shards[index]), self.pairing.format_version)
                pool_id, shard = pool_id + 1, shard + int(shards[index])


def make_layout(config: BakeConfig, chunk_bounds: np.ndarray) -> Tuple[Pairing, List[Pool]]:
    """Every pool of the build as a list (small builds and tests; a bake iterates a Layout)."""
    layout = Layout(config, np.diff(np.asarray(chunk_bounds, np.int64)))
    return layout.pairing, list(layout)


def pool_target(config: BakeConfig) -> int:
    """Format 1: source items per pool, so that a shard holds about ``shard_size`` rows."""
    return max(2, math.ceil(config.shard_size / config.rows_per_item))


def make_pools(config: BakeConfig, chunk_bounds: np.ndarray) -> List[np.ndarray]:
    """Format 1: chunk ids of each pool (= shard)."""
    pairing = Pairing(1, pool_target(config), config.copies, 1)
    sizes = np.diff(np.asarray(chunk_bounds, np.int64))
    order = pass_order(config, pairing, len(sizes), 0)
    cuts = _cut_positions(sizes[order], pairing.pool_size, None)
    return [order[lo:hi] for lo, hi in zip(cuts[:-1], cuts[1:])]


def check_pairable(config: BakeConfig, labels: np.ndarray, classes) -> None:
    needs_partner = config.mixup > 0 or config.cutmix > 0
    if needs_partner and len(labels) < 2:
        raise MixbakeError("The source has a single item: mixup and cutmix need at least two.")
    if needs_partner and config.pairing == "cross-class" and len(np.unique(labels[labels >= 0])) < 2:
        raise MixbakeError(f"The source has a single class ({classes[0] if classes else '?'}): "
                           f"--pairing cross-class needs at least two classes.")


@dataclass(frozen=True)
class PoolPlan:
    """Row-aligned arrays, already in output order. Positions index the pool's items."""
    op: np.ndarray          # int8 codes into the ops registry (mixbake.ops.REGISTRY)
    pos_a: np.ndarray       # int64 pool position of source a
    pos_b: np.ndarray       # int64 pool position of source b, -1 when there is none
    copy: np.ndarray        # int64 copy index, ORIGINAL for --keep-originals rows
    lam: np.ndarray         # float64 weight of source a (cutmix: from the clipped box's pixel area)
    boxes: Tuple[np.ndarray, ...]  # per row (k, 4) int64 x0, y0, x1, y1
    fill_seed: np.ndarray   # uint64 seed for cutout noise
    # mosaic rows: the pool positions of its third and fourth sources (-1 elsewhere)
    pos_c: Optional[np.ndarray] = None
    pos_d: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.op)


# children of a pool's SeedSequence, by position: only ever appended (the chain's steps came second)
STREAMS = ("op", "partner", "mixup", "cutmix", "box", "cutout", "order") + chain.STREAMS + ("mosaic",
                                                                                        "mosaic_partners")


def pool_streams(seed: int, pool: Pool) -> dict:
    """One generator per kind of decision, all children of the pool's ``SeedSequence``.

    Separate streams matter: ``Generator.beta`` consumes a data-dependent number of raw draws, so
    with a single stream a new --mixup-alpha would move every later draw (boxes, holes, row order).
    """
    key = (1, pool.pool_id) if pool.format_version == 1 else (3, pool.pass_id, pool.index)
    children = np.random.SeedSequence(seed, spawn_key=key).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}


def plan_views(config: BakeConfig, pool: Pool, items: int) -> dict:
    """The chain's draws for every view of a pool, {step: (views, k) uniforms}: view ``p * copies +
    j`` is item ``p``'s view in the pool's ``j``-th copy. Drawn for every view whatever its item's
    fate (a bad item changes no other view), each step from its own stream; steps off draw nothing."""
    streams = pool_streams(config.seed, pool)
    views = items * pool.copies
    return {step.name: step.draw(config, streams[step.stream], views) for step in chain.active(config)}


def shard_streams(seed: int, shard_id: int) -> dict:
    """Format 1: the streams of shard ``shard_id`` (its pool)."""
    return pool_streams(seed, format1_pool(BakeConfig(seed=seed), shard_id))


def format1_pool(config: BakeConfig, shard_id: int) -> Pool:
    """The pool of format-1 shard ``shard_id`` (chunks aside: plans do not need them)."""
    return Pool(shard_id, 0, shard_id, np.zeros(0, np.int64), 0, config.copies, config.keep_originals,
                shard_id, 1, 1)


def plan_shard(config: BakeConfig, shard_id: int, labels: np.ndarray, valid: np.ndarray) -> PoolPlan:
    """Format 1: every decision for one shard, from (config, shard_id, pool labels, usable items)."""
    return plan_pool(config, format1_pool(config, shard_id), labels, valid)


def plan_pool(config: BakeConfig, pool: Pool, labels: np.ndarray, valid: np.ndarray) -> PoolPlan:
    """Every decision for one pool, from (config, the pool, its labels, which of its items are usable)."""
    streams = pool_streams(config.seed, pool)
    n, copies = len(labels), pool.copies
    width, height = config.size
    a = np.repeat(np.arange(n, dtype=np.int64), copies)
    rows = len(a)
    op = streams["op"].choice(len(ops.REGISTRY), size=rows, p=config.shares).astype(np.int8)
    if pool.format_version == 1 or config.pairing == "cross-class":
        b = _partners(streams["partner"], a, labels, valid, config.pairing)
    else:
        b = _spread_partners(streams["partner"], a, np.tile(np.arange(copies), n), valid, copies)
    draws = [op_.sample(config, streams, rows, height, width) for op_ in ops.REGISTRY]
    total = rows + (n if pool.originals else 0)
    order = streams["order"].permutation(total)
    columns, op, b = _resolve(config, op, b, draws)
    lam, boxes, fill_seed = columns.lam, columns.boxes, columns.seed
    c, d = _more_partners(config, streams, op, a, labels, valid)
    copy = pool.first_copy + np.tile(np.arange(copies, dtype=np.int64), n)
    if pool.originals:
        a = np.concatenate([a, np.arange(n, dtype=np.int64)])
        b = np.concatenate([b, np.full(n, -1, dtype=np.int64)])
        c = np.concatenate([c, np.full(n, -1, dtype=np.int64)])
        d = np.concatenate([d, np.full(n, -1, dtype=np.int64)])
        op = np.concatenate([op, np.full(n, NONE, dtype=np.int8)])
        copy = np.concatenate([copy, np.full(n, ORIGINAL, dtype=np.int64)])
        lam = np.concatenate([lam, np.ones(n)])
        boxes = boxes + [NO_BOX] * n
        fill_seed = np.concatenate([fill_seed, np.zeros(n, dtype=np.uint64)])
    keep = order[valid[a[order]]]  # output order, rows of unusable items dropped
    return PoolPlan(op=op[keep], pos_a=a[keep], pos_b=b[keep], copy=copy[keep], lam=lam[keep],
                    boxes=tuple(boxes[i] for i in keep), fill_seed=fill_seed[keep], pos_c=c[keep], pos_d=d[keep])


def _more_partners(config: BakeConfig, streams: dict, op: np.ndarray, a: np.ndarray, labels, valid):
    """(c, d): the third and fourth sources of the rows whose op takes four (mosaic), each another
    usable item drawn uniformly (with replacement, as YOLOv5 draws them); -1 on every other row.
    Drawn only when such an op has a share, from its own stream: no other draw moves."""
    c = np.full(len(op), -1, dtype=np.int64)
    d = c.copy()
    codes = [o.code for o in ops.REGISTRY if o.sources > 2 and getattr(config, o.name) > 0]
    if not codes:
        return c, d
    rng = streams["mosaic_partners"]
    drawn_c, drawn_d = _partners(rng, a, labels, valid, "random"), _partners(rng, a, labels, valid, "random")
    four = np.isin(op, codes)
    return np.where(four, drawn_c, -1), np.where(four, drawn_d, -1)


def shard_rows(rows: int, shards: int) -> List[range]:
    """A pool's planned rows, in output order, cut into ``shards`` runs of near-equal length."""
    bounds = (np.arange(shards + 1) * rows) // shards
    return [range(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]


def take_rows(plan: PoolPlan, rows: range) -> PoolPlan:
    cut = slice(rows.start, rows.stop)
    return PoolPlan(op=plan.op[cut], pos_a=plan.pos_a[cut], pos_b=plan.pos_b[cut], copy=plan.copy[cut],
                    lam=plan.lam[cut], boxes=plan.boxes[cut], fill_seed=plan.fill_seed[cut],
                    pos_c=plan.pos_c[cut], pos_d=plan.pos_d[cut])


def _resolve(config, op, b, draws):
    """Every row's op-specific parameters: (columns, op, b). A row of an op that needs a partner
    becomes an unmixed row when it has none; each op then fills the lam and boxes of its rows."""
    needs = np.isin(op, [o.code for o in ops.REGISTRY if o.partner])
    op = np.where(needs & (b < 0), NONE, op).astype(np.int8)
    b = np.where(np.isin(op, [o.code for o in ops.REGISTRY if o.partner]), b, -1)
    columns = ops.PlanColumns(len(op))
    for op_, drawn in zip(ops.REGISTRY, draws):
        op_.resolve(config, drawn, np.flatnonzero(op == op_.code), columns)
    columns.boxes = [NO_BOX if box is None else box for box in columns.boxes]
    return columns, op, b


def _spread_partners(rng, a, slot, valid, copies: int) -> np.ndarray:
    """Format 2, ``--pairing random``: an item's copies in a pool meet distinct partners, and in
    each copy every usable item is a partner exactly once (as in online mixup's ``x[randperm]``).

    The usable items are put in a random cyclic order; copy slot ``j`` pairs each item with the one
    ``shift[j]`` places ahead, the shifts distinct in 1..m-1 (repeating only past m-1 copies).
    """
    cand = np.flatnonzero(valid)
    m = len(cand)
    partner = np.full(len(a), -1, dtype=np.int64)
    if m < 2:
        return partner
    cycle = cand[rng.permutation(m)]
    place = np.zeros(len(valid), dtype=np.int64)
    place[cycle] = np.arange(m)
    shifts = np.concatenate([rng.permutation(m - 1) + 1 for _ in range(-(-copies // (m - 1)))])[:copies]
    return cycle[(place[a] + shifts[slot]) % m]


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
