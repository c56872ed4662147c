"""The command line: version, help, the demo, clear one-sentence errors, re-runs, --overwrite,
the progress bar, and the manifest a build leaves behind."""
import dataclasses
import hashlib
import json
import os
import re
import zlib
from collections import Counter

import cv2
import numpy
import PIL
import pyarrow
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import simplejpeg
from PIL import Image

import mixbake
from mixbake.config import BakeConfig
from mixbake.sources import open_source
from helpers import assert_same_tree, cli, make_folder, mixbake_process, snapshot

ALL_OPTIONS = ["--size", "--resize", "--image-format", "--quality", "--mixup", "--cutmix", "--cutout",
               "--none", "--mixup-alpha", "--cutmix-alpha", "--cutmix-minmax", "--cutout-size",
               "--cutout-holes", "--cutout-fill", "--label-smoothing", "--copies", "--keep-originals",
               "--pairing", "--shard-size", "--seed", "--workers", "--quiet", "--image-column",
               "--label-column", "--on-error", "--overwrite"]
DEMO_CLASSES = ["circle", "cross", "ring", "square", "star", "triangle"]


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shard_paths(out):
    return sorted((out / "data").iterdir())


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("cli_src") / "pets")


# ---------------------------------------------------------------- version and help

def test_version():
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"mixbake, version {mixbake.__version__}\n"


def test_python_dash_m_version():
    proc = mixbake_process("--version", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"mixbake, version {mixbake.__version__}\n"


def test_bake_help_lists_every_option_and_an_example():
    result = cli("bake", "--help")
    assert result.exit_code == 0
    for option in ALL_OPTIONS:
        assert re.search(rf"(^|[\s,]){re.escape(option)}[\s,=]", result.stdout), option
    assert "Usage: " in result.stdout and "bake [OPTIONS] SOURCE OUT" in result.stdout
    assert re.search(r"^\s+mixbake bake demo out/\s*$", result.stdout, re.M)


# ---------------------------------------------------------------- the demo

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    return cli("bake", "demo", out, "--size", "32", "--quiet"), out


def test_demo_bakes_288_samples_of_6_classes(demo):
    result, out = demo
    assert result.exit_code == 0, result.output
    assert re.fullmatch(rf"Baked 288 samples from 288 items into 1 shards? \(\d+\.\d KB\) in \d+\.\ds "
                        rf"\(\d+ samples/s\) -> {re.escape(str(out))}\n", result.stdout), result.stdout
    labels = pq.read_table(out / "labels.parquet")
    assert labels.num_rows == 288
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["classes"] == DEMO_CLASSES
    assert doc["totals"]["rows"] == 288 and doc["source"]["kind"] == "demo"
    assert sorted(labels.column("src_a").to_pylist()) == list(range(288))
    # demo item i has class i // 48
    assert all(la == s // 48 for s, la in zip(labels.column("src_a").to_pylist(),
                                              labels.column("label_a").to_pylist()))
    assert set(labels.column("op").to_pylist()) == {"mixup", "cutmix"}


def test_quiet_writes_nothing_to_stderr(demo):
    result, _ = demo
    assert result.stderr == ""


def test_progress_bar_goes_to_stderr(src, tmp_path):
    out = tmp_path / "out"
    result = cli("bake", src, out, "--size", "16", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "baking" in result.stderr and "12/12" in result.stderr
    assert result.stdout.startswith("Baked 12 samples from 12 items") and result.stdout.count("\n") == 1
    assert "baking" not in result.stdout


# ---------------------------------------------------------------- clear errors

def _parquet(tmp_path):
    path = tmp_path / "train.parquet"
    image = pa.array([{"bytes": b"\x89PNG", "path": "x.png"}] * 2,
                     pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())]))
    pq.write_table(pa.table({"image": image, "label": pa.array([0, 1], pa.int64())}), path)
    return path


def _error_cases(tmp_path, src):
    """(args, exact message) for each mistake; OUT is tmp_path/'out' unless the case says otherwise."""
    out = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    one_class = make_folder(tmp_path / "one", classes=("solo",), per_class=3)
    missing = tmp_path / "no-such-dir"
    (tmp_path / "notes.txt").write_text("hello")
    return {
        "unknown-label-column": ([_parquet(tmp_path), out, "--label-column", "nope"],
                                 f"{tmp_path / 'train.parquet'}: --label-column 'nope' is not a column; "
                                 f"columns are: image (struct<bytes: binary, path: string>), label (int64)."),
        "empty-folder": ([empty, out],
                         f"Image folder {str(empty)!r} holds no images: expected root/<class>/<image> "
                         f"with extensions such as .jpg or .png."),
        "one-class-cross-class": ([one_class, out, "--pairing", "cross-class"],
                                  "The source has a single class (solo): --pairing cross-class needs at "
                                  "least two classes."),
        "all-shares-zero": ([src, out, "--mixup", "0", "--cutmix", "0"],
                            "All op shares are zero: give at least one of --mixup, --cutmix, --cutout, "
                            "--none, --mosaic a share > 0."),
        "size-not-a-number": ([src, out, "--size", "abc"],
                              "--size must be N or WxH (e.g. 224 or 320x240), got 'abc'."),
        "size-zero": ([src, out, "--size", "0"],
                      "--size must be between 1 and 16384 pixels per side, got '0'."),
        "size-three-parts": ([src, out, "--size", "3x4x5"],
                             "--size must be N or WxH (e.g. 224 or 320x240), got '3x4x5'."),
        "glob-matches-nothing": ([tmp_path / "nothing-*.parquet", out],
                                 f"No Parquet files match {str(tmp_path / 'nothing-*.parquet')!r}."),
        "source-is-a-text-file": ([tmp_path / "notes.txt", out],
                                  f"Source {str(tmp_path / 'notes.txt')!r} is neither an image folder nor a "
                                  f"Parquet file."),
        "missing-source": ([missing, out],
                           f"Source {str(missing)!r} does not exist (expected 'demo', an image folder, "
                           f"or Parquet)."),
    }


ERROR_CASES = ["unknown-label-column", "empty-folder", "one-class-cross-class", "all-shares-zero",
               "size-not-a-number", "size-zero", "size-three-parts", "glob-matches-nothing",
               "source-is-a-text-file", "missing-source"]


@pytest.mark.parametrize("case", ERROR_CASES)
def test_errors_are_one_clear_sentence(case, src, tmp_path):
    args, message = _error_cases(tmp_path, src)[case]
    result = cli("bake", *args, "--quiet")
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr == f"Error: {message}\n"
    assert "Traceback" not in result.output


@pytest.mark.parametrize("case", ERROR_CASES)
def test_rejected_command_creates_no_out(case, src, tmp_path):
    args, _ = _error_cases(tmp_path, src)[case]
    assert cli("bake", *args, "--quiet").exit_code == 1
    assert not (tmp_path / "out").exists()


def test_cross_class_error_does_not_block_the_corrected_command(tmp_path):
    """Regression: the check once ran after OUT was claimed, and the corrected command was refused."""
    one_class = make_folder(tmp_path / "one", classes=("solo",), per_class=3)
    out = tmp_path / "out"
    assert cli("bake", one_class, out, "--size", "16", "--pairing", "cross-class", "-q").exit_code == 1
    result = cli("bake", one_class, out, "--size", "16", "-q")
    assert result.exit_code == 0, result.output


def test_out_holding_an_unrelated_file_is_refused(src, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = cli("bake", src, out, "--size", "16", "-q")
    assert result.exit_code == 1
    assert result.stderr == (f"Error: OUT {str(out)!r} holds files mixbake did not write (notes.txt): "
                             f"choose an empty or new directory.\n")
    assert "Traceback" not in result.output
    assert sorted(os.listdir(out)) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"


def test_foreign_file_inside_data_is_refused(src, tmp_path):
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (out / "data" / "extra.csv").write_text("x")
    result = cli("bake", src, out, "--size", "16", "-q")
    assert result.exit_code == 1
    # naming the directory or the file in it are both clear
    assert re.fullmatch(rf"Error: OUT {re.escape(repr(str(out)))} holds files mixbake did not write "
                        rf"\(data(/extra\.csv)?\): choose an empty or new directory\.\n", result.stderr)
    assert (out / "data" / "extra.csv").read_text() == "x"


# ---------------------------------------------------------------- re-runs and --overwrite

@pytest.fixture(scope="module")
def small(src, tmp_path_factory):
    """12 items, --shard-size 4: three shards."""
    out = tmp_path_factory.mktemp("small") / "out"
    args = ["bake", src, out, "--size", "16", "--shard-size", "4", "--seed", "5", "--workers", "2", "-q"]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return args, out


def test_rerun_of_a_finished_build_changes_nothing(small):
    args, out = small
    before = snapshot(out)
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{out} already holds this finished build (12 samples); nothing to do.\n"
    assert_same_tree(snapshot(out), before)


def test_other_seed_is_refused_then_overwrite_replaces_only_mixbakes_files(src, tmp_path):
    out = tmp_path / "out"
    base = ["bake", src, out, "--size", "16", "-q", "--workers", "2"]
    assert cli(*base, "--shard-size", "4").exit_code == 0
    old = snapshot(out)
    assert sorted(os.listdir(out / "data")) == [f"train-0000{i}-of-00003.parquet" for i in range(3)]

    refused = cli(*base, "--shard-size", "4", "--seed", "1")
    assert refused.exit_code == 1
    assert refused.stderr == (f"Error: OUT {str(out)!r} holds a different build (seed 0 -> 1): use "
                              f"--overwrite to replace it, or choose another directory.\n")
    assert_same_tree(snapshot(out), old)

    # --overwrite never deletes what mixbake did not write: with a foreign file it refuses outright
    (out / "keep.txt").write_text("mine")
    refused = cli(*base, "--shard-size", "6", "--seed", "1", "--overwrite")
    assert refused.exit_code == 1 and "keep.txt" in refused.stderr
    now = snapshot(out)
    assert_same_tree(now, {**old, "keep.txt": now["keep.txt"]})
    (out / "keep.txt").unlink()

    result = cli(*base, "--shard-size", "6", "--seed", "1", "--overwrite")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Baked 12 samples from 12 items into 2 shards")
    # the old build's three shards are gone, no bookkeeping is left behind, the card is the new build's
    assert sorted(snapshot(out)) == [
        "README.md", "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet", "labels.parquet",
        "manifest.json"]
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["seed"] == 1 and doc["config"]["shard_size"] == 6
    assert pq.read_table(out / "labels.parquet").num_rows == 12
    assert doc["build_id"] in (out / "README.md").read_text() and "seed 1" in (out / "README.md").read_text()


def test_overwrite_keeps_an_edited_card(src, tmp_path):
    """The card is mixbake's own file, replaced by --overwrite as written; once someone edited it
    (a licence, notes) --overwrite refuses to delete it, and changes nothing."""
    out = tmp_path / "out"
    base = ["bake", src, out, "--size", "16", "-q", "--workers", "2"]
    cli(*base, code=0)
    card = out / "README.md"
    card.write_text(card.read_text() + "\nLicence: my own words.\n")
    before = snapshot(out)
    refused = cli(*base, "--seed", "1", "--overwrite", code=1)
    assert refused.stderr == (f"Error: OUT {str(out)!r} holds a README.md that is not the dataset card mixbake "
                              f"wrote (edited?): move it out of OUT to keep it, or delete it, then re-run.\n")
    assert_same_tree(snapshot(out), before)
    assert cli(*base, code=0).stdout.endswith("nothing to do.\n")  # the same build: a no-op, card and all
    card.unlink()
    cli(*base, "--seed", "1", "--overwrite", code=0)
    assert json.loads((out / "manifest.json").read_text())["build_id"] in card.read_text()


@pytest.mark.parametrize("user_file", ["README.md", "images/cat/0001.png"])
def test_overwrite_keeps_files_mixbake_did_not_write(user_file, src, tmp_path):
    """Whatever the two commands answer, a file the user put in OUT survives them.

    Regression: README.md and images/ were once taken for mixbake's own and deleted by --overwrite."""
    out = tmp_path / "out"
    (out / user_file).parent.mkdir(parents=True)
    (out / user_file).write_bytes(b"the user's own bytes")
    base = ["bake", src, out, "--size", "16", "-q", "--workers", "2"]
    cli(*base)
    cli(*base, "--seed", "1", "--overwrite")
    assert (out / user_file).is_file(), f"--overwrite deleted {user_file}"
    assert (out / user_file).read_bytes() == b"the user's own bytes"


# ---------------------------------------------------------------- the manifest

def test_manifest_config_seed_classes_source_versions(small, src):
    _, out = small
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["config"] == BakeConfig(size=16, shard_size=4, seed=5).to_dict()
    # every format-1 option is recorded; options added since only when set (a config keeps its identity)
    from mixbake.config import LATER_FIELDS
    assert set(doc["config"]) == {f.name for f in dataclasses.fields(BakeConfig)} - set(LATER_FIELDS) - {
        "format_version"}
    assert doc["format_version"] == 1 and "pairing" not in doc  # --copies 1: format 1's layout
    assert not {"workers", "quiet", "overwrite"} & set(doc["config"])
    assert doc["seed"] == 5
    assert doc["classes"] == ["a", "b"]
    assert doc["source"]["kind"] == "folder"
    assert doc["source"]["items"] == 12
    assert doc["source"]["fingerprint"] == open_source(str(src)).fingerprint
    assert re.fullmatch(r"[0-9a-f]{64}", doc["source"]["fingerprint"])
    libs = doc["libraries"]
    assert doc["mixbake_version"] == mixbake.__version__
    assert libs["mixbake"] == "0.1.0"  # format 1's identity names the release that defined it, always
    assert libs["numpy"] == numpy.__version__
    assert libs["pyarrow"] == pyarrow.__version__
    assert libs["pillow"] == PIL.__version__
    assert libs["zlib"] == zlib.ZLIB_RUNTIME_VERSION  # it deflates the PNGs: other zlibs, other bytes
    assert libs["simplejpeg"] == simplejpeg.__version__ and libs["opencv"] == cv2.__version__


def test_manifest_totals_match_the_shards(small):
    _, out = small
    doc = json.loads((out / "manifest.json").read_text())
    ops = Counter()
    rows = 0
    for path in shard_paths(out):
        table = pq.read_table(path, columns=["op"])
        ops.update(table.column("op").to_pylist())
        rows += table.num_rows
    assert rows == doc["totals"]["rows"] == 12
    assert doc["totals"]["ops"] == {op: ops.get(op, 0) for op in ("mixup", "cutmix", "cutout", "none")}
    assert sum(doc["totals"]["ops"].values()) == 12
    assert doc["totals"]["items"] == 12 and doc["totals"]["skipped"] == 0
    assert doc["totals"]["bytes"] == sum(p.stat().st_size for p in shard_paths(out))


def test_manifest_sha256_of_every_shard_and_labels(small):
    _, out = small
    doc = json.loads((out / "manifest.json").read_text())
    assert [s["path"] for s in doc["shards"]] == [f"data/{p.name}" for p in shard_paths(out)]
    assert len(doc["shards"]) == 3
    for entry in doc["shards"]:
        path = out / entry["path"]
        assert entry["sha256"] == sha256(path)
        assert entry["bytes"] == path.stat().st_size
        assert entry["rows"] == pq.ParquetFile(path).metadata.num_rows
    labels = doc["labels"]
    assert labels["path"] == "labels.parquet"
    assert labels["sha256"] == sha256(out / "labels.parquet")
    assert labels["bytes"] == (out / "labels.parquet").stat().st_size
    assert labels["rows"] == 12


def test_empty_class_folders_and_ignored_files_are_said_not_only_counted(tmp_path, caplog):
    src = make_folder(tmp_path / "src")
    (src / "emptycls").mkdir()
    (src / "readme.txt").write_text("notes")
    Image.new("RGB", (8, 8)).save(src / "stray.png")  # in no class folder
    plan = cli("plan", src)
    assert plan.exit_code == 0, plan.output
    assert "class folder 'emptycls' holds no images and is not a class" in plan.output
    assert "2 files ignored" in plan.output
    baked = cli("bake", src, tmp_path / "out", "--size", "8", "-q")
    assert baked.exit_code == 0, baked.stderr
    # warnings go through logging (the CLI's main() prints them to stderr as "mixbake: ...")
    assert "'emptycls' holds no images" in caplog.text and "2 files ignored" in caplog.text
    doc = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert doc["classes"] == ["a", "b"] and doc["source"]["ignored_files"] == 2


def test_options_that_do_nothing_in_this_config_are_warned_about(src, tmp_path, caplog):
    args = ["bake", src, tmp_path / "out", "--size", "16", "-q", "--image-format", "png", "--quality", "50",
            "--cutmix-minmax", "0.2", "0.8", "--cutmix-alpha", "2", "--cutout-holes", "3"]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    warned = [r.getMessage() for r in caplog.records]
    assert warned == ["--cutmix-alpha has no effect with --cutmix-minmax (it is still part of the build's config)",
                      "--cutout-holes has no effect with --cutout 0 (it is still part of the build's config)",
                      "--quality has no effect with --image-format png (it is still part of the build's config)"]
    caplog.clear()  # the same options where each does something: no warning
    result = cli("bake", src, tmp_path / "used", "--size", "16", "-q", "--quality", "50", "--cutout", "0.5",
                 "--cutout-holes", "3", "--cutmix-alpha", "2")
    assert result.exit_code == 0, result.stderr
    assert caplog.records == []


def test_box_and_mask_options_on_a_source_without_them_are_warned_about(src, tmp_path, caplog):
    result = cli("bake", src, tmp_path / "out", "--size", "16", "-q", "--min-visibility", "0.5",
                 "--mask-cutout", "keep", "--mask-classes", "4")
    assert result.exit_code == 0, result.stderr
    assert [r.getMessage() for r in caplog.records] == [
        f"--{name} has no effect: this source has no {what} (it is still part of the build's config)"
        for name, what in (("min-visibility", "detection boxes"), ("mask-cutout", "segmentation masks"),
                           ("mask-classes", "segmentation masks"))]


@pytest.mark.parametrize("options, needle", [
    ({"cutmix_minmax": (0.2,)}, "--cutmix-minmax needs two numbers"),
    ({"cutmix_minmax": 0.5}, "--cutmix-minmax needs two numbers"),
    ({"workers": 0}, "workers must be a whole number >= 1"),
    ({"workers": "2"}, "workers must be a whole number >= 1"),
    ({"imagefmt": "png"}, "Unknown bake option(s): imagefmt"),
    ({"keep_originals": "no"}, "--keep-originals is a flag"),
])
def test_api_bad_options_are_a_mixbake_error_before_anything_is_written(options, needle, tmp_path):
    with pytest.raises(mixbake.MixbakeError) as exc:
        mixbake.bake("demo", tmp_path / "out", quiet=True, **options)
    assert needle in str(exc.value)
    assert not (tmp_path / "out").exists()
