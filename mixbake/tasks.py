"""The units of work between the parent and its workers, and how a build is cut into them.

A :class:`PoolTask` is small and picklable: one pool of the plan (``plan.Pool``), the references of
its items, and where to write. A worker reads just those items, decodes each once, and writes the
pool's shards; it returns a :class:`PoolResult` of :class:`ShardResult` summaries, never pixels.
The output of a shard is a function of its task alone. This module imports no codec: planning,
verifying and inspecting a build never load OpenCV or libjpeg-turbo.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

from .config import BakeConfig
from .plan import Pairing, Pool, check_pairable, make_layout
from .sources import Catalog, display_ref
from .store import Store


@dataclass(frozen=True)
class PoolTask:
    """One pool: its items, and the shards it writes (``pool.shard_ids``; those in ``done`` were
    finished by an earlier run and are planned but not written again)."""
    pool: Pool
    num_shards: int                   # in the whole build (shard names say "-of-N")
    config: BakeConfig
    classes: Tuple[str, ...]
    reader: object                    # source reader: read_chunk(locator) -> iterable of payloads
    locators: Tuple                   # the pool's chunks, in pool order
    stamps: Tuple                     # per chunk (size, mtime_ns) as listed, or None (nothing to check)
    chunk_sizes: Tuple[int, ...]
    items: np.ndarray                 # int64 catalog index of each pool position
    labels: np.ndarray                # int64 label of each pool position (-1: bad label)
    refs: Tuple[str, ...]             # readable reference of each pool position
    known_bad: Dict[int, str]         # pool position -> reason found at listing time
    store: Store                      # OUT
    build_id: str
    on_error: str = "fail"            # execution policy: raise on the first bad item, or skip it
    done: frozenset = frozenset()     # shard ids already finished
    label_kind: str = "class"         # what the items' labels are (mixbake.targets)

    @property
    def task_id(self) -> int:
        return self.pool.pool_id

    @property
    def rows(self) -> int:
        """Rows this pool makes when all its items are usable."""
        return len(self.items) * (self.pool.copies + int(self.pool.originals))


@dataclass
class ShardResult:
    shard_id: int
    path: str                         # relative to OUT (the manifest's name for the shard)
    rows: int
    bytes: int
    sha256: str
    op_counts: Dict[str, int]
    errors: List[List[str]] = field(default_factory=list)   # [reference, reason] of skipped items (a
    # pool's are recorded with its first shard; an item bad in every pass is listed once per pass)
    items: int = 0                    # source items in the pool (recorded with its first shard)


@dataclass
class PoolResult:
    task_id: int
    shards: List[ShardResult]         # the shards this run wrote (not those in task.done)


def make_tasks(config: BakeConfig, catalog: Catalog, out, build_id: str,
               on_error: str = "fail") -> List[PoolTask]:
    """One task per pool. ``out`` is a path/URI or a Store (tasks carry the Store, which pickles)."""
    return make_build(config, catalog, out, build_id, on_error)[1]


def make_build(config: BakeConfig, catalog: Catalog, out, build_id: str,
               on_error: str = "fail") -> Tuple[Pairing, List[PoolTask]]:
    """The pairing layout and one task per pool."""
    store = out if isinstance(out, Store) else Store.open(out or ".")
    check_pairable(config, catalog.labels, catalog.classes)
    bounds = np.asarray(catalog.chunk_bounds, dtype=np.int64)
    pairing, pools = make_layout(config, bounds)
    num_shards = sum(pool.shards for pool in pools)
    refs, locators = catalog.refs, catalog.chunk_locators
    tasks = []
    for pool in pools:
        chunks = pool.chunks
        starts, sizes = bounds[chunks], bounds[chunks + 1] - bounds[chunks]
        # the items of the pool's chunks, chunk after chunk: start of its chunk + offset within it
        items = np.arange(int(sizes.sum()), dtype=np.int64) + np.repeat(starts - (np.cumsum(sizes) - sizes), sizes)
        tasks.append(PoolTask(
            pool=pool, num_shards=num_shards, config=config, classes=catalog.classes,
            reader=catalog.reader, locators=tuple(locators[c] for c in chunks.tolist()),
            stamps=tuple(map(tuple, catalog.chunk_stamps[chunks].tolist())) if catalog.chunk_stamps is not None
            else (None,) * len(chunks),
            chunk_sizes=tuple(sizes.tolist()), items=items, labels=catalog.labels[items],
            refs=tuple(display_ref(refs[i]) for i in items.tolist()),
            known_bad={p: catalog.bad[i] for p, i in enumerate(items.tolist()) if i in catalog.bad}
            if catalog.bad else {},
            store=store, build_id=build_id, on_error=on_error, label_kind=catalog.label_kind,
        ))
    return pairing, tasks
