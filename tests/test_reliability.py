"""Reliability on tricky and broken inputs (tests/corpus.py): --on-error skip / fail, exact pixels of
awkward-but-valid images, the decompression-bomb guard, bad Parquet rows and files, worker-count
independence with skipped items, and output names that never come from input paths.

Most bakes run the command line in-process (click's runner: no new interpreter per bake); the pixel
bakes use the library API, several at once; the bomb and the output-names tests run the real
``python -m mixbake`` in a subprocess.
"""
import io
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import mixbake
from mixbake import manifest as mb_manifest
from helpers import MIXBAKE, all_files, assert_same_tree, cli_as_process, manifest_of

try:
    from corpus import BOMB_SIZE, by_kind, make_bad_parquet, make_tricky_folder, quadrant_means
except ImportError:  # tests/ made into a package
    from .corpus import BOMB_SIZE, by_kind, make_bad_parquet, make_tricky_folder, quadrant_means

TIMEOUT = 120
NOT_ITEMS = {"ignored", "empty_class"}
SHARD_RE = re.compile(r"^train-\d{5}-of-\d{5}\.parquet$")


# ---------------------------------------------------------------- helpers

def run_many(arglists, real=False, timeout=TIMEOUT, cwd=None):
    """Run several mixbake commands, in this process (click's runner: far cheaper than a new interpreter
    per bake); ``real``: each in its own ``python -m mixbake``, all at once."""
    if not real:
        return [cli_as_process(*args) for args in arglists]
    procs = [subprocess.Popen(MIXBAKE + [str(a) for a in args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=cwd) for args in arglists]
    results = []
    for args, p in zip(arglists, procs):
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        results.append(subprocess.CompletedProcess(args, p.returncode, out.decode("utf-8", "replace"),
                                                   err.decode("utf-8", "replace")))
    return results


def run(*args, real=False, timeout=TIMEOUT):
    return run_many([list(args)], real, timeout)[0]


def ref_of(relpath: str) -> str:
    """How mixbake spells a file reference: undecodable bytes as backslash escapes."""
    return os.fsencode(relpath).decode("utf-8", "backslashreplace")


def errors_of(out):
    path = os.path.join(out, "errors.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def labels_of(out):
    return pq.read_table(os.path.join(out, "labels.parquet")).to_pydict()


def tree(root):
    """Every path under root (files, dirs and links), as bytes, with file contents for files."""
    entries = {}
    for dirpath, dirnames, names in os.walk(os.fsencode(root)):
        for name in dirnames + names:
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path) and os.access(path, os.R_OK):
                with open(path, "rb") as f:
                    entries[path] = f.read()
            else:
                entries[path] = None
    return entries


def output_image(out, ref):
    """Decoded RGB pixels of the (single) output row whose source a is ``ref``."""
    labels = labels_of(out)
    rows = [i for i, r in enumerate(labels["ref_a"]) if r == ref]
    assert len(rows) == 1, f"{ref!r}: {len(rows)} output rows"
    i = rows[0]
    assert labels["op"][i] == "none" and labels["src_b"][i] is None and labels["lam"][i] == 1.0
    shard = manifest_of(out)["shards"][labels["shard"][i]]["path"]
    table = pq.read_table(os.path.join(out, shard), columns=["key", "image"])
    assert table.column("key")[labels["row"][i]].as_py() == labels["key"][i]
    image = table.column("image")[labels["row"][i]].as_py()
    with Image.open(io.BytesIO(image["bytes"])) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def assert_clean_error(result, *needles):
    """Exit 1, one readable error naming each needle, no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert result.stderr.startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


# ---------------------------------------------------------------- the folder corpus, --on-error skip

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("tricky")
    cases = make_tricky_folder(root / "src")
    return root / "src", cases


@pytest.fixture(scope="module")
def skip_bakes(corpus, tmp_path_factory):
    """The whole folder corpus with --on-error skip, several shards, 1 and 2 workers."""
    src, _ = corpus
    base = tmp_path_factory.mktemp("skip")
    outs = {w: base / f"out_w{w}" for w in (1, 2)}
    results = run_many([["bake", src, outs[w], "--size", "16", "--shard-size", "6", "--on-error", "skip",
                         "--workers", str(w), "--seed", "3", "-q"] for w in (1, 2)])
    for result in results:
        assert result.returncode == 0, result.stderr
    return outs, results


def item_cases(cases):
    return [c for c in cases if c.kind not in NOT_ITEMS]


def test_skip_lists_every_bad_item_with_a_reason_and_no_good_one(corpus, skip_bakes):
    _, cases = corpus
    out = skip_bakes[0][2]
    errors = errors_of(out)
    refs = [e["ref"] for e in errors]
    assert len(refs) == len(set(refs)), "an item is listed twice"
    for e in errors:
        assert set(e) == {"ref", "reason"}
        assert isinstance(e["reason"], str) and len(e["reason"].strip()) > 5, e
    bad = {ref_of(c.relpath) for c in item_cases(cases) if c.bad}
    good = {ref_of(c.relpath) for c in item_cases(cases) if not c.bad}
    assert bad <= set(refs), f"bad items not reported: {sorted(bad - set(refs))}"
    assert not good & set(refs), f"good items reported as bad: {sorted(good & set(refs))}"
    # reasons fit the defect
    reason = {e["ref"]: e["reason"].lower() for e in errors}
    assert re.search(r"empty|0 bytes", reason["a/zero.jpg"])
    assert re.search(r"no such file|not found|cannot read", reason["a/dangling.jpg"])
    assert re.search(r"pixels|bomb", reason["b/bomb.png"])


def test_skip_accounts_for_every_item(corpus, skip_bakes):
    src, cases = corpus
    out = skip_bakes[0][2]
    items = {ref_of(c.relpath) for c in item_cases(cases)}
    baked = set(labels_of(out)["ref_a"])
    skipped = {e["ref"] for e in errors_of(out)}
    assert not baked & skipped, f"both baked and skipped: {sorted(baked & skipped)}"
    assert baked | skipped == items
    doc = manifest_of(out)
    assert doc["totals"]["items"] == len(items)
    assert doc["totals"]["skipped"] == len(skipped) == doc["errors"]["count"]
    assert doc["errors"]["path"] == "errors.jsonl"
    assert doc["source"]["ignored_files"] == 1  # a/notes.txt
    assert doc["totals"]["rows"] == len(labels_of(out)["key"])
    assert f"{len(skipped)} bad items skipped" in skip_bakes[1][1].stdout


def test_png_with_bad_idat_crc_is_rejected(corpus, skip_bakes):
    """Pillow never checks IDAT CRCs: a reader relying on it alone would bake this file."""
    case = by_kind(corpus[1], "png_bad_idat_crc")
    out = skip_bakes[0][2]
    reason = {e["ref"]: e["reason"] for e in errors_of(out)}
    assert "crc" in reason[case.relpath].lower()
    assert case.relpath not in set(labels_of(out)["ref_a"])


def test_skipped_items_give_identical_bytes_for_1_and_2_workers(skip_bakes):
    outs, _ = skip_bakes
    one, two = all_files(outs[1]), all_files(outs[2])
    shards = [p for p in two if p.startswith("data" + os.sep)]
    assert len(shards) >= 3, "want several shards"
    assert set(one) == set(two)
    assert set(two) == {"manifest.json", "labels.parquet", "errors.jsonl", "README.md", *shards}
    assert_same_tree(one, two)  # --workers 1 and --workers 2


def test_skip_build_verifies_deep(skip_bakes):
    result = run_many([["verify", skip_bakes[0][2], "--deep"]])[0]
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


# ---------------------------------------------------------------- --on-error fail, one bad kind at a time

FAIL_REASONS = {
    "zero_byte": r"empty|0 bytes",
    "truncated_jpeg": r"truncat|premature|end of",
    "truncated_png": r"truncat",
    "text_as_jpg": r"not an image|identify|cannot decode",
    "png_corrupt_idat": r"decode|broken|corrupt|invalid",
    "png_bad_idat_crc": r"crc",
    "decompression_bomb": r"pixels|bomb",
    "dangling_symlink": r"no such file|not found|cannot read",
}
if not (hasattr(os, "geteuid") and os.geteuid() == 0):
    FAIL_REASONS["unreadable"] = r"permission|cannot read"


@pytest.fixture(scope="module")
def fail_bakes(corpus, tmp_path_factory):
    """Per bad kind: a folder with that one bad file + 4 plain ones, baked with --on-error fail."""
    src, cases = corpus
    base = tmp_path_factory.mktemp("fail")
    plain = [c for c in cases if c.kind == "plain" and c.relpath.endswith(".png")]
    jobs, info = [], {}
    for kind in FAIL_REASONS:
        case = by_kind(cases, kind)
        root = base / kind / "src"
        for c in plain + [case]:
            dst = root / c.relpath
            dst.parent.mkdir(parents=True, exist_ok=True)
            if os.path.islink(src / c.relpath):
                os.symlink(os.readlink(src / c.relpath), dst)
            else:
                shutil.copy2(src / c.relpath, dst)
        out = base / kind / "out"
        info[kind] = (case, out)
        jobs.append(["bake", root, out, "--size", "16", "--on-error", "fail", "--workers", "2", "-q"])
    results = run_many(jobs)
    return {kind: (case, out, result) for (kind, (case, out)), result in zip(info.items(), results)}


@pytest.mark.parametrize("kind", list(FAIL_REASONS))
def test_fail_names_the_bad_file_and_leaves_no_finished_build(fail_bakes, kind):
    case, out, result = fail_bakes[kind]
    assert_clean_error(result, case.relpath)
    message = result.stderr.lower()
    after = message.split(case.relpath.lower(), 1)[1]
    assert re.search(FAIL_REASONS[kind], after), result.stderr
    assert "--on-error skip" in result.stderr
    assert result.stderr.count("\n") <= 2, "one sentence, not a dump"
    assert not (out / "manifest.json").exists()
    assert not (out / "labels.parquet").exists()
    data = out / "data"
    shards = [n for n in os.listdir(data)] if data.is_dir() else []
    # a single shard (default --shard-size): nothing may look finished
    assert not [n for n in shards if n.startswith("train-")], shards
    assert (out / mb_manifest.CLAIM).exists(), "an unfinished build keeps its claim"


def test_fail_on_multi_shard_build_keeps_only_complete_shards(tmp_path):
    """With several shards, shards finished before the failure may stay: each must be complete and
    equal to the same shard of a --on-error skip build, and a --on-error skip re-run must reuse them
    and finish to the same bytes as a fresh skip build."""
    src = tmp_path / "src"
    for i in range(16):
        (src / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 20), (15 * i, 100, 255 - 15 * i)).save(src / "ab"[i % 2] / f"{i:02d}.png")
    (src / "b" / "zz_zero.png").write_bytes(b"")
    for seed in range(6):  # find a seed whose bad item is not in the first shard baked
        out, fresh = tmp_path / f"out{seed}", tmp_path / f"fresh{seed}"
        args = ["--size", "16", "--shard-size", "4", "--workers", "1", "--seed", str(seed), "-q"]
        failed = run("bake", src, out, *args, "--on-error", "fail")
        assert_clean_error(failed, "b/zz_zero.png")
        assert not (out / "manifest.json").exists()
        done = sorted(n for n in os.listdir(out / "data") if SHARD_RE.match(n)) if (out / "data").is_dir() else []
        if done:
            break
    else:
        pytest.fail("no seed in 0..5 finished a shard before the failure")
    resumed, clean = run_many([["bake", src, out, *args, "--on-error", "skip"],
                               ["bake", src, fresh, *args, "--on-error", "skip"]])
    assert resumed.returncode == 0 and clean.returncode == 0, (resumed.stderr, clean.stderr)
    assert resumed.stdout.startswith("Resumed"), resumed.stdout
    assert len(os.listdir(fresh / "data")) > len(done)
    assert_same_tree(out, fresh)
    assert [e["ref"] for e in errors_of(out)] == ["b/zz_zero.png"]


# ---------------------------------------------------------------- exact pixels of awkward-but-valid images

EXACT_KINDS = ["plain", "unreadable", "exif_rot6_png", "exif_rot3_png", "exif_rot5_png", "gray16_png",
               "la_png", "one_pixel", "non_utf8_name", "rgba_png", "p_transparency_png", "mode1_png",
               "animated_gif", "bmp", "tiff", "webp_lossless", "unicode_name", "upper_ext", "png_as_jpg"]
# lossy JPEG cases: (height, width) of the output and quadrant colours [row][col], compared with a tolerance
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
LOSSY = {
    "exif_rot6_jpeg": ((48, 32), [[BLUE, RED], [WHITE, GREEN]]),
    "exif_rot3_jpeg": ((32, 48), [[WHITE, BLUE], [GREEN, RED]]),
    "cmyk_jpeg": ((16, 32), [[RED, BLUE], [RED, BLUE]]),
}


def exact_cases(cases, kind):
    return [c for c in cases if c.kind == kind and not c.bad and c.expected_rgb is not None]


@pytest.fixture(scope="module")
def pixel_bakes(corpus, tmp_path_factory):
    """The folder corpus baked unaugmented, PNG, stretched to each case's own size: {(h, w): OUT}."""
    src, cases = corpus
    shapes = {c.expected_rgb.shape[:2] for k in EXACT_KINDS for c in exact_cases(cases, k)}
    shapes |= {shape for shape, _ in LOSSY.values()}
    base = tmp_path_factory.mktemp("pixels")
    outs = {shape: base / f"out_{shape[1]}x{shape[0]}" for shape in sorted(shapes)}

    def one(shape_out):
        (h, w), out = shape_out
        # the library API (what the CLI calls): several bakes at once in one process
        return mixbake.bake(src, out, size=(w, h), none=1, mixup=0, cutmix=0, image_format="png",
                            resize="stretch", on_error="skip", workers=1, quiet=True)

    with ThreadPoolExecutor(max_workers=3) as pool:
        summaries = list(pool.map(one, outs.items()))
    for summary in summaries:
        assert summary.shards == 1 and summary.rows == summary.items - summary.skipped
    return outs


@pytest.mark.parametrize("kind", EXACT_KINDS)
def test_good_tricky_image_bakes_to_the_exact_pixels(corpus, pixel_bakes, kind):
    _, cases = corpus
    found = exact_cases(cases, kind)
    if not found and kind == "non_utf8_name":
        pytest.skip("this filesystem refuses non-UTF-8 names")
    assert found, kind
    for case in found:
        expected = case.expected_rgb
        got = output_image(pixel_bakes[expected.shape[:2]], ref_of(case.relpath))
        assert got.shape == expected.shape, (case.relpath, got.shape)
        diff = np.argwhere(np.any(got != expected, axis=-1))
        assert len(diff) == 0, (f"{case.relpath}: {len(diff)} pixels differ, first at {diff[0].tolist()}: "
                                f"{got[tuple(diff[0])].tolist()} != {expected[tuple(diff[0])].tolist()}")


@pytest.mark.parametrize("kind", sorted(LOSSY))
def test_lossy_tricky_jpeg_bakes_to_the_right_colours(corpus, pixel_bakes, kind):
    shape, colours = LOSSY[kind]
    case = by_kind(corpus[1], kind)
    got = output_image(pixel_bakes[shape], case.relpath)
    assert got.shape[:2] == shape
    assert np.abs(quadrant_means(got) - np.array(colours, float)).max() <= 10, quadrant_means(got).round()


def test_non_utf8_name_is_valid_utf8_text_everywhere(corpus, pixel_bakes):
    cases = [c for c in corpus[1] if c.kind == "non_utf8_name"]
    if not cases:
        pytest.skip("this filesystem refuses non-UTF-8 names")
    out = next(iter(pixel_bakes.values()))
    ref = ref_of(cases[0].relpath)
    assert ref == "a/bad\\xffname.png"
    labels = pq.read_table(out / "labels.parquet")
    assert labels.schema.field("ref_a").type == pa.string()
    assert ref in labels.column("ref_a").to_pylist()
    (out / "manifest.json").read_bytes().decode("utf-8")  # strict: the whole manifest is UTF-8


# ---------------------------------------------------------------- the pixel-count guard

def test_decompression_bomb_is_refused_by_default_from_the_header(corpus, tmp_path):
    src, cases = corpus
    root = tmp_path / "src"
    for rel in ("a/plain_0.png", "a/plain_1.png", "b/plain_0.png", "b/bomb.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, root / rel)
    result = run("bake", root, tmp_path / "out", "--size", "16", "--workers", "1", "-q", real=True, timeout=60)
    w, h = BOMB_SIZE
    assert_clean_error(result, "b/bomb.png", f"{w}x{h}", "89478485", "--max-pixels")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_max_pixels_is_configurable_and_names_the_limit(corpus, tmp_path):
    src, cases = corpus
    root = tmp_path / "src"
    plain = [c for c in cases if c.kind == "plain" and c.relpath.endswith(".png")]  # all 32x24 = 768 px
    for c in plain:
        (root / c.relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / c.relpath, root / c.relpath)
    common = ["--size", "16", "--workers", "1", "-q"]
    below, at = run_many([["bake", root, tmp_path / "below", *common, "--max-pixels", "767"],
                          ["bake", root, tmp_path / "at", *common, "--max-pixels", "768"]])
    assert_clean_error(below, "767", "--max-pixels", "32x24")
    assert any(c.relpath in below.stderr for c in plain)
    assert not (tmp_path / "below" / "manifest.json").exists()
    assert at.returncode == 0, at.stderr
    assert manifest_of(tmp_path / "at")["totals"]["skipped"] == 0
    assert manifest_of(tmp_path / "at")["config"]["max_pixels"] == 768


# ---------------------------------------------------------------- the Parquet corpus

@pytest.fixture(scope="module")
def pq_corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("pq") / "src"
    return d, make_bad_parquet(d)


@pytest.fixture(scope="module")
def pq_bakes(pq_corpus, tmp_path_factory):
    d, _ = pq_corpus
    base = tmp_path_factory.mktemp("pq_out")
    jobs = {
        "nulls_skip": ["bake", d / "nulls.parquet", base / "nulls_skip", "--on-error", "skip"],
        "nulls_fail": ["bake", d / "nulls.parquet", base / "nulls_fail", "--on-error", "fail"],
        "wrongtypes": ["bake", d / "wrongtypes.parquet", base / "wrongtypes"],
        "corrupt": ["bake", d / "corrupt.parquet", base / "corrupt"],
        "garbage": ["bake", d / "garbage.parquet", base / "garbage"],
        "empty": ["bake", d / "empty.parquet", base / "empty"],
    }
    results = run_many([args + ["--size", "16", "--workers", "1", "-q"] for args in jobs.values()])
    return {name: (args[2], result) for (name, args), result in zip(jobs.items(), results)}


def test_parquet_bad_rows_are_skipped_with_global_row_references(pq_corpus, pq_bakes):
    _, cases = pq_corpus
    out, result = pq_bakes["nulls_skip"]
    assert result.returncode == 0, result.stderr
    rows = [c for c in cases if c.relpath.startswith("nulls.parquet#")]
    assert len(rows) == 9
    bad = {c.relpath for c in rows if c.bad}
    good = {c.relpath for c in rows if not c.bad}
    assert bad == {f"nulls.parquet#{i}" for i in (1, 2, 4, 5, 6, 7)}  # rows 4.. live in later row groups
    errors = errors_of(out)
    assert {e["ref"] for e in errors} == bad
    assert len(errors) == len(bad)
    assert all(e["reason"].strip() for e in errors)
    reason = {e["ref"]: e["reason"].lower() for e in errors}
    assert "null" in reason["nulls.parquet#4"]
    assert "image bytes are null" in reason["nulls.parquet#1"]  # the struct itself is null
    # bytes null, a path naming no file (read from the file when there is one: tests/test_sources.py)
    assert reason["nulls.parquet#2"] == ("the image file 'missing.png' named in the path field does not exist "
                                         "(neither beside the parquet file nor in the working directory)")
    assert "99" in reason["nulls.parquet#5"]
    assert "-1" in reason["nulls.parquet#6"]
    assert set(labels_of(out)["ref_a"]) == good
    doc = manifest_of(out)
    assert doc["totals"]["items"] == 9 and doc["totals"]["skipped"] == 6 == doc["errors"]["count"]
    assert doc["classes"] == ["a", "b"]


def test_parquet_fail_names_the_first_bad_row(pq_bakes):
    out, result = pq_bakes["nulls_fail"]
    assert_clean_error(result, "nulls.parquet#1")
    assert not os.path.exists(os.path.join(out, "manifest.json"))


@pytest.mark.parametrize("name,file", [("corrupt", "corrupt.parquet"), ("garbage", "garbage.parquet"),
                                       ("empty", "empty.parquet")])
def test_broken_parquet_file_is_a_clear_error_naming_it(pq_bakes, name, file):
    out, result = pq_bakes[name]
    assert_clean_error(result, file)
    assert not os.path.exists(os.path.join(out, "manifest.json"))
    assert not os.path.exists(os.path.join(out, "data"))


def test_wrong_column_types_are_refused_up_front_naming_file_column_and_type(pq_bakes):
    out, result = pq_bakes["wrongtypes"]
    assert_clean_error(result, "wrongtypes.parquet", "image", "int64")
    assert not os.path.exists(os.path.join(out, "data"))
    assert not os.path.exists(os.path.join(out, "manifest.json"))


# ---------------------------------------------------------------- output names never come from input paths

EVIL_NAMES = ["a/x..evil.png", "a/-rf --overwrite.png", "a/$(touch PWNED).png", "b/new\nline.png",
              "b/back\\slash.png", "b/%s%n.png", "b/ spaced .png", "b/train-00000-of-00001.parquet.png"]


def test_output_names_never_come_from_input_paths(tmp_path):
    work = tmp_path / "work"
    folder = work / "folder"
    payloads = []
    for i, rel in enumerate(EVIL_NAMES):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        png = io.BytesIO()
        Image.new("RGB", (20, 20), (10 * i, 200 - 10 * i, 30)).save(png, "PNG")
        (folder / rel).write_bytes(png.getvalue())
        payloads.append(png.getvalue())
    evil_paths = ["../../evil.png", "/tmp/evil_abs.png", "a/../../../evil3.png", "..", "", None,
                  "data/train-99999-of-99999.parquet"]
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({
        "image": pa.array([{"bytes": payloads[i], "path": p} for i, p in enumerate(evil_paths)], image_type),
        "label": pa.array([i % 2 for i in range(len(evil_paths))], pa.int64()),
    })
    pq.write_table(table, work / "evil.parquet")
    cwd = work / "cwd" / "deeper"  # a path relative to the process would land in tmp_path
    cwd.mkdir(parents=True)
    abs_evil = os.path.exists("/tmp/evil_abs.png")
    before = tree(tmp_path)
    outs = {"folder": work / "out_folder", "parquet": work / "out_parquet"}
    results = run_many([["bake", folder, outs["folder"], "--size", "16", "--image-format", "png", "-q"],
                        ["bake", work / "evil.parquet", outs["parquet"], "--size", "16", "--image-format",
                         "png", "-q"]], real=True, cwd=cwd)
    for result in results:
        assert result.returncode == 0, result.stderr
    after = tree(tmp_path)
    # nothing outside OUT appeared or changed
    for path, content in before.items():
        assert after.get(path, "gone") == content, path
    new = {os.fsdecode(p) for p in set(after) - set(before)}
    for name, out in outs.items():
        inside = {os.path.relpath(p, out) for p in new if p.startswith(str(out) + os.sep)}
        assert inside == {"data", "data/train-00000-of-00001.parquet", "labels.parquet", "manifest.json",
                          "README.md"}, inside
    assert all(p.startswith(tuple(str(o) for o in outs.values())) for p in new), sorted(new)
    assert os.path.exists("/tmp/evil_abs.png") == abs_evil
    for out in outs.values():
        shard = pq.read_table(out / "data" / "train-00000-of-00001.parquet", columns=["key", "image"])
        for key, image in zip(shard.column("key").to_pylist(), shard.column("image").to_pylist()):
            assert re.fullmatch(r"\d{9}_c\d+", key)
            assert image["path"] == f"{key}.png"
    assert set(labels_of(outs["folder"])["ref_a"]) == set(EVIL_NAMES)
    assert set(labels_of(outs["parquet"])["ref_a"]) == {f"evil.parquet#{i}" for i in range(len(evil_paths))}


# A failure while the pool is still starting: a worker being spawned at that moment was missed by
# every terminate, and closing the pool then waited for it forever (the one hang ever seen in CI).
_SPAWN_RACE = r"""
import multiprocessing.context as context, os, time
from mixbake import executors

started, start = [], context.ForkServerProcess.start
def slow_start(self):
    start(self)
    started.append(self.pid)
    if len(started) == 2:  # the second worker runs, but the pool has not recorded it yet
        time.sleep(1.5)
context.ForkServerProcess.start = slow_start

pool = executors._LocalPool(2)  # forkserver: its workers are spawned on a thread
while len(started) < 2:
    time.sleep(0.01)
time.sleep(0.2)
pool.close(failed=True)  # a bake that failed fast
alive, deadline = set(started), time.time() + 20
while alive and time.time() < deadline:
    for pid in list(alive):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            alive.discard(pid)
    time.sleep(0.05)
print("closed; alive:", sorted(alive))
"""


@pytest.mark.skipif(os.name != "posix", reason="the forkserver start method")
def test_failure_while_workers_start_closes_every_worker_without_hanging(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _SPAWN_RACE], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, cwd=tmp_path)
    try:
        out, err = proc.communicate(timeout=45)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        pytest.fail("closing a pool whose workers were still starting hung")
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "closed; alive: []", (out + err).decode()


def test_skip_with_every_item_bad_is_an_error_not_an_empty_build(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    for i in range(3):
        for name in "ab":
            (src / name).mkdir(parents=True, exist_ok=True)
            (src / name / f"{i}.png").write_bytes(b"not an image")
    result = run("bake", src, out, "--size", "16", "--on-error", "skip", "-q")
    assert_clean_error(result, "Every one of the 6 source items is bad", "not an image Pillow can identify")
    assert not (out / "manifest.json").exists() and not (out / "labels.parquet").exists()


def test_output_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "afile").write_bytes(b"")
    assert_clean_error(run("bake", "demo", tmp_path / "afile" / "out", "-q"), "afile", "Not a directory")
