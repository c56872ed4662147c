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
from typing import Dict, List, Sequence, Tuple

from . import EXTENSIONS, LABELS, Format

IMAGES = "images"
MASKS = "masks"                    # segmentation builds: masks/<key>.png (mixup rows: masks/<key>.b.png too)
ANNOTATIONS = "annotations.json"   # detection builds: the rows' objects as COCO instances
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


def image_key(image_rel: str) -> Tuple[str, str]:
    """(key, extension) of an output image's path (``images/<class>/<key>.<ext>``)."""
    name = image_rel.rpartition("/")[2]
    stem, _, ext = name.rpartition(".")
    return stem, ext


def mask_relpaths(image_rel: str) -> List[str]:
    """Where a row's ``mask`` and ``mask_b`` files go (PNG; raw bytes beside a raw image)."""
    key, ext = image_key(image_rel)
    end = "raw" if ext == "raw" else "png"
    return [f"{MASKS}/{key}.{end}", f"{MASKS}/{key}.b.{end}"]


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
        paths = self.image_paths(columns)
        for i, (rel, image) in enumerate(zip(paths, images)):
            self._put(rel, image)
            for companion, data in self.companions(rel, columns, i):
                if data is not None:
                    self._put(companion, data)

    def image_paths(self, columns: dict) -> List[str]:
        return image_relpaths(self.classes, self.image_format, columns["key"], columns["label"])

    def companions(self, rel: str, columns: dict, i: int):
        """(path, bytes or None) of the files that go with row ``i``'s image (its masks)."""
        if "mask" not in columns:
            return []
        return list(zip(mask_relpaths(rel), (columns["mask"][i], columns["mask_b"][i])))

    def _put(self, rel: str, data: bytes) -> None:
        # no fsync per file: the build syncs OUT once before its manifest
        self.store.write_bytes(rel, data, fsync=False)
        self.written.append((rel, hashlib.sha256(data).hexdigest()))
        self.bytes += len(data)

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
        return name in (IMAGES, LABELS_CSV, MASKS, ANNOTATIONS)

    def temporary_dirs(self):
        return (IMAGES, MASKS)

    def companion_paths(self, store, image_rel: str) -> List[str]:
        """The files a shard holds beside an image (its masks), those that are there."""
        if not store.isdir(MASKS):
            return []
        return [rel for rel in mask_relpaths(image_rel) if store.exists(rel)]

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
        if doc.get("boxes"):
            store.write_bytes(ANNOTATIONS, coco_annotations(store, config, doc))

    def durable_path(self, relpath):
        return None  # thousands of files: OUT's file system is synced once instead

    def digest(self, store, relpath, paths=None):
        """(total bytes, sha256 over 'path sha256' lines) of a folder shard's files, in row order
        (each image, then the files that go with it)."""
        files = [f for rel in paths for f in [rel, *self.companion_paths(store, rel)]]
        digests = [store.digest(rel) for rel in files]  # each file opened and read once
        return sum(size for size, _ in digests), _lines_digest(zip(files, (sha for _, sha in digests)))

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


def coco_annotations(store, config, doc: dict) -> bytes:
    """The build's objects as a COCO instances file: an image per row (its file; id row + 1), an
    annotation per kept box (bbox [x, y, w, h] in output pixels, with its ``weight`` and ``source``
    as extra fields), category id = class index + 1."""
    import pyarrow.parquet as pq
    width, height = config.size
    with store.open_input(LABELS) as f:
        table = pq.ParquetFile(f).read(columns=["path", "objects"])
    images, annotations = [], []
    for i, (path, objects) in enumerate(zip(table.column("path").to_pylist(), table.column("objects").to_pylist())):
        images.append({"id": i + 1, "file_name": path, "width": width, "height": height})
        for obj in objects or []:
            x0, y0, x1, y1 = obj["bbox"]
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                                "area": (x1 - x0) * (y1 - y0), "category_id": obj["category"] + 1, "iscrowd": 0,
                                "weight": obj["weight"], "source": obj["source"]})
    # COCO's ids start at 1 (pycocotools reads an annotation id 0 as "unmatched"): category k+1 is class k
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(doc["classes"])]
    return json.dumps({"images": images, "annotations": annotations, "categories": categories},
                      separators=(",", ":")).encode("utf-8")


FORMAT = FolderFormat()
