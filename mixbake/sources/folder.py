"""Image folder source: ``root/<class>/<...>/<image>``; classes sorted by name, items by relative path."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import numpy as np

from ..errors import MixbakeError
from ..store import Store, stamp_key
from ..humanize import count
from . import Catalog, display_ref
from .refs import PathRefs, encode_paths

BROKEN = 0  # the stamp key of a broken link (read, it gives its own error)
IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff",
    ".gif", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico",
})


@dataclass(frozen=True)
class FolderReader:
    store: Store

    def read_chunk(self, locator: str, stamp=None) -> list:
        """A folder chunk is one file; returns [bytes]. OSError propagates to the worker's error policy;
        a file no longer as listed (``stamp``: its ``stamp_key``) is SourceChanged, which stops the bake."""
        if stamp is None or stamp == BROKEN:  # (a broken link's error comes from the read itself)
            return [self.store.read_bytes(locator)]
        return [self.store.read_stamped(locator, stamp)]


def folder_catalog(root, map_each: Callable = lambda fn, items: [fn(item) for item in items]) -> Catalog:
    """``map_each(fn, items)`` lists the class folders (see ``open_source``). A folder with a
    ``metadata.csv``/``metadata.jsonl`` at its root is the files it lists instead (``metadata``)."""
    store = root if isinstance(root, Store) else Store.open(root)
    from . import metadata  # (it builds on this module)
    listed_by = metadata.find_metadata(store)
    if listed_by is not None:
        return metadata.metadata_catalog(store, listed_by)
    class_dirs = [name for name, is_dir in store.entries() if is_dir and not name.startswith(".")]
    ignored = sum(1 for name, is_dir in store.entries() if not is_dir and not name.startswith("."))
    classes, paths, stamps, labels, notes = [], [], [], [], []
    listings = map_each(_list_class, [(store, class_name) for class_name in class_dirs])
    for class_name, (found, class_stamps, skipped) in zip(class_dirs, listings):
        ignored += skipped
        if not len(found[1]):
            notes.append(f"class folder {display_ref(class_name)!r} holds no images and is not a class")
            continue
        labels.append(np.full(len(found[1]), len(classes), dtype=np.int32))
        classes.append(class_name)
        paths.append(found)
        stamps.append(class_stamps)
    if not paths:
        raise MixbakeError(
            f"Image folder {display_ref(store.display())!r} holds no images: expected root/<class>/<image> "
            f"with extensions such as .jpg or .png{_ROOT_FILES if ignored else ''}.")
    if ignored:
        notes.append(f"{count(ignored, 'file')} ignored: not an image by extension, or not "
                     f"inside a class folder (counted in manifest.json as source.ignored_files)")
    refs = PathRefs.join(paths)
    stamps = np.concatenate(stamps)
    keys = stamp_key(stamps[:, 0], stamps[:, 1])
    keys[stamps[:, 0] < 0] = BROKEN
    return Catalog(
        kind="folder",
        uri=display_ref(store.display()),
        classes=tuple(display_ref(c) for c in classes),
        labels=np.concatenate(labels),
        refs=refs,
        reader=FolderReader(store),
        fingerprint=_fingerprint(refs, stamps[:, 0]),
        ignored_files=ignored,
        notes=tuple(notes),
        chunk_stamps=keys,
        state=_state(refs, keys),
    )


_ROOT_FILES = " (files directly in the root, or in no class folder, are not read)"


def _list_class(store_and_class) -> Tuple[Tuple[bytes, np.ndarray], np.ndarray, int]:
    """(relative paths of the images below a class folder, sorted, as (bytes, lengths); their
    (size, mtime_ns); count of other files). Compact, as the result travels back from a worker and
    stays in the parent: no Python object per file."""
    store, class_name = store_and_class
    found, skipped = {}, 0
    for rel, size, mtime in store.walk_files(class_name, skip_hidden=True):  # (no hidden files either)
        dot = rel.rfind(".")
        if rel[dot:].lower() in IMAGE_EXTENSIONS:
            found[rel] = (size, mtime)
        else:
            skipped += 1
    ordered = sorted(found)  # (sorting the paths alone is ~4x faster than sorting the pairs)
    stamps = np.asarray([found[rel] for rel in ordered], dtype=np.int64).reshape(-1, 2)
    return encode_paths(ordered), stamps, skipped


def _fingerprint(paths, sizes: np.ndarray) -> str:
    """Relative path + size of every item: cheap to compute, changes when files are added/replaced.

    Modification times are left out on purpose, so a copied dataset keeps its identity (the price:
    an image replaced in place by one of exactly the same size goes unnoticed). Hashed a class
    folder at a time (the same bytes as the whole listing at once).
    """
    # size -1: a broken link is an item too, its error comes later
    h, start = hashlib.sha256(), 0
    for rels in paths.parts():
        part = sizes[start:start + len(rels)].tolist()
        h.update("".join(f"{rel}\0{size}\n" for rel, size in zip(rels, part)).encode("utf-8", "surrogateescape"))
        start += len(rels)
    return h.hexdigest()


def _state(paths, stamps: np.ndarray) -> str:
    """The listing with modification times: what a bake re-checks before it commits, so that a file
    replaced during the bake (even by one of the same size) is noticed. Not an identity."""
    h = hashlib.sha256(paths.data)
    h.update(paths.offsets.tobytes())
    h.update(np.ascontiguousarray(stamps).tobytes())
    return h.hexdigest()
