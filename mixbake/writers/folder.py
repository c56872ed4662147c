"""Plain files: ``OUT/images/<class of label>/<key>.<ext>``, plus labels.csv and labels.parquet.

Class folder names are made safe (no path separators, no '..', unique); each image is written to a
temporary and renamed. A folder shard's digest is the sha256 of its "relative-path sha256" lines.
"""
from __future__ import annotations

import hashlib
import re
from typing import List, Sequence

from .. import imaging


def class_dirs(classes: Sequence[str]) -> List[str]:
    """One safe, unique folder name per class (never a name taken verbatim from input if unsafe)."""
    names, seen = [], set()
    for i, name in enumerate(classes):
        safe = re.sub(r"[^\w\-. ]", "_", str(name)).strip(" .") or f"class_{i}"
        if safe in seen:
            safe = f"{safe}_{i}"
        seen.add(safe)
        names.append(safe)
    return names


def image_relpath(class_dir: str, key: str, ext: str) -> str:
    return f"images/{class_dir}/{key}.{ext}"


def image_relpaths(classes: Sequence[str], image_format: str, keys, labels) -> List[str]:
    """Where each row's image file lives (the writer writes there; labels.parquet says so)."""
    dirs, ext = class_dirs(classes), imaging.extension(image_format)
    return [image_relpath(dirs[int(label)], key, ext) for key, label in zip(keys, labels)]


def digest(store, relpaths: Sequence[str]):
    """(total bytes, sha256 over 'path sha256' lines) of a folder shard's files, in row order."""
    digests = [store.digest(rel) for rel in relpaths]  # each file opened and read once
    return sum(size for size, _ in digests), _lines_digest(zip(relpaths, (sha for _, sha in digests)))


def _lines_digest(files) -> tuple:
    h = hashlib.sha256()
    for rel, sha in files:
        h.update(f"{rel} {sha}\n".encode("utf-8"))
    return h.hexdigest()


class FolderShardWriter:
    def __init__(self, store, relpath: str, config, classes, footer: dict):
        self.store, self.relpath = store, relpath
        self.classes, self.image_format = classes, config.image_format
        self.written: List[tuple] = []
        self.bytes, self.sha256 = 0, ""

    def __enter__(self):
        return self

    def write(self, columns: dict, images: List[bytes]) -> None:
        paths = image_relpaths(self.classes, self.image_format, columns["key"], columns["label"])
        for rel, image in zip(paths, images):
            # no fsync per image: the build syncs OUT once before its manifest
            self.store.write_bytes(rel, image, fsync=False)
            self.written.append((rel, hashlib.sha256(image).hexdigest()))
            self.bytes += len(image)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.sha256 = _lines_digest(self.written)
        else:
            for rel, _ in self.written:  # an unfinished folder shard leaves nothing behind
                self.store.remove(rel)
        return False
