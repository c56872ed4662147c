"""Orchestration: source -> catalog -> tasks -> executor -> results -> labels.parquet + manifest.json."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pyarrow as pa

from . import __version__, formats, manifest, ops
from .config import BakeConfig, fingerprint, warn_inert, warn_inert_for_source
from .errors import DiskFull, MixbakeError, SourceChanged, StoreUnreachable
from .executors import Session, execution_spec
from .humanize import count, human_bytes
from .out_lock import OutLock
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
    skipped_files: int = 0  # of ``skipped``: whole source files left out at listing (not items)

    def line(self) -> str:
        if self.state == "complete":
            return f"{self.out} already holds this finished build ({self.rows} samples); nothing to do."
        rate = self.rows / self.seconds if self.seconds > 0 else float("inf")
        skipped = (f", {self._skipped()} skipped (see {self.out}/errors.jsonl)" if self.skipped else "")
        verb = f"Resumed ({self.kept} of {count(self.shards, 'shard')} kept):" if self.state == "resumed" \
            else "Baked"
        return (f"{verb} {count(self.rows, 'sample')} from "
                f"{count(self.items, 'item')} into {count(self.shards, 'shard')} ({human_bytes(self.bytes)}) in "
                f"{self.seconds:.1f}s "
                f"({rate:.0f} samples/s){skipped} -> {self.out}")

    def _skipped(self) -> str:
        """'3 bad items', '1 unreadable file', '3 bad items and 1 unreadable file'."""
        items, files = self.skipped - self.skipped_files, self.skipped_files
        parts = ([count(items, "bad item")] if items else []) + ([count(files, "unreadable file")] if files else [])
        return " and ".join(parts)


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


def output_format(config: BakeConfig, num_classes: int) -> int:
    """The format whose rules make this build: 1 unless it uses a rule of format 2 (format 2's
    pairing, or a sparse soft label), so that a config that baked before keeps its bytes."""
    if config.format_version == 1:
        return 1
    return 2 if pairing_format(config) == 2 or config.soft_form(num_classes) != "dense" \
        or config.label_kind != "class" or config.with_masks or config.with_boxes else 1


def build_identity(config: BakeConfig, catalog: Catalog) -> dict:
    """Everything that decides the output bytes: a different identity means a different dataset.
    ``format_version`` is that of the rules the build follows (a build that format 1 would lay out
    the same way stays format 1, and keeps its identity)."""
    version = output_format(config, len(catalog.classes))
    identity = {
        "format_version": version,
        "config": config.to_dict(),
        "source": {"kind": catalog.kind, "fingerprint": catalog.fingerprint, "options": catalog.options},
        "classes": list(catalog.classes),
        "libraries": library_versions(version),
    }
    if catalog.label_kind != "class":  # (only then: every class build keeps its identity)
        identity["label_kind"] = catalog.label_kind
    if catalog.has_masks:
        identity["masks"] = True
    if catalog.objects is not None:
        identity["boxes"] = True
    return identity


def bake(source, out, *, workers: Optional[int] = None, quiet: bool = False, overwrite: bool = False,
         wait: bool = False, on_error: str = "fail", expect_fingerprint: Optional[str] = None,
         executor: Optional[str] = None,
         scheduler: Optional[str] = None, session: Optional[Session] = None, config: Optional[BakeConfig] = None,
         explicit=None, source_options: Optional[SourceOptions] = None, **options) -> BakeSummary:
    """Bake SOURCE into OUT. ``options`` are :class:`BakeConfig` fields (the CLI's bake options) and
    :class:`SourceOptions` fields (``image_column``, ``label_column``); or give ``config`` and
    ``source_options`` whole (with ``explicit``: the option names the user gave, for the warnings
    about inert ones).

    ``workers``, ``quiet``, ``on_error`` ('fail' or 'skip'), ``executor`` ('local' or 'dask'),
    ``scheduler`` (a Dask scheduler address) and ``wait`` (for another bake into OUT to end, instead
    of refusing) only decide how the build runs, never what it produces.
    """
    started = time.monotonic()
    _return_freed_arrow_memory()
    source_options = source_options or SourceOptions.take(options)
    if config is None:
        explicit, config = set(options), BakeConfig.from_dict(options)
    spec = execution_spec(on_error, executor, scheduler, workers)
    warn_inert(config, explicit or ())
    with session or Session(spec) as running:
        try:
            summary = _bake(source, Store.open(out), config, source_options, running, quiet=quiet, wait=wait,
                            overwrite=overwrite, on_error=on_error, expect_fingerprint=expect_fingerprint,
                            explicit=explicit or ())
        except (OSError, StoreUnreachable) as exc:
            lost = unreachable(exc)  # (also a reply that was read outside the store's own methods)
            if lost is None:
                raise
            raise lost.resumable() from None
    summary.seconds = time.monotonic() - started
    return summary


def _return_freed_arrow_memory() -> None:
    """The parent reads every shard's label rows and appends them to labels.parquet: Arrow's
    allocator keeping what it freed for a while made its peak RSS grow with the build's throughput
    (~20 bytes per item at 300k items). Give freed buffers back at once, as the workers do."""
    import pyarrow as pa
    try:
        pa.jemalloc_set_decay_ms(0)
    except (NotImplementedError, AttributeError):  # pyarrow built without jemalloc
        pass


def _bake(source, store: Store, config: BakeConfig, source_options: SourceOptions, session: Session, *,
          quiet: bool, wait: bool, overwrite: bool, on_error: str, expect_fingerprint, explicit=()) -> BakeSummary:
    catalog = open_source(source, source_options, map_each=session.map, on_error=on_error)
    config = config.for_catalog(catalog)
    warn_inert_for_source(config, explicit)
    for note in catalog.notes:
        log.warning(note)
    if expect_fingerprint is not None and catalog.fingerprint != expect_fingerprint:
        raise MixbakeError(f"Source {redact(source)!r} has changed since the manifest was written (its "
                           f"fingerprint differs), so the build cannot be reproduced bit for bit.")
    _refuse_out_inside_source(store, catalog)
    identity = build_identity(config, catalog)
    build_id = fingerprint(identity)
    if manifest.finished_build_id(store) == build_id:  # a no-op re-run: nothing to plan
        with OutLock(store, wait):
            if manifest.finished_build_id(store) == build_id:
                return _complete(store)
    pairing, tasks = make_build(config, catalog, store, build_id, on_error)  # validates before OUT is touched
    _refuse_file_as_out(store)
    with OutLock(store, wait):  # one bake per OUT, from the claim to the commit
        state = manifest.claim_out(store, build_id, config.format, overwrite, identity, catalog.state)
        if state == "complete":
            return _complete(store)
        manifest.remove_stale_temporaries(store, config.format)
        results, labels_entry, kept = _run_and_collect(store, config, catalog, tasks, session, quiet)
        manifest.remove_stale_temporaries(store, config.format)  # left by workers lost (and retried) during this run
        _refuse_changed_source(source, source_options, catalog, session)
        with _space_named(store, manifest.MANIFEST):
            summary = write_manifest(store, config, catalog, identity, build_id, results, labels_entry, pairing)
    summary.state, summary.kept = ("resumed" if kept else "baked"), kept
    return summary


def _refuse_changed_source(source, source_options, catalog: Catalog, session: Session) -> None:
    """Before the commit, the source is listed again: a build of a source that changed while it was
    read would match neither the old source nor the new one."""
    if catalog.chunk_stamps is None:
        return
    again = open_source(source, source_options, map_each=session.map, on_error="skip")
    if again.state == catalog.state:
        return
    raise SourceChanged(_first_change(catalog, again), "found when the source was listed again before "
                                                       "the commit")


def _first_change(before: Catalog, after: Catalog) -> str:
    """The reference of the first item that differs between two listings (or the source itself)."""
    from .sources import display_ref
    if len(before) == len(after) and len(before.chunk_stamps) == len(after.chunk_stamps):
        differ = np.flatnonzero(before.chunk_stamps != after.chunk_stamps)
        if len(differ):
            return display_ref(before.refs[int(before.chunk_items(differ[:1])[0][0])])
    return f"the source {before.uri}"


def _refuse_file_as_out(store: Store) -> None:
    if store.local and store.exists() and not store.isdir():
        raise MixbakeError(f"OUT {store.display()!r} exists and is not a directory.")


def _complete(store: Store) -> BakeSummary:
    """OUT already holds this finished build."""
    manifest.finish_state(store)  # a run killed just after writing manifest.json left it behind
    done = manifest.read_json((store, manifest.MANIFEST))
    totals = done["totals"]
    return BakeSummary(store.display(), "complete", totals["rows"], len(done["shards"]),
                       totals["bytes"], totals["items"], totals["skipped"], 0.0, totals["ops"],
                       skipped_files=done["source"].get("skipped_files", 0))


def _run_and_collect(store: Store, config, catalog, tasks, session, quiet):
    """Run the tasks; labels.parquet and the durability of each shard follow as shards finish."""
    fmt = formats.get(config.format)
    labels = manifest.LabelsWriter(store, tasks.num_shards, catalog.classes)
    syncer = Syncer(store)

    def on_result(result: ShardResult) -> None:
        labels.add(result.shard_id)
        syncer.add(fmt.durable_path(result.path))

    try:
        with _space_named(store, manifest.LABELS):
            results, kept = run_tasks(tasks, session, quiet, on_result=on_result)
            _refuse_empty_build(results, len(catalog))
            syncer.finish()  # every shard durable before labels.parquet and the manifest commit them
            return results, labels.close(), kept
    except BaseException:
        syncer.close()
        labels.abort()
        raise


@contextlib.contextmanager
def _space_named(store: Store, rel: str):
    """A full disk while the parent writes ``rel`` (labels.parquet, the manifest) says so, naming it."""
    try:
        yield
    except OSError as exc:
        full = store.disk_full(rel, exc)
        if full is None:
            raise
        raise full from None


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


def run_tasks(tasks, session: Session, quiet: bool,
              on_result: Callable[[ShardResult], None] = lambda result: None) -> Tuple[List[ShardResult], int]:
    """Run the shards not finished by an earlier run; ``on_result(result)`` for every finished shard
    (also those an earlier run finished). Returns the results in shard order, and how many of them
    an earlier run had finished. Tasks are made and checked one at a time, as the executor asks."""
    results: Dict[int, ShardResult] = {}
    kept = [0, 0]  # shards an earlier run finished, and their rows
    total = tasks.total_rows
    with _progress_bar(quiet, total=total, unit="sample", desc="baking", dynamic_ncols=True) as bar:
        def progress(rows_in_workers: int) -> None:
            bar.n = min(total, kept[1] + rows_in_workers)
            bar.refresh()

        def keep(result: ShardResult) -> None:
            results[result.shard_id] = result
            kept[0], kept[1] = kept[0] + 1, kept[1] + result.rows
            on_result(result)

        try:
            for pool_result in session.execute(_pending(tasks, keep), progress, finished_task):
                for result in pool_result.shards:
                    results[result.shard_id] = result
                    on_result(result)
        except DiskFull as full:
            raise _with_estimate(full, results.values(), total) from None
        progress(total)
    return [results[s] for s in sorted(results)], kept[0]


def _with_estimate(full: DiskFull, done, total_rows: int) -> DiskFull:
    """The disk-full error, with what the rest of the build needs (from the shards written so far)."""
    rows = sum(r.rows for r in done)
    needed = int(sum(r.bytes for r in done) / rows * (total_rows - rows)) if rows else -1
    return DiskFull(full.where, full.free, needed)


def _pending(tasks, keep) -> Iterator[PoolTask]:
    """The tasks with shards still to write; ``keep(result)`` for each shard an earlier run finished."""
    fmt = formats.get(tasks.config.format)
    for task in tasks:
        done = {s: finished_shard(task.store, task.build_id, s, fmt) for s in task.pool.shard_ids}
        done = {s: r for s, r in done.items() if r is not None}
        for result in done.values():
            keep(result)
        if len(done) < task.pool.shards:
            yield dataclasses.replace(task, done=frozenset(done))


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
    """errors.jsonl, the format's last files (made from the manifest about to be written), then
    manifest.json: the commit of the build. errors.jsonl names the source files left out at listing
    first (their rows are not items: they could not be read), then the bad items."""
    item_errors = (tuple(e) for r in results for e in r.errors)
    errors = list(dict.fromkeys([*catalog.skipped_files, *item_errors]))  # once, not once per pass
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
    for key in ("label_kind", "masks", "boxes"):  # (none: one class per item, no masks, no boxes)
        if key in identity:
            doc[key] = identity[key]
    formats.get(config.format).finish(store, config, doc)
    manifest.write_json(store, manifest.MANIFEST, doc)
    manifest.finish_state(store)
    return BakeSummary(store.display(), "baked", totals["rows"], len(results), totals["bytes"], len(catalog),
                       len(errors), 0.0, op_totals, skipped_files=len(catalog.skipped_files))


def recorded_ops(config_dict: dict) -> List[str]:
    """The ops a build's totals count: those its config records (an op added later, left at its
    default share of 0, is not in a format-1 config, nor in its totals)."""
    return [name for name in ops.NAMES if name in config_dict]
