"""The units of work between the parent and its workers, and how a build is cut into them.

A :class:`PoolTask` is small and picklable: one pool of the plan (``plan.Pool``), the references of
its items, and where to write. A worker reads just those items, decodes each once, and writes the
pool's shards; it returns a :class:`PoolResult` of :class:`ShardResult` summaries, never pixels.
The output of a shard is a function of its task alone. This module imports no codec: planning,
verifying and inspecting a build never load OpenCV or libjpeg-turbo.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Tuple

import numpy as np

from .config import BakeConfig
from .plan import Layout, Pairing, Pool, check_pairable
from .sources import Catalog
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
    stamps: Tuple                     # per chunk its file's stamp key as listed, or None (nothing to check)
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
    targets: object = None            # label_kind "multi": the pool positions' class sets (sources.ItemSets)
    objects: object = None            # a detection source: the pool positions' boxes (sources.ItemObjects)

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


class BuildTasks:
    """The tasks of a build, made one at a time as they are iterated (``Layout``): the parent never
    holds every pool's items and references at once."""

    def __init__(self, config: BakeConfig, catalog: Catalog, store: Store, build_id: str, on_error: str):
        self.config, self.catalog, self.store, self.build_id, self.on_error = config, catalog, store, build_id, on_error
        self.layout = Layout(config, catalog.chunk_sizes())
        self.num_shards = self.layout.num_shards
        self.total_rows = self.layout.total_rows

    def __len__(self) -> int:
        return len(self.layout)

    def __iter__(self) -> Iterator[PoolTask]:
        return (self.task(pool) for pool in self.layout)

    def task(self, pool: Pool) -> PoolTask:
        catalog = self.catalog
        items, sizes = catalog.chunk_items(pool.chunks)
        stamps = catalog.chunk_stamps
        return PoolTask(
            pool=pool, num_shards=self.num_shards, config=self.config, classes=catalog.classes,
            reader=catalog.reader, locators=catalog.locators_of(pool.chunks),
            stamps=tuple(stamps[pool.chunks].tolist()) if stamps is not None
            else (None,) * len(pool.chunks),
            chunk_sizes=tuple(sizes.tolist()), items=items, labels=catalog.labels[items].astype(np.int64),
            refs=catalog.refs_of(items),
            known_bad={p: catalog.bad[i] for p, i in enumerate(items.tolist()) if i in catalog.bad}
            if catalog.bad else {},
            store=self.store, build_id=self.build_id, on_error=self.on_error, label_kind=catalog.label_kind,
            targets=catalog.targets.take(items) if catalog.targets is not None else None,
            objects=catalog.objects.take(items) if catalog.objects is not None else None,
        )


def make_tasks(config: BakeConfig, catalog: Catalog, out, build_id: str, on_error: str = "fail") -> BuildTasks:
    """One task per pool, made as iterated. ``out`` is a path/URI or a Store (tasks carry the
    Store, which pickles)."""
    return make_build(config, catalog, out, build_id, on_error)[1]


def make_build(config: BakeConfig, catalog: Catalog, out, build_id: str,
               on_error: str = "fail") -> Tuple[Pairing, BuildTasks]:
    """The pairing layout and the build's tasks (made as iterated)."""
    store = out if isinstance(out, Store) else Store.open(out or ".")
    config = config.for_catalog(catalog)
    check_pairable(config, catalog.labels, catalog.classes)
    tasks = BuildTasks(config, catalog, store, build_id, on_error)
    return tasks.layout.pairing, tasks
