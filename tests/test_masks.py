"""Segmentation masks through the bake, checked on pixels: every source image paints each mask class
in its own pure colour, so an output's image says which class each of its pixels came from, and
its mask must agree, whatever geometry (resize, crop, pad, flips, rotate, cutmix's paste) moved
them. Black (the fill of pads and rotated corners) and cutout holes must be the ignore index.
"""
from __future__ import annotations

import glob
import json
import io
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from helpers import cli, decoded_rows, manifest_of, patch_manifest_entry, set_cell

# mask class -> the pure colour its pixels have in the image; 255 (ignore) is mid grey
COLOURS = {0: (255, 0, 0), 1: (0, 255, 0), 2: (0, 0, 255), 3: (255, 255, 255), 255: (128, 128, 128)}
IGNORE = 255


def _scene(rng, w=48, h=40, block=8):
    """(image, mask): blocks of random classes (some ignore), the image painting each in its colour."""
    classes = np.array(list(COLOURS))
    grid = rng.choice(classes, size=(h // block + 1, w // block + 1), p=[0.22, 0.22, 0.22, 0.22, 0.12])
    mask = np.kron(grid, np.ones((block, block), np.int64))[:h, :w].astype(np.uint8)
    lut = np.zeros((256, 3), np.uint8)
    for c, colour in COLOURS.items():
        lut[c] = colour
    return lut[mask], mask


def _png(array, mode=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def masked_folder(tmp_path):
    """src/<cls>/<i>.png and masks/<cls>/<i>.png (mode L; one class's masks saved as palette P)."""
    rng = np.random.default_rng(7)
    src, masks = tmp_path / "src", tmp_path / "masks"
    truth = {}
    for cls in ("road", "sky"):
        (src / cls).mkdir(parents=True)
        (masks / cls).mkdir(parents=True)
        for i in range(8):
            w, h = (48, 40) if i % 2 else (40, 56)
            image, mask = _scene(rng, w, h)
            (src / cls / f"{i}.png").write_bytes(_png(image))
            if cls == "sky":  # a palette mask: its indices are the classes, whatever the palette's colours
                p = Image.fromarray(mask, "L").convert("P")
                p.putpalette(list(rng.integers(0, 256, 768).astype(np.uint8)))
                p.putdata(mask.ravel().tolist())
                buf = io.BytesIO()
                p.save(buf, "PNG")
                (masks / cls / f"{i}.png").write_bytes(buf.getvalue())
            else:
                (masks / cls / f"{i}.png").write_bytes(_png(mask, "L"))
            truth[f"{cls}/{i}.png"] = mask
    return src, masks, truth


def _class_of_colour(pixels):
    """Per pixel: the mask class whose colour it is (within 24 per channel), else -1 (a blend)."""
    out = np.full(pixels.shape[:2], -1, np.int64)
    for c, colour in COLOURS.items():
        near = np.all(np.abs(pixels.astype(np.int16) - np.array(colour)) <= 24, axis=2)
        out[near] = c
    black = np.all(pixels <= 24, axis=2)
    out[black] = 1000  # fill: must be the ignore index in the mask
    return out


def _agreement(pixels, mask):
    """(fraction of pure-coloured pixels whose mask class matches their colour, how many were pure)."""
    want = _class_of_colour(pixels)
    pure = want >= 0
    want = np.where(want == 1000, IGNORE, want)
    return float(np.mean(mask[pure] == want[pure])), int(pure.sum())


def _covered(shape, boxes) -> np.ndarray:
    """The pixels inside any of ``boxes`` (x0, y0, x1, y1, half-open)."""
    inside = np.zeros(shape, bool)
    for x0, y0, x1, y1 in boxes:
        inside[max(0, y0):y1, max(0, x0):x1] = True
    return inside


def _edit_mask(out, row, edit):
    """Give row ``row`` of the build's first shard the mask ``edit(its mask)``, and re-sign the shard
    in the manifest (so that only the mask checks can tell)."""
    shard = sorted(glob.glob(str(Path(out) / "data" / "*.parquet")))[0]
    cell = pq.read_table(shard).column("mask")[row].as_py()
    mask = np.asarray(Image.open(io.BytesIO(cell["bytes"]))).copy()
    set_cell(shard, "mask", row, {"bytes": _png(edit(mask), "L"), "path": cell["path"]})
    patch_manifest_entry(Path(out), str(Path(shard).relative_to(out)))


def _bake(src, out, *args, masks=None):
    cli("bake", src, out, "--size", "32", "--image-format", "png", "--masks", masks, "-q", "--workers", "2",
        *args, code=0)
    return decoded_rows(out)


@pytest.mark.parametrize("args", [
    ("--none", "1", "--mixup", "0", "--cutmix", "0"),
    ("--none", "1", "--mixup", "0", "--cutmix", "0", "--resize", "pad"),
    ("--none", "0", "--mixup", "0", "--cutmix", "1", "--copies", "2"),
    ("--mixup", "0", "--cutmix", "1", "--resize", "random-crop", "--hflip", "0.5", "--vflip", "0.5",
     "--rotate", "30", "--copies", "2"),
    ("--mixup", "0", "--cutmix", "1", "--none", "1", "--auto-augment", "randaugment", "--ra-magnitude", "12",
     "--color-jitter", "0", "0", "0", "0", "--copies", "2"),
], ids=["crop", "pad", "cutmix", "chain-geometry", "randaugment"])
def test_every_output_mask_pixel_is_the_class_its_image_pixel_came_from(masked_folder, tmp_path, args):
    src, masks, _ = masked_folder
    rows = _bake(src, tmp_path / "out", *args, masks=masks)
    assert len(rows) >= 16
    for r in rows:
        assert r["mask"].shape == r["pixels"].shape[:2] == (32, 32) and r["mask"].dtype == np.uint8
        if "randaugment" not in args:  # (colour ops change the colours themselves; checked below)
            agree, pure = _agreement(r["pixels"], r["mask"])
            assert pure > 200 and agree >= 0.98, (r["key"], r["op"], agree, pure)
        assert r["mask_b"] is None
        assert set(np.unique(r["mask"])) <= set(COLOURS), r["key"]
    if "pad" in args:  # letterboxing: the pad bars are ignore
        tall = [r for r in rows if np.all(r["pixels"][:, 0] == 0)]
        assert tall and all(np.all(r["mask"][:, 0] == IGNORE) for r in tall)


def test_randaugment_moves_masks_with_geometric_ops_only(masked_folder, tmp_path):
    """With RandAugment's colour ops the colours change, but a pixel's class still follows its place:
    the mask under each row's recorded geometric ops equals the baked mask (checked against a bake
    that records the same geometry, by the recorded ops' names)."""
    src, masks, _ = masked_folder
    rows = _bake(src, tmp_path / "out", "--none", "1", "--mixup", "0", "--cutmix", "0", "--auto-augment",
                 "randaugment", "--ra-magnitude", "12", "--copies", "3", masks=masks)
    geometric = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"}
    colour_only = [r for r in rows if not geometric & {o["op"] for o in r["aug_a"]["ops"]}]
    moved = [r for r in rows if geometric & {o["op"] for o in r["aug_a"]["ops"]} and
             any(abs(o["value"]) > 1 for o in r["aug_a"]["ops"] if o["op"] in geometric)]
    assert colour_only and moved
    plain = {r["src_a"]: r["mask"] for r in _bake(src, tmp_path / "plain", "--none", "1", "--mixup", "0",
                                                   "--cutmix", "0", masks=masks)}
    for r in colour_only:  # colour ops leave the mask as the plain resize made it
        assert np.array_equal(r["mask"], plain[r["src_a"]]), r["key"]
    assert any(not np.array_equal(r["mask"], plain[r["src_a"]]) for r in moved)
    for r in moved:  # a geometric op's fill is ignore, never a class
        assert np.mean(r["mask"] != plain[r["src_a"]]) < 0.9


def test_mixup_cutmix_cutout_masks_against_the_sources_plain_masks(masked_folder, tmp_path):
    src, masks, _ = masked_folder
    plain = {r["src_a"]: r["mask"] for r in _bake(src, tmp_path / "plain", "--none", "1", "--mixup", "0",
                                                   "--cutmix", "0", masks=masks)}
    rows = _bake(src, tmp_path / "out", "--mixup", "1", "--cutmix", "1", "--cutout", "1", "--cutout-holes", "2",
                 "--copies", "3", masks=masks)
    seen = set()
    for r in rows:
        a, b = plain[r["src_a"]], plain.get(r["src_b"])
        seen.add(r["op"])
        if r["op"] == "mixup":
            assert np.array_equal(r["mask"], a) and np.array_equal(r["mask_b"], b), r["key"]
        elif r["op"] == "cutmix":
            inside = _covered(a.shape, r["boxes"])
            assert np.array_equal(r["mask"], np.where(inside, b, a)) and r["mask_b"] is None, r["key"]
            assert np.isclose(1 - r["lam"], inside.mean(), atol=1e-6)
        elif r["op"] == "cutout":
            holes = _covered(a.shape, r["boxes"])
            assert np.array_equal(r["mask"], np.where(holes, IGNORE, a)) and r["mask_b"] is None, r["key"]
            assert holes.any()
    assert seen == {"mixup", "cutmix", "cutout"}


def test_mask_cutout_keep_leaves_the_holes_labelled(masked_folder, tmp_path):
    src, masks, _ = masked_folder
    plain = {r["src_a"]: r["mask"] for r in _bake(src, tmp_path / "plain", "--none", "1", "--mixup", "0",
                                                   "--cutmix", "0", masks=masks)}
    rows = _bake(src, tmp_path / "out", "--mixup", "0", "--cutmix", "0", "--cutout", "1", "--erase", "1",
                 "--mask-cutout", "keep", masks=masks)
    assert all(np.array_equal(r["mask"], plain[r["src_a"]]) for r in rows)
    erased = _bake(src, tmp_path / "erased", "--mixup", "0", "--cutmix", "0", "--none", "1", "--erase", "1",
                   "--erase-value", "zero", masks=masks)
    for r in erased:
        (x0, y0, x1, y1), = r["aug_a"]["boxes"]
        assert np.all(r["mask"][y0:y1, x0:x1] == IGNORE)
        outside = np.ones_like(r["mask"], bool)
        outside[y0:y1, x0:x1] = False
        assert np.array_equal(r["mask"][outside], plain[r["src_a"]][outside])


def test_custom_ignore_index_fills_pads(masked_folder, tmp_path):
    src, masks, _ = masked_folder
    rows = _bake(src, tmp_path / "out", "--none", "1", "--mixup", "0", "--cutmix", "0", "--resize", "pad",
                 "--mask-ignore-index", "9", masks=masks)
    padded = [r for r in rows if np.all(r["pixels"][:, 0] == 0)]
    assert padded and all(np.all(r["mask"][:, 0] == 9) for r in padded)
    assert manifest_of(tmp_path / "out")["config"]["mask_ignore_index"] == 9


def test_masks_are_deterministic_across_workers_and_verified(masked_folder, tmp_path):
    src, masks, _ = masked_folder
    args = ("--size", "32", "--image-format", "png", "--masks", masks, "--copies", "2", "--cutout", "0.5",
            "--hflip", "0.5", "--rotate", "20", "-q")
    cli("bake", src, tmp_path / "one", *args, "--workers", "1", code=0)
    cli("bake", src, tmp_path / "two", *args, "--workers", "2", code=0)
    one = sorted(glob.glob(str(tmp_path / "one" / "data" / "*")))
    assert one and [Path(p).read_bytes() for p in one] == \
        [Path(p).read_bytes() for p in sorted(glob.glob(str(tmp_path / "two" / "data" / "*")))]
    cli("verify", tmp_path / "one", "--deep", code=0)
    doc = manifest_of(tmp_path / "one")
    assert doc["masks"] is True and doc["format_version"] >= 2


def test_verify_catches_a_labelled_cutout_hole_and_a_mask_of_the_wrong_size(masked_folder, tmp_path):
    """The shards are re-signed in the manifest after the edit, so only the mask checks can see it."""
    src, masks, _ = masked_folder
    out = tmp_path / "out"
    _bake(src, out, "--none", "0", "--mixup", "0", "--cutmix", "0", "--cutout", "1", masks=masks)
    cli("verify", out, code=0)
    shard = sorted(glob.glob(str(out / "data" / "*.parquet")))[0]
    x0, y0, x1, y1 = pq.read_table(shard).column("boxes")[0].as_py()[0]

    def label_the_hole(mask):
        mask[max(0, y0), max(0, x0)] = 1
        return mask
    _edit_mask(out, 0, label_the_hole)
    _edit_mask(out, 1, lambda mask: np.zeros((8, 8), np.uint8))
    result = cli("verify", out)
    assert result.exit_code != 0
    assert "row 0: mask is not 255 (ignore) in the cutout holes" in result.output
    assert "row 1: mask is not 32x32" in result.output


def test_mask_problems_are_bad_items_naming_the_file(masked_folder, tmp_path):
    src, masks, _ = masked_folder
    (masks / "road" / "1.png").write_bytes(_png(np.zeros((5, 5), np.uint8), "L"))       # wrong size
    (masks / "road" / "2.png").unlink()                                                   # missing
    (masks / "sky" / "3.png").write_bytes(_png(np.zeros((40, 48, 3), np.uint8)))          # RGB
    result = cli("bake", src, tmp_path / "out", "--size", "32", "--masks", masks, "-q", "--workers", "1")
    assert result.exit_code != 0
    assert "road/" in result.output and "mask" in result.output
    out = tmp_path / "skip"
    result = cli("bake", src, out, "--size", "32", "--masks", masks, "-q", "--workers", "1", "--on-error", "skip")
    assert result.exit_code == 0, result.output
    errors = (out / "errors.jsonl").read_text()
    assert "road/1.png" in errors and "size" in errors
    assert "road/2.png" in errors and "no mask file" in errors
    assert "sky/3.png" in errors
    assert manifest_of(out)["totals"]["skipped"] == 3 and manifest_of(out)["totals"]["rows"] == 13


def test_parquet_mask_column_and_webdataset_output(masked_folder, tmp_path):
    rng = np.random.default_rng(3)
    images, mask_cells, labels = [], [], []
    for i in range(12):
        image, mask = _scene(rng)
        images.append({"bytes": _png(image), "path": f"{i}.png"})
        mask_cells.append(_png(mask, "L"))
        labels.append(i % 3)
    table = pa.table({"image": pa.array(images, pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                      "seg": pa.array(mask_cells, pa.binary()), "label": pa.array(labels, pa.int64())})
    pq.write_table(table, tmp_path / "seg.parquet")
    out = tmp_path / "out"
    cli("bake", tmp_path / "seg.parquet", out, "--size", "32", "--image-format", "png", "--image-column", "image",
        "--label-column", "label", "--mask-column", "seg", "--cutmix", "1", "--mixup", "0", "-q", code=0)
    rows = decoded_rows(out)
    assert len(rows) == 12
    for r in rows:
        agree, pure = _agreement(r["pixels"], r["mask"])
        assert agree >= 0.98 and pure > 200
    cli("verify", out, "--deep", code=0)
    wds = tmp_path / "wds"
    cli("bake", tmp_path / "seg.parquet", wds, "--size", "32", "--image-format", "png", "--format", "webdataset",
        "--mask-column", "seg", "--mixup", "1", "--cutmix", "0", "-q", code=0)
    names, masks_b = [], 0
    for tar in sorted(glob.glob(str(wds / "*.tar")) + glob.glob(str(wds / "**" / "*.tar"))):
        with tarfile.open(tar) as t:
            for m in t.getmembers():
                names.append(m.name)
                if m.name.endswith(".mask_b.png"):
                    masks_b += 1
                    assert np.asarray(Image.open(t.extractfile(m))).shape == (32, 32)
    assert sum(n.endswith(".mask.png") for n in names) == 12 and masks_b == 12


def test_folder_format_writes_the_masks_beside_the_images(masked_folder, tmp_path):
    src, masks, _ = masked_folder
    out = tmp_path / "f"
    cli("bake", src, out, "--masks", masks, "--format", "folder", "--size", "32", "--image-format", "png",
        "--mixup", "1", "--cutmix", "1", "-q", code=0)
    rows = pq.read_table(out / "labels.parquet").to_pylist()
    for r in rows:
        mask = np.asarray(Image.open(out / "masks" / f"{r['key']}.png"))
        pixels = np.asarray(Image.open(out / r["path"]).convert("RGB"))
        assert mask.shape == (32, 32)
        if r["op"] == "cutmix":
            agree, pure = _agreement(pixels, mask)
            assert agree >= 0.98
        assert (out / "masks" / f"{r['key']}.b.png").exists() == (r["op"] == "mixup")
    cli("verify", out, "--deep", code=0)
    (out / "masks" / f"{rows[0]['key']}.png").unlink()
    assert cli("verify", out).exit_code != 0
    result = cli("bake", src, tmp_path / "g", "--masks", tmp_path / "nowhere", "-q")
    assert result.exit_code != 0 and "--masks" in result.output


def test_mask_classes_bounds_the_values_at_bake_and_verify(masked_folder, tmp_path):
    src, masks, truth = masked_folder
    for ref in ("road/0.png", "road/3.png", "sky/4.png"):  # these hold classes 0..2 only
        truth[ref] = np.where(truth[ref] == 3, 0, truth[ref]).astype(np.uint8)
        (masks / ref).write_bytes(_png(truth[ref], "L"))
    out = tmp_path / "skip"
    cli("bake", src, out, "--size", "32", "--image-format", "png", "--masks", masks, "--mask-classes", "3",
        "--on-error", "skip", "-q", code=0)
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    want = sorted(ref for ref, m in truth.items() if ((m >= 3) & (m != IGNORE)).any())
    assert want and sorted(e["ref"] for e in errors) == want
    assert all("mask holds class 3" in e["reason"] and "--mask-classes 3" in e["reason"] for e in errors)
    out = tmp_path / "ok"
    cli("bake", src, out, "--size", "32", "--image-format", "png", "--masks", masks, "--mask-classes", "4", "-q",
        code=0)
    def stray(mask):
        mask[5, 5] = 77
        return mask
    _edit_mask(out, 2, stray)
    result = cli("verify", out)
    assert result.exit_code != 0 and "row 2: mask mask holds class 77" in result.output


def test_inspect_counts_mask_pixels_and_preview_tints_by_the_mask(masked_folder, tmp_path):
    from mixbake.preview import out_samples, tint
    from mixbake.report import inspect
    src, masks, _ = masked_folder
    out = tmp_path / "out"
    rows = _bake(src, out, "--rotate", "25", "--copies", "2", masks=masks)
    want = np.bincount(np.concatenate([r["mask"].ravel() for r in rows]), minlength=256)
    info = inspect(out)["masks"]
    assert info["pixels"] == len(rows) * 32 * 32
    assert {c["index"]: c["pixels"] for c in info["classes"]} == {v: int(want[v]) for v in range(4) if want[v]}
    assert np.isclose(info["ignore_percent"], 100 * want[IGNORE] / want.sum(), atol=0.05)
    text = cli("inspect", out, code=0).output
    assert "mask pixels per class" in text and f"{int(want[0]):,}" in text
    _, samples = out_samples(str(out), 4)
    by_key = {r["key"]: r["mask"] for r in rows}
    for s in samples:
        assert np.array_equal(s.mask, by_key[s.row["key"]])
        tinted = tint(s.pixels, s.mask, IGNORE)
        changed = np.any(tinted != s.pixels, axis=2)
        assert not changed[s.mask == IGNORE].any() and changed[s.mask != IGNORE].mean() > 0.9
    sheet = tmp_path / "sheet.png"
    cli("preview", src, "--masks", masks, "-o", sheet, "-n", "4", "--size", "32", code=0)
    assert Image.open(sheet).size[0] > 100


def test_deep_verify_rederives_every_mask_from_the_sources(masked_folder, tmp_path):
    """A mask pixel changed to another class breaks no rule plain verify knows; --deep decodes the
    sources' masks again, moves them by each view's recorded geometry and the row's op, and finds it."""
    src, masks, _ = masked_folder
    out = tmp_path / "out"
    _bake(src, out, "--mixup", "0", "--cutmix", "1", "--copies", "2", "--hflip", "0.5", "--rotate", "15", masks=masks)
    cli("verify", out, "--deep", code=0)

    def another_class(mask):
        mask[16, 16] = 0 if mask[16, 16] != 0 else 1
        return mask
    _edit_mask(out, 3, another_class)
    cli("verify", out, code=0)
    result = cli("verify", out, "--deep")
    assert result.exit_code != 0 and "row 3: mask differs from the one its sources' masks" in result.output
