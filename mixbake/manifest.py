"""The output directory's bookkeeping: claiming OUT, resume checks, labels.parquet, manifest.json.

``manifest.json`` is written last and atomically: it is the commit marker of a finished build.
While a build is unfinished, ``OUT/.mixbake/build.json`` records which build owns the directory,
so a re-run of the same command resumes and a different one is refused, and each finished shard
has a sidecar ``OUT/.mixbake/shards/shard-NNNNN.parquet``: its label rows, with the shard's result
(path, rows, bytes, sha256, skipped items) in the footer. A sidecar is written after its shard is in
place, so it is the shard's commit record; ``labels.parquet`` is the concatenation of the sidecars.
The ``.mixbake`` directory is removed once ``manifest.json`` is written.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Dict, Iterable, List, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import MixbakeError
from .sources import display_ref

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LABELS = "labels.parquet"
ERRORS = "errors.jsonl"
LABELS_CSV = "labels.csv"
STATE = ".mixbake"
CLAIM = os.path.join(STATE, "build.json")
DATA = "data"
IMAGES = "images"


def read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise MixbakeError(f"{path}: cannot read ({exc}).") from None


def write_json_atomic(path: str, obj) -> None:
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _is_own(name: str, fmt: Optional[str]) -> bool:
    """Is top-level entry ``name`` something a build of format ``fmt`` writes? (None: no build here.)"""
    if name == STATE or (name.startswith(".") and name.endswith(".tmp")):
        return True
    if fmt is None:
        return False
    return (name in (MANIFEST, LABELS, ERRORS, ".manifest.json.tmp", ".labels.parquet.tmp")
            or (fmt == "parquet" and name == DATA)
            or (fmt == "webdataset" and _is_tar_name(name))
            or (fmt == "folder" and name in (IMAGES, LABELS_CSV, ".labels.csv.tmp")))


def _foreign_entries(out: str, fmt: Optional[str]) -> List[str]:
    """Entries of OUT that mixbake did not write."""
    foreign = []
    for name in sorted(os.listdir(out)):
        if not _is_own(name, fmt):
            foreign.append(name)
        elif name == DATA and os.path.isdir(os.path.join(out, DATA)):
            foreign += [f"{DATA}/{n}" for n in sorted(os.listdir(os.path.join(out, DATA)))
                        if not _is_shard_name(n)]
    return foreign


def _is_shard_name(name: str) -> bool:
    """A Parquet shard (``train-*.parquet``) or one of its temporaries (``.train-*.parquet.<pid>.tmp``)."""
    if name.startswith(".") and name.endswith(".tmp"):
        return name.startswith(".train-") and ".parquet." in name
    return name.startswith("train-") and name.endswith(".parquet")


def _is_tar_name(name: str) -> bool:
    if name.startswith(".") and name.endswith(".tmp"):
        return name.startswith(".train-") and ".tar." in name
    return name.startswith("train-") and name.endswith(".tar")


def claim_out(out: str, build_id: str, fmt: str, overwrite: bool) -> str:
    """Make OUT ours for ``build_id``. Returns 'new', 'resume' or 'complete'."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise MixbakeError(f"OUT {out!r} exists and is not a directory.")
    os.makedirs(out, exist_ok=True)
    owner = _owner(out)
    owner_id, owner_format = owner if owner else (None, None)
    foreign = _foreign_entries(out, owner_format)
    if foreign:
        raise MixbakeError(f"OUT {out!r} holds files mixbake did not write ({', '.join(foreign[:3])}"
                           f"{', ...' if len(foreign) > 3 else ''}): choose an empty or new directory.")
    if owner_id is not None and owner_id != build_id:
        if overwrite or not _has_finished_work(out):
            # --overwrite, or an earlier attempt stopped before finishing any shard: nothing to protect
            remove_own_files(out, owner_format)
            owner_id = None
        else:
            raise MixbakeError(f"OUT {out!r} holds a different build (another config, seed or source): "
                               f"use --overwrite to replace it, or choose another directory.")
    if owner_id is None:
        os.makedirs(os.path.join(out, STATE), exist_ok=True)
        write_json_atomic(os.path.join(out, CLAIM), {"build_id": build_id, "format": fmt})
        return "new"
    if os.path.exists(os.path.join(out, MANIFEST)):
        return "complete"
    return "resume"


def _has_finished_work(out: str) -> bool:
    shards = os.path.join(out, STATE, "shards")
    return os.path.exists(os.path.join(out, MANIFEST)) or (os.path.isdir(shards) and bool(os.listdir(shards)))


def _owner(out: str):
    """(build id, format) of the build in OUT, from manifest.json or the claim; None if there is none."""
    path = os.path.join(out, MANIFEST)
    if os.path.exists(path):
        doc = read_json(path)
        return doc.get("build_id"), doc.get("config", {}).get("format", "parquet")
    path = os.path.join(out, CLAIM)
    if os.path.exists(path):
        doc = read_json(path)
        return doc.get("build_id"), doc.get("format", "parquet")
    return None


def remove_own_files(out: str, fmt: Optional[str]) -> None:
    """Remove only what a build of format ``fmt`` writes (never a foreign file)."""
    for name in os.listdir(out):
        if not _is_own(name, fmt) or name == DATA:
            continue
        path = os.path.join(out, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    data = os.path.join(out, DATA)
    if fmt == "parquet" and os.path.isdir(data):
        for name in os.listdir(data):
            if _is_shard_name(name):
                os.remove(os.path.join(data, name))
        if not os.listdir(data):
            os.rmdir(data)


def remove_stale_temporaries(out: str) -> int:
    """Temporaries of a killed run: dot-named ``*.tmp`` files in OUT, data/ and images/<class>/."""
    stale = []
    for dirpath, dirnames, filenames in os.walk(out):
        rel = os.path.relpath(dirpath, out)
        if rel != "." and rel.split(os.sep)[0] not in (DATA, IMAGES, STATE):
            dirnames[:] = []
            continue
        stale += [os.path.join(dirpath, n) for n in filenames if n.startswith(".") and n.endswith(".tmp")]
    for path in stale:
        os.remove(path)
    return len(stale)


def finish_state(out: str) -> None:
    """After manifest.json is in place the bookkeeping is no longer needed."""
    shutil.rmtree(os.path.join(out, STATE), ignore_errors=True)


# ---------------------------------------------------------------- per-shard sidecars

def sidecar_path(out: str, shard_id: int) -> str:
    return os.path.join(out, STATE, "shards", f"shard-{shard_id:05d}.parquet")


def write_sidecar(out: str, shard_id: int, table: pa.Table, result: dict) -> None:
    from .writers import commit, temporary_name
    path = sidecar_path(out, shard_id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = temporary_name(path)
    table = table.replace_schema_metadata({b"mixbake": json.dumps(result, sort_keys=True).encode()})
    pq.write_table(table, tmp, compression="zstd")
    commit(tmp, path)


def read_sidecar(out: str, shard_id: int) -> Optional[dict]:
    """The result recorded for a finished shard, or None (missing or unreadable: redo the shard)."""
    path = sidecar_path(out, shard_id)
    if not os.path.exists(path):
        return None
    try:
        return json.loads(pq.ParquetFile(path).schema_arrow.metadata[b"mixbake"])
    except (pa.ArrowException, OSError, KeyError, ValueError, TypeError):
        return None


# ---------------------------------------------------------------- labels.parquet

def write_labels(out: str, num_shards: int, refs, extra=None) -> dict:
    """Concatenate the shards' label rows (no image bytes), plus shard, row and source references.

    ``extra(shard_id, table) -> table`` may add format-specific columns (the folder format's paths).
    """
    path, tmp = os.path.join(out, LABELS), os.path.join(out, ".labels.parquet.tmp")
    writer, rows = None, 0
    try:
        for shard_id in range(num_shards):
            table = _label_table(sidecar_path(out, shard_id), shard_id, refs)
            if extra is not None:
                table = extra(shard_id, table)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=max(1, table.num_rows))
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    from .writers import commit, sha256_file
    commit(tmp, path)
    return {"path": LABELS, "rows": rows, "bytes": os.path.getsize(path), "sha256": sha256_file(path)}


def _label_table(sidecar: str, shard_id: int, refs) -> pa.Table:
    table = pq.read_table(sidecar).replace_schema_metadata(None)
    n = table.num_rows
    src_a = table.column("src_a").to_numpy(zero_copy_only=False)
    ref_b = [None if v is None else display_ref(refs[v]) for v in table.column("src_b").to_pylist()]
    table = table.add_column(0, "shard", pa.array(np.full(n, shard_id, dtype=np.int32)))
    table = table.add_column(1, "row", pa.array(np.arange(n, dtype=np.int64)))
    table = table.append_column("ref_a", pa.array([display_ref(refs[int(v)]) for v in src_a], pa.string()))
    return table.append_column("ref_b", pa.array(ref_b, pa.string()))




def write_labels_csv(out: str, classes) -> None:
    """labels.csv for people who just want files: one row per image, soft label as a JSON list."""
    import csv
    table = pq.read_table(os.path.join(out, LABELS))
    tmp, path = os.path.join(out, ".labels.csv.tmp"), os.path.join(out, LABELS_CSV)
    columns = ["path", "key", "label", "class", "op", "lam", "label_a", "label_b", "src_a", "src_b",
               "ref_a", "ref_b", "soft_label"]
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for row in table.to_pylist():
            row["class"] = classes[row["label"]]
            row["soft_label"] = json.dumps([round(v, 7) for v in row["soft_label"]])
            writer.writerow(["" if row[c] is None else row[c] for c in columns])
    os.replace(tmp, path)
