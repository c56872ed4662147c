"""Multi-label sources (issue 16): Parquet ``list<int>``/``list<string>`` label columns, and image
folders listed by a Hugging Face imagefolder ``metadata.csv``/``metadata.jsonl``, give catalogs with
``label_kind="multi"`` and per item a set of classes (``Catalog.targets``, an ``ItemSets``)."""
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

from helpers import cli
from mixbake.errors import MixbakeError
from mixbake.sources import ItemSets, SourceOptions, open_source
from mixbake.sources.refs import PathRefs


def png(i):
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (10 * i % 256, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


def sets(catalog):
    """Each item's set as a list (the CSR columns read back)."""
    t = catalog.targets
    return [t.index[t.offsets[i]:t.offsets[i + 1]].tolist() for i in range(len(t))]


def check_columns(catalog):
    """The contract's columns: numpy, one set per item, ascending and distinct."""
    assert catalog.label_kind == "multi" and isinstance(catalog.targets, ItemSets)
    assert catalog.labels.dtype == np.int32 and len(catalog.labels) == len(catalog.refs)
    t = catalog.targets
    assert t.offsets.dtype == np.int64 and t.index.dtype == np.int32 and len(t) == len(catalog.labels)
    assert t.offsets[0] == 0 and t.offsets[-1] == len(t.index) and (np.diff(t.offsets) >= 0).all()
    for i, s in enumerate(sets(catalog)):
        assert s == sorted(set(s)) and all(0 <= c < len(catalog.classes) for c in s)
        assert catalog.labels[i] == (-1 if i in catalog.bad else s[0] if s else 0)
        if i in catalog.bad:
            assert s == []


# ---------------------------------------------------------------- Parquet

def hf_footer(feature, column="labels"):
    return {b"huggingface": json.dumps({"info": {"features": {column: feature}}}).encode()}


NAMES = ["cat", "dog", "bird"]
FOOTERS = {  # how `datasets` records Sequence(ClassLabel(names=...)): before 4.0, from 4.0, large
    "Sequence": {"feature": {"num_classes": 3, "names": NAMES, "id": None, "_type": "ClassLabel"},
                 "length": -1, "id": None, "_type": "Sequence"},
    "List": {"feature": {"names": NAMES, "_type": "ClassLabel"}, "_type": "List"},
    "LargeList": {"feature": {"names": NAMES, "_type": "ClassLabel"}, "_type": "LargeList"},
    "list": [{"names": NAMES, "_type": "ClassLabel"}],
}
INT_ROWS = [[1, 0], [], [2, 2, 0], None, [1, 3], [0, None], [2]]


def write_images_table(path, values, column="labels", metadata=None, row_group_size=3, more=None):
    table = pa.table({"image": pa.array([png(i) for i in range(len(values))]), column: values, **(more or {})})
    if metadata:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


@pytest.mark.parametrize("spelling", list(FOOTERS))
@pytest.mark.parametrize("kind", [pa.int8(), pa.uint16(), pa.int64()])
@pytest.mark.parametrize("large", [False, True])
def test_parquet_list_of_ints_with_a_sequence_of_classlabel(tmp_path, spelling, kind, large):
    list_type = (pa.large_list if large else pa.list_)(kind)
    path = write_images_table(tmp_path / "m.parquet", pa.array(INT_ROWS, list_type),
                              metadata=hf_footer(FOOTERS[spelling]))
    c = open_source(str(path))
    check_columns(c)
    assert c.classes == tuple(NAMES)
    assert sets(c) == [[0, 1], [], [0, 2], [], [], [], [2]]  # sorted, duplicates dropped
    assert c.labels.tolist() == [0, 0, 0, -1, -1, -1, 2]   # an empty set: 0; a bad item: -1
    assert c.bad == {3: "label list is null", 4: "label 3 is outside the 3 classes",
                     5: "label list holds a null"}
    assert c.options == {"image_column": "image", "label_column": "labels"}
    assert c.chunk_bounds.tolist() == [0, 3, 6, 7] and c.kind == "parquet"


def test_parquet_list_of_ints_without_names_is_classes_0_to_max(tmp_path):
    path = write_images_table(tmp_path / "m.parquet", pa.array([[4, 1], [], [0], [-1, 2]], pa.list_(pa.int32())))
    c = open_source(str(path))
    check_columns(c)
    assert c.classes == ("0", "1", "2", "3", "4")
    assert sets(c) == [[1, 4], [], [0], []]
    assert c.bad == {3: "label -1 is outside the 5 classes"}


def test_parquet_list_of_ints_too_large_to_be_class_indices(tmp_path):
    path = write_images_table(tmp_path / "m.parquet", pa.array([[1], [123_456_789]], pa.list_(pa.int64())))
    with pytest.raises(MixbakeError, match="holds a label of 123456789"):
        open_source(str(path))


def test_parquet_list_of_strings_sorted_distinct_names_across_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_images_table(src / "a.parquet", pa.array([["dog", "cat", "dog"], [], None], pa.list_(pa.string())),
                       row_group_size=2)
    write_images_table(src / "b.parquet", pa.array([["bird"], ["cat", None], ["cat"]],
                                                   pa.large_list(pa.large_string())), row_group_size=2)
    c = open_source(str(src))
    check_columns(c)
    assert c.classes == ("bird", "cat", "dog")
    assert sets(c) == [[1, 2], [], [], [0], [], [1]]
    assert c.labels.tolist() == [1, 0, -1, 0, -1, 1]
    assert c.bad == {2: "label list is null", 4: "label list holds a null"}  # items counted across files
    assert list(c.refs)[3] == "b.parquet#0"


def test_parquet_list_of_strings_named_by_a_footer_refuses_other_names(tmp_path):
    path = write_images_table(tmp_path / "m.parquet", pa.array([["dog", "cat"], ["dgo"], ["bird"]]),
                              metadata=hf_footer(FOOTERS["List"]))
    c = open_source(str(path))
    check_columns(c)
    assert c.classes == tuple(NAMES)  # in the footer's order, not sorted
    assert sets(c) == [[0, 1], [], [2]]
    assert c.bad == {1: "label 'dgo' is not one of the 3 classes"}


def test_parquet_list_label_column_detected_and_single_class_columns_keep_theirs(tmp_path):
    lists = pa.array([[0, 1], [1]], pa.list_(pa.int64()))
    alone = open_source(str(write_images_table(tmp_path / "alone.parquet", lists, column="tags")))
    assert alone.label_kind == "multi" and alone.options["label_column"] == "tags"
    # an int `label` beside a list `labels`, or beside an unnamed list: the int column, as before
    for name, list_column in (("both.parquet", "labels"), ("other.parquet", "tags")):
        c = open_source(str(write_images_table(tmp_path / name, pa.array([1, 0]), column="label",
                                               more={list_column: lists})))
        assert c.label_kind == "class" and c.targets is None and c.options["label_column"] == "label"
        assert c.labels.tolist() == [1, 0]
    chosen = open_source(str(tmp_path / "both.parquet"), SourceOptions(label_column="labels"))
    assert chosen.label_kind == "multi" and sets(chosen) == [[0, 1], [1]]
    floats = write_images_table(tmp_path / "f.parquet", pa.array([[0.5], [1.0]]), column="labels")
    with pytest.raises(MixbakeError, match="no column holds labels"):
        open_source(str(floats))


def test_parquet_files_whose_label_column_is_not_alike_are_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_images_table(src / "a.parquet", pa.array([[0], [1]], pa.list_(pa.int64())), column="label")
    write_images_table(src / "b.parquet", pa.array([0, 1]), column="label")
    with pytest.raises(MixbakeError, match="column 'label' is missing or has another type than in a.parquet"):
        open_source(str(src))


def test_parquet_list_listing_loads_no_compute_kernels(tmp_path):
    path = write_images_table(tmp_path / "m.parquet", pa.array([["a", "b"], []]), column="tags")
    ints = write_images_table(tmp_path / "i.parquet", pa.array([[0, 1], []], pa.list_(pa.int8())))
    code = (f"import sys; from mixbake.sources import open_source; open_source({str(path)!r}); "
            f"open_source({str(ints)!r}); print('pyarrow.compute' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_parquet_multi_label_fingerprint_follows_the_file(tmp_path):
    path = write_images_table(tmp_path / "m.parquet", pa.array([["a"], ["b"]]))
    first = open_source(str(path))
    assert open_source(str(path)).fingerprint == first.fingerprint
    write_images_table(path, pa.array([["a", "b", "c", "d"], ["b"]]))
    assert open_source(str(path)).fingerprint != first.fingerprint


# ---------------------------------------------------------------- folders with a metadata file

def image_folder(root, files):
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(png(len(rel)))
    return root


def test_folder_metadata_csv(tmp_path):
    root = image_folder(tmp_path / "src", ["b.png", "a.png", "sub/c.jpg", "extra.png", "cat/d.png"])
    (root / "notes.txt").write_text("not listed")
    (root / "metadata.csv").write_text("file_name,labels,caption\n"
                                       "sub/c.jpg,dog;cat,x\n"
                                       "./b.png,,y\n"
                                       "a.png, cat ; cat ;,z\n"
                                       "gone.png,bird,w\n"
                                       "cat/d.png,bird;dog;cat,v\n")
    c = open_source(str(root))
    check_columns(c)
    assert c.kind == "folder" and c.classes == ("bird", "cat", "dog")
    assert list(c.refs) == ["a.png", "b.png", "cat/d.png", "gone.png", "sub/c.jpg"]  # sorted by path
    assert isinstance(c.refs, PathRefs) and c.chunk_bounds is None
    assert sets(c) == [[1], [], [0, 1, 2], [], [1, 2]]
    assert c.labels.tolist() == [1, 0, 0, -1, 1]
    assert c.bad == {3: "file 'gone.png' listed in metadata.csv does not exist"}
    assert c.ignored_files == 2  # extra.png and notes.txt (not the metadata file itself)
    assert c.notes == ("2 files ignored: not listed in metadata.csv (counted in manifest.json as "
                       "source.ignored_files)",)
    assert c.reader.read_chunk(c.locators_of(np.array([4]))[0], int(c.chunk_stamps[4])) == [png(len("sub/c.jpg"))]
    assert c.chunk_stamps[3] == 0  # (a missing file: read, it gives its own error)
    assert open_source(str(root)).state == c.state


def test_folder_metadata_jsonl_names_and_bad_rows(tmp_path):
    root = image_folder(tmp_path / "src", ["1.png", "2.png", "3.png", "4.png", "5.png", "6.png", "7.png"])
    lines = [{"file_name": "1.png", "labels": ["dog", "cat", "dog"]},
             {"file_name": "2.png", "labels": []},
             {"file_name": "3.png", "labels": None},
             {"file_name": "4.png", "labels": ["cat", 3]},
             {"file_name": "5.png", "labels": "cat"},
             {"file_name": "6.png"},
             {"file_name": "7.png", "labels": ["cat", None], "text": "more columns are fine"}]
    (root / "metadata.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    c = open_source(str(root))
    check_columns(c)
    assert c.classes == ("cat", "dog")
    assert sets(c) == [[0, 1], [], [], [], [], [], []]
    assert c.bad == {2: "labels is null",
                     3: "label 3 is an integer, but the labels of metadata.jsonl are class names",
                     4: 'labels is not a list ("cat")',
                     5: "labels is missing",
                     6: "label list holds a null"}


def test_folder_metadata_jsonl_class_indices(tmp_path):
    root = image_folder(tmp_path / "src", ["a.png", "b.png", "c.png", "d.png"])
    lines = [{"file_name": "a.png", "labels": [3, 0, 3]}, {"file_name": "b.png", "labels": [-1]},
             {"file_name": "c.png", "labels": [1, "dog"]}, {"file_name": "d.png", "labels": [2.5]}]
    (root / "metadata.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    c = open_source(str(root))
    check_columns(c)
    assert c.classes == ("0", "1", "2", "3")
    assert sets(c) == [[0, 3], [], [], []]
    assert c.bad == {1: "label -1 is outside the 4 classes",
                     2: "label 'dog' is a name, but the labels of metadata.jsonl are class indices",
                     3: "label 2.5 is not a class name or index"}


def test_folder_metadata_is_part_of_the_fingerprint(tmp_path):
    root = image_folder(tmp_path / "src", ["a.png", "b.png"])
    meta = root / "metadata.csv"
    meta.write_text("file_name,labels\na.png,cat\nb.png,dog\n")
    first = open_source(str(root))
    again = open_source(str(root))
    assert again.fingerprint == first.fingerprint and again.state == first.state
    os.utime(meta, ns=(1, 1))  # touched, same bytes: the same source (a copy keeps its identity)
    assert open_source(str(root)).fingerprint == first.fingerprint
    meta.write_text("file_name,labels\na.png,dog\nb.png,cat\n")  # same size, same files: labels swapped
    changed = open_source(str(root))
    assert changed.fingerprint != first.fingerprint and changed.state != first.state
    assert sets(changed) == [[1], [0]] and list(changed.refs) == list(first.refs)
    meta.unlink()  # (without it: class folders; here none, so no images)
    with pytest.raises(MixbakeError, match="holds no images"):
        open_source(str(root))


def test_folder_metadata_wins_over_class_folders_and_without_it_they_are_classes(tmp_path):
    root = image_folder(tmp_path / "src", ["cat/1.png", "dog/2.png"])
    plain = open_source(str(root))
    assert plain.label_kind == "class" and plain.targets is None and plain.classes == ("cat", "dog")
    (root / "metadata.csv").write_text("file_name,labels\ncat/1.png,cat;dog\ndog/2.png,dog\n")
    listed = open_source(str(root))
    assert listed.label_kind == "multi" and sets(listed) == [[0, 1], [1]]
    assert listed.fingerprint != plain.fingerprint


@pytest.mark.parametrize("content, message", [
    ("file_name,label\na.png,cat\n", r"metadata.csv has no 'labels' column; its columns are: 'file_name', 'label'"),
    ("path,labels\na.png,cat\n", r"metadata.csv has no 'file_name' column; its columns are: 'path', 'labels'"),
    ("", r"metadata.csv has no 'file_name' and no 'labels' column; its columns are: none"),
    ("file_name,labels\na.png,cat\n./a.png,dog\n", r"metadata.csv lists 'a.png' twice \(lines 2 and 3\)"),
    ("file_name,labels\n../a.png,cat\n", r"metadata.csv line 2: file_name '../a.png' is not a path inside"),
    ("file_name,labels\n/etc/passwd,cat\n", r"metadata.csv line 2: file_name '/etc/passwd' is not a path"),
    ("file_name,labels\na.png,\n", r"metadata.csv names no class"),
    ("file_name,labels\n", r"metadata.csv lists no files"),
])
def test_folder_metadata_csv_errors(tmp_path, content, message):
    root = image_folder(tmp_path / "src", ["a.png"])
    (root / "metadata.csv").write_text(content)
    with pytest.raises(MixbakeError, match=message) as info:
        open_source(str(root))
    assert str(root / "metadata.csv") in str(info.value)  # the file is named


@pytest.mark.parametrize("content, message", [
    ('{"file_name": "a.png", "tags": ["cat"]}\n', r"metadata.jsonl has no 'labels' column; its columns are: "
                                                  r"'file_name', 'tags'"),
    ('{"file_name": "a.png", "labels": ["cat"]}\n{"labels": ["dog"]}\n', r"metadata.jsonl line 2 has no file_name"),
    ('{"file_name": "a.png", "labels": ["cat"]}\nnot json\n', r"metadata.jsonl line 2 is not JSON"),
    ('["a.png", ["cat"]]\n', r"metadata.jsonl line 1 is not a JSON object"),
])
def test_folder_metadata_jsonl_errors(tmp_path, content, message):
    root = image_folder(tmp_path / "src", ["a.png"])
    (root / "metadata.jsonl").write_text(content)
    with pytest.raises(MixbakeError, match=message):
        open_source(str(root))


def test_folder_with_two_metadata_files_is_refused(tmp_path):
    root = image_folder(tmp_path / "src", ["a.png"])
    (root / "metadata.csv").write_text("file_name,labels\na.png,cat\n")
    (root / "metadata.jsonl").write_text('{"file_name": "a.png", "labels": ["cat"]}\n')
    with pytest.raises(MixbakeError, match="holds both metadata.csv and metadata.jsonl: keep one"):
        open_source(str(root))


def test_folder_metadata_csv_with_a_byte_order_mark_and_crlf(tmp_path):
    root = image_folder(tmp_path / "src", ["a.png", "b.png"])
    (root / "metadata.csv").write_bytes("file_name,labels\r\na.png,\"cat;dog\"\r\nb.png,dog\r\n".encode("utf-8-sig"))
    c = open_source(str(root))
    assert c.classes == ("cat", "dog") and sets(c) == [[0, 1], [1]]


# ---------------------------------------------------------------- the CLI plans such sources

def test_plan_reports_multi_label_sources(tmp_path):
    root = image_folder(tmp_path / "folder", ["a.png", "b.png", "c.png"])
    (root / "metadata.csv").write_text("file_name,labels\na.png,cat\nb.png,cat;dog\nc.png,\n")
    table = write_images_table(tmp_path / "m.parquet", pa.array([[0, 1], [1], []], pa.list_(pa.int64())))
    for source in (root, table):
        result = cli("plan", source, "--json", code=0)
        assert json.loads(result.stdout)["source"]["items"] == 3
