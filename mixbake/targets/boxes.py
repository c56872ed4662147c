"""Detection boxes through the geometry and the ops (the rules: docs/labels.md, "Boxes").

A view's boxes go through the steps its pixels went through, in the same order and with the same
parameters (the view's ``chain.Record``): the resize (crop, pad, stretch, or the recorded random
crop), the flips, then each geometric op (``--rotate``, RandAugment's Rotate / ShearX / ShearY /
TranslateX / TranslateY, through the affine matrix ``chain.pixels`` samples with). Each box is
carried as a polygon (its four corners, turned by rotations and shears) cut to the image after
every step; its *reference* area is the same polygon transformed without any cut. Holes (the
view's ``--erase`` boxes, cutout's holes, the region cutmix pastes over) hide part of a box without
moving it. A box is kept when its visible area (the cut polygon's, minus the holes) is at least
``--min-visibility`` of its reference area, as the bounding box of its cut polygon (for a rotated
object: the extent of its visible pixels); else it is dropped (counted per row).

Rows: none and cutout keep a's boxes (weight 1, source 0); mixup the union of a's (weight lam) and
b's (weight 1-lam, source 1); cutmix a's boxes with the pasted region as a hole, and b's boxes
intersected with it (weights 1). Coordinates are float, in output pixels, x1/y1 exclusive edges.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

AFFINE = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "rotate")


@dataclass
class ViewBoxes:
    """One view's boxes in output pixels: as rectangles (``rects``, (m, 4)) while every step kept
    them axis-aligned, else each as the polygon its visible part is (turned by a rotation or shear,
    cut to the image after every step); with its reference area (the same box transformed, never
    cut), category, and the view's own holes (its erase boxes)."""
    rects: Optional[np.ndarray]            # float64 (m, 4), or None: see polygons
    polygons: Optional[List[np.ndarray]]   # per box (k, 2) float64 vertices (k = 0: nothing left)
    reference: np.ndarray                  # float64 (m,)
    category: np.ndarray                   # int64 (m,)
    holes: List[Sequence[float]]

    @property
    def boxes(self) -> np.ndarray:
        if self.rects is not None:
            return self.rects
        return np.array([bounds(p) for p in self.polygons], np.float64).reshape(-1, 4)


def bounds(polygon: np.ndarray) -> Tuple[float, float, float, float]:
    if not len(polygon):
        return (0.0, 0.0, 0.0, 0.0)
    return (float(polygon[:, 0].min()), float(polygon[:, 1].min()), float(polygon[:, 0].max()),
            float(polygon[:, 1].max()))


def polygon_area(polygon) -> float:
    """Shoelace area of a (k, 2) polygon (plain floats: k is at most 8)."""
    points = polygon.tolist() if isinstance(polygon, np.ndarray) else polygon
    if len(points) < 3:
        return 0.0
    total, (px, py) = 0.0, points[-1]
    for x, y in points:
        total += px * y - x * py
        px, py = x, y
    return 0.5 * abs(total)


def clip_polygon(polygon: np.ndarray, rect) -> np.ndarray:
    """``polygon`` (convex) cut to the axis-aligned ``rect`` (x0, y0, x1, y1): Sutherland-Hodgman."""
    x0, y0, x1, y1 = rect
    points = [tuple(v) for v in polygon]
    for axis, limit, keep_above in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        if not points:
            break
        inside = (lambda q: q[axis] >= limit) if keep_above else (lambda q: q[axis] <= limit)
        out = []
        for k, cur in enumerate(points):
            prev = points[k - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(_cross(prev, cur, axis, limit))
                out.append(cur)
            elif inside(prev):
                out.append(_cross(prev, cur, axis, limit))
        points = out
    return np.array(points, np.float64).reshape(-1, 2)


def _cross(p, q, axis: int, limit: float):
    t = (limit - p[axis]) / (q[axis] - p[axis])
    other = 1 - axis
    point = [0.0, 0.0]
    point[axis], point[other] = limit, p[other] + t * (q[other] - p[other])
    return tuple(point)


def _rectangle(box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def source_boxes(objects, p: int, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """(boxes in the oriented source's pixels, categories) of pool position ``p``."""
    boxes, category = objects.of(p)
    boxes = np.asarray(boxes, np.float64)
    if objects.normalised:
        boxes = boxes * np.array([size[0], size[1], size[0], size[1]], np.float64)
    return boxes, np.asarray(category, np.int64)


def outside(boxes: np.ndarray, size: Tuple[int, int], tolerance: float = 1.0) -> Optional[str]:
    """Why a source's boxes do not fit its image of ``size`` (width, height), or None. A box may
    pass an edge by ``tolerance`` pixels (rounding in annotation tools); it is clipped then."""
    w, h = size
    beyond = (boxes[:, 0] < -tolerance) | (boxes[:, 1] < -tolerance) | (boxes[:, 2] > w + tolerance) | \
        (boxes[:, 3] > h + tolerance)
    if not beyond.any():
        return None
    k = int(np.flatnonzero(beyond)[0])
    x0, y0, x1, y1 = (float(v) for v in boxes[k])
    return f"box {k} (x0 {x0:g}, y0 {y0:g}, x1 {x1:g}, y1 {y1:g}) is outside the {w}x{h} image"


def fit_geometry(size: Tuple[int, int], out: Tuple[int, int], resize: str, crop_box=None):
    """(scale x, scale y, offset x, offset y): output = source * scale + offset, as ``imaging.fit``
    (or a recorded crop box) maps the oriented source of ``size`` onto ``out``."""
    w, h = size
    out_w, out_h = out
    if crop_box is not None:
        x0, y0, x1, y1 = crop_box
        sx, sy = out_w / (x1 - x0), out_h / (y1 - y0)
        return sx, sy, -x0 * sx, -y0 * sy
    if (w, h) == (out_w, out_h):
        return 1.0, 1.0, 0.0, 0.0
    if resize == "crop":
        scale = max(out_w / w, out_h / h)
        crop_w, crop_h = min(w, max(1, int(round(out_w / scale)))), min(h, max(1, int(round(out_h / scale))))
        x0, y0 = (w - crop_w) // 2, (h - crop_h) // 2
        sx, sy = out_w / crop_w, out_h / crop_h
        return sx, sy, -x0 * sx, -y0 * sy
    if resize == "pad":
        scale = min(out_w / w, out_h / h)
        new_w, new_h = min(out_w, max(1, int(round(w * scale)))), min(out_h, max(1, int(round(h * scale))))
        return new_w / w, new_h / h, float((out_w - new_w) // 2), float((out_h - new_h) // 2)
    return out_w / w, out_h / h, 0.0, 0.0


def area(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)


def _affine_matrix(op: str, value: float, out: Tuple[int, int]) -> Optional[np.ndarray]:
    """The forward 2x3 map (pixel coordinates) of a geometric op, as ``chain.pixels`` samples it
    (its inverse matrix acts on coordinates about the image centre); None for the identity."""
    from ..chain import pixels
    w, h = out
    if op in ("TranslateX", "TranslateY"):
        shift = int(value)
        return np.array([[1, 0, shift if op == "TranslateX" else 0], [0, 1, shift if op == "TranslateY" else 0]],
                        np.float64)
    if op in ("Rotate", "rotate"):
        angle = value % 360
        if angle == 0:
            return None
        inverse = pixels._inverse_affine_matrix([0.0, 0.0], -angle, [0.0, 0.0], [0.0, 0.0])
    else:
        shear = [math.degrees(math.atan(value)), 0.0] if op == "ShearX" else [0.0, math.degrees(math.atan(value))]
        inverse = pixels._inverse_affine_matrix([-w * 0.5, -h * 0.5], 0.0, [0.0, 0.0], shear)
    m = np.array(inverse, np.float64).reshape(2, 3)
    forward = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
    centre = np.array([w / 2, h / 2])
    # pixel p -> centred c = p - centre -> forward -> + centre
    linear = forward[:, :2]
    return np.hstack([linear, (forward[:, 2] + centre - linear @ centre)[:, None]])


def view_boxes(boxes: np.ndarray, category: np.ndarray, size, config, record=None) -> ViewBoxes:
    """The boxes of a source (``boxes`` in its oriented pixels, ``size`` its width and height) in
    its view: resized as the view was (``record``: the view's chain record, or None), then moved
    by the record's flips and geometric ops."""
    out = tuple(config.size)
    frame = (0.0, 0.0, float(out[0]), float(out[1]))
    resize = "crop" if config.resize == "random-crop" else config.resize
    crop_box = record.get("crop") if record else None
    sx, sy, ox, oy = fit_geometry(size, out, resize, crop_box if crop_box else None)
    full = np.asarray(boxes, np.float64).reshape(-1, 4) * (sx, sy, sx, sy) + (ox, oy, ox, oy)
    holes: List[Sequence[float]] = []
    steps = []
    if record:
        w, h = out
        if record.get("hflip"):
            steps.append(np.array([[-1, 0, w], [0, 1, 0]], np.float64))
        if record.get("vflip"):
            steps.append(np.array([[1, 0, 0], [0, -1, h]], np.float64))
        erase = iter(record.get("boxes") or [])
        for entry in record.get("ops") or []:
            op, value = entry["op"], float(entry["value"])
            if op == "erase":
                holes.append(tuple(float(v) for v in next(erase)))
            elif op in AFFINE:
                matrix = _affine_matrix(op, value, out)
                if matrix is not None:
                    steps.append(matrix)
    category = np.asarray(category, np.int64)
    if all(abs(m[0, 1]) < 1e-12 and abs(m[1, 0]) < 1e-12 for m in steps):  # flips, shifts: still rectangles
        seen = _clip_rects(full, frame)
        for m in steps:
            full, seen = _affine_rects(full, m), _clip_rects(_affine_rects(seen, m), frame)
        return ViewBoxes(seen, None, area(full), category, holes)
    polygons = [_rectangle(b) for b in full]
    seen = [clip_polygon(p, frame) for p in polygons]
    for matrix in steps:
        polygons = [_apply(p, matrix) for p in polygons]
        seen = [clip_polygon(_apply(p, matrix), frame) if len(p) else p for p in seen]
    return ViewBoxes(None, seen, np.array([polygon_area(p) for p in polygons]), category, holes)


def _clip_rects(rects: np.ndarray, region) -> np.ndarray:
    """Each rectangle cut to ``region`` (an empty one where they do not meet: x1 <= x0)."""
    x0, y0, x1, y1 = region
    out = rects.copy()
    out[:, 0], out[:, 1] = np.maximum(out[:, 0], x0), np.maximum(out[:, 1], y0)
    out[:, 2], out[:, 3] = np.minimum(out[:, 2], x1), np.minimum(out[:, 3], y1)
    return out


def _affine_rects(rects: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Rectangles through an axis-aligned map (scales, flips, shifts)."""
    xs = rects[:, [0, 2]] * m[0, 0] + m[0, 2]
    ys = rects[:, [1, 3]] * m[1, 1] + m[1, 2]
    return np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], axis=1)


def _apply(polygon: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return polygon @ matrix[:, :2].T + matrix[:, 2]


def covered(polygon: np.ndarray, rects) -> float:
    """The area of ``polygon`` covered by the union of the axis-aligned ``rects``: exact, cut into
    vertical slabs at the rects' edges, each slab's union a set of disjoint rectangles."""
    if not len(polygon):
        return 0.0
    px0, py0, px1, py1 = bounds(polygon)
    rects = [(max(a, px0), max(b, py0), min(c, px1), min(d, py1)) for a, b, c, d in rects]
    rects = [r for r in rects if r[2] > r[0] and r[3] > r[1]]
    if not rects:
        return 0.0
    if len(rects) == 1:
        return polygon_area(clip_polygon(polygon, rects[0]))
    xs = sorted({v for r in rects for v in (r[0], r[2])})
    total = 0.0
    for left, right in zip(xs, xs[1:]):
        spans = sorted((r[1], r[3]) for r in rects if r[0] <= left and r[2] >= right)
        merged: List[list] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        for lo, hi in merged:
            total += polygon_area(clip_polygon(polygon, (left, lo, right, hi)))
    return total


def _visible(view: ViewBoxes, boxes, holes) -> np.ndarray:
    """The visible area of each of ``boxes`` (the view's rectangles or polygons, maybe cut to a
    region): its area minus what ``holes`` cover."""
    if isinstance(boxes, np.ndarray):  # rectangles: vectorised; the union of holes only where two meet one
        visible = area(boxes)
        if holes:
            rects = np.asarray(holes, np.float64).reshape(-1, 4)
            b, h = boxes[:, None, :], rects[None, :, :]
            ix = np.maximum(0, np.minimum(b[..., 2], h[..., 2]) - np.maximum(b[..., 0], h[..., 0]))
            iy = np.maximum(0, np.minimum(b[..., 3], h[..., 3]) - np.maximum(b[..., 1], h[..., 1]))
            inter = ix * iy
            hit = (inter > 0).sum(axis=1)
            cover = inter.sum(axis=1)
            for k in np.flatnonzero(hit > 1).tolist():
                cover[k] = covered(_rectangle(boxes[k]), holes)
            visible = visible - np.where(visible > 0, cover, 0)
        return visible
    return np.array([polygon_area(p) - (covered(p, holes) if holes else 0.0) for p in boxes], np.float64)


def row_objects(op: str, a: ViewBoxes, b: Optional[ViewBoxes], lam: float, op_boxes, min_visibility: float):
    """(boxes (k, 4), category, weight, source, dropped) of a row made by ``op`` from its views."""
    parts, dropped = [], 0
    regions = [tuple(float(v) for v in r) for r in (op_boxes if op_boxes is not None else [])]

    def shapes(view):
        return view.rects if view.rects is not None else view.polygons
    if op == "mixup" and b is not None:
        sides = [(a, shapes(a), a.holes, float(lam), 0), (b, shapes(b), b.holes, 1.0 - float(lam), 1)]
    elif op == "cutmix" and b is not None:
        region = regions[0] if regions else (0.0, 0.0, 0.0, 0.0)
        cut = _clip_rects(b.rects, region) if b.rects is not None else \
            [clip_polygon(p, region) if len(p) else p for p in b.polygons]
        sides = [(a, shapes(a), a.holes + regions, 1.0, 0), (b, cut, b.holes, 1.0, 1)]
    elif op == "cutout":
        sides = [(a, shapes(a), a.holes + regions, 1.0, 0)]
    else:
        sides = [(a, shapes(a), a.holes, 1.0, 0)]
    for view, boxes, holes, weight, source in sides:
        visible = _visible(view, boxes, holes)
        keep = (visible > 1e-9) & (visible >= min_visibility * view.reference - 1e-9)
        dropped += int((~keep).sum())
        kept = boxes[keep] if isinstance(boxes, np.ndarray) else \
            np.array([bounds(p) for p, k in zip(boxes, keep) if k], np.float64).reshape(-1, 4)
        parts.append((kept, view.category[keep], np.full(int(keep.sum()), weight), np.full(int(keep.sum()), source)))
    return (np.concatenate([p[0] for p in parts]).reshape(-1, 4), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts]), dropped)


def mosaic_objects(views: Sequence[Optional[ViewBoxes]], cells: np.ndarray, out: Tuple[int, int], resize: str,
                   min_visibility: float):
    """(boxes, category, weight, source, dropped) of a mosaic row: each source's boxes (its view's,
    in output pixels) moved into its cell as its pixels are (fitted by ``resize``), cut to the
    cell, and kept by the visibility rule against their reference area scaled alike; weight 1,
    source 0..3 (a, b, c, d)."""
    parts, dropped = [], 0
    for source, (view, (x0, y0, x1, y1)) in enumerate(zip(views, np.asarray(cells).tolist())):
        if view is None or x1 <= x0 or y1 <= y0:
            continue
        sx, sy, ox, oy = fit_geometry(out, (x1 - x0, y1 - y0), resize)
        ox, oy = ox + x0, oy + y0
        cell = (float(x0), float(y0), float(x1), float(y1))
        holes = [(hx0 * sx + ox, hy0 * sy + oy, hx1 * sx + ox, hy1 * sy + oy) for hx0, hy0, hx1, hy1 in view.holes]
        if view.rects is not None:
            moved = _clip_rects(view.rects * (sx, sy, sx, sy) + (ox, oy, ox, oy), cell)
        else:
            moved = [clip_polygon(p * (sx, sy) + (ox, oy), cell) if len(p) else p for p in view.polygons]
        visible = _visible(view, moved, holes)
        keep = (visible > 1e-9) & (visible >= min_visibility * view.reference * sx * sy - 1e-9)
        dropped += int((~keep).sum())
        kept = moved[keep] if isinstance(moved, np.ndarray) else \
            np.array([bounds(p) for p, k in zip(moved, keep) if k], np.float64).reshape(-1, 4)
        parts.append((kept, view.category[keep], np.ones(int(keep.sum())), np.full(int(keep.sum()), source)))
    if not parts:
        return np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int8), dropped
    return (np.concatenate([p[0] for p in parts]).reshape(-1, 4), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts]), dropped)


class ObjectRows:
    """Per row its objects (CSR): row i holds ``bbox[offsets[i]:offsets[i+1]]`` ... (sliceable by
    row ranges, as the worker cuts columns into row groups)."""

    def __init__(self, offsets, bbox, category, weight, source):
        self.offsets = np.asarray(offsets, np.int64)
        self.bbox = np.asarray(bbox, np.float32).reshape(-1, 4)
        self.category, self.weight = np.asarray(category, np.int64), np.asarray(weight, np.float32)
        self.source = np.asarray(source, np.int8)

    @classmethod
    def of_rows(cls, rows: list) -> "ObjectRows":
        """From per-row (boxes, category, weight, source) tuples."""
        counts = [len(r[1]) for r in rows]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        cat = (lambda i: np.concatenate([r[i] for r in rows]) if rows else np.zeros(0))
        return cls(offsets, np.concatenate([r[0] for r in rows]).reshape(-1, 4) if rows else np.zeros((0, 4)),
                   cat(1), cat(2), cat(3))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, rows):
        start, stop, _ = rows.indices(len(self))
        lo, hi = self.offsets[start], self.offsets[stop]
        return ObjectRows(self.offsets[start:stop + 1] - lo, self.bbox[lo:hi], self.category[lo:hi],
                          self.weight[lo:hi], self.source[lo:hi])

    def row(self, i: int) -> list:
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return [{"bbox": [float(v) for v in self.bbox[k]], "category": int(self.category[k]),
                 "weight": float(self.weight[k]), "source": int(self.source[k])} for k in range(lo, hi)]

    def arrow(self):
        import pyarrow as pa

        from .. import arrow_arrays as arrow
        from ..columns import OBJECT_TYPE
        n = len(self.bbox)
        bbox = arrow.lists(arrow.numeric(self.bbox.ravel(), pa.float32()), np.arange(0, 4 * n + 1, 4))
        struct = pa.StructArray.from_arrays(
            [bbox, arrow.numeric(self.category), arrow.numeric(self.weight, pa.float32()),
             arrow.numeric(self.source, pa.int8())], fields=list(OBJECT_TYPE))
        return arrow.lists(struct, self.offsets)
