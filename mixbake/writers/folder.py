"""Plain files: ``OUT/images/<class of label>/<key>.<ext>``, plus labels.csv and labels.parquet.

Class folder names are made safe (no path separators, no '..', unique); each image is written to a
temporary and renamed. A folder shard's digest is the sha256 of its "relative-path sha256" lines.
"""
from __future__ import annotations

import hashlib
import os
import re
from typing import List, Sequence

from .. import imaging
from . import sha256_file, temporary_name


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


def digest(out: str, relpaths: Sequence[str]):
    """(total bytes, sha256 over 'path sha256' lines) of a folder shard's files, in row order."""
    h, total = hashlib.sha256(), 0
    for rel in relpaths:
        path = os.path.join(out, rel)
        total += os.path.getsize(path)
        h.update(f"{rel} {sha256_file(path)}\n".encode("utf-8"))
    return total, h.hexdigest()


class FolderShardWriter:
    def __init__(self, out: str, relpath: str, config, classes, footer: dict):
        self.out, self.relpath = out, relpath
        self.ext = imaging.extension(config.image_format)
        self.dirs = class_dirs(classes)
        self.written: List[str] = []
        self.bytes, self.sha256 = 0, ""

    def __enter__(self):
        return self

    def write(self, columns: dict, images: List[bytes]) -> None:
        for i, image in enumerate(images):
            rel = image_relpath(self.dirs[int(columns["label"][i])], columns["key"][i], self.ext)
            path = os.path.join(self.out, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = temporary_name(path)
            with open(tmp, "wb") as f:
                f.write(image)
            os.replace(tmp, path)  # no fsync per image: the shard's sidecar (fsynced) commits the set
            self.written.append(rel)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.bytes, self.sha256 = digest(self.out, self.written)
        else:
            for rel in self.written:  # an unfinished folder shard leaves nothing behind
                os.remove(os.path.join(self.out, rel))
        return False
