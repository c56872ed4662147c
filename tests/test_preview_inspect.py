"""`mixbake preview` and `mixbake inspect`: the contact sheet's geometry and pixels, captions, a SOURCE
preview equal to what a real bake writes, every output format read back, and the numbers of inspect
agreeing with the manifest."""
import io
import json
import os
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import mixbake
from mixbake import imaging
from mixbake.errors import MixbakeError
from mixbake.report import format_inspect, inspect
from mixbake.preview import GUTTER, caption, make_layout, preview, preview_sheet
from helpers import cli, make_folder

OPTIONS = dict(size=32, seed=3, cutout=0.3, cutout_holes=2, cutout_size=0.3)


def ramp_picture(c, i, rng, size=24):
    """Red by class, a green ramp down the rows, and a blue square lower for each item."""
    pixels = np.zeros((size, size, 3), np.uint8)
    pixels[..., 0], pixels[..., 1] = 40 + 90 * c, np.arange(size, dtype=np.uint8)[:, None] * 8
    pixels[i:i + 8, 4:12, 2] = 255
    return pixels


PETS = dict(classes=("cat", "dog"), per_class=6, picture=ramp_picture)  # make_folder(root, **PETS)


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("preview") / "out"
    mixbake.bake("demo", out, workers=1, quiet=True, **OPTIONS)
    return str(out)


@pytest.fixture(scope="module")
def folder_source(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("src") / "pets", **PETS)


def tile(sheet, i):
    x0, y0, x1, y1 = sheet.layout.tile_box(i)
    return np.asarray(sheet.image)[y0:y1, x0:x1]


def enlarged(pixels, scale):
    return np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)


# ---------------------------------------------------------------- preview of an OUT

def test_preview_of_out_grid_and_first_tile_pixels(demo_out):
    sheet = preview_sheet(demo_out, n=16, boxes=False)
    layout = sheet.layout
    assert len(sheet.samples) == 16 and (layout.columns, layout.rows) == (4, 4)
    assert layout.scale == 6 and (layout.tile_w, layout.tile_h) == (192, 192)
    assert sheet.image.size == (layout.width, layout.height)
    assert layout.width == 4 * layout.cell_w + 5 * GUTTER
    assert layout.height == layout.title_h + 4 * (192 + layout.caption_h) + 5 * GUTTER

    shard = pq.read_table(os.path.join(demo_out, "data", "train-00000-of-00001.parquet"),
                          columns=["key", "image"]).slice(0, 16).to_pylist()
    assert [s.row["key"] for s in sheet.samples] == [r["key"] for r in shard]
    first = np.asarray(Image.open(io.BytesIO(shard[0]["image"]["bytes"])).convert("RGB"))
    assert np.array_equal(tile(sheet, 0), enlarged(first, 6))
    assert np.array_equal(tile(sheet, 15), enlarged(sheet.samples[15].pixels, 6))


def test_preview_of_out_with_seed_draws_rows_and_boxes_are_drawn(demo_out):
    drawn = preview_sheet(demo_out, n=9, seed=1)
    first = preview_sheet(demo_out, n=9)
    assert [s.row["key"] for s in drawn.samples] != [s.row["key"] for s in first.samples]
    assert drawn.layout.columns == 3 and len(drawn.samples) == 9
    boxed = [i for i, s in enumerate(first.samples) if s.row["boxes"]]
    assert boxed, "the first rows hold a cutmix or cutout"
    plain = preview_sheet(demo_out, n=9, boxes=False)
    assert not np.array_equal(tile(first, boxed[0]), tile(plain, boxed[0]))   # an outline is drawn
    unboxed = [i for i, s in enumerate(first.samples) if not s.row["boxes"]]
    assert all(np.array_equal(tile(first, i), tile(plain, i)) for i in unboxed)


def test_preview_cli_writes_png_of_expected_size(demo_out, tmp_path):
    png = tmp_path / "grid.png"
    result = cli("preview", demo_out, "-o", png, "-n", 6, "--seed", 2, "--no-boxes")
    assert result.exit_code == 0, result.output
    assert "6 samples in 3x2 tiles" in result.output
    layout = make_layout(6, 32, 32)
    assert Image.open(png).size == (layout.width, layout.height)
    assert Image.open(png).format == "PNG"


def test_preview_errors(demo_out, tmp_path):
    with pytest.raises(MixbakeError, match="bake options .*--size.* apply to a SOURCE"):
        preview(demo_out, size=64)
    result = cli("preview", demo_out, "-o", tmp_path / "x.png", "--cutmix", "1")
    assert result.exit_code == 1 and "--cutmix" in result.output and not (tmp_path / "x.png").exists()
    unfinished = tmp_path / "unfinished"
    (unfinished / ".mixbake").mkdir(parents=True)
    (unfinished / ".mixbake" / "build.json").write_text("{}")
    result = cli("preview", unfinished, "-o", tmp_path / "x.png")
    assert result.exit_code == 1 and "unfinished build (no manifest.json yet)" in result.output
    result = cli("inspect", tmp_path)
    assert result.exit_code == 1 and "has no manifest.json" in result.output
    result = cli("verify", tmp_path / "nowhere")
    assert result.exit_code == 1 and "nowhere does not exist" in result.output
    result = cli("preview", demo_out, "-o", tmp_path / "x.jpg")  # the sheet is a PNG, whatever the name
    assert result.exit_code == 2 and "name it *.png" in result.output and not (tmp_path / "x.jpg").exists()


# ---------------------------------------------------------------- preview of a SOURCE

def test_preview_of_source_is_what_a_bake_writes(demo_out, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sheet = preview_sheet("demo", n=16, boxes=False, **OPTIONS)
    assert os.listdir(tmp_path) == []   # nothing written
    baked = pq.read_table(os.path.join(demo_out, "labels.parquet")).slice(0, 16).to_pylist()
    for sample, row in zip(sheet.samples, baked):
        for column in ("key", "op", "lam", "src_a", "src_b", "label", "soft_label", "boxes"):
            assert sample.row[column] == row[column], column
    # the in-memory render goes through the output encoder: the tiles are the baked pixels
    from_out = preview_sheet(demo_out, n=16, boxes=False)
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(sheet.samples, from_out.samples))
    assert np.array_equal(np.asarray(sheet.image)[sheet.layout.title_h:],
                          np.asarray(from_out.image)[from_out.layout.title_h:])


def test_preview_of_source_decodes_only_what_it_shows(folder_source, monkeypatch):
    calls = []
    real = imaging.load_image
    monkeypatch.setattr(imaging, "load_image", lambda *a, **k: calls.append(1) or real(*a, **k))
    sheet = preview_sheet(folder_source, n=2, size=16, mixup=1, cutmix=0)
    assert len(sheet.samples) == 2 and 2 <= len(calls) <= 4
    assert sheet.image.size == (make_layout(2, 16, 16).width, make_layout(2, 16, 16).height)


def test_preview_cli_of_source(folder_source, tmp_path):
    png = tmp_path / "src.png"
    result = cli("preview", folder_source, "-o", png, "-n", 4, "--size", "24x16", "--cutmix", "1",
                 "--mixup", "0", "--seed", 9)
    assert result.exit_code == 0, result.output
    layout = make_layout(4, 24, 16)
    assert Image.open(png).size == (layout.width, layout.height) and layout.columns == 2


# ---------------------------------------------------------------- other output formats read back

@pytest.mark.parametrize("fmt, image_format", [("webdataset", "raw"), ("folder", "png"), ("parquet", "raw")])
def test_preview_reads_every_format(folder_source, tmp_path, fmt, image_format):
    out = tmp_path / "out"
    options = dict(size="20x12", seed=4, format=fmt, image_format=image_format, cutout=0.5)
    mixbake.bake(str(folder_source), out, workers=1, quiet=True, **options)
    sheet = preview_sheet(out, n=5, boxes=False)
    first = sheet.samples[0].row
    if fmt == "webdataset":
        with tarfile.open(out / "train-000000.tar") as tar:
            data = tar.extractfile(f"{first['key']}.raw").read()
        pixels = np.frombuffer(data, np.uint8).reshape(12, 20, 3)
    elif fmt == "folder":
        path = pq.read_table(out / "labels.parquet").to_pylist()[0]["path"]
        pixels = np.asarray(Image.open(out / path).convert("RGB"))
    else:
        row = pq.read_table(out / "data" / "train-00000-of-00001.parquet").to_pylist()[0]
        pixels = np.frombuffer(row["image"]["bytes"], np.uint8).reshape(row["height"], row["width"], 3)
    assert sheet.layout.scale == 10 and np.array_equal(tile(sheet, 0), enlarged(pixels, 10))
    from_source = preview_sheet(str(folder_source), n=5, boxes=False, **options)
    assert [s.row["key"] for s in from_source.samples] == [s.row["key"] for s in sheet.samples]
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(sheet.samples, from_source.samples))


# ---------------------------------------------------------------- captions

def test_caption_text():
    row = {"op": "cutmix", "soft_label": [0.62, 0.38], "lam": 0.62}
    assert caption(row, ["cat", "dog"]) == "cutmix  cat 0.62 / dog 0.38"
    assert caption({"op": "mixup", "soft_label": [0.3, 0.7]}, ["cat", "dog"]) == "mixup  dog 0.70 / cat 0.30"
    assert caption({"op": "none", "soft_label": [0.0, 1.0, 0.0]}, ["a", "b", "c"]) == "none  b 1.00"
    assert caption({"op": "mixup", "soft_label": [0.05, 0.85, 0.1]}, ["cat", "dog", "ox"]) == \
        "mixup  dog 0.85 / ox 0.10"
    assert caption({"op": "cutout", "soft_label": [0.5, 0.5]}, ["cat", "dog"]) == "cutout  cat 0.50 / dog 0.50"


# ---------------------------------------------------------------- inspect

def test_inspect_agrees_with_manifest(demo_out):
    with open(os.path.join(demo_out, "manifest.json")) as f:
        doc = json.load(f)
    info = inspect(demo_out)
    assert info["rows"] == doc["totals"]["rows"] == 288
    assert {op: v["count"] for op, v in info["ops"].items()} == doc["totals"]["ops"]
    assert sum(v["percent"] for v in info["ops"].values()) == pytest.approx(100, abs=0.05)
    assert sum(c["mass"] for c in info["classes"]) == pytest.approx(info["rows"], abs=1e-2)
    assert sum(c["label_count"] for c in info["classes"]) == info["rows"]
    rows = pq.read_table(os.path.join(demo_out, "labels.parquet")).to_pylist()
    for op in ("mixup", "cutmix"):
        assert sum(info["lam"][op]["histogram"]) == doc["totals"]["ops"][op] == info["lam"][op]["count"]
        cross = sum(r["op"] == op and r["label_b"] is not None and r["label_a"] != r["label_b"] for r in rows)
        assert info["lam"][op]["cross_class"] == cross and 0 < cross < info["lam"][op]["count"]
    assert len(info["lam"]["edges"]) == 11
    assert (info["format"], info["image_format"], info["size"]) == ("parquet", "jpeg", [32, 32])
    assert info["source"] == {"kind": "demo", "uri": "demo", "items": 288}
    assert info["seed"] == 3 and info["config"] == doc["config"] and info["errors"]["count"] == 0
    text = format_inspect(info)
    for needle in ("rows     288 in 1 shard", "parquet, jpeg images 32x32", "mixup", "[0.9, 1.0]",
                   "soft-label mass per class", "circle", "errors   none", "cutout_holes=2"):
        assert needle in text, needle


def test_inspect_cli_text_and_json(demo_out):
    result = cli("inspect", demo_out)
    assert result.exit_code == 0 and "rows     288" in result.output
    result = cli("inspect", demo_out, "--json")
    assert result.exit_code == 0
    assert json.loads(result.output) == json.loads(json.dumps(inspect(demo_out)))


def test_inspect_lists_skipped_items(tmp_path, caplog):
    source = make_folder(tmp_path / "src", **PETS)
    (source / "dog" / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    mixbake.bake(str(source), out, workers=1, quiet=True, size=16, on_error="skip")
    info = inspect(out)
    assert info["skipped"] == info["errors"]["count"] == 1
    assert info["errors"]["first"] == ["dog/broken.jpg: not an image Pillow can identify"]
    assert "dog/broken.jpg: not an image Pillow can identify" in format_inspect(info)
    # a preview meeting the bad item shows the rows of the bake with --on-error skip, partners included
    sheet = preview_sheet(str(source), n=13, size=16)
    assert sheet.skipped == ("dog/broken.jpg: not an image Pillow can identify",)  # said, not only left out
    result = cli("preview", source, "-o", tmp_path / "p.png", "-n", 13, "--size", 16)
    assert result.exit_code == 0, result.output
    assert "left out of the preview" in caplog.text and "dog/broken.jpg: not an image" in caplog.text
    baked = pq.read_table(out / "labels.parquet").to_pylist()
    assert [(s.row["key"], s.row["src_b"], s.row["lam"]) for s in sheet.samples] == \
        [(r["key"], r["src_b"], r["lam"]) for r in baked]
