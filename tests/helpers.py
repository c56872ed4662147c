"""Small helpers shared by the test modules."""
import hashlib
import os
from pathlib import Path


def all_files(root):
    """{relative path (with '/'): bytes} of every file under root, dot-files and dot-dirs included."""
    files = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, root).replace(os.sep, "/")] = f.read()
    return files


def snapshot(root):
    """{relative path: (bytes, mtime_ns)} of every file under root: a no-op must not even touch a file."""
    return {rel: (data, os.stat(os.path.join(root, rel)).st_mtime_ns) for rel, data in all_files(root).items()}


def _describe(value):
    data, mtime = value if isinstance(value, tuple) else (value, None)
    text = f"{len(data)} B sha256 {hashlib.sha256(data).hexdigest()[:12]}"
    return text if mtime is None else f"{text} mtime_ns {mtime}"


def _listing(side, only):
    """{relative path: value} of a directory or a mapping, limited to ``only`` when given."""
    if isinstance(side, (str, os.PathLike)):
        if only is None:
            return all_files(side)
        paths = [(p, Path(side, *p.split("/"))) for p in only]
        return {p: path.read_bytes() for p, path in paths if path.is_file()}
    return dict(side) if only is None else {p: side[p] for p in only if p in side}


def assert_same_tree(got, want, only=None):
    """got and want hold the same files with the same bytes (and, from snapshot(), the same mtimes).

    Each is a directory or a {relative path: bytes or (bytes, mtime_ns)} mapping (all_files, snapshot,
    or any other such listing); ``only``: compare these paths alone (each must be on both sides). A
    failure lists every path that differs, is missing or is extra, with sizes and sha256 prefixes --
    never the bytes."""
    __tracebackhide__ = True
    only = None if only is None else list(only)
    got, want = _listing(got, only), _listing(want, only)
    missing_both = [p for p in only if p not in got and p not in want] if only is not None else []
    lines = [f"  differs  {p}: {_describe(got[p])}, want {_describe(want[p])}"
             for p in sorted(set(got) & set(want)) if got[p] != want[p]]
    lines += [f"  missing  {p}: want {_describe(want[p])}" for p in sorted(set(want) - set(got))]
    lines += [f"  extra    {p}: {_describe(got[p])}" for p in sorted(set(got) - set(want))]
    lines += [f"  absent   {p}: on neither side" for p in missing_both]
    if lines:
        raise AssertionError(f"the trees differ in {len(lines)} of {len(set(got) | set(want) | set(missing_both))} "
                             f"paths:\n" + "\n".join(lines))
