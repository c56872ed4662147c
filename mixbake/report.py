"""``mixbake inspect OUT``: what a finished build holds, from labels.parquet and manifest.json only
(no image is read, so it is fast on any size of build).

``inspect(out) -> dict`` gathers the numbers (JSON-ready); ``format_inspect(info) -> str`` lays them
out for people: sizes in human units, counts per op, lam histograms, soft-label mass per class.
"""
from __future__ import annotations

import json
import os
from typing import List, Optional

import numpy as np

from . import manifest, ops
from .errors import MixbakeError
from .pairs import partner_stats
from .humanize import count, human_bytes

LAM_BINS = 10
MIXED_OPS = ops.with_lam()        # the ops whose lam varies
ERROR_LINES = 5
BAR = 30                          # characters of the longest bar


def inspect(out) -> dict:
    """The summary of the finished build in ``out``."""
    import pyarrow.parquet as pq

    from .store import Store

    out = os.fspath(out)
    doc = manifest.read_finished(Store.open(out))
    labels_path = os.path.join(out, manifest.LABELS)
    if not os.path.exists(labels_path):
        raise MixbakeError(f"{out}: labels.parquet is missing (the manifest lists it).")
    # the per-row columns (a few numbers a row); the soft label is streamed, a row group at a time
    multi = doc.get("label_kind") == "multi"
    sources = ["labels_a", "labels_b"] if multi else ["label_a", "label_b"]
    table = pq.read_table(labels_path, columns=["op", "lam", "label", *sources, "src_a", "src_b"])
    config, errors = doc["config"], doc.get("errors") or {}
    lam = table.column("lam").to_numpy().astype(np.float64)
    return {
        "out": os.path.abspath(out),
        "build_id": doc.get("build_id"),
        "mixbake_version": doc.get("mixbake_version"),
        "format": config.get("format", "parquet"),
        "image_format": config["image_format"],
        "size": list(config["size"]),
        "rows": table.num_rows,
        "shards": len(doc["shards"]),
        "bytes": int(doc["totals"]["bytes"]),
        "bytes_human": human_bytes(doc["totals"]["bytes"]),
        "items": doc["totals"]["items"],
        "skipped": doc["totals"]["skipped"],
        **_op_counts(table, lam, doc),
        "label_kind": doc.get("label_kind", "class"),
        "masks": _mask_mass(out, doc) if doc.get("masks") else None,
        "boxes": _box_counts(labels_path, list(doc["classes"]), table) if doc.get("boxes") else None,
        "classes": _class_mass(labels_path, table, list(doc["classes"]), config.get("label_smoothing", 0.0), multi),
        "errors": {"count": int(errors.get("count", doc["totals"]["skipped"])),
                   "first": _first_errors(out, errors.get("path"))},
        "pairing": {**(doc.get("pairing") or {"scheme": "shard-pools"}),
                    "partners": partner_stats(table.column("src_a").to_numpy(),
                                              table.column("src_b").fill_null(-1).to_numpy(), lam)},
        "seed": doc.get("seed"),
        "config": config,
        "source": _source(doc),
    }


MASK_CLASSES_SHOWN = 20


def _mask_mass(out: str, doc: dict) -> Optional[dict]:
    """Pixel mass per mask class over every stored ``mask`` (a row group at a time; ``mask_b`` of
    mixup rows not counted): {pixels, ignore share, classes: [{index, pixels, percent}]}. None for
    formats whose masks are not in Parquet shards."""
    import io

    import pyarrow.parquet as pq
    from PIL import Image
    config = doc["config"]
    if config.get("format", "parquet") != "parquet":
        return None
    ignore, raw = int(config.get("mask_ignore_index", 255)), config["image_format"] == "raw"
    counts = np.zeros(256, np.int64)
    for entry in doc["shards"]:
        pf = pq.ParquetFile(os.path.join(out, entry["path"]))
        for g in range(pf.num_row_groups):
            column = pf.read_row_group(g, columns=["mask"]).column("mask").combine_chunks()
            cells = column.field("bytes") if pa_struct(column) else column
            for data in cells.to_pylist():
                if data is not None:
                    mask = np.frombuffer(data, np.uint8) if raw else np.asarray(Image.open(io.BytesIO(data)))
                    counts += np.bincount(mask.ravel(), minlength=256)
    total = int(counts.sum())
    labelled = [(v, int(counts[v])) for v in np.flatnonzero(counts) if v != ignore]
    labelled.sort(key=lambda vc: -vc[1])
    return {"pixels": total, "ignore_index": ignore, "ignore_percent": _percent(int(counts[ignore]), total),
            "classes": [{"index": int(v), "pixels": c, "percent": _percent(c, total)} for v, c in labelled]}


def _box_counts(labels_path: str, classes: List[str], table) -> dict:
    """Boxes per row (mean, median, max; per op), boxes dropped, and boxes per category."""
    import pyarrow.parquet as pq
    column = pq.read_table(labels_path, columns=["objects", "objects_dropped"])
    objects = column.column("objects").combine_chunks()
    per_row = np.diff(np.asarray(objects.offsets.to_numpy(), np.int64))
    dropped = column.column("objects_dropped").to_numpy().astype(np.int64)
    category = np.asarray(objects.values.field("category").to_numpy(), np.int64)
    ops_ = np.asarray(table.column("op").to_pylist(), object)
    by_op = {op: float(per_row[ops_ == op].mean()) for op in sorted(set(ops_.tolist()))}
    counts = np.bincount(category, minlength=len(classes)) if len(category) else np.zeros(len(classes), np.int64)
    return {"boxes": int(per_row.sum()), "rows": int(len(per_row)),
            "per_row": {"mean": float(per_row.mean()) if len(per_row) else 0.0,
                        "median": float(np.median(per_row)) if len(per_row) else 0.0,
                        "max": int(per_row.max(initial=0)), "none": int((per_row == 0).sum())},
            "per_op": by_op, "dropped": int(dropped.sum()), "rows_with_dropped": int((dropped > 0).sum()),
            "categories": [{"name": n, "boxes": int(c)} for n, c in zip(classes, counts.tolist())]}


def pa_struct(column) -> bool:
    import pyarrow as pa
    return pa.types.is_struct(column.type)


def _source(doc: dict) -> dict:
    source = doc.get("source", {})
    summary = {k: source.get(k) for k in ("kind", "uri", "items")}
    if source.get("skipped_files"):  # as in the manifest: only when a source file was left out
        summary["skipped_files"] = source["skipped_files"]
    return summary


def _op_counts(table, lam: np.ndarray, doc: dict) -> dict:
    """Rows per op, and for the ops whose lam varies: its histogram, mean and cross-class share."""
    rows = table.num_rows
    row_ops = np.asarray(table.column("op").to_pylist(), dtype=object)
    cross = _cross(table)
    edges = np.linspace(0.0, 1.0, LAM_BINS + 1)
    return {
        "ops": {op: {"count": int(np.sum(row_ops == op)), "percent": _percent(np.sum(row_ops == op), rows)}
                for op in ops.NAMES if op in doc["totals"]["ops"]},
        "lam": {
            "edges": [round(float(e), 6) for e in edges],
            **{op: {"count": int(np.sum(row_ops == op)),
                    "mean": round(float(lam[row_ops == op].mean()), 6) if np.any(row_ops == op) else None,
                    "cross_class": int(np.sum(cross[row_ops == op])),
                    "histogram": np.histogram(lam[row_ops == op], bins=edges)[0].astype(int).tolist()}
               for op in MIXED_OPS},
        },
    }


def _cross(table) -> np.ndarray:
    """Rows whose two sources' labels differ (classes; for multi-label: their sets)."""
    if "label_a" in table.column_names:
        return (table.column("label_a").to_numpy() != table.column("label_b").fill_null(-1).to_numpy()) & \
            np.asarray(table.column("label_b").is_valid())
    a, b = table.column("labels_a").combine_chunks(), table.column("labels_b").combine_chunks()
    oa, ob = a.offsets.to_numpy(), b.offsets.to_numpy()
    va, vb = a.values.to_numpy(), b.values.to_numpy()
    differ = np.diff(oa) != np.diff(ob)
    for r in np.flatnonzero(~differ & np.diff(oa).astype(bool)):  # (same size: compare the classes)
        differ[r] = not np.array_equal(va[oa[r]:oa[r + 1]], vb[ob[r]:ob[r + 1]])
    return differ & np.asarray(b.is_valid())


def _class_mass(labels_path: str, table, classes: List[str], smoothing: float, multi: bool = False) -> List[dict]:
    """Soft-label mass per class, and the rows whose label is the class (multi-label: the rows that
    hold the class at all)."""
    rows = table.num_rows
    mass, holding = _soft_mass(labels_path, len(classes), smoothing)
    hard = holding if multi else np.bincount(table.column("label").to_numpy(), minlength=len(classes)) if rows else \
        np.zeros(len(classes), np.int64)
    return [{"name": name, "mass": round(float(mass[c]), 4), "percent": _percent(mass[c], rows),
             "label_count": int(hard[c])} for c, name in enumerate(classes)]


def _soft_mass(labels_path: str, num_classes: int, smoothing: float) -> np.ndarray:
    """The soft label summed over the rows, a row group at a time: from the sparse form when the
    build has one (``(1-eps)*sparse + eps/K``, in O(non-zeros)), else from the dense one."""
    import pyarrow.parquet as pq
    pf = pq.ParquetFile(labels_path)
    sparse = "soft_index" in pf.schema_arrow.names
    mass, holding = np.zeros(num_classes, dtype=np.float64), np.zeros(num_classes, dtype=np.int64)
    columns = ["soft_index", "soft_value"] if sparse else ["soft_label"]
    for batch in pf.iter_batches(batch_size=16384, columns=columns, use_threads=False):
        if sparse:
            index = batch.column(0).values.to_numpy()
            value = batch.column(1).values.to_numpy().astype(np.float64)
            mass += np.bincount(index, weights=value, minlength=num_classes) * (1 - smoothing) \
                + batch.num_rows * smoothing / num_classes
            holding += np.bincount(index[value > 0], minlength=num_classes)
            continue
        values = batch.column(0).values.to_numpy()
        if len(values) != batch.num_rows * num_classes:
            raise MixbakeError(f"labels.parquet: soft_label rows do not all hold {num_classes} classes.")
        values = values.reshape(batch.num_rows, num_classes)
        mass += values.sum(axis=0, dtype=np.float64)
        holding += (values > smoothing / num_classes + 1e-6).sum(axis=0)
    return mass, holding


def _percent(part, whole) -> float:
    return round(100.0 * float(part) / whole, 2) if whole else 0.0


def _first_errors(out: str, relpath: Optional[str]) -> List[str]:
    path = os.path.join(out, relpath or manifest.ERRORS)
    if not os.path.exists(path):
        return []
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if len(lines) == ERROR_LINES:
                break
            try:
                record = json.loads(line)
                lines.append(f"{record['ref']}: {record['reason']}")
            except (ValueError, KeyError, TypeError):
                lines.append(line.rstrip("\n"))
    return lines


# ---------------------------------------------------------------- text

_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(value: float, top: float, width: int = BAR) -> str:
    """A horizontal bar in eighth-character steps, ``width`` characters for ``top``."""
    if top <= 0 or value <= 0:
        return ""
    eighths = max(1, int(round(8 * width * value / top)))
    full, rest = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[rest] if rest else "")


def format_inspect(info: dict) -> str:
    lines = _overview(info) + [""] + _ops(info)
    if any(info["lam"][op]["count"] for op in MIXED_OPS):
        lines += [""] + _lam(info)
    lines += [""] + _classes(info) + _masks(info) + _boxes(info) + [""] + _errors(info) + [""] + _config(info)
    return "\n".join(lines)


def _overview(info: dict) -> List[str]:
    width, height = info["size"]
    source = info["source"]
    shards = count(info['shards'], 'shard')
    return [
        f"mixbake build {info['out']}",
        f"  rows     {info['rows']:,} in {shards}, {info['bytes_human']}",
        f"  format   {info['format']}, {info['image_format']} images {width}x{height}",
        f"  source   {source['uri'] if source['uri'] == source['kind'] else source['kind'] + ' ' + source['uri']}"
        f" ({source['items']:,} items, "
        f"{info['skipped']:,} skipped)",
        f"  seed     {info['seed']}",
        _pairing(info["pairing"]),
        f"  build    {info['build_id']} (mixbake {info['mixbake_version']})",
    ]


def _pairing(pairing: dict) -> str:
    """'pairing  passes (pools of 500 items, 4 copies per pass): partners per item median 16 ...'"""
    how = (f" (pools of {pairing['pool_size']} items, {count(pairing['copies_per_pass'], 'copy', 'copies')} "
           f"per pass)" if "pool_size" in pairing else "")
    partners = pairing["partners"]
    if not partners:
        return f"  pairing  {pairing['scheme']}{how}: no row has a partner"
    return (f"  pairing  {pairing['scheme']}{how}: partners per item median {partners['partners_median']:g} "
            f"(min {partners['partners_min']}) over {partners['mixed_rows_per_item']:g} mixed rows; "
            f"lam spread per item {partners['lam_spread_median']:.3f}")


def _ops(info: dict) -> List[str]:
    top = max([v["count"] for v in info["ops"].values()] + [1])
    digits = len(f"{top:,}")
    lines = ["ops"]
    for op, v in info["ops"].items():
        lines.append(f"  {op:<7} {v['count']:>{digits},} {v['percent']:6.1f}%  {bar(v['count'], top)}".rstrip())
    return lines


def _lam(info: dict) -> List[str]:
    """Histograms of lam (the weight of source a) side by side, one column per mixing op."""
    lam = info["lam"]
    shown = [op for op in MIXED_OPS if lam[op]["count"]]
    top = max(max(lam[op]["histogram"]) for op in shown)
    digits = len(f"{top:,}")
    width = BAR // 2
    column = digits + 1 + width + 2
    heads = [f"{op} ({lam[op]['count']:,} rows)" for op in shown]
    lines = ["lam (weight of source a)", "  " + " " * 12 + "".join(f"{h:<{column}}" for h in heads).rstrip()]
    edges = lam["edges"]
    for k in range(len(edges) - 1):
        close = "]" if k == len(edges) - 2 else ")"
        counts = [lam[op]["histogram"][k] for op in shown]
        cells = "".join(f"{c:>{digits},} {bar(c, top, width):<{width + 2}}" for c in counts)
        lines.append(f"  [{edges[k]:.1f}, {edges[k + 1]:.1f}{close}  {cells}".rstrip())
    means = "".join(f"{lam[op]['mean']:<{column}.3f}" for op in shown)
    lines.append(f"  {'mean':<12}{means}".rstrip())
    cross = "".join(f"{_percent(lam[op]['cross_class'], lam[op]['count']):.0f}%".ljust(column) for op in shown)
    lines.append(f"  {'cross-class':<12}{cross}".rstrip())  # pairs of two classes: a mixed label
    return lines


def _classes(info: dict) -> List[str]:
    name_w = min(28, max([len(c["name"]) for c in info["classes"]] + [5]))
    top = max([c["mass"] for c in info["classes"]] + [1e-12])
    total = sum(c["mass"] for c in info["classes"])
    mass_w = len(f"{top:,.2f}")
    multi = info.get("label_kind") == "multi"
    lines = [f"multi-hot mass per class (sums to {total:,.2f}; rows = rows holding the class)" if multi else
             f"soft-label mass per class (sums to {total:,.2f}, the row count; labels = argmax counts)"]
    for c in info["classes"]:
        name = c["name"] if len(c["name"]) <= name_w else c["name"][:name_w - 1] + "…"
        lines.append(f"  {name:<{name_w}} {c['mass']:>{mass_w},.2f} {c['percent']:6.1f}%  "
                     f"{bar(c['mass'], top):<{BAR}}  {'rows' if multi else 'labels'} {c['label_count']:,}".rstrip())
    return lines


def _masks(info: dict) -> List[str]:
    masks = info.get("masks")
    if not masks:
        return []
    shown = masks["classes"][:MASK_CLASSES_SHOWN]
    top = max([c["pixels"] for c in shown] + [1])
    lines = ["", f"mask pixels per class ({masks['pixels']:,} pixels; ignore index {masks['ignore_index']}: "
                 f"{masks['ignore_percent']:.1f}%)"]
    for c in shown:
        lines.append(f"  class {c['index']:<5} {c['pixels']:>12,} {c['percent']:6.1f}%  {bar(c['pixels'], top)}".rstrip())
    if len(masks["classes"]) > len(shown):
        lines.append(f"  ... and {len(masks['classes']) - len(shown)} more classes")
    return lines


def _boxes(info: dict) -> List[str]:
    boxes = info.get("boxes")
    if not boxes:
        return []
    per = boxes["per_row"]
    lines = ["", f"boxes    {boxes['boxes']:,} in {boxes['rows']:,} rows: per image mean {per['mean']:.2f}, median "
                 f"{per['median']:g}, max {per['max']}; {per['none']:,} rows without a box",
             f"  per op   " + ", ".join(f"{op} {mean:.2f}" for op, mean in boxes["per_op"].items()),
             f"  dropped  {boxes['dropped']:,} boxes (visible share below --min-visibility) in "
             f"{boxes['rows_with_dropped']:,} rows"]
    top = max([c["boxes"] for c in boxes["categories"]] + [1])
    name_w = min(28, max([len(c["name"]) for c in boxes["categories"]] + [5]))
    for c in boxes["categories"][:MASK_CLASSES_SHOWN]:
        lines.append(f"  {c['name'][:name_w]:<{name_w}} {c['boxes']:>8,}  {bar(c['boxes'], top)}".rstrip())
    if len(boxes["categories"]) > MASK_CLASSES_SHOWN:
        lines.append(f"  ... and {len(boxes['categories']) - MASK_CLASSES_SHOWN} more categories")
    return lines


def _errors(info: dict) -> List[str]:
    errors = info["errors"]
    if not errors["count"]:
        return ["errors   none (no source item was skipped)"]
    files = info["source"].get("skipped_files", 0)  # whole files left out at listing: not items
    items = errors["count"] - files
    what = [f"{items:,} source item(s)"] * bool(items) + [f"{files:,} unreadable source file(s)"] * bool(files)
    lines = [f"errors   {' and '.join(what)} skipped (errors.jsonl); first:"]
    lines += [f"  {line}" for line in errors["first"]]
    return lines


def _config(info: dict) -> List[str]:
    config = info["config"]
    items = [f"{k}={_spell(v)}" for k, v in sorted(config.items())]
    lines, line = ["config"], " "
    for item in items:
        if len(line) + len(item) + 1 > 96:
            lines.append(line)
            line = " "
        line += " " + item
    return lines + [line]


def _spell(value) -> str:
    if isinstance(value, list):
        return "x".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
