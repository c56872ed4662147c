"""Sources: image folders and Parquet (file, directory, glob) as mixbake lists and reads them.

Every source item is a solid colour, so a baked row's pixels say which item(s) it really came from:
the tests check that ``ref_a``/``src_a``/``label_a`` (and ``src_b``) name the item whose pixels are in
the row, not only that the bookkeeping is self-consistent.
"""
import hashlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import mixbake
from mixbake.errors import MixbakeError
from mixbake.sources import SourceOptions, open_source

SIZE = 16
FAST = dict(size=SIZE, image_format="png", workers=2, quiet=True)


# ---------------------------------------------------------------- helpers

def colour(i):
    """A distinct, saturated-enough RGB colour for item i (i < 64)."""
    return (40 + (i * 53) % 200, 30 + (i * 97) % 210, 20 + (i * 151) % 220)


def save(im, path, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kw)


def solid(rgb, mode="RGB"):
    return Image.new(mode, (SIZE, SIZE), rgb)


def png_bytes(rgb):
    buf = io.BytesIO()
    solid(rgb).save(buf, format="PNG")
    return buf.getvalue()


def decode(image_bytes):
    return np.asarray(Image.open(io.BytesIO(image_bytes)).convert("RGB"))


def uniform_colour(arr):
    """The single colour of a uniform image (asserts it is uniform)."""
    flat = arr.reshape(-1, 3)
    assert (flat == flat[0]).all(), f"image is not uniform: {np.unique(flat, axis=0)[:4]}"
    return tuple(int(v) for v in flat[0])


def read_labels(out):
    return pq.read_table(out / "labels.parquet").to_pylist()


def read_shards(out):
    """All shard rows (with image bytes) keyed by ``key``."""
    rows = {}
    for path in sorted((out / "data").glob("train-*.parquet")):
        for row in pq.read_table(path).to_pylist():
            assert row["key"] not in rows
            rows[row["key"]] = row
    return rows


def manifest(out):
    return json.loads((out / "manifest.json").read_text())


def hf_metadata(names, column="label"):
    return {b"huggingface": json.dumps(
        {"info": {"features": {column: {"names": names, "_type": "ClassLabel"}}}}).encode()}


def write_parquet(path, columns, row_group_size, metadata=None):
    table = pa.table(columns)
    if metadata:
        table = table.replace_schema_metadata(metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)


IMAGE_STRUCT = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])


def struct_images(rgbs):
    return pa.array([{"bytes": png_bytes(c), "path": f"img{i}.png"} for i, c in enumerate(rgbs)],
                    IMAGE_STRUCT)


# ---------------------------------------------------------------- image folder

# relative path -> (writer, expected decoded colour, exact?)
def _folder_files():
    files = {}
    plain = ["apple/b.png", "apple/a10.png", "apple/a2.png", "apple/sub/z.png", "apple/sub/deeper/x.png",
             "apple/sub-x.png", "apple/sub.png", "zebra/z1.png", "zebra/y.png", "zebra/deep/er/w.png", "zebra/CAPS.PNG"]
    for i, rel in enumerate(plain):
        c = colour(i)
        files[rel] = (lambda p, c=c: save(solid(c), p), c, True)

    def palette_image(rgb):
        im = Image.new("P", (SIZE, SIZE), 1)
        im.putpalette([0, 0, 0] + list(rgb) + [0, 0, 0] * 254)
        return im

    kinds = {
        "Mango/k_jpeg.jpg": (lambda p: save(solid((200, 60, 40)), p, quality=95), (200, 60, 40), False),
        "Mango/k_webp.webp": (lambda p: save(solid((30, 160, 90)), p, lossless=True), (30, 160, 90), True),
        "Mango/k_bmp.bmp": (lambda p: save(solid((90, 30, 160)), p), (90, 30, 160), True),
        "Mango/k_tiff.tiff": (lambda p: save(solid((160, 90, 30)), p), (160, 90, 30), True),
        "Mango/k_gif.gif": (lambda p: save(palette_image((10, 200, 220)), p), (10, 200, 220), True),
        "Mango/k_grey_l.png": (lambda p: save(solid(100, "L"), p), (100, 100, 100), True),
        "Mango/k_grey_l.jpg": (lambda p: save(solid(140, "L"), p, quality=95), (140, 140, 140), False),
        "Mango/k_palette.png": (lambda p: save(palette_image((250, 120, 5)), p), (250, 120, 5), True),
        "Mango/k_rgba_clear.png": (lambda p: save(solid((10, 20, 30, 0), "RGBA"), p), (255, 255, 255), True),
        # alpha 128 of black over white: (255 * 127 + 127) // 255 = 127
        "Mango/k_rgba_half.png": (lambda p: save(solid((0, 0, 0, 128), "RGBA"), p), (127, 127, 127), True),
        "Mango/k_cmyk.jpg": (lambda p: save(solid((0, 255, 255, 0), "CMYK"), p, quality=95), (255, 0, 0), False),
        "Mango/k_cmyk.tif": (lambda p: save(solid((255, 0, 255, 0), "CMYK"), p), (0, 255, 0), True),
        "Mango/k_g16_max.png": (lambda p: save(Image.fromarray(np.full((SIZE, SIZE), 65535, np.uint16)), p),
                                (255, 255, 255), True),
        "Mango/k_g16_mid.png": (lambda p: save(Image.fromarray(np.full((SIZE, SIZE), 32896, np.uint16)), p),
                                (128, 128, 128), True),
        "Mango/k_g16_mid.tif": (lambda p: save(Image.fromarray(np.full((SIZE, SIZE), 32896, np.uint16)), p),
                                (128, 128, 128), True),
    }
    files.update(kinds)
    return files


FOLDER_FILES = _folder_files()
FOLDER_CLASSES = ["Mango", "apple", "zebra"]           # sorted by name (code point order)
# expected listing order: classes by name, then relative path (plain string order inside a class)
FOLDER_ORDER = [rel for cls in FOLDER_CLASSES for rel in sorted(r for r in FOLDER_FILES if r.startswith(cls + "/"))]
IGNORED = ["README.txt", "apple/Thumbs.db", "zebra/notes.md", "empty/only.txt"]


@pytest.fixture(scope="module")
def folder_src(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder_src")
    for rel, (write, _, _) in FOLDER_FILES.items():
        write(root / rel)
    for rel in IGNORED:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("not an image")
    save(solid((1, 2, 3)), root / "apple" / ".hidden.png")      # dot-files are skipped, not counted
    save(solid((1, 2, 3)), root / ".git" / "x.png")             # dot-dirs are not classes
    save(solid((1, 2, 3)), root / "zebra" / ".cache" / "x.png")  # nor walked inside a class
    return root


@pytest.fixture(scope="module")
def folder_out(folder_src, tmp_path_factory):
    out = tmp_path_factory.mktemp("folder_out") / "out"
    # every item once unaugmented (exact pixels) and once mixed with a partner (checks src_b)
    mixbake.bake(str(folder_src), str(out), mixup=1, cutmix=0, keep_originals=True, seed=3, **FAST)
    return out


def test_folder_classes_sorted_and_empty_or_hidden_dirs_are_not_classes(folder_out):
    doc = manifest(folder_out)
    assert doc["classes"] == FOLDER_CLASSES
    footer = json.loads(pq.ParquetFile(next((folder_out / "data").glob("*.parquet"))).schema_arrow
                        .metadata[b"huggingface"])
    assert footer["info"]["features"]["label"]["names"] == FOLDER_CLASSES


def test_folder_non_images_ignored_and_counted(folder_out):
    doc = manifest(folder_out)
    assert doc["source"]["kind"] == "folder"
    assert doc["source"]["items"] == len(FOLDER_FILES)
    assert doc["source"]["ignored_files"] == len(IGNORED)
    refs = {r["ref_a"] for r in read_labels(folder_out)}
    assert refs == set(FOLDER_FILES)                       # no .txt, no dot-file, nested files found


_POOLED_LISTING = """
import json, sys
from mixbake.executors import ExecutorSpec, Session, can_fork_now
from mixbake.sources import open_source
assert can_fork_now()
here = open_source(sys.argv[1])
with Session(ExecutorSpec(workers=2), fork=True) as session:
    assert session._local.forked
    pooled = open_source(sys.argv[1], map_each=session.map)
print(json.dumps([[list(c.refs), list(c.classes), c.labels.tolist(), c.fingerprint, c.ignored_files]
                  for c in (here, pooled)]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a forked pool is Linux-only")
def test_folder_listed_by_the_worker_processes_is_the_same_catalog(folder_src):
    """The CLI lists class folders on its (forked, still idle) worker processes: same catalog.
    (In a fresh process: a forked pool needs one without threads.)"""
    result = subprocess.run([sys.executable, "-c", _POOLED_LISTING, str(folder_src)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    here, pooled = json.loads(result.stdout)
    assert here == pooled
    assert here[0] == FOLDER_ORDER and here[1] == FOLDER_CLASSES and here[4] == len(IGNORED)


def test_folder_items_sorted_by_relative_path(folder_out):
    rows = read_labels(folder_out)
    assert len(rows) == 2 * len(FOLDER_FILES)
    for r in rows:
        assert r["ref_a"] == FOLDER_ORDER[r["src_a"]]
        assert r["label_a"] == FOLDER_CLASSES.index(r["ref_a"].split("/")[0])
        if r["op"] == "mixup":
            assert r["ref_b"] == FOLDER_ORDER[r["src_b"]]
            assert r["label_b"] == FOLDER_CLASSES.index(r["ref_b"].split("/")[0])
            assert r["src_b"] != r["src_a"]
    originals = sorted(r["src_a"] for r in rows if r["key"].endswith("_orig"))
    assert originals == list(range(len(FOLDER_FILES)))


def test_folder_pixels_follow_the_references(folder_out):
    """Orig rows hold the item's own pixels; mixup rows blend the pixels of src_a and src_b by lam."""
    shards = read_shards(folder_out)
    got = {}
    for row in shards.values():
        if row["key"].endswith("_orig"):
            got[row["src_a"]] = uniform_colour(decode(row["image"]["bytes"]))
    for index, rel in enumerate(FOLDER_ORDER):
        _, want, exact = FOLDER_FILES[rel]
        if exact:
            assert got[index] == want, rel
        else:
            assert np.abs(np.subtract(got[index], want)).max() <= 4, (rel, got[index], want)
    mixed = [r for r in shards.values() if r["op"] == "mixup"]
    assert len(mixed) == len(FOLDER_FILES)
    for row in mixed:
        lam = row["lam"]
        want = lam * np.array(got[row["src_a"]]) + (1 - lam) * np.array(got[row["src_b"]])
        pixels = decode(row["image"]["bytes"]).reshape(-1, 3)
        assert np.abs(pixels - want).max() <= 1.0, (row["key"], lam)


@pytest.mark.parametrize("rel", ["Mango/k_grey_l.png", "Mango/k_rgba_clear.png", "Mango/k_g16_max.png",
                                 "Mango/k_g16_mid.png"])
def test_folder_simple_mode_conversions(folder_out, rel):
    """Grey L -> grey RGB; fully transparent RGBA -> white; 16-bit 65535 -> 255, 32896 -> 128."""
    index = FOLDER_ORDER.index(rel)
    (row,) = [r for r in read_shards(folder_out).values() if r["src_a"] == index and r["key"].endswith("_orig")]
    assert row["image"]["path"] == row["key"] + ".png"
    pixels = decode(row["image"]["bytes"])
    assert pixels.shape == (SIZE, SIZE, 3)
    assert uniform_colour(pixels) == FOLDER_FILES[rel][1]


def test_folder_keys_labels_and_soft_labels(folder_out):
    rows = read_labels(folder_out)
    for r in rows:
        assert r["key"] in (f"{r['src_a']:09d}_orig", f"{r['src_a']:09d}_c0")
        expected = np.zeros(len(FOLDER_CLASSES))
        expected[r["label_a"]] += r["lam"]
        expected[r["label_b"] if r["label_b"] is not None else r["label_a"]] += 1 - r["lam"]
        assert np.allclose(r["soft_label"], expected, atol=1e-6)
        assert r["label"] == int(np.argmax(r["soft_label"]))


def test_empty_class_folder_alone_is_an_error(tmp_path):
    (tmp_path / "src" / "cls").mkdir(parents=True)
    (tmp_path / "src" / "cls" / "a.txt").write_text("x")
    with pytest.raises(MixbakeError, match=r"holds no images"):
        open_source(str(tmp_path / "src"))


# ---------------------------------------------------------------- parquet

N_PQ = 30


@pytest.fixture(scope="module")
def pq_single(tmp_path_factory):
    """One file, HF image struct, int64 labels named by a huggingface ClassLabel footer, 5 row groups."""
    base = tmp_path_factory.mktemp("pq_single")
    labels = [(i * 7) % 3 for i in range(N_PQ)]
    write_parquet(base / "train.parquet",
                  {"image": struct_images([colour(i) for i in range(N_PQ)]),
                   "label": pa.array(labels, pa.int64())},
                  row_group_size=7, metadata=hf_metadata(["cat", "dog", "eel"]))
    assert pq.ParquetFile(base / "train.parquet").metadata.num_row_groups == 5
    out = base / "out"
    mixbake.bake(str(base / "train.parquet"), str(out), none=1, mixup=0, cutmix=0, shard_size=10, **FAST)
    return out, labels


def check_parquet_bake(out, refs, labels, colours, classes):
    """Every item baked exactly once as src_a, with its own label, reference and pixels."""
    rows = read_labels(out)
    assert sorted(r["src_a"] for r in rows) == list(range(len(refs)))
    shards = read_shards(out)
    assert len(shards) == len(refs)
    for r in rows:
        i = r["src_a"]
        assert r["ref_a"] == refs[i]
        assert r["label_a"] == r["label"] == labels[i]
        assert r["op"] == "none" and r["src_b"] is None and r["lam"] == 1.0
        assert uniform_colour(decode(shards[r["key"]]["image"]["bytes"])) == colours[i]
    assert manifest(out)["classes"] == classes


def test_parquet_single_file_with_classlabel_names_and_row_groups(pq_single):
    out, labels = pq_single
    check_parquet_bake(out, [f"train.parquet#{i}" for i in range(N_PQ)], labels,
                       [colour(i) for i in range(N_PQ)], ["cat", "dog", "eel"])
    doc = manifest(out)
    assert doc["source"]["kind"] == "parquet"
    assert doc["source"]["items"] == N_PQ
    assert doc["source"]["options"] == {"image_column": "image", "label_column": "label"}
    assert len(doc["shards"]) >= 2


def test_output_shard_schema(pq_single):
    out, _ = pq_single
    paths = sorted((out / "data").glob("train-*.parquet"))
    assert len(paths) >= 2
    for path in paths:
        schema = pq.read_schema(path)
        assert schema.field("image").type == pa.struct([pa.field("bytes", pa.binary()),
                                                        pa.field("path", pa.string())])
        assert schema.field("label").type == pa.int64()
        assert schema.field("soft_label").type == pa.list_(pa.float32())
        assert schema.field("boxes").type == pa.list_(pa.list_(pa.int32()))
        assert schema.field("lam").type == pa.float32()
        features = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
        assert features["label"] == {"names": ["cat", "dog", "eel"], "_type": "ClassLabel"}
        assert features["image"] == {"_type": "Image"}
        assert features["soft_label"] == {"feature": {"dtype": "float32", "_type": "Value"},
                                          "_type": "Sequence"}
        for row in pq.read_table(path).to_pylist():
            assert len(row["soft_label"]) == 3
    labels_schema = pq.read_schema(out / "labels.parquet")
    assert "image" not in labels_schema.names


@pytest.fixture(scope="module")
def pq_directory(tmp_path_factory):
    """A directory of three files; plain binary image column and int labels without metadata;
    column names that only their types identify."""
    base = tmp_path_factory.mktemp("pq_dir")
    d = base / "src"
    labels, colours, refs = [], [], []
    for f in range(3):
        n = 6 + f
        file_labels = [(0, 1, 3)[(f + j) % 3] for j in range(n)]   # class 2 has no items
        file_colours = [colour(len(colours) + j) for j in range(n)]
        write_parquet(d / f"part-{f}.parquet",
                      {"score": pa.array(np.linspace(0, 1, n)),
                       "blob": pa.array([png_bytes(c) for c in file_colours], pa.binary()),
                       "cls": pa.array(file_labels, pa.int64())}, row_group_size=4)
        labels += file_labels
        colours += file_colours
        refs += [f"part-{f}.parquet#{j}" for j in range(n)]
    (d / "notes.txt").write_text("not parquet")
    assert set(labels) == {0, 1, 3}
    out = base / "out"
    mixbake.bake(str(d), str(out), none=1, mixup=0, cutmix=0, **FAST)
    return out, refs, labels, colours


def test_parquet_directory_binary_column_int_labels_without_names(pq_directory):
    out, refs, labels, colours = pq_directory
    check_parquet_bake(out, refs, labels, colours, ["0", "1", "2", "3"])
    assert manifest(out)["source"]["options"] == {"image_column": "blob", "label_column": "cls"}


@pytest.fixture(scope="module")
def pq_glob(tmp_path_factory):
    """A glob over two of three files; string labels."""
    base = tmp_path_factory.mktemp("pq_glob")
    d = base / "src"
    names = ["zebra", "ant", "moose", "ant", "zebra", "zebra", "moose"]
    refs, labels, colours = [], [], []
    for f in range(2):
        file_names = names[f:] if f else names
        file_colours = [colour(20 + len(colours) + j) for j in range(len(file_names))]
        write_parquet(d / f"shard-{f}.parquet", {"image": struct_images(file_colours),
                                                  "label": pa.array(file_names, pa.string())},
                      row_group_size=3)
        refs += [f"shard-{f}.parquet#{j}" for j in range(len(file_names))]
        labels += [sorted(set(names)).index(n) for n in file_names]
        colours += file_colours
    write_parquet(d / "extra.parquet", {"image": struct_images([(1, 1, 1)]),
                                        "label": pa.array(["zzz"], pa.string())}, row_group_size=1)
    out = base / "out"
    mixbake.bake(str(d / "shard-*.parquet"), str(out), none=1, mixup=0, cutmix=0, **FAST)
    return out, refs, labels, colours


def test_parquet_glob_with_string_labels(pq_glob):
    out, refs, labels, colours = pq_glob
    check_parquet_bake(out, refs, labels, colours, ["ant", "moose", "zebra"])
    assert manifest(out)["source"]["items"] == len(refs)


def test_parquet_two_binary_columns_are_ambiguous(tmp_path):
    path = tmp_path / "two.parquet"
    write_parquet(path, {"front": pa.array([png_bytes(colour(i)) for i in range(4)], pa.binary()),
                         "back": pa.array([png_bytes(colour(9 - i)) for i in range(4)], pa.binary()),
                         "label": pa.array([0, 1, 0, 1], pa.int64())}, row_group_size=4)
    with pytest.raises(MixbakeError) as info:
        open_source(str(path))
    assert str(info.value) == (f"{path}: several columns could hold images (struct<bytes, path> or binary) "
                               f"(front, back): choose one with --image-column.")
    catalog = open_source(str(path), SourceOptions(image_column="back"))
    assert catalog.options == {"image_column": "back", "label_column": "label"}
    assert list(catalog.reader.read_chunk(catalog.chunk_locators[0]))[2] == png_bytes(colour(7))


def test_parquet_preferred_names_resolve_two_candidates(tmp_path):
    """With two binary and two int columns, the conventional names 'image' and 'label' win."""
    path = tmp_path / "named.parquet"
    write_parquet(path, {"thumb": pa.array([b"x"] * 3, pa.binary()),
                         "image": struct_images([colour(i) for i in range(3)]),
                         "id": pa.array([10, 11, 12], pa.int64()),
                         "label": pa.array([2, 0, 1], pa.int64())}, row_group_size=3)
    catalog = open_source(str(path))
    assert catalog.options == {"image_column": "image", "label_column": "label"}
    assert catalog.classes == ("0", "1", "2")
    assert catalog.labels.tolist() == [2, 0, 1]
    assert catalog.refs == ["named.parquet#0", "named.parquet#1", "named.parquet#2"]


def test_parquet_listing_counts_row_groups_as_chunks(tmp_path):
    path = tmp_path / "rg.parquet"
    write_parquet(path, {"image": struct_images([colour(i) for i in range(10)]),
                         "label": pa.array(["b", "a"] * 5)}, row_group_size=3)
    catalog = open_source(str(path))
    assert catalog.chunk_bounds.tolist() == [0, 3, 6, 9, 10]
    assert catalog.classes == ("a", "b")
    assert catalog.labels.tolist() == [1, 0] * 5
    payloads = [p for loc in catalog.chunk_locators for p in catalog.reader.read_chunk(loc)]
    assert payloads == [png_bytes(colour(i)) for i in range(10)]


def test_parquet_label_names_come_from_the_chosen_label_column(tmp_path):
    """CIFAR-100 style: two ClassLabel columns; auto-detection refuses to guess, the choice names them."""
    path = tmp_path / "cifar.parquet"
    features = {"fine_label": {"names": ["maple", "oak", "rose"], "_type": "ClassLabel"},
                "coarse_label": {"names": ["flowers", "trees"], "_type": "ClassLabel"}}
    table = pa.table({"img": struct_images([colour(i) for i in range(3)]),
                      "fine_label": pa.array([2, 0, 1], pa.int64()),
                      "coarse_label": pa.array([0, 1, 1], pa.int64())})
    table = table.replace_schema_metadata({b"huggingface": json.dumps({"info": {"features": features}}).encode()})
    pq.write_table(table, path)
    with pytest.raises(MixbakeError) as info:
        open_source(str(path))
    assert str(info.value) == (f"{path}: several columns could hold labels (integer or string) "
                               f"(fine_label, coarse_label): choose one with --label-column.")
    coarse = open_source(str(path), SourceOptions(label_column="coarse_label"))
    assert coarse.classes == ("flowers", "trees") and coarse.labels.tolist() == [0, 1, 1]
    fine = open_source(str(path), SourceOptions(label_column="fine_label"))
    assert fine.classes == ("maple", "oak", "rose") and fine.labels.tolist() == [2, 0, 1]
    assert fine.options == {"image_column": "img", "label_column": "fine_label"}


@pytest.mark.parametrize("relative", ["src/d.parquet", "src", "src/*.parquet"])
def test_parquet_source_is_recorded_absolute_so_its_build_verifies_from_anywhere(relative, tmp_path,
                                                                                 monkeypatch):
    """A build given a relative Parquet path verifies (and rebuilds) from another directory."""
    from mixbake.verify import verify
    write_parquet(tmp_path / "src" / "d.parquet",
                  {"image": struct_images([colour(i) for i in range(6)]), "label": [0, 1] * 3}, 3)
    monkeypatch.chdir(tmp_path)
    mixbake.bake(relative, "out", **FAST)
    assert manifest(tmp_path / "out")["source"]["uri"] == str(tmp_path / relative)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert verify(str(tmp_path / "out"), deep=True) == []


# ---------------------------------------------------------------- parquet: an unreadable file among many

CORRUPT_REASON = "not a readable Parquet file (Parquet magic bytes not found in footer."


def corrupt_footer(path):
    """Overwrite a Parquet file's trailing magic bytes: its footer can no longer be found."""
    with open(path, "r+b") as f:
        f.seek(-4, 2)
        f.write(b"XXXX")


def corrupt_column(path, column):
    """Overwrite the first column chunk of ``column`` with 0xff: the footer stays readable, the
    column's page header no longer deserializes."""
    meta = pq.ParquetFile(path).metadata.row_group(0)
    chunk = next(meta.column(j) for j in range(meta.num_columns) if meta.column(j).path_in_schema == column)
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(b"\xff" * chunk.total_compressed_size)


@pytest.fixture
def pq_three_parts(tmp_path):
    """data/part-{a,b,c}.parquet, 5 solid-colour rows each (binary images, int labels), part-b corrupt.
    Returns (dir, refs, labels, colours) of the readable parts' rows."""
    d = tmp_path / "data"
    refs, labels, colours = [], [], []
    for f, name in enumerate("abc"):
        file_colours = [colour(5 * f + j) for j in range(5)]
        file_labels = [(f + j) % 2 for j in range(5)]
        write_parquet(d / f"part-{name}.parquet", {"image": pa.array([png_bytes(c) for c in file_colours]),
                                                   "label": pa.array(file_labels, pa.int64())}, row_group_size=2)
        if name != "b":
            refs += [f"part-{name}.parquet#{j}" for j in range(5)]
            labels += file_labels
            colours += file_colours
    corrupt_footer(d / "part-b.parquet")
    return d, refs, labels, colours


@pytest.mark.parametrize("form", ["directory", "glob"])
def test_parquet_unreadable_file_is_skipped_named_and_counted(pq_three_parts, form, tmp_path, caplog):
    """--on-error skip: the readable files bake (every row once, with its pixels); errors.jsonl names
    the file; the manifest counts it as skipped, not its rows as items; the build verifies deep."""
    from helpers import cli
    from mixbake.verify import verify
    d, refs, labels, colours = pq_three_parts
    source = d if form == "directory" else d / "part-*.parquet"
    out = tmp_path / "out"
    result = cli("bake", source, out, "--none", "1", "--mixup", "0", "--cutmix", "0", "--size", SIZE,
                 "--image-format", "png", "--on-error", "skip", "-q", "-w", "1", code=0)
    assert ", 1 unreadable file skipped (see " in result.stdout
    assert f"{d / 'part-b.parquet'} left out: {CORRUPT_REASON}" in caplog.text
    check_parquet_bake(out, refs, labels, colours, ["0", "1"])
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["ref"] for e in errors] == ["part-b.parquet"]
    assert errors[0]["reason"].startswith(CORRUPT_REASON)
    doc = manifest(out)
    assert doc["totals"]["items"] == len(refs) == 10 and doc["totals"]["rows"] == 10
    assert doc["totals"]["skipped"] == doc["errors"]["count"] == 1
    assert doc["source"]["skipped_files"] == 1 and doc["source"]["items"] == 10
    assert verify(str(out), deep=True) == []
    report = cli("inspect", out, code=0).stdout
    assert f"errors   1 unreadable source file(s) skipped (errors.jsonl); first:\n  part-b.parquet: {CORRUPT_REASON}" \
        in report


def test_parquet_unreadable_file_fails_the_bake_naming_it(pq_three_parts, tmp_path):
    from helpers import cli
    d = pq_three_parts[0]
    result = cli("bake", d, tmp_path / "out", "--size", SIZE, "-q", code=1)
    assert result.stderr.startswith(f"Error: {d / 'part-b.parquet'}: {CORRUPT_REASON}")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_parquet_unreadable_file_is_part_of_the_fingerprint(pq_three_parts):
    """The file left out belongs to the source's identity: repairing it, changing it or removing it
    changes the fingerprint; listing it again does not."""
    d = pq_three_parts[0]
    skipped = open_source(str(d), on_error="skip")
    assert skipped.skipped_files == (("part-b.parquet", skipped.skipped_files[0][1]),)
    assert open_source(str(d), on_error="skip").fingerprint == skipped.fingerprint
    with open(d / "part-b.parquet", "ab") as f:
        f.write(b"more garbage")
    grown = open_source(str(d), on_error="skip").fingerprint
    (d / "part-b.parquet").unlink()
    without = open_source(str(d)).fingerprint
    assert len({skipped.fingerprint, grown, without}) == 3


def test_parquet_unreadable_column_is_skipped_too(pq_three_parts):
    """A readable footer over a column chunk that does not deserialize: the file is left out, with
    the column and pyarrow's reason in one line."""
    d, refs, labels, _ = pq_three_parts
    corrupt_column(d / "part-c.parquet", "label")
    catalog = open_source(str(d), on_error="skip")
    assert [ref for ref, _ in catalog.skipped_files] == ["part-b.parquet", "part-c.parquet"]
    reason = catalog.skipped_files[1][1]
    assert reason.startswith("cannot read its column 'label' (") and "\n" not in reason and reason.isprintable()
    assert list(catalog.refs) == refs[:5] and catalog.labels.tolist() == labels[:5]
    with pytest.raises(MixbakeError, match="part-b.parquet: not a readable Parquet file"):
        open_source(str(d))


def test_parquet_every_file_unreadable_is_an_error_even_when_skipping(pq_three_parts):
    d = pq_three_parts[0]
    for name in "ac":
        corrupt_footer(d / f"part-{name}.parquet")
    with pytest.raises(MixbakeError) as info:
        open_source(str(d), on_error="skip")
    assert str(info.value).startswith(f"None of the 3 Parquet files of {str(d)!r} is readable: "
                                      f"{d / 'part-a.parquet'}: {CORRUPT_REASON}")


def test_plan_reports_an_unreadable_file_as_a_note(pq_three_parts):
    from helpers import cli
    d = pq_three_parts[0]
    text = cli("plan", d, "--size", SIZE, code=0).stdout
    assert f"source     parquet {d}: 10 items, 2 classes, 1 unreadable file left out\n" in text
    assert f"note       {d / 'part-b.parquet'} left out: {CORRUPT_REASON}" in text
    assert "note       a bake stops at the first unreadable file with --on-error fail (the default)" in text
    summary = json.loads(cli("plan", d, "--size", SIZE, "--json", code=0).stdout)
    assert [f["ref"] for f in summary["skipped_files"]] == ["part-b.parquet"]
    assert summary["rows"] == 10


def test_preview_of_a_source_leaves_an_unreadable_file_out_and_says_so(pq_three_parts):
    from mixbake.preview import source_samples
    d, refs, _, _ = pq_three_parts
    _, catalog, samples, skipped = source_samples(str(d), 4, size=(SIZE, SIZE))
    assert len(samples) == 4 and list(catalog.refs) == refs
    assert [s.split(": ")[0] for s in skipped] == ["part-b.parquet"]
    assert skipped[0].startswith(f"part-b.parquet: {CORRUPT_REASON}")


# ---------------------------------------------------------------- parquet: image cells that name a file

NAMED_REASON = "the image file 'nope.png' named in the path field does not exist"


def solid_png(path, rgb):
    """A solid SIZE x SIZE PNG of ``rgb`` at ``path``; returns its bytes."""
    save(solid(rgb), path)
    return path.read_bytes()


def cells(rows):
    """{"bytes", "path"} cells, as IMAGE_STRUCT."""
    return pa.array([{"bytes": b, "path": p} for b, p in rows], IMAGE_STRUCT)


@pytest.fixture
def named_source(tmp_path, monkeypatch):
    """src/train.parquet (row groups of 2, so groups mix embedded bytes and paths) whose cells name
    files every way a path can be written; the working directory is cwd/. Returns (parquet, colours
    of rows 0..7 (None: bad), labels)."""
    src, cwd, elsewhere = tmp_path / "src", tmp_path / "cwd", tmp_path / "elsewhere"
    solid_png(src / "images" / "near.png", colour(1))
    solid_png(cwd / "only_in_cwd.png", colour(2))
    solid_png(elsewhere / "abs.png", colour(3))
    solid_png(tmp_path / "up.png", colour(4))
    solid_png(src / "shadow.png", colour(5))        # a cell's bytes win over the file its path names
    solid_png(cwd / "images" / "near.png", colour(6))  # beside the Parquet file wins over the cwd
    rows = [(None, "images/near.png"),                  # 0: relative to the Parquet file's directory
            (None, "only_in_cwd.png"),                  # 1: relative to the working directory
            (None, str(elsewhere / "abs.png")),         # 2: absolute
            (None, "../up.png"),                        # 3: relative, climbing out of src/
            (None, "nope.png"),                         # 4: names no file
            (png_bytes(colour(7)), "shadow.png"),       # 5: bytes and a path: the bytes
            (png_bytes(colour(8)), None),               # 6: bytes only
            (None, "./images/../images/near.png")]      # 7: a path spelled the long way
    colours = [colour(1), colour(2), colour(3), colour(4), None, colour(7), colour(8), colour(1)]
    labels = [0, 1, 0, 1, 0, 1, 0, 1]
    write_parquet(src / "train.parquet", {"image": cells(rows), "label": pa.array(labels, pa.int64())},
                  row_group_size=2)
    monkeypatch.chdir(cwd)
    return src / "train.parquet", colours, labels


def bake_named(source, out, *args, code=0):
    from helpers import cli
    return cli("bake", source, out, "--none", "1", "--mixup", "0", "--cutmix", "0", "--size", SIZE,
               "--image-format", "png", "-q", "-w", "1", *args, code=code)


def test_parquet_cells_naming_files_are_read_from_them(named_source, tmp_path):
    from mixbake.verify import verify
    source, colours, labels = named_source
    out = tmp_path / "out"
    bake_named(source, out, "--on-error", "skip")
    good = [i for i, c in enumerate(colours) if c is not None]
    rows = read_labels(out)
    assert sorted(r["src_a"] for r in rows) == good
    shards = read_shards(out)
    for r in rows:
        assert r["ref_a"] == f"train.parquet#{r['src_a']}" and r["label_a"] == labels[r["src_a"]]
        assert uniform_colour(decode(shards[r["key"]]["image"]["bytes"])) == colours[r["src_a"]]
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert errors == [{"ref": "train.parquet#4",
                       "reason": NAMED_REASON + " (neither beside the Parquet file nor in the working directory)"}]
    doc = manifest(out)
    assert doc["totals"]["items"] == 8 and doc["totals"]["skipped"] == doc["errors"]["count"] == 1
    assert verify(str(out), deep=True) == []


def test_parquet_cell_naming_a_missing_file_fails_the_bake_naming_row_and_path(named_source, tmp_path):
    source = named_source[0]
    result = bake_named(source, tmp_path / "out", code=1)
    assert result.stderr.startswith(f"Error: Bad input item train.parquet#4: {NAMED_REASON} (neither beside "
                                    f"the Parquet file nor in the working directory) (use --on-error skip")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_parquet_written_by_datasets_with_image_paths_bakes_those_images(tmp_path, monkeypatch):
    """``datasets`` writes file-backed images as {bytes: null, path: as given}: relative to the
    directory the script ran in, or absolute."""
    datasets = pytest.importorskip("datasets")
    work = tmp_path / "work"
    names = [f"imgs/{i}.png" for i in range(6)]
    colours = [colour(10 + i) for i in range(6)]
    for name, rgb in zip(names, colours):
        solid_png(work / name, rgb)
    labels = [0, 1, 1, 0, 1, 0]
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"])})
    monkeypatch.chdir(work)
    written = {}
    for kind, paths in (("relative", names), ("absolute", [str(work / n) for n in names])):
        written[kind] = tmp_path / "pq" / f"{kind}.parquet"
        written[kind].parent.mkdir(exist_ok=True)
        datasets.Dataset.from_dict({"img": paths, "label": labels}, features=features).to_parquet(str(written[kind]))
        assert pq.read_table(written[kind]).column("img").to_pylist()[0] == {"bytes": None, "path": paths[0]}
    for kind, source in written.items():
        out = tmp_path / f"out_{kind}"
        bake_named(source, out)
        check_parquet_bake(out, [f"{kind}.parquet#{i}" for i in range(6)], labels, colours, ["cat", "dog"])
        assert manifest(out)["source"]["options"] == {"image_column": "img", "label_column": "label"}
        assert not (out / "errors.jsonl").exists()


def test_parquet_fingerprint_covers_named_files_by_path_and_size(named_source):
    source, _, _ = named_source
    first = open_source(str(source), on_error="skip").fingerprint
    assert open_source(str(source)).fingerprint == first
    near = source.parent / "images" / "near.png"
    os.utime(near, (1, 1))  # mtimes are not part of the identity
    assert open_source(str(source)).fingerprint == first
    near.write_bytes(near.read_bytes() + b"\0")  # another size: another source
    grown = open_source(str(source)).fingerprint
    solid_png(source.parent / "nope.png", colour(31))  # the missing file appears
    appeared = open_source(str(source)).fingerprint
    assert len({first, grown, appeared}) == 3


def test_parquet_with_embedded_bytes_keeps_its_fingerprint_and_reads_nothing_more(tmp_path, monkeypatch):
    """Cells with bytes (and paths, naming files or not): the fingerprint is the files' alone, as
    before cells could name files, and listing reads no row group beyond the label column."""
    path = tmp_path / "train.parquet"
    solid_png(tmp_path / "0.png", colour(40))
    write_parquet(path, {"image": cells([(png_bytes(colour(i)), f"{i}.png") for i in range(6)]),
                  "label": pa.array([0, 1] * 3, pa.int64())}, row_group_size=2)
    expected = hashlib.sha256(f"train.parquet\0{path.stat().st_size}\0{6}\n".encode()).hexdigest()
    reads = []
    for name in ("read_row_group", "iter_batches"):
        original = getattr(pq.ParquetFile, name)
        monkeypatch.setattr(pq.ParquetFile, name,
                            lambda self, *a, _name=name, _original=original, **k:
                            reads.append((_name, k.get("columns"))) or _original(self, *a, **k))
    catalog = open_source(str(path))
    assert reads and all(columns == ["label"] for _, columns in reads)  # the labels, a row group at a time
    assert catalog.fingerprint == expected
    assert catalog.chunk_locators == [(0, 0), (0, 1), (0, 2)] and catalog.reader.image_files is None
    assert catalog.bad == {}


def test_parquet_named_rows_found_without_statistics_and_in_large_types(tmp_path):
    """No statistics (so the bytes must be scanned for nulls) and large_binary/large_string fields."""
    images = tmp_path / "images"
    large = pa.struct([pa.field("bytes", pa.large_binary()), pa.field("path", pa.large_string())])
    table = pa.table({"image": pa.array([{"bytes": None, "path": "images/a.png"},
                                         {"bytes": png_bytes(colour(51)), "path": "images/b.png"},
                                         {"bytes": None, "path": None},
                                         {"bytes": None, "path": "images/gone.png"}], large),
                      "label": pa.array(["x", "y", "x", "y"])})
    solid_png(images / "a.png", colour(50))
    solid_png(images / "b.png", colour(52))
    pq.write_table(table, tmp_path / "nostats.parquet", write_statistics=False)
    catalog = open_source(str(tmp_path / "nostats.parquet"))
    assert sorted(catalog.bad) == [3] and catalog.bad[3].startswith("the image file 'images/gone.png' named")
    payloads = list(catalog.reader.read_chunk(catalog.chunk_locators[0]))
    assert payloads[:3] == [(images / "a.png").read_bytes(), png_bytes(colour(51)), None]


def test_parquet_named_file_gone_since_listing_is_one_bad_item(named_source):
    """The worker reads a named file with its row group: one that went missing is that item's error
    (with --on-error skip), and the rest of its row group is read on."""
    from mixbake.config import BakeConfig
    from mixbake.tasks import make_tasks
    from mixbake.worker import load_pool
    source, colours, _ = named_source
    catalog = open_source(str(source))
    (source.parent.parent / "up.png").unlink()  # row 3, in a row group with row 2
    [task] = make_tasks(BakeConfig(size=SIZE), catalog, "", "test", on_error="skip")
    images, bad = load_pool(task)
    by_item = {int(task.items[p]): reason for p, reason in bad.items()}
    assert sorted(by_item) == [3, 4]
    assert by_item[3] == (f"cannot read the image file {str(source.parent.parent / 'up.png')!r} named in the "
                          f"path field: No such file or directory")
    decoded = {int(task.items[p]): uniform_colour(img) for p, img in enumerate(images) if img is not None}
    assert decoded == {i: c for i, c in enumerate(colours) if c is not None and i != 3}


@pytest.mark.parametrize("kind", [pa.uint8(), pa.int16(), pa.uint64(), pa.int64()])
def test_parquet_integer_labels_of_any_width_with_nulls(tmp_path, kind):
    """Labels are read from the column's buffers, a row group at a time: any integer width, nulls
    and values past the classes are bad items naming the reason; the rest keep their class."""
    path = tmp_path / "train.parquet"
    write_parquet(path, {"image": cells([(png_bytes(colour(i)), None) for i in range(6)]),
                  "label": pa.array([0, None, 2, 1, 200, 1], kind)}, row_group_size=4)
    catalog = open_source(str(path))
    assert catalog.classes == tuple(str(i) for i in range(201))
    assert catalog.labels.tolist() == [0, -1, 2, 1, 200, 1] and catalog.labels.dtype == np.int32
    assert catalog.bad == {1: "label is null"}


def test_parquet_labels_too_large_to_be_class_indices(tmp_path):
    path = tmp_path / "train.parquet"
    write_parquet(path, {"image": cells([(png_bytes(colour(i)), None) for i in range(2)]),
                  "label": pa.array([0, 3_000_000_000], pa.int64())}, row_group_size=2)
    with pytest.raises(MixbakeError, match="holds a label of 2147483647 or more"):
        open_source(str(path))
