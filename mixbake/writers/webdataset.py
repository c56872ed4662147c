"""WebDataset shards: ``OUT/train-000000.tar`` with ``<key>.cls``, ``<key>.<ext>``, ``<key>.json`` per sample.

Tars are byte-reproducible: fixed mtime (0), owner (0/0, no names) and mode, ustar format; samples
in the plan's (already shuffled) order, each sample's entries sorted by extension.
"""
from __future__ import annotations

import io
import json
import tarfile
from typing import List

import numpy as np

from .. import imaging
from . import AtomicFileWriter


def sample_json(columns: dict, i: int) -> bytes:
    """The soft label and provenance of row ``i`` (what ``<key>.json`` holds)."""
    record = {
        "key": columns["key"][i],
        "label": int(columns["label"][i]),
        "soft_label": [float(v) for v in np.asarray(columns["soft_label"][i], dtype=np.float32)],
        "op": columns["op"][i],
        "lam": float(np.float32(columns["lam"][i])),
        "src_a": int(columns["src_a"][i]),
        "src_b": int(columns["src_b"][i]) if columns["src_b"][i] >= 0 else None,
        "label_a": int(columns["label_a"][i]),
        "label_b": int(columns["label_b"][i]) if columns["label_b"][i] >= 0 else None,
        "boxes": np.asarray(columns["boxes"][i], dtype=np.int64).tolist(),
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8")


class TarShardWriter(AtomicFileWriter):
    def __init__(self, store, relpath: str, config, classes, footer: dict):
        super().__init__(store, relpath)
        self.ext = imaging.extension(config.image_format)
        self._tar = None

    def open(self, file) -> None:
        self._tar = tarfile.open(fileobj=file, mode="w", format=tarfile.USTAR_FORMAT)

    def close(self) -> None:
        self._tar.close()

    def _add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._tar.addfile(info, io.BytesIO(data))

    def write(self, columns: dict, images: List[bytes]) -> None:
        for i, image in enumerate(images):
            key = columns["key"][i]
            entries = {"cls": str(int(columns["label"][i])).encode(), self.ext: image,
                       "json": sample_json(columns, i)}
            for ext in sorted(entries):
                self._add(f"{key}.{ext}", entries[ext])
