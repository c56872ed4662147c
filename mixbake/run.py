"""Orchestration: source -> catalog -> tasks -> executor -> results -> labels.parquet + manifest.json."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import pyarrow as pa

from . import __version__, manifest
from .config import ERROR_POLICIES, OPS, BakeConfig, fingerprint
from .errors import MixbakeError
from .imaging import codec_versions
from .plan import check_pairable, make_pools
from .sources import Catalog, display_ref, open_source
from .storage import Store, Syncer
from .executors import EXECUTORS, ExecutorSpec, Session, default_workers
from .worker import ShardResult, ShardTask
from .words import count, human_bytes

log = logging.getLogger("mixbake")


@dataclass
class BakeSummary:
    out: str
    state: str            # baked | resumed | complete (nothing to do)
    rows: int
    shards: int
    bytes: int
    items: int
    skipped: int
    seconds: float
    op_counts: Dict[str, int]
    kept: int = 0         # shards an interrupted run of this build had finished (resumed)

    def line(self) -> str:
        if self.state == "complete":
            return f"{self.out} already holds this finished build ({self.rows} samples); nothing to do."
        rate = self.rows / self.seconds if self.seconds > 0 else float("inf")
        skipped = (f", {count(self.skipped, 'bad item')} skipped (see {self.out}/errors.jsonl)"
                   if self.skipped else "")
        verb = f"Resumed ({self.kept} of {count(self.shards, 'shard')} kept):" if self.state == "resumed" \
            else "Baked"
        return (f"{verb} {count(self.rows, 'sample')} from "
                f"{count(self.items, 'item')} into {count(self.shards, 'shard')} ({human_bytes(self.bytes)}) in "
                f"{self.seconds:.1f}s "
                f"({rate:.0f} samples/s){skipped} -> {self.out}")


def library_versions() -> dict:
    import numpy
    import pyarrow
    return {"mixbake": __version__, "numpy": numpy.__version__, "pyarrow": pyarrow.__version__,
            **codec_versions()}


def build_identity(config: BakeConfig, catalog: Catalog) -> dict:
    """Everything that decides the output bytes: a different identity means a different dataset."""
    return {
        "format_version": manifest.FORMAT_VERSION,
        "config": config.to_dict(),
        "source": {"kind": catalog.kind, "fingerprint": catalog.fingerprint, "options": catalog.options},
        "classes": list(catalog.classes),
        "libraries": library_versions(),
    }


def make_tasks(config: BakeConfig, catalog: Catalog, out, build_id: str,
               on_error: str = "fail") -> List[ShardTask]:
    """One task per pool. ``out`` is a path/URI or a Store (tasks carry the Store, which pickles)."""
    store = out if isinstance(out, Store) else Store.open(out or ".")
    check_pairable(config, catalog.labels, catalog.classes)
    pools = make_pools(config, catalog.chunk_bounds)
    bounds = np.asarray(catalog.chunk_bounds, dtype=np.int64)
    refs, locators = catalog.refs, catalog.chunk_locators
    tasks = []
    for shard_id, chunks in enumerate(pools):
        chunks = np.asarray(chunks, dtype=np.int64)
        starts, sizes = bounds[chunks], bounds[chunks + 1] - bounds[chunks]
        # the items of the pool's chunks, chunk after chunk: start of its chunk + offset within it
        items = np.arange(int(sizes.sum()), dtype=np.int64) + np.repeat(starts - (np.cumsum(sizes) - sizes), sizes)
        tasks.append(ShardTask(
            shard_id=shard_id, num_shards=len(pools), config=config, classes=catalog.classes,
            reader=catalog.reader, locators=tuple(locators[c] for c in chunks.tolist()),
            chunk_sizes=tuple(sizes.tolist()), items=items, labels=catalog.labels[items],
            refs=tuple(display_ref(refs[i]) for i in items.tolist()),
            known_bad={p: catalog.bad[i] for p, i in enumerate(items.tolist()) if i in catalog.bad}
            if catalog.bad else {},
            store=store, build_id=build_id, on_error=on_error,
        ))
    return tasks


def bake(source, out, *, workers: Optional[int] = None, quiet: bool = False, overwrite: bool = False,
         on_error: str = "fail", image_column: Optional[str] = None, label_column: Optional[str] = None,
         expect_fingerprint: Optional[str] = None, executor: str = "local", scheduler: Optional[str] = None,
         session: Optional[Session] = None, **options) -> BakeSummary:
    """Bake SOURCE into OUT. ``options`` are :class:`BakeConfig` fields (the CLI's bake options).

    ``workers``, ``quiet``, ``on_error`` ('fail' or 'skip'), ``executor`` ('local' or 'dask') and
    ``scheduler`` (a Dask scheduler address) only decide how the build runs, never what it produces.
    """
    started = time.monotonic()
    if on_error not in ERROR_POLICIES:
        raise MixbakeError(f"--on-error must be one of {', '.join(ERROR_POLICIES)}, got {on_error!r}.")
    if executor not in EXECUTORS:
        raise MixbakeError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}.")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise MixbakeError(f"workers must be a whole number >= 1 (or None: all cores), got {workers!r}.")
    config = options.pop("config", None) or BakeConfig.from_dict(options)
    if session is None:
        session = Session(ExecutorSpec(kind=executor, workers=workers or default_workers(), scheduler=scheduler))
    with session:
        catalog = open_source(source, image_column, label_column, map_each=session.map)
        for note in catalog.notes:
            log.warning(note)
        if expect_fingerprint is not None and catalog.fingerprint != expect_fingerprint:
            raise MixbakeError(f"Source {source!r} has changed since the manifest was written (its "
                               f"fingerprint differs), so the build cannot be reproduced bit for bit.")
        store = Store.open(out)
        _refuse_out_inside_source(store, catalog)
        identity = build_identity(config, catalog)
        build_id = fingerprint(identity)
        tasks = make_tasks(config, catalog, store, build_id, on_error)  # validates before OUT is touched
        state = manifest.claim_out(store, build_id, config.format, overwrite, identity)
        if state == "complete":
            manifest.finish_state(store)  # a run killed just after writing manifest.json left it behind
            done = manifest.read_json((store, manifest.MANIFEST))
            totals = done["totals"]
            return BakeSummary(store.display(), "complete", totals["rows"], len(done["shards"]),
                               totals["bytes"], totals["items"], totals["skipped"], 0.0, totals["ops"])
        manifest.remove_stale_temporaries(store)
        labels = manifest.LabelsWriter(store, len(tasks), catalog.classes)
        syncer = Syncer(store)

        def on_result(result: ShardResult) -> None:
            labels.add(result.shard_id)
            syncer.add(None if result.path.startswith(manifest.IMAGES + "#") else result.path)

        try:
            results, kept = run_tasks(tasks, session, quiet, on_result=on_result)
            _refuse_empty_build(results)
            syncer.finish()  # every shard durable before labels.parquet and the manifest commit them
            labels_entry = labels.close()
        except BaseException:
            syncer.close()
            labels.abort()
            raise
        manifest.remove_stale_temporaries(store)  # left by workers lost (and retried) during this run
    summary = finish(store, config, catalog, identity, build_id, results, labels_entry)
    summary.state, summary.kept = ("resumed" if kept else "baked"), kept
    summary.seconds = time.monotonic() - started
    return summary


def _refuse_empty_build(results: List[ShardResult]) -> None:
    """--on-error skip with every item bad would commit a build of zero rows that verifies: refuse."""
    if results and not any(r.rows for r in results):
        errors = [e for r in results for e in r.errors]
        example = f" (e.g. {errors[0][0]}: {errors[0][1]})" if errors else ""
        raise MixbakeError(f"Every one of the {sum(r.items for r in results)} source items is bad{example}, "
                           f"so there is nothing to bake.")


def _refuse_out_inside_source(store: Store, catalog: Catalog) -> None:
    """A folder source containing OUT would list this build's own images as a class next time."""
    root = getattr(catalog.reader, "store", None)
    if store.local and root is not None and root.local and catalog.kind == "folder":
        if os.path.commonpath([store.root, root.root]) == root.root:
            raise MixbakeError(f"OUT {store.root!r} is inside the source folder {root.root!r}: choose an OUT "
                               f"outside it (its images would be read as a class).")


def finished_result(task: ShardTask) -> Optional[ShardResult]:
    """A shard finished by an earlier run of the same build (its sidecar is its commit record), or None.

    Shards are not fsynced one by one (OUT is synced once, before the manifest), so after a power
    loss a sidecar may outlive its shard's data: on a local disk the shard is re-hashed against
    the sidecar before it is kept. (An object store's write is durable once complete: size check.)
    """
    recorded = manifest.read_sidecar(task.store, task.shard_id)
    if not recorded or recorded.pop("build", None) != task.build_id:
        return None
    result = ShardResult(**recorded)
    store = task.store
    try:
        if result.path.startswith(manifest.IMAGES + "#"):
            from .writers.folder import digest
            paths = manifest.read_sidecar_paths(store, task.shard_id)
            return result if digest(store, paths) == (result.bytes, result.sha256) else None
        if store.local:
            return result if store.digest(result.path) == (result.bytes, result.sha256) else None
        return result if store.exists(result.path) and store.size(result.path) == result.bytes else None
    except (OSError, pa.ArrowException):  # a file of the shard is missing or unreadable: bake it again
        return None


def run_tasks(tasks: List[ShardTask], session: Session, quiet: bool,
              on_result: Callable[[ShardResult], None] = lambda result: None) -> Tuple[List[ShardResult], int]:
    """Run the shards not finished by an earlier run; ``on_result(result)`` for every finished shard
    (also those an earlier run finished). Returns the results in shard order, and how many of them
    an earlier run had finished."""
    results: Dict[int, ShardResult] = {}
    for task in tasks:
        done = finished_result(task)
        if done is not None:
            results[task.shard_id] = done
            on_result(done)
    kept = len(results)
    pending = [t for t in tasks if t.shard_id not in results]
    rows_per_item = tasks[0].config.rows_per_item if tasks else 1
    total = sum(len(t.items) for t in tasks) * rows_per_item
    initial = sum(len(tasks[s].items) * rows_per_item for s in results)
    with _progress_bar(quiet, total=total, unit="sample", desc="baking", dynamic_ncols=True,
                       initial=initial) as bar:
        def progress(rows_in_workers: int) -> None:
            bar.n = min(total, initial + rows_in_workers)
            bar.refresh()

        for result in session.execute(pending, progress, finished_result):
            results[result.shard_id] = result
            on_result(result)
        progress(total)
    return [results[t.shard_id] for t in tasks], kept


class _NoBar:
    """--quiet: no bar, and no tqdm import (tqdm reads its version through importlib.metadata: 40 ms)."""
    n = 0

    def refresh(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _progress_bar(quiet: bool, **options):
    if quiet:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(**options)


def finish(store: Store, config, catalog, identity, build_id, results, labels: dict) -> BakeSummary:
    if config.format == "folder":
        manifest.write_labels_csv(store, catalog.classes)
    errors = [tuple(e) for r in results for e in r.errors]
    manifest.write_errors(store, errors)
    op_totals = {op: sum(r.op_counts.get(op, 0) for r in results) for op in OPS}
    totals = {"rows": sum(r.rows for r in results), "items": len(catalog), "skipped": len(errors),
              "bytes": sum(r.bytes for r in results), "ops": op_totals}
    doc = {
        "format_version": manifest.FORMAT_VERSION,
        "mixbake_version": identity["libraries"]["mixbake"],
        "build_id": build_id,
        "config": identity["config"],
        "seed": config.seed,
        "source": catalog.summary(),
        "classes": list(catalog.classes),
        "libraries": identity["libraries"],
        "totals": totals,
        "shards": [{"path": r.path, "rows": r.rows, "bytes": r.bytes, "sha256": r.sha256} for r in results],
        "labels": labels,
        "errors": {"count": len(errors), "path": manifest.ERRORS if errors else None},
    }
    manifest.write_json(store, manifest.MANIFEST, doc)
    manifest.finish_state(store)
    return BakeSummary(store.display(), "baked", totals["rows"], len(results), totals["bytes"], len(catalog),
                       len(errors), 0.0, op_totals)
