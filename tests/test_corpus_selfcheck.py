"""Checks that the test corpus (tests/corpus.py) really is what its Cases claim."""

import io
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageOps, UnidentifiedImageError

try:
    from corpus import (BOMB_SIZE, HF_METADATA, by_kind, gray16_to_8, make_bad_parquet,
                        make_tricky_folder, quadrant_means, reference_rgb, white_composite)
except ImportError:  # tests/ made into a package
    from .corpus import (BOMB_SIZE, HF_METADATA, by_kind, gray16_to_8, make_bad_parquet,
                         make_tricky_folder, quadrant_means, reference_rgb, white_composite)

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
SHARED_KINDS = {"plain", "good_row", "binary_col_row", "large_types_row"}
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    return root, make_tricky_folder(root)


@pytest.fixture(scope="module")
def pq_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("parquet")
    return d, make_bad_parquet(d)


def _path(root: Path, case) -> Path:
    return root / case.relpath


def _row(d: Path, case) -> dict:
    name, row = case.relpath.split("#")
    return pq.read_table(d / name).slice(int(row), 1).to_pylist()[0]


# ----------------------------------------------------------------------------- generic


def test_builds_fast_and_small(tmp_path):
    make_tricky_folder(tmp_path / "warm")  # first call pays Pillow's plugin imports
    t0 = time.perf_counter()
    make_tricky_folder(tmp_path / "f")
    make_bad_parquet(tmp_path / "p")
    assert time.perf_counter() - t0 < 1.0
    size = sum(p.lstat().st_size for p in (tmp_path / "f").rglob("*")) + sum(
        p.stat().st_size for p in (tmp_path / "p").iterdir()
    )
    assert size < 512 * 1024


@pytest.mark.parametrize("which", ["folder", "pq_dir"])
def test_case_records_are_consistent(which, request):
    _, cases = request.getfixturevalue(which)
    assert len({c.relpath for c in cases}) == len(cases)
    kinds = [c.kind for c in cases]
    for k in set(kinds) - SHARED_KINDS:
        assert kinds.count(k) == 1, k
    for c in cases:
        assert c.note.strip()
        hash(c)  # Cases stay hashable despite the array field
        if c.bad:
            assert c.expected_rgb is None, c.kind
        if c.expected_rgb is not None:
            e = c.expected_rgb
            assert e.dtype == np.uint8 and e.ndim == 3 and e.shape[2] == 3 and not e.flags.writeable
            assert max(e.shape[:2]) <= 64


def test_folder_layout(folder):
    root, cases = folder
    assert sorted(p.name for p in root.iterdir()) == ["a", "b", "c"]
    assert list((root / "c").iterdir()) == []
    by_path = {c.relpath for c in cases}
    on_disk = {os.fsdecode(os.path.relpath(os.fsencode(p), os.fsencode(root))) for p in root.glob("*/*")}
    assert on_disk == by_path - {"c/"}  # every file is announced, every case exists
    for cls in ("a", "b"):
        good = [c for c in cases if c.relpath.startswith(cls + "/") and not c.bad and c.kind != "ignored"]
        assert len(good) >= 5


# ----------------------------------------------------------------------------- decoding rules


def test_rule_helpers_match_float_formulas():
    v = np.arange(65536)
    assert np.array_equal(gray16_to_8(v), np.round(v / 257).astype(np.uint8))
    assert np.all(np.abs(v / 257 - np.floor(v / 257) - 0.5) > 1e-9)  # no ties
    a, c = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    ref = np.round(a / 255 * c + (1 - a / 255) * 255).astype(np.uint8)
    assert np.array_equal(white_composite(c, a), ref)


def test_good_folder_cases_decode_to_expected(folder):
    root, cases = folder
    checked = 0
    for c in cases:
        if c.expected_rgb is None:
            continue
        got = reference_rgb(_path(root, c))
        assert got.shape == c.expected_rgb.shape, c.kind
        assert np.array_equal(got, c.expected_rgb), c.kind
        checked += 1
    assert checked >= 20


def test_good_cases_without_exact_expectation_open(folder):
    root, cases = folder
    for c in cases:
        if not c.bad and c.expected_rgb is None and c.kind not in ("ignored", "empty_class"):
            with Image.open(_path(root, c)) as im:
                im.load()
    for c in cases:
        if c.kind == "plain" and c.relpath.endswith(".jpg"):
            got = reference_rgb(_path(root, c)).astype(int)
            col = (40, 160, 40) if c.relpath.startswith("a/") else (160, 40, 160)
            assert np.abs(got - col).max() <= 4


def test_exif_cases(folder):
    root, cases = folder
    for kind, orient in [("exif_rot6_png", 6), ("exif_rot3_png", 3), ("exif_rot5_png", 5),
                         ("exif_rot6_jpeg", 6), ("exif_rot3_jpeg", 3)]:
        with Image.open(_path(root, by_kind(cases, kind))) as im:
            assert im.getexif().get(0x0112) == orient
            assert im.size == ((40, 24) if "png" in kind else (48, 32))  # stored, unrotated
    # lossy JPEGs: shape and quadrant colours after orientation, as the notes say
    q6 = quadrant_means(reference_rgb(_path(root, by_kind(cases, "exif_rot6_jpeg"))))
    q3 = quadrant_means(reference_rgb(_path(root, by_kind(cases, "exif_rot3_jpeg"))))
    assert reference_rgb(_path(root, by_kind(cases, "exif_rot6_jpeg"))).shape == (48, 32, 3)
    assert np.abs(q6 - np.array([[BLUE, RED], [WHITE, GREEN]])).max() < 8
    assert np.abs(q3 - np.array([[WHITE, BLUE], [GREEN, RED]])).max() < 8
    # the trap is real: simplejpeg ignores EXIF orientation
    simplejpeg = pytest.importorskip("simplejpeg")
    raw = _path(root, by_kind(cases, "exif_rot6_jpeg")).read_bytes()
    assert simplejpeg.decode_jpeg(raw).shape == (32, 48, 3)


def test_gray16_png(folder):
    root, cases = folder
    data = _path(root, by_kind(cases, "gray16_png")).read_bytes()
    bit_depth, colour_type = data[24], data[25]
    assert (bit_depth, colour_type) == (16, 0)
    with Image.open(io.BytesIO(data)) as im:
        v = np.asarray(im)
        assert im.mode in ("I;16", "I") and v.min() == 0 and v.max() == 65535
        clipped = np.asarray(im.convert("RGB"))
    # the trap is real: Pillow's convert clips instead of scaling
    assert not np.array_equal(clipped, by_kind(cases, "gray16_png").expected_rgb)


def test_alpha_traps_are_real(folder):
    root, cases = folder
    for kind in ("rgba_png", "la_png", "p_transparency_png"):
        c = by_kind(cases, kind)
        with Image.open(_path(root, c)) as im:
            dropped = np.asarray(im.convert("RGBA"))[..., :3]
            if im.mode == "LA":
                dropped = np.repeat(np.asarray(im)[..., :1], 3, axis=2)
        assert not np.array_equal(dropped, c.expected_rgb), kind
    rgba = by_kind(cases, "rgba_png").expected_rgb
    assert (rgba[3] == 255).all()  # transparent pure red -> white
    with Image.open(_path(root, by_kind(cases, "p_transparency_png"))) as im:
        assert im.mode == "P" and isinstance(im.info["transparency"], bytes)


def test_cmyk_jpeg(folder):
    root, cases = folder
    with Image.open(_path(root, by_kind(cases, "cmyk_jpeg"))) as im:
        assert im.mode == "CMYK" and im.size == (32, 16)
    got = reference_rgb(_path(root, by_kind(cases, "cmyk_jpeg"))).astype(int)
    assert np.abs(got[:, :16] - RED).max() <= 4 and np.abs(got[:, 16:] - BLUE).max() <= 4


def test_animated_gif_has_three_frames(folder):
    root, cases = folder
    with Image.open(_path(root, by_kind(cases, "animated_gif"))) as im:
        assert getattr(im, "n_frames", 1) == 3 and im.is_animated
        colours = []
        for i in range(3):
            im.seek(i)
            colours.append(tuple(np.asarray(im.convert("RGB"))[0, -1]))
    assert colours == [(10, 20, 30), GREEN, BLUE]


def test_formats_and_names(folder):
    root, cases = folder
    expect = {"bmp": "BMP", "tiff": "TIFF", "webp_lossless": "WEBP", "png_as_jpg": "PNG",
              "upper_ext": "PNG", "unicode_name": "PNG", "mode1_png": "PNG", "one_pixel": "PNG"}
    for kind, fmt in expect.items():
        with Image.open(_path(root, by_kind(cases, kind))) as im:
            assert im.format == fmt, kind
    with Image.open(_path(root, by_kind(cases, "mode1_png"))) as im:
        assert im.mode == "1"
    with Image.open(_path(root, by_kind(cases, "webp_lossless"))) as im:
        assert im.info.get("lossless", True)
    c = by_kind(cases, "non_utf8_name")
    assert os.fsencode(c.relpath) == b"a/bad\xffname.png"
    with pytest.raises(UnicodeEncodeError):
        c.relpath.encode("utf-8")
    assert (root / "b" / "köln_猫.png").is_file()


def test_ignored_and_empty_class(folder):
    root, cases = folder
    with pytest.raises(UnidentifiedImageError):
        Image.open(_path(root, by_kind(cases, "ignored")))
    assert by_kind(cases, "empty_class").relpath == "c/"


# ----------------------------------------------------------------------------- broken files


def test_unidentifiable_files(folder):
    root, cases = folder
    for kind in ("zero_byte", "text_as_jpg"):
        with pytest.raises(UnidentifiedImageError):
            Image.open(_path(root, by_kind(cases, kind)))


def test_truncated_and_corrupt_open_but_fail_to_load(folder):
    root, cases = folder
    for kind in ("truncated_jpeg", "truncated_png", "png_corrupt_idat"):
        with Image.open(_path(root, by_kind(cases, kind))) as im:
            with pytest.raises(OSError):
                im.load()
    simplejpeg = pytest.importorskip("simplejpeg")
    with pytest.raises(ValueError):
        simplejpeg.decode_jpeg(_path(root, by_kind(cases, "truncated_jpeg")).read_bytes())


def _crc_errors(data: bytes) -> list:
    bad, i = [], 8
    while i + 8 <= len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        ctype, body = data[i + 4:i + 8], data[i + 8:i + 8 + n]
        if struct.unpack(">I", data[i + 8 + n:i + 12 + n])[0] != zlib.crc32(ctype + body):
            bad.append(ctype)
        i += 12 + n
    return bad


def test_png_crc_cases(folder):
    root, cases = folder
    data = _path(root, by_kind(cases, "png_bad_idat_crc")).read_bytes()
    assert _crc_errors(data) == [b"IDAT"]
    with Image.open(io.BytesIO(data)) as im:  # documented: Pillow does not check IDAT CRCs
        im.load()
    cv2 = pytest.importorskip("cv2")
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is None
    # the body-corrupt one has consistent CRCs: its failure comes from the zlib body alone
    assert _crc_errors(_path(root, by_kind(cases, "png_corrupt_idat")).read_bytes()) == []


def test_decompression_bomb(folder):
    root, cases = folder
    p = _path(root, by_kind(cases, "decompression_bomb"))
    data = p.read_bytes()
    assert len(data) < 100 * 1024
    assert _crc_errors(data) == []
    w, h, depth, ctype = struct.unpack(">IIBB", data[16:26])
    assert (w, h) == BOMB_SIZE and (depth, ctype) == (1, 0)
    assert Image.MAX_IMAGE_PIXELS is not None
    with pytest.raises(Image.DecompressionBombError):
        Image.open(p)
    # the IDAT really is a complete, valid all-zero image (checked in bounded memory)
    (n,) = struct.unpack(">I", data[33:37])
    assert data[37:41] == b"IDAT"
    d = zlib.decompressobj()
    buf, total, zeros = data[41:41 + n], 0, bytes(1 << 22)
    while buf:
        out = d.decompress(buf, 1 << 22)
        assert out == zeros[:len(out)]
        total += len(out)
        buf = d.unconsumed_tail
    assert d.eof and total == h * (1 + (w + 7) // 8)


def test_unreadable_and_dangling(folder):
    root, cases = folder
    c = by_kind(cases, "unreadable")
    assert (os.stat(_path(root, c)).st_mode & 0o777) == 0
    assert c.bad == (not IS_ROOT)
    if IS_ROOT:
        assert np.array_equal(reference_rgb(_path(root, c)), c.expected_rgb)
    else:
        with pytest.raises(PermissionError):
            open(_path(root, c), "rb")
    link = _path(root, by_kind(cases, "dangling_symlink"))
    assert os.path.islink(link) and not os.path.exists(link)


# ----------------------------------------------------------------------------- parquet


def test_parquet_files_present(pq_dir):
    d, _ = pq_dir
    assert sorted(p.name for p in d.iterdir()) == [
        "binary_col.parquet", "corrupt.parquet", "empty.parquet", "garbage.parquet",
        "large_types.parquet", "nulls.parquet", "wrongtypes.parquet"]


def test_nulls_parquet(pq_dir):
    d, cases = pq_dir
    f = pq.ParquetFile(d / "nulls.parquet")
    assert f.metadata.num_rows == 9 and f.metadata.num_row_groups == 3
    schema = f.schema_arrow
    assert schema.field("image").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert schema.field("label").type == pa.int64()
    import json
    assert json.loads(schema.metadata[b"huggingface"]) == HF_METADATA
    rows = {c.kind: _row(d, c) for c in cases if c.relpath.startswith("nulls.parquet#") and c.bad}
    assert rows["null_image"]["image"] is None
    assert rows["null_image_bytes"]["image"] == {"bytes": None, "path": "missing.png"}
    assert rows["null_label"]["label"] is None and rows["null_label"]["image"]["bytes"]
    assert rows["label_out_of_range"]["label"] == 99
    assert rows["label_negative"]["label"] == -1
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(rows["non_image_bytes"]["image"]["bytes"]))
    # the images next to bad labels are themselves fine (the label is the only problem)
    for k in ("null_label", "label_out_of_range", "label_negative"):
        reference_rgb(rows[k]["image"]["bytes"])


def test_good_parquet_rows_decode_to_expected(pq_dir):
    d, cases = pq_dir
    good = [c for c in cases if not c.bad]
    assert {c.kind for c in good} == {"good_row", "binary_col_row", "large_types_row"}
    for c in good:
        r = _row(d, c)
        img = r["image"]["bytes"] if isinstance(r["image"], dict) else r["image"]
        assert np.array_equal(reference_rgb(img), c.expected_rgb), c.relpath
        assert r["label"] in (0, 1, "a", "b")


def test_parquet_column_types(pq_dir):
    d, _ = pq_dir
    s = pq.read_schema(d / "wrongtypes.parquet")
    assert s.field("image").type == pa.int64() and s.field("label").type == pa.float64()
    s = pq.read_schema(d / "binary_col.parquet")
    assert s.field("image").type == pa.binary() and s.field("label").type == pa.string()
    s = pq.read_schema(d / "large_types.parquet")
    assert s.field("image").type == pa.large_binary() and s.field("label").type == pa.large_string()


def test_broken_and_empty_parquet(pq_dir):
    d, _ = pq_dir
    for name in ("corrupt.parquet", "garbage.parquet"):
        with pytest.raises(pa.ArrowInvalid):
            pq.ParquetFile(d / name)
    assert (d / "corrupt.parquet").read_bytes()[:4] == b"PAR1"
    t = pq.read_table(d / "empty.parquet")
    assert t.num_rows == 0
    assert t.schema.equals(pq.read_schema(d / "nulls.parquet"), check_metadata=True)
