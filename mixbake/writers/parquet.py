"""Parquet shard writer: a context manager that writes to a dot-named temporary and renames it into
place only when the shard is complete (a crash leaves no file that looks finished).

Schema and footer follow what Hugging Face ``datasets``, DuckDB and Polars read without options:
``image`` is ``struct<bytes: binary, path: string>``, ``label`` int64 with a ClassLabel in the
``huggingface`` footer key, ``soft_label`` ``list<float32>``. Image bytes are stored uncompressed
(they are already compressed); the other columns use zstd.
"""
from __future__ import annotations

import json
from typing import List, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import arrow, imaging
from ..config import BakeConfig
from . import AtomicFileWriter

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


class ShardWriter(AtomicFileWriter):
    """``with ShardWriter(store, relpath, ...) as w: w.write(...)``; the file appears on clean exit only."""

    native = True  # pyarrow writes straight to the file

    def __init__(self, store, relpath: str, config: BakeConfig, classes, footer: dict):
        super().__init__(store, relpath)
        self.config = config
        self.schema = shard_schema(config, classes, footer)
        self.ext = imaging.extension(config.image_format)
        self._writer = None

    def open(self, file) -> None:
        paths = leaf_paths(self.schema)
        self._writer = pq.ParquetWriter(
            file, self.schema,
            # per leaf column: nested columns are matched by their full path (soft_label.list.element)
            compression={p: "none" if p == "image.bytes" else "zstd" for p in paths},
            use_dictionary=["op", "image.path"],
            write_statistics=[p for p in paths if p.split(".")[0] not in ("image", "soft_label", "boxes")],
        )

    def close(self) -> None:
        self._writer.close()

    def write(self, columns: dict, images: List[bytes]) -> None:
        """Write one row group: ``columns`` are row-aligned label arrays, ``images`` the encoded bytes."""
        keys = columns["key"]
        paths = [None] * len(keys) if self.ext == "raw" else [f"{k}.{self.ext}" for k in keys]
        arrays = label_arrays(columns)
        arrays["image"] = pa.StructArray.from_arrays(
            [arrow.binary(images), arrow.strings(paths)], fields=list(IMAGE_TYPE))
        if self.ext == "raw":
            width, height = self.config.size
            n = len(images)
            arrays.update(height=arrow.numeric(np.full(n, height), pa.int32()),
                          width=arrow.numeric(np.full(n, width), pa.int32()),
                          channels=arrow.numeric(np.full(n, 3), pa.int32()))
        table = pa.Table.from_arrays([arrays[f.name] for f in self.schema], schema=self.schema)
        self._writer.write_table(table, row_group_size=max(1, len(images)))

_leaf_paths = {}


def leaf_paths(schema: pa.Schema) -> list:
    """The Parquet leaf column paths of an Arrow schema (what per-column writer options match).

    Found by writing a file with no rows once per column layout, not once per shard."""
    key = str(schema.remove_metadata())
    if key not in _leaf_paths:
        sink = pa.BufferOutputStream()
        pq.ParquetWriter(sink, schema.remove_metadata()).close()  # (schema.empty_table() imports pandas)
        parquet_schema = pq.ParquetFile(pa.BufferReader(sink.getvalue())).schema
        _leaf_paths[key] = [parquet_schema.column(i).path for i in range(len(parquet_schema))]
    return _leaf_paths[key]


def label_arrays(columns: dict) -> dict:
    """The label columns as Arrow arrays, built from numpy without per-row Python objects."""
    return {
        "key": arrow.strings(columns["key"]),
        "label": arrow.numeric(columns["label"]),
        "soft_label": _list_array(columns["soft_label"].astype(np.float32)),
        "op": arrow.strings(columns["op"]),
        "lam": arrow.numeric(columns["lam"], pa.float32()),
        "src_a": arrow.numeric(columns["src_a"]),
        "src_b": arrow.nullable(columns["src_b"]),
        "label_a": arrow.numeric(columns["label_a"]),
        "label_b": arrow.nullable(columns["label_b"]),
        "boxes": _boxes_array(columns["boxes"]),
    }


def label_table(columns: dict) -> pa.Table:
    arrays = label_arrays(columns)
    return pa.Table.from_arrays([arrays[f.name] for f in LABEL_FIELDS], schema=pa.schema(LABEL_FIELDS))


def rows_per_group(config: BakeConfig) -> int:
    """Row-group size: ~1000 rows, fewer when raw pixels would push a group past ~100 MB."""
    width, height = config.size
    row_bytes = width * height * 3 if config.image_format == "raw" else width * height // 2
    return int(max(1, min(ROW_GROUP_ROWS, ROW_GROUP_BYTES // max(1, row_bytes))))


def _list_array(matrix: np.ndarray) -> pa.Array:
    """(n, k) float32 -> list<float32> with k entries per row (no Python lists)."""
    n, k = matrix.shape
    return arrow.lists(arrow.numeric(matrix.ravel(), pa.float32()), np.arange(0, n * k + 1, k))


def _boxes_array(boxes) -> pa.Array:
    """Per row an (m, 4) int array -> list<list<int32>>."""
    counts = np.fromiter(map(len, boxes), dtype=np.int64, count=len(boxes))
    outer = np.concatenate([[0], np.cumsum(counts)])
    flat = np.concatenate(boxes, dtype=np.int32, casting="unsafe").reshape(-1, 4) if len(boxes) \
        else np.zeros((0, 4), np.int32)
    inner = arrow.lists(arrow.numeric(flat.ravel(), pa.int32()), np.arange(0, len(flat) * 4 + 1, 4))
    return arrow.lists(inner, outer)
