"""Where bytes live: a local directory or a ``pyarrow.fs`` URI (``s3://bucket/prefix``, ``file://...``).

A :class:`Store` is a small picklable handle on one directory. Paths given to its methods are
relative to it, with ``/`` separators. Local stores use the os module directly (fast, and
``os.replace`` is atomic); other stores go through ``pyarrow.fs``. Object stores have no atomic
rename, but an object only becomes visible when its upload completes, so ``atomic_output`` writes
straight to the final key there; what makes a shard part of a build is its sidecar and, in the end,
the manifest listing it.

Credentials and endpoints come from the standard AWS settings (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_REGION``, ...), read by pyarrow itself.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
import sys
from dataclasses import dataclass, field
from typing import Iterator, List, Tuple

from .errors import MixbakeError


_O_READ = os.O_RDONLY | getattr(os, "O_BINARY", 0)


def is_uri(text: str) -> bool:
    return "://" in str(text)


@dataclass(frozen=True)
class Store:
    uri: str                     # as the user wrote it (for messages and the manifest)
    root: str                    # local absolute path, or the filesystem path (e.g. "bucket/prefix")
    local: bool
    _fs: object = field(default=None, compare=False, repr=False)

    @classmethod
    def open(cls, location) -> "Store":
        location = os.fspath(location)
        if not is_uri(location) or location.startswith("file://"):
            path = location[len("file://"):] if location.startswith("file://") else location
            return cls(uri=location, root=os.path.abspath(path), local=True)
        import pyarrow.fs as pafs
        try:
            fs, root = pafs.FileSystem.from_uri(location)
        except Exception as exc:  # pyarrow raises several types here (ArrowInvalid, OSError, ...)
            raise MixbakeError(f"Cannot open {location!r}: {exc}.") from None
        return cls(uri=location, root=root.rstrip("/"), local=False, _fs=fs)

    # ---------------------------------------------------------------- paths

    def path(self, rel: str = "") -> str:
        if not rel:
            return self.root
        if not self.local:
            return posixpath.join(self.root, rel)
        return self.root.rstrip(os.sep) + os.sep + (rel if os.sep == "/" else rel.replace("/", os.sep))

    def display(self, rel: str = "") -> str:
        return self.path(rel) if self.local else posixpath.join(self.uri.rstrip("/"), rel) if rel else self.uri

    # ---------------------------------------------------------------- queries

    def exists(self, rel: str = "") -> bool:
        if self.local:
            return os.path.exists(self.path(rel))
        import pyarrow.fs as pafs
        return self._fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound

    def isdir(self, rel: str = "") -> bool:
        if self.local:
            return os.path.isdir(self.path(rel))
        import pyarrow.fs as pafs
        return self._fs.get_file_info(self.path(rel)).type == pafs.FileType.Directory

    def size(self, rel: str) -> int:
        return os.path.getsize(self.path(rel)) if self.local else self._fs.get_file_info(self.path(rel)).size

    def listdir(self, rel: str = "") -> List[str]:
        """Names directly inside ``rel`` (empty when it does not exist)."""
        if self.local:
            path = self.path(rel)
            return sorted(os.listdir(path)) if os.path.isdir(path) else []
        import pyarrow.fs as pafs
        selector = pafs.FileSelector(self.path(rel), allow_not_found=True)
        return sorted(posixpath.basename(i.path) for i in self._fs.get_file_info(selector))

    def entries(self, rel: str = "") -> List[Tuple[str, bool]]:
        """(name, is_dir) of what is directly inside ``rel``, sorted by name."""
        if self.local:
            path = self.path(rel)
            return sorted((e.name, e.is_dir()) for e in os.scandir(path)) if os.path.isdir(path) else []
        import pyarrow.fs as pafs
        selector = pafs.FileSelector(self.path(rel), allow_not_found=True)
        return sorted((posixpath.basename(i.path), i.type == pafs.FileType.Directory)
                      for i in self._fs.get_file_info(selector))

    def walk_files(self, rel: str = "", skip_hidden: bool = False) -> Iterator[Tuple[str, int]]:
        """(relative path, size) of every file below ``rel``; size -1 for a broken link.
        ``skip_hidden``: leave out dot-files and everything in dot-folders."""
        if self.local:
            yield from _walk_local(self.path(rel), rel.strip("/") + "/" if rel.strip("/") else "", skip_hidden)
            return
        import pyarrow.fs as pafs
        selector = pafs.FileSelector(self.path(rel), recursive=True, allow_not_found=True)
        for info in self._fs.get_file_info(selector):
            relpath = posixpath.relpath(info.path, self.root)
            if info.type == pafs.FileType.File and not (skip_hidden and "/." in "/" + relpath):
                yield relpath, info.size

    # ---------------------------------------------------------------- reading

    def read_bytes(self, rel: str) -> bytes:
        if self.local:
            return _read_local(self.path(rel))
        with self._fs.open_input_stream(self.path(rel)) as f:
            return f.read()

    def open_input(self, rel: str):
        """A seekable native (pyarrow) file, for Parquet readers and hashing."""
        import pyarrow as pa
        return pa.OSFile(self.path(rel), "r") if self.local else self._fs.open_input_file(self.path(rel))

    def digest(self, rel: str) -> Tuple[int, str]:
        """(size, sha256) of a file, read once."""
        if self.local:
            fd = os.open(self.path(rel), _O_READ)
            try:
                return _digest_fd(fd)
            finally:
                os.close(fd)
        h, size = hashlib.sha256(), 0
        with self.open_input(rel) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
                size += len(block)
        return size, h.hexdigest()

    # ---------------------------------------------------------------- writing

    def makedirs(self, rel: str = "") -> None:
        if self.local:
            os.makedirs(self.path(rel), exist_ok=True)
        else:
            self._fs.create_dir(self.path(rel), recursive=True)

    @contextlib.contextmanager
    def atomic_output(self, rel: str, fsync: bool = True, native: bool = False):
        """A writable binary file that appears at ``rel`` only if the block exits cleanly.

        ``fsync=False`` (shards and their sidecars) only starts the write-back to disk without
        waiting for it: a worker blocked in fsync was 5% of a photo bake. Their durability comes
        from syncing them before the manifest is written, and a resume re-hashes what it keeps.

        It yields a :class:`HashingFile` (a Python file that counts and hashes what passes through
        it, so a shard's digest never needs a second download). ``native=True`` yields a
        :class:`NativeOutput` instead, for pyarrow writers: on a local disk its ``sink`` is a native
        file (no Python call and no copy per write; ~20 us per 16 KB image row) and the digest is
        taken from the page cache after the file is closed. ``.bytes``/``.sha256`` either way.
        """
        if not self.local:
            stream = HashingFile(self._fs.open_output_stream(self.path(rel)))
            output = NativeOutput(stream) if native else stream
            try:
                yield output
            except BaseException:
                stream.raw.close()
                self.remove(rel)  # completed by close(); never listed anywhere, so never part of a build
                raise
            stream.raw.close()
            if native:
                output.bytes, output.sha256 = stream.bytes, stream.sha256
            return
        path = self.path(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = temporary_name(path)
        try:
            if native:
                import pyarrow as pa
                output = NativeOutput(pa.OSFile(tmp, "wb"))
                try:
                    yield output
                finally:
                    output.sink.close()
                fd = os.open(tmp, _O_READ)
                try:
                    output.bytes, output.sha256 = _digest_fd(fd)
                    _flush_fd(fd, fsync)
                finally:
                    os.close(fd)
            else:
                with open(tmp, "wb") as raw:
                    stream = HashingFile(raw)
                    yield stream
                    raw.flush()
                    _flush_fd(raw.fileno(), fsync)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    def sync(self) -> None:
        """Make everything written under OUT durable (its file system's dirty data on disk)."""
        if not self.local:
            return  # an object store's write is durable once it completes
        syncfs = _load_syncfs()
        if syncfs is not None:
            fd = os.open(self.root, os.O_RDONLY)
            try:
                if syncfs(fd) == 0:
                    return
            finally:
                os.close(fd)
        if hasattr(os, "sync"):  # (not on Windows)
            os.sync()

    def write_bytes(self, rel: str, data: bytes, fsync: bool = True) -> None:
        with self.atomic_output(rel, fsync=fsync) as f:
            f.write(data)

    def remove(self, rel: str) -> None:
        if self.local:
            if os.path.exists(self.path(rel)):
                os.remove(self.path(rel))
        elif self.exists(rel):
            self._fs.delete_file(self.path(rel))

    def rmtree(self, rel: str) -> None:
        if self.local:
            shutil.rmtree(self.path(rel), ignore_errors=True)
        elif self.exists(rel):
            self._fs.delete_dir(self.path(rel))


def temporary_name(path: str) -> str:
    """Dot-named (readers and globs skip it) and unique per process, so an orphaned worker of a
    killed run never shares a temporary with a resumed run."""
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")


class Syncer:
    """Makes a build's finished files durable while the build goes on.

    ``add(rel)`` fsyncs a file on a background thread (its write-back began when it was written, so
    this mostly waits); ``finish()`` waits for those and then fsyncs their directories, which makes
    their renames durable too. ``add(None)`` stands for files not listed one by one (a folder
    shard's images): ``finish`` then syncs OUT's whole file system instead (``Store.sync``).

    One syncfs at the end of a photo bake took 50-170 ms here, waiting on every dirty page of the
    file system (other programs' too); per-file fsyncs as shards finish leave ~1 ms for the end.
    """

    def __init__(self, store: "Store"):
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


def _walk_local(path: str, prefix: str, skip_hidden: bool) -> Iterator[Tuple[str, int]]:
    """os.walk's files (symlinked folders are not followed, unreadable ones skipped), with relative
    paths built by concatenation: os.path.relpath per file was most of the time of listing 20k files.

    Where it can, each folder is scanned through an open descriptor, so a file's size comes from a
    stat relative to its folder: resolving every file's full path took a third of listing 50k files.
    """
    fd = None
    try:
        if _SCAN_FD:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        entries = list(os.scandir(path if fd is None else fd))
    except OSError:
        if fd is not None:
            os.close(fd)
        return
    subdirs, files = [], []
    try:
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if skip_hidden and entry.name.startswith("."):
                continue
            if is_dir:
                if not entry.is_symlink():
                    subdirs.append(entry.name)
                continue
            try:
                size = entry.stat().st_size
            except OSError:
                size = -1  # a broken link is an item too: its error comes when it is read
            files.append((prefix + entry.name, size))
    finally:
        if fd is not None:
            os.close(fd)
    yield from files
    for name in subdirs:
        yield from _walk_local(path + os.sep + name, prefix + name + "/", skip_hidden)


_SCAN_FD = os.scandir in os.supports_fd and hasattr(os, "O_DIRECTORY")


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



def _read_local(path: str) -> bytes:
    """A whole file in as few system calls as possible (open, fstat, read, close): half the time of
    ``open().read()`` on a 3 KB image, which matters when decoding one takes 50 us."""
    fd = os.open(path, _O_READ)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)  # + 1: a file that grew since fstat is read to its end below
        if len(data) <= size:
            return data
        parts = [data]
        while True:
            more = os.read(fd, 1 << 20)
            if not more:
                return b"".join(parts)
            parts.append(more)
    finally:
        os.close(fd)
