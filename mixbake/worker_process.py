"""One worker process: its set-up, the parent it dies with, the progress counter it feeds, and the
cores of finished workers it may borrow. Whatever runs in a worker (``worker.bake_pool``) uses these;
none of them changes a byte of what it computes.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Optional

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
    prepare_process()


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


def prepare_process() -> None:
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
    spare-core thread decodes (see :func:`spread`) stayed in its arena after their shard, +30-40 MB
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


def task_starts(step: int) -> None:
    if _pool_state is not None:
        unstarted, busy, _ = _pool_state
        if step > 0:
            with unstarted.get_lock():
                unstarted.value -= 1
        with busy.get_lock():
            busy.value += step


_THREADS = None
BATCH = 32  # items per batch: how often a shard looks for spare cores


def spread(fn, items: list) -> list:
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


def tick(rows: int) -> None:
    if _rows_done is not None:
        with _rows_done.get_lock():
            _rows_done.value += rows
