"""Copies that add partners, not repeats (format 2's pairing layout).

Pools are counted in source items whatever --copies is; copies are made in passes that re-shuffle
the source, so an item's copies meet different partners from all over the dataset; the layout is
recorded in the manifest, reported by plan and inspect, and --copies 1 builds keep format 1.
"""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mixbake
from mixbake.config import BakeConfig
from mixbake.errors import MixbakeError
from mixbake.pairs import partner_stats
from mixbake.plan import COPIES_PER_PASS, make_layout, plan_pool, resolve_pairing
from helpers import assert_same_tree, cli, single_item_bounds


def planned(config, bounds, labels):
    """(src_a, src_b, lam, copy, label_a, label_b) of every planned row of a build, in catalog indices."""
    _, pools = make_layout(config, bounds)
    columns = []
    for pool in pools:
        starts, sizes = bounds[pool.chunks], np.diff(bounds)[pool.chunks]
        items = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, sizes)])
        plan = plan_pool(config, pool, labels[items], np.ones(len(items), bool))
        b = np.where(plan.pos_b >= 0, items[np.maximum(plan.pos_b, 0)], -1)
        columns.append((items[plan.pos_a], b, plan.lam, plan.copy))
    a, b, lam, copy = (np.concatenate(c) for c in zip(*columns))
    return a, b, lam, copy


# ---------------------------------------------------------------- the layout

@pytest.mark.parametrize("copies", [2, 4, 16, 64])
def test_pools_are_counted_in_items_whatever_the_copies(copies):
    config = BakeConfig(copies=copies, seed=3)  # shard size 500: pools of 500 items
    pairing, pools = make_layout(config, single_item_bounds(5000))
    assert pairing.pool_size == 500 and pairing.copies_per_pass == min(copies, COPIES_PER_PASS)
    assert pairing.passes == -(-copies // pairing.copies_per_pass)
    assert all(len(pool.chunks) == 500 for pool in pools)
    assert len(pools) == 10 * pairing.passes
    rows = [len(pool.chunks) * pool.copies for pool in pools]
    assert [pool.shards for pool in pools] == [r // 500 for r in rows]  # ~shard_size rows a shard
    # every item is in exactly one pool of every pass, and passes shuffle differently
    for p in range(pairing.passes):
        items = np.concatenate([pool.chunks for pool in pools if pool.pass_id == p])
        assert sorted(items.tolist()) == list(range(5000))
    if pairing.passes > 1:
        assert not np.array_equal(pools[0].chunks, pools[10].chunks)


def test_every_item_gets_every_copy_exactly_once_and_shards_are_numbered_in_order():
    config = BakeConfig(copies=10, keep_originals=True, shard_size=90, seed=1)
    labels = np.arange(700) % 7
    a, b, _, copy = planned(config, single_item_bounds(700), labels)
    pairs = sorted(zip(a.tolist(), copy.tolist()))
    assert pairs == sorted((i, c) for i in range(700) for c in [-1, *range(10)])
    _, pools = make_layout(config, single_item_bounds(700))
    assert [s for pool in pools for s in pool.shard_ids] == list(range(sum(p.shards for p in pools)))


def test_the_whole_source_in_one_pool_makes_every_copy_from_one_decode():
    pairing = resolve_pairing(BakeConfig(copies=32), 600)
    assert (pairing.passes, pairing.copies_per_pass) == (1, 32)
    pairing = resolve_pairing(BakeConfig(copies=32, copies_per_pass=2), 600)
    assert (pairing.passes, pairing.copies_per_pass) == (16, 2)


def test_copies_1_keeps_format_1_and_options_say_format_2():
    assert resolve_pairing(BakeConfig(), 10).format_version == 1
    assert resolve_pairing(BakeConfig(copies=3), 10).format_version == 2
    assert resolve_pairing(BakeConfig(pool_size=64), 10).format_version == 2
    assert resolve_pairing(BakeConfig(copies=3, format_version=1), 10).format_version == 1
    assert "pool_size" not in BakeConfig().to_dict() and BakeConfig(pool_size=64).to_dict()["pool_size"] == 64


# ---------------------------------------------------------------- partners

@pytest.mark.parametrize("items,copies,pool", [(3000, 16, None), (3000, 64, None), (20000, 8, None),
                                              (400, 64, None), (700, 300, None), (1000, 500, 1000)])
def test_copies_meet_distinct_partners(items, copies, pool):
    """At least 0.9 x copies distinct partners: by chance when passes re-shuffle a source much larger
    than the copies, exactly when the source fits one pool (one pass, distinct shifts)."""
    config = BakeConfig(copies=copies, mixup=1.0, cutmix=1.0, seed=7, pool_size=pool)
    a, b, lam, _ = planned(config, single_item_bounds(items), np.arange(items) % 10)
    stats = partner_stats(a, b, lam)
    assert stats["partners_median"] >= 0.9 * copies, stats
    assert (b != a).all()


def test_format_1_met_few_partners_with_many_copies():
    """What the issue measured: format 1 at 64 copies, pools of 8 items, 7 partners."""
    config = BakeConfig(copies=64, seed=7, format_version=1)
    a, b, lam, _ = planned(config, single_item_bounds(3000), np.arange(3000) % 10)
    assert partner_stats(a, b, lam)["partners_median"] <= 7


@pytest.mark.parametrize("pairing", ["random", "cross-class"])
def test_partners_cross_classes_at_chance_in_a_class_sorted_source(pairing):
    labels = np.repeat(np.arange(10), 300)  # a folder: class after class
    config = BakeConfig(copies=8, seed=2, pairing=pairing)
    a, b, _, _ = planned(config, single_item_bounds(3000), labels)
    cross = float(np.mean(labels[a] != labels[b]))
    if pairing == "random":
        chance = 1 - 299 / 2999
        assert abs(cross - chance) < 4 * np.sqrt(chance * (1 - chance) / len(a)), cross
    else:
        assert cross == 1.0


def test_partners_come_from_all_over_the_dataset():
    """Across 64 copies, an item's partners are spread over the whole catalog, not one pool's 500."""
    config = BakeConfig(copies=64, seed=5)
    a, b, _, _ = planned(config, single_item_bounds(5000), np.zeros(5000, np.int64))
    for item in (0, 1234, 4999):
        partners = b[a == item]
        assert len(np.unique(partners // 500)) >= 8  # of the 10 tenths of the catalog


# ---------------------------------------------------------------- a real bake

@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """720 16x16 items in 6 classes, as Parquet with row groups of 40 (18 chunks)."""
    root = tmp_path_factory.mktemp("pairing")
    rng = np.random.default_rng(0)
    from mixbake.imaging import encode_png
    images = [encode_png(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)) for _ in range(720)]
    image_type = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
    table = pa.table({"image": pa.array([{"bytes": b, "path": None} for b in images], image_type),
                      "label": pa.array(np.repeat(np.arange(6), 120), pa.int64())})
    pq.write_table(table, root / "train.parquet", row_group_size=40)
    return str(root / "train.parquet")


OPTIONS = dict(size=16, image_format="png", copies=12, shard_size=100, pool_size=200, seed=4)


@pytest.fixture(scope="module")
def baked(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("pairing_out") / "out"
    summary = mixbake.bake(source, str(out), workers=2, quiet=True, **OPTIONS)
    return summary, out


def test_bake_records_its_pairing_and_meets_distinct_partners(baked):
    summary, out = baked
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["format_version"] == 2
    assert doc["pairing"] == {"scheme": "passes", "pool_size": 200, "copies_per_pass": 4, "passes": 3}
    assert summary.rows == 720 * 12 and doc["totals"]["rows"] == 720 * 12
    labels = pq.read_table(out / "labels.parquet").to_pydict()
    assert len(set(labels["key"])) == 720 * 12
    stats = partner_stats(np.array(labels["src_a"]), np.array([-1 if v is None else v for v in labels["src_b"]]),
                          np.array(labels["lam"]))
    assert stats["partners_median"] >= 0.9 * stats["mixed_rows_per_item"]
    # a pass: pools of 200, 200, 200 and 120 items (5 and 3 row groups), 4 copies each: 800 rows
    # in 8 shards of 100, 480 in 5 of 96; three passes
    assert len(doc["shards"]) == 3 * (8 + 8 + 8 + 5)
    assert sorted({s["rows"] for s in doc["shards"]}) == [96, 100]
    assert [s["path"] for s in doc["shards"]][:2] == ["data/train-00000-of-00087.parquet",
                                                      "data/train-00001-of-00087.parquet"]


def test_bake_is_the_same_for_any_worker_count_and_verifies_deep(baked, source, tmp_path):
    _, out = baked
    other = tmp_path / "w1"
    mixbake.bake(source, str(other), workers=1, quiet=True, **OPTIONS)
    for entry_a, entry_b in zip(json.loads((out / "manifest.json").read_text())["shards"],
                                json.loads((other / "manifest.json").read_text())["shards"]):
        assert entry_a == entry_b
    assert_same_tree(out, other, only=["labels.parquet"])
    result = cli("verify", out, "--deep", code=0)
    assert "OK" in result.output


def test_inspect_reports_partners_per_item(baked):
    _, out = baked
    result = cli("inspect", out, code=0)
    assert "pairing  passes (pools of 200 items, 4 copies per pass): partners per item median" in result.output
    info = json.loads(cli("inspect", out, "--json", code=0).output)
    partners = info["pairing"]["partners"]
    assert partners["partners_median"] >= 0.9 * partners["mixed_rows_per_item"] > 0
    assert 0 < partners["lam_spread_median"] < 0.5


def test_plan_warns_when_items_would_meet_few_partners(source, tmp_path, caplog):
    recipe = tmp_path / "old.toml"
    recipe.write_text("format_version = 1\n")
    result = cli("plan", source, "--copies", "40", "--recipe", recipe, code=0)
    assert [r.getMessage() for r in caplog.records] == [
        "items would meet few partners: a median of 25 distinct partners over 40 mixed rows each (format 1's "
        "pools of 13 items); a model can learn fixed pairs as it learns noisy labels (bake without "
        "format_version = 1: format 2 re-pools every pass)"]
    assert "pairing    shard-pools: pools of ~13 items, 40 copies per pass, 1 pass" in result.output
    caplog.clear()
    result = cli("plan", source, "--copies", "40", code=0)
    assert not caplog.records
    assert "pairing    passes: pools of ~500 items, 40 copies per pass, 1 pass; partners per item: median 40" \
        in result.output


@pytest.mark.parametrize("args,message", [
    (["--pool-size", "1"], "--pool-size"),
    (["--copies-per-pass", "0"], "--copies-per-pass"),
])
def test_bad_pairing_options_are_refused(source, tmp_path, args, message):
    result = cli("bake", source, tmp_path / "out", *args, code=2)
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_format_1_has_no_pairing_options():
    with pytest.raises(MixbakeError, match="format-2 options"):
        BakeConfig(copies=3, pool_size=100, format_version=1)


def test_a_pool_with_some_shards_finished_resumes_to_the_same_bytes(baked, source, tmp_path, monkeypatch):
    """A pool writes several shards; after an interruption only its unfinished ones are written again,
    from the same plan."""
    import mixbake.run

    _, reference = baked
    out = tmp_path / "out"

    def stop(*args, **kwargs):
        raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(mixbake.run, "write_manifest", stop)
        with pytest.raises(KeyboardInterrupt):
            mixbake.bake(source, str(out), workers=2, quiet=True, **OPTIONS)
    # drop shards 1 and 2 of the first pool (it wrote 0..7): their sidecars and files
    for shard in (1, 2):
        (out / ".mixbake" / "shards" / f"shard-{shard:05d}.arrow").unlink()
        (out / "data" / f"train-{shard:05d}-of-00087.parquet").unlink()
    kept = (out / "data" / "train-00000-of-00087.parquet").stat().st_mtime_ns
    summary = mixbake.bake(source, str(out), workers=2, quiet=True, **OPTIONS)
    assert summary.state == "resumed" and summary.kept == 85
    assert (out / "data" / "train-00000-of-00087.parquet").stat().st_mtime_ns == kept  # not written again
    assert_same_tree(out, reference)
