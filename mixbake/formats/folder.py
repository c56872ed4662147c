"""Plain files: ``OUT/images/<class of label>/<key>.<ext>``, plus labels.csv and labels.parquet.

Class folder names are made safe (no path separators, no '..', unique); each image is written to a
temporary and renamed. A shard here is a group of files, named ``images#NNNNN`` in the manifest
(not a file); its digest is the sha256 of its "relative-path sha256" lines, in row order, and
labels.parquet → ``path`` says where each row's file is.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from typing import Dict, List, Sequence

from . import EXTENSIONS, LABELS, Format

IMAGES = "images"
LABELS_CSV = "labels.csv"
CSV_COLUMNS = ["path", "key", "label", "class", "op", "lam", "label_a", "label_b", "src_a", "src_b",
               "ref_a", "ref_b"]  # then the soft label's columns (soft_label; or soft_index, soft_value)


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


def image_relpaths(classes: Sequence[str], image_format: str, keys, labels) -> List[str]:
    """Where each row's image file lives (the writer writes there; labels.parquet says so)."""
    dirs, ext = class_dirs(classes), EXTENSIONS[image_format]
    return [f"{IMAGES}/{dirs[int(label)] if label >= 0 else MULTI_DIR}/{key}.{ext}" for key, label in zip(keys, labels)]


MULTI_DIR = "_multi-label"  # a multi-label row has no one class: its image is kept here (labels.csv has its sets)


def _lines_digest(files) -> str:
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


class FolderFormat(Format):
    name = "folder"
    shard_kind = "files"

    def shard_relpath(self, shard_id, num_shards):
        return f"{IMAGES}#{shard_id:05d}"

    def owns(self, name):
        return name in (IMAGES, LABELS_CSV)

    def temporary_dirs(self):
        return (IMAGES,)

    def open_writer(self, store, relpath, config, classes, footer):
        return FolderShardWriter(store, relpath, config, classes, footer)

    def label_columns(self, classes, config, columns):
        return {"path": image_relpaths(classes, config.image_format, columns["key"], columns["label"])}

    def finish(self, store, config, doc):
        """labels.csv for people who just want files: one row per image, soft label as a JSON list.
        (No dataset card: `datasets`' imagefolder loader takes a row's class from its folder's
        name, made safe here, and its other columns from a metadata.csv beside the images.)"""
        import pyarrow.parquet as pq
        classes = doc["classes"]
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        with store.open_input(LABELS) as f:
            rows = pq.ParquetFile(f).read().to_pylist()
        soft = [c for c in ("soft_label", "soft_index", "soft_value") if rows and c in rows[0]] or ["soft_label"]
        columns = [c for c in CSV_COLUMNS if not rows or c in rows[0] or c == "class"]
        columns += [c for c in ("labels_a", "labels_b") if rows and c in rows[0]]  # multi-label: the sets
        writer.writerow(columns + soft)
        for row in rows:
            row["class"] = classes[row["label"]] if row["label"] is not None else None
            for column in soft + [c for c in ("labels_a", "labels_b") if c in row]:
                if row[column] is not None:
                    row[column] = json.dumps([v if column != "soft_value" and column != "soft_label"
                                              else round(v, 7) for v in row[column]])
            writer.writerow(["" if row[c] is None else row[c] for c in columns + soft])
        store.write_bytes(LABELS_CSV, text.getvalue().encode("utf-8"))

    def durable_path(self, relpath):
        return None  # thousands of files: OUT's file system is synced once instead

    def digest(self, store, relpath, paths=None):
        """(total bytes, sha256 over 'path sha256' lines) of a folder shard's files, in row order."""
        digests = [store.digest(rel) for rel in paths]  # each file opened and read once
        return sum(size for size, _ in digests), _lines_digest(zip(paths, (sha for _, sha in digests)))

    def read_images(self, store, relpath, wanted, config) -> Dict[int, object]:
        from ..errors import MixbakeError
        from ..imaging import decode_output
        found = {}
        for i, row in wanted.items():
            try:
                data = store.read_bytes(row["path"])
            except OSError as exc:
                raise MixbakeError(f"{row['path']}: cannot read ({exc.strerror or exc}).") from None
            found[i] = decode_output(data, config["image_format"], config["size"])
        return found


FORMAT = FolderFormat()
