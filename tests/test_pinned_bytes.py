"""A recipe keeps its bytes across mixbake versions.

``pinned_bytes.json`` holds, for a handful of configs covering every op, output format, image
format and source kind, the manifest a build of that config wrote when it was pinned: the sha256 of
every shard and of labels.parquet, and the whole manifest. Each test bakes the config again with
today's code and compares. The bytes also depend on the libraries that write them (numpy, pyarrow,
Pillow, simplejpeg, OpenCV, zlib): where this machine's versions differ from the pinned ones, the
test is skipped, saying which differ.

Builds of format 1 with ``--copies > 1`` (the pairing scheme before format 2) are rebuilt from their
pinned manifest with ``--from-manifest``, as a user of such a build would.

Re-pin (only for a deliberate format change, said in the changelog):
``python tests/test_pinned_bytes.py --write``.
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

PINNED = Path(__file__).with_name("pinned_bytes.json")

# name -> (source kind, bake arguments after SOURCE OUT)
CASES = {
    "demo-defaults": ("demo", []),
    "demo-small-seed": ("demo", ["--size", "64", "--seed", "3"]),
    "demo-every-op-png": ("demo", ["--size", "48", "--mixup", "0.3", "--cutmix", "0.3", "--cutout", "0.3",
                                   "--none", "0.1", "--cutout-fill", "noise", "--cutout-holes", "2",
                                   "--label-smoothing", "0.1", "--image-format", "png", "--shard-size", "100"]),
    "demo-webdataset-webp": ("demo", ["--size", "40x32", "--keep-originals", "--pairing", "cross-class",
                                      "--cutmix-minmax", "0.2", "0.6", "--format", "webdataset",
                                      "--image-format", "webp", "--shard-size", "64", "--seed", "5"]),
    "demo-folder-raw-pad": ("demo", ["--size", "24", "--format", "folder", "--image-format", "raw",
                                     "--resize", "pad", "--cutout", "0.5", "--cutout-fill", "mean",
                                     "--shard-size", "150"]),
    "demo-copies3-folder": ("demo", ["--copies", "3", "--format", "folder", "--size", "20",
                                     "--shard-size", "150", "--seed", "9"]),
    "demo-copies2-parquet": ("demo", ["--copies", "2", "--quality", "75", "--size", "32", "--shard-size", "200",
                                      "--keep-originals"]),
    "folder-jpeg-ppm": ("folder", ["--size", "32", "--resize", "stretch", "--shard-size", "16", "--seed", "1"]),
    "parquet-png": ("parquet", ["--size", "20", "--image-format", "png", "--shard-size", "30",
                                "--mixup", "1", "--cutmix", "1", "--cutout", "1", "--cutout-fill", "noise"]),
}
BYTE_LIBRARIES = ("numpy", "pyarrow", "pillow", "simplejpeg", "opencv", "zlib")


def _ppm(pixels: np.ndarray) -> bytes:
    height, width, _ = pixels.shape
    return b"P6\n%d %d\n255\n" % (width, height) + pixels.tobytes()


def _pictures(count: int, seed: int):
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = int(rng.integers(20, 60)), int(rng.integers(20, 60))
        base = np.add.outer(np.arange(h), np.arange(w))[..., None] * (i % 7 + 1)
        yield (base + rng.integers(0, 90, (h, w, 3))).astype(np.uint8) % 251


def make_source(kind: str, root: Path) -> str:
    """A source whose files are the same bytes on every machine with the pinned library versions."""
    import simplejpeg
    if kind == "demo":
        return "demo"
    if kind == "folder":
        for i, pixels in enumerate(_pictures(40, 7)):
            cls = ("ant", "bee", "cow")[i % 3]
            (root / cls).mkdir(parents=True, exist_ok=True)
            if i % 2:
                (root / cls / f"{i:03d}.ppm").write_bytes(_ppm(pixels))
            else:
                data = simplejpeg.encode_jpeg(np.ascontiguousarray(pixels), quality=85, colorspace="RGB")
                (root / cls / f"{i:03d}.jpg").write_bytes(data)
        return str(root)
    import pyarrow as pa
    import pyarrow.parquet as pq
    images = [simplejpeg.encode_jpeg(np.ascontiguousarray(p), quality=80, colorspace="RGB")
              for p in _pictures(90, 11)]
    image_type = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
    table = pa.table({
        "image": pa.array([{"bytes": b, "path": f"{i}.jpg"} for i, b in enumerate(images)], image_type),
        "label": pa.array([("x", "y", "z", "w")[i % 4] for i in range(len(images))], pa.string()),
    })
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, root / "train.parquet", row_group_size=25, compression="zstd")
    return str(root / "train.parquet")


def bake(name: str, workdir: Path, from_manifest=None) -> dict:
    """Bake case ``name`` into workdir/out with the CLI; the manifest it wrote."""
    from helpers import cli

    kind, args = CASES[name]
    out = workdir / "out"
    if from_manifest is not None:
        argv = ["bake", "--from-manifest", str(from_manifest), str(out), "-q", "-w", "2"]
    else:
        argv = ["bake", make_source(kind, workdir / "src"), str(out), "-q", "-w", "2", *args]
    cli(*argv, code=0)
    return json.loads((out / "manifest.json").read_text())


def comparable(doc: dict) -> dict:
    """The manifest apart from what may differ between mixbake versions and machines."""
    doc = json.loads(json.dumps(doc))
    doc.pop("mixbake_version", None)
    doc["source"].pop("uri", None)
    return doc


def _library_mismatch(pinned: dict) -> list:
    from mixbake.run import library_versions
    here = library_versions()
    return [f"{lib} {pinned['libraries'].get(lib)} pinned, {here.get(lib)} here"
            for lib in BYTE_LIBRARIES if pinned["libraries"].get(lib) != here.get(lib)]


def _pinned(name: str) -> dict:
    doc = json.loads(PINNED.read_text())[name]
    mismatch = _library_mismatch(doc)
    if mismatch:
        pytest.skip("pinned with other library versions: " + "; ".join(mismatch))
    return doc


def _assert_same_build(got: dict, pinned: dict) -> None:
    got_files = [(s["path"], s["sha256"]) for s in got["shards"]] + [("labels.parquet", got["labels"]["sha256"])]
    want_files = [(s["path"], s["sha256"]) for s in pinned["shards"]] + \
        [("labels.parquet", pinned["labels"]["sha256"])]
    differ = [f"{path}" for (path, sha), (_, want) in zip(got_files, want_files) if sha != want]
    assert len(got_files) == len(want_files), f"{len(got_files)} files baked, {len(want_files)} pinned"
    assert not differ, f"bytes differ from the pinned build in: {', '.join(differ[:5])}"
    assert comparable(got) == comparable(pinned)


def _fresh_cases():
    return [n for n in CASES if "--copies" not in CASES[n][1]]


def _rebuilt_cases():
    return [n for n in CASES if "--copies" in CASES[n][1]]


@pytest.mark.parametrize("name", _fresh_cases())
def test_config_bakes_its_pinned_bytes(name, tmp_path):
    pinned = _pinned(name)
    _assert_same_build(bake(name, tmp_path), pinned)


@pytest.mark.parametrize("name", _rebuilt_cases())
def test_format1_build_with_copies_rebuilds_from_its_manifest(name, tmp_path):
    pinned = _pinned(name)
    manifest = tmp_path / "old-manifest.json"
    manifest.write_text(json.dumps({**pinned, "source": {**pinned["source"], "uri": "demo"}}))
    _assert_same_build(bake(name, tmp_path, from_manifest=manifest), pinned)


def write_pins() -> None:  # pragma: no cover - run by hand, for a deliberate format change
    import tempfile
    pins = {}
    for name in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            doc = bake(name, Path(tmp))
            doc["source"]["uri"] = "demo" if CASES[name][0] == "demo" else f"<{CASES[name][0]} made by the test>"
            pins[name] = doc
            print(f"{name}: {len(doc['shards'])} shards, {doc['totals']['rows']} rows")
    PINNED.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_pinned_bytes.py --write")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    write_pins()
