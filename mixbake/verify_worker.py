"""The part of ``mixbake verify`` that runs where the shards are: one job per shard (or, with
``--deep``, per pool, which is re-planned once for all its shards). A job carries the shard's rows
of labels.parquet, read by the parent in one pass; the worker digests the shard, compares its label
columns, and checks every row's invariants at once, with numpy, in O(rows + non-zeros): no row of K
classes is made for a sparse soft label, nor a Python object per row beyond its key.
Imports no codec.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import pyarrow as pa

from . import formats, ops
from .config import BakeConfig
from .targets.classes import sparse_argmax, sparse_soft_labels

TOLERANCE = 1e-5
SHOWN = 20  # problems reported per shard (the rest are counted)


@dataclass
class ShardPart:
    shard_id: int
    entry: dict                       # the manifest's entry: path, rows, bytes, sha256
    ipc: bytes                        # its rows of labels.parquet, as an Arrow IPC stream

    @classmethod
    def of(cls, shard_id: int, entry: dict, labels: pa.Table) -> "ShardPart":
        """Its rows written out alone: a slice of a bigger batch would pickle the whole batch."""
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, labels.schema) as writer:
            writer.write_table(labels)
        return cls(shard_id, entry, sink.getvalue().to_pybytes())

    @property
    def labels(self) -> pa.Table:
        return pa.ipc.open_stream(self.ipc).read_all()


@dataclass
class VerifyJob:
    store: object
    config: BakeConfig
    classes: Tuple[str, ...]
    build_id: str
    parts: List[ShardPart]
    task: object = None               # --deep: the pool's task, re-planned ...
    valid: Optional[np.ndarray] = None  # ... with these of its items usable


@dataclass
class ShardCheck:
    shard_id: int
    problems: List[str]
    rows: int
    op_counts: Dict[str, int]
    codes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (src_a, copy) per row


def check(job: VerifyJob) -> List[ShardCheck]:
    plan = _replan(job) if job.task is not None else None
    return [_check_part(job, part, plan) for part in job.parts]


def _check_part(job: VerifyJob, part: ShardPart, plan) -> ShardCheck:
    fmt = formats.get(job.config.format)
    table, where = part.labels, part.entry["path"]
    problems, shard = _file_problems(job, fmt, part, table)
    if not problems:
        if shard is not None and not shard.equals(table.select(shard.column_names)):
            problems.append(f"labels.parquet: the rows of shard {part.shard_id} differ from {where}")
        problems += [f"{where} row {r}: {p}" for r, p in row_problems(table, job.config, len(job.classes))]
        if job.config.with_masks and job.config.format == "parquet":
            problems += _mask_problems(job, where)
        if job.config.with_boxes:
            problems += _objects_rules(table, job.config, len(job.classes), where)
        if plan is not None:
            problems += _provenance_problems(table, plan[part.shard_id], job.task, where)
    ops_ = table.column("op").to_pylist()
    counts = {name: ops_.count(name) for name in set(ops_)}
    shown = problems[:SHOWN] + ([f"{where}: ... and {len(problems) - SHOWN} more"] if len(problems) > SHOWN else [])
    return ShardCheck(part.shard_id, shown, table.num_rows, counts, _codes(table, job.config))


_LABELS_ONLY = ("shard", "row", "ref_a", "ref_b", "path")  # labels.parquet's own columns, not the shard's


def _file_problems(job: VerifyJob, fmt, part: ShardPart, table: pa.Table) -> Tuple[List[str], object]:
    """The shard as stored: present, its bytes, sha256 and rows those of the manifest; its footer
    naming the build and the manifest's classes. Also its own label columns, where it holds them."""
    store, entry, rel = job.store, part.entry, part.entry["path"]
    paths = table.column("path").to_pylist() if fmt.shard_kind == "files" else None
    missing = [p for p in paths if not store.exists(p)] if paths is not None else \
        ([rel] if not store.exists(rel) else [])
    if missing:
        return [f"{p}: missing" for p in missing[:SHOWN]], None
    what = f"images of {rel}" if paths is not None else rel
    size, sha = fmt.digest(store, rel, paths)
    problems = []
    if size != entry["bytes"]:
        problems.append(f"{what}: {size} bytes, manifest says {entry['bytes']}")
    if sha != entry["sha256"]:
        problems.append(f"{what}: sha256 differs from the manifest (file changed or corrupt)")
        return problems, None
    rows, meta, shard = fmt.read_back(store, rel, [n for n in table.column_names if n not in _LABELS_ONLY])
    if rows not in (None, entry["rows"]):
        problems.append(f"{rel}: row count differs from the manifest")
    elif meta:
        problems += metadata_problems(rel, meta, list(job.classes), job.build_id)
    return problems, shard


def _mask_problems(job: VerifyJob, rel: str) -> List[str]:
    """Every stored mask of a Parquet shard: the output's size; ``mask_b`` on the mixup rows only;
    with ``--mask-cutout ignore``, the cutout holes the ignore index. (Mask values are not checked
    against the image classes: a mask's classes are its own, often more than the images'; with
    ``--mask-classes N`` they are checked against N.)"""
    import io

    import pyarrow.parquet as pq
    from PIL import Image

    from .targets.masks import out_of_range
    config, found = job.config, []
    width, height, ignore = *config.size, config.mask_ignore_index
    with job.store.open_input(rel) as f:
        table = pq.ParquetFile(f).read(columns=["op", "boxes", "mask", "mask_b"])
    ops_, boxes = table.column("op").to_pylist(), table.column("boxes").to_pylist()
    holes = config.mask_cutout == "ignore"
    for name in ("mask", "mask_b"):
        for r, cell in enumerate(table.column(name).to_pylist()):
            if (cell is None) != (name == "mask_b" and ops_[r] != "mixup"):
                found.append(f"{rel} row {r}: {name} is {'missing' if cell is None else 'set on a ' + ops_[r] + ' row'}")
                continue
            if cell is None:
                continue
            data = cell if isinstance(cell, bytes) else cell["bytes"]
            mask = np.frombuffer(data, np.uint8) if config.image_format == "raw" else \
                np.asarray(Image.open(io.BytesIO(data)))
            if mask.size != width * height or (config.image_format != "raw" and mask.shape != (height, width)):
                found.append(f"{rel} row {r}: {name} is not {width}x{height}")
            elif out_of_range(mask, config.mask_classes, ignore):
                found.append(f"{rel} row {r}: {name} {out_of_range(mask, config.mask_classes, ignore)}")
            elif holes and ops_[r] == "cutout" and any((mask.reshape(height, width)[max(0, y0):y1, max(0, x0):x1]
                                                        != ignore).any() for x0, y0, x1, y1 in boxes[r]):
                found.append(f"{rel} row {r}: {name} is not {ignore} (ignore) in the cutout holes")
    return found


def footer_problems(store, rel: str, classes: list, build_id: Optional[str]) -> List[str]:
    """The ClassLabel names a Parquet file's footer gives readers, and the build it names."""
    import pyarrow.parquet as pq
    with store.open_input(rel) as f:
        meta = pq.ParquetFile(f).schema_arrow.metadata or {}
    return metadata_problems(rel, meta, classes, build_id)


def metadata_problems(rel: str, meta: dict, classes: list, build_id: Optional[str]) -> List[str]:
    features = json.loads(meta.get(b"huggingface", b"{}")).get("info", {}).get("features", {})
    problems = []
    if features.get("label", {}).get("names") != classes:
        problems.append(f"{rel}: its ClassLabel names differ from the manifest's classes")
    build = json.loads(meta.get(b"mixbake", b"{}")).get("build")
    if build_id is not None and build != build_id:
        problems.append(f"{rel}: its footer names build {build}, not the manifest's {build_id}")
    return problems


# ---------------------------------------------------------------- the rows, all at once

def row_problems(table: pa.Table, config: BakeConfig, num_classes: int) -> List[Tuple[int, str]]:
    """(row, problem) of every row invariant that fails: the soft label is what lam, label_a and
    label_b make (then smoothed), label its argmax, lam in [0, 1], boxes inside the image, each op's
    own rule (cutmix: lam is the kept area), and keys unique and spelled from (src_a, copy)."""
    lam = table.column("lam").to_numpy().astype(np.float64)
    found: List[Tuple[int, str]] = []
    if config.label_kind == "class":
        a = table.column("label_a").to_numpy().astype(np.int64)
        b = table.column("label_b").fill_null(-1).to_numpy().astype(np.int64)
        four = table.column("srcs").is_valid().to_numpy(zero_copy_only=False) if "srcs" in table.column_names \
            else np.zeros(table.num_rows, bool)
        if four.any():  # mosaic rows hold four classes: checked against their sources' cells
            two = np.flatnonzero(~four)
            found += [(int(two[r]), p) for r, p in _soft_problems(table.take(two), a[two], b[two], lam[two], config,
                                                                   num_classes)]
            found += _mosaic_class_problems(table, np.flatnonzero(four), config, num_classes)
        else:
            found += _soft_problems(table, a, b, lam, config, num_classes)
    else:
        found += _weight_problems(table, lam, config, num_classes)
    found += [(int(r), f"lam {lam[r]} outside [0, 1]") for r in np.flatnonzero((lam < 0) | (lam > 1))]
    found += _box_problems(table, lam, config)
    found += _key_problems(table)
    found += _record_problems(table, config)
    return sorted(found)


def _record_problems(table: pa.Table, config: BakeConfig) -> List[Tuple[int, str]]:
    """With a chain: a view record wherever there is a view (aug_b with a partner, aug_a but on the
    --keep-originals rows), and every erase box inside the output image."""
    if "aug_a" not in table.column_names:
        return []
    width, height = config.size
    original = np.array([k.endswith("_orig") for k in table.column("key").to_pylist()])
    has_b = table.column("src_b").is_valid().to_numpy(zero_copy_only=False)
    found = [(int(r), "aug_a is null on an augmented row, or set on an original") for r in
             np.flatnonzero(table.column("aug_a").is_null().to_numpy(zero_copy_only=False) != original)]
    found += [(int(r), "aug_b is null with a partner, or set without one") for r in
              np.flatnonzero(table.column("aug_b").is_valid().to_numpy(zero_copy_only=False) != has_b)]
    for name in ("aug_a", "aug_b"):
        for r, record in enumerate(table.column(name).to_pylist()):
            for x0, y0, x1, y1 in (record or {}).get("boxes", ()):
                if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
                    found.append((r, f"{name}: erase box {[x0, y0, x1, y1]} outside the {width}x{height} image"))
    return found


def _soft_problems(table, a, b, lam, config, num_classes) -> List[Tuple[int, str]]:
    eps = config.label_smoothing
    found = []
    if not ((0 <= a) & (a < num_classes)).all() or not (b < num_classes).all():
        bad = np.flatnonzero((a < 0) | (a >= num_classes) | (b >= num_classes))
        return [(int(r), f"label_a/label_b outside 0..{num_classes - 1}") for r in bad]
    if "soft_index" in table.column_names:
        found += _sparse_problems(table, a, b, lam, eps, num_classes)
    if "soft_label" in table.column_names:
        found += _dense_problems(table, a, b, lam, eps, num_classes)
    return found


def _stored_weights(table, num_classes: int, eps: float):
    """Each row's stored weights before smoothing, as ``targets.weights.WeightRows`` (from the sparse
    columns, or the dense one un-smoothed)."""
    from .targets.weights import WeightRows
    if "soft_index" in table.column_names:
        index_col, value_col = table.column("soft_index").combine_chunks(), table.column("soft_value").combine_chunks()
        return WeightRows(index_col.offsets.to_numpy().astype(np.int64), index_col.values.to_numpy().astype(np.int32),
                          value_col.values.to_numpy().astype(np.float64))
    dense = table.column("soft_label").combine_chunks().values.to_numpy().astype(np.float64).reshape(-1, num_classes)
    dense = (dense - eps / num_classes) / (1 - eps) if eps else dense
    rows, index = np.nonzero(np.abs(dense) > TOLERANCE)
    counts = np.bincount(rows, minlength=len(dense))
    return WeightRows(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), index.astype(np.int32),
                      dense[rows, index])


def _weight_problems(table, lam, config, num_classes: int) -> List[Tuple[int, str]]:
    """Multi-label rows: the weights are exactly lam * y_a + (1 - lam) * y_b of the stored class
    sets (each in [0, 1]), ``label`` null. Soft-label inputs (not stored): the weights sum to 1,
    none negative, and ``label`` is their argmax."""
    from .targets.weights import merge
    eps = config.label_smoothing
    have = _stored_weights(table, num_classes, eps)
    rows = have.row_ids()
    found = [(int(r), "soft label weight outside [0, 1] or class outside the classes")
             for r in np.unique(rows[(have.value < -TOLERANCE) | (have.value > 1 + TOLERANCE)
                                     | (have.index < 0) | (have.index >= num_classes)])]
    if config.label_kind == "multi":
        found += [(int(r), "label is set on a multi-label row") for r in np.flatnonzero(table.column("label").is_valid())]
        want = _multi_expected(table, lam, merge)
        bad = _rows_not_matching(have, want)
        found += [(int(r), "soft label differs from lam*y(labels_a) + (1-lam)*y(labels_b)") for r in bad]
        return found
    sums = np.bincount(rows, weights=have.value, minlength=len(lam))
    found += [(int(r), f"soft label sums to {sums[r]:.6f}") for r in np.flatnonzero(np.abs(sums - 1) > 1e-3)]
    labels = table.column("label").fill_null(-1).to_numpy()
    found += [(int(r), "label is not the argmax of the soft label") for r in np.flatnonzero(labels != have.argmax())]
    return found


def _mosaic_class_problems(table, rows: np.ndarray, config, num_classes: int) -> List[Tuple[int, str]]:
    """Mosaic rows of one-class sources: the soft label is sum_i share_i * onehot(label of source i)
    (shares: the cells' areas), ``label`` its argmax."""
    from .targets.classes import _mosaic_weights, _smoothed_argmax
    sub = table.take(rows)
    have = _stored_weights(sub, num_classes, config.label_smoothing)
    cells = sub.column("boxes").to_pylist()
    labels = sub.column("srcs_labels").to_pylist()
    classes = np.array([[c[0] for c in row] for row in labels], np.int64).reshape(-1, 4)
    areas = np.array([[(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in row] for row in cells], np.float64).reshape(-1, 4)
    want = _mosaic_weights(np.arange(len(rows)), classes, areas / np.maximum(areas.sum(axis=1, keepdims=True), 1),
                           len(rows))
    found = [(int(rows[r]), "soft label differs from the four sources' classes weighted by their cells")
             for r in _rows_not_matching(have, want)]
    stored = sub.column("label").to_numpy()
    found += [(int(rows[r]), "label is not the argmax of the soft label")
              for r in np.flatnonzero(stored != _smoothed_argmax(want, num_classes, config.label_smoothing))]
    return found


def _multi_expected(table, lam, merge):
    """Each row's expected multi-hot mix: lam * y_a + (1 - lam) * y_b from its labels_a / labels_b;
    a mosaic row's, its four sources' sets (srcs_labels) weighted by their cells' shares."""
    def sets(name):
        column = table.column(name).combine_chunks()
        offsets = column.offsets.to_numpy().astype(np.int64)
        return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets)), column.values.to_numpy().astype(np.int32)
    (ra, ia), (rb, ib) = sets("labels_a"), sets("labels_b")  # (a null labels_b: no entries)
    rows, index, value = [ra, rb], [ia, ib], [lam[ra], 1.0 - lam[rb]]
    if "srcs_labels" in table.column_names:
        four = table.column("srcs_labels").is_valid().to_numpy(zero_copy_only=False)
        keep_a, keep_b = ~four[ra], ~four[rb]
        rows, index, value = [ra[keep_a], rb[keep_b]], [ia[keep_a], ib[keep_b]], [lam[ra][keep_a], (1.0 - lam[rb])[keep_b]]
        cells = table.column("boxes").to_pylist()
        for r, labels in enumerate(table.column("srcs_labels").to_pylist()):
            if labels is None:
                continue
            areas = np.array([(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in cells[r]], np.float64)
            shares = areas / max(areas.sum(), 1)
            for k, classes in enumerate(labels):
                rows.append(np.full(len(classes), r, np.int64))
                index.append(np.asarray(classes, np.int32))
                value.append(np.full(len(classes), shares[k] if k < len(shares) else 0.0))
    return merge(np.concatenate(rows), np.concatenate(index), np.concatenate(value), len(lam), multi_hot=True)


def _rows_not_matching(have, want) -> np.ndarray:
    if np.array_equal(have.offsets, want.offsets) and np.array_equal(have.index, want.index):
        return np.unique(have.row_ids()[np.abs(have.value - want.value) > TOLERANCE])
    counts_h, counts_w = np.diff(have.offsets), np.diff(want.offsets)
    differ = counts_h != counts_w
    same = np.flatnonzero(~differ)
    for r in same:  # (rows of the same length: compare their entries)
        h, w = slice(have.offsets[r], have.offsets[r + 1]), slice(want.offsets[r], want.offsets[r + 1])
        if not np.array_equal(have.index[h], want.index[w]) or np.abs(have.value[h] - want.value[w]).max(initial=0) > TOLERANCE:
            differ[r] = True
    return np.flatnonzero(differ)


def _sparse_problems(table, a, b, lam, eps, num_classes) -> List[Tuple[int, str]]:
    index_col, value_col = table.column("soft_index").combine_chunks(), table.column("soft_value").combine_chunks()
    offsets = index_col.offsets.to_numpy()
    index = index_col.values.to_numpy().astype(np.int64)
    value = value_col.values.to_numpy().astype(np.float64)
    want = sparse_soft_labels(a, b, lam)
    found = []
    same_shape = np.array_equal(value_col.offsets.to_numpy(), offsets) and np.array_equal(offsets, want.offsets)
    if not same_shape or not np.array_equal(index, want.index) or \
            np.abs(value - want.value).max(initial=0) > TOLERANCE:
        bad = _rows_differing(offsets, index, value, want) if same_shape else range(table.num_rows)
        found += [(int(r), "soft_index/soft_value differ from lam*onehot(label_a) + (1-lam)*onehot(label_b)")
                  for r in bad]
    labels = table.column("label").to_numpy()
    for r in np.flatnonzero(labels != sparse_argmax(a, b, lam, num_classes, eps)):
        found.append((int(r), f"label {labels[r]} is not the argmax of the soft label"))
    return found


def _rows_differing(offsets, index, value, want) -> np.ndarray:
    row = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    wrong = (index != want.index) | (np.abs(value - want.value) > TOLERANCE)
    return np.unique(row[wrong])


def _dense_problems(table, a, b, lam, eps, num_classes) -> List[Tuple[int, str]]:
    column = table.column("soft_label").combine_chunks()
    offsets = column.offsets.to_numpy()
    lengths = np.diff(offsets)
    if (lengths != num_classes).any():
        return [(int(r), f"soft_label has {lengths[r]} entries for {num_classes} classes")
                for r in np.flatnonzero(lengths != num_classes)]
    soft = column.values.to_numpy().astype(np.float64).reshape(-1, num_classes) if len(a) else \
        np.zeros((0, num_classes))
    found = [(int(r), f"soft_label sums to {soft[r].sum():.6f}")
             for r in np.flatnonzero(np.abs(soft.sum(axis=1) - 1.0) > TOLERANCE)]
    labels, argmax = table.column("label").to_numpy(), np.argmax(soft, axis=1) if len(a) else np.zeros(0, int)
    found += [(int(r), f"label {labels[r]} is not the argmax of soft_label ({argmax[r]})")
              for r in np.flatnonzero(labels != argmax)]
    rows = np.arange(len(a))
    expected = np.zeros_like(soft)
    np.add.at(expected, (rows, a), lam)
    np.add.at(expected, (rows, np.where(b >= 0, b, a)), 1.0 - lam)
    expected = expected * (1 - eps) + eps / num_classes
    found += [(int(r), "soft_label differs from lam*onehot(label_a) + (1-lam)*onehot(label_b)")
              for r in np.flatnonzero(np.abs(expected - soft).max(axis=1, initial=0) > TOLERANCE)]
    return found


def _box_problems(table, lam, config) -> List[Tuple[int, str]]:
    width, height = config.size
    boxes_col = table.column("boxes").combine_chunks()
    per_row = np.diff(boxes_col.offsets.to_numpy())
    flat = boxes_col.values.values.to_numpy().astype(np.int64).reshape(-1, 4) if per_row.sum() else \
        np.zeros((0, 4), np.int64)
    row_of_box = np.repeat(np.arange(len(per_row)), per_row)
    x0, y0, x1, y1 = flat.T
    outside = ~((0 <= x0) & (x0 < x1) & (x1 <= width) & (0 <= y0) & (y0 < y1) & (y1 <= height))
    found = [(int(row_of_box[k]), f"box {flat[k].tolist()} is empty or outside the {width}x{height} image")
             for k in np.flatnonzero(outside)]
    first = np.full((len(per_row), 4), -1, np.int64)
    starts = np.concatenate([[0], np.cumsum(per_row)[:-1]]).astype(np.int64)
    has_box = per_row > 0
    first[has_box] = flat[starts[has_box]]
    names = np.asarray(table.column("op").to_pylist(), dtype=object)
    for name in set(names.tolist()):
        op = ops.BY_NAME.get(name)
        rows = np.flatnonzero(names == name)
        if op is None:
            found += [(int(r), f"op {name!r} is not one of {', '.join(ops.NAMES)}") for r in rows]
            continue
        found += [(int(rows[k]), p) for k, p in op.check_rows(lam[rows], first[rows], has_box[rows], width, height)]
    return found


def _key_problems(table) -> List[Tuple[int, str]]:
    keys, src_a = table.column("key").to_pylist(), table.column("src_a").to_numpy()
    seen, found = set(), []
    for r, (key, item) in enumerate(zip(keys, src_a.tolist())):
        if key in seen:
            found.append((r, f"duplicate key {key}"))
        seen.add(key)
        if not key.startswith(f"{item:09d}_"):
            found.append((r, f"key {key} does not name its source item {item}"))
    return found


def _codes(table: pa.Table, config: BakeConfig) -> np.ndarray:
    """One int64 per row for (src_a, copy): the parent finds a key baked twice across shards."""
    slots = config.copies + 1
    copy = [0 if k.endswith("_orig") else int(k.rsplit("_c", 1)[-1]) + 1 if "_c" in k else -1
            for k in table.column("key").to_pylist()]
    return table.column("src_a").to_numpy().astype(np.int64) * slots + np.asarray(copy, np.int64)


# ---------------------------------------------------------------- --deep: the plan again

def _replan(job: VerifyJob) -> Dict[int, object]:
    """The pool's rows as the plan makes them, per shard: (rows, their chain records by column)."""
    from .plan import plan_pool, shard_rows, take_rows
    task = job.task
    plan = plan_pool(job.config, task.pool, task.labels, job.valid)
    records = _records(job, plan)
    if job.config.with_boxes:
        records.update(_objects(job, plan, records))
    if job.config.with_masks and job.config.format == "parquet":
        records["masks"] = _ExpectedMasks(job, plan, records, range(len(plan)))
    return {shard_id: (take_rows(plan, rows), {name: column[rows.start:rows.stop] for name, column in records.items()})
            for shard_id, rows in zip(task.pool.shard_ids, shard_rows(len(plan), task.pool.shards))}


def _objects(job: VerifyJob, plan, records: Dict[str, list]) -> Dict[str, object]:
    """Every row's objects re-derived from the sources' annotations and sizes (headers) and the
    rows' recorded geometry, as the bake derives them."""
    from .worker import objects_columns
    by_view = {}
    for name, positions in (("aug_a", plan.pos_a), ("aug_b", plan.pos_b)):
        for r, (p, c) in enumerate(zip(positions.tolist(), plan.copy.tolist())):
            if p >= 0 and name in records:
                by_view[(p, c)] = records[name][r]
    sizes = _source_sizes(job.task, job.valid)
    found, dropped = objects_columns(job.task, plan, sizes, lambda p, c: by_view.get((p, c)))
    return {"objects": found, "objects_dropped": dropped}


def _records(job: VerifyJob, plan) -> Dict[str, list]:
    """With a chain: every row's ``aug_a``/``aug_b`` as the plan makes them (a random crop from the
    source's header size, read again; nothing decoded)."""
    from . import chain
    from .plan import ORIGINAL, plan_views
    config, task = job.config, job.task
    if not chain.enabled(config):
        return {}
    crop = chain.BY_NAME["crop"]
    draws = plan_views(config, task.pool, len(task.items))
    sizes = _source_sizes(task, job.valid) if crop.on(config) else {}
    copies, first = task.pool.copies, task.pool.first_copy

    def record(p: int, c: int):
        if p < 0 or c == ORIGINAL:
            return None
        v = p * copies + c - first
        made = chain.plan_record(config, draws, v)
        if crop.on(config):
            crop.chooser(config, draws["crop"][v], made)(*sizes[p])
        return made.to_dict()
    return {name: [record(p, c) for p, c in zip(positions.tolist(), plan.copy.tolist())]
            for name, positions in (("aug_a", plan.pos_a), ("aug_b", plan.pos_b))}


class _ExpectedMasks:
    """Every row's (mask, mask_b) as the bake derives them from the sources' masks (decoded again,
    fitted and moved by each view's recorded geometry, mixed by the row's op), made a shard's rows
    at a time (sliced as the re-planned columns are)."""

    def __init__(self, job: VerifyJob, plan, records: Dict[str, list], rows: range, views=None):
        self.job, self.plan, self.records, self.rows, self._views = job, plan, records, rows, views

    def __getitem__(self, cut: slice) -> "_ExpectedMasks":
        return _ExpectedMasks(self.job, self.plan, self.records, self.rows[cut], self._views)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        from .plan import take_rows
        from .worker import render_masks
        images = self._images()
        plan = take_rows(self.plan, self.rows)
        return iter([render_masks(self.job.config, plan, r, images, self.job.task.pool.first_copy)
                     for r in range(len(plan))])

    def _images(self):
        """A stand-in for the worker's PoolImages: per position its fitted mask, or per view."""
        from .chain import enabled
        from .chain.crop import source_size
        from .plan import ORIGINAL
        from .sources import ItemPayload
        from .targets.masks import decode_mask, fit_mask, replay_mask
        from .worker import PoolImages
        job, plan = self.job, self.plan
        config, task = job.config, job.task
        resize = "crop" if config.resize == "random-crop" else config.resize
        ignore, holes = config.mask_ignore_index, config.mask_cutout
        record_of = {}
        for name, positions in (("aug_a", plan.pos_a), ("aug_b", plan.pos_b)):
            for r, (p, c) in enumerate(zip(positions.tolist(), plan.copy.tolist())):
                if p >= 0 and name in self.records:
                    record_of[(p, c)] = self.records[name][r]
        images, pos = PoolImages(len(task.items)), 0
        for locator, stamp, n in zip(task.locators, task.stamps, task.chunk_sizes):
            for p, payload in zip(range(pos, pos + n), task.reader.read_chunk(locator, stamp)):
                if not job.valid[p] or not isinstance(payload, ItemPayload):
                    continue
                size = source_size(payload.image)
                mask = decode_mask(payload.mask, size)
                if not enabled(config):
                    images[p], images.mask[p] = np.zeros(0), fit_mask(mask, config.size, resize, ignore)
                    continue
                views = _Views()
                views.original_mask = fit_mask(mask, config.size, resize, ignore)
                for (q, copy), record in record_of.items():
                    if q == p and copy != ORIGINAL and record is not None:
                        fitted = fit_mask(mask, config.size, resize, ignore, record["crop"])
                        views.masks[copy - task.pool.first_copy] = replay_mask(fitted, record, ignore, holes)
                images[p] = views
            pos += n
        return images


class _Views:
    def __init__(self):
        self.masks, self.original_mask = {}, None


def _mask_rederived(job: VerifyJob, rel: str, expected) -> List[str]:
    """The shard's stored masks against the re-derived ones, row by row (the first few named)."""
    import io

    import pyarrow.parquet as pq
    from PIL import Image
    config = job.config
    width, height = config.size
    with job.store.open_input(rel) as f:
        table = pq.ParquetFile(f).read(columns=["mask", "mask_b"])
    found = []
    for r, (want, stored) in enumerate(zip(expected, zip(table.column("mask").to_pylist(),
                                                          table.column("mask_b").to_pylist()))):
        for name, mask, cell in zip(("mask", "mask_b"), want, stored):
            if mask is None or cell is None:
                continue
            data = cell if isinstance(cell, bytes) else cell["bytes"]
            have = np.frombuffer(data, np.uint8).reshape(height, width) if config.image_format == "raw" \
                else np.asarray(Image.open(io.BytesIO(data)))
            if have.shape != mask.shape or not np.array_equal(have, mask):
                found.append(f"{rel} row {r}: {name} differs from the one its sources' masks and the recorded "
                             f"geometry give")
    return found


def _objects_rules(table: pa.Table, config, num_classes: int, where: str) -> List[str]:
    """What every row's objects must be whatever the sources: boxes inside the image and not
    empty, categories among the classes, a's boxes (source 0) weighted lam in mixup rows and b's
    1 - lam, both 1 elsewhere, b's only in mixup and cutmix rows."""
    column = table.column("objects").combine_chunks()
    offsets = np.asarray(column.offsets.to_numpy(), np.int64)
    structs = column.values
    if not len(structs):
        return []
    width, height = config.size
    bbox = np.asarray(structs.field("bbox").values.to_numpy(), np.float64).reshape(-1, 4)
    category = structs.field("category").to_numpy()
    weight = structs.field("weight").to_numpy().astype(np.float64)
    source = structs.field("source").to_numpy()
    row_of = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    op = np.asarray(table.column("op").to_pylist(), object)[row_of]
    lam = table.column("lam").to_numpy().astype(np.float64)[row_of]
    want = np.where(op == "mixup", np.where(source == 0, lam, 1 - lam), 1.0)
    mosaic = op == "mosaic"
    rules = [
        ((bbox[:, 0] < 0) | (bbox[:, 1] < 0) | (bbox[:, 2] > width + 1e-3) | (bbox[:, 3] > height + 1e-3),
         f"lies outside the {width}x{height} image"),
        ((bbox[:, 2] <= bbox[:, 0]) | (bbox[:, 3] <= bbox[:, 1]), "is empty"),
        ((category < 0) | (category >= num_classes), f"has a category outside the {num_classes} classes"),
        (np.abs(weight - want) > 1e-5, "has a weight its row's op and lam do not give"),
        ((source != 0) & ~(((source == 1) & ((op == "mixup") | (op == "cutmix"))) | (mosaic & (source <= 3))),
         "comes from a source its op has not"),
    ]
    problems = []
    for wrong, why in rules:
        if wrong.any():
            k = int(np.flatnonzero(wrong)[0])
            problems.append(f"{where} row {int(row_of[k])}: object {k - int(offsets[row_of[k]])} {why}")
    return problems


def _objects_problems(table: pa.Table, objects, dropped, where: str) -> List[str]:
    """The stored objects of each row against the re-derived ones: the same boxes in order (within
    1e-3 px), categories, weights (1e-6) and sources, and the same count dropped."""
    column = table.column("objects").combine_chunks()
    offsets = np.asarray(column.offsets.to_numpy(), np.int64)
    structs = column.values
    counts_ok = np.array_equal(np.diff(offsets), np.diff(objects.offsets))
    problems = []
    if not counts_ok:
        rows = np.flatnonzero(np.diff(offsets) != np.diff(objects.offsets)) if len(offsets) == len(objects.offsets) \
            else np.arange(1)
        return [f"{where} row {int(rows[0])}: {int(np.diff(offsets)[rows[0]]) if len(offsets) > rows[0] + 1 else '?'} "
                f"objects, the recorded geometry gives {int(np.diff(objects.offsets)[rows[0]])}"]
    bbox = np.asarray(structs.field("bbox").values.to_numpy(), np.float64).reshape(-1, 4)
    checks = (("bbox", bbox, objects.bbox, 1e-3), ("category", structs.field("category").to_numpy(), objects.category, 0),
              ("weight", structs.field("weight").to_numpy(), objects.weight, 1e-6),
              ("source", structs.field("source").to_numpy(), objects.source, 0))
    row_of = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    for name, have, want, tolerance in checks:
        wrong = np.abs(np.asarray(have, np.float64) - np.asarray(want, np.float64)) > tolerance
        if wrong.ndim > 1:
            wrong = wrong.any(axis=1)
        if wrong.any():
            k = int(np.flatnonzero(wrong)[0])
            problems.append(f"{where} row {int(row_of[k])}: object {k - int(offsets[row_of[k]])}'s {name} differs from "
                            f"the one the recorded geometry gives")
    if not np.array_equal(table.column("objects_dropped").to_numpy(), np.asarray(dropped)):
        problems.append(f"{where}: column objects_dropped differs from the recorded geometry's")
    return problems


def _source_sizes(task, valid: np.ndarray) -> Dict[int, Tuple[int, int]]:
    """{pool position: oriented (width, height)} of the usable items, from their headers."""
    from .chain.crop import source_size
    from .sources import ItemPayload
    sizes, pos = {}, 0
    for locator, stamp, n in zip(task.locators, task.stamps, task.chunk_sizes):
        for p, payload in zip(range(pos, pos + n), task.reader.read_chunk(locator, stamp)):
            if valid[p]:
                sizes[p] = source_size(payload.image if isinstance(payload, ItemPayload) else payload)
        pos += n
    return sizes


def _provenance_problems(table: pa.Table, replanned, task, where: str) -> List[str]:
    plan, records = replanned
    if table.num_rows != len(plan):
        return [f"{where}: {table.num_rows} rows, the re-planned pool makes {len(plan)} here"]
    expected = {
        "op": [ops.NAMES[o] for o in plan.op],
        "src_a": task.items[plan.pos_a].tolist(),
        "src_b": [int(task.items[b]) if b >= 0 else None for b in plan.pos_b],
        "boxes": [bx.tolist() for bx in plan.boxes],
        **records,
    }
    if "srcs" in table.column_names:
        four = np.stack([plan.pos_a, plan.pos_b, plan.pos_c, plan.pos_d], axis=1)
        expected["srcs"] = [task.items[p].tolist() if p[2] >= 0 else None for p in four]
    objects = expected.pop("objects", None)
    dropped = expected.pop("objects_dropped", None)
    masks = expected.pop("masks", None)
    problems = [f"{where}: column {column} differs from the re-planned provenance"
                for column, values in expected.items() if table.column(column).to_pylist() != values]
    if objects is not None:
        problems += _objects_problems(table, objects, dropped, where)
    if masks is not None and not problems:
        problems += _mask_rederived(masks.job, where, masks)
    if not np.allclose(table.column("lam").to_numpy(), plan.lam.astype(np.float32), atol=TOLERANCE):
        problems.append(f"{where}: column lam differs from the re-planned values")
    return problems
