"""Mosaic: four sources in a 2x2 layout around a random centre, checked on pixels (each source a
solid colour of its own, so every cell shows whose it is), on labels (the sources' sets weighted by
their cells' areas), on masks and on detection boxes (moved into their cells)."""
from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from helpers import cli, decoded_rows, make_folder, manifest_of, patch_manifest_entry, set_cell

SIZE = 48
NAMES = ("bird", "cat", "dog")


def _colour(i: int):
    return (20 + 37 * i % 230, 200 - 23 * i % 180, 60 + 51 * i % 190)


@pytest.fixture
def tagged(tmp_path):
    """24 solid images (item i: _colour(i)) with sets of 3 classes in metadata.csv, and a mask
    each (constant: i % 7)."""
    root, masks = tmp_path / "src", tmp_path / "masks"
    (root / "imgs").mkdir(parents=True)
    (masks / "imgs").mkdir(parents=True)
    rng = np.random.default_rng(2)
    lines, sets = ["file_name,labels"], {}
    for i in range(24):
        w, h = (64, 40) if i % 2 else (40, 56)
        Image.fromarray(np.full((h, w, 3), _colour(i), np.uint8)).save(root / "imgs" / f"{i:02d}.png")
        Image.fromarray(np.full((h, w), i % 7, np.uint8), "L").save(masks / "imgs" / f"{i:02d}.png")
        chosen = [n for n in NAMES if rng.random() < 0.5] or ["cat"]
        sets[f"imgs/{i:02d}.png"] = sorted(NAMES.index(n) for n in chosen)
        lines.append(f"imgs/{i:02d}.png,{';'.join(chosen)}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root, masks, sets


def test_cells_tile_the_image_and_show_their_sources(tagged, tmp_path):
    root, _, sets = tagged
    out = tmp_path / "out"
    cli("bake", root, out, "--size", SIZE, "--image-format", "png", "--mosaic", "1", "--mixup", "0", "--cutmix", "0",
        "--mosaic-center", "0.3", "0.7", "--copies", "3", "-q", code=0)
    rows = decoded_rows(out)
    assert len(rows) == 72 and {r["op"] for r in rows} == {"mosaic"}
    labels = {r["src_a"]: r for r in rows}
    refs = {}
    for r in pq.read_table(out / "labels.parquet").to_pylist():
        refs.update({r["src_a"]: r["ref_a"]})
    centres = []
    for r in rows:
        cells = np.array(r["boxes"])
        assert cells.shape == (4, 4)
        cx, cy = cells[0, 2], cells[0, 3]
        centres.append((cx, cy))
        assert 0.3 * SIZE - 1 <= cx <= 0.7 * SIZE + 1 and 0.3 * SIZE - 1 <= cy <= 0.7 * SIZE + 1
        assert cells.tolist() == [[0, 0, cx, cy], [cx, 0, SIZE, cy], [0, cy, cx, SIZE], [cx, cy, SIZE, SIZE]]
        assert np.isclose(r["lam"], cx * cy / SIZE ** 2, atol=1e-6)
        assert len(r["srcs"]) == 4 and r["srcs"][:2] == [r["src_a"], r["src_b"]]
        assert r["src_a"] not in r["srcs"][1:]
        for (x0, y0, x1, y1), item in zip(cells, r["srcs"]):
            cell = r["pixels"][y0:y1, x0:x1].reshape(-1, 3).astype(int)
            assert np.abs(cell - np.array(_colour(int(item)))).max() <= 1, (r["key"], item)
        # the soft label: each source's set, weighted by its cell's share (capped at 1)
        shares = [(x1 - x0) * (y1 - y0) / SIZE ** 2 for x0, y0, x1, y1 in cells]
        want = np.zeros(len(NAMES))
        for share, classes in zip(shares, r["srcs_labels"]):
            want[classes] += share
        assert np.allclose(r["soft_label"], np.minimum(want, 1), atol=1e-6)
        assert r["srcs_labels"] == [sets[refs[i]] for i in r["srcs"]] if all(i in refs for i in r["srcs"]) else True
    assert len(set(centres)) > 20
    cli("verify", out, "--deep", code=0)
    assert labels


def test_masks_follow_their_sources_into_the_cells(tagged, tmp_path):
    root, masks, _ = tagged
    out = tmp_path / "out"
    cli("bake", root, out, "--size", SIZE, "--image-format", "png", "--masks", masks, "--mosaic", "1", "--mixup", "1",
        "--cutmix", "0", "-q", code=0)
    rows = decoded_rows(out)
    assert {"mosaic", "mixup"} <= {r["op"] for r in rows}
    for r in rows:
        if r["op"] != "mosaic":
            continue
        for (x0, y0, x1, y1), item in zip(r["boxes"], r["srcs"]):
            assert np.all(r["mask"][y0:y1, x0:x1] == item % 7), r["key"]
        assert r["mask_b"] is None


def test_detection_boxes_move_into_their_cells(tmp_path):
    from test_detection import COLOURS, _colour_mask, _extent, _png, _scenes
    src = tmp_path / "src"
    (src / "imgs").mkdir(parents=True)
    images, anns = [], []
    for i, (img, objs) in enumerate(_scenes(16, seed=12)):
        (src / "imgs" / f"{i:02d}.png").write_bytes(_png(img))
        images.append({"id": i, "file_name": f"imgs/{i:02d}.png"})
        anns += [{"id": len(anns), "image_id": i, "bbox": [x, y, w, h], "category_id": c} for x, y, w, h, c in objs]
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns,
                               "categories": [{"id": c, "name": n} for c, n in enumerate(["red", "green", "blue"])]}))
    out = tmp_path / "out"
    cli("bake", src, out, "--annotations", ann, "--size", 96, "--image-format", "png", "--mosaic", "1", "--mixup", "0",
        "--cutmix", "0", "--copies", "3", "--min-visibility", "0.3", "-q", code=0)
    rows = decoded_rows(out)
    seen_sources = set()
    for r in rows:
        for obj in r["objects"]:
            x0, y0, x1, y1 = obj["bbox"]
            cx0, cy0, cx1, cy1 = r["boxes"][obj["source"]]
            assert cx0 - 1e-3 <= x0 < x1 <= cx1 + 1e-3 and cy0 - 1e-3 <= y0 < y1 <= cy1 + 1e-3, (r["key"], obj)
            assert obj["weight"] == 1.0
            seen_sources.add(obj["source"])
            region = np.zeros((96, 96), bool)
            region[max(cy0, int(y0) - 2):min(cy1, int(np.ceil(y1)) + 2), max(cx0, int(x0) - 2):min(cx1, int(np.ceil(x1)) + 2)] = True
            found = _extent(_colour_mask(r["pixels"], obj["category"]) & region)
            assert found is not None, (r["key"], obj)
            fx0, fy0, fx1, fy1 = found
            assert fx0 >= x0 - 1.5 and fy0 >= y0 - 1.5 and fx1 <= x1 + 1.5 and fy1 <= y1 + 1.5, (r["key"], obj, found)
            inside = x0 > cx0 + 1 and y0 > cy0 + 1 and x1 < cx1 - 1 and y1 < cy1 - 1
            if inside:
                assert max(abs(fx0 - x0), abs(fy0 - y0), abs(fx1 - x1), abs(fy1 - y1)) <= 1.5, (r["key"], obj, found)
        for c in range(len(COLOURS)):  # every visible object of a cell is boxed, or a box was dropped
            pure = _colour_mask(r["pixels"], c, tolerance=25)
            boxed = np.zeros_like(pure)
            for obj in r["objects"]:
                if obj["category"] == c:
                    x0, y0, x1, y1 = obj["bbox"]
                    boxed[max(0, int(y0 - 1.5)):int(np.ceil(y1 + 1.5)), max(0, int(x0 - 1.5)):int(np.ceil(x1 + 1.5))] = True
            if (pure & ~boxed).sum() > 2:
                assert r["objects_dropped"] > 0, (r["key"], c)
    assert seen_sources == {0, 1, 2, 3}
    cli("verify", out, "--deep", code=0)
    assert "mosaic" in cli("inspect", out, code=0).output


def test_mosaic_is_deterministic_and_off_by_default(tagged, tmp_path):
    root, _, _ = tagged
    args = ("--size", SIZE, "--image-format", "png", "--mosaic", "0.5", "--copies", "2", "-q")
    cli("bake", root, tmp_path / "one", *args, "--workers", "1", code=0)
    cli("bake", root, tmp_path / "two", *args, "--workers", "2", code=0)
    for name in ["labels.parquet"] + [str(Path(p).relative_to(tmp_path / "one"))
                                      for p in glob.glob(str(tmp_path / "one" / "data" / "*"))]:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert manifest_of(tmp_path / "one")["config"]["mosaic"] == 0.5
    cli("bake", root, tmp_path / "off", "--size", SIZE, "-q", code=0)
    off = manifest_of(tmp_path / "off")
    assert "mosaic" not in off["config"] and "mosaic" not in off["totals"]["ops"]
    assert "srcs" not in pq.read_schema(tmp_path / "off" / "labels.parquet").names


@pytest.mark.parametrize("form", ["dense", "both"])
def test_one_class_sources_weigh_four_classes_by_their_cells(tmp_path, form):
    src = make_folder(tmp_path / "classes", classes=("a", "b", "c"), per_class=6,
                      picture=lambda c, i, rng: np.full((40, 56, 3), _colour(6 * c + i), np.uint8))
    out = tmp_path / "out"
    cli("bake", src, out, "--size", SIZE, "--image-format", "png", "--mosaic", "1", "--mixup", "1", "--cutmix", "0",
        "--copies", "2", "--label-smoothing", "0.1", "--soft-label", form, "-q", code=0)
    rows = decoded_rows(out)
    mosaics = [r for r in rows if r["op"] == "mosaic"]
    assert mosaics and any(r["op"] == "mixup" for r in rows)
    for r in rows:
        if r["op"] != "mosaic":
            assert r["srcs"] is None and r["srcs_labels"] is None
            continue
        want = np.zeros(3)
        for (x0, y0, x1, y1), item, classes in zip(r["boxes"], r["srcs"], r["srcs_labels"]):
            assert classes == [int(item) // 6]  # make_folder lists the classes' items in order
            want[classes[0]] += (x1 - x0) * (y1 - y0) / SIZE ** 2
            cell = r["pixels"][y0:y1, x0:x1].reshape(-1, 3).astype(int)
            assert np.abs(cell - np.array(_colour(int(item)))).max() <= 1
        assert np.allclose(r["soft_label"], want * 0.9 + 0.1 / 3, atol=1e-6)
        if form == "both":
            dense = np.zeros(3)
            dense[r["soft_index"]] = r["soft_value"]
            assert np.allclose(dense, want, atol=1e-6) and r["soft_index"] == sorted(r["soft_index"])
        assert r["label"] == int(np.argmax(r["soft_label"]))
        assert r["label_a"] == r["srcs_labels"][0][0] and r["label_b"] == r["srcs_labels"][1][0]
    cli("verify", out, "--deep", code=0)


def test_verify_holds_a_mosaic_row_to_its_cells(tmp_path):
    src = make_folder(tmp_path / "classes", classes=("a", "b", "c"), per_class=6)
    out = tmp_path / "out"
    cli("bake", src, out, "--size", SIZE, "--mosaic", "1", "--mixup", "0", "--cutmix", "0", "-q", code=0)
    soft = pq.read_table(out / "labels.parquet").column("soft_label").to_pylist()
    row = next(i for i, s in enumerate(soft) if max(s) < 0.99)
    set_cell(out / "labels.parquet", "soft_label", row, soft[row][1:] + soft[row][:1])  # the values, on other classes
    patch_manifest_entry(out, "labels.parquet")
    result = cli("verify", out)
    assert result.exit_code != 0 and "four sources' classes weighted by their cells" in result.output
