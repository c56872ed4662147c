"""Where shard tasks run: a local process pool (default) or a Dask cluster, through one
``concurrent.futures`` interface. Tasks are small and self-contained, and their output depends on
the task alone, so the executor never changes a byte of the result.

A lost worker does not lose data: finished shards are on disk with their sidecars, and unfinished
ones are retried (``retries`` times) on fresh workers. A bad input item (``ItemError``) is not
retried: it would fail the same way again.
"""
from __future__ import annotations

import concurrent.futures as cf
import itertools
import contextlib
import logging
import multiprocessing
import os
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional

from typing import TYPE_CHECKING

from .config import ERROR_POLICIES
from .errors import ItemError, MixbakeError, OptionsConflict

if TYPE_CHECKING:  # the worker module (numpy, OpenCV, pyarrow) is imported lazily: see Session
    from .tasks import PoolResult, PoolTask

log = logging.getLogger("mixbake")
EXECUTORS = ("local", "dask")


@dataclass(frozen=True)
class ExecutorSpec:
    kind: str = "local"               # local | dask
    workers: int = 1
    scheduler: Optional[str] = None   # tcp://host:port of a running Dask scheduler (implies dask)
    retries: int = 2


class Session:
    """Runs shard tasks for one bake. A local session starts its worker processes at once, so their
    start-up (a fresh interpreter importing numpy, pyarrow, OpenCV) overlaps the parent's own heavy
    imports, listing and planning instead of adding to them. This module imports nothing heavy, so
    the CLI can open a session before it imports the pipeline."""

    def __init__(self, spec: ExecutorSpec, fork: bool = False, preload: str = "mixbake.forkserver_preload"):
        self.spec = spec
        if spec.scheduler:
            _scheduler_parts(spec.scheduler)  # a malformed address fails before OUT is touched
        local = spec.kind == "local" and not spec.scheduler
        self._local = _LocalPool(spec.workers, fork=fork and can_fork_now(), preload=preload) if local else None

    def imap(self, fn: Callable, jobs) -> Iterator:
        """``fn(job)`` of every job, as each finishes (in any order), on the workers; jobs are made
        as they are submitted, a few per worker at a time. ``fn`` and the jobs must be picklable."""
        jobs = iter(jobs)
        if self._local is None:
            yield from _dask_imap(fn, jobs, self.spec)
            return
        pending: set = set()
        try:
            while True:
                while len(pending) < WINDOW * self.spec.workers:
                    job = next(jobs, None)
                    if job is None:
                        break
                    pending.add(self._local.pool.submit(fn, job))
                if not pending:
                    return
                done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        except cf.process.BrokenProcessPool:
            raise MixbakeError("A worker process died (out of memory?): re-run to try again.") from None

    def map(self, fn: Callable, items: list) -> list:
        """``[fn(item) for item in items]``, on the worker processes when they are already running
        (a forked pool: the parent's own set-up work, such as listing a folder's classes, is then
        shared by otherwise idle workers), else right here. ``fn`` must be picklable."""
        pool = self._local.pool if self._local is not None and self._local.forked else None
        if pool is None or len(items) < 2:
            return [fn(item) for item in items]
        try:
            return list(pool.map(fn, items, chunksize=max(1, len(items) // (4 * self.spec.workers))))
        except cf.process.BrokenProcessPool:  # a worker was lost: the bake itself retries on fresh ones
            return [fn(item) for item in items]

    def execute(self, tasks: List[PoolTask], progress: Callable[[int], None],
                finished: Callable[[PoolTask], Optional[PoolResult]] = lambda task: None
                ) -> Iterator[PoolResult]:
        """Yield results as tasks finish; ``progress(rows)`` reports rows rendered so far;
        ``finished(task)`` recognises a task that a lost worker completed before dying."""
        if not tasks:
            return iter(())
        if self._local is None:
            return _execute_dask(tasks, self.spec, progress)
        return self._execute_local(tasks, progress, finished)

    def _execute_local(self, tasks, progress, finished):
        """Tasks are submitted a few at a time (``_LocalPool.run``), as ``tasks`` makes them; those in
        flight when a worker died are retried on a fresh pool, then the rest follow."""
        tasks, retry = iter(tasks), []
        for attempt in range(self.spec.retries + 1):
            for task in list(retry) if attempt else ():
                done = finished(task)  # on disk, but its result died with the pool
                if done is not None:
                    retry.remove(task)
                    yield done
            in_flight: Dict[int, PoolTask] = {}
            try:
                yield from self._local.run(itertools.chain(retry, tasks), progress, in_flight)
                return
            except _WorkerLost:
                retry = list(in_flight.values())
                if attempt == self.spec.retries:
                    raise MixbakeError(
                        f"Worker processes kept dying ({self.spec.retries + 1} attempts): {len(retry)} pools of shards "
                        f"unfinished. Out of memory? (A script calling mixbake.bake() must guard it with "
                        f"if __name__ == '__main__'.) Re-run to resume.") from None
                log.warning("a worker process died; retrying %d unfinished pools of shards", len(retry))
                self._local = _LocalPool(self.spec.workers)

    def close(self, failed: bool = False) -> None:
        if self._local is not None:
            self._local.close(failed)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(failed=exc_type is not None)
        return False


def execution_spec(on_error: str, executor: Optional[str], scheduler: Optional[str],
                   workers: Optional[int]) -> ExecutorSpec:
    """The how-it-runs options, checked: one sentence for each mistake."""
    if on_error not in ERROR_POLICIES:
        raise MixbakeError(f"--on-error must be one of {', '.join(ERROR_POLICIES)}, got {on_error!r}.")
    if executor is not None and executor not in EXECUTORS:
        raise MixbakeError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}.")
    if scheduler and executor == "local":
        raise OptionsConflict("--scheduler runs on Dask; it cannot go with --executor local.")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise MixbakeError(f"workers must be a whole number >= 1 (or None: all cores), got {workers!r}.")
    kind = "dask" if scheduler else (executor or "local")
    return ExecutorSpec(kind=kind, workers=workers or default_workers(), scheduler=scheduler)


def _item_error(exc: ItemError) -> MixbakeError:
    return MixbakeError(f"Bad input item {exc.ref}: {exc.reason} (use --on-error skip to leave such items out).")


# ---------------------------------------------------------------- local process pool

class _WorkerLost(Exception):
    pass


def _warm() -> None:
    """A no-op task: submitting one per worker makes the pool start its processes now."""


def _run_task(task):
    from .worker import bake_pool
    return bake_pool(task)


def _init_worker(rows_done, unstarted=None, busy=None, workers=1, parent=None) -> None:
    from .worker_process import init_worker
    init_worker(rows_done, unstarted, busy, workers, parent)


def default_workers() -> int:
    """The cores this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def can_fork_now() -> bool:
    """Forking is the fastest start (the children inherit every import: ~10 ms instead of a
    forkserver's ~1 s), but only safe in a process that has no other thread yet: the CLI, just after
    its imports and before it touches any data."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


WINDOW = 3  # tasks submitted per worker at a time: enough that none waits for the parent


class _LocalPool:
    def __init__(self, workers: int, fork: bool = False, preload: str = "mixbake.forkserver_preload"):
        self.forked, self.workers = fork, workers
        if fork:
            context = multiprocessing.get_context("fork")
        else:
            context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
            if os.name == "posix":  # (the first forkserver of a process keeps its preload)
                context.set_forkserver_preload([preload])
        self.rows_done = context.Value("q", 0)  # rows rendered by all workers: a smooth progress bar
        # shard tasks no worker has started yet, and workers inside a shard: once every shard has
        # started, the last ones use the cores of the workers already done (worker.spare_cores)
        self.unstarted, self.busy = context.Value("q", 0), context.Value("q", 0)
        self.pool = cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker,
            initargs=(self.rows_done, self.unstarted, self.busy, workers, os.getpid()))
        self._starter = None
        if fork:
            self._start(workers)  # forks every worker now, before any thread exists
        else:
            # Starting a forkserver blocks until it has imported mixbake.worker: do it on a thread,
            # so the parent imports, lists and plans meanwhile.
            self._starter = threading.Thread(target=self._start, args=(workers,), daemon=True)
            self._starter.start()

    def _start(self, workers: int) -> None:
        try:
            for _ in range(workers):
                self.pool.submit(_warm)
        except RuntimeError:  # the pool was shut down before it started (a quick error): fine
            pass

    def run(self, tasks, progress, in_flight: dict):
        """Results of ``tasks`` as they finish, with at most ``WINDOW`` per worker submitted at a
        time (the rest are made only when there is room: the parent never holds every task);
        ``in_flight`` holds those submitted and unfinished (what a lost pool leaves to retry)."""
        tasks = iter(tasks)
        try:
            pending = set()
            with self.unstarted.get_lock():
                self.unstarted.value = 1  # "more to come": the last workers borrow no core yet
            more = self._fill(tasks, pending, in_flight)
            while pending:
                finished, pending = cf.wait(pending, timeout=0.25, return_when=cf.FIRST_COMPLETED)
                progress(self.rows_done.value)
                for future in finished:
                    result = future.result()
                    in_flight.pop(result.task_id, None)
                    yield result
                if more:
                    more = self._fill(tasks, pending, in_flight)
        except ItemError as exc:
            self.close(failed=True)
            raise _item_error(exc) from None
        except cf.process.BrokenProcessPool:
            self.close(failed=True)
            raise _WorkerLost() from None
        except BaseException:
            self.close(failed=True)
            raise

    def _fill(self, tasks, pending: set, in_flight: dict) -> bool:
        """Submit tasks until the window is full; False once ``tasks`` is exhausted."""
        while len(pending) < WINDOW * self.workers:
            task = next(tasks, None)
            if task is None:
                with self.unstarted.get_lock():
                    self.unstarted.value -= 1  # nothing more to come
                return False
            with self.unstarted.get_lock():
                self.unstarted.value += 1
            in_flight[task.task_id] = task
            pending.add(self.pool.submit(_run_task, task))
        return True

    def close(self, failed: bool = False) -> None:
        if self._starter is not None:
            # Let it finish spawning first. Else a failure during start-up raced it: a worker still
            # being spawned missed the terminate below (and the pool's own, once it saw a killed
            # worker), then the pool waited for it forever (Python 3.11's ProcessPoolExecutor adds
            # a worker to the set it terminates only once that worker has started).
            self._starter.join()
        if failed:
            # ProcessPoolExecutor has no terminate() before Python 3.14; waiting for running shards
            # would make Ctrl-C and --on-error fail slow; their temporaries go on the next run.
            # Killed workers never read the task queue again: if its pipe is full, the queue's
            # feeder thread blocks for good, and shutdown() would wait for it forever.
            call_queue = getattr(self.pool, "_call_queue", None)
            if call_queue is not None:
                call_queue.cancel_join_thread()
            for process in list((getattr(self.pool, "_processes", None) or {}).values()):
                process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)  # idempotent


# ---------------------------------------------------------------- Dask

def _require_distributed() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise MixbakeError("The Dask executor needs the 'distributed' package: pip install 'mixbake[dask]'.") from None


def _dask_client(spec: ExecutorSpec):
    from distributed import Client, LocalCluster
    if spec.scheduler:
        _check_reachable(spec.scheduler)
        try:
            return Client(spec.scheduler, timeout=30), None
        except OSError as exc:
            raise MixbakeError(f"Cannot reach the Dask scheduler at {spec.scheduler}: {exc}.") from None
        except ValueError as exc:  # distributed's own address parsing
            raise MixbakeError(f"--scheduler {spec.scheduler!r} is not a scheduler address like "
                               f"tcp://HOST:PORT ({exc}).") from None
    # silence_logs: the cluster's lifecycle chatter is not ours to print (distributed's own option)
    cluster = LocalCluster(n_workers=spec.workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster), cluster


def _scheduler_parts(address: str):
    """The parsed address, when it is a TCP one (tcp:// or tls://, or HOST:PORT), else None; an
    error naming the address when it is a malformed TCP one."""
    from urllib.parse import urlsplit
    parts = urlsplit(address if "://" in address else "tcp://" + address)
    if parts.scheme not in ("tcp", "tls"):
        return None  # inproc://, ucx://, ...: left to distributed
    try:
        if parts.hostname and parts.port:
            return parts
    except ValueError:  # a port that is not a number
        pass
    raise MixbakeError(f"--scheduler {address!r} is not a scheduler address like tcp://HOST:PORT.")


def _check_reachable(address: str) -> None:
    """Fail in a second, not after the client's 30 s of retries, when nothing listens there."""
    import socket
    parts = _scheduler_parts(address)
    if parts is None:
        return
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=5).close()
    except OSError as exc:
        raise MixbakeError(f"Cannot reach the Dask scheduler at {address}: {exc.strerror or exc}.") from None


def _execute_dask(tasks, spec: ExecutorSpec, progress):
    _require_distributed()  # first: importing it creates the loggers that are kept quiet below
    with _distributed_kept_quiet():
        client, cluster = _dask_client(spec)
        address = spec.scheduler or cluster.scheduler_address
        try:
            executor = client.get_executor(retries=spec.retries, pure=False)
            yield from _dask_window(executor, iter(tasks), spec.workers, client, address, progress)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _dask_imap(fn, jobs, spec: ExecutorSpec):
    """Session.imap on Dask: the jobs run where the data is, a few per worker at a time."""
    _require_distributed()
    with _distributed_kept_quiet():
        client, cluster = _dask_client(spec)
        address = spec.scheduler or cluster.scheduler_address
        try:
            executor = client.get_executor(retries=spec.retries, pure=False)
            futures = set()
            while True:
                while len(futures) < WINDOW * max(1, spec.workers):
                    job = next(jobs, None)
                    if job is None:
                        break
                    futures.add(executor.submit(fn, job))
                if not futures:
                    return
                done, futures = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    yield _dask_result(future, futures, client, address)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _dask_window(executor, tasks, workers: int, client, address: str, progress):
    """Results as tasks finish, a few tasks per worker submitted at a time (as the local pool
    does: the parent never holds every task, nor a future for each)."""
    futures, rows = set(), 0

    def fill() -> None:
        while len(futures) < WINDOW * max(1, workers):
            task = next(tasks, None)
            if task is None:
                return
            futures.add(executor.submit(_run_task, task))
    fill()
    while futures:
        done, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
        for future in done:
            futures.discard(future)
            result = _dask_result(future, futures, client, address)
            rows += sum(shard.rows for shard in result.shards)
            progress(rows)
            yield result
        fill()


def _dask_result(future, futures, client, address: str):
    """A finished task's result; one sentence when the task failed on a bad item or the scheduler was
    lost (the client then cancels every future: a bare CancelledError, or a CommClosedError (an
    OSError) from a result being gathered; an OSError of the task itself leaves the client running)."""
    try:
        return future.result()
    except ItemError as exc:
        for other in futures:
            other.cancel()
        raise _item_error(exc) from None
    except (cf.CancelledError, OSError) as exc:
        if isinstance(exc, OSError) and client.status == "running":
            raise
        raise MixbakeError(f"Lost the Dask scheduler at {address}: finished shards are kept; re-run the "
                           f"same command to resume.") from None


class _DropDistributed(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(("distributed", "tornado"))


@contextlib.contextmanager
def _distributed_kept_quiet():
    """While a bake runs on Dask, distributed's and tornado's log records are dropped from every
    handler (the root's, the ones distributed installs on its own loggers, and logging's last
    resort). A lost scheduler otherwise prints a page of reconnect attempts and tracebacks, and
    what they say reaches the user as one sentence (_dask_result); a task's own failure comes back
    as its future's exception. A filter on the handlers, installed for the bake only, leaves every
    logger's level as the program set it (distributed's own silence_logs exists for a LocalCluster
    only, not for a Client)."""
    quiet = _DropDistributed()
    loggers = [logging.root] + [logger for name, logger in list(logging.root.manager.loggerDict.items())
                                if name.startswith(("distributed", "tornado")) and isinstance(logger, logging.Logger)]
    handlers = {h for logger in loggers for h in logger.handlers} | ({logging.lastResort} - {None})
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)
