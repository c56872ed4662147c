"""Helpers shared by the test modules: image-folder sources, running mixbake (in this process or in
a new interpreter), reading a build, and comparing trees of files.

A plain module, imported as ``from helpers import ...`` (pytest puts tests/ on sys.path): pytest's
documentation advises never importing from a conftest.py outside a package. mixbake itself is
imported lazily, so that ``python tests/test_pinned_bytes.py --write`` can put the checkout on
sys.path first.
"""
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

MIXBAKE = [sys.executable, "-m", "mixbake"]


# ---------------------------------------------------------------- sources

def solid_picture(c, i, rng, size=24):
    """make_folder's default picture: one colour per class and item, size x size."""
    return np.full((size, size, 3), (30 + 40 * c, 20 + 35 * i, 200 - 30 * i), np.uint8)


def make_folder(root, classes=("a", "b"), per_class=6, size=24, picture=None, name="{i:02d}.png", seed=0,
                bad_at=None):
    """An image-folder source, root/<class>/<file> for ``per_class`` items of each class; returns root.

    picture(c, i, rng): item i of class c (the class's index in ``classes``) as an RGB array or a PIL
    image, written as a PNG with Pillow's defaults, or as the file's bytes. It is called class by
    class, item by item, with one ``np.random.default_rng(seed)``. The default, solid_picture at
    ``size``.
    name: the file's name, a format string given c, i and cls (the class's name).
    bad_at: (class name, i) of the item whose file holds b"this is not a png" instead.
    """
    root = Path(root)
    if picture is None:
        def picture(c, i, rng):
            return solid_picture(c, i, rng, size)
    rng = np.random.default_rng(seed)
    for c, cls in enumerate(classes):
        os.makedirs(root / cls, exist_ok=True)
        for i in range(per_class):
            data = picture(c, i, rng)
            if not isinstance(data, bytes):
                buf = io.BytesIO()
                (data if isinstance(data, Image.Image) else Image.fromarray(data)).save(buf, "PNG")
                data = buf.getvalue()
            if bad_at == (cls, i):
                data = b"this is not a png"
            (root / cls / name.format(c=c, i=i, cls=cls)).write_bytes(data)
    return root


def make_textured_folder(root, classes=3, per_class=20, side=160, seed=0):
    """class<c>/img_<i>.png: side x side upscaled noise with grain, deflated fast (compress_level=1)."""
    def picture(c, i, rng):
        base = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(base).resize((side, side), Image.BILINEAR), dtype=np.int16)
        img = np.clip(img + rng.integers(-24, 24, img.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "PNG", compress_level=1)
        return buf.getvalue()
    return make_folder(root, [f"class{c}" for c in range(classes)], per_class, picture=picture,
                       name="img_{i:02d}.png", seed=seed)


def single_item_bounds(n):
    """The chunk bounds of a source of n items, each item a chunk of its own."""
    return np.arange(n + 1, dtype=np.int64)


# ---------------------------------------------------------------- running mixbake

def cli(*args, code=None):
    """``mixbake ARGS`` in this process (click's runner: no new interpreter, and bakes share the worker
    pool's forkserver); stdout and stderr are kept apart (click >= 8.2). An exception other than the
    CLI's own exit -- a traceback the user would see -- is raised, never turned into exit code 1.
    ``code``: the exit code the command must end with."""
    from click.testing import CliRunner

    from mixbake.cli import cli as command
    argv = [str(a) for a in args]
    result = CliRunner().invoke(command, argv, catch_exceptions=False)
    if code is not None:
        assert result.exit_code == code, f"mixbake {' '.join(argv)}: exit {result.exit_code}\n{result.output}"
    return result


def cli_as_process(*args):
    """cli(*args) as a subprocess.CompletedProcess (returncode, stdout, stderr): read alike a run in this
    process and one of mixbake_process."""
    result = cli(*args)
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def mixbake_process(*args, code=None, env=None, timeout=300):
    """``python -m mixbake ARGS`` in a new interpreter, its output captured as text; the
    CompletedProcess. ``code``: the exit code it must end with."""
    result = subprocess.run(MIXBAKE + [str(a) for a in args], capture_output=True, text=True, env=env,
                            timeout=timeout)
    if code is not None:
        assert result.returncode == code, \
            f"mixbake {' '.join(map(str, args))}: exit {result.returncode}\n{result.stderr}"
    return result


def manifest_of(out):
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


# ---------------------------------------------------------------- trees of files


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


def decoded_rows(out):
    """Every shard row of a Parquet build as a dict, with ``pixels`` (the decoded image, RGB) and
    ``mask``/``mask_b`` decoded (None where the row has none)."""
    import glob

    import pyarrow.parquet as pq
    rows = []
    for path in sorted(glob.glob(str(Path(out) / "data" / "*.parquet"))):
        for r in pq.read_table(path).to_pylist():
            r["pixels"] = np.asarray(Image.open(io.BytesIO(r["image"]["bytes"])).convert("RGB"))
            for name in ("mask", "mask_b"):
                cell = r.get(name)
                if name in r:
                    r[name] = None if cell is None else np.asarray(Image.open(io.BytesIO(cell["bytes"])))
            rows.append(r)
    return rows


# ---------------------------------------------------------------- tampering with a build

def save_manifest(out, doc):
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, sort_keys=True, ensure_ascii=False)


def patch_manifest_entry(out, relpath):
    """Make the manifest agree with the file's current bytes (so only deeper checks can object)."""
    doc = manifest_of(out)
    data = (out / relpath).read_bytes()
    entries = [e for e in doc["shards"] + [doc["labels"]] if e["path"] == relpath]
    assert len(entries) == 1
    entries[0].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    doc["totals"]["bytes"] = sum(e["bytes"] for e in doc["shards"])
    save_manifest(out, doc)


def set_cell(path, column, row, value):
    """Rewrite one cell of a Parquet file with pyarrow, keeping the schema and its footer metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pq.read_table(path)
    values = table.column(column).to_pylist()
    values[row] = value
    index = table.schema.get_field_index(column)
    field = table.schema.field(index)
    pq.write_table(table.set_column(index, field, pa.array(values, field.type)), path)
