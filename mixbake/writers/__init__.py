"""Shard writers, one per output format. Each is a context manager::

    with open_writer(out, task_shard_id, num_shards, config, classes, footer) as w:
        w.write(columns, images)      # one call per row group: label columns + encoded images
    w.relpath, w.bytes, w.sha256      # what the manifest lists, known after a clean exit

A shard appears under its final name only on a clean exit (temporary + rename); on an exception the
temporary is removed. ``columns`` holds row-aligned arrays: key, label, soft_label, op, lam, src_a,
src_b, label_a, label_b, boxes (see ``worker.label_columns``).
"""
from __future__ import annotations

import hashlib
import os


def shard_relpath(fmt: str, shard_id: int, num_shards: int) -> str:
    """Where shard ``shard_id`` lives inside OUT (the one file-name rule per format)."""
    if fmt == "parquet":
        return f"data/train-{shard_id:05d}-of-{num_shards:05d}.parquet"
    if fmt == "webdataset":
        return f"train-{shard_id:06d}.tar"
    if fmt == "folder":
        return f"images#{shard_id:05d}"  # a folder shard is a set of files under images/
    raise ValueError(f"unknown format {fmt!r}")


def open_writer(out: str, shard_id: int, num_shards: int, config, classes, footer: dict):
    relpath = shard_relpath(config.format, shard_id, num_shards)
    if config.format == "parquet":
        from .parquet import ShardWriter
        return ShardWriter(out, relpath, config, classes, footer)
    if config.format == "webdataset":
        from .webdataset import TarShardWriter
        return TarShardWriter(out, relpath, config, classes, footer)
    from .folder import FolderShardWriter
    return FolderShardWriter(out, relpath, config, classes, footer)


def temporary_name(path: str) -> str:
    """Dot-named (readers and globs skip it) and unique per process, so an orphaned worker of a
    killed run never shares a temporary with a resumed run."""
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")


def commit(tmp_path: str, path: str) -> None:
    """fsync then rename into place: the final name only ever holds complete bytes."""
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp_path, path)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
