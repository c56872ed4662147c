"""``mixbake preview``: a contact sheet of samples, each captioned with its op, lam and soft label.

Two ways in, one picture out:

- an OUT (a directory holding ``manifest.json``): the samples are read back from the output (any
  format, raw pixels too), exactly as a reader of the dataset decodes them;
- a SOURCE (``demo``, an image folder, Parquet): nothing is written. The source is listed and planned
  by the real pipeline (``make_tasks`` -> ``plan_pool`` -> ``render`` -> ``label_columns``), and each
  rendered sample goes through the output encoder and back, so the tiles are what a bake with the
  same options would write, pixel for pixel. Only the pool items the shown rows use are decoded,
  unless one turns out bad: then the whole pool is (partners are drawn among the usable items).
  A bad item the shown rows never touch stays unseen and may move partners; bake's default
  --on-error fail refuses such a source anyway.
"""
from __future__ import annotations

import colorsys
import dataclasses
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import formats, manifest, ops, targets
from .errors import MixbakeError
from .sources import SourceOptions
from .store import Store, redact

TILE = 192          # target long side of a tile, in pixels
GUTTER = 14
MIN_CELL = 168      # captions need room even when the images are tiny
MAX_SAMPLES = 1024

BACKGROUND = (24, 25, 28)
CARD = (36, 37, 42)
TEXT = (232, 234, 237)
MUTED = (154, 160, 166)
CLASS_COLORS = [(78, 121, 167), (242, 142, 43), (225, 87, 89), (118, 183, 178), (89, 161, 79),
                (237, 201, 72), (176, 122, 161), (255, 157, 167), (156, 117, 95), (186, 176, 172)]
_NOT_NEEDED = "(not needed for the preview)"


@dataclass
class Sample:
    pixels: np.ndarray   # HxWx3 uint8, as a reader of the output decodes the stored image
    row: dict            # key, label, soft label (soft_label, or soft_index + soft_value), op, lam, ...
    mask: Optional[np.ndarray] = None  # HxW class indices (segmentation builds): the tile is tinted by it
    ignore: int = 255


def tint(pixels: np.ndarray, mask: np.ndarray, ignore: int, amount: float = 0.45) -> np.ndarray:
    """``pixels`` with each labelled mask pixel blended towards its class's colour (ignore left as is)."""
    lut = np.array([class_color(i) for i in range(256)], np.float32)
    colours = lut[mask]
    out = pixels.astype(np.float32)
    labelled = (mask != ignore)[:, :, None]
    out = np.where(labelled, (1 - amount) * out + amount * colours, out)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Layout:
    count: int
    columns: int
    rows: int
    scale: float         # tile pixels per image pixel
    tile_w: int
    tile_h: int
    cell_w: int
    caption_h: int
    title_h: int
    gutter: int = GUTTER

    @property
    def width(self) -> int:
        return self.columns * self.cell_w + (self.columns + 1) * self.gutter

    @property
    def height(self) -> int:
        return self.title_h + self.rows * (self.tile_h + self.caption_h) + (self.rows + 1) * self.gutter

    def cell_origin(self, i: int) -> Tuple[int, int]:
        row, col = divmod(i, self.columns)
        return (self.gutter + col * (self.cell_w + self.gutter),
                self.title_h + self.gutter + row * (self.tile_h + self.caption_h + self.gutter))

    def tile_box(self, i: int) -> Tuple[int, int, int, int]:
        """(x0, y0, x1, y1), half-open: where sample ``i``'s pixels are on the sheet."""
        x, y = self.cell_origin(i)
        x += (self.cell_w - self.tile_w) // 2
        return x, y, x + self.tile_w, y + self.tile_h


@dataclass
class Sheet:
    image: "PIL.Image.Image"  # noqa: F821
    layout: Layout
    samples: List[Sample]
    classes: Tuple[str, ...]
    skipped: Tuple[str, ...] = ()  # "ref: reason" of the bad source items met (a SOURCE preview)


# ---------------------------------------------------------------- the public entry points

def preview(source_or_out, n: int = 16, seed: Optional[int] = None, **options):
    """A contact sheet (PIL image) of ``n`` samples of an OUT, or of what baking SOURCE would give.

    For a SOURCE, ``options`` are :class:`BakeConfig` fields plus ``image_column``/``label_column``,
    and ``seed`` is the bake seed. For an OUT, ``seed`` picks ``n`` random rows (default: the first
    ``n`` rows). Layout options for both: ``boxes`` (outline cutmix boxes and cutout holes),
    ``tile`` (long side of a tile in pixels), ``columns``.
    """
    return preview_sheet(source_or_out, n, seed, **options).image


def preview_sheet(source_or_out, n: int = 16, seed: Optional[int] = None, *, boxes: bool = True,
                  tile: int = TILE, columns: Optional[int] = None, **options) -> Sheet:
    if not 1 <= n <= MAX_SAMPLES:
        raise MixbakeError(f"-n must be in 1..{MAX_SAMPLES}, got {n}.")
    path, skipped = os.fspath(source_or_out), ()
    if is_out(path):
        if options:
            raise MixbakeError(f"{path} is a finished build: bake options ({_flags(options)}) apply to a "
                               f"SOURCE, not to an OUT (its options are in its manifest.json).")
        doc, samples = out_samples(path, n, seed)
        title = _out_title(path, doc, len(samples), seed)
        classes = tuple(doc["classes"])
    else:
        config, catalog, samples, skipped = source_samples(path, n, seed, **options)
        title = _source_title(catalog, config, len(samples), skipped)
        classes = tuple(catalog.classes)
    sheet = render_sheet(samples, classes, title, boxes=boxes, tile=tile, columns=columns)
    return dataclasses.replace(sheet, skipped=tuple(skipped))


def is_out(path: str) -> bool:
    """A finished build (a directory with manifest.json). An unfinished one is an error, not a source.
    'demo' is always the built-in source, as for ``mixbake bake`` (write ./demo for a directory)."""
    if path == "demo" or not os.path.isdir(path):
        return False
    if os.path.exists(os.path.join(path, manifest.MANIFEST)):
        return True
    if os.path.exists(os.path.join(path, manifest.CLAIM)) or os.path.exists(os.path.join(path, manifest.LABELS)):
        raise MixbakeError(f"{path} holds an unfinished build (no manifest.json yet): re-run the bake command "
                           f"to finish it, then preview it.")
    return False


def _flags(options: dict) -> str:
    return ", ".join("--" + name.replace("_", "-") for name in sorted(options))


# ---------------------------------------------------------------- samples of a finished OUT

def out_samples(out: str, n: int, seed: Optional[int] = None) -> Tuple[dict, List[Sample]]:
    """The first ``n`` rows of OUT (or ``n`` rows drawn with ``seed``), with their decoded pixels."""
    import pyarrow.parquet as pq

    doc = read_manifest(out)
    labels_path = os.path.join(out, manifest.LABELS)
    if not os.path.exists(labels_path):
        raise MixbakeError(f"{out}: labels.parquet is missing (the manifest lists it).")
    pf = pq.ParquetFile(labels_path)
    total = pf.metadata.num_rows
    if total == 0:
        raise MixbakeError(f"{out} holds no samples (0 rows): nothing to preview.")
    if seed is None:
        picked = np.arange(min(n, total))
    else:
        rng = np.random.default_rng(seed)
        picked = np.sort(rng.choice(total, size=min(n, total), replace=False))
    rows = _rows_at(pf, picked)
    fmt, store = formats.get(doc["config"].get("format")), Store.open(out)
    pixels: Dict[int, np.ndarray] = {}
    for shard_id in sorted({r["shard"] for r in rows}):
        wanted = {i: r for i, r in enumerate(rows) if r["shard"] == shard_id}
        pixels.update(fmt.read_images(store, doc["shards"][shard_id]["path"], wanted, doc["config"]))
    masks = _out_masks(store, doc, rows) if doc.get("masks") else {}
    ignore = int(doc["config"].get("mask_ignore_index", 255))
    return doc, [Sample(pixels[i], r, masks.get(i), ignore) for i, r in enumerate(rows)]


def _out_masks(store, doc: dict, rows: List[dict]) -> Dict[int, np.ndarray]:
    """The stored ``mask`` of each row of a Parquet build (other formats: none; the tiles go untinted)."""
    import io

    import pyarrow.parquet as pq
    from PIL import Image
    config = doc["config"]
    if config.get("format", "parquet") != "parquet":
        return {}
    width, height = config["size"]
    found = {}
    for shard_id in sorted({r["shard"] for r in rows}):
        with store.open_input(doc["shards"][shard_id]["path"]) as f:
            cells = pq.ParquetFile(f).read(columns=["mask"]).column("mask")
        for i, r in enumerate(rows):
            if r["shard"] == shard_id and cells[r["row"]].is_valid:
                cell = cells[r["row"]].as_py()
                data = cell if isinstance(cell, bytes) else cell["bytes"]
                found[i] = np.frombuffer(data, np.uint8).reshape(height, width) if config["image_format"] == "raw" \
                    else np.asarray(Image.open(io.BytesIO(data)))
    return found


def _rows_at(pf, picked: np.ndarray) -> List[dict]:
    """Rows ``picked`` (ascending) of a Parquet file, reading only the row groups that hold them."""
    sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    group_of = np.searchsorted(starts, picked, side="right") - 1
    rows = []
    for group in sorted(set(group_of.tolist())):
        table = pf.read_row_group(group)
        rows += table.take([int(r - starts[group]) for r in picked[group_of == group]]).to_pylist()
    return rows


def read_manifest(out: str) -> dict:
    return manifest.read_finished(Store.open(out))


# ---------------------------------------------------------------- samples of a SOURCE, in memory

def source_samples(source: str, n: int, seed: Optional[int] = None,
                   source_options: Optional[SourceOptions] = None, **options):
    """(config, catalog, samples, skipped): the first ``n`` rows a bake of SOURCE with ``options`` would
    write (as with --on-error skip), and the references of the bad items met on the way."""
    from .config import BakeConfig, fingerprint
    from .run import build_identity
    from .sources import open_source
    from .tasks import make_tasks

    if seed is not None:
        options["seed"] = seed
    source_options = source_options or SourceOptions.take(options)
    config = BakeConfig(**options)
    catalog = open_source(source, source_options, on_error="skip")
    build_id = fingerprint(build_identity(config, catalog))
    samples: List[Sample] = []
    skipped: List[str] = [f"{ref}: {reason}" for ref, reason in catalog.skipped_files]
    for task in make_tasks(config, catalog, "", build_id, on_error="skip"):
        if len(samples) >= n:
            break
        samples += _task_samples(task, n - len(samples), skipped)
    if not samples:
        raise MixbakeError(f"{redact(source)}: no usable item to preview ({len(skipped)} bad item(s), e.g. "
                           f"{skipped[0] if skipped else '?'}).")
    return config, catalog, samples, skipped


def _task_samples(task, n: int, skipped: List[str]) -> List[Sample]:
    """The first ``n`` rows of one pool (its first shard's first), decoding only the items they use.

    Partners are drawn among the pool's usable items, so an undecoded bad item would move them: once
    a decode fails (the source evidently has bad items) the rest of the pool is decoded too, and the
    rows are exactly those of a bake with --on-error skip.
    """
    from . import imaging
    from .columns import row_json
    from .plan import plan_pool
    from .worker import label_columns, render, render_masks

    from .worker import PoolImages
    config = task.config
    images = PoolImages(len(task.items))
    bad = dict(task.known_bad)
    while True:
        valid = np.array([p not in bad for p in range(len(task.items))], dtype=bool)
        plan = plan_pool(config, task.pool, task.labels, valid)
        shown = min(n, len(plan))
        used = set(plan.pos_a[:shown].tolist()) | {p for column in (plan.pos_b, plan.pos_c, plan.pos_d)
                                                   for p in column[:shown].tolist() if p >= 0}
        if len(bad) > len(task.known_bad):
            used = range(len(task.items))
        missing = sorted(p for p in used if images[p] is None and p not in bad)
        if not missing:
            break
        _decode_positions(task, missing, images, bad)  # a bad one changes the plan: plan again
    skipped += [f"{task.refs[p]}: {reason}" for p, reason in sorted(bad.items())]
    columns = label_columns(task, plan, images)
    samples = []
    for r in range(shown):
        stored = imaging.encode(render(config, plan, r, images, task.pool.first_copy), config.image_format,
                                config.quality)
        mask = render_masks(config, plan, r, images, task.pool.first_copy)[0] if config.with_masks else None
        samples.append(Sample(imaging.decode_output(stored, config.image_format, config.size), row_json(columns, r),
                              mask, config.mask_ignore_index))
    return samples


def _decode_positions(task, positions: List[int], images: list, bad: dict) -> None:
    """Decode pool ``positions`` with the worker's own ``load_pool``, run on a sub-pool of their chunks
    (the other items of those chunks are marked as not needed, so they are read but never decoded)."""
    from .imaging import own_pixel_limit
    from .worker import load_pool

    starts = np.concatenate([[0], np.cumsum(task.chunk_sizes)]).astype(np.int64)
    chunks = sorted({int(np.searchsorted(starts, p, side="right") - 1) for p in positions})
    sub_positions = np.concatenate([np.arange(starts[c], starts[c + 1]) for c in chunks])
    wanted = set(positions)
    skip = {q: task.known_bad.get(int(p), _NOT_NEEDED) for q, p in enumerate(sub_positions)
            if int(p) not in wanted or int(p) in task.known_bad}
    sub = dataclasses.replace(
        task, locators=tuple(task.locators[c] for c in chunks), stamps=tuple(task.stamps[c] for c in chunks),
        chunk_sizes=tuple(task.chunk_sizes[c] for c in chunks), items=task.items[sub_positions],
        labels=task.labels[sub_positions], refs=tuple(task.refs[p] for p in sub_positions),
        known_bad=skip, on_error="skip",
        objects=task.objects.take(sub_positions) if task.objects is not None else None)
    with own_pixel_limit():  # as in workers: --max-pixels decides
        sub_images, sub_bad = load_pool(sub, within=(len(task.items), sub_positions))
    for q, p in enumerate(sub_positions.tolist()):
        if p in wanted:
            if q in sub_bad:
                bad[p] = sub_bad[q]
            else:
                images[p], images.soft[p], images.mask[p] = sub_images[q], sub_images.soft[q], sub_images.mask[q]
                images.sizes[p] = sub_images.sizes[q]


def caption(row: dict, classes: Sequence[str], top: int = 2) -> str:
    """'cutmix  cat 0.62 / dog 0.38': the op, then the top classes of the soft label."""
    parts = " / ".join(f"{classes[c]} {mass:.2f}" for c, mass in targets.get(row.get("label_kind")).top(row, top))
    return f"{row['op']}  {parts}"


def class_color(index: int) -> Tuple[int, int, int]:
    if index < len(CLASS_COLORS):
        return CLASS_COLORS[index]
    r, g, b = colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.55, 0.9)
    return int(r * 255), int(g * 255), int(b * 255)


# ---------------------------------------------------------------- drawing

@lru_cache(maxsize=None)
def font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


FONT_TITLE, FONT_SUBTITLE, FONT_CAPTION, FONT_DETAIL = 17, 12, 13, 11
BAR, CAPTION_PAD = 4, 8


def make_layout(count: int, image_w: int, image_h: int, tile: int = TILE, columns: Optional[int] = None,
                title_lines: int = 2, detail_lines: int = 0) -> Layout:
    longest = max(image_w, image_h)
    # Upscale by a whole factor (nearest: crisp, exact pixels), downscale smoothly to the target.
    scale = float(max(1, round(tile / longest))) if longest <= tile else tile / longest
    tile_w, tile_h = max(1, round(image_w * scale)), max(1, round(image_h * scale))
    cols = columns or max(1, math.ceil(math.sqrt(count)))
    cols = min(cols, count)
    caption_h = BAR + CAPTION_PAD - 2 + 2 * _line(FONT_CAPTION) + 2 + CAPTION_PAD - 2 \
        + detail_lines * (_line(FONT_DETAIL) + 2)
    title_h = GUTTER + _line(FONT_TITLE) + (title_lines - 1) * (_line(FONT_SUBTITLE) + 2)
    return Layout(count=count, columns=cols, rows=math.ceil(count / cols), scale=scale, tile_w=tile_w,
                  tile_h=tile_h, cell_w=max(tile_w, MIN_CELL), caption_h=caption_h, title_h=title_h)


def _line(size: int) -> int:
    return round(size * 1.3)


def scale_tile(pixels: np.ndarray, layout: Layout):
    from PIL import Image
    im = Image.fromarray(np.ascontiguousarray(pixels))
    size = (layout.tile_w, layout.tile_h)
    if im.size == size:
        return im
    return im.resize(size, Image.NEAREST if layout.scale >= 1 else Image.LANCZOS)


def render_sheet(samples: List[Sample], classes: Sequence[str], title: Sequence[str], *, boxes: bool = True,
                 tile: int = TILE, columns: Optional[int] = None) -> Sheet:
    from PIL import Image, ImageDraw

    height, width = samples[0].pixels.shape[:2]
    chained = any(s.row.get("aug_a") for s in samples)  # a line of what each view went through
    layout = make_layout(len(samples), width, height, tile, columns, len(title), 2 if chained else 0)
    sheet = Image.new("RGB", (layout.width, layout.height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    _draw_title(draw, layout, title)
    for i, sample in enumerate(samples):
        x, y = layout.cell_origin(i)
        draw.rectangle([x, y, x + layout.cell_w - 1, y + layout.tile_h + layout.caption_h - 1], fill=CARD)
        x0, y0, _, _ = layout.tile_box(i)
        pixels = sample.pixels if sample.mask is None else tint(sample.pixels, sample.mask, sample.ignore)
        sheet.paste(scale_tile(pixels, layout), (x0, y0))
        if boxes:
            _draw_boxes(draw, sample.row, layout, x0, y0)
            _draw_objects(draw, sample.row, classes, layout, x0, y0)
        _draw_caption(draw, sample.row, classes, layout, x, y + layout.tile_h)
    return Sheet(sheet, layout, samples, tuple(classes))


def _draw_title(draw, layout: Layout, title: Sequence[str]) -> None:
    y = GUTTER
    for k, text in enumerate(title):
        size = FONT_TITLE if k == 0 else FONT_SUBTITLE
        draw.text((GUTTER, y), _fit(text, font(size), layout.width - 2 * GUTTER), font=font(size),
                  fill=TEXT if k == 0 else MUTED)
        y += _line(size) + (0 if k == 0 else 2)


def _draw_boxes(draw, row: dict, layout: Layout, x0: int, y0: int) -> None:
    """The boxes the row's op outlines (cutmix box, cutout holes), inside their half-open pixel bounds."""
    op = ops.BY_NAME.get(row["op"])
    if op is None:
        return
    color, s = op.color, layout.scale
    width = 2 if min(layout.tile_w, layout.tile_h) >= 64 else 1
    for bx0, by0, bx1, by1 in op.outline(row):
        box = [x0 + round(bx0 * s), y0 + round(by0 * s), x0 + round(bx1 * s) - 1, y0 + round(by1 * s) - 1]
        if box[2] >= box[0] and box[3] >= box[1]:
            draw.rectangle(box, outline=(0, 0, 0), width=width + 2)   # a dark rim reads on any picture
            draw.rectangle([box[0] + 1, box[1] + 1, box[2] - 1, box[3] - 1], outline=color, width=width)


def _draw_objects(draw, row: dict, classes: Sequence[str], layout: Layout, x0: int, y0: int) -> None:
    """A detection row's boxes, each in its category's colour, labelled with the category and,
    where it is not 1, its weight (mixup)."""
    s, face = layout.scale, font(FONT_DETAIL)
    for obj in row.get("objects") or []:
        bx0, by0, bx1, by1 = obj["bbox"]
        box = [x0 + bx0 * s, y0 + by0 * s, x0 + bx1 * s - 1, y0 + by1 * s - 1]
        if box[2] < box[0] or box[3] < box[1]:
            continue
        color = class_color(obj["category"])
        draw.rectangle(box, outline=color, width=2 if min(layout.tile_w, layout.tile_h) >= 64 else 1)
        name = classes[obj["category"]] if 0 <= obj["category"] < len(classes) else str(obj["category"])
        text = name if abs(obj["weight"] - 1) < 1e-6 else f"{name} {obj['weight']:.2f}"
        if layout.tile_w >= 96:
            draw.text((box[0] + 2, box[1] + 1), _fit(text, face, max(int(box[2] - box[0]), 24)), font=face, fill=color)


def _draw_caption(draw, row: dict, classes: Sequence[str], layout: Layout, x: int, y: int) -> None:
    """A soft-label bar (one segment per class, in its colour), then 'op  lam 0.62 .. key', then the
    top classes with their mass."""
    if "soft_index" in row:  # the non-zeros alone (before smoothing): no row of K values
        indices, soft = np.asarray(row["soft_index"], dtype=np.int64), np.asarray(row["soft_value"], np.float64)
    else:
        soft = np.asarray(row["soft_label"], dtype=np.float64)
        indices = np.arange(len(soft))
    order = np.lexsort((indices, -soft))
    edges = np.rint(np.concatenate([[0], np.cumsum(soft[order])]) / max(soft.sum(), 1e-12) * layout.cell_w)
    for c, left, right in zip(indices[order], edges[:-1].astype(int), edges[1:].astype(int)):
        if right > left:
            draw.rectangle([x + left, y, x + right - 1, y + BAR - 1], fill=class_color(int(c)))
    pad = CAPTION_PAD
    avail = layout.cell_w - 2 * pad
    cap, det = font(FONT_CAPTION), font(FONT_DETAIL)
    ty = y + BAR + pad - 2
    op = ops.BY_NAME.get(row["op"])
    tx = _segment(draw, x + pad, ty, row["op"], cap, op.color if op else TEXT)
    if op is not None and op.caption(row):  # ops that do not mix have lam 1 by definition
        tx = _segment(draw, tx, ty, op.caption(row), cap, TEXT)
    key = _fit(str(row["key"]), det, max(0, int(x + pad + avail - tx - 8)))
    if key != "…":
        draw.text((x + pad + avail - det.getlength(key), ty + FONT_CAPTION - FONT_DETAIL), key, font=det,
                  fill=MUTED)
    ty += _line(FONT_CAPTION) + 2
    tops = targets.get(row.get("label_kind")).top(row)
    names = _fit_names([classes[c] for c, _ in tops], [m for _, m in tops], cap, avail)
    tx = x + pad
    for k, ((c, mass), name) in enumerate(zip(tops, names)):
        if k:
            tx = _segment(draw, tx, ty, " / ", cap, MUTED)
        tx = _segment(draw, tx, ty, name, cap, _lighter(class_color(c)))
        tx = _segment(draw, tx, ty, f" {mass:.2f}", cap, TEXT)
    if row.get("aug_a"):
        _draw_records(draw, row, x + pad, ty + _line(FONT_CAPTION) + 2, avail)


def _draw_records(draw, row: dict, x: int, y: int, width: int) -> None:
    """'a: crop 117x95 hflip rot-9 post7', and b's, one line each (``chain.short``)."""
    from . import chain
    det = font(FONT_DETAIL)
    for side in ("a", "b"):
        record = row.get(f"aug_{side}")
        if side == "b" and record is None:
            continue
        draw.text((x, y), _fit(f"{side}: {chain.short(record)}", det, width), font=det, fill=MUTED)
        y += _line(FONT_DETAIL) + 2


def _segment(draw, x: float, y: int, text: str, face, color) -> float:
    draw.text((x, y), text, font=face, fill=color)
    return x + face.getlength(text)


def _lighter(color, amount: float = 0.35):
    return tuple(int(v + (255 - v) * amount) for v in color)


def _fit(text: str, face, width: int) -> str:
    if face.getlength(text) <= width:
        return text
    while text and face.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _fit_names(names: List[str], masses: List[float], face, width: int) -> List[str]:
    """Shorten the longest class name, a character at a time, until the classes line fits."""
    names = list(names)

    def length():
        return face.getlength(" / ".join(f"{n} {m:.2f}" for n, m in zip(names, masses)))
    while length() > width:
        k = max(range(len(names)), key=lambda i: len(names[i]))
        if len(names[k]) <= 2:
            break
        names[k] = names[k].rstrip("…")[:-1].rstrip() + "…"
    return names


# ---------------------------------------------------------------- titles

def _ops_summary(config: dict) -> str:
    shares = [float(config.get(op, 0)) for op in ops.NAMES]
    total = sum(shares) or 1.0
    return " ".join(f"{op} {100 * s / total:.0f}%" for op, s in zip(ops.NAMES, shares) if s > 0)


def _config_line(config: dict) -> str:
    width, height = config["size"]
    extra = " · keep originals" if config.get("keep_originals") else ""
    smooth = f" · smoothing {config['label_smoothing']:g}" if config.get("label_smoothing") else ""
    return (f"{width}x{height} {config['image_format']} ({config['resize']}) · {_chain_summary(config)}"
            f"{_ops_summary(config)}{smooth}{extra}")


def _chain_summary(config: dict) -> str:
    """The chain's steps after the crop ('hflip 0.5 · randaugment ... · '), or nothing."""
    from . import chain
    from .config import BakeConfig
    try:
        steps = chain.describe(BakeConfig.from_dict(config))
    except MixbakeError:  # a manifest this version cannot read back as a config: leave the steps out
        return ""
    steps = [step for step in steps if not step.startswith("random-crop")]
    return "".join(f"{step} · " for step in steps)


def _source_title(catalog, config, shown: int, skipped: Sequence[str] = ()) -> List[str]:
    bad = f"  ·  {len(skipped)} bad item(s) skipped" if skipped else ""
    return [f"mixbake preview  ·  {catalog.uri}  ·  {shown} samples  ·  seed {config.seed}",
            f"{catalog.kind} source, {len(catalog)} items, {len(catalog.classes)} classes  ·  "
            f"{_config_line(config.to_dict())}{bad}  ·  rendered in memory, nothing written"]


def _out_title(out: str, doc: dict, shown: int, seed: Optional[int]) -> List[str]:
    rows = doc["totals"]["rows"]
    which = f"{shown} of {rows} rows" + (f" drawn with seed {seed}" if seed is not None else " (the first)")
    source = doc.get("source", {})
    return [f"mixbake preview  ·  {out}  ·  {which}",
            f"{doc['config'].get('format', 'parquet')} build of {source.get('uri', '?')} "
            f"(seed {doc.get('seed')})  ·  {_config_line(doc['config'])}"]
