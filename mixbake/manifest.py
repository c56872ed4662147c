"""The output directory's bookkeeping: claiming OUT, resume checks, labels.parquet, manifest.json.

``manifest.json`` is written last and atomically: it is the commit marker of a finished build.
While a build is unfinished, ``OUT/.mixbake-build.json`` records which build owns the directory,
so a re-run of the same command resumes and a different one is refused.
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
CLAIM = ".mixbake-build.json"
DATA = "data"
OWN_FILES = (MANIFEST, LABELS, ERRORS, CLAIM, "README.md", ".manifest.json.tmp", ".labels.parquet.tmp")


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


def _foreign_entries(out: str) -> List[str]:
    """Entries of OUT that mixbake did not write."""
    foreign = []
    for name in sorted(os.listdir(out)):
        if name in OWN_FILES:
            continue
        if name == DATA and os.path.isdir(os.path.join(out, DATA)):
            foreign += [f"{DATA}/{n}" for n in sorted(os.listdir(os.path.join(out, DATA)))
                        if not _is_shard_name(n)]
            continue
        foreign.append(name)
    return foreign


def _is_shard_name(name: str) -> bool:
    """A shard (``train-*.parquet``) or one of its temporaries (``.train-*.parquet.<pid>.tmp``)."""
    if name.startswith(".") and name.endswith(".tmp"):
        return name.startswith(".train-") and ".parquet." in name
    return name.startswith("train-") and name.endswith(".parquet")


def claim_out(out: str, build_id: str, overwrite: bool) -> str:
    """Make OUT ours for ``build_id``. Returns 'new', 'resume' or 'complete'."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise MixbakeError(f"OUT {out!r} exists and is not a directory.")
    os.makedirs(out, exist_ok=True)
    foreign = _foreign_entries(out)
    if foreign:
        raise MixbakeError(f"OUT {out!r} holds files mixbake did not write ({', '.join(foreign[:3])}"
                           f"{', ...' if len(foreign) > 3 else ''}): choose an empty or new directory.")
    owner = _owner(out)
    if owner is not None and owner != build_id:
        if not overwrite:
            raise MixbakeError(f"OUT {out!r} holds a different build (another config, seed or source): "
                               f"use --overwrite to replace it, or choose another directory.")
        remove_own_files(out)
        owner = None
    if owner is None:
        write_json_atomic(os.path.join(out, CLAIM), {"build_id": build_id})
        return "new" if not os.path.isdir(os.path.join(out, DATA)) else "resume"
    if os.path.exists(os.path.join(out, MANIFEST)):
        return "complete"
    return "resume"


def _owner(out: str) -> Optional[str]:
    for name in (MANIFEST, CLAIM):
        path = os.path.join(out, name)
        if os.path.exists(path):
            return read_json(path).get("build_id")
    return None


def remove_own_files(out: str) -> None:
    """Remove only what mixbake writes (never a foreign file)."""
    for name in OWN_FILES:
        path = os.path.join(out, name)
        if os.path.isfile(path):
            os.remove(path)
    data = os.path.join(out, DATA)
    if os.path.isdir(data):
        for name in os.listdir(data):
            if _is_shard_name(name):
                os.remove(os.path.join(data, name))
        if not os.listdir(data):
            shutil.rmtree(data)


def remove_stale_temporaries(out: str) -> int:
    data = os.path.join(out, DATA)
    stale = [n for n in os.listdir(data)] if os.path.isdir(data) else []
    stale = [n for n in stale if n.startswith(".") and n.endswith(".tmp")]
    for name in stale:
        os.remove(os.path.join(data, name))
    return len(stale)


# ---------------------------------------------------------------- labels.parquet

def write_labels(out: str, shard_paths: Iterable[str], refs) -> dict:
    """Concatenate every shard's label columns (no image bytes), plus shard, row and source references."""
    path, tmp = os.path.join(out, LABELS), os.path.join(out, ".labels.parquet.tmp")
    writer, rows = None, 0
    try:
        for shard_id, rel in enumerate(shard_paths):
            table = _label_table(os.path.join(out, rel), shard_id, refs)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=max(1, table.num_rows))
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, path)
    from .worker import sha256_file
    return {"path": LABELS, "rows": rows, "bytes": os.path.getsize(path), "sha256": sha256_file(path)}


def _label_table(shard_path: str, shard_id: int, refs) -> pa.Table:
    pf = pq.ParquetFile(shard_path)
    columns = [n for n in pf.schema_arrow.names if n not in ("image", "height", "width", "channels")]
    table = pf.read(columns=columns)
    table = table.replace_schema_metadata(None)
    n = table.num_rows
    src_a = table.column("src_a").to_numpy(zero_copy_only=False)
    src_b = table.column("src_b")
    ref_b = [None if v is None else display_ref(refs[v]) for v in src_b.to_pylist()]
    table = table.add_column(0, "shard", pa.array(np.full(n, shard_id, dtype=np.int32)))
    table = table.add_column(1, "row", pa.array(np.arange(n, dtype=np.int64)))
    table = table.append_column("ref_a", pa.array([display_ref(refs[int(v)]) for v in src_a], pa.string()))
    return table.append_column("ref_b", pa.array(ref_b, pa.string()))


# ---------------------------------------------------------------- shard bookkeeping

def shard_footer(path: str) -> Optional[dict]:
    """The ``mixbake`` footer record of a finished shard, or None if it is unreadable."""
    try:
        metadata = pq.ParquetFile(path).schema_arrow.metadata or {}
        return json.loads(metadata[b"mixbake"])
    except (pa.ArrowException, OSError, KeyError, ValueError):
        return None


def op_counts(path: str, ops: Iterable[str]) -> Dict[str, int]:
    column = pq.read_table(path, columns=["op"]).column("op")
    counts = {str(v["values"]): int(v["counts"]) for v in pc.value_counts(column).to_pylist()}
    return {op: counts.get(op, 0) for op in ops}
