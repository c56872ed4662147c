"""``bake_pool(task) -> PoolResult``: read a pool, decode each item once, plan, mix, encode, and
write the pool's shards.

The output of a shard is a function of the task alone; workers send back a small summary, never pixels.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import pyarrow as pa

from . import arrow, imaging, ops
from .config import OPS, BakeConfig
from .errors import ItemError
from .plan import CUTMIX, CUTOUT, MIXUP, ORIGINAL, Pool, ShardPlan, plan_pool, shard_rows, take_rows
from .manifest import write_sidecar
from .writers import open_writer
from .writers.parquet import label_table, rows_per_group


@dataclass(frozen=True)
class ShardTask:
    """One pool: its items, and the shards it writes (``pool.shard_ids``; those in ``done`` were
    finished by an earlier run and are planned but not written again)."""
    pool: Pool
    num_shards: int                   # in the whole build (shard names say "-of-N")
    config: BakeConfig
    classes: Tuple[str, ...]
    reader: object                    # source reader: read_chunk(locator) -> iterable of payloads
    locators: Tuple                   # the pool's chunks, in pool order
    chunk_sizes: Tuple[int, ...]
    items: np.ndarray                 # int64 catalog index of each pool position
    labels: np.ndarray                # int64 label of each pool position (-1: bad label)
    refs: Tuple[str, ...]             # readable reference of each pool position
    known_bad: Dict[int, str]         # pool position -> reason found at listing time
    store: object                     # mixbake.store.Store of OUT
    build_id: str
    on_error: str = "fail"            # execution policy: raise on the first bad item, or skip it
    done: frozenset = frozenset()     # shard ids already finished

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


_rows_done = None  # shared counter for the parent's progress bar (None outside a local pool)
_pool_state = None  # (shards not started yet, workers inside a shard, workers) of a local pool


def init_worker(rows_done=None, unstarted=None, busy=None, workers: int = 1, parent: Optional[int] = None) -> None:
    """Local pool initializer: Ctrl-C is handled by the parent alone (it stops the workers; no
    traceback per worker), a shared row counter feeds the parent's progress bar, two more tell a
    worker when the others are done (see :func:`spare_cores`), and the worker ends with ``parent``."""
    import signal
    global _rows_done, _pool_state
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _rows_done = rows_done
    _pool_state = (unstarted, busy, workers) if unstarted is not None and workers > 1 else None
    if parent is not None:
        _exit_with(parent)
    _prepare_process()


def _exit_with(parent: int) -> None:
    """End this worker when the process that started the bake is gone. A parent killed outright
    (SIGKILL, the OOM killer) runs no clean-up: its workers, each holding an end of the task queue,
    would wait for tasks forever. A thread waits on a pidfd for the parent's exit (no pid reuse);
    where there is none (not Linux >= 5.3), it polls once a second."""
    import threading

    def wait_pidfd(fd: int) -> None:
        import select
        select.select([fd], [], [])
        os._exit(1)

    def poll() -> None:
        while _alive(parent):
            time.sleep(1.0)
        os._exit(1)

    try:
        fd = os.pidfd_open(parent)
        target, args = wait_pidfd, (fd,)
    except (AttributeError, OSError):  # no pidfd here; or the parent is already gone
        if not _alive(parent):
            os._exit(1)
        target, args = poll, ()
    threading.Thread(target=target, args=args, daemon=True, name="mixbake-parent-watch").start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


_prepared = False


def _prepare_process() -> None:
    """Once per worker process, whatever the executor: one cv2 thread per process (no
    oversubscription), and our own pixel guard instead of Pillow's (--max-pixels, checked first)."""
    global _prepared
    if not _prepared:
        import cv2
        import pyarrow as pa
        from PIL import Image
        cv2.setNumThreads(0)
        Image.MAX_IMAGE_PIXELS = None
        try:  # give freed Arrow buffers back to the OS at once: a worker's peak RSS is what matters
            pa.jemalloc_set_decay_ms(0)
        except (NotImplementedError, AttributeError):  # pyarrow built without jemalloc
            pass
        _one_malloc_arena()
        _prepared = True


def _one_malloc_arena() -> None:
    """glibc gives each thread its own malloc arena and keeps what is freed there: the images a
    spare-core thread decodes (see :func:`each`) stayed in its arena after their shard, +30-40 MB
    of peak RSS per worker. One arena for every thread of a worker (glibc only; else nothing)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL(None).mallopt(-8, 1)  # M_ARENA_MAX
        except (OSError, AttributeError):
            pass


def spare_cores() -> int:
    """Cores the other workers of the pool have left idle: none while a shard waits to start, then
    one per worker done. A build's last shards run on them too, so its end is not one worker
    finishing alone (with 2 workers ~0.3-0.4 s of a core idle per build)."""
    if _pool_state is None:
        return 0
    unstarted, busy, workers = _pool_state
    if unstarted.value > 0:
        return 0
    return max(0, workers - busy.value)


def _shard_starts(step: int) -> None:
    if _pool_state is not None:
        unstarted, busy, _ = _pool_state
        if step > 0:
            with unstarted.get_lock():
                unstarted.value -= 1
        with busy.get_lock():
            busy.value += step


_THREADS = None
BATCH = 32  # items per batch: how often a shard looks for spare cores


def each(fn, items: list) -> list:
    """``[fn(item) for item in items]``; split over threads when other workers' cores are idle.
    Every item is computed the same way whichever thread runs it: the result never changes."""
    parts = min(spare_cores() + 1, len(items))
    if parts < 2:
        return [fn(item) for item in items]
    global _THREADS
    if _THREADS is None:
        from concurrent.futures import ThreadPoolExecutor
        _THREADS = ThreadPoolExecutor(max_workers=_pool_state[2], thread_name_prefix="mixbake-spare")
    size = -(-len(items) // parts)
    chunks = _THREADS.map(lambda chunk: [fn(item) for item in chunk],
                          [items[i:i + size] for i in range(0, len(items), size)])
    return [result for chunk in chunks for result in chunk]


def _tick(rows: int) -> None:
    if _rows_done is not None:
        with _rows_done.get_lock():
            _rows_done.value += rows


def load_pool(task: ShardTask) -> Tuple[List[Optional[np.ndarray]], Dict[int, str]]:
    """Decode every pool item once, at output size. Returns the images and {position: reason} for bad ones."""
    config = task.config
    images: List[Optional[np.ndarray]] = [None] * len(task.items)
    bad = dict(task.known_bad)

    def decode(item):
        try:
            return imaging.load_image(item[1], config.size, config.resize, config.max_pixels)
        except imaging.DecodeError as exc:
            return exc

    def flush(batch):
        for (p, _), image in zip(batch, each(decode, batch)):
            if isinstance(image, Exception):
                bad[p] = str(image)
            else:
                images[p] = image
        batch.clear()

    batch, pos = [], 0
    for locator, n in zip(task.locators, task.chunk_sizes):
        for p, payload in _chunk_payloads(task.reader, locator, range(pos, pos + n), bad):
            if p not in bad:
                batch.append((p, payload))
                if len(batch) == BATCH:
                    flush(batch)
        pos += n
    flush(batch)
    if bad and task.on_error == "fail":
        first = min(bad, key=lambda p: task.items[p])  # the first bad item in catalog order
        raise ItemError(task.refs[first], bad[first])
    return images, bad


def _chunk_payloads(reader, locator, positions, bad: Dict[int, str]):
    """(position, payload) for a chunk; a chunk that cannot be read (or stops early) marks the rest
    of its items bad with the reason, instead of failing the whole shard."""
    import pyarrow as pa
    done = 0
    try:
        for payload in reader.read_chunk(locator):
            if done == len(positions):
                break
            yield positions[done], payload
            done += 1
        reason = "row missing from its row group"
    except (OSError, pa.ArrowException) as exc:
        reason = f"cannot read: {getattr(exc, 'strerror', None) or exc}"
    for p in positions[done:]:
        bad.setdefault(p, reason)


def render(config: BakeConfig, plan: ShardPlan, r: int, images) -> np.ndarray:
    """The pixels of planned row ``r``."""
    op, image_a = plan.op[r], images[plan.a[r]]
    if op == MIXUP:
        return ops.mixup(image_a, images[plan.b[r]], plan.lam[r])
    if op == CUTMIX:
        box = plan.boxes[r][0] if len(plan.boxes[r]) else (0, 0, 0, 0)
        return ops.cutmix(image_a, images[plan.b[r]], box)
    if op == CUTOUT:
        return ops.cutout(image_a, plan.boxes[r], config.cutout_fill, int(plan.fill_seed[r]))
    return image_a


def label_columns(task: ShardTask, plan: ShardPlan) -> dict:
    """Every non-pixel column of the shard, vectorised over the plan's rows."""
    has_b = plan.b >= 0
    label_a = task.labels[plan.a]
    label_b = np.where(has_b, task.labels[np.maximum(plan.b, 0)], -1)
    soft = ops.soft_labels(label_a, label_b, plan.lam, len(task.classes), task.config.label_smoothing)
    src_a = task.items[plan.a]
    return {
        "key": [_key(int(i), int(c)) for i, c in zip(src_a, plan.copy)],
        "label": np.argmax(soft, axis=1), "soft_label": soft,
        "op": [OPS[o] for o in plan.op], "lam": plan.lam,
        "src_a": src_a, "src_b": np.where(has_b, task.items[np.maximum(plan.b, 0)], -1),
        "label_a": label_a, "label_b": label_b, "boxes": list(plan.boxes),
    }


def bake_shard(task: ShardTask) -> PoolResult:
    _shard_starts(+1)
    try:
        return _bake_pool(task)
    finally:
        _shard_starts(-1)


def _bake_pool(task: ShardTask) -> PoolResult:
    _prepare_process()
    images, bad = load_pool(task)
    valid = np.array([p not in bad for p in range(len(task.items))], dtype=bool)
    plan = plan_pool(task.config, task.pool, task.labels, valid)
    errors = [[task.refs[p], reason] for p, reason in sorted(bad.items())]
    results = []
    for shard_id, rows in zip(task.pool.shard_ids, shard_rows(len(plan), task.pool.shards)):
        first = shard_id == task.pool.first_shard
        if shard_id not in task.done:
            results.append(_write_shard(task, shard_id, take_rows(plan, rows), images, errors if first else [],
                                        len(task.items) if first else 0))
    return PoolResult(task.task_id, results)


def _write_shard(task: ShardTask, shard_id: int, plan: ShardPlan, images, errors, items: int) -> ShardResult:
    config = task.config
    columns = label_columns(task, plan)
    footer = {"build": task.build_id, "shard": shard_id}
    step = rows_per_group(config)
    with open_writer(task.store, shard_id, task.num_shards, config, task.classes, footer) as writer:
        def encode(r: int) -> bytes:
            return imaging.encode(render(config, plan, r, images), config.image_format, config.quality)

        for start in range(0, len(plan), step):
            rows = range(start, min(start + step, len(plan)))
            encoded = []
            for first in range(rows.start, rows.stop, BATCH):
                batch = list(range(first, min(first + BATCH, rows.stop)))
                encoded.extend(each(encode, batch))
                _tick(len(batch))
            writer.write({name: values[rows.start:rows.stop] for name, values in columns.items()}, encoded)
    result = ShardResult(
        shard_id=shard_id, path=writer.relpath, rows=len(plan), bytes=writer.bytes,
        sha256=writer.sha256, op_counts={name: int(np.sum(plan.op == code)) for code, name in enumerate(OPS)},
        errors=errors, items=items,
    )
    write_sidecar(task.store, shard_id, labels_rows(task, shard_id, plan, columns),
                  dict(dataclasses.asdict(result), build=task.build_id))
    return result


def labels_rows(task: ShardTask, shard_id: int, plan: ShardPlan, columns: dict) -> pa.Table:
    """This shard's rows of labels.parquet: where each row is, its labels, and which source items it
    came from (made here, in parallel, so the parent only concatenates them)."""
    n = len(plan)
    refs = task.refs
    table = label_table(columns)
    table = table.add_column(0, "shard", arrow.numeric(np.full(n, shard_id), pa.int32()))
    table = table.add_column(1, "row", arrow.numeric(np.arange(n)))
    table = table.append_column("ref_a", arrow.strings([refs[p] for p in plan.a]))
    table = table.append_column("ref_b", arrow.strings([refs[p] if p >= 0 else None for p in plan.b]))
    if task.config.format == "folder":  # ... and where its image file is
        from .writers.folder import image_relpaths
        table = table.append_column("path", arrow.strings(
            image_relpaths(task.classes, task.config.image_format, columns["key"], columns["label"])))
    return table


def _key(item: int, copy: int) -> str:
    """Unique and stable: each item lives in exactly one pool, and its copies are numbered."""
    return f"{item:09d}_{'orig' if copy == ORIGINAL else f'c{copy}'}"
