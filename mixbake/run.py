"""Orchestration: source -> catalog -> tasks -> executor -> results -> labels.parquet + manifest.json."""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import pyarrow as pa

from . import __version__, formats, manifest, ops
from .config import BakeConfig, fingerprint, warn_inert
from .errors import MixbakeError, StoreUnreachable
from .executors import Session, execution_spec
from .humanize import count, human_bytes
from .plan import Pairing, pairing_format
from .sources import Catalog, SourceOptions, open_source
from .store import Store, redact
from .store.arrowfs import unreachable
from .store.durable import Syncer
from .tasks import PoolResult, PoolTask, ShardResult, make_build

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


# Format-1 identities hashed the mixbake release among the libraries; every one was 0.1.0, the release
# that defined format 1. Format-1 builds keep hashing it, so they keep their build id (it is in every
# shard's footer) and their bytes whatever release bakes them; later formats hash no mixbake version.
FORMAT1_MIXBAKE = "0.1.0"


def library_versions(format_version: int = 1) -> dict:
    """The versions of the libraries whose code decides the output bytes."""
    import numpy
    import pyarrow

    from .imaging import codec_versions
    own = {"mixbake": FORMAT1_MIXBAKE} if format_version == 1 else {}
    return {**own, "numpy": numpy.__version__, "pyarrow": pyarrow.__version__, **codec_versions()}


def build_identity(config: BakeConfig, catalog: Catalog) -> dict:
    """Everything that decides the output bytes: a different identity means a different dataset.
    ``format_version`` is that of the rules the build follows (a build that format 1 would lay out
    the same way stays format 1, and keeps its identity)."""
    version = pairing_format(config)
    return {
        "format_version": version,
        "config": config.to_dict(),
        "source": {"kind": catalog.kind, "fingerprint": catalog.fingerprint, "options": catalog.options},
        "classes": list(catalog.classes),
        "libraries": library_versions(version),
    }


def bake(source, out, *, workers: Optional[int] = None, quiet: bool = False, overwrite: bool = False,
         on_error: str = "fail", expect_fingerprint: Optional[str] = None, executor: Optional[str] = None,
         scheduler: Optional[str] = None, session: Optional[Session] = None, config: Optional[BakeConfig] = None,
         explicit=None, source_options: Optional[SourceOptions] = None, **options) -> BakeSummary:
    """Bake SOURCE into OUT. ``options`` are :class:`BakeConfig` fields (the CLI's bake options) and
    :class:`SourceOptions` fields (``image_column``, ``label_column``); or give ``config`` and
    ``source_options`` whole (with ``explicit``: the option names the user gave, for the warnings
    about inert ones).

    ``workers``, ``quiet``, ``on_error`` ('fail' or 'skip'), ``executor`` ('local' or 'dask') and
    ``scheduler`` (a Dask scheduler address) only decide how the build runs, never what it produces.
    """
    started = time.monotonic()
    source_options = source_options or SourceOptions.take(options)
    if config is None:
        explicit, config = set(options), BakeConfig.from_dict(options)
    spec = execution_spec(on_error, executor, scheduler, workers)
    warn_inert(config, explicit or ())
    with session or Session(spec) as running:
        try:
            summary = _bake(source, Store.open(out), config, source_options, running, quiet=quiet,
                            overwrite=overwrite, on_error=on_error, expect_fingerprint=expect_fingerprint)
        except (OSError, StoreUnreachable) as exc:
            lost = unreachable(exc)  # (also a reply that was read outside the store's own methods)
            if lost is None:
                raise
            raise lost.resumable() from None
    summary.seconds = time.monotonic() - started
    return summary


def _bake(source, store: Store, config: BakeConfig, source_options: SourceOptions, session: Session, *,
          quiet: bool, overwrite: bool, on_error: str, expect_fingerprint) -> BakeSummary:
    catalog = open_source(source, source_options, map_each=session.map)
    for note in catalog.notes:
        log.warning(note)
    if expect_fingerprint is not None and catalog.fingerprint != expect_fingerprint:
        raise MixbakeError(f"Source {redact(source)!r} has changed since the manifest was written (its "
                           f"fingerprint differs), so the build cannot be reproduced bit for bit.")
    _refuse_out_inside_source(store, catalog)
    identity = build_identity(config, catalog)
    build_id = fingerprint(identity)
    pairing, tasks = make_build(config, catalog, store, build_id, on_error)  # validates before OUT is touched
    state = manifest.claim_out(store, build_id, config.format, overwrite, identity)
    if state == "complete":
        return _complete(store)
    manifest.remove_stale_temporaries(store, config.format)
    results, labels_entry, kept = _run_and_collect(store, config, catalog, tasks, session, quiet)
    manifest.remove_stale_temporaries(store, config.format)  # left by workers lost (and retried) during this run
    summary = write_manifest(store, config, catalog, identity, build_id, results, labels_entry, pairing)
    summary.state, summary.kept = ("resumed" if kept else "baked"), kept
    return summary


def _complete(store: Store) -> BakeSummary:
    """OUT already holds this finished build."""
    manifest.finish_state(store)  # a run killed just after writing manifest.json left it behind
    done = manifest.read_json((store, manifest.MANIFEST))
    totals = done["totals"]
    return BakeSummary(store.display(), "complete", totals["rows"], len(done["shards"]),
                       totals["bytes"], totals["items"], totals["skipped"], 0.0, totals["ops"])


def _run_and_collect(store: Store, config, catalog, tasks, session, quiet):
    """Run the tasks; labels.parquet and the durability of each shard follow as shards finish."""
    fmt = formats.get(config.format)
    labels = manifest.LabelsWriter(store, tasks[-1].num_shards if tasks else 0, catalog.classes)
    syncer = Syncer(store)

    def on_result(result: ShardResult) -> None:
        labels.add(result.shard_id)
        syncer.add(fmt.durable_path(result.path))

    try:
        results, kept = run_tasks(tasks, session, quiet, on_result=on_result)
        _refuse_empty_build(results, len(catalog))
        syncer.finish()  # every shard durable before labels.parquet and the manifest commit them
        return results, labels.close(), kept
    except BaseException:
        syncer.close()
        labels.abort()
        raise


def _refuse_empty_build(results: List[ShardResult], items: int) -> None:
    """--on-error skip with every item bad would commit a build of zero rows that verifies: refuse."""
    if results and not any(r.rows for r in results):
        errors = [e for r in results for e in r.errors]
        example = f" (e.g. {errors[0][0]}: {errors[0][1]})" if errors else ""
        raise MixbakeError(f"Every one of the {items} source items is bad{example}, "
                           f"so there is nothing to bake.")


def _refuse_out_inside_source(store: Store, catalog: Catalog) -> None:
    """A folder source containing OUT would list this build's own images as a class next time."""
    root = getattr(catalog.reader, "store", None)
    if store.local and root is not None and root.local and catalog.kind == "folder":
        if os.path.commonpath([store.root, root.root]) == root.root:
            raise MixbakeError(f"OUT {store.root!r} is inside the source folder {root.root!r}: choose an OUT "
                               f"outside it (its images would be read as a class).")


def finished_shard(store: Store, build_id: str, shard_id: int, fmt) -> Optional[ShardResult]:
    """A shard finished by an earlier run of the same build (its sidecar is its commit record), or None.

    Shards are not fsynced one by one (OUT is synced once, before the manifest), so after a power
    loss a sidecar may outlive its shard's data: on a local disk the shard is re-hashed against
    the sidecar before it is kept. (An object store's write is durable once complete: size check.)
    """
    recorded = manifest.read_sidecar(store, shard_id)
    if not recorded or recorded.pop("build", None) != build_id:
        return None
    result = ShardResult(**recorded)
    try:
        if fmt.shard_kind == "files":
            paths = manifest.read_sidecar_paths(store, shard_id)
            return result if fmt.digest(store, result.path, paths) == (result.bytes, result.sha256) else None
        if store.local:
            return result if fmt.digest(store, result.path) == (result.bytes, result.sha256) else None
        return result if store.exists(result.path) and store.size(result.path) == result.bytes else None
    except (OSError, pa.ArrowException):  # a file of the shard is missing or unreadable: bake it again
        return None


def finished_task(task: PoolTask) -> Optional[PoolResult]:
    """Every shard of a pool, finished (by a worker lost before it could report, or an earlier run)."""
    fmt = formats.get(task.config.format)
    shards = [finished_shard(task.store, task.build_id, s, fmt) for s in task.pool.shard_ids]
    return PoolResult(task.task_id, shards) if all(shards) else None


def run_tasks(tasks: List[PoolTask], session: Session, quiet: bool,
              on_result: Callable[[ShardResult], None] = lambda result: None) -> Tuple[List[ShardResult], int]:
    """Run the shards not finished by an earlier run; ``on_result(result)`` for every finished shard
    (also those an earlier run finished). Returns the results in shard order, and how many of them
    an earlier run had finished."""
    results, pending = _earlier_results(tasks, on_result)
    kept = len(results)
    initial = sum(r.rows for r in results.values())
    # planned rows of the shards still to write (a pool's rows, less those of its finished shards)
    total = initial + sum(t.rows - sum(results[s].rows for s in t.done) for t in pending)
    with _progress_bar(quiet, total=total, unit="sample", desc="baking", dynamic_ncols=True,
                       initial=initial) as bar:
        def progress(rows_in_workers: int) -> None:
            bar.n = min(total, initial + rows_in_workers)
            bar.refresh()

        for pool_result in session.execute(pending, progress, finished_task):
            for result in pool_result.shards:
                results[result.shard_id] = result
                on_result(result)
        progress(total)
    return [results[s] for s in sorted(results)], kept


def _earlier_results(tasks: List[PoolTask], on_result) -> Tuple[Dict[int, ShardResult], List[PoolTask]]:
    """The shards an earlier run finished, and the tasks with shards still to write."""
    results: Dict[int, ShardResult] = {}
    pending = []
    fmt = formats.get(tasks[0].config.format) if tasks else None
    for task in tasks:
        done = {s: finished_shard(task.store, task.build_id, s, fmt) for s in task.pool.shard_ids}
        done = {s: r for s, r in done.items() if r is not None}
        for result in done.values():
            results[result.shard_id] = result
            on_result(result)
        if len(done) < task.pool.shards:
            pending.append(dataclasses.replace(task, done=frozenset(done)))
    return results, pending


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


def write_manifest(store: Store, config, catalog, identity, build_id, results, labels: dict,
                   pairing: Pairing) -> BakeSummary:
    """The format's last files, errors.jsonl, then manifest.json: the commit of the build."""
    formats.get(config.format).finish(store, catalog.classes)
    errors = list(dict.fromkeys(tuple(e) for r in results for e in r.errors))  # once, not once per pass
    manifest.write_errors(store, errors)
    op_totals = {op: sum(r.op_counts.get(op, 0) for r in results) for op in recorded_ops(identity["config"])}
    totals = {"rows": sum(r.rows for r in results), "items": len(catalog), "skipped": len(errors),
              "bytes": sum(r.bytes for r in results), "ops": op_totals}
    doc = {
        "format_version": identity["format_version"],
        "mixbake_version": __version__,
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
    if pairing.format_version > 1:  # a format-1 manifest has none: its pairing is implied
        doc["pairing"] = pairing.to_dict()
    manifest.write_json(store, manifest.MANIFEST, doc)
    manifest.finish_state(store)
    return BakeSummary(store.display(), "baked", totals["rows"], len(results), totals["bytes"], len(catalog),
                       len(errors), 0.0, op_totals)


def recorded_ops(config_dict: dict) -> List[str]:
    """The ops a build's totals count: those its config records (an op added later, left at its
    default share of 0, is not in a format-1 config, nor in its totals)."""
    return [name for name in ops.NAMES if name in config_dict]
