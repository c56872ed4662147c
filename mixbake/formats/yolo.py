"""The YOLO layout, for detection builds: ``OUT/images/<key>.<ext>``, ``OUT/labels/<key>.txt``
(one ``class cx cy w h`` line per kept box, normalised to the output size, as Ultralytics and
Darknet read them) and ``OUT/data.yaml`` (``path``, ``train``, ``val``, ``nc``, ``names``), beside
labels.parquet. A YOLO label line has no weight: a mixup row's boxes are all written, and their
weights (lam, 1-lam) and sources are in labels.parquet's ``objects`` (and in ``annotations.json``
of ``--format folder``). A shard is a group of files as in the folder format (``images#NNNNN``):
its digest covers each image and its label file.
"""
from __future__ import annotations

from typing import List, Sequence

from . import EXTENSIONS
from .folder import IMAGES, FolderFormat, FolderShardWriter, image_key

LABEL_DIR = "labels"
DATA_YAML = "data.yaml"


def image_relpaths(image_format: str, keys) -> List[str]:
    ext = EXTENSIONS[image_format]
    return [f"{IMAGES}/{key}.{ext}" for key in keys]


def label_relpath(image_rel: str) -> str:
    return f"{LABEL_DIR}/{image_key(image_rel)[0]}.txt"


def label_lines(objects: Sequence[dict], width: int, height: int) -> bytes:
    """``class cx cy w h`` per box, normalised, 6 decimals (what YOLO tools write)."""
    lines = []
    for obj in objects:
        x0, y0, x1, y1 = obj["bbox"]
        lines.append(f"{obj['category']} {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
                     f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}")
    return ("\n".join(lines) + "\n" if lines else "").encode("ascii")


class YoloShardWriter(FolderShardWriter):
    def __init__(self, store, relpath, config, classes, footer):
        super().__init__(store, relpath, config, classes, footer)
        self.size = tuple(config.size)

    def image_paths(self, columns):
        return image_relpaths(self.image_format, columns["key"])

    def companions(self, rel, columns, i):
        return [(label_relpath(rel), label_lines(columns["objects"].row(i), *self.size))]


class YoloFormat(FolderFormat):
    name = "yolo"

    def owns(self, name):
        return name in (IMAGES, LABEL_DIR, DATA_YAML)

    def temporary_dirs(self):
        return (IMAGES, LABEL_DIR)

    def open_writer(self, store, relpath, config, classes, footer):
        return YoloShardWriter(store, relpath, config, classes, footer)

    def label_columns(self, classes, config, columns):
        return {"path": image_relpaths(config.image_format, columns["key"])}

    def companion_paths(self, store, image_rel):
        return [label_relpath(image_rel)]

    def finish(self, store, config, doc):
        """data.yaml: the dataset's root, its images for train and val alike, and the names."""
        from ..card import dump_yaml
        store.write_bytes(DATA_YAML, dump_yaml({"path": ".", "train": IMAGES, "val": IMAGES,
                                                "nc": len(doc["classes"]),
                                                "names": {i: n for i, n in enumerate(doc["classes"])}}).encode("utf-8"))


FORMAT = YoloFormat()
