"""``mixbake plan``: what a bake would produce, from the listing and the plan alone (nothing decoded)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .config import OPS, BakeConfig
from .plan import plan_shard
from .run import make_tasks
from .sources import open_source
from .writers import shard_relpath

# Rough encoded bytes per output pixel for photographs (measured on the benchmark photos at 224x224);
# flat synthetic images compress far better. Only for the estimate line.
BYTES_PER_PIXEL = {"jpeg": 0.33, "webp": 0.25, "png": 1.9, "raw": 3.0}


def plan_summary(source, image_column: Optional[str] = None, label_column: Optional[str] = None,
                 **options) -> dict:
    config = BakeConfig(**options)
    catalog = open_source(source, image_column, label_column)
    tasks = make_tasks(config, catalog, "", "plan")
    ops = dict.fromkeys(OPS, 0)
    shard_rows = []
    for task in tasks:
        valid = np.array([p not in task.known_bad for p in range(len(task.items))], dtype=bool)
        plan = plan_shard(config, task.shard_id, task.labels, valid)
        shard_rows.append(len(plan))
        for code, name in enumerate(OPS):
            ops[name] += int(np.sum(plan.op == code))
    width, height = config.size
    rows = sum(shard_rows)
    labelled = catalog.labels[catalog.labels >= 0]
    return {
        "source": catalog.summary(),
        "classes": {name: int(np.sum(labelled == i)) for i, name in enumerate(catalog.classes)},
        "known_bad": len(catalog.bad),
        "notes": list(catalog.notes),
        "rows": rows,
        "ops": ops,
        "shards": len(tasks),
        "shard_rows": {"min": min(shard_rows), "max": max(shard_rows)},
        "first_shard": shard_relpath(config.format, 0, len(tasks)),
        "estimated_bytes": int(rows * width * height * BYTES_PER_PIXEL[config.image_format]),
        "config": config.to_dict(),
    }


def format_plan(d: dict) -> str:
    from .words import count, human_bytes
    src, cfg = d["source"], d["config"]
    lines = [
        f"source     {src['kind']} {src['uri']}: {count(src['items'], 'item')}, "
        f"{count(len(d['classes']), 'class', 'classes')}"
        + (f", {d['known_bad']} bad at listing" if d["known_bad"] else ""),
        f"output     {count(d['rows'], 'sample')} in {count(d['shards'], 'shard')} "
        f"({d['shard_rows']['min']}..{d['shard_rows']['max']} rows each; first: {d['first_shard']})",
        f"images     {cfg['size'][0]}x{cfg['size'][1]} {cfg['image_format']}, {cfg['format']} format, "
        f"~{human_bytes(d['estimated_bytes'])} (estimate for photographs)",
        "ops        " + ", ".join(f"{op} {n} ({100 * n / max(1, d['rows']):.0f}%)" for op, n in d["ops"].items() if n),
        f"seed       {cfg['seed']}",
        "classes    " + ", ".join(f"{name} ({n})" for name, n in list(d["classes"].items())[:20])
        + (" ..." if len(d["classes"]) > 20 else ""),
    ] + [f"note       {note}" for note in d["notes"]]
    return "\n".join(lines)
