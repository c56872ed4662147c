"""Where bytes live: a local directory or a ``pyarrow.fs`` URI (``s3://bucket/prefix``, ``file://...``).

A :class:`Store` is a small picklable handle on one directory. Paths given to its methods are
relative to it, with ``/`` separators. :func:`open_store` (or ``Store.open``) gives the backend for
a location: a :class:`~mixbake.store.local.LocalStore` (the os module directly) for a local path or
``file://`` URI, an :class:`~mixbake.store.arrowfs.ArrowStore` (``pyarrow.fs``) for anything else.
``durable`` makes written files reach the disk, ``hashing`` counts and hashes them.
"""
from __future__ import annotations

import abc
import contextlib
import os
from dataclasses import dataclass
from typing import ClassVar, Iterator, List, Tuple

import numpy as np


_MIX = np.uint64(0x9E3779B97F4A7C15)


def stamp_key(size, mtime_ns):
    """One 64-bit number for a file's (size, mtime_ns): what a catalog keeps per file to notice a
    change (8 bytes an item, not 16). Works on numbers and on numpy arrays alike."""
    with np.errstate(over="ignore"):
        return (np.asarray(size).astype(np.uint64) * _MIX) ^ np.asarray(mtime_ns).astype(np.uint64)


def is_uri(text: str) -> bool:
    return "://" in str(text)


# Query parameters whose value is a secret (AWS/GCS presigned URLs, Azure SAS, ...): a name holding
# one of these words, or one of these names.
_SECRET_WORDS = ("secret", "token", "password", "passwd", "signature", "credential", "access_key",
                 "accesskey", "account_key", "private_key", "sas")
_SECRET_NAMES = frozenset({"sig", "key", "pwd", "auth", "authorization"})


def redact(location) -> str:
    """``location`` without its credentials: a URI's user-info (``s3://KEY:SECRET@bucket/...``) and
    its secret-looking query parameters (``secret_key``, ``session_token``, ``signature``, ...) are
    left out; anything else (a local path, a URI without secrets) is returned as given.

    Every place that shows or records a location goes through here (``Store.display``, each
    catalog's ``uri``, the messages), so no secret is printed, logged or written to a manifest;
    what is left still opens, with credentials from the environment instead."""
    text = os.fspath(location)
    if not is_uri(text):
        return text
    start = text.index("://") + 3
    rest = text[start:]
    at = _userinfo_end(rest)
    path, mark, query = rest[at + 1:].partition("?")
    if mark:
        kept = [part for part in query.split("&") if not _is_secret(part.partition("=")[0])]
        query = "&".join(kept)
        mark = "?" if kept else ""
    return text[:start] + path + mark + query


def _userinfo_end(rest: str) -> int:
    """Where the user-info of a URI (the part after ``scheme://``) ends: the index of its ``@``, or -1."""
    at, colon = rest.find("@"), rest.find(":")
    ends = [i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0]
    authority_end = min(ends) if ends else len(rest)
    # "KEY:SECRET@" ends the user-info; a secret holding an unescaped "/" (AWS secrets may) still
    # has its ":" before that "/", and must not be left in the path
    return at if at >= 0 and (at < authority_end or 0 <= colon < authority_end) else -1


def _is_secret(name: str) -> bool:
    from urllib.parse import unquote
    name = unquote(name).lower().replace("-", "_")
    return name in _SECRET_NAMES or any(word in name for word in _SECRET_WORDS)


def scrub(message: str, location) -> str:
    """``message`` (say, a library's error about ``location``) with ``location`` redacted, and any
    secret of it that still shows replaced by ``***``."""
    text = os.fspath(location)
    message = str(message).replace(text, redact(text))
    for secret in _secrets(text):
        message = message.replace(secret, "***")
    return message


def _secrets(text: str) -> List[str]:
    """The credentials a location spells: its user-info and secret query values (also unescaped).
    Those shorter than 4 characters are left alone: replacing them would garble the message."""
    from urllib.parse import unquote
    found = []
    if is_uri(text):
        rest = text[text.index("://") + 3:]
        at = _userinfo_end(rest)
        if at >= 0:
            found += rest[:at].split(":", 1)
        for part in rest[at + 1:].partition("?")[2].split("&"):
            name, _, value = part.partition("=")
            if _is_secret(name):
                found.append(value)
    found += [unquote(s) for s in found]
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def open_store(location) -> "Store":
    """The store of a local path, a ``file://`` URI or any other URI ``pyarrow.fs`` knows."""
    location = os.fspath(location)
    if not is_uri(location) or location.startswith("file://"):
        from .local import LocalStore
        path = location[len("file://"):] if location.startswith("file://") else location
        return LocalStore(uri=redact(location), root=os.path.abspath(path))
    from .arrowfs import ArrowStore
    return ArrowStore.from_uri(location)


def temporary_name(path: str) -> str:
    """Dot-named (readers and globs skip it) and unique per process, so an orphaned worker of a
    killed run never shares a temporary with a resumed run."""
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")


@dataclass(frozen=True)
class Store(abc.ABC):
    uri: str                     # as the user wrote it, less its credentials (redact): for messages and the manifest
    root: str                    # local absolute path, or the filesystem path (e.g. "bucket/prefix")
    local: ClassVar[bool]        # a local disk (os module, atomic rename, fsync)

    @classmethod
    def open(cls, location) -> "Store":
        return open_store(location)

    # ---------------------------------------------------------------- paths

    @abc.abstractmethod
    def path(self, rel: str = "") -> str:
        """``rel`` as a path of this store's file system (the root for ``""``)."""

    @abc.abstractmethod
    def display(self, rel: str = "") -> str:
        """``rel`` as the user would write it (for messages)."""

    # ---------------------------------------------------------------- queries

    @abc.abstractmethod
    def exists(self, rel: str = "") -> bool:
        ...

    @abc.abstractmethod
    def isdir(self, rel: str = "") -> bool:
        ...

    @abc.abstractmethod
    def size(self, rel: str) -> int:
        ...

    def free_bytes(self) -> int:
        """Space left where this store writes (-1 when it cannot tell: an object store)."""
        return -1

    def disk_full(self, rel: str, exc: BaseException):
        """``exc`` as a DiskFull naming ``rel``, when it is one (else None)."""
        from ..errors import DiskFull, is_disk_full
        return DiskFull(self.display(rel), self.free_bytes()) if is_disk_full(exc) else None

    @abc.abstractmethod
    def stamp(self, rel: str) -> Tuple[int, int]:
        """(size, mtime_ns) of a file: what tells that it changed (not part of any identity)."""

    @abc.abstractmethod
    def read_stamped(self, rel: str, key: int) -> bytes:
        """The file's bytes, or SourceChanged when its (size, mtime_ns) no longer has ``key``
        (``stamp_key``)."""

    @abc.abstractmethod
    def listdir(self, rel: str = "") -> List[str]:
        """Names directly inside ``rel`` (empty when it does not exist)."""

    @abc.abstractmethod
    def entries(self, rel: str = "") -> List[Tuple[str, bool]]:
        """(name, is_dir) of what is directly inside ``rel``, sorted by name."""

    @abc.abstractmethod
    def walk_files(self, rel: str = "", skip_hidden: bool = False) -> Iterator[Tuple[str, int, int]]:
        """(relative path, size, mtime_ns) of every file below ``rel``; size -1 (mtime 0) for a
        broken link. ``skip_hidden``: leave out dot-files and everything in dot-folders."""

    # ---------------------------------------------------------------- reading

    @abc.abstractmethod
    def read_bytes(self, rel: str) -> bytes:
        ...

    @abc.abstractmethod
    def open_input(self, rel: str):
        """A seekable native (pyarrow) file, for Parquet readers and hashing."""

    @abc.abstractmethod
    def digest(self, rel: str) -> Tuple[int, str]:
        """(size, sha256) of a file, read once."""

    # ---------------------------------------------------------------- writing

    @abc.abstractmethod
    def makedirs(self, rel: str = "") -> None:
        ...

    @abc.abstractmethod
    def atomic_output(self, rel: str, fsync: bool = True,
                      native: bool = False) -> contextlib.AbstractContextManager:
        """A writable binary file that appears at ``rel`` only if the block exits cleanly.

        ``fsync=False`` (shards and their sidecars) only starts the write-back to disk without
        waiting for it: a worker blocked in fsync was 5% of a photo bake. Their durability comes
        from syncing them before the manifest is written, and a resume re-hashes what it keeps.

        It yields a :class:`~.hashing.HashingFile` (a Python file that counts and hashes what passes
        through it, so a shard's digest never needs a second download). ``native=True`` yields a
        :class:`~.hashing.NativeOutput` instead, for pyarrow writers: on a local disk its ``sink`` is
        a native file (no Python call and no copy per write; ~20 us per 16 KB image row) and the
        digest is taken from the page cache after the file is closed. ``.bytes``/``.sha256`` either way.
        """

    @abc.abstractmethod
    def sync(self) -> None:
        """Make everything written under OUT durable (its file system's dirty data on disk)."""

    def write_bytes(self, rel: str, data: bytes, fsync: bool = True) -> None:
        with self.atomic_output(rel, fsync=fsync) as f:
            f.write(data)

    @abc.abstractmethod
    def remove(self, rel: str) -> None:
        """Delete the file ``rel`` if it exists."""

    @abc.abstractmethod
    def rmtree(self, rel: str) -> None:
        """Delete the folder ``rel`` and all below it, if it exists."""
