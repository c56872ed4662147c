"""``mixbake verify OUT``: check a finished build against its manifest and the label invariants.

Every check appends a one-line problem; an empty list means the build holds. ``deep`` also lists the
source again, re-plans every shard and checks each row's provenance (op, sources, lam, boxes).
"""
from __future__ import annotations

from typing import List

import numpy as np
import pyarrow.parquet as pq

from . import manifest
from .config import BakeConfig
from .store import Store
from .writers import shard_relpath

TOLERANCE = 1e-5


def verify(out, deep: bool = False) -> List[str]:
    """Problems found in the build at ``out`` (a path or URI); empty when everything holds."""
    out = Store.open(out)
    doc = manifest.read_finished(out)
    problems: List[str] = []
    listed = _check_files(out, doc, problems)
    if not problems:
        _check_rows(out, doc, listed, problems)
    if deep and not problems:
        _check_plan(out, doc, problems)
    return problems


def _check_files(out: Store, doc: dict, problems: List[str]) -> List[str]:
    listed = []
    for shard_id, entry in enumerate(doc["shards"]):
        if entry["path"].startswith(manifest.IMAGES + "#"):
            _check_folder_shard(out, shard_id, entry, problems)
        else:
            _check_file(out, entry, problems)
        listed.append(entry["path"])
    _check_file(out, doc["labels"], problems)
    listed.append(doc["labels"]["path"])
    extra = sorted(set(f"{manifest.DATA}/{n}" for n in out.listdir(manifest.DATA)) - set(listed))
    problems += [f"{name}: in data/ but not listed in the manifest" for name in extra]
    return listed


def _check_folder_shard(out: Store, shard_id: int, entry: dict, problems: List[str]) -> None:
    from .writers.folder import digest
    table = manifest.read_labels(out, columns=["path", "shard"], filters=[("shard", "=", shard_id)])
    relpaths = table.column("path").to_pylist()
    missing = [p for p in relpaths if not out.exists(p)]
    if missing:
        problems += [f"{p}: missing" for p in missing[:20]]
        return
    total, sha = digest(out, relpaths)
    if (total, sha) != (entry["bytes"], entry["sha256"]):
        problems.append(f"images of shard {shard_id}: bytes or sha256 differ from the manifest")


def _check_file(out: Store, entry: dict, problems: List[str]) -> None:
    rel = entry["path"]
    if not out.exists(rel):
        problems.append(f"{rel}: missing")
        return
    size, sha = out.digest(rel)
    if size != entry["bytes"]:
        problems.append(f"{rel}: {size} bytes, manifest says {entry['bytes']}")
    if sha != entry["sha256"]:
        problems.append(f"{rel}: sha256 differs from the manifest (file changed or corrupt)")
    elif rel.endswith(".parquet"):
        with out.open_input(rel) as f:
            if pq.ParquetFile(f).metadata.num_rows != entry["rows"]:
                problems.append(f"{rel}: row count differs from the manifest")


def _check_rows(out: Store, doc: dict, listed: List[str], problems: List[str]) -> None:
    config = config_of(doc)
    num_classes = len(doc["classes"])
    width, height = config.size
    keys, total, op_totals = set(), 0, {}
    columns = ["key", "label", "soft_label", "op", "lam", "src_a", "src_b", "label_a", "label_b", "boxes"]
    for entry_index, entry in enumerate(doc["shards"]):
        table = _shard_labels(out, doc, entry_index, columns)
        in_labels = manifest.read_labels(out, columns=columns + ["shard"],
                                         filters=[("shard", "=", entry_index)]).drop(["shard"]).to_pydict()
        if in_labels != table:
            problems.append(f"labels.parquet: the rows of shard {entry_index} differ from {entry['path']}")
        for r in range(len(table["key"])):
            where = f"{entry['path']} row {r}"
            for problem in _row_problems(table, r, config, num_classes, width, height):
                problems.append(f"{where}: {problem}")
            if table["key"][r] in keys:
                problems.append(f"{where}: duplicate key {table['key'][r]}")
            keys.add(table["key"][r])
            op_totals[table["op"][r]] = op_totals.get(table["op"][r], 0) + 1
        total += len(table["key"])
    if total != doc["totals"]["rows"] or total != doc["labels"]["rows"]:
        problems.append(f"rows: shards hold {total}, manifest totals say {doc['totals']['rows']}, "
                        f"labels.parquet {doc['labels']['rows']}")
    for op, count in doc["totals"]["ops"].items():
        if op_totals.get(op, 0) != count:
            problems.append(f"op {op}: shards hold {op_totals.get(op, 0)} rows, manifest says {count}")
    _check_totals(out, doc, problems)


def _check_totals(out: Store, doc: dict, problems: List[str]) -> None:
    totals = doc["totals"]
    shard_bytes = sum(entry["bytes"] for entry in doc["shards"])
    if totals["bytes"] != shard_bytes:
        problems.append(f"totals.bytes is {totals['bytes']}, the shards hold {shard_bytes}")
    errors = manifest.read_errors(out)
    if not totals["skipped"] == doc["errors"]["count"] == len(errors):
        problems.append(f"skipped items: totals say {totals['skipped']}, errors.count {doc['errors']['count']}, "
                        f"errors.jsonl lists {len(errors)}")


def _row_problems(t: dict, r: int, config: BakeConfig, num_classes: int, width: int, height: int):
    soft = np.asarray(t["soft_label"][r], dtype=np.float64)
    lam = t["lam"][r]
    if len(soft) != num_classes:
        yield f"soft_label has {len(soft)} entries for {num_classes} classes"
        return
    if abs(soft.sum() - 1.0) > TOLERANCE:
        yield f"soft_label sums to {soft.sum():.6f}"
    if t["label"][r] != int(np.argmax(soft)):
        yield f"label {t['label'][r]} is not the argmax of soft_label ({int(np.argmax(soft))})"
    if not 0.0 <= lam <= 1.0:
        yield f"lam {lam} outside [0, 1]"
    expected = np.zeros(num_classes)
    expected[t["label_a"][r]] += lam
    expected[t["label_b"][r] if t["label_b"][r] is not None else t["label_a"][r]] += 1.0 - lam
    eps = config.label_smoothing
    expected = expected * (1 - eps) + eps / num_classes
    if np.abs(expected - soft).max() > TOLERANCE:
        yield "soft_label differs from lam*onehot(label_a) + (1-lam)*onehot(label_b)"
    for box in t["boxes"][r]:
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            yield f"box {box} is empty or outside the {width}x{height} image"
    if t["op"][r] == "cutmix" and t["boxes"][r]:
        x0, y0, x1, y1 = t["boxes"][r][0]
        if abs((1.0 - (x1 - x0) * (y1 - y0) / (width * height)) - lam) > TOLERANCE:
            yield "cutmix lam is not 1 - pasted box area / image area"


def _check_plan(out: Store, doc: dict, problems: List[str]) -> None:
    """Re-list the source, re-plan each shard, and compare every row's provenance."""
    from .plan import plan_pool, shard_rows, take_rows
    from .run import make_tasks
    from .sources import open_source

    source = doc["source"]
    options = source.get("options") or {}
    catalog = open_source(source["uri"], options.get("image_column"), options.get("label_column"))
    if catalog.fingerprint != source["fingerprint"]:
        problems.append(f"source {source['uri']}: changed since the build (fingerprint differs)")
        return
    if len(catalog) != doc["totals"]["items"]:
        problems.append(f"totals.items is {doc['totals']['items']}, the source lists {len(catalog)} items")
    config = config_of(doc)
    tasks = make_tasks(config, catalog, out, doc["build_id"])
    num_shards = tasks[-1].num_shards if tasks else 0
    if [shard_relpath(config.format, s, num_shards) for s in range(num_shards)] != [s["path"] for s in doc["shards"]]:
        problems.append("the re-planned shards differ from the manifest's shards")
        return
    skipped = {ref for ref, _ in manifest.read_errors(out)}
    for task in tasks:
        valid = np.array([ref not in skipped for ref in task.refs], dtype=bool)
        plan = plan_pool(config, task.pool, task.labels, valid)
        for shard_id, rows in zip(task.pool.shard_ids, shard_rows(len(plan), task.pool.shards)):
            _check_provenance(out, doc, shard_id, task, take_rows(plan, rows), problems)


def _check_provenance(out: Store, doc: dict, shard_id: int, task, plan, problems: List[str]) -> None:
    from .config import OPS
    t = _shard_labels(out, doc, shard_id, ["op", "src_a", "src_b", "lam", "boxes"])
    expected = {
        "op": [OPS[o] for o in plan.op],
        "src_a": task.items[plan.a].tolist(),
        "src_b": [int(task.items[b]) if b >= 0 else None for b in plan.b],
        "boxes": [bx.tolist() for bx in plan.boxes],
    }
    name = doc["shards"][shard_id]["path"]
    for column, values in expected.items():
        if t[column] != values:
            problems.append(f"{name}: column {column} differs from the re-planned provenance")
    if len(t["lam"]) != len(plan) or not np.allclose(np.asarray(t["lam"]), plan.lam.astype(np.float32),
                                                      atol=TOLERANCE):
        problems.append(f"{name}: column lam differs from the re-planned values")


def config_of(doc: dict) -> BakeConfig:
    """The config of a finished build, with the format its rules followed."""
    return BakeConfig.from_dict({**doc["config"], "format_version": doc.get("format_version", 1)})


def _shard_labels(out: Store, doc: dict, shard_id: int, columns) -> dict:
    """A shard's label columns: from the Parquet shard itself (what trainers read), else from
    labels.parquet (whose sha256 was checked against the manifest)."""
    rel = doc["shards"][shard_id]["path"]
    if rel.endswith(".parquet"):
        with out.open_input(rel) as f:
            return pq.read_table(f, columns=columns).to_pydict()
    table = manifest.read_labels(out, columns=columns + ["shard"], filters=[("shard", "=", shard_id)])
    return table.drop(["shard"]).to_pydict()
