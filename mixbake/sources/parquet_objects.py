"""A Parquet detection source: an ``objects`` column in the Hugging Face detection convention.

``objects: struct<bbox: list<list<float>>, category: list<int>>`` (what ``datasets`` stores for
``Sequence({"bbox": Sequence(float, 4), "category": ClassLabel(...)})``, e.g. cppe-5), or the
same as a ``list<struct<bbox: list<float>, category: int>>``. The boxes are COCO's [x, y, w, h] in
pixels unless ``--bbox-format xyxy``. The category names come from the ClassLabel in the file's
``huggingface`` footer, else ``0..K-1``. Read at listing a row group at a time, as Arrow buffers
turned into numpy (no Python object per row or box); a row whose objects are null, whose bbox is
not 4 numbers, or whose bbox and category lists differ in length is a bad item.
"""
from __future__ import annotations

import json
from typing import Dict, List, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MixbakeError
from .multilabel import unnamed_classes
from .objects import check_distinct, objects_of, xywh_to_xyxy

OBJECT_NAMES = ("objects",)


def is_objects_type(t: pa.DataType) -> bool:
    if pa.types.is_list(t) and pa.types.is_struct(t.value_type):
        t = t.value_type
    return pa.types.is_struct(t) and {"bbox", "category"} <= {t.field(i).name for i in range(t.num_fields)}


def find_objects_column(schema: pa.Schema, given: Optional[str], where: str) -> Optional[str]:
    """The objects column: the one named with --objects-column, else a column named ``objects``
    of the detection type; None for a source without one."""
    if given is not None:
        if given not in schema.names:
            raise MixbakeError(f"{where}: --objects-column {given!r} is not a column; columns are: "
                               f"{', '.join(schema.names)}.")
        if not is_objects_type(schema.field(given).type):
            raise MixbakeError(f"{where}: --objects-column {given!r} has type {schema.field(given).type}: expected "
                               f"struct<bbox: list<list<float>>, category: list<int>> (Hugging Face detection).")
        return given
    for name in OBJECT_NAMES:
        if name in schema.names and is_objects_type(schema.field(name).type):
            return name
    return None


def _values(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False))


def _list_parts(arr: pa.Array) -> Tuple[np.ndarray, pa.Array, np.ndarray]:
    """(offsets rebased to 0, the flat values slice, valid per row) of a list array."""
    offsets = np.asarray(arr.offsets.to_numpy(), np.int64)
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), bool)
    values = arr.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    return offsets - offsets[0], values, valid


def read_objects(pf: pq.ParquetFile, column: str, bbox_format: str, where: str):
    """(counts per row, boxes (m, 4) as x0, y0, x1, y1, category (m,), {row: reason}) of one file."""
    counts, boxes, category, bad, base = [], [], [], {}, 0
    for rg in range(pf.num_row_groups):
        arr = pf.read_row_group(rg, columns=[column]).column(0).combine_chunks()
        valid, outer, inner, flat, box_valid, cat_values = (_per_object if pa.types.is_list(arr.type) else _per_row)(
            arr, base, bad)
        per_row = np.diff(outer)
        row_of_box = np.repeat(np.arange(len(arr)), per_row)
        wrong = (np.diff(inner) != 4) | ~box_valid
        for b in np.flatnonzero(wrong).tolist():
            bad.setdefault(base + int(row_of_box[b]), f"objects: bbox {b - int(outer[row_of_box[b]])} is not 4 numbers")
        for r in np.flatnonzero(~valid).tolist():
            bad.setdefault(base + r, "objects is null" if not arr[r].is_valid else "objects: bbox or category is null")
        cat_null = np.asarray(cat_values.is_null().to_numpy(zero_copy_only=False), bool) if len(cat_values) else \
            np.zeros(0, bool)
        for b in np.flatnonzero(cat_null & valid[row_of_box] if len(row_of_box) else cat_null).tolist():
            bad.setdefault(base + int(row_of_box[b]), f"objects: category {b - int(outer[row_of_box[b]])} is null")
        box_array = np.zeros((len(wrong), 4), np.float64)
        if (~wrong).any():
            box_array[~wrong] = _values(flat).astype(np.float64)[inner[:-1][~wrong][:, None] + np.arange(4)[None, :]]
        counts.append(np.where(valid, per_row, 0))
        keep_rows = valid[row_of_box] if len(row_of_box) else np.zeros(0, bool)
        boxes.append(box_array[keep_rows])
        kept = cat_values.filter(pa.array(keep_rows)) if len(cat_values) else cat_values
        category.append(kept.to_pylist() if pa.types.is_string(kept.type) or pa.types.is_large_string(kept.type)
                        else np.asarray(kept.fill_null(-1).to_numpy(zero_copy_only=False), np.int64))
        base += len(arr)
    boxes = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    if bbox_format != "xyxy":
        boxes = xywh_to_xyxy(boxes)
    strings = any(isinstance(c, list) for c in category)
    category = [v for c in category for v in c] if strings else np.concatenate(category)
    return np.concatenate(counts), boxes, category, bad


def _per_object(arr: pa.Array, base: int, bad: dict):
    """list<struct<bbox, category>> (one struct per object): (valid rows, object offsets, coordinate
    offsets, coordinates, bbox valid, categories aligned with the objects)."""
    outer, structs, valid = _list_parts(arr)
    inner, flat, box_valid = _list_parts(structs.field("bbox"))
    return valid, outer, inner, flat, box_valid, structs.field("category")


def _per_row(arr: pa.Array, base: int, bad: dict):
    """struct<bbox: list<list>, category: list> (lists per row), as ``_per_object`` gives it; a row
    whose two lists differ in length is bad (its entries are not used)."""
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), bool)
    outer, box_lists, bbox_ok = _list_parts(arr.field("bbox"))
    cat_offsets, cat_flat, cat_ok = _list_parts(arr.field("category"))
    valid &= bbox_ok & cat_ok
    per_row, per_row_cats = np.diff(outer), np.diff(cat_offsets)
    differ = valid & (per_row_cats != per_row)
    for r in np.flatnonzero(differ).tolist():
        bad[base + r] = f"objects: {per_row[r]} boxes but {per_row_cats[r]} categories"
    valid &= ~differ
    inner, flat, box_valid = _list_parts(box_lists)
    rows_of = np.repeat(np.arange(len(arr)), per_row)
    at = cat_offsets[:-1][rows_of] + (np.arange(len(rows_of)) - outer[:-1][rows_of])
    cats = cat_flat.take(pa.array(np.minimum(at, max(len(cat_flat) - 1, 0)))) if len(cat_flat) else \
        pa.nulls(len(rows_of), cat_flat.type)
    return valid, outer, inner, flat, box_valid, cats


def _find_names(feature) -> Optional[List[str]]:
    if isinstance(feature, dict):
        if feature.get("_type") == "ClassLabel" and "names" in feature:
            return [str(n) for n in feature["names"]]
        for key in ("category", "feature"):
            if key in feature:
                found = _find_names(feature[key])
                if found is not None:
                    return found
    if isinstance(feature, list) and feature:
        return _find_names(feature[0])
    return None


def objects_names(pf: pq.ParquetFile, column: str) -> Optional[List[str]]:
    meta = pf.schema_arrow.metadata or {}
    try:
        features = json.loads(meta.get(b"huggingface", b"{}")).get("info", {}).get("features", {})
    except ValueError:
        return None
    return _find_names(features.get(column))


def detection_labels(store, files: List[str], handles: List[pq.ParquetFile], column: str, bbox_format: Optional[str]):
    """(classes, labels, bad, targets, objects) of the listed files' objects columns."""
    counts, boxes, category, bad, base = [], [], [], {}, 0
    for rel, pf in zip(files, handles):
        c, b, k, file_bad = read_objects(pf, column, bbox_format or "xywh", store.display(rel))
        counts.append(c)
        boxes.append(b)
        category.append(k)
        bad.update({base + r: reason for r, reason in file_bad.items()})
        base += pf.metadata.num_rows
    names = objects_names(handles[0], column)
    counts = np.concatenate(counts)
    if any(isinstance(c, list) for c in category):  # category names: mapped to the classes
        given = [v for c in category for v in c]
        names = names or sorted({v for v in given if v is not None})
        index = {n: i for i, n in enumerate(names)}
        rows = np.repeat(np.arange(len(counts)), counts)
        category = np.fromiter((index.get(v, -1) for v in given), np.int64, count=len(given))
        for k in np.flatnonzero(category < 0).tolist():
            if given[k] is not None:
                bad.setdefault(int(rows[k]), f"objects: category {given[k]!r} is not one of the {len(names)} classes")
    else:
        category = np.concatenate(category) if category else np.zeros(0, np.int64)
        if names is None:
            names = list(unnamed_classes(category, category >= 0, f"objects column {column!r}")) or ["0"]
    check_distinct(names, f"objects column {column!r}")
    objects, targets, labels, bad = objects_of(counts, np.concatenate(boxes), category, len(names), bad)
    return names, labels, bad, targets, objects

