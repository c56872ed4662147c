"""``mixbake verify OUT``: check a finished build against its manifest and the label invariants.

Every check appends a one-line problem; an empty list means the build holds. ``deep`` also lists the
source again, re-plans every pool and checks each row's provenance (op, sources, lam, boxes).
The rules a row is held to come from its op (``Op.check_row``) and its label kind
(``row_problems``); how a shard is read and digested, from its output format.
"""
from __future__ import annotations

from typing import List

import numpy as np

from . import card, formats, manifest, ops, targets
from .config import BakeConfig
from .errors import MixbakeError
from .columns import NAMES as LABEL_COLUMNS
from .formats.parquet import DATA
from .ops.boxes import boxes_inside
from .store import Store

TOLERANCE = 1e-5


def verify(out, deep: bool = False) -> List[str]:
    """Problems found in the build at ``out`` (a path or URI); empty when everything holds."""
    out = Store.open(out)
    doc = manifest.read_finished(out)
    problems: List[str] = list(_manifest_problems(doc))
    if problems:
        return problems
    _check_files(out, doc, problems)
    if not problems:
        _check_rows(out, doc, problems)
        _check_footers(out, doc, problems)
    if deep and not problems:
        _check_plan(out, doc, problems)
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


def _check_files(out: Store, doc: dict, problems: List[str]) -> None:
    fmt = formats.get(doc["config"].get("format"))
    for shard_id, entry in enumerate(doc["shards"]):
        paths = None
        if fmt.shard_kind == "files":
            paths = _shard_table(out, shard_id, ["path"])["path"]
            missing = [p for p in paths if not out.exists(p)]
            if missing:
                problems += [f"{p}: missing" for p in missing[:20]]
                continue
        _check_file(out, fmt, entry, problems, paths)
    _check_file(out, formats.get("parquet"), doc["labels"], problems)
    if fmt.name == "parquet":
        listed = {entry["path"] for entry in doc["shards"]}
        extra = sorted(f"{DATA}/{n}" for n in out.listdir(DATA) if f"{DATA}/{n}" not in listed)
        problems += [f"{name}: in data/ but not listed in the manifest" for name in extra]


def _check_file(out: Store, fmt, entry: dict, problems: List[str], paths=None) -> None:
    rel = entry["path"]
    what = f"images of {rel}" if paths is not None else rel
    if paths is None and not out.exists(rel):
        problems.append(f"{rel}: missing")
        return
    size, sha = fmt.digest(out, rel, paths)
    if size != entry["bytes"]:
        problems.append(f"{what}: {size} bytes, manifest says {entry['bytes']}")
    if sha != entry["sha256"]:
        problems.append(f"{what}: sha256 differs from the manifest (file changed or corrupt)")
    elif paths is None and fmt.rows(out, rel) not in (None, entry["rows"]):
        problems.append(f"{rel}: row count differs from the manifest")


def _check_rows(out: Store, doc: dict, problems: List[str]) -> None:
    config = config_of(doc)
    fmt = formats.get(config.format)
    num_classes = len(doc["classes"])
    kind = targets.get(doc.get("label_kind"))
    keys, total, op_totals = set(), 0, {}
    columns = list(LABEL_COLUMNS)
    for shard_id, entry in enumerate(doc["shards"]):
        in_labels = _shard_table(out, shard_id, columns)
        table = fmt.shard_labels(out, entry["path"], columns) or in_labels
        if in_labels != table:
            problems.append(f"labels.parquet: the rows of shard {shard_id} differ from {entry['path']}")
        for r in range(len(table["key"])):
            row = {name: table[name][r] for name in columns}
            problems += [f"{entry['path']} row {r}: {p}" for p in _row_problems(row, config, kind, num_classes)]
            if row["key"] in keys:
                problems.append(f"{entry['path']} row {r}: duplicate key {row['key']}")
            keys.add(row["key"])
            op_totals[row["op"]] = op_totals.get(row["op"], 0) + 1
        total += len(table["key"])
    if total != doc["totals"]["rows"] or total != doc["labels"]["rows"]:
        problems.append(f"rows: shards hold {total}, manifest totals say {doc['totals']['rows']}, "
                        f"labels.parquet {doc['labels']['rows']}")
    for op, count in doc["totals"]["ops"].items():
        if op_totals.get(op, 0) != count:
            problems.append(f"op {op}: shards hold {op_totals.get(op, 0)} rows, manifest says {count}")
    _check_totals(out, doc, problems)
    _check_accounting(out, doc, problems)


def _row_problems(row: dict, config: BakeConfig, kind, num_classes: int):
    width, height = config.size
    lam = row["lam"]
    broken = kind.malformed(row, num_classes)
    if broken:
        return [broken]
    found = list(kind.row_problems(row, num_classes, config.label_smoothing))
    if not 0.0 <= lam <= 1.0:
        found.append(f"lam {lam} outside [0, 1]")
    found += boxes_inside(row["boxes"], width, height)
    op = ops.BY_NAME.get(row["op"])
    if op is None:
        return found + [f"op {row['op']!r} is not one of {', '.join(ops.NAMES)}"]
    return found + list(op.check_row(row, lam, width, height))


def _check_totals(out: Store, doc: dict, problems: List[str]) -> None:
    totals = doc["totals"]
    shard_bytes = sum(entry["bytes"] for entry in doc["shards"])
    if totals["bytes"] != shard_bytes:
        problems.append(f"totals.bytes is {totals['bytes']}, the shards hold {shard_bytes}")
    errors = manifest.read_errors(out)
    if not totals["skipped"] == doc["errors"]["count"] == len(errors):
        problems.append(f"skipped items: totals say {totals['skipped']}, errors.count {doc['errors']['count']}, "
                        f"errors.jsonl lists {len(errors)}")


def _check_accounting(out: Store, doc: dict, problems: List[str]) -> None:
    """Every source item is a source of some row or a skipped item, and only once."""
    used = len(np.unique(manifest.read_labels(out, columns=["src_a"]).column("src_a").to_numpy()))
    items = doc["totals"]["items"]
    skipped = doc["totals"]["skipped"] - doc["source"].get("skipped_files", 0)  # (a file is not an item)
    if used + skipped != items:
        problems.append(f"items: {used} source items appear in the rows and {skipped} were skipped, but "
                        f"totals.items is {items} (items unaccounted for, or skips hidden)")


def _check_footers(out: Store, doc: dict, problems: List[str]) -> None:
    """The class names every reader maps labels with (the ClassLabel in each file's footer) are the
    manifest's, and each shard says it belongs to this build."""
    import json

    import pyarrow.parquet as pq
    files = [doc["labels"]["path"]]
    if formats.get(doc["config"].get("format")).name == "parquet":
        files += [entry["path"] for entry in doc["shards"]]
    for rel in files:
        with out.open_input(rel) as f:
            meta = pq.ParquetFile(f).schema_arrow.metadata or {}
        names = json.loads(meta.get(b"huggingface", b"{}")).get("info", {}).get("features", {}).get(
            "label", {}).get("names")
        if names != doc["classes"]:
            problems.append(f"{rel}: its ClassLabel names differ from the manifest's classes")
        build = json.loads(meta.get(b"mixbake", b"{}")).get("build")
        if rel != doc["labels"]["path"] and build != doc["build_id"]:
            problems.append(f"{rel}: its footer names build {build}, not the manifest's {doc['build_id']}")


def _check_plan(out: Store, doc: dict, problems: List[str]) -> None:
    """Re-list the source, re-plan each pool, and compare every row's provenance."""
    from .plan import plan_pool, shard_rows, take_rows
    from .sources import SourceOptions, open_source
    from .tasks import make_tasks

    source = doc["source"]
    # listed as --on-error skip would: a build that left an unreadable file out is checked, not refused
    # (the fingerprint covers the files left out, so one that changed since is still caught)
    catalog = open_source(source["uri"], SourceOptions.from_recorded(source.get("options")), on_error="skip")
    if catalog.fingerprint != source["fingerprint"]:
        problems.append(f"source {source['uri']}: changed since the build (fingerprint differs)")
        return
    if len(catalog) != doc["totals"]["items"]:
        problems.append(f"totals.items is {doc['totals']['items']}, the source lists {len(catalog)} items")
    config = config_of(doc)
    tasks = make_tasks(config, catalog, out, doc["build_id"])
    num_shards = tasks.num_shards
    fmt = formats.get(config.format)
    if [fmt.shard_relpath(s, num_shards) for s in range(num_shards)] != [s["path"] for s in doc["shards"]]:
        problems.append("the re-planned shards differ from the manifest's shards")
        return
    skipped = {ref for ref, _ in manifest.read_errors(out)}
    for task in tasks:
        valid = np.array([ref not in skipped for ref in task.refs], dtype=bool)
        plan = plan_pool(config, task.pool, task.labels, valid)
        for shard_id, rows in zip(task.pool.shard_ids, shard_rows(len(plan), task.pool.shards)):
            _check_provenance(out, doc, shard_id, task, take_rows(plan, rows), problems)


def _check_provenance(out: Store, doc: dict, shard_id: int, task, plan, problems: List[str]) -> None:
    t = _shard_table(out, shard_id, ["op", "src_a", "src_b", "lam", "boxes"])
    expected = {
        "op": [ops.NAMES[o] for o in plan.op],
        "src_a": task.items[plan.pos_a].tolist(),
        "src_b": [int(task.items[b]) if b >= 0 else None for b in plan.pos_b],
        "boxes": [bx.tolist() for bx in plan.boxes],
    }
    name = doc["shards"][shard_id]["path"]
    for column, values in expected.items():
        if t[column] != values:
            problems.append(f"{name}: column {column} differs from the re-planned provenance")
    if len(t["lam"]) != len(plan) or not np.allclose(np.asarray(t["lam"]), plan.lam.astype(np.float32),
                                                      atol=TOLERANCE):
        problems.append(f"{name}: column lam differs from the re-planned values")


def _shard_table(out: Store, shard_id: int, columns) -> dict:
    """A shard's rows of labels.parquet (whose sha256 was checked against the manifest)."""
    table = manifest.read_labels(out, columns=list(columns) + ["shard"], filters=[("shard", "=", shard_id)])
    return table.drop(["shard"]).to_pydict()
