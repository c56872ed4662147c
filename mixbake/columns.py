"""The label columns every output carries (shards, labels.parquet), and their Hugging Face features.

A row's columns are its provenance (``key``, ``op``, ``lam``, ``src_a``, ``src_b``, ``boxes``) and its
label kind's (``label``, the soft label, ``label_a``, ``label_b`` for one class per item). Their Arrow
types are spelled once, here; the ``huggingface`` footer of every file is derived from the file's
own schema by :func:`hf_features` (HF applies features only when the Arrow types match exactly).

The soft label is stored dense (``soft_label``: K float32 per row), sparse (``soft_index``,
ascending int32 class indices, and ``soft_value``, their float32 weights: the non-zeros *before*
label smoothing, which stays one scalar of the config: ``dense = (1-eps)*sparse + eps/K``), or
both (``--soft-label``; ``auto``: dense up to ``DENSE_UP_TO`` classes, sparse above).
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import pyarrow as pa

from . import arrow_arrays as arrow

IMAGE_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
SOFT_FORMS = ("auto", "dense", "sparse", "both")
DENSE_UP_TO = 1000  # classes: auto stores the soft label dense up to this many, sparse above
SPARSE_FIELDS = [pa.field("soft_index", pa.list_(pa.int32())), pa.field("soft_value", pa.list_(pa.float32()))]
LABEL_FIELDS = [  # format 1's columns, in its order (the dense form)
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
# what each source's view went through before the mix (``mixbake.chain.Record``); with a chain only
AUG_TYPE = pa.struct([
    pa.field("crop", pa.list_(pa.int32())), pa.field("hflip", pa.bool_()), pa.field("vflip", pa.bool_()),
    pa.field("ops", pa.list_(pa.struct([pa.field("op", pa.string()), pa.field("value", pa.float32())]))),
    pa.field("boxes", pa.list_(pa.list_(pa.int32()))),
])
AUG_FIELDS = [pa.field("aug_a", AUG_TYPE), pa.field("aug_b", AUG_TYPE)]
LABEL_SCHEMA = pa.schema(LABEL_FIELDS)
NAMES = tuple(f.name for f in LABEL_FIELDS)


def soft_form(requested: str, num_classes: int, format_version=None) -> str:
    """How a build stores its soft label: 'dense', 'sparse' or 'both' (format 1: always dense)."""
    if format_version == 1 or requested == "dense" or (requested == "auto" and num_classes <= DENSE_UP_TO):
        return "dense"
    return "both" if requested == "both" else "sparse"


# a multi-label row's sources' class sets (in place of label_a / label_b; ``label`` is null there)
SET_FIELDS = [pa.field("labels_a", pa.list_(pa.int64())), pa.field("labels_b", pa.list_(pa.int64()))]


# a detection build's rows: every kept box in output pixels [x0, y0, x1, y1], its category, its weight
# (mixup: lam for a's, 1-lam for b's; else 1) and which source it came from; and how many were dropped
OBJECT_TYPE = pa.struct([pa.field("bbox", pa.list_(pa.float32())), pa.field("category", pa.int64()),
                         pa.field("weight", pa.float32()), pa.field("source", pa.int8())])
OBJECT_FIELDS = [pa.field("objects", pa.list_(OBJECT_TYPE)), pa.field("objects_dropped", pa.int32())]
# a build with --mosaic: each mosaic row's four sources (a, b, c, d) and their labels (null on other rows)
MOSAIC_FIELDS = [pa.field("srcs", pa.list_(pa.int64())), pa.field("srcs_labels", pa.list_(pa.list_(pa.int64())))]


def label_fields(form: str = "dense", chain: bool = False, kind: str = "class", boxes: bool = False,
                 mosaic: bool = False) -> list:
    """The label columns of a build whose soft label is stored in ``form`` (with ``chain``: and
    whose rows record their views' augmentations), for items of label ``kind`` (mixbake.targets),
    with ``boxes``: and their detection objects."""
    soft = {"dense": LABEL_FIELDS[2:3], "sparse": SPARSE_FIELDS, "both": LABEL_FIELDS[2:3] + SPARSE_FIELDS}[form]
    fields = LABEL_FIELDS[:2] + soft + LABEL_FIELDS[3:] + (AUG_FIELDS if chain else [])
    if kind == "multi":
        fields = [f for f in fields if f.name not in ("label_a", "label_b")]
        at = [f.name for f in fields].index("boxes")
        fields[at:at] = SET_FIELDS
    return fields + (OBJECT_FIELDS if boxes else []) + (MOSAIC_FIELDS if mosaic else [])


def label_names(form: str = "dense", chain: bool = False, kind: str = "class", boxes: bool = False,
                mosaic: bool = False) -> tuple:
    return tuple(f.name for f in label_fields(form, chain, kind, boxes, mosaic))


class SparseRows:
    """Sparse rows: row i holds ``index[offsets[i]:offsets[i+1]]`` with ``value[...]`` (sliceable
    by row ranges, as the worker cuts columns into row groups)."""

    def __init__(self, index: np.ndarray, value: np.ndarray, offsets: np.ndarray):
        self.index, self.value, self.offsets = index, value, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, rows):
        if isinstance(rows, slice):
            start, stop, _ = rows.indices(len(self))
            lo, hi = self.offsets[start], self.offsets[stop]
            return SparseRows(self.index[lo:hi], self.value[lo:hi], self.offsets[start:stop + 1] - lo)
        lo, hi = self.offsets[rows], self.offsets[rows + 1]
        return self.index[lo:hi], self.value[lo:hi]


def label_arrays(columns: dict) -> Dict[str, pa.Array]:
    """The label columns as Arrow arrays, built from numpy without per-row Python objects."""
    arrays = {
        "key": arrow.strings(columns["key"]),
        "label": arrow.nullable(columns["label"]) if len(columns["label"]) and np.min(columns["label"]) < 0
        else arrow.numeric(columns["label"]),  # (a multi-label row's is null)
        "op": arrow.strings(columns["op"]),
        "lam": arrow.numeric(columns["lam"], pa.float32()),
        "src_a": arrow.numeric(columns["src_a"]),
        "src_b": arrow.nullable(columns["src_b"]),
        "boxes": _boxes_array(columns["boxes"]),
    }
    if "label_a" in columns:
        arrays["label_a"], arrays["label_b"] = arrow.numeric(columns["label_a"]), arrow.nullable(columns["label_b"])
    for name in ("labels_a", "labels_b"):  # multi-label: (offsets, index) per row; offsets None: all null
        if name in columns:
            arrays[name] = _sets_array(*columns[name])
    for name in ("aug_a", "aug_b"):
        if name in columns:
            arrays[name] = pa.array(columns[name], type=AUG_TYPE)
    for field in MOSAIC_FIELDS:
        if field.name in columns:
            arrays[field.name] = pa.array(columns[field.name], type=field.type)
    if "objects" in columns:
        arrays["objects"] = columns["objects"].arrow()
        arrays["objects_dropped"] = arrow.numeric(columns["objects_dropped"], pa.int32())
    if "soft_label" in columns:
        arrays["soft_label"] = _list_array(columns["soft_label"].astype(np.float32))
    if "soft_index" in columns:
        sparse = columns["soft_index"]
        arrays["soft_index"] = arrow.lists(arrow.numeric(sparse.index, pa.int32()), sparse.offsets)
        arrays["soft_value"] = arrow.lists(arrow.numeric(sparse.value, pa.float32()), sparse.offsets)
    return arrays


def _sets_array(valid: np.ndarray, sets) -> pa.Array:
    """Per row a set of classes (``sets``: a ``sources.ItemSets`` aligned with the rows) -> list<int64>,
    null where not ``valid``."""
    values = arrow.numeric(np.asarray(sets.index, np.int64))
    return pa.ListArray.from_arrays(pa.array(sets.offsets.astype(np.int32)), values,
                                    mask=pa.array(~np.asarray(valid, bool)))


def kind_of(columns: dict) -> str:
    return "multi" if "labels_a" in columns else "class"


def form_of(columns: dict) -> str:
    """The soft label's form in a dict of columns (or a schema's names)."""
    dense, sparse = "soft_label" in columns, "soft_index" in columns
    return "both" if dense and sparse else "sparse" if sparse else "dense"


def label_table(columns: dict) -> pa.Table:
    arrays = label_arrays(columns)
    fields = label_fields(form_of(columns), "aug_a" in columns, kind_of(columns), "objects" in columns,
                          "srcs" in columns)
    return pa.Table.from_arrays([arrays[f.name] for f in fields], schema=pa.schema(fields))


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
    row = {
        "key": columns["key"][i], "label": optional(columns["label"][i]),
        "op": columns["op"][i], "lam": float(np.float32(columns["lam"][i])),
        "src_a": int(columns["src_a"][i]), "src_b": optional(columns["src_b"][i]),
        "boxes": np.asarray(columns["boxes"][i], dtype=np.int64).reshape(-1, 4).tolist(),
    }
    if "label_a" in columns:
        row.update(label_a=int(columns["label_a"][i]), label_b=optional(columns["label_b"][i]))
    for name in ("labels_a", "labels_b"):
        if name in columns:
            valid, sets = columns[name]
            row[name] = [int(c) for c in sets.of(i)] if valid[i] else None
    if "soft_label" in columns:
        row["soft_label"] = [float(v) for v in np.asarray(columns["soft_label"][i], dtype=np.float32)]
    if "soft_index" in columns:
        index, value = columns["soft_index"][i]
        row["soft_index"] = [int(c) for c in index]
        row["soft_value"] = [float(v) for v in np.asarray(value, dtype=np.float32)]
    for name in ("aug_a", "aug_b"):
        if name in columns:
            row[name] = _stored_record(columns[name][i])
    for name in ("srcs", "srcs_labels"):
        if name in columns:
            row[name] = columns[name][i]
    if "objects" in columns:
        row["objects"] = columns["objects"].row(i)
        row["objects_dropped"] = int(columns["objects_dropped"][i])
    return row


def _stored_record(record):
    """A view's record spelled as stored (values float32)."""
    if record is None:
        return None
    ops = [{"op": o["op"], "value": float(np.float32(o["value"]))} for o in record["ops"]]
    return {**record, "ops": ops}


# ---------------------------------------------------------------- Hugging Face features

def hf_features(schema: pa.Schema, classes: Sequence[str], image: bool = False) -> dict:
    """``datasets`` features spelled from a schema's Arrow types: ``label`` is a ClassLabel with the
    class names; ``image`` (with ``image=True``: encoded images) an Image feature."""
    features = {f.name: _feature(f.type) for f in schema}
    if "label" in features:
        features["label"] = {"names": list(classes), "_type": "ClassLabel"}
    if "objects" in features:
        features["objects"][0]["category"] = {"names": list(classes), "_type": "ClassLabel"}
    if image and "image" in features:
        features["image"] = {"_type": "Image"}
    for name in ("mask", "mask_b"):  # segmentation masks: PNGs, as images are (raw: plain bytes)
        if image and name in features and pa.types.is_struct(schema.field(name).type):
            features[name] = {"_type": "Image"}
    return features


def _feature(t: pa.DataType):
    if pa.types.is_list(t) and pa.types.is_struct(t.value_type):  # a list of dicts: datasets' [feature] spelling
        return [_feature(t.value_type)]
    if pa.types.is_list(t):
        return {"feature": _feature(t.value_type), "_type": "Sequence"}
    if pa.types.is_struct(t):
        return {t.field(i).name: _feature(t.field(i).type) for i in range(t.num_fields)}
    return {"dtype": {"float": "float32", "double": "float64"}.get(str(t), str(t)), "_type": "Value"}

