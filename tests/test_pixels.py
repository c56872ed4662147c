"""End to end, pixel by pixel: bake folders of solid-colour (and striped) images losslessly and check
every output row against what its recorded op, sources, lam and boxes say it must be.

A few bakes, each done once per module and inspected by many tests:
- ``png_bake``: 4 solid-colour classes, PNG, 16x12 (wider than tall), all four ops, 2 copies +
  originals, cutout zero-fill with 2 holes, random pairing, 2 shards, through ``mixbake.bake``.
- ``raw_bake``: the same folder through the CLI, raw pixels, 12x20 (taller than wide), cross-class
  pairing, cutout noise-fill, label smoothing 0.1, 1 copy, 2 shards.
- ``stripe_bakes``: a 40x20 image (green | red | green stripes) per resize mode, to 16x16.
"""
from __future__ import annotations

import glob
import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import mixbake
from helpers import cli, make_folder

COLOURS = {  # folder names sort to this order: label i is the i-th class
    "blue": (0, 0, 255),
    "green": (0, 255, 0),
    "red": (255, 0, 0),
    "white": (255, 255, 255),
}
CLASSES = sorted(COLOURS)
PER_CLASS = 8
N_ITEMS = PER_CLASS * len(CLASSES)
GREEN, RED, BLACK = (0, 255, 0), (255, 0, 0), (0, 0, 0)


# ====================================================================== helpers

def write_png(path, rgb: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(rgb, "RGB").save(path)


def stripe_image() -> np.ndarray:
    """40 wide x 20 tall: columns [0, 10) green, [10, 30) red, [30, 40) green."""
    img = np.empty((20, 40, 3), np.uint8)
    img[:] = GREEN
    img[:, 10:30] = RED
    return img


def decode(row, width: int, height: int) -> np.ndarray:
    data = row["image"]["bytes"]
    if row.get("channels") is not None:  # raw
        assert len(data) == height * width * 3
        assert (row["height"], row["width"], row["channels"]) == (height, width, 3)
        return np.frombuffer(data, np.uint8).reshape(row["height"], row["width"], row["channels"])
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        rgb = np.asarray(im).copy()
    assert rgb.shape == (height, width, 3)
    return rgb


def load_bake(out, width: int, height: int):
    """Every output row as a dict (shard columns + decoded ``pixels`` + labels.parquet's ref_a/ref_b)."""
    shards = sorted(glob.glob(os.path.join(out, "data", "train-*.parquet")))
    rows = []
    for path in shards:
        rows += pq.read_table(path).to_pylist()
    labels = {r["key"]: r for r in pq.read_table(os.path.join(out, "labels.parquet")).to_pylist()}
    assert len(labels) == len(rows)
    for row in rows:
        row["pixels"] = decode(row, width, height)
        entry = labels[row["key"]]
        for col in ("op", "label", "src_a", "src_b", "label_a", "label_b", "lam", "soft_label"):
            assert entry[col] == row[col], col
        row["ref_a"], row["ref_b"] = entry["ref_a"], entry["ref_b"]
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    return {"rows": rows, "shards": shards, "manifest": manifest}


def solid(rgb: np.ndarray, colour) -> np.ndarray:
    """Mask of pixels exactly equal to ``colour``."""
    return (rgb == np.asarray(colour, np.uint8)).all(axis=-1)


def box_mask(boxes, width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask


def colour_of(label: int):
    return COLOURS[CLASSES[label]]


def rows_of(bake, op):
    rows = [r for r in bake["rows"] if r["op"] == op]
    assert rows, f"the bake has no {op} rows"
    return rows


def smoothed(label_a, label_b, lam, eps, k=len(CLASSES)):
    y = np.zeros(k)
    y[label_a] += lam
    y[label_a if label_b is None else label_b] += 1 - lam
    return y * (1 - eps) + eps / k


# ====================================================================== fixtures (one bake each)

PNG_W, PNG_H = 16, 12
RAW_W, RAW_H = 12, 20
PNG_COPIES = 2


@pytest.fixture(scope="module")
def solid_folder(tmp_path_factory):
    root = make_folder(tmp_path_factory.mktemp("solid"), classes=CLASSES, per_class=PER_CLASS,
                       picture=lambda c, i, rng: np.full((20, 20, 3), colour_of(c), np.uint8),
                       name="img{i:02d}.png")
    return str(root)


@pytest.fixture(scope="module")
def png_bake(solid_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("png") / "out"
    mixbake.bake(solid_folder, out, workers=2, quiet=True, size=f"{PNG_W}x{PNG_H}", image_format="png",
                 mixup=1.0, cutmix=1.5, cutout=1.0, none=1.0, copies=PNG_COPIES, keep_originals=True,
                 cutout_fill="zero", cutout_holes=2, cutout_size=0.5, shard_size=48, seed=3)
    return load_bake(str(out), PNG_W, PNG_H)


@pytest.fixture(scope="module")
def raw_bake(solid_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("raw") / "out"
    result = cli(
        "bake", solid_folder, out, "--size", f"{RAW_W}x{RAW_H}", "--image-format", "raw",
        "--mixup", "1", "--cutmix", "1", "--cutout", "1", "--cutout-fill", "noise", "--cutout-size", "0.4",
        "--pairing", "cross-class", "--label-smoothing", "0.1", "--shard-size", "16", "--seed", "5",
        "--workers", "2", "--quiet")
    assert result.exit_code == 0, result.output
    bake = load_bake(str(out), RAW_W, RAW_H)
    bake["output"] = result.output
    return bake


@pytest.fixture(scope="module")
def stripe_bakes(tmp_path_factory):
    root = tmp_path_factory.mktemp("stripes")
    src = root / "src"
    for i in range(2):
        write_png(str(src / "stripes" / f"s{i}.png"), stripe_image())
    bakes = {}
    for mode in ("crop", "pad", "stretch"):
        out = root / mode
        # stretch also carries the mean-fill cutout check (originals give the un-holed image)
        ops = dict(none=1.0, mixup=0.0, cutmix=0.0) if mode != "stretch" else \
            dict(none=0.0, mixup=0.0, cutmix=0.0, cutout=1.0, cutout_fill="mean", keep_originals=True, copies=3)
        mixbake.bake(str(src), out, workers=1, quiet=True, size=16, resize=mode, image_format="png", **ops)
        bakes[mode] = load_bake(str(out), 16, 16)
    return bakes


# ====================================================================== the PNG bake

def test_png_bake_rows_and_copies(png_bake):
    rows = png_bake["rows"]
    assert len(rows) == N_ITEMS * (PNG_COPIES + 1)
    assert len(png_bake["shards"]) == 2
    counts = np.bincount([r["src_a"] for r in rows], minlength=N_ITEMS)
    assert counts.tolist() == [PNG_COPIES + 1] * N_ITEMS
    assert len({r["key"] for r in rows}) == len(rows)
    originals = [r for r in rows if r["key"].endswith("_orig")]
    assert sorted(r["src_a"] for r in originals) == list(range(N_ITEMS))
    assert all(r["op"] == "none" for r in originals)
    ops = {op: sum(r["op"] == op for r in rows) for op in ("mixup", "cutmix", "cutout", "none")}
    assert png_bake["manifest"]["totals"]["ops"] == ops
    assert min(ops.values()) >= 5
    assert png_bake["manifest"]["classes"] == CLASSES


def test_png_bake_sources_match_class_folders(png_bake):
    for r in png_bake["rows"]:
        assert r["ref_a"].split("/")[0] == CLASSES[r["label_a"]]
        assert r["src_a"] // PER_CLASS == r["label_a"]  # items are sorted by class, then path
        if r["src_b"] is None:
            assert r["label_b"] is None and r["ref_b"] is None
        else:
            assert r["src_b"] != r["src_a"]
            assert r["ref_b"].split("/")[0] == CLASSES[r["label_b"]]
            assert r["src_b"] // PER_CLASS == r["label_b"]


def test_png_bake_soft_labels(png_bake):
    for r in png_bake["rows"]:
        soft = np.asarray(r["soft_label"], np.float32)
        assert soft.shape == (len(CLASSES),)
        assert soft.sum() == pytest.approx(1.0, abs=1e-6)
        assert r["label"] == int(np.argmax(soft))
        np.testing.assert_allclose(soft, smoothed(r["label_a"], r["label_b"], r["lam"], 0.0), atol=1e-6)


def test_png_cutmix_pixels_follow_lam(png_bake):
    cross = 0
    for r in rows_of(png_bake, "cutmix"):
        rgb, lam = r["pixels"], r["lam"]
        ca, cb = colour_of(r["label_a"]), colour_of(r["label_b"])
        inside = box_mask(r["boxes"], PNG_W, PNG_H)
        assert len(r["boxes"]) <= 1
        assert (1 - lam) == pytest.approx(inside.sum() / (PNG_W * PNG_H), abs=1e-6)
        assert solid(rgb[inside], cb).all() and solid(rgb[~inside], ca).all()
        soft = r["soft_label"]
        if ca != cb:
            cross += 1
            # the share of b-coloured pixels is exactly the label weight of b
            assert solid(rgb, cb).mean() == pytest.approx(1 - lam, abs=1e-6)
            assert soft[r["label_b"]] == pytest.approx(1 - lam, abs=1e-6)
            assert soft[r["label_a"]] == pytest.approx(lam, abs=1e-6)
        else:
            assert solid(rgb, ca).all() and soft[r["label_a"]] == pytest.approx(1.0)
    assert cross >= 5


def test_png_mixup_pixels_are_rounded_blends(png_bake):
    for r in rows_of(png_bake, "mixup"):
        lam = r["lam"]
        assert 0 < lam < 1 and r["boxes"] == []
        ca, cb = np.array(colour_of(r["label_a"])), np.array(colour_of(r["label_b"]))
        expected = np.rint(lam * ca + (1 - lam) * cb)
        diff = np.abs(r["pixels"].astype(np.int64) - expected.astype(np.int64))
        assert diff.max() <= 1, (lam, ca, cb, r["pixels"][0, 0])
        assert solid(r["pixels"], r["pixels"][0, 0]).all()  # a blend of solids is solid


def test_png_cutout_zero_fill(png_bake):
    for r in rows_of(png_bake, "cutout"):
        assert r["lam"] == 1.0 and r["src_b"] is None and r["label_b"] is None
        assert 1 <= len(r["boxes"]) <= 2
        for x0, y0, x1, y1 in r["boxes"]:
            assert 0 <= x0 < x1 <= PNG_W and 0 <= y0 < y1 <= PNG_H
            assert x1 - x0 <= PNG_W // 2 and y1 - y0 <= PNG_H // 2
        holes = box_mask(r["boxes"], PNG_W, PNG_H)
        assert solid(r["pixels"], BLACK).sum() == holes.sum() > 0  # no class colour is black
        assert solid(r["pixels"][~holes], colour_of(r["label_a"])).all()
        assert r["soft_label"] == [1.0 if k == r["label_a"] else 0.0 for k in range(len(CLASSES))]


def test_png_none_and_original_rows_are_the_source(png_bake):
    rows = rows_of(png_bake, "none")
    assert sum(not r["key"].endswith("_orig") for r in rows) >= 3  # planned none rows, not only originals
    for r in rows:
        assert solid(r["pixels"], colour_of(r["label_a"])).all()
        assert r["src_b"] is None and r["lam"] == 1.0 and r["boxes"] == []
        assert r["label"] == r["label_a"]
        assert r["soft_label"] == [1.0 if k == r["label_a"] else 0.0 for k in range(len(CLASSES))]


# ====================================================================== the raw bake, through the CLI

def test_cli_raw_bake_summary_and_copies(raw_bake):
    rows = raw_bake["rows"]
    assert len(rows) == N_ITEMS
    assert f"Baked {N_ITEMS} samples" in raw_bake["output"]
    assert sorted(r["src_a"] for r in rows) == list(range(N_ITEMS))
    assert len(raw_bake["shards"]) == 2
    assert raw_bake["manifest"]["config"]["size"] == [RAW_W, RAW_H]
    schema = pq.read_schema(raw_bake["shards"][0])
    for col in ("height", "width", "channels"):
        assert schema.field(col).type == pa.int32()


def test_cli_raw_pixels_by_op(raw_bake):
    seen = set()
    noise_holes = []
    for r in raw_bake["rows"]:
        rgb, lam = r["pixels"], r["lam"]  # decode() checked len == H*W*3 and the h/w/c columns
        ca = colour_of(r["label_a"])
        seen.add(r["op"])
        if r["op"] == "cutmix":
            cb = colour_of(r["label_b"])
            inside = box_mask(r["boxes"], RAW_W, RAW_H)
            assert solid(rgb[inside], cb).all() and solid(rgb[~inside], ca).all()
            assert solid(rgb, cb).mean() == pytest.approx(1 - lam, abs=1e-6)
        elif r["op"] == "mixup":
            expected = np.rint(lam * np.array(ca) + (1 - lam) * np.array(colour_of(r["label_b"])))
            assert np.abs(rgb.astype(np.int64) - expected.astype(np.int64)).max() <= 1
        else:
            assert r["op"] == "cutout" and r["src_b"] is None and lam == 1.0
            holes = box_mask(r["boxes"], RAW_W, RAW_H)
            assert solid(rgb[~holes], ca).all()
            hole = rgb[holes]
            assert len(hole) > 0 and not solid(hole, ca).all()
            noise_holes.append(hole)
    assert seen == {"mixup", "cutmix", "cutout"}
    values = np.concatenate(noise_holes).ravel()
    assert len(np.unique(values)) > 200  # uniform noise over 0..255
    assert 100 < values.mean() < 155
    # every hole has its own noise (its own fill seed)
    assert len({h.tobytes() for h in noise_holes}) == len(noise_holes)


def test_cli_cross_class_pairing(raw_bake):
    mixed = [r for r in raw_bake["rows"] if r["op"] in ("mixup", "cutmix")]
    assert len(mixed) >= 10
    for r in mixed:
        assert r["src_b"] is not None and r["src_b"] != r["src_a"]
        assert r["label_b"] != r["label_a"]
        assert r["ref_b"].split("/")[0] == CLASSES[r["label_b"]]


def test_cli_label_smoothing_applied_once(raw_bake):
    eps, k = 0.1, len(CLASSES)
    for r in raw_bake["rows"]:
        soft = np.asarray(r["soft_label"], np.float32)
        np.testing.assert_allclose(soft, smoothed(r["label_a"], r["label_b"], r["lam"], eps), atol=1e-6)
        assert soft.sum() == pytest.approx(1.0, abs=1e-6)
        assert soft.min() == pytest.approx(eps / k, abs=1e-7)  # twice would give eps/k*(2-eps)
        assert r["label"] == int(np.argmax(soft))
    assert raw_bake["manifest"]["config"]["label_smoothing"] == pytest.approx(eps)


# ====================================================================== resize modes

STRETCHED_ROW = np.array([GREEN] * 4 + [RED] * 8 + [GREEN] * 4, np.uint8)  # 40 -> 16 columns


def test_resize_crop_keeps_the_centre(stripe_bakes):
    rows = stripe_bakes["crop"]["rows"]
    assert len(rows) == 2
    for r in rows:
        # the centred 20x20 square of a 40x20 image is exactly the red stripe
        assert solid(r["pixels"], RED).all()


def test_resize_pad_adds_black_bands(stripe_bakes):
    rows = stripe_bakes["pad"]["rows"]
    assert len(rows) == 2
    for r in rows:
        rgb = r["pixels"]
        # 40x20 fits 16x16 as 16x8: 4 black rows above and below
        assert solid(rgb[:4], BLACK).all() and solid(rgb[12:], BLACK).all()
        assert not solid(rgb[4:12], BLACK).any()
        np.testing.assert_array_equal(rgb[4:12], np.broadcast_to(STRETCHED_ROW, (8, 16, 3)))


def test_resize_stretch_squeezes_columns(stripe_bakes):
    originals = [r for r in stripe_bakes["stretch"]["rows"] if r["op"] == "none"]
    assert len(originals) == 2
    for r in originals:
        np.testing.assert_array_equal(r["pixels"], np.broadcast_to(STRETCHED_ROW, (16, 16, 3)))


def test_cutout_mean_fill(stripe_bakes):
    rows = stripe_bakes["stretch"]["rows"]
    assert len(rows) == 2 * 4
    original = np.broadcast_to(STRETCHED_ROW, (16, 16, 3))
    mean = np.rint(original.reshape(-1, 3).mean(axis=0)).astype(np.uint8)  # (128, 128, 0): no stripe colour
    cutouts = [r for r in rows if r["op"] == "cutout"]
    assert len(cutouts) == 6
    for r in cutouts:
        holes = box_mask(r["boxes"], 16, 16)
        assert holes.sum() > 0
        assert solid(r["pixels"][holes], mean).all()
        np.testing.assert_array_equal(r["pixels"][~holes], original[~holes])
