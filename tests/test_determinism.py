"""Same source + config + seed => the same bytes, whatever the worker count or OUT; a different seed
=> different shards; the same images as a folder or as Parquet => the same rows; copy counts."""
import json
import os
from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import mixbake
from helpers import all_files, assert_same_tree, cli, mixbake_process

CLASSES = ["cat", "dog", "eel"]
N_ITEMS = 60
# every op, seeded noise fill and label smoothing: everything random is exercised
CONFIG = dict(size=16, mixup=1.0, cutmix=1.0, cutout=1.0, none=0.5, cutout_fill="noise", label_smoothing=0.1,
              shard_size=20, seed=11, quiet=True)
ROW_COLUMNS = ["key", "image", "label", "soft_label", "op", "lam", "src_a", "src_b", "label_a", "label_b",
               "boxes"]


def textured(i, size=24):
    """A deterministic noisy picture per item, so that every pixel op changes the bytes."""
    rng = np.random.default_rng(i)
    base = np.linspace(0, 255, size * size * 3).reshape(size, size, 3)
    return Image.fromarray(((base + rng.integers(0, 120, base.shape)) % 256).astype(np.uint8))


def shard_rows(out):
    tables = [pq.read_table(p, columns=ROW_COLUMNS) for p in sorted((out / "data").glob("train-*.parquet"))]
    return {row["key"]: row for t in tables for row in t.to_pylist()}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """60 items in 3 classes (PNG and JPEG), plus the same files as a Parquet file in catalog order."""
    base = tmp_path_factory.mktemp("det")
    root = base / "folder"
    rels = []
    for i in range(N_ITEMS):
        cls = CLASSES[i % 3]
        rel = f"{cls}/{i:03d}.{'jpg' if i % 4 == 0 else 'png'}"
        (root / cls).mkdir(parents=True, exist_ok=True)
        textured(i).save(root / rel, quality=90) if rel.endswith(".jpg") else textured(i).save(root / rel)
        rels.append(rel)
    rels.sort()   # the folder's catalog order: class by name, then relative path
    image_type = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
    table = pa.table({
        "image": pa.array([{"bytes": (root / r).read_bytes(), "path": r} for r in rels], image_type),
        "label": pa.array([r.split("/")[0] for r in rels], pa.string()),
    })
    pq.write_table(table, base / "same.parquet", row_group_size=1)   # one chunk per item, as a folder
    return root, base / "same.parquet"


@pytest.fixture(scope="module")
def bakes(source, tmp_path_factory):
    root, _ = source
    base = tmp_path_factory.mktemp("det_out")
    outs = {}
    for name, workers in (("w1", 1), ("w2", 2), ("w4", 4), ("w2-again", 2)):
        outs[name] = base / name
        mixbake.bake(str(root), str(outs[name]), workers=workers, **CONFIG)
    outs["seed12"] = base / "seed12"
    mixbake.bake(str(root), str(outs["seed12"]), workers=2, **{**CONFIG, "seed": 12})
    return outs


def test_source_gives_at_least_three_shards(bakes):
    doc = json.loads((bakes["w1"] / "manifest.json").read_text())
    assert len(doc["shards"]) >= 3
    assert doc["totals"]["rows"] == N_ITEMS
    assert all(doc["totals"]["ops"][op] > 0 for op in ("mixup", "cutmix", "cutout", "none"))


@pytest.mark.parametrize("other", ["w2", "w4", "w2-again"])
def test_byte_identical_for_any_worker_count_and_fresh_out(bakes, other):
    reference, files = all_files(bakes["w1"]), all_files(bakes[other])
    assert {"labels.parquet", "manifest.json"} <= set(files)
    assert_same_tree(files, reference)


def test_cli_in_a_fresh_interpreter_with_another_hash_seed_gives_the_same_bytes(source, bakes, tmp_path):
    """str hashing is salted per process: a build must not depend on it (nor on API vs CLI)."""
    root, _ = source
    out = tmp_path / "out"
    args = ["bake", root, out, "--size", "16", "--mixup", "1", "--cutmix", "1", "--cutout", "1", "--none",
            "0.5", "--cutout-fill", "noise", "--label-smoothing", "0.1", "--shard-size", "20", "--seed", "11",
            "--workers", "2", "--quiet"]
    proc = mixbake_process(*args, timeout=120, env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"Baked {N_ITEMS} samples from {N_ITEMS} items into 3 shards")
    assert_same_tree(out, bakes["w1"])


def test_api_int_options_and_cli_are_the_same_build(source, tmp_path):
    """Regression: mixbake.bake(mixup=1) and `--mixup 1` once got different build ids."""
    root, _ = source
    out = tmp_path / "out"
    mixbake.bake(str(root), str(out), size=16, mixup=1, cutmix=0, none=1, shard_size=500, workers=2,
                 quiet=True)
    result = cli("bake", root, out, "--size", "16", "--mixup", "1", "--cutmix", "0", "--none", "1", "-q")
    assert result.exit_code == 0, result.output
    assert "already holds this finished build" in result.stdout


def test_different_seed_changes_the_shards(bakes):
    a, b = all_files(bakes["w1"]), all_files(bakes["seed12"])
    shards = [n for n in a if n.startswith("data/")]
    assert shards and sorted(shards) == sorted(n for n in b if n.startswith("data/"))
    unchanged = [name for name in shards + ["labels.parquet"] if a[name] == b[name]]
    assert not unchanged, f"the same bytes with another seed: {unchanged}"
    rows_a, rows_b = shard_rows(bakes["w1"]), shard_rows(bakes["seed12"])
    assert set(rows_a) == set(rows_b)                   # the same items, differently augmented
    differ = sum((rows_a[k]["op"], rows_a[k]["src_b"], rows_a[k]["lam"]) !=
                 (rows_b[k]["op"], rows_b[k]["src_b"], rows_b[k]["lam"]) for k in rows_a)
    assert differ > N_ITEMS // 2
    assert json.loads(b["manifest.json"])["seed"] == 12


def test_folder_and_parquet_of_the_same_images_give_the_same_rows(source, bakes, tmp_path):
    """One item per chunk on both sides (Parquet written with row_group_size=1): the same plan."""
    _, parquet = source
    out = tmp_path / "out"
    mixbake.bake(str(parquet), str(out), workers=2, **CONFIG)
    folder_doc = json.loads((bakes["w1"] / "manifest.json").read_text())
    parquet_doc = json.loads((out / "manifest.json").read_text())
    assert parquet_doc["classes"] == folder_doc["classes"] == CLASSES
    assert parquet_doc["totals"] == {**folder_doc["totals"], "bytes": parquet_doc["totals"]["bytes"]}
    rows_f, rows_p = shard_rows(bakes["w1"]), shard_rows(out)
    assert sorted(rows_f) == sorted(rows_p)
    for key in rows_f:
        assert rows_p[key] == rows_f[key], key


def test_parquet_source_is_deterministic_across_worker_counts(source, tmp_path):
    _, parquet = source
    outs = [tmp_path / "w1", tmp_path / "w3"]
    mixbake.bake(str(parquet), str(outs[0]), workers=1, **CONFIG)
    mixbake.bake(str(parquet), str(outs[1]), workers=3, **CONFIG)
    assert_same_tree(outs[0], outs[1])


@pytest.mark.parametrize("fmt,image_format", [("parquet", "png"), ("parquet", "webp"), ("parquet", "raw"),
                                              ("webdataset", "jpeg"), ("folder", "png")])
def test_every_encoding_and_output_format_is_reproducible(fmt, image_format, source, tmp_path):
    root, _ = source
    small = tmp_path / "src"
    for cls in CLASSES:
        (small / cls).mkdir(parents=True)
        for p in sorted((root / cls).iterdir())[:4]:
            (small / cls / p.name).write_bytes(p.read_bytes())
    options = {**CONFIG, "shard_size": 4, "format": fmt, "image_format": image_format}
    mixbake.bake(str(small), str(tmp_path / "w1"), workers=1, **options)
    mixbake.bake(str(small), str(tmp_path / "w2"), workers=2, **options)
    one, two = all_files(tmp_path / "w1"), all_files(tmp_path / "w2")
    assert len(json.loads(one["manifest.json"])["shards"]) >= 2
    assert_same_tree(one, two)


# ---------------------------------------------------------------- copies and originals

@pytest.fixture(scope="module")
def copies_out(source, tmp_path_factory):
    """10 items (first ten of the folder), --copies 3 --keep-originals, pools of 3 items."""
    root, _ = source
    small = tmp_path_factory.mktemp("copies") / "src"
    for cls in ("dog", "cat"):
        for p in sorted((root / cls).iterdir())[:5]:
            (small / cls).mkdir(parents=True, exist_ok=True)
            (small / cls / p.name).write_bytes(p.read_bytes())
    out = small.parent / "out"
    summary = mixbake.bake(str(small), str(out), size=16, copies=3, keep_originals=True, shard_size=12,
                           seed=4, workers=2, quiet=True)
    return summary, out


def test_copies_and_keep_originals_counts(copies_out):
    summary, out = copies_out
    assert summary.rows == 40 and summary.items == 10
    labels = pq.read_table(out / "labels.parquet").to_pylist()
    assert len(labels) == 40
    per_item = defaultdict(list)
    for r in labels:
        per_item[r["src_a"]].append(r["key"])
    assert sorted(per_item) == list(range(10))
    for item, keys in per_item.items():
        assert sorted(keys) == [f"{item:09d}_{s}" for s in ("c0", "c1", "c2", "orig")]
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["totals"]["rows"] == 40
    assert doc["totals"]["ops"]["none"] == 10            # only the originals (mixup/cutmix shares only)
    assert doc["totals"]["ops"]["mixup"] + doc["totals"]["ops"]["cutmix"] == 30


def test_originals_are_unaugmented_and_copies_differ(copies_out):
    _, out = copies_out
    labels = pq.read_table(out / "labels.parquet").to_pylist()
    for r in labels:
        if r["key"].endswith("_orig"):
            assert r["op"] == "none" and r["lam"] == 1.0 and r["src_b"] is None and r["boxes"] == []
            onehot = [0.0, 0.0]
            onehot[r["label_a"]] = 1.0
            assert r["soft_label"] == onehot and r["label"] == r["label_a"]
    copies = defaultdict(set)
    for r in labels:
        if not r["key"].endswith("_orig"):
            copies[r["src_a"]].add((r["op"], r["src_b"], r["lam"], json.dumps(r["boxes"])))
    assert all(len(v) == 3 for v in copies.values())


def test_an_items_copies_meet_distinct_partners_and_shards_hold_about_shard_size_rows(copies_out):
    """Format 2: pools of 6 items (shard size 12 / 2 rows per item and pass), here all 3 copies in
    one pass; a pool of 6 items makes 24 rows, written as 2 shards of 12."""
    _, out = copies_out
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["format_version"] == 2
    assert doc["pairing"] == {"scheme": "passes", "pool_size": 6, "copies_per_pass": 3, "passes": 1}
    labels = pq.read_table(out / "labels.parquet").to_pylist()
    partners = defaultdict(list)
    for r in labels:
        if r["src_b"] is not None:
            partners[r["src_a"]].append(r["src_b"])
    assert all(len(set(p)) == len(p) == 3 for p in partners.values())  # distinct within a pool's copies
    counts = Counter(r["shard"] for r in labels)
    assert sorted(counts.values()) == [8, 8, 12, 12]  # pools of 6 and 4 items: 24 rows and 16 rows


def test_last_shards_use_the_cores_of_finished_workers_without_changing_a_result():
    """Once every shard has started, a worker spreads its decode/encode batches over threads for
    the cores the finished workers left idle (worker_process.spare_cores): same results, same order."""
    import multiprocessing
    import threading
    import time as _time
    from mixbake import worker_process as worker

    unstarted, busy = multiprocessing.Value("q", 1), multiprocessing.Value("q", 2)
    saved = worker._pool_state
    worker._pool_state = (unstarted, busy, 2)

    def square(x):
        _time.sleep(0.002)  # long enough for every thread to take a part
        return x * x, threading.get_ident()
    try:
        items = list(range(40))
        waiting = worker.spread(square, items)          # a shard still waits to start: no spare core
        assert [r for r, _ in waiting] == [x * x for x in items]
        assert {t for _, t in waiting} == {threading.get_ident()}
        unstarted.value = 0                           # all started, the other worker busy: none
        assert worker.spare_cores() == 0
        assert {t for _, t in worker.spread(square, items)} == {threading.get_ident()}
        busy.value = 1                                # the other worker is done: one core spare
        assert worker.spare_cores() == 1
        spread = worker.spread(square, items)
        assert [r for r, _ in spread] == [x * x for x in items]
        assert len({t for _, t in spread}) == 2 and threading.get_ident() not in {t for _, t in spread}
    finally:
        worker._pool_state = saved
