"""Detection boxes through every op and the chain, checked on pixels: each source image holds
solid rectangles, one colour per category, on a textured grey background, so an output image shows
where each object went, and each output box must frame its object's pixels (within 1.5 px; tightly
when nothing covers the object or cuts it at the frame), and every object's visible pixels must lie
in a box of its category unless the row counts a dropped box. Sources: COCO JSON, the YOLO layout,
a Parquet objects column (Hugging Face's detection convention)."""
from __future__ import annotations

import glob
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from helpers import cli, decoded_rows, make_folder, manifest_of, patch_manifest_entry, set_cell

COLOURS = [(255, 0, 0), (0, 200, 0), (0, 0, 255)]
NAMES = ["red", "green", "blue"]
SIZE = 64


def _scene(rng, w, h):
    """(image, [(x, y, bw, bh, category)]): 1-4 rectangles on grey texture, apart by >= 4 px, and
    by >= 20 px from one of the same category (so that rotated, sheared and zoomed, an object's
    box never reaches another's pixels of its colour)."""
    img = rng.integers(100, 150, (h, w, 3), dtype=np.uint8)
    placed = []
    for _ in range(60):
        if len(placed) == 4:
            break
        bw, bh, c = int(rng.integers(8, 22)), int(rng.integers(8, 22)), int(rng.integers(0, 3))
        x, y = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
        if any(x < px + pw + g and px < x + bw + g and y < py + ph + g and py < y + bh + g
               for px, py, pw, ph, pc in placed for g in [20 if pc == c else 4]):
            continue
        img[y:y + bh, x:x + bw] = COLOURS[c]
        placed.append((x, y, bw, bh, c))
    return img, placed


def _png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def _scenes(n=16, seed=5):
    rng = np.random.default_rng(seed)
    return [_scene(rng, *((80, 64) if i % 2 else (64, 80))) for i in range(n)]


@pytest.fixture
def coco(tmp_path):
    src = tmp_path / "src"
    (src / "imgs").mkdir(parents=True)
    images, anns = [], []
    for i, (img, objs) in enumerate(_scenes()):
        (src / "imgs" / f"{i:02d}.png").write_bytes(_png(img))
        images.append({"id": 100 + i, "file_name": f"imgs/{i:02d}.png", "width": img.shape[1], "height": img.shape[0]})
        for x, y, bw, bh, c in objs:
            anns.append({"id": len(anns), "image_id": 100 + i, "bbox": [x, y, bw, bh], "category_id": 10 + c,
                         "iscrowd": 0, "area": bw * bh})
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": 10 + c, "name": n} for c, n in enumerate(NAMES)]}
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps(doc))
    return src, ann, doc


def _bake(src, out, *args):
    cli("bake", src, out, "--size", SIZE, "--image-format", "png", "-q", "--workers", "2", *args, code=0)
    return decoded_rows(out)


def _colour_mask(pixels, c, tolerance=60):
    return np.all(np.abs(pixels.astype(np.int16) - np.array(COLOURS[c])) < tolerance, axis=2)


def _extent(mask):
    ys, xs = np.nonzero(mask)
    return (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if len(xs) else None


def _holes(row):
    """The regions that hide a's pixels in this row: cutout holes, cutmix's paste, a's erase boxes."""
    holes = [tuple(b) for b in row["boxes"]] if row["op"] in ("cutout", "cutmix") else []
    if row.get("aug_a"):
        holes += [tuple(b) for b in row["aug_a"]["boxes"]]
    return holes


def _overlaps(box, rects, margin=1.0):
    x0, y0, x1, y1 = box
    return any(x0 - margin < c and a < x1 + margin and y0 - margin < d and b < y1 + margin for a, b, c, d in rects)


def _check_row(r, tol=1.5):
    """Every box frames its category's pixels; every object's visible pixels are boxed."""
    pixels, holes = r["pixels"], _holes(r)
    for obj in r["objects"]:
        x0, y0, x1, y1 = obj["bbox"]
        assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE, (r["key"], obj)
        region = np.zeros((SIZE, SIZE), bool)
        region[max(0, int(y0 - 2)):int(np.ceil(y1 + 2)), max(0, int(x0 - 2)):int(np.ceil(x1 + 2))] = True
        if r["op"] == "cutmix":  # a's pixels are outside the pasted box, b's inside it
            pasted = np.zeros_like(region)
            for px0, py0, px1, py1 in r["boxes"]:
                pasted[max(0, py0):py1, max(0, px0):px1] = True
            region &= pasted if obj["source"] == 1 else ~pasted
        found = _extent(_colour_mask(pixels, obj["category"]) & region)
        assert found is not None, (r["key"], r["op"], obj)
        fx0, fy0, fx1, fy1 = found
        assert fx0 >= x0 - tol and fy0 >= y0 - tol and fx1 <= x1 + tol and fy1 <= y1 + tol, (r["key"], obj, found)
        edge = min(x0, y0) < 1 or max(x1, y1) > SIZE - 1
        covered = obj["source"] == 0 and _overlaps(obj["bbox"], holes)
        if not edge and not covered and r["op"] != "cutmix":
            assert abs(fx0 - x0) <= tol and abs(fy0 - y0) <= tol and abs(fx1 - x1) <= tol and abs(fy1 - y1) <= tol, \
                (r["key"], r["op"], obj, found)
    for c in range(3):  # no visible object without a box (unless the row dropped one)
        pure = _colour_mask(pixels, c, tolerance=25)
        boxed = np.zeros_like(pure)
        for obj in r["objects"]:
            if obj["category"] == c:
                x0, y0, x1, y1 = obj["bbox"]
                boxed[max(0, int(y0 - tol)):int(np.ceil(y1 + tol)), max(0, int(x0 - tol)):int(np.ceil(x1 + tol))] = True
        if (pure & ~boxed).sum() > 2:
            assert r["objects_dropped"] > 0, (r["key"], r["op"], NAMES[c], int((pure & ~boxed).sum()))


@pytest.mark.parametrize("args", [
    ("--none", "1", "--mixup", "0", "--cutmix", "0"),
    ("--none", "1", "--mixup", "0", "--cutmix", "0", "--resize", "pad"),
    ("--none", "1", "--mixup", "0", "--cutmix", "0", "--resize", "stretch"),
    ("--none", "0", "--mixup", "0", "--cutmix", "1", "--copies", "3"),
    ("--none", "0", "--mixup", "0", "--cutmix", "0", "--cutout", "1", "--cutout-holes", "2", "--copies", "2"),
    ("--mixup", "0", "--cutmix", "1", "--none", "1", "--resize", "random-crop", "--crop-scale", "0.3", "1",
     "--hflip", "0.5", "--vflip", "0.5", "--rotate", "30", "--copies", "3"),
    ("--mixup", "0", "--cutmix", "0", "--none", "1", "--auto-augment", "randaugment", "--ra-magnitude", "14",
     "--copies", "4"),
    ("--mixup", "0", "--cutmix", "0", "--none", "1", "--erase", "1", "--erase-value", "zero", "--copies", "2"),
], ids=["crop", "pad", "stretch", "cutmix", "cutout", "chain-geometry", "randaugment", "erase"])
def test_every_box_frames_its_objects_pixels(coco, tmp_path, args):
    src, ann, _ = coco
    rows = _bake(src, tmp_path / "out", "--annotations", ann, *args)
    assert len(rows) >= 16
    if "randaugment" in args:  # the rows whose ops all move pixels without changing their colours
        still = {"Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"}
        rows = [r for r in rows if {o["op"] for o in r["aug_a"]["ops"]} <= still]
        assert len(rows) >= 4 and any({o["op"] for o in r["aug_a"]["ops"]} - {"Identity"} for r in rows)
    for r in rows:
        _check_row(r)
    cli("verify", tmp_path / "out", "--deep", code=0)


def test_randaugment_colour_ops_leave_boxes_and_geometric_ones_move_them(coco, tmp_path):
    src, ann, _ = coco
    plain = {r["src_a"]: r["objects"] for r in _bake(src, tmp_path / "plain", "--annotations", ann, "--none", "1",
                                                      "--mixup", "0", "--cutmix", "0")}
    rows = _bake(src, tmp_path / "out", "--annotations", ann, "--none", "1", "--mixup", "0", "--cutmix", "0",
                 "--auto-augment", "randaugment", "--ra-magnitude", "14", "--copies", "4")
    geometric = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"}
    still = [r for r in rows if not any(o["op"] in geometric and abs(o["value"]) >= 1 for o in r["aug_a"]["ops"])
             and not any(o["op"] in geometric for o in r["aug_a"]["ops"])]
    moved = [r for r in rows if any(o["op"] in geometric and abs(o["value"]) >= 1 for o in r["aug_a"]["ops"])]
    assert still and moved
    for r in still:
        assert r["objects"] == plain[r["src_a"]], r["key"]
    assert any(r["objects"] != plain[r["src_a"]] for r in moved)


def test_mixup_keeps_both_sources_boxes_weighted_by_lam(coco, tmp_path):
    src, ann, _ = coco
    baked = _bake(src, tmp_path / "plain", "--annotations", ann, "--none", "1", "--mixup", "0", "--cutmix", "0")
    plain = {r["src_a"]: r["objects"] for r in baked}
    dropped = {r["src_a"]: r["objects_dropped"] for r in baked}
    rows = _bake(src, tmp_path / "out", "--annotations", ann, "--mixup", "1", "--cutmix", "0", "--copies", "2")
    for r in rows:
        a = [o for o in r["objects"] if o["source"] == 0]
        b = [o for o in r["objects"] if o["source"] == 1]
        assert [o["bbox"] for o in a] == [o["bbox"] for o in plain[r["src_a"]]]
        assert [o["bbox"] for o in b] == [o["bbox"] for o in plain[r["src_b"]]]
        assert all(np.isclose(o["weight"], r["lam"]) for o in a)
        assert all(np.isclose(o["weight"], 1 - r["lam"], atol=1e-6) for o in b)
        assert r["objects_dropped"] == dropped[r["src_a"]] + dropped[r["src_b"]]
    assert any(o["source"] == 1 for r in rows for o in r["objects"])


def test_min_visibility_decides_what_cutout_drops(coco, tmp_path):
    src, ann, doc = coco
    strict = _bake(src, tmp_path / "strict", "--annotations", ann, "--mixup", "0", "--cutmix", "0", "--cutout", "1",
                   "--cutout-size", "0.6", "--min-visibility", "0.9", "--copies", "3")
    loose = _bake(src, tmp_path / "loose", "--annotations", ann, "--mixup", "0", "--cutmix", "0", "--cutout", "1",
                  "--cutout-size", "0.6", "--min-visibility", "0", "--copies", "3")
    kept_strict = sum(len(r["objects"]) for r in strict)
    kept_loose = sum(len(r["objects"]) for r in loose)
    dropped = sum(r["objects_dropped"] for r in strict)
    assert dropped > 0 and kept_strict + dropped == kept_loose + sum(r["objects_dropped"] for r in loose)
    assert kept_loose > kept_strict
    for r in loose:  # only boxes wholly hidden are dropped at 0
        for obj in r["objects"]:
            assert not all(obj["bbox"][0] >= h[0] and obj["bbox"][1] >= h[1] and obj["bbox"][2] <= h[2]
                           and obj["bbox"][3] <= h[3] for h in [tuple(b) for b in r["boxes"]])
    assert manifest_of(tmp_path / "strict")["config"]["min_visibility"] == 0.9


def test_bad_annotations_are_bad_items_with_reasons(coco, tmp_path):
    src, ann, doc = coco
    doc["annotations"][0]["bbox"][2] = -5                       # imgs/00: a negative width
    doc["annotations"].append({"id": 999, "image_id": 101, "bbox": [1, 1, 5, 5], "category_id": 77})  # 01: unknown
    doc["annotations"].append({"id": 998, "image_id": 102, "bbox": [70, 70, 30, 30], "category_id": 10})  # 02: outside
    doc["images"].append({"id": 500, "file_name": "imgs/gone.png"})                    # listed, no file
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(src / "imgs" / "extra.png")  # a file, no entry
    ann.write_text(json.dumps(doc))
    result = cli("bake", src, tmp_path / "fail", "--annotations", ann, "-q")
    assert result.exit_code != 0 and "imgs/00.png" in result.output and "negative" in result.output
    out = tmp_path / "out"
    cli("bake", src, out, "--annotations", ann, "--on-error", "skip", "-q", "--size", SIZE, code=0)
    errors = {e["ref"]: e["reason"] for e in map(json.loads, (out / "errors.jsonl").read_text().splitlines())}
    assert "negative or zero size" in errors["imgs/00.png"]
    assert "category_id 77" in errors["imgs/01.png"]
    assert "outside the" in errors["imgs/02.png"]
    assert "does not exist" in errors["imgs/gone.png"]
    assert "no entry" in errors["imgs/extra.png"]
    assert manifest_of(out)["totals"]["skipped"] == 5 and manifest_of(out)["totals"]["items"] == 18


def test_yolo_layout_with_data_yaml(tmp_path):
    root = tmp_path / "yolo"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nnames:\n  0: red\n  1: green\n  2: blue\n")
    truth = {}
    for i, (img, objs) in enumerate(_scenes(10, seed=8)):
        h, w = img.shape[:2]
        (root / "images" / "train" / f"{i}.png").write_bytes(_png(img))
        if i == 9:
            continue  # no label file: a bad item
        lines = [f"{c} {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}" for x, y, bw, bh, c in objs]
        (root / "labels" / "train" / f"{i}.txt").write_text("\n".join(lines) + "\n")
        truth[f"images/train/{i}.png"] = objs
    out = tmp_path / "out"
    result = cli("bake", root, out, "--size", SIZE, "--image-format", "png", "--none", "1", "--mixup", "0",
                 "--cutmix", "0", "--hflip", "0.5", "-q")
    assert result.exit_code != 0 and "no label file labels/train/9.txt" in result.output
    cli("bake", root, out, "--size", SIZE, "--image-format", "png", "--none", "1", "--mixup", "0", "--cutmix", "0",
        "--hflip", "0.5", "-q", "--on-error", "skip", code=0)
    assert manifest_of(out)["classes"] == NAMES
    rows = decoded_rows(out)
    assert len(rows) == 9
    for r in rows:
        _check_row(r)
        assert sorted(o["category"] for o in r["objects"]) == sorted(c for *_, c in truth[r["ref_a"]] if True) \
            if "ref_a" in r else True
    cli("verify", out, "--deep", code=0)


def test_parquet_objects_column_hf_convention_and_xyxy(tmp_path):
    scenes = _scenes(12, seed=9)
    images = [{"bytes": _png(img), "path": f"{i}.png"} for i, (img, _) in enumerate(scenes)]
    for fmt in ("xywh", "xyxy"):
        objects = [{"bbox": [[x, y, bw, bh] if fmt == "xywh" else [x, y, x + bw, y + bh] for x, y, bw, bh, _ in objs],
                    "category": [c for *_, c in objs]} for _, objs in scenes]
        table = pa.table({"image": images, "objects": objects})
        features = {"image": {"_type": "Image"},
                    "objects": {"feature": {"bbox": {"feature": {"dtype": "float32", "_type": "Value"},
                                                     "length": 4, "_type": "Sequence"},
                                            "category": {"names": NAMES, "_type": "ClassLabel"}},
                                "_type": "Sequence"}}
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
        path = tmp_path / f"det-{fmt}.parquet"
        pq.write_table(table, path, row_group_size=5)
        out = tmp_path / f"out-{fmt}"
        extra = ("--bbox-format", "xyxy") if fmt == "xyxy" else ()
        rows = _bake(path, out, "--none", "1", "--mixup", "0", "--cutmix", "1", "--rotate", "10", *extra)
        assert manifest_of(out)["classes"] == NAMES and len(rows) == 12
        for r in rows:
            _check_row(r)
        cli("verify", out, "--deep", code=0)
        shard = sorted(glob.glob(str(out / "data" / "*.parquet")))[0]
        hf = json.loads(pq.read_schema(shard).metadata[b"huggingface"])["info"]["features"]["objects"]
        assert hf[0]["category"] == {"names": NAMES, "_type": "ClassLabel"}
    assert decoded_rows(tmp_path / "out-xywh")[0]["objects"] == decoded_rows(tmp_path / "out-xyxy")[0]["objects"]


def test_deterministic_across_workers_and_deep_verify_rederives_every_box(coco, tmp_path):
    src, ann, _ = coco
    args = ("--annotations", ann, "--size", SIZE, "--image-format", "png", "--copies", "2", "--cutout", "0.5",
            "--hflip", "0.5", "--rotate", "20", "-q")
    cli("bake", src, tmp_path / "one", *args, "--workers", "1", code=0)
    cli("bake", src, tmp_path / "two", *args, "--workers", "2", code=0)
    for name in ("labels.parquet",):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    one = sorted(glob.glob(str(tmp_path / "one" / "data" / "*")))
    assert [Path(p).read_bytes() for p in one] == [Path(p).read_bytes() for p in
                                                   sorted(glob.glob(str(tmp_path / "two" / "data" / "*")))]
    out = tmp_path / "one"
    doc = manifest_of(out)
    assert doc["boxes"] is True and doc["label_kind"] == "multi" and doc["format_version"] >= 2
    # move one box by 3 px in labels.parquet and re-sign it: only the re-derivation can tell
    objects = pq.read_table(out / "labels.parquet").column("objects").to_pylist()
    row = next(i for i, o in enumerate(objects) if o)
    objects[row][0]["bbox"][0] += 3.0
    set_cell(out / "labels.parquet", "objects", row, objects[row])
    patch_manifest_entry(out, "labels.parquet")
    result = cli("verify", out, "--deep")
    assert result.exit_code != 0 and "bbox differs from the one the recorded geometry gives" in result.output


def test_webdataset_json_carries_the_objects(coco, tmp_path):
    src, ann, _ = coco
    out = tmp_path / "wds"
    cli("bake", src, out, "--annotations", ann, "--size", SIZE, "--format", "webdataset", "-q", code=0)
    labels = {r["key"]: r["objects"] for r in pq.read_table(out / "labels.parquet").to_pylist()}
    seen = 0
    for tar in glob.glob(str(out / "*.tar")):
        with tarfile.open(tar) as t:
            for m in t.getmembers():
                if m.name.endswith(".json"):
                    doc = json.loads(t.extractfile(m).read())
                    assert doc["objects"] == labels[doc["key"]]
                    seen += 1
    assert seen == 16


def test_folder_format_writes_coco_annotations_of_the_rows(coco, tmp_path):
    src, ann, _ = coco
    out = tmp_path / "folder"
    cli("bake", src, out, "--annotations", ann, "--size", SIZE, "--format", "folder", "--image-format", "png",
        "--copies", "2", "--rotate", "15", "-q", code=0)
    doc = json.loads((out / "annotations.json").read_text())
    rows = pq.read_table(out / "labels.parquet").to_pylist()
    assert [i["file_name"] for i in doc["images"]] == [r["path"] for r in rows]
    by_image = {}
    for a in doc["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    assert min(a["id"] for a in doc["annotations"]) == 1 and doc["images"][0]["id"] == 1
    for i, r in enumerate(rows):
        got = by_image.get(i + 1, [])
        assert [a["category_id"] - 1 for a in got] == [o["category"] for o in r["objects"]]
        assert np.allclose([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                            for a in got] or np.zeros((0, 4)), [o["bbox"] for o in r["objects"]] or np.zeros((0, 4)),
                           atol=1e-4)
        if r["op"] != "mixup":  # (a blend's colours are no object's)
            _check_row({**r, "pixels": np.asarray(Image.open(out / r["path"]).convert("RGB"))})
    assert [c["name"] for c in doc["categories"]] == NAMES
    cli("verify", out, "--deep", code=0)


def test_yolo_format_round_trips_through_the_yolo_reader(coco, tmp_path):
    """--format yolo writes what the YOLO layout source reads: baking the output again with
    --none 1 gives back the first bake's boxes (within the 6 decimals of a label line)."""
    src, ann, _ = coco
    out = tmp_path / "yolo"
    cli("bake", src, out, "--annotations", ann, "--size", SIZE, "--format", "yolo", "--image-format", "png",
        "--mosaic", "0.5", "--hflip", "0.5", "-q", code=0)
    names = (out / "data.yaml").read_text()
    assert "nc: 3" in names and "0: red" in names and "2: blue" in names
    rows = {r["key"]: r for r in pq.read_table(out / "labels.parquet").to_pylist()}
    for key, r in rows.items():
        lines = (out / "labels" / f"{key}.txt").read_text().split("\n")[:-1]
        assert len(lines) == len(r["objects"])
        for line, obj in zip(lines, r["objects"]):
            c, cx, cy, w, h = line.split()
            x0, y0, x1, y1 = obj["bbox"]
            assert int(c) == obj["category"]
            assert np.allclose([float(cx) * SIZE, float(cy) * SIZE, float(w) * SIZE, float(h) * SIZE],
                               [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], atol=1e-3)
    cli("verify", out, "--deep", code=0)
    (out / "labels" / f"{next(iter(rows))}.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    assert cli("verify", out).exit_code != 0
    again = tmp_path / "again"
    cli("bake", out, again, "--size", SIZE, "--image-format", "png", "--none", "1", "--mixup", "0", "--cutmix", "0",
        "-q", code=0)
    assert manifest_of(again)["classes"] == NAMES
    result = cli("bake", make_folder(tmp_path / "classes", per_class=3), tmp_path / "noboxes", "--format", "yolo", "-q")
    assert result.exit_code != 0 and "--format yolo writes detection labels" in result.output


def test_inspect_counts_boxes_and_preview_draws_them(coco, tmp_path):
    from mixbake.report import inspect
    src, ann, doc = coco
    out = tmp_path / "out"
    rows = _bake(src, out, "--annotations", ann, "--cutout", "1", "--cutout-size", "0.7", "--copies", "2")
    info = inspect(out)["boxes"]
    assert info["boxes"] == sum(len(r["objects"]) for r in rows)
    assert info["dropped"] == sum(r["objects_dropped"] for r in rows) > 0
    assert [c["boxes"] for c in info["categories"]] == [sum(o["category"] == c for r in rows for o in r["objects"])
                                                        for c in range(3)]
    text = cli("inspect", out, code=0).output
    assert "boxes" in text and "dropped" in text
    listed = len(doc["annotations"])
    planned = cli("plan", src, "--annotations", ann, code=0).output
    assert f"boxes      {listed:,} (" in planned
    sheet = tmp_path / "sheet.png"
    cli("preview", out, "-o", sheet, "-n", "4", code=0)
    plain = tmp_path / "plain.png"
    cli("preview", out, "-o", plain, "-n", "4", "--no-boxes", code=0)
    assert np.any(np.asarray(Image.open(sheet)) != np.asarray(Image.open(plain)))


def test_datasets_loads_the_objects_with_their_category_names(coco, tmp_path):
    datasets = pytest.importorskip("datasets")
    src, ann, _ = coco
    out = tmp_path / "out"
    rows = _bake(src, out, "--annotations", ann, "--copies", "2")
    loaded = datasets.load_dataset(str(out), split="train")
    feature = loaded.features["objects"]
    inner = feature.feature if hasattr(feature, "feature") else feature[0]
    assert inner["category"].names == NAMES
    by_key = {r["key"]: r["objects"] for r in rows}
    for row in loaded.select(range(6)):
        want = by_key[row["key"]]
        assert [o["category"] for o in row["objects"]] == [o["category"] for o in want]
        assert np.allclose([o["bbox"] for o in row["objects"]] or np.zeros((0, 4)),
                           [o["bbox"] for o in want] or np.zeros((0, 4)))


@pytest.mark.parametrize("fmt", ["parquet", "yolo"])
def test_a_detection_build_stopped_before_its_manifest_resumes_to_the_same_bytes(coco, tmp_path, monkeypatch, fmt):
    """Every shard written, one of them damaged after (its tail zeroed, as a power loss can leave it),
    the manifest never written: the re-run keeps the sound shards, bakes the damaged one again, and
    ends with the bytes of an uninterrupted build."""
    import mixbake.run
    from helpers import all_files, assert_same_tree
    src, ann, _ = coco
    args = ("--annotations", ann, "--size", SIZE, "--image-format", "png", "--format", fmt, "--copies", "3",
            "--shard-size", "12", "--pool-size", "8", "--mosaic", "0.3", "--rotate", "10", "-q", "--workers", "2")
    cli("bake", src, tmp_path / "ref", *args, code=0)
    out = tmp_path / "out"

    def crash(*a, **k):
        raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(mixbake.run, "write_manifest", crash)
        assert cli("bake", src, out, *args).exit_code == 130
    assert not (out / "manifest.json").exists()
    shards = sorted(p for p in out.rglob("*") if p.is_file() and ".mixbake" not in p.parts
                    and (p.suffix == ".parquet" or p.suffix == ".txt") and p.name != "labels.parquet")
    assert len(shards) >= 3
    data = bytearray(shards[0].read_bytes())
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)
    shards[0].write_bytes(bytes(data))
    result = cli("bake", src, out, *args, code=0)
    assert result.output.startswith("Resumed")
    assert_same_tree(all_files(out), all_files(tmp_path / "ref"))
    cli("verify", out, "--deep", code=0)


def test_boxes_and_masks_of_one_source_agree(coco, tmp_path):
    """COCO boxes with a --masks tree (each object's pixels its category + 1, background 0): after
    rotation, flips, crops and mosaic, every mask pixel of an object lies in a box of its category."""
    src, ann, doc = coco
    masks = tmp_path / "masks"
    (masks / "imgs").mkdir(parents=True)
    by_image = {}
    for a in doc["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    for image in doc["images"]:
        mask = np.zeros((image["height"], image["width"]), np.uint8)
        for a in by_image.get(image["id"], []):
            x, y, w, h = a["bbox"]
            mask[y:y + h, x:x + w] = a["category_id"] - 10 + 1
        Image.fromarray(mask, "L").save(masks / image["file_name"].replace(".png", ".png"))
    out = tmp_path / "out"
    rows = _bake(src, out, "--annotations", ann, "--masks", masks, "--mosaic", "0.5", "--rotate", "20",
                 "--hflip", "0.5", "--resize", "random-crop", "--crop-scale", "0.4", "1", "--copies", "3",
                 "--mask-cutout", "keep", "--min-visibility", "0")
    checked = 0
    for r in rows:
        if r["op"] == "mixup":
            continue
        mask = r["mask"]
        for c in range(3):
            boxed = np.zeros(mask.shape, bool)
            for obj in r["objects"]:
                if obj["category"] == c:
                    x0, y0, x1, y1 = obj["bbox"]
                    boxed[max(0, int(y0 - 1)):int(np.ceil(y1 + 1)), max(0, int(x0 - 1)):int(np.ceil(x1 + 1))] = True
            outside = (mask == c + 1) & ~boxed
            assert outside.sum() == 0, (r["key"], r["op"], c, int(outside.sum()))
            checked += int((mask == c + 1).sum())
    assert checked > 1000
    cli("verify", out, "--deep", code=0)


def test_what_the_audit_found_is_said_or_read_right(coco, tmp_path):
    """String categories are names, a null category is a bad item, ids and names that repeat are
    refused, quoted YOLO names keep their commas, and --annotations is recorded where it is."""
    src, ann, doc = coco
    scenes = _scenes(6, seed=4)
    images = [{"bytes": _png(img), "path": f"{i}.png"} for i, (img, _) in enumerate(scenes)]
    objects = [{"bbox": [[x, y, w, h] for x, y, w, h, _ in objs], "category": [NAMES[c] for *_, c in objs]}
               for _, objs in scenes]
    objects[2]["category"][0] = None
    pq.write_table(pa.table({"image": images, "objects": objects}), tmp_path / "names.parquet")
    out = tmp_path / "names"
    cli("bake", tmp_path / "names.parquet", out, "--size", SIZE, "--on-error", "skip", "-q", code=0)
    assert manifest_of(out)["classes"] == sorted(NAMES)
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert errors == [{"ref": "names.parquet#2", "reason": "objects: category 0 is null"}]
    want = {i: sorted(sorted(NAMES).index(NAMES[c]) for *_, c in objs) for i, (_, objs) in enumerate(scenes)}
    for r in pq.read_table(out / "labels.parquet").to_pylist():
        if r["op"] == "none":
            assert sorted(o["category"] for o in r["objects"]) == want[r["src_a"]]

    twice = json.loads(json.dumps(doc))
    twice["images"][1]["id"] = twice["images"][0]["id"]
    (tmp_path / "twice.json").write_text(json.dumps(twice))
    result = cli("bake", src, tmp_path / "t", "--annotations", tmp_path / "twice.json", "-q")
    assert result.exit_code != 0 and "is given to two images" in result.output
    same = json.loads(json.dumps(doc))
    same["categories"][1]["name"] = same["categories"][0]["name"]
    (tmp_path / "same.json").write_text(json.dumps(same))
    result = cli("bake", src, tmp_path / "s", "--annotations", tmp_path / "same.json", "-q")
    assert result.exit_code != 0 and "class names must be distinct" in result.output

    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "data.yaml").write_text("names: ['red, dark', \"green\", blue]\n")
    for i, (img, objs) in enumerate(scenes[:3]):
        (root / "images" / f"{i}.png").write_bytes(_png(img))
        h, w = img.shape[:2]
        (root / "labels" / f"{i}.txt").write_text("".join(f"{c} {(x + bw / 2) / w} {(y + bh / 2) / h} {bw / w} {bh / h}\n"
                                                          for x, y, bw, bh, c in objs))
    cli("bake", root, tmp_path / "y", "--size", SIZE, "-q", code=0)
    assert manifest_of(tmp_path / "y")["classes"] == ["red, dark", "green", "blue"]

    cli("bake", src, tmp_path / "rel", "--annotations", ann, "--size", SIZE, "-q", code=0)
    assert manifest_of(tmp_path / "rel")["source"]["options"]["annotations"] == str(ann.resolve())
