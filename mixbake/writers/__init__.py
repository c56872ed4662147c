"""Shard writers, one per output format. Each is a context manager::

    with open_writer(out, task_shard_id, num_shards, config, classes, footer) as w:
        w.write(columns, images)      # one call per row group: label columns + encoded images
    w.relpath, w.bytes, w.sha256      # what the manifest lists, known after a clean exit

A shard appears under its final name only on a clean exit (temporary + rename); on an exception the
temporary is removed. ``columns`` holds row-aligned arrays: key, label, soft_label, op, lam, src_a,
src_b, label_a, label_b, boxes (see ``worker.label_columns``).
"""
from __future__ import annotations

import contextlib


def shard_relpath(fmt: str, shard_id: int, num_shards: int) -> str:
    """Where shard ``shard_id`` lives inside OUT (the one file-name rule per format)."""
    if fmt == "parquet":
        return f"data/train-{shard_id:05d}-of-{num_shards:05d}.parquet"
    if fmt == "webdataset":
        return f"train-{shard_id:06d}.tar"
    if fmt == "folder":
        return f"images#{shard_id:05d}"  # a folder shard is a set of files under images/
    raise ValueError(f"unknown format {fmt!r}")


def open_writer(store, shard_id: int, num_shards: int, config, classes, footer: dict):
    relpath = shard_relpath(config.format, shard_id, num_shards)
    if config.format == "parquet":
        from .parquet import ShardWriter
        return ShardWriter(store, relpath, config, classes, footer)
    if config.format == "webdataset":
        from .webdataset import TarShardWriter
        return TarShardWriter(store, relpath, config, classes, footer)
    from .folder import FolderShardWriter
    return FolderShardWriter(store, relpath, config, classes, footer)


class AtomicFileWriter:
    """Base for single-file shards: the file is opened through ``store.atomic_output`` on enter and
    committed (or discarded, on an exception) on exit; ``bytes``/``sha256`` are known after.
    A writer whose ``open`` takes a pyarrow sink sets ``native = True`` (see ``Store.atomic_output``)."""

    native = False

    def __init__(self, store, relpath: str):
        self.store, self.relpath = store, relpath
        self.bytes, self.sha256 = 0, ""
        self._stack = None
        self.file = None

    def __enter__(self):
        self._stack = contextlib.ExitStack()
        # no fsync here: the build syncs each shard before its manifest (see store.durable.Syncer)
        self.file = self._stack.enter_context(self.store.atomic_output(self.relpath, fsync=False,
                                                                       native=self.native))
        self.open(self.file.sink if self.native else self.file)
        return self

    def open(self, file) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.close()
        finally:
            self._stack.__exit__(exc_type, exc, tb)
        if exc_type is None:
            self.bytes, self.sha256 = self.file.bytes, self.file.sha256
        return False
