"""``bake_pool(task) -> PoolResult``: read a pool, decode each item once, plan, mix, encode, and
write the pool's shards.

The output of a shard is a function of the task alone; workers send back a small summary, never
pixels. Each row's pixels come from its op (``mixbake.ops``), its labels from the label kind
(``mixbake.targets``), and the files from the output format (``mixbake.formats``).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple

import numpy as np
import pyarrow as pa

from . import arrow_arrays as arrow
from . import chain, formats, imaging, ops, targets
from .columns import label_table
from .config import BakeConfig
from .errors import ItemError
from .manifest import write_sidecar
from .plan import ORIGINAL, PoolPlan, plan_pool, plan_views, shard_rows, take_rows
from .sources import BadPayload, ItemPayload
from .store.arrowfs import unreachable
from .targets.masks import load_with_mask
from .tasks import PoolResult, PoolTask, ShardResult
from .worker_process import BATCH, prepare_process, spread, task_starts, tick

ROW_GROUP_ROWS = 1000
ROW_GROUP_BYTES = 100 << 20


class PoolImages(list):
    """Each pool position's image (or ``ItemViews``; None: bad or not decoded), and what else the
    source gave it: ``soft``, its soft-label input (float32, K), and ``mask``, its segmentation mask
    at the output size, where the source has them."""

    def __init__(self, n: int):
        super().__init__([None] * n)
        self.soft: List[Optional[np.ndarray]] = [None] * n
        self.mask: List[Optional[np.ndarray]] = [None] * n  # fitted to the output (with a chain: in ItemViews)
        self.encoded_masks: Dict[int, tuple] = {}  # id of a view's mask -> (the mask, its stored bytes)
        self.sizes = np.zeros((n, 2), np.int64)   # detection: each source's oriented (width, height)


def load_pool(task: PoolTask, within=None) -> Tuple[PoolImages, Dict[int, str]]:
    """Decode every pool item once, at output size (with a chain: make its views, ``ItemViews``).
    Returns the images and {position: reason} for bad ones. ``within``: (items, positions) when
    ``task`` holds only some items of its pool, at ``positions`` of its ``items`` (a preview)."""
    images = PoolImages(len(task.items))
    bad = dict(task.known_bad)
    decode = _item_decoder(task, within)

    def flush(batch):
        for (p, _), made in zip(batch, spread(decode, batch)):
            if isinstance(made, Exception):
                bad[p] = str(made)
            else:
                images[p], images.soft[p], images.mask[p] = made[:3]
                if len(made) > 3:
                    images.sizes[p] = made[3]
        batch.clear()

    batch, pos = [], 0
    for locator, stamp, n in zip(task.locators, task.stamps, task.chunk_sizes):
        for p, payload in _chunk_payloads(task.reader, locator, stamp, range(pos, pos + n), bad):
            if p not in bad:
                batch.append((p, payload))
                if len(batch) == BATCH:
                    flush(batch)
        pos += n
    flush(batch)
    if bad and task.on_error == "fail":
        first = min(bad, key=lambda p: task.items[p])  # the first bad item in catalog order
        raise ItemError(task.refs[first], bad[first])
    return images, bad


def _item_decoder(task: PoolTask, within=None):
    """``(position, payload) -> (image or views, soft input, mask[, size])``, or the DecodeError
    saying why the item is bad: what the source gave, decoded and checked."""
    make = _view_maker(task, within) if chain.enabled(task.config) else _decoder(task.config)

    def decode_item(item):
        p, payload = item
        try:
            if not isinstance(payload, ItemPayload):
                return make(p, payload), None, None
            soft = _soft_input(payload.soft, len(task.classes), task.label_kind == "soft")
            if not task.config.with_masks:
                return make(p, payload.image), soft, None
            if chain.enabled(task.config):
                return make(p, payload), soft, None  # (the views carry their masks)
            image, mask = load_with_mask(task.config, payload)
            return image, soft, mask
        except imaging.DecodeError as exc:
            return exc

    def decode_with_boxes(item):  # (detection: the boxes checked against the image's size first)
        try:
            size = _checked_boxes(task, *item)
        except imaging.DecodeError as exc:
            return exc
        made = decode_item(item)
        return made if isinstance(made, Exception) else (*made, size)
    return decode_with_boxes if task.config.with_boxes else decode_item


def _checked_boxes(task: PoolTask, p: int, payload) -> Tuple[int, int]:
    """The oriented (width, height) of pool position ``p``'s image, from its header, after checking
    that its boxes fit it (else ``imaging.DecodeError`` naming the box)."""
    from .chain.crop import source_size
    from .targets.boxes import outside, source_boxes
    image = payload.image if isinstance(payload, ItemPayload) else payload
    if image is None or (isinstance(image, (bytes, bytearray)) and not len(image)):
        return (0, 0)  # (the decode says what is wrong with it)
    try:
        size = source_size(image)
    except Exception:  # an unreadable header: the decode names the problem
        return (0, 0)
    why = outside(source_boxes(task.objects, p, size)[0], size)
    if why:
        raise imaging.DecodeError(why)
    return size


SOFT_TOLERANCE = 1e-3  # a soft-label input must sum to 1 within this


def _soft_input(values, num_classes: int, needed: bool):
    """A source's soft label for one item, checked: K finite non-negative weights summing to 1
    (else the item is bad, saying why); float64."""
    if values is None:
        if needed:
            raise imaging.DecodeError("soft label is null")
        return None
    soft = np.asarray(values, dtype=np.float64)
    if soft.shape != (num_classes,):
        raise imaging.DecodeError(f"soft label has {soft.size} values for {num_classes} classes")
    if not np.isfinite(soft).all() or (soft < 0).any():
        raise imaging.DecodeError("soft label holds a negative or non-finite value")
    if abs(soft.sum() - 1.0) > SOFT_TOLERANCE:
        raise imaging.DecodeError(f"soft label sums to {soft.sum():.6g}, not 1 (within {SOFT_TOLERANCE:g})")
    return soft


def _decoder(config: BakeConfig):
    def decode(p: int, payload):
        return imaging.load_image(payload, config.size, config.resize, config.max_pixels)
    return decode


def _view_maker(task: PoolTask, within=None):
    """``(position, payload) -> ItemViews``: the item's view in each copy of the pool."""
    from .chain.views import ViewKey, item_views
    config, pool = task.config, task.pool
    items, positions = within or (len(task.items), np.arange(len(task.items)))
    draws = plan_views(config, pool, items)

    def make(p: int, payload):
        item = int(task.items[p])
        keys = [ViewKey(config.seed, item, pool.first_copy + j) for j in range(pool.copies)]
        return item_views(config, payload, draws, int(positions[p]) * pool.copies, keys, pool.originals)
    return make


def _chunk_payloads(reader, locator, stamp, positions, bad: Dict[int, str]):
    """(position, payload) for a chunk; a chunk that cannot be read (or stops early) marks the rest
    of its items bad with the reason, instead of failing the whole shard. An item the reader could
    not fetch alone (a ``BadPayload``) is marked bad with its own reason."""
    import pyarrow as pa
    done = 0
    try:
        for payload in reader.read_chunk(locator, stamp):
            if done == len(positions):
                break
            if isinstance(payload, BadPayload):
                bad.setdefault(positions[done], payload.reason)
            else:
                yield positions[done], payload
            done += 1
        reason = "row missing from its row group"
    except (OSError, pa.ArrowException) as exc:
        lost = unreachable(exc)
        if lost is not None:  # not a bad item: it reads fine once the store answers again
            raise lost from None
        reason = f"cannot read: {getattr(exc, 'strerror', None) or exc}"
    for p in positions[done:]:
        bad.setdefault(p, reason)


def render(config: BakeConfig, plan: PoolPlan, r: int, images, first_copy: int = 0) -> np.ndarray:
    """The pixels of planned row ``r``, by its op's pixel rule."""
    a, b, copy = plan.pos_a[r], plan.pos_b[r], plan.copy[r]
    op = ops.REGISTRY[plan.op[r]]
    others = [_view(images[p], copy, first_copy) for p in (plan.pos_c[r], plan.pos_d[r])] if op.sources > 2 else None
    return op.render(config, _view(images[a], copy, first_copy), _view(images[b], copy, first_copy) if b >= 0 else None,
                     plan.lam[r], plan.boxes[r], int(plan.fill_seed[r]), *([others] if others is not None else []))


def _view(item, copy: int, first_copy: int) -> np.ndarray:
    """An item's image in one copy: its decoded image, or with a chain its view of that copy."""
    if isinstance(item, np.ndarray):
        return item
    return item.original if copy == ORIGINAL else item.views[copy - first_copy]


def render_masks(config: BakeConfig, plan: PoolPlan, r: int, images, first_copy: int = 0):
    """(mask, mask_b or None) of planned row ``r``: its views' masks, mixed by its op's rule."""
    from .targets.masks import mix_mask
    a, b, copy = plan.pos_a[r], plan.pos_b[r], plan.copy[r]
    op = ops.REGISTRY[plan.op[r]]
    if op.sources > 2:  # mosaic: each source's mask fitted into its cell as its image is
        from .ops.mosaic import fit_resize
        from .targets.masks import mosaic_mask
        masks = [_view_mask(images, p, copy, first_copy) for p in (a, b, plan.pos_c[r], plan.pos_d[r])]
        return mosaic_mask(masks, plan.boxes[r], fit_resize(config), config.mask_ignore_index), None
    return mix_mask(op.name, _view_mask(images, a, copy, first_copy),
                    _view_mask(images, b, copy, first_copy) if b >= 0 else None, plan.boxes[r],
                    config.mask_ignore_index, config.mask_cutout)


def _view_mask(images, p: int, copy: int, first_copy: int) -> np.ndarray:
    item = images[p]
    if isinstance(item, np.ndarray):
        return images.mask[p]
    return item.original_mask if copy == ORIGINAL else item.masks[copy - first_copy]


def _records(images, positions: np.ndarray, copies: np.ndarray, first_copy: int) -> list:
    """The chain records (``aug_a``/``aug_b``) of the views at ``positions`` (-1: none) in ``copies``."""
    return [None if p < 0 or c == ORIGINAL or images[p] is None else images[p].records[c - first_copy]
            for p, c in zip(positions.tolist(), copies.tolist())]


def label_columns(task: PoolTask, plan: PoolPlan, images=None) -> dict:
    """Every non-pixel column of the rows, vectorised: provenance, and the label kind's columns as
    each row's op mixes them (its target rule)."""
    has_b = plan.pos_b >= 0
    kind = targets.get(task.label_kind).bind(pool_targets(task, images))
    a, b = kind.sources(task, plan.pos_a), kind.sources(task, plan.pos_b)
    groups = [np.flatnonzero(plan.op == op.code) for op in ops.REGISTRY]
    more = [kind.sources(task, plan.pos_c), kind.sources(task, plan.pos_d)]
    mixes = [op.mix_targets(kind, a[rows], b[rows], plan.lam[rows], [plan.boxes[r] for r in rows],
                            *([m[rows] for m in more] if op.sources > 2 else []))
             for op, rows in zip(ops.REGISTRY, groups)]
    labels = kind.columns(mixes, groups, len(plan), len(task.classes), task.config.label_smoothing,
                          task.config.soft_form(len(task.classes)))
    src_a = task.items[plan.pos_a]
    columns = {
        "key": [_key(int(i), int(c)) for i, c in zip(src_a, plan.copy)],
        **labels,
        "op": [ops.NAMES[o] for o in plan.op], "lam": plan.lam,
        "src_a": src_a, "src_b": np.where(has_b, task.items[np.maximum(plan.pos_b, 0)], -1),
        **kind.provenance(a, b), "boxes": list(plan.boxes),
    }
    if task.config.mosaic > 0:  # every source of a mosaic row (null on the rows of other ops)
        columns.update(_mosaic_provenance(task, plan, kind))
    if chain.enabled(task.config):
        first = task.pool.first_copy
        columns["aug_a"] = _records(images, plan.pos_a, plan.copy, first)
        columns["aug_b"] = _records(images, plan.pos_b, plan.copy, first)
    if task.config.with_boxes:
        first, chained = task.pool.first_copy, chain.enabled(task.config)

        def record_of(p: int, copy: int):
            return images[p].records[copy - first] if chained and copy != ORIGINAL and images[p] is not None \
                else None
        columns["objects"], columns["objects_dropped"] = objects_columns(task, plan, images.sizes, record_of)
    return columns


def objects_columns(task: PoolTask, plan: PoolPlan, sizes, record_of):
    """(``ObjectRows``, dropped per row) of the planned rows: each view's boxes moved through its
    geometry once, then combined by each row's op (``targets.boxes``). ``sizes[p]``: the oriented
    (width, height) of pool position p; ``record_of(p, copy)``: its view's chain record (or None)."""
    from .targets.boxes import ObjectRows, ViewBoxes, mosaic_objects, row_objects, source_boxes, view_boxes
    config = task.config
    seen = {}

    def view(p: int, copy: int):
        key = (p, copy)
        if key not in seen:
            size = tuple(int(v) for v in sizes[p])
            if not min(size):  # (not decoded: a preview's rows past the ones it shows)
                seen[key] = ViewBoxes(np.zeros((0, 4)), None, np.zeros(0), np.zeros(0, np.int64), [])
            else:
                boxes, category = source_boxes(task.objects, p, size)
                seen[key] = view_boxes(boxes, category, size, config, record_of(p, copy))
        return seen[key]

    rows, dropped = [], np.zeros(len(plan), np.int32)
    resize = "crop" if config.resize == "random-crop" else config.resize
    for r in range(len(plan)):
        a, b, copy = int(plan.pos_a[r]), int(plan.pos_b[r]), int(plan.copy[r])
        op = ops.REGISTRY[plan.op[r]]
        if op.sources > 2:
            views = [view(int(p), copy) if p >= 0 else None for p in (a, b, plan.pos_c[r], plan.pos_d[r])]
            *row, dropped[r] = mosaic_objects(views, plan.boxes[r], tuple(config.size), resize, config.min_visibility)
        else:
            *row, dropped[r] = row_objects(op.name, view(a, copy), view(b, copy) if b >= 0 else None,
                                           float(plan.lam[r]), plan.boxes[r], config.min_visibility)
        rows.append(row)
    return ObjectRows.of_rows(rows), dropped


def _mosaic_provenance(task: PoolTask, plan: PoolPlan, kind) -> dict:
    """``srcs`` (the catalog items a, b, c, d) and ``srcs_labels`` (their class sets, or a soft
    input's argmax) of the mosaic rows; None elsewhere."""
    four = plan.pos_c >= 0
    positions = np.stack([plan.pos_a, plan.pos_b, plan.pos_c, plan.pos_d], axis=1)
    sets = kind.table if hasattr(kind, "table") else None
    srcs, labels = [], []
    for r in range(len(plan)):
        if not four[r]:
            srcs.append(None)
            labels.append(None)
            continue
        srcs.append([int(task.items[p]) for p in positions[r]])
        if task.label_kind == "class":
            labels.append([[int(task.labels[p])] for p in positions[r]])
        elif task.label_kind == "multi":
            labels.append([sets.index[sets.offsets[p]:sets.offsets[p + 1]].astype(int).tolist() for p in positions[r]])
        else:
            labels.append([[int(sets.take(np.array([p])).argmax()[0])] for p in positions[r]])
    return {"srcs": srcs, "srcs_labels": labels}


def pool_targets(task: PoolTask, images):
    """The pool's per-position weights for the label kinds that need a table (``targets.weights``):
    multi-label sets from the task, soft-label inputs as the worker read them; None for classes."""
    if task.label_kind == "class":
        return None
    from .targets.weights import WeightRows
    if task.label_kind == "multi":
        sets = task.targets
        return WeightRows(sets.offsets, sets.index, np.ones(len(sets.index)))
    soft = getattr(images, "soft", [None] * len(images))
    nonzero = [np.flatnonzero(s) if s is not None else np.zeros(0, np.int64) for s in soft]
    offsets = np.concatenate([[0], np.cumsum([len(n) for n in nonzero])]).astype(np.int64)
    index = np.concatenate(nonzero or [np.zeros(0, np.int64)]).astype(np.int32)
    value = np.concatenate([s[n] for s, n in zip(soft, nonzero) if s is not None] or [np.zeros(0)]).astype(np.float64)
    return WeightRows(offsets, index, value)


def bake_pool(task: PoolTask) -> PoolResult:
    task_starts(+1)
    try:
        return _bake_pool(task)
    except OSError as exc:  # (a Parquet reader's request to an object store that did not answer)
        lost = unreachable(exc)
        if lost is None:
            raise
        raise lost from None
    finally:
        task_starts(-1)


def _bake_pool(task: PoolTask) -> PoolResult:
    prepare_process()
    images, bad = load_pool(task)
    valid = np.array([p not in bad for p in range(len(task.items))], dtype=bool)
    plan = plan_pool(task.config, task.pool, task.labels, valid)
    errors = [[task.refs[p], reason] for p, reason in sorted(bad.items())]
    results = []
    for shard_id, rows in zip(task.pool.shard_ids, shard_rows(len(plan), task.pool.shards)):
        first = shard_id == task.pool.first_shard
        if shard_id not in task.done:
            results.append(_write_shard(task, shard_id, take_rows(plan, rows), images, errors if first else [],
                                        len(task.items) if first else 0))
    return PoolResult(task.task_id, results)


def rows_per_group(config: BakeConfig) -> int:
    """Rows written per call (a Parquet row group): ~1000, fewer when raw pixels would push a group
    past ~100 MB."""
    width, height = config.size
    row_bytes = width * height * 3 if config.image_format == "raw" else width * height // 2
    return int(max(1, min(ROW_GROUP_ROWS, ROW_GROUP_BYTES // max(1, row_bytes))))


def _write_shard(task: PoolTask, shard_id: int, plan: PoolPlan, images, errors, items: int) -> ShardResult:
    fmt = formats.get(task.config.format)
    relpath = fmt.shard_relpath(shard_id, task.num_shards)
    try:
        return _write(task, fmt, relpath, shard_id, plan, images, errors, items)
    except OSError as exc:
        full = task.store.disk_full(relpath, exc)
        if full is None:
            raise
        raise full from None


def _write(task: PoolTask, fmt, relpath: str, shard_id: int, plan: PoolPlan, images, errors,
           items: int) -> ShardResult:
    config = task.config
    columns = label_columns(task, plan, images)
    footer = {"build": task.build_id, "shard": shard_id}
    step = rows_per_group(config)
    with fmt.open_writer(task.store, relpath, config, task.classes, footer) as writer:
        def encode(r: int) -> bytes:
            return imaging.encode(render(config, plan, r, images, task.pool.first_copy), config.image_format,
                                  config.quality)

        for start in range(0, len(plan), step):
            rows = range(start, min(start + step, len(plan)))
            encoded = []
            for first in range(rows.start, rows.stop, BATCH):
                batch = list(range(first, min(first + BATCH, rows.stop)))
                encoded.extend(spread(encode, batch))
                tick(len(batch))
            part = {name: values[rows.start:rows.stop] for name, values in columns.items()}
            if config.with_masks:
                part.update(_encoded_masks(config, plan, rows, images, task.pool.first_copy))
            writer.write(part, encoded)
    result = ShardResult(
        shard_id=shard_id, path=writer.relpath, rows=len(plan), bytes=writer.bytes, sha256=writer.sha256,
        op_counts={op.name: int(np.sum(plan.op == op.code)) for op in ops.REGISTRY}, errors=errors, items=items,
    )
    write_sidecar(task.store, shard_id, labels_rows(task, fmt, shard_id, plan, columns),
                  dict(dataclasses.asdict(result), build=task.build_id))
    return result


def _encoded_masks(config: BakeConfig, plan: PoolPlan, rows: range, images, first_copy: int) -> dict:
    """The rows' ``mask`` and ``mask_b`` (None but for mixup) as stored bytes."""
    from .targets.masks import encode_mask
    views = images.encoded_masks

    def encoded(mask, *unchanged):
        if not any(mask is v for v in unchanged):  # a mixed mask (cutmix, cutout): its own bytes
            return encode_mask(mask, config.image_format)
        if id(mask) not in views:  # (the entry keeps the view's mask alive, so its id stays its own)
            views[id(mask)] = (mask, encode_mask(mask, config.image_format))
        return views[id(mask)][1]

    found = {"mask": [], "mask_b": []}
    for r in rows:  # a view's mask passed through unchanged (none, mixup, a pass's other copies) is encoded once
        a, b = render_masks(config, plan, r, images, first_copy)
        sources = [_view_mask(images, p, plan.copy[r], first_copy) for p in (plan.pos_a[r], plan.pos_b[r]) if p >= 0] \
            if plan.pos_c[r] < 0 else []
        found["mask"].append(encoded(a, *sources))
        found["mask_b"].append(None if b is None else encoded(b, *sources))
    return found


def labels_rows(task: PoolTask, fmt, shard_id: int, plan: PoolPlan, columns: dict) -> pa.Table:
    """This shard's rows of labels.parquet: where each row is, its labels, which source items it came
    from, and the format's own columns (made here, in parallel, so the parent only concatenates them)."""
    n = len(plan)
    refs = task.refs
    table = label_table(columns)
    table = table.add_column(0, "shard", arrow.numeric(np.full(n, shard_id), pa.int32()))
    table = table.add_column(1, "row", arrow.numeric(np.arange(n)))
    table = table.append_column("ref_a", arrow.strings([refs[p] for p in plan.pos_a]))
    table = table.append_column("ref_b", arrow.strings([refs[p] if p >= 0 else None for p in plan.pos_b]))
    for name, values in fmt.label_columns(task.classes, task.config, columns).items():
        table = table.append_column(name, arrow.strings(values))
    return table


def _key(item: int, copy: int) -> str:
    """Unique and stable: each (item, copy) is planned exactly once."""
    return f"{item:09d}_{'orig' if copy == ORIGINAL else f'c{copy}'}"
