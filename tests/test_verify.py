"""``mixbake verify OUT [--deep]``: passes on a fresh build; every kind of tampering is caught with a
message naming the file, including tampering that keeps the manifest's sha256/bytes consistent (so
only the row invariants, or --deep's re-planned provenance, can catch it)."""
import os
import shutil
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers import cli, make_folder, manifest_of, mixbake_process, patch_manifest_entry, save_manifest, set_cell

ARGS = ["--size", "20", "--shard-size", "6", "--mixup", "1", "--cutmix", "1", "--cutout", "1", "--none", "0.3",
        "--label-smoothing", "0.1", "--workers", "2", "--seed", "11", "-q"]


def verify(out, *extra):
    return cli("verify", out, *extra)


def assert_problem(result, *needles):
    assert result.exit_code == 1, result.output
    assert "problem(s) found" in result.stderr, result.stderr
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert any(all(n in line for n in needles) for line in lines), (needles, result.stderr)


def rewrite_shard(out, relpath, column, row, value, labels_too=True):
    """Change one cell of a shard -- and, with ``labels_too``, the same cell of labels.parquet -- then
    patch the manifest's sha256/bytes/totals, so that only a row-invariant or provenance check can
    tell. Returns the labels.parquet row."""
    set_cell(out / relpath, column, row, value)
    patch_manifest_entry(out, relpath)
    if labels_too:
        shard = [e["path"] for e in manifest_of(out)["shards"]].index(relpath)
        where = pq.read_table(out / "labels.parquet", columns=["shard", "row"]).to_pydict()
        i = next(i for i, (s, r) in enumerate(zip(where["shard"], where["row"])) if (s, r) == (shard, row))
        set_cell(out / "labels.parquet", column, i, value)
        patch_manifest_entry(out, "labels.parquet")
        return i


def assert_only_invariants_object(result):
    """The file checks pass (sha256/bytes/rows agree, labels.parquet agrees with the shards)."""
    for line in result.stderr.splitlines():
        assert "sha256" not in line and "bytes" not in line and not line.startswith("labels.parquet"), line


def find_row(out, predicate):
    """(shard relpath, row, row dict) of the first row satisfying predicate."""
    for entry in manifest_of(out)["shards"]:
        rows = pq.read_table(out / entry["path"]).drop(["image"]).to_pylist()
        for r, row in enumerate(rows):
            if predicate(row):
                return entry["path"], r, row
    pytest.fail("no such row in the build")


def marked_picture(c, i, rng):
    """A colour per class and item, with a white block placed by both."""
    rgb = np.full((24, 24, 3), (40 + 70 * c, 25 * i, 200 - 20 * i), np.uint8)
    rgb[c * 6:(c + 1) * 6, i:i + 8] = 255
    return rgb


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    base = tmp_path_factory.mktemp("verify")
    src = make_folder(base / "src", classes=("k0", "k1", "k2"), per_class=8, picture=marked_picture)
    out = base / "out"
    result = mixbake_process("bake", src, out, *ARGS, timeout=120)
    assert result.returncode == 0, result.stderr
    doc = manifest_of(out)
    assert len(doc["shards"]) >= 3
    assert all(doc["totals"]["ops"][op] > 0 for op in ("mixup", "cutmix", "cutout"))
    return src, out


@pytest.fixture
def copy(build, tmp_path):
    """A private copy of the finished build to tamper with."""
    out = tmp_path / "out"
    shutil.copytree(build[1], out)
    return out


# ---------------------------------------------------------------- a fresh build passes

def test_fresh_build_verifies_via_the_real_cli(build):
    out = build[1]
    for extra in ([], ["--deep"]):
        result = mixbake_process("verify", out, *extra, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "OK" in result.stdout and result.stderr == ""
    assert "deep" in result.stdout


def test_a_copied_build_verifies_deep(copy):
    result = verify(copy, "--deep")
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


# ---------------------------------------------------------------- file-level tampering

def test_flipped_byte_in_a_shard(copy):
    rel = manifest_of(copy)["shards"][1]["path"]
    data = bytearray((copy / rel).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / rel).write_bytes(bytes(data))
    assert_problem(verify(copy), rel, "sha256")


def test_deleted_shard(copy):
    rel = manifest_of(copy)["shards"][-1]["path"]
    (copy / rel).unlink()
    assert_problem(verify(copy), rel, "missing")


@pytest.mark.parametrize("name", ["extra.parquet", "train-00099-of-00099.parquet", ".hidden.tmp"])
def test_extra_file_in_data(copy, name):
    shutil.copy2(copy / manifest_of(copy)["shards"][0]["path"], copy / "data" / name)
    assert_problem(verify(copy), f"data/{name}", "not listed")


def test_truncated_labels_parquet(copy):
    data = (copy / "labels.parquet").read_bytes()
    (copy / "labels.parquet").write_bytes(data[:-10])
    assert_problem(verify(copy), "labels.parquet")


# ---------------------------------------------------------------- row invariants (sha256 patched)

def test_wrong_soft_label_with_patched_sha256(copy):
    rel, r, row = find_row(copy, lambda row: row["op"] == "mixup" and row["label_a"] != row["label_b"])
    soft = list(row["soft_label"])
    i, j = row["label_a"], row["label_b"]
    soft[i], soft[j] = soft[i] - 0.05, soft[j] + 0.05  # still sums to 1: only the lam formula objects
    rewrite_shard(copy, rel, "soft_label", r, soft)
    result = verify(copy)
    assert_only_invariants_object(result)
    assert_problem(result, rel, f"row {r}", "soft_label")


def test_label_not_argmax_with_patched_sha256(copy):
    rel, r, row = find_row(copy, lambda row: row["op"] == "none")
    rewrite_shard(copy, rel, "label", r, (row["label"] + 1) % 3)
    result = verify(copy)
    assert_only_invariants_object(result)
    assert_problem(result, rel, f"row {r}", "argmax")


def test_box_outside_the_image_with_patched_sha256(copy):
    rel, r, row = find_row(copy, lambda row: row["op"] == "cutout" and len(row["boxes"]) == 1)
    x0, y0, x1, y1 = row["boxes"][0]
    rewrite_shard(copy, rel, "boxes", r, [[x0, y0, 21, y1]])  # the image is 20 wide
    result = verify(copy)
    assert_only_invariants_object(result)
    assert_problem(result, rel, f"row {r}", "box")


def test_lam_outside_unit_interval_with_patched_sha256(copy):
    rel, r, row = find_row(copy, lambda row: row["op"] == "mixup")
    rewrite_shard(copy, rel, "lam", r, 1.5)
    result = verify(copy)
    assert_only_invariants_object(result)
    assert_problem(result, rel, f"row {r}", "lam", "outside")


def test_cutmix_lam_not_matching_its_box_with_patched_sha256(copy):
    rel, r, row = find_row(copy, lambda row: row["op"] == "cutmix" and len(row["boxes"]) == 1)
    x0, y0, x1, y1 = row["boxes"][0]
    smaller = [[x0, y0, x1 - 1, y1]] if x1 - x0 > 1 else [[x0, y0, x1, y1 - 1]]
    rewrite_shard(copy, rel, "boxes", r, smaller)
    result = verify(copy)
    assert_only_invariants_object(result)
    assert_problem(result, rel, f"row {r}", "cutmix lam")


def test_duplicate_key_with_patched_sha256(copy):
    rel, r, row = find_row(copy, lambda row: True)
    rows = pq.read_table(copy / rel, columns=["key"]).column("key").to_pylist()
    rewrite_shard(copy, rel, "key", r + 1, rows[r])
    result = verify(copy)
    assert_only_invariants_object(result)
    assert_problem(result, rel, "duplicate key")


# ---------------------------------------------------------------- the manifest itself

@pytest.mark.parametrize("field", ["rows", "ops"])
def test_wrong_manifest_totals(copy, field):
    doc = manifest_of(copy)
    if field == "rows":
        doc["totals"]["rows"] += 1
    else:
        doc["totals"]["ops"]["mixup"] -= 1
        doc["totals"]["ops"]["none"] += 1
    save_manifest(copy, doc)
    assert_problem(verify(copy), "manifest")


def test_wrong_row_count_of_a_shard_in_the_manifest(copy):
    doc = manifest_of(copy)
    doc["shards"][0]["rows"] += 1
    save_manifest(copy, doc)
    assert_problem(verify(copy), doc["shards"][0]["path"], "row")


def test_wrong_manifest_total_bytes(copy):
    doc = manifest_of(copy)
    doc["totals"]["bytes"] += 1
    save_manifest(copy, doc)
    assert_problem(verify(copy), "totals.bytes")


def test_wrong_manifest_skipped_count(copy):
    doc = manifest_of(copy)
    doc["totals"]["skipped"] += 1
    save_manifest(copy, doc)
    assert_problem(verify(copy), "skipped")


def test_wrong_manifest_item_count_deep(copy):
    """Only the source knows how many items it has: --deep lists it again."""
    doc = manifest_of(copy)
    doc["totals"]["items"] += 1
    save_manifest(copy, doc)
    assert_problem(verify(copy, "--deep"), "totals.items")


def test_labels_parquet_disagreeing_with_the_shards_with_patched_sha256(copy):
    """labels.parquet is what most trainers read: a label there that differs from the shard's (and is
    not the argmax of its own soft_label) must not pass."""
    table = pq.read_table(copy / "labels.parquet", columns=["shard", "label"]).to_pydict()
    set_cell(copy / "labels.parquet", "label", 0, (table["label"][0] + 1) % 3)
    patch_manifest_entry(copy, "labels.parquet")
    shard = manifest_of(copy)["shards"][table["shard"][0]]["path"]
    assert_problem(verify(copy), "labels.parquet", shard)


# ---------------------------------------------------------------- --deep: provenance

def test_deep_catches_a_swapped_partner_that_keeps_every_invariant(copy):
    rel, r, row = find_row(copy, lambda row: row["op"] == "mixup")
    labels = pq.read_table(copy / "labels.parquet", columns=["src_a", "label_a", "ref_a"]).to_pydict()
    label_of = dict(zip(labels["src_a"], labels["label_a"]))
    ref_of = dict(zip(labels["src_a"], labels["ref_a"]))
    swap = next(i for i, lab in sorted(label_of.items())
                if lab == row["label_b"] and i not in (row["src_a"], row["src_b"]))
    i = rewrite_shard(copy, rel, "src_b", r, swap)  # same class: labels, lam and boxes still agree
    set_cell(copy / "labels.parquet", "ref_b", i, ref_of[swap])
    patch_manifest_entry(copy, "labels.parquet")
    shallow = verify(copy)
    assert shallow.exit_code == 0, shallow.output
    assert_problem(verify(copy, "--deep"), rel, "src_b")


def test_deep_catches_a_changed_source(build, copy, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(build[0], src)
    doc = manifest_of(copy)
    doc["source"]["uri"] = str(src)
    save_manifest(copy, doc)
    (src / "k0" / "00.png").write_bytes((src / "k0" / "00.png").read_bytes() + b"trailing")
    assert verify(copy).exit_code == 0
    assert_problem(verify(copy, "--deep"), "source", "changed")


# ---------------------------------------------------------------- the dataset card (README.md)

def edit_card(out, old, new):
    text = (out / "README.md").read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    (out / "README.md").write_text(text.replace(old, new), encoding="utf-8")


def test_card_naming_other_classes(copy):
    edit_card(copy, '"1": k1\n', '"1": k9\n')
    result = verify(copy)
    assert_problem(result, "README.md: feature label differs from the build's (the class names)")
    assert result.stderr.count("\n") == 2  # that problem alone (the rows are fine), then the summary


@pytest.mark.parametrize("old,new,problem", [
    ('path: "data/train-*"', 'path: "data/*"', "README.md: configs differ from the build's (its data_files must "
                                                "be data/train-*)"),
    ("num_examples: ", "num_examples: 1", "README.md: splits differ from the build's"),
    ("  - name: lam\n    dtype: float32", "  - name: lam\n    dtype: float64", "README.md: feature lam differs"),
    ("  - name: boxes\n", "  - name: boxez\n", "README.md: its features are key, image, label, soft_label, op, lam, "
                                              "src_a, src_b, label_a, label_b, boxez; the build's are"),
    ("---\nconfigs:", "# my card\n---\nconfigs:", "README.md: no YAML front matter"),
    ("dataset_info:\n", "dataset_info: [\n", "README.md: its front matter is not YAML"),
])
def test_card_declaring_what_the_build_does_not_hold(copy, old, new, problem):
    edit_card(copy, old, new)
    assert_problem(verify(copy), problem)


def test_card_with_a_users_additions_verifies(copy):
    """A card is for people to complete: a licence, prose. Only what `datasets` reads is checked."""
    edit_card(copy, "task_categories:\n", "license: mit\nlanguage:\n- en\ntask_categories:\n")
    (copy / "README.md").write_text((copy / "README.md").read_text(encoding="utf-8") + "\nMy notes.\n",
                                    encoding="utf-8")
    assert verify(copy).exit_code == 0


def test_missing_card_is_a_problem_for_a_mixbake_that_writes_one(copy):
    (copy / "README.md").unlink()
    assert verify(copy).exit_code == 0  # this build's mixbake_version (0.2.0) predates cards
    doc = manifest_of(copy)
    save_manifest(copy, {**doc, "mixbake_version": "0.2.1"})
    assert_problem(verify(copy), "README.md: missing")


def test_without_pyyaml_only_the_front_matter_delimiters_are_checked(copy, monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml raises ImportError
    edit_card(copy, '"1": k1\n', '"1": k9\n')
    assert verify(copy).exit_code == 0
    edit_card(copy, "---\nconfigs:", "configs:")
    assert_problem(verify(copy), "README.md: no YAML front matter")


# ---------------------------------------------------------------- not a finished build

def test_directory_without_manifest_is_a_clear_error(tmp_path):
    (tmp_path / "somedir").mkdir()
    (tmp_path / "somedir" / "file.txt").write_text("x")
    result = verify(tmp_path / "somedir")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "manifest.json" in result.stderr and "somedir" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1


def test_unfinished_build_says_to_resume(build, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(build[0], src)
    (src / "k1" / "zz_empty.png").write_bytes(b"")
    out = tmp_path / "out"
    failed = mixbake_process("bake", src, out, *ARGS, timeout=120)
    assert failed.returncode == 1 and "k1/zz_empty.png" in failed.stderr, failed.stderr
    assert os.path.isdir(out) and not (out / "manifest.json").exists()
    result = verify(out)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "unfinished" in result.stderr and "resume" in result.stderr, result.stderr
