"""``mixbake plan``: what a bake would produce, from the listing and the plan alone (nothing decoded)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import chain, formats, ops
from .config import BakeConfig
from .pairs import few_partners, partner_stats
from .plan import plan_pool
from .plan import shard_rows as split
from .sources import SourceOptions, open_source
from .tasks import make_build

# Rough encoded bytes per output pixel for photographs (measured on the benchmark photos at 224x224);
# flat synthetic images compress far better. Only for the estimate line.
PARTNER_ROWS = 4_000_000
BYTES_PER_PIXEL = {"jpeg": 0.33, "webp": 0.25, "png": 1.9, "raw": 3.0}


def plan_summary(source, source_options: Optional[SourceOptions] = None, **options) -> dict:
    """What baking ``source`` with ``options`` (BakeConfig fields) would produce, as a JSON-ready dict."""
    config = BakeConfig(**options)
    # listed as --on-error skip would: an unreadable file becomes a note (and a count) instead of the
    # plan's end, so one look shows every file a bake would stop at
    catalog = open_source(source, source_options, on_error="skip")
    pairing, tasks = make_build(config, catalog, "", "plan")
    recorded = config.to_dict()  # (the ops a build's totals count: an op left at a later default is not one)
    counts = {name: 0 for name in ops.NAMES if name in recorded}
    shard_rows, met = [], []
    # partners are counted for every item of builds up to ~4M rows, for every stride-th item beyond
    stride = max(1, -(-len(catalog) * config.rows_per_item // PARTNER_ROWS))
    for task in tasks:
        valid = np.array([p not in task.known_bad for p in range(len(task.items))], dtype=bool)
        plan = plan_pool(config, task.pool, task.labels, valid)
        shard_rows += [len(rows) for rows in split(len(plan), task.pool.shards)]
        for op in ops.REGISTRY:
            if op.name in counts:
                counts[op.name] += int(np.sum(plan.op == op.code))
        src_a = task.items[plan.pos_a]
        counted = src_a % stride == 0
        met.append((src_a[counted], np.where(plan.pos_b >= 0, task.items[np.maximum(plan.pos_b, 0)], -1)[counted],
                    plan.lam[counted]))
    partners = partner_stats(*(np.concatenate(column) for column in zip(*met)))
    width, height = config.size
    rows = sum(shard_rows)
    labelled = catalog.labels[catalog.labels >= 0]
    return {
        "source": catalog.summary(),
        "classes": _class_counts(catalog, labelled),
        "boxes": None if catalog.objects is None else {
            "boxes": int(len(catalog.objects.boxes)),
            "images_without": int(np.sum(np.diff(catalog.objects.offsets) == 0)),
            "per_class": np.bincount(catalog.objects.category, minlength=len(catalog.classes)).tolist()},
        "known_bad": len(catalog.bad),
        "skipped_files": [{"ref": ref, "reason": reason} for ref, reason in catalog.skipped_files],
        "notes": list(catalog.notes) + _skipped_note(catalog),
        "rows": rows,
        "ops": counts,
        "shards": len(shard_rows),
        "shard_rows": {"min": min(shard_rows), "max": max(shard_rows)},
        "first_shard": formats.get(config.format).shard_relpath(0, len(shard_rows)),
        "pairing": {**pairing.to_dict(), "partners": partners},
        "chain": chain.describe(config),
        "warnings": _pairing_warnings(config, pairing, partners),
        "estimated_bytes": int(rows * width * height * BYTES_PER_PIXEL[config.image_format]),
        "config": config.to_dict(),
    }


def _skipped_note(catalog) -> list:
    if not catalog.skipped_files:
        return []
    return [f"a bake stops at the first unreadable file with --on-error fail (the default); with "
            f"--on-error skip it leaves {'it' if len(catalog.skipped_files) == 1 else 'them'} out"]


def _pairing_warnings(config, pairing, partners) -> list:
    """Say so when an item's copies would meet the same few partners again."""
    if not few_partners(partners):
        return []
    why = (f"format 1's pools of {pairing.pool_size} items" if pairing.format_version == 1 else
           f"pools of {pairing.pool_size} items" if partners["items"] > pairing.pool_size else
           f"a source of {partners['items']} items")
    return [f"items would meet few partners: a median of {partners['partners_median']:g} distinct partners "
            f"over {partners['mixed_rows_per_item']:g} mixed rows each ({why}); a model can learn fixed "
            f"pairs as it learns noisy labels{_remedy(pairing, partners)}"]


def _remedy(pairing, partners) -> str:
    if pairing.format_version == 1:
        return " (bake without format_version = 1: format 2 re-pools every pass)"
    if partners["items"] > pairing.pool_size:
        return (f" (--pool-size {partners['items']} would pair within the whole source, holding "
                f"{partners['items']} decoded items per worker)")
    return ""


def format_plan(d: dict) -> str:
    from .humanize import count, human_bytes
    src, cfg = d["source"], d["config"]
    lines = [
        f"source     {src['kind']} {src['uri']}: {count(src['items'], 'item')}, "
        f"{count(len(d['classes']), 'class', 'classes')}"
        + (f", {d['known_bad']} bad at listing" if d["known_bad"] else "")
        + (f", {count(len(d['skipped_files']), 'unreadable file')} left out" if d["skipped_files"] else ""),
        f"output     {count(d['rows'], 'sample')} in {count(d['shards'], 'shard')} "
        f"({d['shard_rows']['min']}..{d['shard_rows']['max']} rows each; first: {d['first_shard']})",
        f"images     {cfg['size'][0]}x{cfg['size'][1]} {cfg['image_format']}, {cfg['format']} format, "
        f"~{human_bytes(d['estimated_bytes'])} (estimate for photographs)",
        "chain      " + (" -> ".join(d["chain"]) + " -> the op" if d.get("chain") else
                         f"none (each source fitted by --resize {cfg['resize']})"),
        "ops        " + ", ".join(f"{op} {n} ({100 * n / max(1, d['rows']):.0f}%)" for op, n in d["ops"].items() if n),
        f"seed       {cfg['seed']}",
        _pairing_line(d["pairing"]),
        "classes    " + ", ".join(f"{name} ({n})" for name, n in list(d["classes"].items())[:20])
        + (" ..." if len(d["classes"]) > 20 else ""),
    ]
    if d.get("boxes"):
        b = d["boxes"]
        lines.append(f"boxes      {b['boxes']:,} ({b['boxes'] / max(1, src['items']):.2f} per item; "
                     f"{count(b['images_without'], 'item')} without a box; before --min-visibility)")
    lines += [f"note       {note}" for note in d["notes"]]
    return "\n".join(lines)


def _class_counts(catalog, labelled: np.ndarray) -> dict:
    """Items per class: for sets of classes (multi-label, detection), the items holding the class."""
    if catalog.targets is not None:
        held = np.bincount(catalog.targets.index, minlength=len(catalog.classes))
        return {name: int(n) for name, n in zip(catalog.classes, held.tolist())}
    return {name: int(np.sum(labelled == i)) for i, name in enumerate(catalog.classes)}


def _pairing_line(p: dict) -> str:
    line = (f"pairing    {p['scheme']}: pools of ~{p['pool_size']} items, {p['copies_per_pass']} "
            f"cop{'y' if p['copies_per_pass'] == 1 else 'ies'} per pass, {p['passes']} "
            f"pass{'' if p['passes'] == 1 else 'es'}")
    partners = p.get("partners")
    if partners:
        line += (f"; partners per item: median {partners['partners_median']:g} (min {partners['partners_min']}) "
                 f"over {partners['mixed_rows_per_item']:g} mixed rows")
    return line
