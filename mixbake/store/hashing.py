"""Hashing what a store writes and holds: sha256 and byte counts taken as the bytes pass, or from
the page cache, so no file is read twice to learn its digest."""
from __future__ import annotations

import hashlib
import os
from typing import Tuple


class HashingFile:
    """A write-only file wrapper that keeps a running sha256 and byte count.

    ``close()`` is a no-op: the owner (``atomic_output``) decides when the real file is closed and
    committed, even if a library (pyarrow, tarfile) closes what it was given.
    """

    def __init__(self, raw):
        self.raw = raw
        self._hash = hashlib.sha256()
        self.bytes = 0
        self.closed = False

    def write(self, data) -> int:
        data = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        self._hash.update(data)
        self.bytes += len(data)
        self.raw.write(data)
        return len(data)

    def tell(self) -> int:
        return self.bytes

    def flush(self) -> None:
        self.raw.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


class NativeOutput:
    """What ``Store.atomic_output(native=True)`` yields: ``sink`` for a pyarrow writer, then the
    file's ``bytes`` and ``sha256`` once the block has exited."""

    def __init__(self, sink):
        self.sink = sink
        self.bytes, self.sha256 = 0, ""


def _digest_fd(fd: int) -> Tuple[int, str]:
    """(size, sha256) of an open local file, hashed from a memory map (no copy out of the page cache)."""
    import mmap
    size = os.fstat(fd).st_size
    if size == 0:
        return 0, hashlib.sha256().hexdigest()
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mapped:
        return size, hashlib.sha256(mapped).hexdigest()


def _digest_stream(f) -> Tuple[int, str]:
    """(size, sha256) of a readable file, read in 1 MB blocks."""
    h, size = hashlib.sha256(), 0
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
        size += len(block)
    return size, h.hexdigest()
