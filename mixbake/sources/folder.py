"""Image folder source: ``root/<class>/<...>/<image>``; classes sorted by name, items by relative path."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from ..errors import MixbakeError
from . import Catalog, display_ref

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff",
    ".gif", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico",
})


@dataclass(frozen=True)
class FolderReader:
    root: str

    def read_chunk(self, locator: str) -> list:
        """A folder chunk is one file; returns [bytes]. OSError propagates to the worker's error policy."""
        with open(os.path.join(self.root, locator), "rb") as f:
            return [f.read()]


def _walk_class(root: str, class_name: str) -> Tuple[List[str], int]:
    """Relative paths of image files under one class dir (sorted later), and how many were ignored."""
    found, ignored = [], 0
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, class_name)):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames:
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(os.path.join(rel_dir, name).replace(os.sep, "/"))
            else:
                ignored += 1
    return found, ignored


def folder_catalog(root: str) -> Catalog:
    root = os.path.abspath(root)
    entries = sorted(os.scandir(root), key=lambda e: e.name)
    class_dirs = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
    ignored = sum(1 for e in entries if not e.is_dir() and not e.name.startswith("."))
    classes, paths, labels, notes = [], [], [], []
    for class_name in class_dirs:
        found, skipped = _walk_class(root, class_name)
        ignored += skipped
        if not found:
            notes.append(f"class folder {display_ref(class_name)!r} holds no images and is not a class")
            continue
        found.sort()
        labels.extend([len(classes)] * len(found))
        classes.append(class_name)
        paths.extend(found)
    if not paths:
        raise MixbakeError(
            f"Image folder {display_ref(root)!r} holds no images: expected root/<class>/<image> "
            f"with extensions such as .jpg or .png.")
    return Catalog(
        kind="folder",
        uri=display_ref(root),
        classes=tuple(display_ref(c) for c in classes),
        labels=np.asarray(labels, dtype=np.int64),
        refs=paths,
        chunk_bounds=np.arange(len(paths) + 1, dtype=np.int64),
        chunk_locators=paths,
        reader=FolderReader(root),
        fingerprint=_fingerprint(root, paths),
        ignored_files=ignored,
        notes=tuple(notes),
    )


def _fingerprint(root: str, paths: List[str]) -> str:
    """Relative path + size of every item: cheap to compute, changes when files are added/replaced.

    Modification times are left out on purpose, so a copied dataset keeps its identity.
    """
    h = hashlib.sha256()
    for rel in paths:
        try:
            size = os.stat(os.path.join(root, rel)).st_size
        except OSError:
            size = -1  # a broken link is an item too; its error surfaces when it is read
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0" + str(size).encode() + b"\n")
    return h.hexdigest()
