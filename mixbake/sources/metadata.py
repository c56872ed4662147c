"""An image folder whose items and labels a metadata file lists: the Hugging Face ``imagefolder``
convention (https://huggingface.co/docs/datasets/image_dataset), a multi-label source.

``metadata.csv`` or ``metadata.jsonl`` at the folder's root, one row per image: ``file_name``, the
image's path relative to the root (``/``-separated, subfolders allowed), and ``labels``, the image's
set of classes. In a CSV cell the class names are separated by ``;`` (an empty cell: no class); in
JSONL ``labels`` is a list of names (the classes: the sorted distinct names) or of integers (the
classes: 0..max). The items are the listed files, sorted by path; a file under the root that the
metadata does not list is ignored (counted); a listed file that is not there is a bad item.
The metadata file's bytes are part of the fingerprint: a label changed is another source.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import posixpath
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import MixbakeError
from ..humanize import count
from ..store import Store, stamp_key
from . import Catalog, display_ref
from .folder import BROKEN, FolderReader, _fingerprint, _state
from .multilabel import finish, offsets_of, unnamed_classes
from .refs import PathRefs, encode_paths

METADATA_FILES = ("metadata.csv", "metadata.jsonl")
CSV_SEPARATOR = ";"  # between the class names of one CSV cell
COLUMNS = ("file_name", "labels")


def find_metadata(store: Store) -> Optional[str]:
    """The name of the folder's metadata file, or None (a plain root/<class>/<image> folder)."""
    found = [name for name, is_dir in store.entries() if not is_dir and name in METADATA_FILES]
    if len(found) > 1:
        raise MixbakeError(f"Image folder {display_ref(store.display())!r} holds both {' and '.join(found)}: "
                           f"keep one of them (it lists the items and their labels).")
    return found[0] if found else None


@dataclass
class Rows:
    """A metadata file's rows, in file order: per row its line, file name and entry count, the
    entries (flat; a transient Python list), and the rows whose labels are unusable, with why."""
    lines: List[int] = field(default_factory=list)
    paths: List[str] = field(default_factory=list)
    counts: List[int] = field(default_factory=list)
    entries: list = field(default_factory=list)
    problems: Dict[int, str] = field(default_factory=dict)

    def add(self, line: int, path: str, labels, problem: Optional[str] = None) -> None:
        if problem is not None:
            self.problems[len(self.paths)] = problem
            labels = ()
        self.lines.append(line)
        self.paths.append(path)
        self.counts.append(len(labels))
        self.entries.extend(labels)


def metadata_catalog(store: Store, name: str) -> Catalog:
    """The catalog of a folder whose metadata file ``name`` lists its items."""
    where = store.display(name)
    raw = store.read_bytes(name)
    rows = (_read_csv if name.endswith(".csv") else _read_jsonl)(_text(raw, where), where)
    if not rows.paths:
        raise MixbakeError(f"{where} lists no files.")
    order = _path_order(rows, where)
    classes, values, valid, bad = _codes(rows, name, where)
    counts, item_valid, values, valid, bad = _in_order(rows, order, values, valid, bad)
    paths = [rows.paths[i] for i in order.tolist()]
    del rows
    stamps, missing, ignored = _stamps(store, paths, name)
    for i in missing:
        bad[i] = f"file {display_ref(paths[i])!r} listed in {name} does not exist"
    targets, labels, bad = finish(counts, values, valid, item_valid, len(classes), bad)
    refs = PathRefs.join([encode_paths(paths)])
    del paths
    keys = stamp_key(stamps[:, 0], stamps[:, 1])
    keys[stamps[:, 0] < 0] = BROKEN
    digest = hashlib.sha256(raw).hexdigest()
    fingerprint = hashlib.sha256(f"{_fingerprint(refs, stamps[:, 0])}\0{name}\0{digest}\n".encode()).hexdigest()
    notes = (f"{count(ignored, 'file')} ignored: not listed in {name} (counted in manifest.json as "
             f"source.ignored_files)",) if ignored else ()
    return Catalog(
        kind="folder", uri=display_ref(store.display()), classes=tuple(classes), labels=labels,
        refs=refs, reader=FolderReader(store), fingerprint=fingerprint, ignored_files=ignored,
        notes=notes, bad=bad, label_kind="multi", targets=targets, chunk_stamps=keys,
        state=hashlib.sha256(f"{_state(refs, keys)}\0{name}\0{store.stamp(name)}\0{digest}".encode()).hexdigest(),
    )


def _text(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8-sig")  # (a BOM, as spreadsheets write one, is not part of a column's name)
    except UnicodeDecodeError as exc:
        raise MixbakeError(f"{where} is not UTF-8 text ({exc}).") from None


def _missing_columns(where: str, columns) -> None:
    absent = [c for c in COLUMNS if c not in columns]
    if absent:
        raise MixbakeError(f"{where} has no {' and no '.join(repr(c) for c in absent)} column; its columns are: "
                           f"{', '.join(map(repr, columns)) or 'none'} (expected file_name, the image's path "
                           f"relative to the folder, and labels, its classes).")


def _read_csv(text: str, where: str) -> Rows:
    """``file_name,labels`` rows; a labels cell holds ``;``-separated class names."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader, [])]
    _missing_columns(where, header)
    at_name, at_labels = header.index("file_name"), header.index("labels")
    rows = Rows()
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue  # (a blank line)
        line = reader.line_num
        path = _path(row[at_name] if at_name < len(row) else "", where, line)
        if at_labels >= len(row):
            rows.add(line, path, (), "the row has no labels cell")
            continue
        rows.add(line, path, [n.strip() for n in row[at_labels].split(CSV_SEPARATOR) if n.strip()])
    return rows


def _read_jsonl(text: str, where: str) -> Rows:
    """One JSON object a line: ``file_name`` and ``labels``, a list of class names or indices."""
    rows, keys, nameless = Rows(), {}, None
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise MixbakeError(f"{where} line {line} is not JSON ({exc}).") from None
        if not isinstance(obj, dict):
            raise MixbakeError(f"{where} line {line} is not a JSON object.")
        keys.update(dict.fromkeys(obj))
        if not isinstance(obj.get("file_name"), str):
            nameless = nameless or line
            continue
        labels = obj.get("labels")
        problem = None if isinstance(labels, list) else \
            "labels is missing" if "labels" not in obj else "labels is null" if labels is None else \
            f"labels is not a list ({json.dumps(labels)[:60]})"
        rows.add(line, _path(obj["file_name"], where, line), labels if problem is None else (), problem)
    _missing_columns(where, list(keys))
    if nameless is not None:
        raise MixbakeError(f"{where} line {nameless} has no file_name (a string: the image's path "
                           f"relative to the folder).")
    return rows


def _path(name: str, where: str, line: int) -> str:
    """A file_name as a path relative to the root (``./a.png`` -> ``a.png``); one that is empty or
    leads out of the folder is refused."""
    norm = posixpath.normpath(name) if name else ""
    if not norm or norm == "." or name.startswith("/") or norm == ".." or norm.startswith("../"):
        raise MixbakeError(f"{where} line {line}: file_name {name!r} is not a path inside the folder "
                           f"(expected the image's path relative to the folder, with / separators).")
    return norm


def _path_order(rows: Rows, where: str) -> np.ndarray:
    """The rows sorted by path (as a folder's items are); a file listed twice is refused."""
    order = sorted(range(len(rows.paths)), key=rows.paths.__getitem__)
    for a, b in zip(order, order[1:]):
        if rows.paths[a] == rows.paths[b]:
            first, second = sorted((rows.lines[a], rows.lines[b]))
            raise MixbakeError(f"{where} lists {rows.paths[a]!r} twice (lines {first} and {second}).")
    return np.asarray(order, np.int64)


def _is_int(entry) -> bool:
    return isinstance(entry, int) and not isinstance(entry, bool)


def _codes(rows: Rows, name: str, where: str) -> Tuple[List[str], np.ndarray, np.ndarray, Dict[int, str]]:
    """(classes, per entry its class index, per entry not null, bad rows) in file order. The
    labels are names (the classes: the sorted distinct names) or, if the first label is an
    integer, class indices (0..max); an entry of the other kind makes its row bad."""
    by_index = _is_int(next((e for e in rows.entries if isinstance(e, str) or _is_int(e)), ""))
    bad = dict(rows.problems)
    row_of = np.repeat(np.arange(len(rows.counts)), rows.counts).tolist()
    if by_index:
        values = np.fromiter((min(max(e, -2**31), 2**31 - 1) if _is_int(e) else -1 for e in rows.entries),
                             np.int64, count=len(rows.entries))
        wrong = (lambda e: f"label {e!r} is a name, but the labels of {name} are class indices")
    else:
        classes = sorted({e for e in rows.entries if isinstance(e, str)})
        index = {c: i for i, c in enumerate(classes)}
        values = np.fromiter((index.get(e, -1) if isinstance(e, str) else -1 for e in rows.entries),
                             np.int64, count=len(rows.entries))
        wrong = (lambda e: f"label {e!r} is an integer, but the labels of {name} are class names")
    valid = np.fromiter((e is not None for e in rows.entries), bool, count=len(rows.entries))
    kind = _is_int if by_index else (lambda e: isinstance(e, str))
    for row, e in zip(row_of, rows.entries):
        if e is not None and not kind(e):
            bad.setdefault(row, wrong(e) if isinstance(e, str) or _is_int(e) else
                           f"label {json.dumps(e)[:60]} is not a class name or index")
    if by_index:
        classes = list(unnamed_classes(values, valid & (values >= 0), f"{where}"))
    if not classes:
        raise MixbakeError(f"{where} names no class: every item's labels are empty.")
    return classes, values, valid, bad


def _in_order(rows: Rows, order: np.ndarray, values, valid, bad):
    """Counts, list validity, entries and bad rows of the rows taken in ``order``."""
    counts = np.asarray(rows.counts, np.int64)
    offsets = offsets_of(counts)
    lo, new_counts = offsets[order], counts[order]
    at = np.repeat(lo - offsets_of(new_counts)[:-1], new_counts) + np.arange(int(new_counts.sum()))
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    item_valid = np.ones(len(order), bool)  # (a null list is one of ``bad``'s reasons already)
    return new_counts, item_valid, values[at], valid[at], {int(rank[i]): r for i, r in bad.items()}


def _stamps(store: Store, paths: List[str], name: str) -> Tuple[np.ndarray, List[int], int]:
    """((size, mtime_ns) per listed file, -1 where it is not there; the items whose file is not
    there; how many other files the folder holds (not hidden, not the metadata file))."""
    found = {rel: (size, mtime) for rel, size, mtime in store.walk_files("", skip_hidden=True)}
    listed = set(paths)
    ignored = sum(1 for rel in found if rel not in listed and rel != name)
    stamps, missing = np.empty((len(paths), 2), np.int64), []
    for i, rel in enumerate(paths):
        st = found.get(rel) or _stat(store, rel)  # (a hidden file listed: not walked, still an item)
        if st is None:
            missing.append(i)
            st = (-1, 0)
        stamps[i] = st
    return stamps, missing, ignored


def _stat(store: Store, rel: str) -> Optional[Tuple[int, int]]:
    try:
        if not store.exists(rel) or store.isdir(rel):
            return None
        return store.stamp(rel)
    except OSError:
        return None
