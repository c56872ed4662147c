"""The label columns every output carries (shards, labels.parquet), and their Hugging Face features.

A row's columns are its provenance (``key``, ``op``, ``lam``, ``src_a``, ``src_b``, ``boxes``) and its
label kind's (``label``, ``soft_label``, ``label_a``, ``label_b`` for one class per item). Their Arrow
types are spelled once, here; the ``huggingface`` footer of every file is derived from the file's
own schema by :func:`hf_features` (HF applies features only when the Arrow types match exactly).
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import pyarrow as pa

from . import arrow_arrays as arrow

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
LABEL_SCHEMA = pa.schema(LABEL_FIELDS)
NAMES = tuple(f.name for f in LABEL_FIELDS)


def label_arrays(columns: dict) -> Dict[str, pa.Array]:
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
    return pa.Table.from_arrays([arrays[f.name] for f in LABEL_FIELDS], schema=LABEL_SCHEMA)


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


def row_json(columns: dict, i: int) -> dict:
    """Row ``i`` of ``columns`` as plain JSON values, spelled as labels.parquet stores them."""
    def optional(v):
        return int(v) if v >= 0 else None
    return {
        "key": columns["key"][i], "label": int(columns["label"][i]),
        "soft_label": [float(v) for v in np.asarray(columns["soft_label"][i], dtype=np.float32)],
        "op": columns["op"][i], "lam": float(np.float32(columns["lam"][i])),
        "src_a": int(columns["src_a"][i]), "src_b": optional(columns["src_b"][i]),
        "label_a": int(columns["label_a"][i]), "label_b": optional(columns["label_b"][i]),
        "boxes": np.asarray(columns["boxes"][i], dtype=np.int64).reshape(-1, 4).tolist(),
    }


# ---------------------------------------------------------------- Hugging Face features

def hf_features(schema: pa.Schema, classes: Sequence[str], image: bool = False) -> dict:
    """``datasets`` features spelled from a schema's Arrow types: ``label`` is a ClassLabel with the
    class names; ``image`` (with ``image=True``: encoded images) an Image feature."""
    features = {f.name: _feature(f.type) for f in schema}
    if "label" in features:
        features["label"] = {"names": list(classes), "_type": "ClassLabel"}
    if image and "image" in features:
        features["image"] = {"_type": "Image"}
    return features


def _feature(t: pa.DataType):
    if pa.types.is_list(t):
        return {"feature": _feature(t.value_type), "_type": "Sequence"}
    if pa.types.is_struct(t):
        return {t.field(i).name: _feature(t.field(i).type) for i in range(t.num_fields)}
    return {"dtype": {"float": "float32", "double": "float64"}.get(str(t), str(t)), "_type": "Value"}

