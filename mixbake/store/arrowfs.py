"""Any other location, through ``pyarrow.fs`` (``s3://bucket/prefix``, ``gs://...``, ...).

Object stores have no atomic rename, but an object only becomes visible when its upload completes,
so ``atomic_output`` writes straight to the final key there; what makes a shard part of a build is
its sidecar and, in the end, the manifest listing it.

Credentials and endpoints come from the standard AWS settings (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_REGION``, ...), read by pyarrow itself.
"""
from __future__ import annotations

import contextlib
import posixpath
from dataclasses import dataclass, field
from typing import Iterator, List, Tuple

import pyarrow.fs as pafs

from ..errors import MixbakeError
from . import Store, redact, scrub
from .hashing import HashingFile, NativeOutput, _digest_stream


@dataclass(frozen=True)
class ArrowStore(Store):
    _fs: object = field(compare=False, repr=False)  # a pyarrow FileSystem (pickles with the store)
    local = False

    @classmethod
    def from_uri(cls, location: str) -> "ArrowStore":
        try:
            fs, root = pafs.FileSystem.from_uri(location)
        except Exception as exc:  # pyarrow raises several types here (ArrowInvalid, OSError, ...)
            raise MixbakeError(f"Cannot open {redact(location)!r}: {scrub(exc, location)}.") from None
        return cls(uri=redact(location), root=root.rstrip("/"), _fs=fs)

    # ---------------------------------------------------------------- paths

    def path(self, rel: str = "") -> str:
        return posixpath.join(self.root, rel) if rel else self.root

    def display(self, rel: str = "") -> str:
        if not rel:
            return self.uri
        where, mark, query = self.uri.partition("?")  # (an option such as ?region= stays last)
        return posixpath.join(where.rstrip("/"), rel) + mark + query

    # ---------------------------------------------------------------- queries

    def _type(self, rel: str):
        return self._fs.get_file_info(self.path(rel)).type

    def _infos(self, rel: str, recursive: bool = False):
        selector = pafs.FileSelector(self.path(rel), recursive=recursive, allow_not_found=True)
        return self._fs.get_file_info(selector)

    def exists(self, rel: str = "") -> bool:
        return self._type(rel) != pafs.FileType.NotFound

    def isdir(self, rel: str = "") -> bool:
        return self._type(rel) == pafs.FileType.Directory

    def size(self, rel: str) -> int:
        return self._fs.get_file_info(self.path(rel)).size

    def listdir(self, rel: str = "") -> List[str]:
        return sorted(posixpath.basename(i.path) for i in self._infos(rel))

    def entries(self, rel: str = "") -> List[Tuple[str, bool]]:
        return sorted((posixpath.basename(i.path), i.type == pafs.FileType.Directory) for i in self._infos(rel))

    def walk_files(self, rel: str = "", skip_hidden: bool = False) -> Iterator[Tuple[str, int]]:
        for info in self._infos(rel, recursive=True):
            relpath = posixpath.relpath(info.path, self.root)
            if info.type == pafs.FileType.File and not (skip_hidden and "/." in "/" + relpath):
                yield relpath, info.size

    # ---------------------------------------------------------------- reading

    def read_bytes(self, rel: str) -> bytes:
        with self._fs.open_input_stream(self.path(rel)) as f:
            return f.read()

    def open_input(self, rel: str):
        return self._fs.open_input_file(self.path(rel))

    def digest(self, rel: str) -> Tuple[int, str]:
        with self.open_input(rel) as f:
            return _digest_stream(f)

    # ---------------------------------------------------------------- writing

    def makedirs(self, rel: str = "") -> None:
        self._fs.create_dir(self.path(rel), recursive=True)

    @contextlib.contextmanager
    def atomic_output(self, rel: str, fsync: bool = True, native: bool = False):
        """Straight to the final key (see the module): the object appears when its upload completes
        and is deleted if the block fails. ``fsync`` is moot here. The pyarrow stream is wrapped in
        a :class:`HashingFile` even for ``native``: the digest then needs no second download."""
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

    def sync(self) -> None:
        return  # an object store's write is durable once it completes

    def remove(self, rel: str) -> None:
        if self.exists(rel):
            self._fs.delete_file(self.path(rel))

    def rmtree(self, rel: str) -> None:
        if self.exists(rel):
            self._fs.delete_dir(self.path(rel))
