"""Durability: making written files reach the disk, without making the writers wait for it.

Workers only start the write-back of what they write (``_flush_fd(fd, fsync=False)``); the build's
parent makes the finished files durable (:class:`Syncer`) before the manifest that lists them.
"""
from __future__ import annotations

import os
import sys

_O_READ = os.O_RDONLY | getattr(os, "O_BINARY", 0)


class Syncer:
    """Makes a build's finished files durable while the build goes on.

    ``add(rel)`` fsyncs a file on a background thread (its write-back began when it was written, so
    this mostly waits); ``finish()`` waits for those and then fsyncs their directories, which makes
    their renames durable too. ``add(None)`` stands for files not listed one by one (a folder
    shard's images): ``finish`` then syncs OUT's whole file system instead (``Store.sync``).

    One syncfs at the end of a photo bake took 50-170 ms here, waiting on every dirty page of the
    file system (other programs' too); per-file fsyncs as shards finish leave ~1 ms for the end.
    """

    def __init__(self, store):
        self.store = store
        self._pool = None
        self._pending: list = []
        self._dirs: set = set()
        self._whole = False

    def add(self, rel) -> None:
        if not self.store.local:
            return  # an object store's write is durable once it completes
        if rel is None:
            self._whole = True
            return
        if self._pool is None:
            import concurrent.futures
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mixbake-sync")
        path = self.store.path(rel)
        self._dirs.add(os.path.dirname(path))
        self._pending.append(self._pool.submit(_fsync, path))

    def finish(self) -> None:
        """Every added file (and its directory entry) is on disk when this returns."""
        try:
            for done in self._pending:
                done.result()  # an I/O error fails the build: its files may not be durable
        finally:
            self.close()
        if self._whole:
            self.store.sync()
        elif os.name == "posix":  # (a directory cannot be opened for fsync on Windows)
            for directory in sorted(self._dirs):
                _fsync(directory)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _fsync(path: str) -> None:
    fd = os.open(path, _O_READ)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _flush_fd(fd: int, fsync: bool) -> None:
    """Wait for a file's data to reach the disk, or (``fsync=False``) only start it."""
    if fsync:
        os.fsync(fd)
    else:
        _start_writeback(fd)


def _start_writeback(fd: int) -> None:
    """Ask the kernel to start writing a file's dirty pages now, without waiting (Linux: fadvise
    DONTNEED starts the write-back of dirty pages and only drops pages already clean)."""
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass


def _load_syncfs():
    """libc's syncfs(fd) (Linux): sync one file system instead of all of them, or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
