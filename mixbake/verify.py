"""``mixbake verify OUT``: check a finished build against its manifest and the label invariants.

Every check appends a one-line problem; an empty list means the build holds. ``deep`` also lists the
source again, re-plans every pool and checks each row's provenance (op, sources, lam, boxes).

The parent checks the manifest against itself and labels.parquet, then reads labels.parquet once, a
row group at a time, and hands each shard's rows to a worker (``verify_worker``), which digests the
shard and checks its rows all at once; the parent only adds up counts. So a verify runs on as many
processes as a bake (``--workers``, or on Dask where the data is), in memory that does not grow with
the build, and in O(rows + non-zeros) whatever the number of classes.
"""
from __future__ import annotations

from typing import Iterator, List, Optional

import numpy as np
import pyarrow as pa

from . import card, formats, manifest
from .config import BakeConfig
from .errors import MixbakeError
from .formats.parquet import DATA
from .store import Store
from .verify_worker import ShardPart, VerifyJob, check, footer_problems

SMALL = 4  # shards: a build of so few is verified in this process (workers would cost more)


def verify(out, deep: bool = False, workers: Optional[int] = None, executor: Optional[str] = None,
           scheduler: Optional[str] = None) -> List[str]:
    """Problems found in the build at ``out`` (a path or URI); empty when everything holds.
    ``workers`` (default: all cores), ``executor``, ``scheduler``: where the shards are checked."""
    out = Store.open(out)
    doc = manifest.read_finished(out)
    problems: List[str] = list(_manifest_problems(doc))
    if problems:
        return problems
    problems += _labels_file_problems(out, doc)
    if not problems:  # (the rows of labels.parquet are read only once its bytes are the manifest's)
        problems += footer_problems(out, doc["labels"]["path"], list(doc["classes"]), None)
        problems += _check_shards(out, doc, deep, workers, executor, scheduler)
    # the card is checked against the manifest alone: its problems hold no other check back
    problems += card.problems(out, formats.get(doc["config"].get("format")), config_of(doc), doc)
    return problems


def _manifest_problems(doc: dict):
    """The manifest checked against itself: its build id is the hash of what it says decided the
    bytes (format, config, source, classes, libraries), so an edit to any of them shows."""
    from .config import fingerprint
    keys = ("format_version", "config", "source", "classes", "libraries", "build_id", "seed", "totals", "shards")
    missing = [k for k in keys if k not in doc]
    if missing:
        yield f"manifest.json: {', '.join(missing)} missing"
        return
    identity = {"format_version": doc["format_version"], "config": doc["config"],
                "source": {k: doc["source"].get(k) for k in ("kind", "fingerprint", "options")},
                "classes": doc["classes"], "libraries": doc["libraries"]}
    for key in ("label_kind", "masks", "boxes"):
        if key in doc:
            identity[key] = doc[key]
    if fingerprint(identity) != doc["build_id"]:
        yield ("manifest.json: build_id is not the hash of the format, config, source, classes and libraries "
               "it records (one of them, or the build id, was edited)")
    if doc["seed"] != doc["config"].get("seed"):
        yield f"manifest.json: seed {doc['seed']} differs from config.seed {doc['config'].get('seed')}"
    try:
        config_of(doc)
    except MixbakeError as exc:
        yield f"manifest.json: its config is not a valid one ({exc})"


def config_of(doc: dict) -> BakeConfig:
    """The config of a finished build, with the format its rules followed."""
    return BakeConfig.of_manifest(doc)


def _labels_file_problems(out: Store, doc: dict) -> List[str]:
    """labels.parquet as stored (its bytes, rows and footer), and no stray file in data/: what the
    per-shard checks then read their rows from."""
    entry, problems = doc["labels"], []
    if not out.exists(entry["path"]):
        return [f"{entry['path']}: missing"]
    size, sha = out.digest(entry["path"])
    if size != entry["bytes"]:
        problems.append(f"{entry['path']}: {size} bytes, manifest says {entry['bytes']}")
    if sha != entry["sha256"]:
        problems.append(f"{entry['path']}: sha256 differs from the manifest (file changed or corrupt)")
    if formats.get(doc["config"].get("format")).name == "parquet":
        listed = {e["path"] for e in doc["shards"]}
        problems += [f"{DATA}/{n}: in data/ but not listed in the manifest" for n in out.listdir(DATA)
                     if f"{DATA}/{n}" not in listed]
    return problems


def _check_shards(out: Store, doc: dict, deep: bool, workers, executor, scheduler) -> List[str]:
    """Every shard checked by a worker; the totals, keys and accounting added up here."""
    config, problems = config_of(doc), []
    jobs = _deep_jobs(out, doc, config, problems) if deep else _plain_jobs(out, doc, config)
    if jobs is None:
        return problems
    tally = _Tally(doc, config)
    with _session(doc, workers, executor, scheduler) as session:
        results = session.imap(check, jobs) if session is not None else map(check, jobs)
        for checks in results:
            for shard in checks:
                tally.add(shard)
    return problems + tally.problems(out)


def _session(doc: dict, workers, executor, scheduler):
    """Worker processes for a build of more than a few shards (else this process: a null context)."""
    import contextlib

    from .executors import Session, execution_spec
    spec = execution_spec("fail", executor, scheduler, workers)
    if (spec.workers < 2 or len(doc["shards"]) <= SMALL) and spec.kind == "local":
        return contextlib.nullcontext()
    return Session(spec, fork=True, preload="mixbake.verify_worker")  # (forked when this process may)


class _Tally:
    """What the shards' checks add up to: rows, ops, keys baked twice, items accounted for."""

    def __init__(self, doc: dict, config: BakeConfig):
        self.doc, self.slots = doc, config.copies + 1
        self.rows, self.ops, self.found = 0, {}, []
        self.seen = np.zeros(doc["totals"]["items"] * self.slots + 1, dtype=bool)
        self.twice = 0

    def add(self, shard) -> None:
        self.found += shard.problems
        self.rows += shard.rows
        for op, n in shard.op_counts.items():
            self.ops[op] = self.ops.get(op, 0) + n
        codes = shard.codes[(shard.codes >= 0) & (shard.codes < len(self.seen) - 1)]
        self.twice += int(self.seen[codes].sum()) + len(codes) - len(np.unique(codes))
        self.seen[codes] = True

    def problems(self, out: Store) -> List[str]:
        doc, found = self.doc, sorted(self.found, key=_shard_order(self.doc))
        if self.twice:
            found.append(f"keys: {self.twice} rows repeat a (source item, copy) another row already has")
        if self.rows != doc["totals"]["rows"] or self.rows != doc["labels"]["rows"]:
            found.append(f"rows: shards hold {self.rows}, manifest totals say {doc['totals']['rows']}, "
                         f"labels.parquet {doc['labels']['rows']}")
        for op, count in doc["totals"]["ops"].items():
            if self.ops.get(op, 0) != count:
                found.append(f"op {op}: shards hold {self.ops.get(op, 0)} rows, manifest says {count}")
        _check_totals(out, doc, found)
        used = int(self.seen[:-1].reshape(-1, self.slots).any(axis=1).sum()) if self.slots else 0
        items = doc["totals"]["items"]
        skipped = doc["totals"]["skipped"] - doc["source"].get("skipped_files", 0)  # (a file is not an item)
        if used + skipped != items:
            found.append(f"items: {used} source items appear in the rows and {skipped} were skipped, but "
                         f"totals.items is {items} (items unaccounted for, or skips hidden)")
        return found


def _shard_order(doc: dict):
    """Problems in manifest order of the files they name (they arrive in whatever order workers end)."""
    place = {entry["path"]: k for k, entry in enumerate(doc["shards"])}
    return lambda problem: (place.get(problem.split(" ", 1)[0].rstrip(":"), len(place)), problem)


def _plain_jobs(out: Store, doc: dict, config: BakeConfig) -> Iterator[VerifyJob]:
    for shard_id, labels in _labels_by_shard(out, doc, config):
        yield VerifyJob(out, config, tuple(doc["classes"]), doc["build_id"],
                        [ShardPart.of(shard_id, doc["shards"][shard_id], labels)])


def _labels_by_shard(out: Store, doc: dict, config: BakeConfig) -> Iterator:
    """(shard id, its rows of labels.parquet) of every shard in order, labels.parquet read once, a
    row group at a time."""
    import pyarrow.parquet as pq
    columns = ["shard", *(f.name for f in config.label_fields(len(doc["classes"]))), "ref_a", "ref_b"]
    if formats.get(config.format).shard_kind == "files":
        columns.append("path")
    pending, next_shard = [], 0
    with out.open_input(doc["labels"]["path"]) as f:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=65536, columns=columns, use_threads=False):
            shard = batch.column(0).to_numpy()
            cuts = np.flatnonzero(np.diff(shard)) + 1
            for lo, hi in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(shard)]])):
                sid = int(shard[lo])
                if sid != next_shard and pending:
                    yield from _flush(pending, next_shard)
                    pending, next_shard = [], next_shard + 1
                while next_shard < sid:  # shards with no row at all
                    yield next_shard, _empty(batch.schema)
                    next_shard += 1
                pending.append(batch.slice(lo, hi - lo))
    if pending:
        yield from _flush(pending, next_shard)
        next_shard += 1
    schema = pa.schema([pa.field(c, pa.null()) for c in columns])
    for sid in range(next_shard, len(doc["shards"])):
        yield sid, _empty(schema)


def _flush(batches, shard_id: int):
    yield shard_id, pa.Table.from_batches(batches).combine_chunks()


def _empty(schema) -> pa.Table:
    return pa.Table.from_batches([], schema=schema)


def _deep_jobs(out: Store, doc: dict, config: BakeConfig, problems: List[str]):
    """Jobs that re-plan each pool from the source listed again, with its shards' rows; None (and a
    problem) when the source is no longer the one the build read."""
    from .sources import SourceOptions, open_source
    from .tasks import make_tasks

    source = doc["source"]
    # listed as --on-error skip would: a build that left an unreadable file out is checked, not refused
    # (the fingerprint covers the files left out, so one that changed since is still caught)
    catalog = open_source(source["uri"], SourceOptions.from_recorded(source.get("options")), on_error="skip")
    if catalog.fingerprint != source["fingerprint"]:
        problems.append(f"source {source['uri']}: changed since the build (fingerprint differs)")
        return None
    if len(catalog) != doc["totals"]["items"]:
        problems.append(f"totals.items is {doc['totals']['items']}, the source lists {len(catalog)} items")
    tasks = make_tasks(config, catalog, out, doc["build_id"])
    fmt = formats.get(config.format)
    if [fmt.shard_relpath(s, tasks.num_shards) for s in range(tasks.num_shards)] != [s["path"] for s in doc["shards"]]:
        problems.append("the re-planned shards differ from the manifest's shards")
        return None
    return _pool_jobs(out, doc, config, tasks, {ref for ref, _ in manifest.read_errors(out)})


def _pool_jobs(out: Store, doc: dict, config: BakeConfig, tasks, skipped) -> Iterator[VerifyJob]:
    labels = _labels_by_shard(out, doc, config)
    for task in tasks:
        parts = [ShardPart.of(shard_id, doc["shards"][shard_id], table)
                 for shard_id, table in (next(labels) for _ in task.pool.shard_ids)]
        valid = np.array([ref not in skipped for ref in task.refs], dtype=bool)
        yield VerifyJob(out, config, tuple(doc["classes"]), doc["build_id"], parts, task=task, valid=valid)


def _check_totals(out: Store, doc: dict, problems: List[str]) -> None:
    totals = doc["totals"]
    shard_bytes = sum(entry["bytes"] for entry in doc["shards"])
    if totals["bytes"] != shard_bytes:
        problems.append(f"totals.bytes is {totals['bytes']}, the shards hold {shard_bytes}")
    errors = manifest.read_errors(out)
    if not totals["skipped"] == doc["errors"]["count"] == len(errors):
        problems.append(f"skipped items: totals say {totals['skipped']}, errors.count {doc['errors']['count']}, "
                        f"errors.jsonl lists {len(errors)}")
