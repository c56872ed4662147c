"""Every trainer can read a bake: Hugging Face datasets, DuckDB, Polars, webdataset, plain files,
raw pixels, and the scripts in examples/ (PyTorch, DuckDB SQL, HF, webdataset).

Each optional reader is skipped when its package is missing. Bakes are tiny (--size 32) and shared
per module; nothing goes to the network (HF runs offline, with its caches under tmp).

The last part reads the sparse soft label (soft_index/soft_value) of a 1200-class bake with every
example, checking the dense target each builds against lam*onehot(a) + (1-lam)*onehot(b) smoothed,
and a --soft-label both bake, whose dense columns must equal the ones built from its sparse columns.
"""
import csv
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image

from helpers import assert_same_tree, cli, make_folder, manifest_of

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CLASSES = ["bird", "cat", "dog", "fish"]  # the synthetic folder's classes (sorted, as a folder source lists them)
DEMO_CLASSES = ["circle", "cross", "ring", "square", "star", "triangle"]


# ---------------------------------------------------------------- helpers and bakes

def bake(source, out, *args):
    """``mixbake bake SOURCE OUT --size 32 -q ARGS`` (the CLI, in-process: bakes share one forkserver);
    returns the manifest."""
    cli("bake", source, out, "--size", "32", "-q", *args, code=0)
    return manifest_of(out)


def run_example(capsys, name, *args):
    """Run an example's ``main(argv)`` in this process (one torch/datasets import for the module)."""
    capsys.readouterr()
    code = load_example(name).main([str(a) for a in args])
    stdout = capsys.readouterr().out
    assert code == 0, f"{name} exited {code}:\n{stdout}"
    return stdout


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name.replace('.', '_')}", EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shard_rows(out, manifest):
    """{key: row dict} over every Parquet shard, read with pyarrow (the reference reader)."""
    rows = {}
    for shard in manifest["shards"]:
        for row in pq.read_table(Path(out) / shard["path"]).to_pylist():
            rows[row["key"]] = row
    return rows


def labels_by_key(out):
    return {r["key"]: r for r in pq.read_table(Path(out) / "labels.parquet").to_pylist()}


def decode(data):
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def png(pixels):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def patterned_picture(c, i, rng):
    """A pattern of its own per class and item, 48x40 (so --size 32 crops)."""
    yy, xx = np.mgrid[0:40, 0:48]
    base = rng.integers(0, 256, 3)
    img = (base + (xx * (c + 1) + yy * (i + 1))[..., None] * np.array([1, 2, 3])) % 256
    x0, y0 = rng.integers(0, 30, 2)
    img[y0:y0 + 12, x0:x0 + 12] = rng.integers(0, 256, 3)
    return img.astype(np.uint8)


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """20 small images, 5 per class."""
    return make_folder(tmp_path_factory.mktemp("consumers_src") / "animals", classes=CLASSES, per_class=5,
                       picture=patterned_picture, name="{cls}_{i}.png", seed=7)


@pytest.fixture(scope="module")
def parquet_out(tmp_path_factory):
    """The demo in 3 Parquet shards (JPEG), with every op present."""
    out = tmp_path_factory.mktemp("consumers") / "parquet"
    bake("demo", out, "--shard-size", 100, "--mixup", 0.4, "--cutmix", 0.3, "--cutout", 0.2, "--none", 0.1,
         "--seed", 3)
    return out


@pytest.fixture(scope="module")
def manifest(parquet_out):
    return manifest_of(parquet_out)


@pytest.fixture(scope="module")
def reference(parquet_out, manifest):
    return shard_rows(parquet_out, manifest)


def test_parquet_bake_has_several_shards_and_every_op(parquet_out, manifest):
    assert len(manifest["shards"]) == 3
    assert manifest["classes"] == DEMO_CLASSES
    assert all(manifest["totals"]["ops"][op] > 0 for op in ("mixup", "cutmix", "cutout", "none"))
    assert sorted(os.listdir(parquet_out / "data")) == [f"train-0000{i}-of-00003.parquet" for i in range(3)]


# ---------------------------------------------------------------- Hugging Face datasets

@pytest.fixture(scope="module")
def hf_offline(tmp_path_factory):
    """Offline HF with its caches under tmp, whether or not datasets was imported already."""
    home = tmp_path_factory.mktemp("hf_home")
    mp = pytest.MonkeyPatch()
    for name, value in [("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"), ("HF_HOME", str(home)),
                        ("HF_HUB_DISABLE_TELEMETRY", "1")]:
        mp.setenv(name, value)
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants
    mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if hasattr(datasets.config, name):
            mp.setattr(datasets.config, name, True)
    yield datasets
    mp.undo()


def load_by_card(datasets, out, cache_dir):
    """``load_dataset(OUT)``: no builder, no data_dir or data_files: OUT/README.md says what to load."""
    return datasets.load_dataset(str(out), split="train", cache_dir=str(cache_dir))


@pytest.fixture(scope="module", params=["data_dir", "card"])
def hf_ds(request, hf_offline, parquet_out, tmp_path_factory):
    """The Parquet bake as ``load_dataset("parquet", data_dir=OUT)`` and as ``load_dataset(OUT)`` read it."""
    cache = tmp_path_factory.mktemp("hf_cache")
    if request.param == "card":
        return load_by_card(hf_offline, parquet_out, cache)
    return hf_offline.load_dataset("parquet", data_dir=str(parquet_out), split="train", cache_dir=str(cache))


def test_hf_rows_and_features(hf_offline, hf_ds, manifest):
    datasets = hf_offline
    assert hf_ds.num_rows == manifest["totals"]["rows"]
    features = hf_ds.features
    assert isinstance(features["image"], datasets.Image)
    assert isinstance(features["label"], datasets.ClassLabel)
    assert features["label"].names == manifest["classes"] == DEMO_CLASSES
    soft = features["soft_label"]  # List(Value("float32")) in recent datasets, Sequence(...) in older ones
    assert type(soft).__name__ in ("List", "Sequence") and soft.feature.dtype == "float32"
    assert hf_ds.data.schema.field("soft_label").type == pa.list_(pa.float32())
    assert features["lam"].dtype == "float32" and features["op"].dtype == "string"


def test_hf_reads_labels_parquet_with_class_names(hf_offline, parquet_out, manifest, tmp_path):
    labels = hf_offline.load_dataset("parquet", data_files=str(parquet_out / "labels.parquet"),
                                     split="train", cache_dir=str(tmp_path / "hf_cache"))
    assert labels.num_rows == manifest["totals"]["rows"]
    assert isinstance(labels.features["label"], hf_offline.ClassLabel)
    assert labels.features["label"].names == manifest["classes"]
    assert labels.features["lam"].dtype == "float32" and labels.features["shard"].dtype == "int32"


def test_hf_decodes_every_image_to_the_stored_pixels(hf_ds, reference):
    seen = set()
    for row in hf_ds:
        ref = reference[row["key"]]
        image = row["image"]
        assert isinstance(image, Image.Image) and image.size == (32, 32)
        assert np.array_equal(np.asarray(image.convert("RGB")), decode(ref["image"]["bytes"]))
        assert row["label"] == ref["label"] and row["op"] == ref["op"]
        assert np.array_equal(np.asarray(row["soft_label"], np.float32), np.asarray(ref["soft_label"], np.float32))
        seen.add(row["key"])
    assert seen == set(reference)


# ---------------------------------------------------------------- the dataset card: load_dataset(OUT)

def test_hf_takes_the_features_from_the_card(hf_offline, parquet_out, tmp_path):
    """load_dataset(OUT) reads the card's features: class names edited there are the ones it gives
    (the footer's are the same in a bake; here the card alone says 'CIRCLE')."""
    out = tmp_path / "edited"
    shutil.copytree(parquet_out, out)
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert readme.count('"0": circle\n') == 1
    (out / "README.md").write_text(readme.replace('"0": circle\n', '"0": CIRCLE\n'), encoding="utf-8")
    ds = load_by_card(hf_offline, out, tmp_path / "hf_cache")
    assert ds.features["label"].names == ["CIRCLE"] + DEMO_CLASSES[1:]


def test_hf_loads_a_webdataset_bake_by_its_card(hf_offline, wds_outs, tmp_path):
    datasets = hf_offline
    out = wds_outs[0]
    ds = load_by_card(datasets, out, tmp_path / "hf_cache")
    labels = labels_by_key(out)
    assert ds.num_rows == len(labels) == manifest_of(out)["totals"]["rows"]
    features = ds.features
    assert list(features) == ["cls", "jpg", "json", "__key__"]
    assert isinstance(features["cls"], datasets.ClassLabel) and features["cls"].names == CLASSES
    assert isinstance(features["jpg"], datasets.Image)
    assert features["json"]["soft_label"].feature.dtype == "float32" and features["json"]["lam"].dtype == "float32"
    assert features["json"]["label"].names == CLASSES
    tar_images = {}
    for tar in sorted(out.glob("train-*.tar")):
        with tarfile.open(tar) as t:
            tar_images.update({m.name[:-4]: t.extractfile(m).read() for m in t if m.name.endswith(".jpg")})
    seen = set()
    for row in ds:
        key, ref, info = row["__key__"], labels[row["__key__"]], row["json"]
        assert isinstance(row["jpg"], Image.Image) and np.array_equal(np.asarray(row["jpg"]), decode(tar_images[key]))
        assert row["cls"] == info["label"] == ref["label"] and info["key"] == key
        assert np.asarray(info["soft_label"], np.float32).tolist() == ref["soft_label"]
        assert np.float32(info["lam"]) == np.float32(ref["lam"]) and info["op"] == ref["op"]
        assert (info["src_a"], info["src_b"], info["boxes"]) == (ref["src_a"], ref["src_b"], ref["boxes"])
        seen.add(key)
    assert seen == set(labels)


@pytest.mark.parametrize("fmt", ["parquet", "webdataset"])
def test_hf_loads_a_raw_bake_by_its_card(hf_offline, src, fmt, tmp_path):
    out = tmp_path / "raw"
    manifest = bake(src, out, "--image-format", "raw", "--format", fmt, "--seed", 4, "--shard-size", 10)
    ds = load_by_card(hf_offline, out, tmp_path / "hf_cache")
    assert ds.num_rows == manifest["totals"]["rows"]
    assert ds.features["label" if fmt == "parquet" else "cls"].names == CLASSES
    if fmt == "parquet":
        reference = shard_rows(out, manifest)
        assert {name: ds.features[name].dtype for name in ("height", "width", "channels")} == dict.fromkeys(
            ("height", "width", "channels"), "int32")
        for row in ds:
            shape = (row["height"], row["width"], row["channels"])
            assert shape == (32, 32, 3) and row["image"]["bytes"] == reference[row["key"]]["image"]["bytes"]
            assert np.frombuffer(row["image"]["bytes"], np.uint8).reshape(shape).shape == (32, 32, 3)
    else:
        assert ds.features["raw"].dtype == "binary"
        assert all(len(row["raw"]) == 32 * 32 * 3 for row in ds)


def test_hf_loads_class_names_that_are_hard_to_spell_in_yaml(hf_offline, tmp_path):
    """Class names from a Parquet source's string labels: YAML's punctuation, its words for booleans
    and null, numbers, line breaks, unicode. The card's YAML (mixbake's own writer) must give them back."""
    names = ["a: b", 'say "hi"', "it's", "# hash", "- dash", "yes", "null", "0", "ключ 猫 😀", "line\nbreak",
             "ls\u2028ps", " lead", "---", "back\\slash"]
    rng = np.random.default_rng(1)
    images = [{"bytes": png(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)), "path": None}
              for _ in range(2 * len(names))]
    source = tmp_path / "named.parquet"
    pq.write_table(pa.table({"image": pa.array(images, pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                             "label": names * 2}), source)
    for fmt in ("parquet", "webdataset"):
        out = tmp_path / fmt
        manifest = bake(source, out, "--format", fmt, "--shard-size", 16)
        assert manifest["classes"] == sorted(names)
        ds = load_by_card(hf_offline, out, tmp_path / f"hf_cache_{fmt}")
        assert ds.features["label" if fmt == "parquet" else "cls"].names == manifest["classes"]
        assert cli("verify", out).exit_code == 0


def test_the_card_is_identical_across_worker_counts(wds_outs, tmp_path):
    """Two bakes of one build (--workers 1 and 2) write the same card; it names the build."""
    cards = [(out / "README.md").read_bytes() for out in wds_outs]
    assert cards[0] == cards[1]
    assert manifest_of(wds_outs[0])["build_id"].encode() in cards[0]
    parquet = []
    for workers in (1, 2):
        bake("demo", tmp_path / f"w{workers}", "--shard-size", 100, "--workers", workers)
        parquet.append((tmp_path / f"w{workers}" / "README.md").read_bytes())
    assert parquet[0] == parquet[1] and parquet[0].startswith(b"---\nconfigs:\n")


# ---------------------------------------------------------------- DuckDB

def test_duckdb_reads_shards_and_labels_with_no_options(parquet_out, manifest):
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    shards = f"read_parquet('{parquet_out}/data/*.parquet')"
    labels = f"read_parquet('{parquet_out}/labels.parquet')"
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {shards}").fetchall()}
    assert types["soft_label"] == "FLOAT[]"
    assert types["label"] == "BIGINT"
    assert types["lam"] == "FLOAT"
    assert types["image"] == "STRUCT(bytes BLOB, path VARCHAR)"
    assert types["boxes"] == "INTEGER[][]"
    label_types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {labels}").fetchall()}
    assert label_types["soft_label"] == "FLOAT[]" and label_types["label"] == "BIGINT"

    ops = {op: n for op, n in manifest["totals"]["ops"].items() if n}
    assert dict(con.execute(f"SELECT op, count(*) FROM {shards} GROUP BY op").fetchall()) == ops
    assert dict(con.execute(f"SELECT op, count(*) FROM {labels} GROUP BY op").fetchall()) == ops
    total_image_bytes = con.execute(f"SELECT sum(octet_length(image.bytes)) FROM {shards}").fetchone()[0]
    ref = sum(pc.sum(pc.binary_length(pq.read_table(parquet_out / s["path"], columns=["image"])
                                      .column("image").combine_chunks().field("bytes"))).as_py()
              for s in manifest["shards"])
    assert total_image_bytes == ref
    worst = con.execute(f"SELECT max(abs(list_sum(soft_label) - 1)) FROM {labels}").fetchone()[0]
    assert worst < 1e-6


# ---------------------------------------------------------------- Polars

def test_polars_reads_shards_and_labels_with_no_options(parquet_out, manifest):
    pl = pytest.importorskip("polars")
    shards = pl.read_parquet(f"{parquet_out}/data/*.parquet")
    labels = pl.read_parquet(parquet_out / "labels.parquet")
    for df in (shards, labels):
        assert df.height == manifest["totals"]["rows"]
        assert df.schema["soft_label"] == pl.List(pl.Float32)
        assert df.schema["label"] == pl.Int64
        sums = df.select(pl.col("soft_label").list.sum()).to_series().to_numpy()
        assert np.abs(sums - 1).max() < 1e-6
    assert shards.schema["image"] == pl.Struct({"bytes": pl.Binary, "path": pl.String})
    assert sorted(shards["key"].to_list()) == sorted(labels["key"].to_list())
    counts = dict(shards.group_by("op").len().iter_rows())
    assert counts == {op: n for op, n in manifest["totals"]["ops"].items() if n}


# ---------------------------------------------------------------- webdataset

@pytest.fixture(scope="module")
def wds_outs(src, tmp_path_factory):
    root = tmp_path_factory.mktemp("consumers_wds")
    outs = []
    for workers in (1, 2):
        out = root / f"w{workers}"
        bake(src, out, "--format", "webdataset", "--shard-size", 8, "--workers", workers, "--seed", 5,
             "--cutout", 0.3)
        outs.append(out)
    return outs


def test_webdataset_yields_every_key_once_with_its_soft_label(wds_outs):
    wds = pytest.importorskip("webdataset")
    out = wds_outs[0]
    manifest = manifest_of(out)
    urls = sorted(str(p) for p in out.glob("train-*.tar"))
    assert len(urls) == len(manifest["shards"]) >= 2
    labels = labels_by_key(out)
    keys = Counter()
    for sample in wds.WebDataset(urls, shardshuffle=False):
        key = sample["__key__"]
        keys[key] += 1
        assert {"cls", "json", "jpg"} <= set(sample)
        info = json.loads(sample["json"])
        ref = labels[key]
        assert info["key"] == key and int(sample["cls"]) == info["label"] == ref["label"]
        assert np.array_equal(np.asarray(info["soft_label"], np.float32), np.asarray(ref["soft_label"], np.float32))
        assert info["op"] == ref["op"] and np.float32(info["lam"]) == np.float32(ref["lam"])
        assert decode(sample["jpg"]).shape == (32, 32, 3)
    assert set(keys) == set(labels) and set(keys.values()) == {1}
    assert sum(keys.values()) == manifest["totals"]["rows"]


def test_webdataset_tars_are_identical_across_worker_counts(wds_outs):
    a, b = wds_outs
    tars = sorted(p.name for p in a.glob("train-*.tar"))
    assert tars == sorted(p.name for p in b.glob("train-*.tar")) and tars
    assert_same_tree(a, b, only=tars + ["labels.parquet"])


# ---------------------------------------------------------------- folder format

def test_folder_labels_csv_matches_the_files(src, tmp_path):
    out = tmp_path / "folder"
    manifest = bake(src, out, "--format", "folder", "--seed", 2)
    with open(out / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    files = sorted(p.relative_to(out).as_posix() for p in (out / "images").rglob("*") if p.is_file())
    assert len(rows) == len(files) == manifest["totals"]["rows"]
    assert sorted(r["path"] for r in rows) == files
    for row in rows:
        parts = Path(row["path"]).parts
        assert parts[0] == "images" and parts[1] == row["class"] == manifest["classes"][int(row["label"])]
        assert parts[2] == f"{row['key']}.jpg"
        soft = json.loads(row["soft_label"])
        assert len(soft) == len(CLASSES) and abs(sum(soft) - 1) < 1e-5
    assert manifest["classes"] == CLASSES


# ---------------------------------------------------------------- raw pixels

def test_raw_pixels_equal_a_png_bake_of_the_same_config(src, tmp_path):
    raw_manifest = bake(src, tmp_path / "raw", "--image-format", "raw", "--seed", 11, "--shard-size", 10)
    png_manifest = bake(src, tmp_path / "png", "--image-format", "png", "--seed", 11, "--shard-size", 10)
    schema = pq.read_schema(tmp_path / "raw" / raw_manifest["shards"][0]["path"])
    for name in ("height", "width", "channels"):
        assert schema.field(name).type == pa.int32()
    assert schema.field("image").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    raw, png = shard_rows(tmp_path / "raw", raw_manifest), shard_rows(tmp_path / "png", png_manifest)
    assert set(raw) == set(png) and len(raw) == raw_manifest["totals"]["rows"]
    for key, row in raw.items():
        assert (row["height"], row["width"], row["channels"]) == (32, 32, 3)
        pixels = np.frombuffer(row["image"]["bytes"], np.uint8).reshape(row["height"], row["width"], row["channels"])
        assert np.array_equal(pixels, decode(png[key]["image"]["bytes"])), key
        assert row["op"] == png[key]["op"] and row["soft_label"] == png[key]["soft_label"]


# ---------------------------------------------------------------- the examples

def test_example_torch_dataset(parquet_out, manifest, capsys):
    torch = pytest.importorskip("torch")
    example = load_example("torch_dataset.py")
    ds = example.MixbakeParquet(str(parquet_out), provenance=True)
    assert len(ds) == manifest["totals"]["rows"] and ds.classes == DEMO_CLASSES
    in_order = [row for s in manifest["shards"] for row in pq.read_table(parquet_out / s["path"]).to_pylist()]
    for i in (0, 99, 100, len(ds) - 1):  # across shard boundaries
        image, soft, info = ds[i]
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        expected = torch.from_numpy(np.array(decode(in_order[i]["image"]["bytes"]))).permute(2, 0, 1).float() / 255
        assert torch.equal(image, expected)
        assert torch.equal(soft, torch.tensor(in_order[i]["soft_label"], dtype=torch.float32))
        assert info["label_a"].item() == in_order[i]["label_a"]
    order = list(example.GroupedShuffleSampler(ds))
    assert sorted(order) == list(range(len(ds)))

    stdout = run_example(capsys, "torch_dataset.py", parquet_out, "--steps", 3, "--batch-size", 32)
    assert "step 3: soft-target CE" in stdout and "OK: the two loss forms agree" in stdout


def test_example_duckdb_query(parquet_out, manifest):
    pytest.importorskip("duckdb")
    example = load_example("duckdb_query.py")
    results = {title.split(",")[0]: (columns, rows) for title, columns, rows in
               example.run(str(parquet_out), str(EXAMPLES / "duckdb_labels.sql"))}
    columns, rows = results["Rows per op"]
    assert {r[0]: r[1] for r in rows} == {op: n for op, n in manifest["totals"]["ops"].items() if n}
    columns, rows = next(v for k, v in results.items() if k.startswith("Soft-label mass per class"))
    assert [r[1] for r in rows] == DEMO_CLASSES
    assert abs(sum(r[2] for r in rows) - manifest["totals"]["rows"]) < 0.01
    columns, rows = next(v for k, v in results.items() if k.startswith("Sanity checks"))
    check = dict(zip(columns, rows[0]))
    assert check["rows"] == manifest["totals"]["rows"]
    assert check["max_sum_error"] < 1e-6 and check["wrong_length"] == 0 and check["label_not_argmax"] == 0

    proc = subprocess.run([sys.executable, str(EXAMPLES / "duckdb_query.py"), str(parquet_out)],
                          capture_output=True, text=True, timeout=120)  # the script as a user runs it
    assert proc.returncode == 0, proc.stderr
    assert "-- Rows per op" in proc.stdout and "cutout" in proc.stdout and "triangle" in proc.stdout


def test_example_hf_datasets(hf_offline, parquet_out, manifest, tmp_path, capsys):
    stdout = run_example(capsys, "hf_datasets.py", parquet_out, "--cache-dir", tmp_path / "hf_cache")
    assert f"num_rows: {manifest['totals']['rows']}" in stdout
    assert f"ClassLabel with 6 classes: {DEMO_CLASSES}" in stdout
    assert "image: Image(" in stdout and "RGB 32x32" in stdout
    assert "float32" in stdout


def test_example_webdataset_reader(wds_outs, capsys):
    pytest.importorskip("webdataset")
    out = wds_outs[0]
    manifest = manifest_of(out)
    stdout = run_example(capsys, "webdataset_reader.py", out, "--batch-size", 4)
    rows = manifest["totals"]["rows"]
    assert f"{rows} samples in {len(manifest['shards'])} tar shards (manifest says {rows})" in stdout
    assert "one batch: images (4, 32, 32, 3), soft labels (4, 4)" in stdout


# ---------------------------------------------------------------- the sparse form (more than 1000 classes)

MANY = 1200  # classes: past columns.DENSE_UP_TO, so --soft-label auto stores soft_index/soft_value
EPS = 0.1  # the sparse bakes' label smoothing: the readers must apply it, the columns hold it not


@pytest.fixture(scope="module")
def many_src(tmp_path_factory):
    """A Parquet source of 1200 classes, one 8x8 PNG per class; label int64 (class names '0'..'1199')."""
    rng = np.random.default_rng(5)
    images = [{"bytes": png(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)), "path": None} for _ in range(MANY)]
    source = tmp_path_factory.mktemp("many_src") / "many.parquet"
    pq.write_table(pa.table({"image": pa.array(images, pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                             "label": pa.array(np.arange(MANY), pa.int64())}), source, row_group_size=400)
    return source


def bake_sparse(source, out, *args):
    manifest = bake(source, out, "--label-smoothing", EPS, "--mixup", 0.4, "--cutmix", 0.3, "--cutout", 0.2,
                    "--none", 0.1, "--seed", 8, "--shard-size", 500, *args)
    assert len(manifest["classes"]) == MANY and manifest["config"]["label_smoothing"] == EPS
    return manifest


@pytest.fixture(scope="module")
def sparse_out(many_src, tmp_path_factory):
    out = tmp_path_factory.mktemp("sparse") / "parquet"
    bake_sparse(many_src, out)
    return out


@pytest.fixture(scope="module")
def sparse_labels(sparse_out):
    """labels.parquet's columns as numpy, in shard order; the dense target each row must give."""
    table = pq.read_table(sparse_out / "labels.parquet")
    assert "soft_label" not in table.column_names
    assert table.schema.field("soft_index").type == pa.list_(pa.int32())
    assert table.schema.field("soft_value").type == pa.list_(pa.float32())
    cols = {name: table.column(name).to_numpy() for name in ("shard", "row", "lam", "label_a", "label")}
    assert np.all(np.diff(cols["shard"] * 10**6 + cols["row"]) > 0)  # in shard order, as a reader meets them
    cols["key"] = table.column("key").to_pylist()
    cols["label_b"] = pc.coalesce(table.column("label_b"), table.column("label_a")).to_numpy()
    cols["expected"] = expected_dense(cols["label_a"], cols["label_b"], cols["lam"], MANY, EPS)
    cols["index"] = table.column("soft_index").to_pylist()
    cols["value"] = table.column("soft_value").to_pylist()
    return cols


def expected_dense(label_a, label_b, lam, num_classes, eps):
    """``lam*onehot(a) + (1-lam)*onehot(b)``, smoothed: what a row's dense target must be (float64)."""
    rows = np.arange(len(lam))
    dense = np.zeros((len(lam), num_classes))
    np.add.at(dense, (rows, label_a), lam.astype(np.float64))
    np.add.at(dense, (rows, label_b), 1.0 - lam.astype(np.float64))
    return (1 - eps) * dense + eps / num_classes


def dense_from_pairs(index, value, num_classes, eps):
    """Rows of (soft_index, soft_value) as the dense target, with numpy: the reference reader."""
    dense = np.zeros((len(index), num_classes))
    for row, (i, v) in enumerate(zip(index, value)):
        dense[row, i] = v
    return (1 - eps) * dense + eps / num_classes


def test_sparse_bake_stores_at_most_two_ascending_entries_a_row(sparse_out, sparse_labels):
    manifest = manifest_of(sparse_out)
    assert all(manifest["totals"]["ops"][op] > 0 for op in ("mixup", "cutmix", "cutout", "none"))
    lengths = [len(i) for i in sparse_labels["index"]]
    assert set(lengths) == {1, 2} and all(i == sorted(set(i)) for i in sparse_labels["index"])
    assert np.allclose(dense_from_pairs(sparse_labels["index"], sparse_labels["value"], MANY, EPS),
                       sparse_labels["expected"], atol=1e-6)
    for shard in manifest["shards"]:
        assert "soft_label" not in pq.read_schema(sparse_out / shard["path"]).names


def test_example_torch_dataset_sparse(sparse_out, sparse_labels, capsys):
    torch = pytest.importorskip("torch")
    example = load_example("torch_dataset.py")
    ds = example.MixbakeParquet(str(sparse_out), provenance=True)
    assert ds.form == "sparse" and len(ds) == len(sparse_labels["lam"]) and len(ds.classes) == MANY
    index, value = ds[3][1]
    assert index.tolist() == sparse_labels["index"][3] and value.tolist() == sparse_labels["value"][3]
    group = ds._group(0)  # a row group's soft label is its entries, not K floats a row
    assert "soft_label" not in group and group["soft_value"].size <= 2 * (len(group["offsets"]) - 1)
    loader = torch.utils.data.DataLoader(ds, batch_size=256, collate_fn=example.SoftTargetCollate(MANY, EPS))
    targets = torch.cat([soft for _, soft, _ in loader])
    assert targets.shape == (len(ds), MANY) and targets.dtype == torch.float32
    assert np.allclose(targets.numpy(), sparse_labels["expected"], atol=1e-6)
    assert torch.equal(targets.argmax(1), torch.tensor(sparse_labels["label"]))

    stdout = run_example(capsys, "torch_dataset.py", sparse_out, "--steps", 3, "--batch-size", 32)
    assert "soft label sparse (" in stdout and f"of {MANY} classes" in stdout
    assert "step 3: soft-target CE" in stdout and "OK: the two loss forms agree" in stdout


@pytest.fixture(scope="module")
def both_out(tmp_path_factory):
    """The demo (6 classes) with --soft-label both: the dense and the sparse columns side by side."""
    out = tmp_path_factory.mktemp("both") / "parquet"
    bake("demo", out, "--soft-label", "both", "--label-smoothing", EPS, "--cutout", 0.2, "--seed", 9)
    return out


def test_both_form_dense_equals_the_one_built_from_sparse(both_out):
    table = pq.read_table(both_out / "labels.parquet")
    assert {"soft_label", "soft_index", "soft_value"} <= set(table.column_names)
    dense = np.asarray(table.column("soft_label").to_pylist())
    built = dense_from_pairs(table.column("soft_index").to_pylist(), table.column("soft_value").to_pylist(),
                             len(DEMO_CLASSES), EPS)
    assert np.allclose(dense, built, atol=1e-6)


def test_example_torch_dataset_both_forms_give_one_target(both_out, capsys):
    torch = pytest.importorskip("torch")
    example = load_example("torch_dataset.py")
    collate = example.SoftTargetCollate(len(DEMO_CLASSES), EPS)
    targets = {}
    for form in ("dense", "sparse"):
        ds = example.MixbakeParquet(str(both_out), form=form)
        assert ds.form == form
        targets[form] = torch.cat([soft for _, soft in torch.utils.data.DataLoader(ds, batch_size=100,
                                                                                 collate_fn=collate)])
    assert example.MixbakeParquet(str(both_out)).form == "sparse"
    assert torch.allclose(targets["dense"], targets["sparse"], atol=1e-6)
    for form in ("dense", "sparse"):
        stdout = run_example(capsys, "torch_dataset.py", both_out, "--steps", 2, "--form", form)
        assert "OK: the two loss forms agree" in stdout


class DuckdbResults(dict):
    """{title: (columns, rows)} of duckdb_query.run; ``[prefix]`` finds the one result whose title
    starts with it."""

    def __init__(self, out, sql=None):
        example = load_example("duckdb_query.py")
        super().__init__((title, (columns, rows)) for title, columns, rows in
                         example.run(str(out), sql and str(EXAMPLES / sql)))

    def __getitem__(self, prefix):
        [title] = [t for t in self if t.startswith(prefix)]
        return super().__getitem__(title)


def test_example_duckdb_query_sparse(sparse_out, sparse_labels):
    pytest.importorskip("duckdb")
    assert load_example("duckdb_query.py").soft_form(str(sparse_out)) == "sparse"
    results = DuckdbResults(sparse_out)
    columns, rows = results["Soft-label mass per class"]
    assert [r[0] for r in rows] == list(range(MANY)) and [r[1] for r in rows] == [str(c) for c in range(MANY)]
    assert np.abs(np.array([r[2] for r in rows]) - sparse_labels["expected"].sum(axis=0)).max() <= 5e-4 + 1e-9
    assert [r[3] for r in rows] == np.bincount(sparse_labels["label"], minlength=MANY).tolist()
    columns, rows = results["Sanity checks with list functions"]
    check = dict(zip(columns, rows[0]))
    assert check.pop("rows") == len(sparse_labels["lam"]) and check.pop("max_entries") == 2
    assert check.pop("max_sum_error") < 1e-6 and set(check.values()) == {0}, check
    columns, rows = results["The 5 classes with the most soft-label mass before smoothing"]
    sparse_mass = (sparse_labels["expected"].sum(axis=0) - len(sparse_labels["lam"]) * EPS / MANY) / (1 - EPS)
    top = np.argsort(-sparse_mass, kind="stable")[:5]
    assert np.allclose([r[1] for r in rows], sparse_mass[top], atol=5e-4)
    columns, rows = results["Rows per op"]
    assert {r[0]: r[1] for r in rows} == {op: n for op, n in manifest_of(sparse_out)["totals"]["ops"].items() if n}

    proc = subprocess.run([sys.executable, str(EXAMPLES / "duckdb_query.py"), str(sparse_out), "--max-rows", "10"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"... {MANY - 10} more rows ({MANY} in all)" in proc.stdout and "weight_not_lam" in proc.stdout


def test_example_duckdb_both_forms_give_one_class_mass(both_out):
    """A --soft-label both bake: the dense file's class mass (soft_label) equals the sparse file's
    (soft_index/soft_value, smoothed in SQL); duckdb_query.py picks the sparse one."""
    pytest.importorskip("duckdb")
    assert load_example("duckdb_query.py").soft_form(str(both_out)) == "sparse"
    mass = {sql: DuckdbResults(both_out, sql)["Soft-label mass per class"][1]
            for sql in ("duckdb_labels.sql", "duckdb_labels_sparse.sql")}
    assert mass["duckdb_labels.sql"] == mass["duckdb_labels_sparse.sql"]
    assert [r[1] for r in mass["duckdb_labels.sql"]] == DEMO_CLASSES


@pytest.mark.parametrize("how", ["data_dir", "card"])
def test_hf_reads_the_sparse_columns(hf_offline, sparse_out, sparse_labels, how, tmp_path):
    cache = tmp_path / "hf_cache"
    ds = load_by_card(hf_offline, sparse_out, cache) if how == "card" else \
        hf_offline.load_dataset("parquet", data_dir=str(sparse_out), split="train", cache_dir=str(cache))
    features = ds.features
    assert "soft_label" not in features and features["label"].num_classes == MANY
    for name, dtype in (("soft_index", "int32"), ("soft_value", "float32")):
        assert type(features[name]).__name__ in ("List", "Sequence") and features[name].feature.dtype == dtype
    assert ds.data.schema.field("soft_index").type == pa.list_(pa.int32())
    assert ds.data.schema.field("soft_value").type == pa.list_(pa.float32())
    labels = ds.select_columns(["key", "soft_index", "soft_value"]).to_dict()
    assert labels["key"] == sparse_labels["key"]
    assert labels["soft_index"] == sparse_labels["index"] and labels["soft_value"] == sparse_labels["value"]


def test_example_hf_datasets_sparse(hf_offline, sparse_out, sparse_labels, tmp_path, capsys):
    stdout = run_example(capsys, "hf_datasets.py", sparse_out, "--cache-dir", tmp_path / "hf_cache")
    assert f"num_rows: {len(sparse_labels['lam'])}" in stdout and f"ClassLabel with {MANY} classes" in stdout
    assert "'1199'" in stdout and "'600'" not in stdout  # 1200 class names are not all printed
    entries = sum(map(len, sparse_labels["index"]))
    assert (f"soft_index/soft_value: {entries} entries for {len(sparse_labels['lam'])} rows (label smoothing {EPS} "
            f"over {MANY} classes); dense row sums in [1.000000, 1.000000]") in stdout
    assert f"dense soft_label of rows 0-7, built on read: (8, {MANY}) float32" in stdout

    example = load_example("hf_datasets.py")
    ds = example.load(str(sparse_out), str(tmp_path / "hf_cache"))
    dense = example.dense_view(ds.select_columns(["soft_index", "soft_value"]), MANY, EPS)[:]["soft_label"]
    assert dense.shape == (len(ds), MANY) and dense.dtype == np.float32
    assert np.allclose(dense, sparse_labels["expected"], atol=1e-6)


def test_example_hf_datasets_both(hf_offline, both_out, tmp_path, capsys):
    stdout = run_example(capsys, "hf_datasets.py", both_out, "--cache-dir", tmp_path / "hf_cache")
    rows = manifest_of(both_out)["totals"]["rows"]
    assert f"soft_label matrix ({rows}, 6) float32" in stdout
    assert "dense soft_label of rows 0-7, built on read: (8, 6)" in stdout
    example = load_example("hf_datasets.py")
    ds = example.load(str(both_out), str(tmp_path / "hf_cache"))
    ds = ds.select_columns(["soft_label", "soft_index", "soft_value"])
    stored = np.asarray(ds.with_format("numpy")["soft_label"])
    built = example.dense_view(ds.remove_columns("soft_label"), len(DEMO_CLASSES), EPS)[:]["soft_label"]
    assert np.allclose(stored, built, atol=1e-6)


@pytest.fixture(scope="module")
def sparse_wds(many_src, tmp_path_factory):
    out = tmp_path_factory.mktemp("sparse_wds") / "wds"
    bake_sparse(many_src, out, "--format", "webdataset")
    return out


def test_example_webdataset_reader_sparse(sparse_wds, capsys):
    pytest.importorskip("webdataset")
    labels = labels_by_key(sparse_wds)
    rows = len(labels)
    stdout = run_example(capsys, "webdataset_reader.py", sparse_wds, "--batch-size", 4)
    assert f"{rows} samples in 2 tar shards (manifest says {rows})" in stdout
    assert "soft-label mass per class (top 10): " in stdout and "soft_index/soft_value: " in stdout
    assert f"one batch: images (4, 32, 32, 3), soft labels (4, {MANY})" in stdout

    example = load_example("webdataset_reader.py")
    dataset, manifest = example.make_dataset(str(sparse_wds))
    keys, targets, mass = [], [], np.zeros(MANY)
    for image, target, info in dataset:
        ref = labels[info["key"]]
        assert "soft_label" not in info and isinstance(target, tuple)
        assert target[0].tolist() == ref["soft_index"] and target[1].tolist() == ref["soft_value"]
        keys.append(info["key"])
        targets.append(target)
        example.add_mass(mass, target, EPS)
    assert sorted(keys) == sorted(labels)
    ref = [labels[k] for k in keys]
    expected = expected_dense(np.array([r["label_a"] for r in ref]),
                              np.array([r["label_a"] if r["label_b"] is None else r["label_b"] for r in ref]),
                              np.array([r["lam"] for r in ref], np.float32), MANY, EPS)
    assert np.allclose(example.dense_targets(targets, MANY, EPS), expected, atol=1e-6)
    assert np.allclose(mass, expected.sum(axis=0), atol=1e-4)


def test_hf_loads_a_sparse_webdataset_bake_by_its_card(hf_offline, sparse_wds, tmp_path):
    ds = load_by_card(hf_offline, sparse_wds, tmp_path / "hf_cache")
    info = ds.features["json"]
    assert "soft_label" not in info
    assert info["soft_index"].feature.dtype == "int32" and info["soft_value"].feature.dtype == "float32"
    labels = labels_by_key(sparse_wds)
    for row in ds.select_columns(["__key__", "json"]):
        ref = labels[row["__key__"]]
        assert (row["json"]["soft_index"], row["json"]["soft_value"]) == (ref["soft_index"], ref["soft_value"])


def test_folder_labels_csv_sparse(many_src, tmp_path):
    out = tmp_path / "folder"
    bake_sparse(many_src, out, "--format", "folder")
    labels = labels_by_key(out)
    with open(out / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(labels) and "soft_label" not in rows[0]
    for row in rows:
        index, value = json.loads(row["soft_index"]), json.loads(row["soft_value"])
        ref = labels[row["key"]]
        # labels.csv rounds a weight to 7 decimals (as it does soft_label's): not float32's round trip
        assert index == ref["soft_index"] and np.allclose(value, ref["soft_value"], rtol=0, atol=1e-7)
        assert int(row["label"]) == index[int(np.argmax(value))]


def test_duckdb_and_polars_read_the_sparse_columns(sparse_out, sparse_labels):
    """The types and snippets of arrow_readers.md on a sparse bake: a batch's dense target, class mass."""
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    shards, labels = f"{sparse_out}/data/*.parquet", sparse_out / "labels.parquet"
    con = duckdb.connect()
    for source in (f"read_parquet('{shards}')", f"read_parquet('{labels}')"):
        types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        assert (types["soft_index"], types["soft_value"]) == ("INTEGER[]", "FLOAT[]") and "soft_label" not in types
    entries = con.execute(f"SELECT unnest(soft_index) AS c, unnest(soft_value) AS w FROM '{labels}'").fetchnumpy()
    assert len(entries["c"]) == sum(map(len, sparse_labels["index"]))  # zipped, not a cross product

    for df in (pl.read_parquet(shards), pl.read_parquet(labels)):
        assert df.schema["soft_index"] == pl.List(pl.Int32) and df.schema["soft_value"] == pl.List(pl.Float32)
    batch = pl.read_parquet(labels, columns=["soft_index", "soft_value"]).slice(0, 256)
    rows = np.repeat(np.arange(batch.height), batch["soft_index"].list.len().to_numpy())
    dense = np.full((batch.height, MANY), EPS / MANY, np.float32)
    dense[rows, batch["soft_index"].explode().to_numpy()] += (1 - EPS) * batch["soft_value"].explode().to_numpy()
    assert np.allclose(dense, sparse_labels["expected"][:256], atol=1e-6)
    mass = (pl.scan_parquet(labels)
            .select(pl.col("soft_index").explode().alias("class_id"), pl.col("soft_value").explode().alias("w"))
            .group_by("class_id").agg(pl.col("w").sum()).collect())
    got = np.zeros(MANY)
    got[mass["class_id"].to_numpy()] = mass["w"].to_numpy()
    assert np.allclose((1 - EPS) * got + len(sparse_labels["lam"]) * EPS / MANY, sparse_labels["expected"].sum(axis=0),
                       atol=1e-4)
