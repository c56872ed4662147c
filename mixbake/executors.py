"""Where shard tasks run: a local process pool (default) or a Dask cluster, through one
``concurrent.futures`` interface. Tasks are small and self-contained, and their output depends on
the task alone, so the executor never changes a byte of the result.

A lost worker does not lose data: finished shards are on disk with their sidecars, and unfinished
ones are retried (``retries`` times) on fresh workers. A bad input item (``ItemError``) is not
retried: it would fail the same way again.
"""
from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional

from .errors import ItemError, MixbakeError
from .worker import ShardResult, ShardTask, bake_shard, init_worker

log = logging.getLogger("mixbake")
EXECUTORS = ("local", "dask")


@dataclass(frozen=True)
class ExecutorSpec:
    kind: str = "local"               # local | dask
    workers: int = 1
    scheduler: Optional[str] = None   # tcp://host:port of a running Dask scheduler (implies dask)
    retries: int = 2


def execute(tasks: List[ShardTask], spec: ExecutorSpec, progress: Callable[[int], None]) -> Iterator[ShardResult]:
    """Yield results as shards finish; ``progress(rows)`` reports rows rendered so far."""
    if not tasks:
        return iter(())
    if spec.kind == "dask" or spec.scheduler:
        return _execute_dask(tasks, spec, progress)
    return _execute_local(tasks, spec, progress)


def _item_error(exc: ItemError) -> MixbakeError:
    return MixbakeError(f"Bad input item {exc.ref}: {exc.reason} (use --on-error skip to leave such items out).")


# ---------------------------------------------------------------- local process pool

class _WorkerLost(Exception):
    pass


def _execute_local(tasks, spec: ExecutorSpec, progress):
    remaining = {t.shard_id: t for t in tasks}
    for attempt in range(spec.retries + 1):
        try:
            for result in _local_round(list(remaining.values()), spec.workers, progress):
                del remaining[result.shard_id]
                yield result
            return
        except _WorkerLost:
            if attempt == spec.retries:
                raise MixbakeError(f"Worker processes kept dying ({spec.retries + 1} attempts; out of memory?): "
                                   f"{len(remaining)} shards unfinished. Re-run the same command to resume.") from None
            log.warning("a worker process died; retrying %d unfinished shards", len(remaining))


def _local_round(tasks, workers: int, progress):
    context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
    if os.name == "posix":
        context.set_forkserver_preload(["mixbake.worker"])
    rows_done = context.Value("q", 0)  # rows rendered by all workers: a smooth progress bar
    pool = cf.ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context,
                                  initializer=init_worker, initargs=(rows_done,))
    try:
        pending = {pool.submit(bake_shard, t) for t in tasks}
        while pending:
            finished, pending = cf.wait(pending, timeout=0.25, return_when=cf.FIRST_COMPLETED)
            progress(rows_done.value)
            for future in finished:
                yield future.result()
    except ItemError as exc:
        _stop(pool)
        raise _item_error(exc) from None
    except cf.process.BrokenProcessPool:
        _stop(pool)
        raise _WorkerLost() from None
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)


def _stop(pool: cf.ProcessPoolExecutor) -> None:
    # ProcessPoolExecutor has no terminate() before Python 3.14; waiting for running shards to finish
    # would make Ctrl-C and --on-error fail slow, and their temporaries are removed on the next run.
    for process in list(getattr(pool, "_processes", {}).values()):
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------- Dask

def _dask_client(spec: ExecutorSpec):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MixbakeError("The Dask executor needs the 'distributed' package: pip install 'mixbake[dask]'.") from None
    if spec.scheduler:
        _check_reachable(spec.scheduler)
        try:
            return Client(spec.scheduler, timeout=30), None
        except OSError as exc:
            raise MixbakeError(f"Cannot reach the Dask scheduler at {spec.scheduler}: {exc}.") from None
    logging.getLogger("distributed").setLevel(logging.ERROR)  # its lifecycle chatter is not ours to print
    cluster = LocalCluster(n_workers=spec.workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    return Client(cluster), cluster


def _check_reachable(address: str) -> None:
    """Fail in a second, not after the client's 30 s of retries, when nothing listens there."""
    import socket
    from urllib.parse import urlsplit
    parts = urlsplit(address if "://" in address else "tcp://" + address)
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or not parts.port:
        return
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=5).close()
    except OSError as exc:
        raise MixbakeError(f"Cannot reach the Dask scheduler at {address}: {exc.strerror or exc}.") from None


def _execute_dask(tasks, spec: ExecutorSpec, progress):
    client, cluster = _dask_client(spec)
    try:
        executor = client.get_executor(retries=spec.retries, pure=False)
        futures = [executor.submit(bake_shard, t) for t in tasks]
        rows = 0
        for future in cf.as_completed(futures):
            try:
                result = future.result()
            except ItemError as exc:
                for other in futures:
                    other.cancel()
                raise _item_error(exc) from None
            rows += result.rows
            progress(rows)
            yield result
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
