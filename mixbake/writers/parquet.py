"""Parquet shard writer: a context manager that writes to a dot-named temporary and renames it into
place only when the shard is complete (a crash leaves no file that looks finished).

Schema and footer follow what Hugging Face ``datasets``, DuckDB and Polars read without options:
``image`` is ``struct<bytes: binary, path: string>``, ``label`` int64 with a ClassLabel in the
``huggingface`` footer key, ``soft_label`` ``list<float32>``. Image bytes are stored uncompressed
(they are already compressed); the other columns use zstd.
"""
from __future__ import annotations

import json
import os
from typing import List, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import imaging
from ..config import BakeConfig

ROW_GROUP_ROWS = 1000
ROW_GROUP_BYTES = 100 << 20
IMAGE_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
LABEL_FIELDS = [
    pa.field("key", pa.string()),
    pa.field("label", pa.int64()),
    pa.field("soft_label", pa.list_(pa.float32())),
    pa.field("op", pa.string()),
    pa.field("lam", pa.float32()),
    pa.field("src_a", pa.int64()),
    pa.field("src_b", pa.int64()),
    pa.field("label_a", pa.int64()),
    pa.field("label_b", pa.int64()),
    pa.field("boxes", pa.list_(pa.list_(pa.int32()))),
]
RAW_FIELDS = [pa.field("height", pa.int32()), pa.field("width", pa.int32()), pa.field("channels", pa.int32())]


def _value(dtype: str) -> dict:
    return {"dtype": dtype, "_type": "Value"}


def _sequence(feature: dict) -> dict:
    return {"feature": feature, "_type": "Sequence"}


def hf_features(config: BakeConfig, classes) -> dict:
    """The ``datasets`` features matching the shard schema exactly (HF ignores them otherwise)."""
    features = {
        "key": _value("string"),
        "image": {"_type": "Image"} if config.image_format != "raw" else
        {"bytes": _value("binary"), "path": _value("string")},
        "label": {"names": list(classes), "_type": "ClassLabel"},
        "soft_label": _sequence(_value("float32")),
        "op": _value("string"),
        "lam": _value("float32"),
        "src_a": _value("int64"), "src_b": _value("int64"),
        "label_a": _value("int64"), "label_b": _value("int64"),
        "boxes": _sequence(_sequence(_value("int32"))),
    }
    if config.image_format == "raw":
        features.update({f.name: _value("int32") for f in RAW_FIELDS})
    return features


def shard_schema(config: BakeConfig, classes, footer: Optional[dict] = None) -> pa.Schema:
    """Shard columns; ``footer`` (build id, shard id, items, skipped errors) lets a resume trust the file."""
    fields = [LABEL_FIELDS[0], pa.field("image", IMAGE_TYPE)] + LABEL_FIELDS[1:]
    if config.image_format == "raw":
        fields += RAW_FIELDS
    metadata = {
        b"huggingface": json.dumps({"info": {"features": hf_features(config, classes)}}).encode(),
        b"mixbake": json.dumps(footer or {}, sort_keys=True).encode(),
    }
    return pa.schema(fields, metadata=metadata)


class ShardWriter:
    """``with ShardWriter(path, ...) as w: w.add(...)``; the file appears at ``path`` on clean exit only."""

    def __init__(self, path: str, config: BakeConfig, classes, footer: dict):
        self.path = path
        # The pid keeps an orphaned worker of a killed run from sharing a temporary with a resumed one.
        self.tmp_path = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
        self.config = config
        self.schema = shard_schema(config, classes, footer)
        self.ext = imaging.extension(config.image_format)
        self._rows: List[dict] = []
        self._bytes = 0
        self._writer = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        non_image = [f.name for f in self.schema if f.name != "image"]
        self._writer = pq.ParquetWriter(
            self.tmp_path, self.schema,
            compression={**{n: "zstd" for n in non_image}, "image.bytes": "none", "image.path": "zstd"},
            use_dictionary=["op", "image.path"],
            write_statistics=[n for n in non_image if n not in ("soft_label", "boxes")],
        )
        return self

    def add(self, *, key: str, image: bytes, boxes: np.ndarray, soft_label: np.ndarray, **columns) -> None:
        row = dict(columns, key=key, image={"bytes": image, "path": None if self.ext == "raw" else f"{key}.{self.ext}"},
                   soft_label=soft_label.tolist(), boxes=np.asarray(boxes, dtype=np.int32).tolist())
        if self.ext == "raw":
            height, width = self.config.size[1], self.config.size[0]
            row.update(height=height, width=width, channels=3)
        self._rows.append(row)
        self._bytes += len(image)
        if len(self._rows) >= ROW_GROUP_ROWS or self._bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self.schema),
                                     row_group_size=len(self._rows))
        self._rows, self._bytes = [], 0

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self._flush()
            self._writer.close()
        finally:
            if exc_type is None:
                _fsync(self.tmp_path)
                os.replace(self.tmp_path, self.path)
            elif os.path.exists(self.tmp_path):
                os.remove(self.tmp_path)
        return False


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
