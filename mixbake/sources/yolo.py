"""The YOLO layout: a detection source.

``SOURCE/images/<...>/<name>.<ext>`` and ``SOURCE/labels/<...>/<name>.txt`` (the same tree), one
line per object: ``class cx cy w h``, the box's centre and size as fractions of the image's width
and height. The class names come from ``data.yaml`` (``names:`` as a list, a flow list or an
index map) or ``classes.txt`` (a name a line) at the root, else ``0..K-1``. An image without its
label file is a bad item ("no label file"); an empty label file is an image without objects. A line
that is not five numbers, a class outside the names, or a box outside 0..1 makes its image bad. The
label files' paths and bytes are part of the fingerprint.
"""
from __future__ import annotations

import hashlib
import posixpath
import re
from typing import Dict, List, Optional

import numpy as np

from ..errors import MixbakeError
from ..store import Store, stamp_key
from . import Catalog, display_ref
from .folder import BROKEN, IMAGE_EXTENSIONS, FolderReader, _fingerprint, _state
from .multilabel import unnamed_classes
from .objects import check_distinct, cxcywh_to_xyxy, objects_of
from .refs import PathRefs, encode_paths

IMAGES, LABELS = "images", "labels"
NAME_FILES = ("data.yaml", "data.yml", "classes.txt")


def is_yolo_layout(store: Store) -> bool:
    dirs = {name for name, is_dir in store.entries() if is_dir}
    return IMAGES in dirs and LABELS in dirs


def label_relpath(image_rel: str) -> str:
    """labels/<...>/<stem>.txt of images/<...>/<stem>.<ext>."""
    return LABELS + "/" + posixpath.splitext(image_rel[len(IMAGES) + 1:])[0] + ".txt"


def yolo_catalog(store: Store) -> Catalog:
    names, names_raw = _names(store)
    found = {rel: (size, mtime) for rel, size, mtime in store.walk_files(IMAGES, skip_hidden=True)
             if posixpath.splitext(rel)[1].lower() in IMAGE_EXTENSIONS}
    paths = sorted(found)
    if not paths:
        raise MixbakeError(f"YOLO source {display_ref(store.display())!r}: images/ holds no images.")
    bad: Dict[int, str] = {}
    counts, boxes, category = np.zeros(len(paths), np.int64), [], []
    h = hashlib.sha256(names_raw)
    for i, rel in enumerate(paths):
        label = label_relpath(rel)
        try:
            text = store.read_bytes(label)
        except OSError:
            bad[i] = f"no label file {label}"
            h.update(f"{label}\0-\n".encode("utf-8", "surrogateescape"))
            continue
        h.update(f"{label}\0".encode("utf-8", "surrogateescape") + hashlib.sha256(text).digest())
        rows = _lines(text, label, bad, i)
        counts[i] = len(rows)
        for c, *box in rows:
            category.append(c)
            boxes.append(box)
    category = np.asarray(category, np.int64)
    if names is None:
        names = list(unnamed_classes(category, category >= 0, f"YOLO source {store.display()}")) or ["0"]
    check_distinct(names, f"YOLO source {store.display()}")
    _outside_names(category, counts, len(names), paths, bad)
    objects, targets, labels, bad = objects_of(counts, cxcywh_to_xyxy(np.asarray(boxes, np.float64).reshape(-1, 4)),
                                               category, len(names), bad, normalised=True)
    stamps = np.array([found[p] for p in paths], np.int64).reshape(-1, 2)
    refs = PathRefs.join([encode_paths(paths)])
    keys = stamp_key(stamps[:, 0], stamps[:, 1])
    keys[stamps[:, 0] < 0] = BROKEN
    digest = h.hexdigest()
    return Catalog(
        kind="folder", uri=display_ref(store.display()), classes=tuple(names), labels=labels, refs=refs,
        reader=FolderReader(store), bad=bad, label_kind="multi", targets=targets, objects=objects,
        notes=split_note(store, names_raw),
        fingerprint=hashlib.sha256(f"{_fingerprint(refs, stamps[:, 0])}\0yolo\0{digest}\n".encode()).hexdigest(),
        options={"layout": "yolo"}, chunk_stamps=keys,
        state=hashlib.sha256(f"{_state(refs, keys)}\0{digest}".encode()).hexdigest(),
    )


def _outside_names(category: np.ndarray, counts: np.ndarray, k: int, paths: List[str], bad: Dict[int, str]) -> None:
    """An item with a class index outside the names is bad, naming its label file and line."""
    rows = np.repeat(np.arange(len(counts)), counts)
    starts = np.concatenate([[0], np.cumsum(counts)])
    for at in np.flatnonzero((category < 0) | (category >= k)).tolist():
        item = int(rows[at])
        bad.setdefault(item, f"{label_relpath(paths[item])}: object {at - int(starts[item])} has class "
                             f"{int(category[at])}, outside the {k} names")


def split_note(store: Store, names_raw: bytes) -> tuple:
    """A note when images/ holds several splits (train, val, ...): all of them are this source's items."""
    splits = sorted(name for name, is_dir in store.entries(IMAGES) if is_dir) if store.isdir(IMAGES) else []
    if len(splits) > 1:
        return (f"images/ holds {', '.join(splits)}: all of them are baked as one source (to bake one split, "
                f"give SOURCE as a copy of the layout with only it)",)
    return ()


def _lines(text: bytes, where: str, bad: Dict[int, str], item: int) -> List[list]:
    rows = []
    for n, line in enumerate(text.decode("utf-8", "replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            values = None
        if values is None or len(values) != 5 or values[0] != int(values[0]):
            bad.setdefault(item, f"{where} line {n}: {line.strip()[:60]!r} is not 'class cx cy w h'")
            return []
        rows.append([int(values[0]), *values[1:]])
    return rows


def _names(store: Store):
    """(class names or None, the names file's bytes) from data.yaml / classes.txt at the root."""
    present = {name for name, is_dir in store.entries() if not is_dir}
    for name in NAME_FILES:
        if name in present:
            raw = store.read_bytes(name)
            text = raw.decode("utf-8", "replace")
            names = _yaml_names(text, store.display(name)) if name != "classes.txt" else \
                [line.strip() for line in text.splitlines() if line.strip()]
            if names is not None:
                return names, raw
    return None, b""


def _yaml_names(text: str, where: str) -> Optional[List[str]]:
    """``names:`` of a YOLO data.yaml: ``[a, b]``, a block list (``- a``) or a map (``0: a``)."""
    lines = text.splitlines()
    for k, line in enumerate(lines):
        m = re.match(r"^names\s*:\s*(.*?)\s*(#.*)?$", line)
        if not m:
            continue
        rest = m.group(1)
        if rest.startswith("["):
            if not rest.endswith("]"):
                raise MixbakeError(f"{where}: names: {rest[:60]!r} is not a complete [a, b, ...] list.")
            return _flow_items(rest[1:-1], where)
        if rest.startswith("{"):
            items = [v.split(":", 1) for v in rest.strip("{}").split(",") if v.strip()]
            return _by_index({int(a): _unquote(b) for a, b in items}, where)
        entries: Dict[int, str] = {}
        listed: List[str] = []
        for sub in lines[k + 1:]:
            if not sub.strip() or sub.lstrip().startswith("#"):
                continue
            if not sub[:1].isspace():
                break
            item = sub.strip()
            if item.startswith("- "):
                listed.append(_unquote(item[2:]))
            elif re.match(r"^\d+\s*:", item):
                index, value = item.split(":", 1)
                entries[int(index)] = _unquote(value)
        return listed if listed else _by_index(entries, where) if entries else None
    return None


def _flow_items(body: str, where: str) -> List[str]:
    """The items of a YAML flow list's body: bare words, or '...' / "..." (commas inside kept)."""
    items = re.findall(r"""\s*(?:'((?:[^']|'')*)'|"((?:[^"\\]|\\.)*)"|([^,'"]*?))\s*(?:,|$)""", body)
    out = [single.replace("''", "'") if single else double if double else bare for single, double, bare in items]
    out = [v for v in out if v != ""] if body.strip() else []
    if body.strip() and not out:
        raise MixbakeError(f"{where}: cannot read the names list {body[:60]!r}.")
    return out


def _by_index(entries: Dict[int, str], where: str) -> List[str]:
    if sorted(entries) != list(range(len(entries))):
        raise MixbakeError(f"{where}: names are not indexed 0..{len(entries) - 1}.")
    return [entries[i] for i in range(len(entries))]


def _unquote(value: str) -> str:
    value = value.split(" #")[0].strip()
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" else value
