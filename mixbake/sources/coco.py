"""A folder of images with a COCO instances JSON (``--annotations FILE``): a detection source.

The JSON's ``images`` (``id``, ``file_name`` relative to SOURCE), ``annotations`` (``image_id``,
``bbox`` as [x, y, w, h] in pixels, ``category_id``) and ``categories`` (``id``, ``name``: the
classes, in ascending id order). The items are the images the JSON lists together with the image
files under SOURCE, sorted by path: an image file the JSON does not list is a bad item ("no entry
in the annotations"), as is a listed file that is not there, and an image with a bad annotation (an
unknown category, a box of negative size, a bbox that is not 4 numbers). Crowd annotations
(``iscrowd``) are boxes like any other. The JSON's bytes are part of the fingerprint.
"""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
from typing import Dict, List

import numpy as np

from ..errors import MixbakeError
from ..humanize import count
from ..store import Store, is_uri, stamp_key
from . import Catalog, display_ref
from .folder import BROKEN, IMAGE_EXTENSIONS, FolderReader, _fingerprint, _state
from .objects import check_distinct, objects_of, xywh_to_xyxy
from .refs import PathRefs, encode_paths


def coco_catalog(store: Store, annotations: str) -> Catalog:
    where = annotations
    raw, doc = _read(annotations)
    classes, class_of = _categories(doc, where)
    listed, image_path = _images(doc, where)
    found = {rel: (size, mtime) for rel, size, mtime in store.walk_files("", skip_hidden=True)
             if posixpath.splitext(rel)[1].lower() in IMAGE_EXTENSIONS}
    paths = sorted(set(listed) | set(found))
    item_of = {p: i for i, p in enumerate(paths)}
    counts, boxes, category, bad, orphans = _annotations(doc, image_path, item_of, class_of)
    for path in paths:
        if path not in listed:
            bad[item_of[path]] = f"image {display_ref(path)!r} has no entry in {posixpath.basename(where)}"
        elif path not in found:
            bad.setdefault(item_of[path], f"file {display_ref(path)!r} listed in {posixpath.basename(where)} "
                                          f"does not exist")
    objects, targets, labels, bad = objects_of(counts, boxes, category, len(classes), bad)
    stamps = np.array([found.get(p, (-1, 0)) for p in paths], np.int64).reshape(-1, 2)
    refs = PathRefs.join([encode_paths(paths)])
    keys = stamp_key(stamps[:, 0], stamps[:, 1])
    keys[stamps[:, 0] < 0] = BROKEN
    digest = hashlib.sha256(raw).hexdigest()
    notes = (f"{count(orphans, 'annotation')} in {where} {'names' if orphans == 1 else 'name'} no listed image "
             f"(left out)",) if orphans else ()
    return Catalog(
        kind="folder", uri=display_ref(store.display()), classes=tuple(classes), labels=labels, refs=refs,
        reader=FolderReader(store), notes=notes, bad=bad, label_kind="multi", targets=targets, objects=objects,
        fingerprint=hashlib.sha256(f"{_fingerprint(refs, stamps[:, 0])}\0coco\0{digest}\n".encode()).hexdigest(),
        options={"annotations": where if is_uri(where) else os.path.abspath(where)}, chunk_stamps=keys,
        state=hashlib.sha256(f"{_state(refs, keys)}\0{digest}".encode()).hexdigest(),
    )


def _read(annotations: str):
    """(the file's bytes, its JSON) of a COCO instances file, or a clear error."""
    parent, _, name = annotations.rstrip("/").rpartition("/")
    try:
        raw = Store.open(parent or ".").read_bytes(name)
    except OSError as exc:
        why = getattr(exc, "strerror", None) or exc
        raise MixbakeError(f"--annotations {annotations!r}: cannot read it ({why}).") from None
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise MixbakeError(f"--annotations {annotations}: not JSON ({exc}).") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) or \
            not isinstance(doc.get("categories"), list):
        raise MixbakeError(f"--annotations {annotations}: not a COCO instances file (expected an object with "
                           f"'images', 'annotations' and 'categories' lists).")
    return raw, doc


def _categories(doc: dict, where: str):
    """(class names in ascending category id order, {category id: class index})."""
    categories = sorted((c for c in doc["categories"] if isinstance(c, dict) and "id" in c), key=lambda c: c["id"])
    if not categories:
        raise MixbakeError(f"--annotations {where} lists no categories.")
    ids = [c["id"] for c in categories]
    if len(set(ids)) != len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        raise MixbakeError(f"--annotations {where}: category id {twice!r} is listed twice.")
    names = [str(c.get("name", c["id"])) for c in categories]
    check_distinct(names, f"--annotations {where}")
    return names, {c["id"]: i for i, c in enumerate(categories)}


def _images(doc: dict, where: str):
    """({path: index in images}, {image id: path}) of the JSON's images, their paths checked."""
    listed: Dict[str, int] = {}
    image_path: Dict[object, str] = {}
    for k, image in enumerate(doc["images"]):
        if not isinstance(image, dict) or not isinstance(image.get("file_name"), str) or "id" not in image:
            raise MixbakeError(f"--annotations {where}: images[{k}] has no id and file_name.")
        path = posixpath.normpath(image["file_name"])
        if path.startswith("../") or path.startswith("/") or path in ("", ".", ".."):
            raise MixbakeError(f"--annotations {where}: images[{k}] file_name {image['file_name']!r} is not a "
                               f"path inside SOURCE.")
        if path in listed:
            raise MixbakeError(f"--annotations {where} lists {path!r} twice (images[{listed[path]}] and images[{k}]).")
        if image["id"] in image_path:
            raise MixbakeError(f"--annotations {where}: image id {image['id']!r} is given to two images "
                               f"({image_path[image['id']]!r} and {path!r}): their annotations could not be told apart.")
        listed[path] = k
        image_path[image["id"]] = path
    return listed, image_path


def _annotations(doc: dict, image_path: dict, item_of: dict, class_of: dict):
    """(boxes per item, boxes (m, 4) xyxy, categories, bad items, annotations of no listed image)."""
    bad: Dict[int, str] = {}
    per_item: List[list] = [[] for _ in item_of]
    orphans = 0
    for k, ann in enumerate(doc.get("annotations") or []):
        path = image_path.get(ann.get("image_id")) if isinstance(ann, dict) else None
        if path is None:
            orphans += 1
            continue
        i = item_of[path]
        box, cat = ann.get("bbox"), ann.get("category_id")
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
            bad.setdefault(i, f"annotations[{k}]: bbox {json.dumps(box)[:60]} is not [x, y, w, h]")
        elif cat not in class_of:
            bad.setdefault(i, f"annotations[{k}]: category_id {cat!r} is not one of the {len(class_of)} categories")
        else:
            per_item[i].append((box, class_of[cat]))
    counts = np.fromiter((len(objs) for objs in per_item), np.int64, count=len(per_item))
    boxes = xywh_to_xyxy(np.array([b for objs in per_item for b, _ in objs], np.float64).reshape(-1, 4))
    category = np.fromiter((c for objs in per_item for _, c in objs), np.int64, count=int(counts.sum()))
    return counts, boxes, category, bad, orphans
