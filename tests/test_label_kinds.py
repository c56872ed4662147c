"""Labels beyond one class, end to end through the CLI: multi-label sets (a folder's metadata.csv,
Parquet list columns) and soft-label inputs (a Parquet list<float> column), checked against the
sources' own labels row by row."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from helpers import all_files, cli, manifest_of

NAMES = ("bird", "cat", "dog")


def _png(rng, side=24) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def multi_folder(tmp_path):
    """40 images with random sets of 3 classes in metadata.csv (some empty)."""
    rng = np.random.default_rng(4)
    root = tmp_path / "src"
    (root / "imgs").mkdir(parents=True)
    sets, lines = {}, ["file_name,labels"]
    for i in range(40):
        (root / "imgs" / f"{i:02d}.png").write_bytes(_png(rng))
        chosen = [n for n in NAMES if rng.random() < 0.45]
        sets[f"imgs/{i:02d}.png"] = {NAMES.index(n) for n in chosen}
        lines.append(f"imgs/{i:02d}.png,{';'.join(chosen)}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root, sets


def _rows(out):
    return pq.read_table(Path(out) / "labels.parquet").to_pylist()


def _multi_hot(classes, k=3):
    y = np.zeros(k)
    y[list(classes)] = 1.0
    return y


def test_multi_label_soft_label_is_lam_mix_of_the_sources_sets(multi_folder, tmp_path):
    root, sets = multi_folder
    out = tmp_path / "out"
    cli("bake", root, out, "--size", "16", "--copies", "3", "--mixup", "1", "--cutmix", "1", "--cutout", "0.5",
        "--label-smoothing", "0.1", "-q", "--workers", "2", code=0)
    doc = manifest_of(out)
    assert doc["label_kind"] == "multi" and doc["classes"] == list(NAMES)
    rows = _rows(out)
    assert len(rows) == 120 and {r["op"] for r in rows} == {"mixup", "cutmix", "cutout"}
    for r in rows:
        y_a = _multi_hot(sets[r["ref_a"]])
        assert set(r["labels_a"]) == sets[r["ref_a"]] and r["label"] is None
        if r["ref_b"] is None:
            want = y_a
        else:
            assert set(r["labels_b"]) == sets[r["ref_b"]]
            want = np.minimum(r["lam"] * y_a + (1 - r["lam"]) * _multi_hot(sets[r["ref_b"]]), 1.0)
        want = want * 0.9 + 0.1 / 3  # smoothing, once
        assert np.allclose(r["soft_label"], want, atol=1e-5), r
    cutmix = [r for r in rows if r["op"] == "cutmix"]
    for r in cutmix:  # lam is the kept area, as for classes
        (x0, y0, x1, y1), = r["boxes"]
        assert r["lam"] == pytest.approx(1 - (x1 - x0) * (y1 - y0) / 256, abs=1e-6)
    cli("verify", "--deep", out, code=0)
    inspect = json.loads(cli("inspect", out, "--json", code=0).stdout)
    holding = {c["name"]: c["label_count"] for c in inspect["classes"]}
    for c, name in enumerate(NAMES):
        want = sum(1 for r in rows if any(abs(v - 0.1 / 3) > 1e-4 for v in [r["soft_label"][c]]))
        assert holding[name] == want


def test_multi_label_sparse_form_and_a_tampered_row(multi_folder, tmp_path):
    root, sets = multi_folder
    out = tmp_path / "out"
    cli("bake", root, out, "--size", "16", "--soft-label", "sparse", "-q", "--workers", "1", code=0)
    rows = _rows(out)
    for r in rows:
        dense = np.zeros(3)
        dense[r["soft_index"]] = r["soft_value"]
        y_a, y_b = _multi_hot(sets[r["ref_a"]]), _multi_hot(sets[r["ref_b"]]) if r["ref_b"] else None
        want = y_a if y_b is None else np.minimum(r["lam"] * y_a + (1 - r["lam"]) * y_b, 1)
        assert np.allclose(dense, want, atol=1e-6) and all(v > 0 for v in r["soft_value"])
    # a row whose weights no longer follow its sets is found (labels.parquet vouched for by the manifest)
    table = pq.read_table(out / "labels.parquet")
    labels_a = table.column("labels_a").to_pylist()
    victim = next(i for i, r in enumerate(rows) if r["ref_b"] and len(sets[r["ref_a"]]) < 3)
    labels_a[victim] = sorted(set(range(3)) - set(labels_a[victim]))
    table = table.set_column(table.schema.get_field_index("labels_a"), "labels_a",
                             pa.array(labels_a, table.schema.field("labels_a").type))
    pq.write_table(table, out / "labels.parquet")
    doc = manifest_of(out)
    doc["labels"].update(bytes=(out / "labels.parquet").stat().st_size,
                         sha256=hashlib.sha256((out / "labels.parquet").read_bytes()).hexdigest())
    (out / "manifest.json").write_text(json.dumps(doc))
    result = cli("verify", out, code=1)
    assert "soft label differs from lam*y(labels_a) + (1-lam)*y(labels_b)" in result.output


def test_parquet_list_labels_bake_like_the_folder(tmp_path):
    rng = np.random.default_rng(2)
    sets = [sorted({int(c) for c in rng.integers(0, 3, rng.integers(0, 4))}) for _ in range(30)]
    table = pa.table({"image": [{"bytes": _png(rng), "path": None} for _ in sets],
                      "tags": pa.array([[NAMES[c] for c in s] for s in sets], pa.list_(pa.string()))})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=10)
    out = tmp_path / "out"
    cli("bake", tmp_path / "t.parquet", out, "--size", "16", "--copies", "2", "-q", "--workers", "2", code=0)
    for r in _rows(out):
        a = sets[r["src_a"]]
        assert r["labels_a"] == a
        want = _multi_hot(a) if r["src_b"] is None else \
            np.minimum(r["lam"] * _multi_hot(a) + (1 - r["lam"]) * _multi_hot(sets[r["src_b"]]), 1)
        assert np.allclose(r["soft_label"], want, atol=1e-6)
    one = tmp_path / "one"
    cli("bake", tmp_path / "t.parquet", one, "--size", "16", "--copies", "2", "-q", "--workers", "1", code=0)
    assert all_files(one) == all_files(out)


@pytest.fixture
def soft_parquet(tmp_path):
    rng = np.random.default_rng(9)
    soft = rng.dirichlet(np.ones(4), 36).astype(np.float32)
    cells = [w.tolist() for w in soft]
    cells[3] = [0.7, 0.7, 0.0, 0.0]       # sums to 1.4: a bad item
    cells[11] = None                       # null: a bad item
    cells[20] = [0.5, 0.5, 0.0]            # 3 values for 4 classes
    table = pa.table({"image": [{"bytes": _png(rng), "path": None} for _ in cells],
                      "teacher": pa.array(cells, pa.list_(pa.float32()))})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=12)
    (tmp_path / "names.txt").write_text("a\nb\nc\nd\n")
    return tmp_path / "t.parquet", soft, tmp_path / "names.txt"


def test_soft_label_inputs_are_mixed_with_the_rows_lam(soft_parquet, tmp_path):
    source, soft, names = soft_parquet
    out = tmp_path / "out"
    cli("bake", source, out, "--label-column", "teacher", "--classes", names, "--size", "16", "--copies", "2",
        "--mixup", "1", "--cutmix", "1", "--label-smoothing", "0.2", "--on-error", "skip", "-q", code=0)
    doc = manifest_of(out)
    assert doc["label_kind"] == "soft" and doc["classes"] == ["a", "b", "c", "d"]
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert {e["ref"]: e["reason"] for e in errors} == {
        "t.parquet#3": "soft label sums to 1.4, not 1 (within 0.001)", "t.parquet#11": "soft label is null",
        "t.parquet#20": "soft label has 3 values for 4 classes"}
    rows = _rows(out)
    assert len(rows) == 66
    for r in rows:
        s_a = soft[r["src_a"]].astype(np.float64)
        want = s_a if r["src_b"] is None else r["lam"] * s_a + (1 - r["lam"]) * soft[r["src_b"]]
        assert np.allclose(r["soft_label"], want * 0.8 + 0.05, atol=1e-5)
        assert r["label"] == int(np.argmax(r["soft_label"])) and r["label_a"] == int(np.argmax(s_a))
    cli("verify", "--deep", out, code=0)


def test_soft_label_input_errors(soft_parquet, tmp_path):
    source, _, names = soft_parquet
    failed = cli("bake", source, tmp_path / "o1", "--label-column", "teacher", "--size", "16", "-q", code=1)
    assert "t.parquet#3: soft label sums to 1.4" in failed.output
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    wrong = cli("bake", source, tmp_path / "o2", "--label-column", "teacher", "--classes", tmp_path / "three.txt",
                "-q", code=1)
    assert "3 names (3 distinct) for a soft label of 4 classes" in wrong.output
    cross = cli("bake", source, tmp_path / "o3", "--label-column", "teacher", "--pairing", "cross-class", "-q",
                "--on-error", "skip", code=1)
    assert "--pairing cross-class needs one class per item" in cross.output
    unasked = cli("plan", source, code=1)  # a list<float> column is not taken as labels unless named
    assert "no column holds labels" in unasked.output
