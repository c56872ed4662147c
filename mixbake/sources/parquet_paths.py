"""Parquet image cells that name a file instead of holding its bytes: ``{"bytes": null, "path": ...}``,
as ``datasets`` writes file-backed images (it embeds the bytes only on push_to_hub / save_to_disk).

Listing finds those rows from the footer's statistics when it can (a column of embedded bytes counts
no nulls: nothing more is read, so the common case costs nothing), resolves each path to a file, and
records the file's identity (the path as written + its size, as folder sources do; no mtimes) for
the fingerprint. A path that names no file makes its row a bad item, judged under --on-error. The
worker reads the files with their row group (``read_named``).

Where a path is looked for: an absolute path as it is; a relative one beside the Parquet file, then
in the working directory (``datasets`` writes paths as they were given to it, often relative to
the directory the script ran in). On an object store, relative to the Parquet file's prefix only.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import pyarrow as pa
import pyarrow.parquet as pq

from .. import arrow_arrays as arrow
from ..store import Store, is_uri
from . import BadPayload

BATCH_ROWS = 64  # rows per read when a row group's bytes must be scanned for nulls


@dataclass
class NamedImages:
    """What listing found: per chunk with such cells, each row's file in ``store`` as an Arrow string
    array (null where the cell holds bytes or names no file: one buffer per chunk in the parent and
    in each task, not a Python string per row); the bad items with their reasons; and the identity of
    the named files, hashed as they are found."""
    store: Optional[Store] = None
    locations: Dict[int, pa.Array] = field(default_factory=dict)
    bad: Dict[int, str] = field(default_factory=dict)
    identity: "hashlib._Hash" = field(default_factory=hashlib.sha256)

    def fingerprint(self) -> Optional[str]:
        """sha256 over (path as written, where it was found, size) of every named file in catalog
        order; None when no cell names a file."""
        return self.identity.hexdigest() if self.locations else None


def has_path_field(image_type: pa.DataType) -> bool:
    if not pa.types.is_struct(image_type) or image_type.get_field_index("path") < 0:
        return False
    path_type = image_type.field("path").type
    return pa.types.is_string(path_type) or pa.types.is_large_string(path_type)


def find_named_images(store: Store, files, handles, image_column: str, locators, bounds) -> NamedImages:
    """The rows of every chunk (``locators[c]`` = (file index, row group), items from ``bounds[c]``)
    whose image is a path without bytes, located."""
    found = NamedImages(store=image_store(store))
    leaves = [{pf.metadata.schema.column(j).path: j for j in range(pf.metadata.num_columns)}
              if has_path_field(pf.schema_arrow.field(image_column).type) else None for pf in handles]
    for c, (fi, rg) in enumerate(locators):
        rows = _named_rows(handles[fi], rg, leaves[fi], image_column) if leaves[fi] is not None else []
        if not rows:
            continue
        locations: List[Optional[str]] = [None] * handles[fi].metadata.row_group(rg).num_rows
        for r, path in rows:
            location, base, size, problem = locate(store, files[fi], path)
            locations[r] = location
            found.identity.update(f"{path}\0{base}\0{size}\n".encode("utf-8", "surrogateescape"))
            if problem:
                found.bad[int(bounds[c]) + r] = problem
        found.locations[c] = arrow.strings(locations)
    if not found.locations:
        found.store = None
    return found


def _named_rows(pf: pq.ParquetFile, rg: int, leaves: dict, image_column: str) -> List[Tuple[int, str]]:
    """(row in the group, path) of the rows with a path and no bytes."""
    meta = pf.metadata.row_group(rg)
    no_bytes = _null_count(meta, leaves.get(f"{image_column}.bytes"))
    if no_bytes == 0 or _null_count(meta, leaves.get(f"{image_column}.path")) == meta.num_rows:
        return []  # every cell holds bytes, or none names a path: known from the footer alone
    paths = _leaf(pf.read_row_group(rg, columns=[f"{image_column}.path"]).column(0)).to_pylist()
    if not any(paths):
        return []
    if no_bytes == meta.num_rows:
        without_bytes = [True] * meta.num_rows
    else:  # some cells hold bytes and some do not (or no statistics say): which, costs reading them
        without_bytes = []
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[rg], columns=[f"{image_column}.bytes"],
                                     use_threads=False):
            without_bytes += _nulls(_leaf(batch.column(0)))
    return [(r, path) for r, (path, empty) in enumerate(zip(paths, without_bytes)) if empty and path]


def _null_count(meta, leaf: Optional[int]) -> Optional[int]:
    """Nulls in a column chunk by its statistics (a null struct counts in each of its fields), or None."""
    if leaf is None:
        return None
    chunk = meta.column(leaf)
    stats = chunk.statistics if chunk.is_stats_set else None
    return stats.null_count if stats is not None and stats.has_null_count else None


def _nulls(array) -> List[bool]:
    """Which values are null, without ``Array.is_null`` (it imports pyarrow.compute: ~0.2 s in every
    process, see tests/test_speed_guards.py) and without copying any bytes into Python."""
    if array.null_count in (0, len(array)):
        return [array.null_count > 0] * len(array)
    return [not array[i].is_valid for i in range(len(array))]


def _leaf(column):
    """The one field of a struct column read by its dotted leaf name (a null struct gives a null)."""
    return column.flatten()[0] if pa.types.is_struct(column.type) else column


def image_store(store: Store) -> Store:
    """Where located files are read from: the whole local file system for a local source (a path
    may lead anywhere on it), the source's own store on an object store."""
    return Store.open(os.sep) if store.local else store


def locate(store: Store, parquet_rel: str, path: str) -> Tuple[Optional[str], str, int, Optional[str]]:
    """(location in ``image_store(store)`` or None, the base it was found against, size or -1, the
    reason it is a bad item or None) of ``path``, named in the Parquet file ``parquet_rel``."""
    if is_uri(path):
        return None, "uri", -1, (f"the image file {path!r} named in the path field is a URI; mixbake follows "
                                 f"file paths only")
    if store.local:
        return _locate_local(store, parquet_rel, path)
    if path.startswith("/"):
        return None, "absolute", -1, (f"the image file {path!r} named in the path field is an absolute path, "
                                      f"and the Parquet file is on an object store (paths relative to it are followed)")
    rel = posixpath.normpath(posixpath.join(posixpath.dirname(parquet_rel), path))
    if rel == ".." or rel.startswith("../"):
        return None, "outside", -1, (f"the image file {path!r} named in the path field is outside "
                                     f"{store.display()} (on an object store, paths below the source are followed)")
    size = _size(store, rel)
    if size is None:
        return None, "missing", -1, (f"the image file {path!r} named in the path field does not exist "
                                     f"in {store.display(posixpath.dirname(parquet_rel))}")
    return rel, "parquet", size, None


def _locate_local(store: Store, parquet_rel: str, path: str):
    if os.path.isabs(path):
        candidates, where = [("absolute", path)], ""
    else:
        candidates = [("parquet", os.path.join(os.path.dirname(store.path(parquet_rel)), path)),
                      ("cwd", os.path.abspath(path))]
        where = " (neither beside the Parquet file nor in the working directory)"
    files = image_store(store)
    for base, candidate in candidates:
        location = os.path.normpath(candidate).lstrip(os.sep)  # relative to the file system's root
        size = _size(files, location)
        if size is not None:
            return location, base, size, None
    return None, "missing", -1, f"the image file {path!r} named in the path field does not exist{where}"


def _size(store: Store, rel: str) -> Optional[int]:
    try:
        return store.size(rel)  # an object store answers None for a key that is not there
    except OSError:
        return None


def read_named(store: Store, location: str):
    """The bytes of a located file, or a BadPayload naming it (it went missing since listing ...)."""
    try:
        return store.read_bytes(location)
    except OSError as exc:
        return BadPayload(f"cannot read the image file {store.display(location)!r} named in the path field: "
                          f"{exc.strerror or exc}")
