"""Costs that follow what the data holds (issue 14): sparse soft labels above 1000 classes, a catalog
without a Python object per item, verify on the workers, a no-op re-run that plans nothing."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mixbake
from mixbake.config import BakeConfig
from mixbake.imaging import encode_png
from mixbake.verify import verify
from helpers import cli


def parquet_source(path, classes: int, per_class: int = 1, side: int = 8, seed: int = 0, row_group: int = 300):
    """``classes`` x ``per_class`` noise images, labels 0..classes-1 (class-sorted)."""
    rng = np.random.default_rng(seed)
    n = classes * per_class
    images = [encode_png(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(n)]
    image_type = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
    table = pa.table({"image": pa.array([{"bytes": b, "path": None} for b in images], image_type),
                      "label": pa.array(np.repeat(np.arange(classes), per_class), pa.int64())})
    pq.write_table(table, path, row_group_size=row_group)
    return str(path)


def expected_sparse(label_a, label_b, lam):
    """The non-zeros of lam*onehot(a) + (1-lam)*onehot(b), classes ascending."""
    weights = {}
    weights[label_a] = weights.get(label_a, 0.0) + lam
    b = label_a if label_b is None else label_b
    weights[b] = weights.get(b, 0.0) + 1.0 - lam
    return sorted((c, w) for c, w in weights.items() if w > 0)


@pytest.fixture(scope="module")
def many_classes(tmp_path_factory):
    base = tmp_path_factory.mktemp("k1200")
    src = parquet_source(base / "src.parquet", classes=1200)
    out = base / "out"
    mixbake.bake(src, str(out), size=8, image_format="png", copies=2, label_smoothing=0.1, shard_size=400,
                 workers=2, quiet=True)
    return src, out


def test_above_1000_classes_the_soft_label_is_sparse_and_exact(many_classes):
    _, out = many_classes
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["format_version"] == 2 and len(doc["classes"]) == 1200
    shard = pq.read_table(out / doc["shards"][0]["path"])
    assert "soft_label" not in shard.column_names
    assert shard.schema.field("soft_index").type == pa.list_(pa.int32())
    assert shard.schema.field("soft_value").type == pa.list_(pa.float32())
    features = json.loads(shard.schema.metadata[b"huggingface"])["info"]["features"]
    assert features["soft_index"] == {"feature": {"dtype": "int32", "_type": "Value"}, "_type": "Sequence"}
    rows = pq.read_table(out / "labels.parquet").to_pylist()
    assert len(rows) == 2400
    eps, k = 0.1, 1200
    for row in rows:
        want = expected_sparse(row["label_a"], row["label_b"], row["lam"])
        assert row["soft_index"] == [c for c, _ in want]
        assert row["soft_value"] == pytest.approx([w for _, w in want], abs=1e-6)
        dense = {c: w * (1 - eps) + eps / k for c, w in want}
        assert row["label"] == min(dense, key=lambda c: (-np.float32(dense[c]), c))
    assert verify(out, deep=True) == []


def test_inspect_and_preview_of_a_sparse_build(many_classes, tmp_path):
    _, out = many_classes
    info = json.loads(cli("inspect", out, "--json", code=0).output)
    rows = pq.read_table(out / "labels.parquet").to_pylist()
    mass = np.full(1200, len(rows) * 0.1 / 1200)
    for row in rows:
        for c, w in zip(row["soft_index"], row["soft_value"]):
            mass[c] += 0.9 * w
    assert [c["mass"] for c in info["classes"]] == pytest.approx(np.round(mass, 4).tolist(), abs=2e-4)
    result = cli("preview", out, "-o", tmp_path / "sheet.png", "-n", "4", code=0)
    assert "4 samples" in result.output


@pytest.mark.parametrize("form", ["both", "dense"])
def test_soft_label_forms_agree(tmp_path, form):
    src = parquet_source(tmp_path / "src.parquet", classes=5, per_class=6)
    out = tmp_path / form
    mixbake.bake(src, str(out), size=8, image_format="png", label_smoothing=0.2, soft_label=form, workers=1,
                 quiet=True)
    rows = pq.read_table(out / "labels.parquet").to_pylist()
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["config"]["soft_label"] == form and doc["format_version"] == (2 if form == "both" else 1)
    for row in rows:
        soft = np.asarray(row["soft_label"], np.float64)
        assert row["label"] == int(np.argmax(soft))
        if form == "both":
            dense = np.full(5, 0.2 / 5)
            dense[row["soft_index"]] += 0.8 * np.asarray(row["soft_value"])
            assert np.abs(dense - soft).max() < 1e-6
        else:
            assert "soft_index" not in row
    assert verify(out) == []


def test_1000_classes_stay_dense_and_a_format_1_build_is_dense_whatever_its_classes():
    assert BakeConfig().soft_form(1000) == "dense"
    assert BakeConfig().soft_form(1001) == "sparse"
    assert BakeConfig(format_version=1).soft_form(21841) == "dense"
    assert "soft_label" not in BakeConfig().to_dict()  # left at auto: not recorded (format-1 configs keep their id)


# ---------------------------------------------------------------- the parent's memory

_CATALOG_BYTES = """
import gc, sys, tracemalloc
from mixbake.sources import open_source
open_source(sys.argv[1])  # (the modules a listing imports, loaded before measuring)
gc.collect()
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
catalog = open_source(sys.argv[1])
gc.collect()
print((tracemalloc.get_traced_memory()[0] - before) / len(catalog))
"""


def test_a_catalog_holds_no_python_object_per_item(tmp_path):
    """The listed source, held in the parent, costs a few bytes per item (Python-level allocations,
    measured by tracemalloc; numpy arrays included), not a string and an int object each: a Parquet
    row ~4 (its label), a folder's file its path's bytes and ~16 (offset, label, stamp)."""
    import io

    from PIL import Image
    src = parquet_source(tmp_path / "rows.parquet", classes=20, per_class=5000, side=2)
    folder = tmp_path / "folder"
    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, "PNG")
    for c in range(4):
        (folder / f"class_{c}").mkdir(parents=True)
        for i in range(500):
            (folder / f"class_{c}" / f"image_{i:05d}.png").write_bytes(buf.getvalue())
    path_bytes = len("class_0/image_00000.png")
    for source, limit in ((src, 8), (str(folder), path_bytes + 20)):
        result = subprocess.run([sys.executable, "-c", _CATALOG_BYTES, source], capture_output=True, text=True,
                                check=True)
        assert float(result.stdout) < limit, (source, result.stdout)


# ---------------------------------------------------------------- verify on the workers

def test_verify_on_worker_processes_finds_what_one_process_finds(tmp_path):
    src = parquet_source(tmp_path / "src.parquet", classes=6, per_class=40, row_group=12)
    out = tmp_path / "out"
    mixbake.bake(src, str(out), size=8, image_format="png", shard_size=24, workers=2, quiet=True)
    doc = json.loads((out / "manifest.json").read_text())
    assert len(doc["shards"]) == 10
    assert verify(out, workers=2) == [] and verify(out, deep=True, workers=2) == []
    # a row of shard 6 relabelled in labels.parquet, its sha256 patched into the manifest
    table = pq.read_table(out / "labels.parquet")
    rows = table.to_pydict()
    r = rows["shard"].index(6)
    rows["label"][r] = (rows["label"][r] + 1) % 6
    pq.write_table(pa.table(rows, schema=table.schema), out / "labels.parquet")
    import hashlib
    data = (out / "labels.parquet").read_bytes()
    doc["labels"].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (out / "manifest.json").write_text(json.dumps(doc))
    one, two = verify(out, workers=1), verify(out, workers=2)
    assert one == two
    assert any(p.startswith("labels.parquet: the rows of shard 6 differ") for p in two), two


def test_a_no_op_rerun_plans_nothing(tmp_path, monkeypatch):
    src = parquet_source(tmp_path / "src.parquet", classes=3, per_class=4)
    out = tmp_path / "out"
    mixbake.bake(src, str(out), size=8, workers=1, quiet=True)
    from mixbake import tasks

    def no_planning(*args, **kwargs):
        raise AssertionError("a finished build was planned again")
    monkeypatch.setattr(tasks.BuildTasks, "__init__", no_planning)
    assert mixbake.bake(src, str(out), size=8, workers=1, quiet=True).state == "complete"
