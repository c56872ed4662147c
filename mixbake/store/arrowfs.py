"""Any other location, through ``pyarrow.fs`` (``s3://bucket/prefix``, ``gs://...``, ...).

Object stores have no atomic rename, but an object only becomes visible when its upload completes,
so ``atomic_output`` writes straight to the final key there; what makes a shard part of a build is
its sidecar and, in the end, the manifest listing it.

Credentials and endpoints come from the URI or the standard AWS settings (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_REGION``, ...), read by pyarrow itself; an ``s3://`` store also has
timeouts and a bounded retry (``store/s3.py``). A request that got no answer within them is a
:class:`~mixbake.errors.StoreUnreachable` naming the object (:func:`unreachable`), never an
``OSError``: that would pass for a bad item or a missing file.
"""
from __future__ import annotations

import contextlib
import posixpath
import re
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Tuple

import pyarrow.fs as pafs

from ..errors import MixbakeError, StoreUnreachable, changed
from . import Store, redact, scrub, stamp_key
from .hashing import HashingFile, NativeOutput, _digest_stream

# pyarrow's words for a request that got no answer in the end: curl timed out, was refused or
# found no route (NETWORK_CONNECTION), or the service stayed busy
_NO_ANSWER = ("AWS Error NETWORK_CONNECTION", "AWS Error SERVICE_UNAVAILABLE", "AWS Error SLOW_DOWN",
              "AWS Error THROTTLING", "AWS Error REQUEST_TIMEOUT")


def unreachable(exc: BaseException, where: Optional[str] = None) -> Optional[StoreUnreachable]:
    """``exc`` as a :class:`StoreUnreachable` when it is pyarrow's report of a request that got no
    answer (else None), naming ``where`` or the object the report names."""
    if isinstance(exc, StoreUnreachable):
        return exc
    text = str(exc)
    if not isinstance(exc, OSError) or not any(words in text for words in _NO_ANSWER):
        return None
    if where is None:
        named = re.search(r"key '([^']*)' in bucket '([^']*)'", text)
        where = f"s3://{named[2]}/{named[1]}" if named else "the object store"
    detail = re.search(r"during (\w+) operation: (?:curlCode: \d+, )?([^;]+)", text)
    return StoreUnreachable(where, f"{detail[1]}: {detail[2].strip()}" if detail else "no answer")


@dataclass(frozen=True)
class ArrowStore(Store):
    _fs: object = field(compare=False, repr=False)  # a pyarrow FileSystem (pickles with the store)
    local = False

    @classmethod
    def from_uri(cls, location: str) -> "ArrowStore":
        from .s3 import open_s3
        try:
            if location.lower().startswith("s3://"):
                fs, root = open_s3(location)
            else:
                fs, root = pafs.FileSystem.from_uri(location)
        except MixbakeError:
            raise
        except Exception as exc:  # pyarrow raises several types here (ArrowInvalid, OSError, ...)
            raise MixbakeError(f"Cannot open {redact(location)!r}: {scrub(exc, location)}.") from None
        return cls(uri=redact(location), root=root.rstrip("/"), _fs=fs)

    @contextlib.contextmanager
    def _asking(self, rel: str = ""):
        """Around a request: no answer is a StoreUnreachable naming ``rel``'s object."""
        try:
            yield
        except OSError as exc:
            lost = unreachable(exc, self.display(rel))
            if lost is None:
                raise
            raise lost from None

    # ---------------------------------------------------------------- paths

    def path(self, rel: str = "") -> str:
        return posixpath.join(self.root, rel) if rel else self.root

    def display(self, rel: str = "") -> str:
        if not rel:
            return self.uri
        where, mark, query = self.uri.partition("?")  # (an option such as ?region= stays last)
        return posixpath.join(where.rstrip("/"), rel) + mark + query

    # ---------------------------------------------------------------- queries

    def _info(self, rel: str):
        with self._asking(rel):
            return self._fs.get_file_info(self.path(rel))

    def _infos(self, rel: str, recursive: bool = False):
        selector = pafs.FileSelector(self.path(rel), recursive=recursive, allow_not_found=True)
        with self._asking(rel):
            return self._fs.get_file_info(selector)

    def exists(self, rel: str = "") -> bool:
        return self._info(rel).type != pafs.FileType.NotFound

    def isdir(self, rel: str = "") -> bool:
        return self._info(rel).type == pafs.FileType.Directory

    def size(self, rel: str) -> int:
        return self._info(rel).size

    def stamp(self, rel: str) -> Tuple[int, int]:
        info = self._fs.get_file_info(self.path(rel))
        return info.size, info.mtime_ns or 0

    def read_stamped(self, rel: str, key: int) -> bytes:
        size, mtime = self.stamp(rel)
        if int(stamp_key(size, mtime)) != key:
            raise changed(rel, size)
        return self.read_bytes(rel)

    def listdir(self, rel: str = "") -> List[str]:
        return sorted(posixpath.basename(i.path) for i in self._infos(rel))

    def entries(self, rel: str = "") -> List[Tuple[str, bool]]:
        return sorted((posixpath.basename(i.path), i.type == pafs.FileType.Directory) for i in self._infos(rel))

    def walk_files(self, rel: str = "", skip_hidden: bool = False) -> Iterator[Tuple[str, int, int]]:
        for info in self._infos(rel, recursive=True):
            relpath = posixpath.relpath(info.path, self.root)
            if info.type == pafs.FileType.File and not (skip_hidden and "/." in "/" + relpath):
                yield relpath, info.size, info.mtime_ns or 0

    # ---------------------------------------------------------------- reading

    def read_bytes(self, rel: str) -> bytes:
        with self._asking(rel), self._fs.open_input_stream(self.path(rel)) as f:
            return f.read()

    def open_input(self, rel: str):
        """(Reads from the file it returns are the caller's: see :func:`unreachable`.)"""
        with self._asking(rel):
            return self._fs.open_input_file(self.path(rel))

    def digest(self, rel: str) -> Tuple[int, str]:
        with self._asking(rel), self.open_input(rel) as f:
            return _digest_stream(f)

    # ---------------------------------------------------------------- writing

    def makedirs(self, rel: str = "") -> None:
        with self._asking(rel):
            self._fs.create_dir(self.path(rel), recursive=True)

    @contextlib.contextmanager
    def atomic_output(self, rel: str, fsync: bool = True, native: bool = False):
        """Straight to the final key (see the module): the object appears when its upload completes
        and is deleted if the block fails. ``fsync`` is moot here. The pyarrow stream is wrapped in
        a :class:`HashingFile` even for ``native``: the digest then needs no second download."""
        with self._asking(rel):
            stream = HashingFile(self._fs.open_output_stream(self.path(rel)))
        output = NativeOutput(stream) if native else stream
        try:
            yield output
        except BaseException as exc:
            self._abandon(stream, rel)
            lost = unreachable(exc, self.display(rel))
            if lost is not None and lost is not exc:
                raise lost from None
            raise
        with self._asking(rel):
            stream.raw.close()
        if native:
            output.bytes, output.sha256 = stream.bytes, stream.sha256

    def _abandon(self, stream: HashingFile, rel: str) -> None:
        """The block writing ``rel`` failed. Its upload is closed all the same (pyarrow has no abort;
        a stream left open is closed by its destructor, later, printing errors to stderr) and, if that
        completed it, deleted: never listed anywhere, so never part of a build. When the store does
        not answer, the close fails after its own timeouts, and nothing is left to delete."""
        try:
            stream.raw.close()
        except OSError:
            return
        with contextlib.suppress(OSError, StoreUnreachable):  # the block's own error is the one to report
            self.remove(rel)

    def sync(self) -> None:
        return  # an object store's write is durable once it completes

    def remove(self, rel: str) -> None:
        if self.exists(rel):
            with self._asking(rel):
                self._fs.delete_file(self.path(rel))

    def rmtree(self, rel: str) -> None:
        if self.exists(rel):
            with self._asking(rel):
                self._fs.delete_dir(self.path(rel))
