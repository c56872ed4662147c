"""Nothing silently wrong (issue 13): one bake per OUT, a source that changes during a bake, a
manifest that was edited, a full disk. Each case ends in a correct build or one clear sentence.

The lock and the moving source are tested with real second processes and real file replacement
during a real bake; the full disk with a real, small tmpfs (skipped where it cannot be mounted).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import mixbake
import mixbake.run
from mixbake.verify import verify
from helpers import MIXBAKE, assert_same_tree, cli, make_folder, make_textured_folder, manifest_of

SLOW = ["--size", "64", "--image-format", "png", "--copies", "30", "--shard-size", "180", "--pool-size", "30",
        "--copies-per-pass", "6", "--workers", "2", "--seed", "5", "-q"]
SLOWER = ["--size", "96", "--image-format", "png", "--copies", "120", "--shard-size", "600", "--pool-size", "30",
          "--copies-per-pass", "20", "--workers", "2", "--seed", "5", "-q"]  # ~7200 rows: several seconds


@pytest.fixture(scope="module")
def slow_source(tmp_path_factory):
    """60 textured 160px PNGs: a bake of them with SLOW takes a few seconds."""
    return make_textured_folder(tmp_path_factory.mktemp("guards") / "src")


def start(*args):
    return subprocess.Popen(MIXBAKE + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def wait_until(condition, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"the bake ended first: {proc.communicate()[1].decode()[-500:]}")
        time.sleep(0.005)
    pytest.fail("timed out")


def finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(), err.decode()


def shards_in(out):
    data = out / "data"
    return [n for n in os.listdir(data) if n.endswith(".parquet")] if data.is_dir() else []


# ---------------------------------------------------------------- one bake per OUT

def test_a_second_bake_into_a_busy_out_is_refused_naming_the_first_and_the_first_finishes(slow_source, tmp_path):
    out = tmp_path / "out"
    first = start("bake", slow_source, out, *SLOWER)
    wait_until(lambda: (out / ".mixbake.lock").exists() and (out / ".mixbake").is_dir(), first)
    second = subprocess.run(MIXBAKE + ["bake", str(slow_source), str(out), *SLOWER], capture_output=True, text=True,
                            timeout=60)
    assert second.returncode == 1, second.stderr
    assert "Traceback" not in second.stderr
    assert f"Another bake is running into {out} (pid {first.pid} on " in second.stderr
    assert ", since 20" in second.stderr and "--wait" in second.stderr
    code, stdout, stderr = finish(first)
    assert code == 0, stderr  # its temporaries were not deleted under it
    assert stdout.startswith("Baked 7200 samples")
    assert not (out / ".mixbake.lock").exists()
    assert verify(out) == []


def test_wait_waits_for_the_running_bake_then_finds_it_complete(slow_source, tmp_path):
    out = tmp_path / "out"
    first = start("bake", slow_source, out, *SLOWER)
    wait_until(lambda: (out / ".mixbake.lock").exists(), first)
    second = start("bake", slow_source, out, *SLOWER, "--wait")
    code, _, stderr = finish(first)
    assert code == 0, stderr
    code, stdout, stderr = finish(second)
    assert code == 0, stderr
    assert "waiting for the bake that holds" in stderr
    assert "already holds this finished build" in stdout


def test_a_different_build_into_a_claimed_out_is_refused_even_before_its_first_shard(tmp_path):
    src = make_folder(tmp_path / "src", per_class=4)
    out = tmp_path / "out"
    bad = src / "a" / "00.png"
    original = bad.read_bytes()
    bad.write_bytes(b"not a png")  # the first pool fails before any shard: OUT is claimed, empty
    cli("bake", src, out, "--size", "16", "-q", code=1)
    assert (out / ".mixbake" / "build.json").exists() and not shards_in(out)
    bad.write_bytes(original)
    result = cli("bake", src, out, "--size", "16", "-q", "--seed", "9", code=1)
    assert "holds a different build (" in result.output and "the source's files" in result.output
    cli("bake", src, out, "--size", "16", "-q", "--seed", "9", "--overwrite", code=0)


# ---------------------------------------------------------------- a source that moves

def test_files_replaced_during_a_bake_stop_it_naming_one_and_commit_nothing(slow_source, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(slow_source, src)
    out = tmp_path / "out"
    proc = start("bake", src, out, *SLOWER)
    wait_until(lambda: len(shards_in(out)) >= 1, proc)
    for path in sorted(src.rglob("*.png")):  # a new version of every image (other sizes)
        Image.new("RGB", (40, 30), (9, 9, 9)).save(path)
    code, _, stderr = finish(proc)
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert "changed while the bake was reading the source" in stderr and "nothing was committed" in stderr
    assert any(f"class{c}/img_" in stderr for c in range(3))  # one sentence naming a changed file
    assert not (out / "manifest.json").exists()
    # the old state's shards are never mixed into a build of the new one
    rerun = subprocess.run(MIXBAKE + ["bake", str(src), str(out), *SLOWER], capture_output=True, text=True,
                           timeout=120)
    assert rerun.returncode == 1 and "holds a different build (the source's files)" in rerun.stderr
    fresh = subprocess.run(MIXBAKE + ["bake", str(src), str(out), *SLOW, "--overwrite"], capture_output=True,
                           text=True, timeout=120)  # (the quicker build: only its verify matters here)
    assert fresh.returncode == 0, fresh.stderr
    assert verify(out, deep=True) == []


def test_a_file_replaced_by_one_of_the_same_size_after_it_was_read_is_noticed_before_the_commit(
        tmp_path, monkeypatch):
    src = make_folder(tmp_path / "src", per_class=6)
    target = src / "b" / "03.png"
    run_tasks = mixbake.run.run_tasks

    def run_then_touch(*args, **kwargs):
        results = run_tasks(*args, **kwargs)
        data = bytearray(target.read_bytes())
        data[-20] ^= 0xFF  # same size, other bytes (a broken image, even)
        target.write_bytes(bytes(data))
        return results
    monkeypatch.setattr(mixbake.run, "run_tasks", run_then_touch)
    with pytest.raises(mixbake.MixbakeError) as info:
        mixbake.bake(str(src), str(tmp_path / "out"), size=16, workers=1, quiet=True)
    assert str(info.value).startswith("b/03.png changed while the bake was reading the source (found when the "
                                      "source was listed again before the commit)")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_resume_after_the_source_was_touched_bakes_again_from_the_start(tmp_path, monkeypatch, caplog):
    src = make_folder(tmp_path / "src", per_class=6)
    out, fresh = tmp_path / "out", tmp_path / "fresh"

    def stop(*args, **kwargs):
        raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(mixbake.run, "write_manifest", stop)
        with pytest.raises(KeyboardInterrupt):
            mixbake.bake(str(src), str(out), size=16, workers=1, quiet=True, shard_size=4)
    target = src / "a" / "02.png"
    data = bytearray(target.read_bytes())
    Image.new("RGB", (24, 24), (250, 10, 10)).save(target)  # another picture ...
    if len(target.read_bytes()) != len(data):                # ... of the same size
        target.write_bytes(bytes(data[:-40]) + bytes(40))
    assert os.path.getsize(target) == len(data)
    summary = mixbake.bake(str(src), str(out), size=16, workers=1, quiet=True, shard_size=4)
    assert summary.state == "baked" and summary.kept == 0
    assert "changed since the interrupted run" in caplog.text
    mixbake.bake(str(src), str(fresh), size=16, workers=1, quiet=True, shard_size=4)
    assert_same_tree(out, fresh)


# ---------------------------------------------------------------- verify does not trust the manifest

@pytest.fixture(scope="module")
def skipping_build(tmp_path_factory):
    base = tmp_path_factory.mktemp("edited")
    src = make_folder(base / "src", classes=("ant", "bee", "cow"), per_class=5)
    (src / "bee" / "02.png").write_bytes(b"broken")
    out = base / "out"
    cli("bake", src, out, "--size", "16", "-q", "--shard-size", "6", "--on-error", "skip", code=0)
    assert verify(out, deep=True) == []
    return out


def edited(build, tmp_path, edit):
    copy = tmp_path / "copy"
    shutil.copytree(build, copy)
    doc = manifest_of(copy)
    edit(doc, copy)
    (copy / "manifest.json").write_text(json.dumps(doc))
    return copy


def _set(path, value):
    def edit(doc, _):
        *keys, last = path
        for key in keys:
            doc = doc[key]
        doc[last] = value
    return edit


def _hide_skips(doc, copy):
    (copy / "errors.jsonl").unlink()
    doc["totals"]["skipped"] = doc["errors"]["count"] = 0
    doc["errors"]["path"] = None


@pytest.mark.parametrize("edit,problem", [
    (_set(("config", "seed"), 4), "build_id is not the hash"),
    (_set(("seed",), 7), "seed 7 differs from config.seed 0"),
    (lambda doc, _: doc.__setitem__("classes", [doc["classes"][1], doc["classes"][0], doc["classes"][2]]),
     "build_id is not the hash"),
    (_set(("build_id",), "0" * 64), "build_id is not the hash"),
    (_set(("libraries", "numpy"), "0.0.1"), "build_id is not the hash"),
    (_set(("totals", "items"), 99), "totals.items is 99"),
    (_hide_skips, "were skipped, but totals.items is 15"),
], ids=["config.seed", "seed", "classes", "build_id", "library", "totals", "hidden-skips"])
def test_verify_checks_the_manifest_against_itself(skipping_build, tmp_path, edit, problem):
    copy = edited(skipping_build, tmp_path, edit)
    for deep in (False, True):
        result = cli("verify", copy, *(["--deep"] if deep else []), code=1)  # a problem, never a traceback
        assert problem in result.output, result.output


def test_verify_checks_the_class_names_in_every_footer(skipping_build, tmp_path):
    """A manifest whose classes and build id were both rewritten (its own hash consistent) still
    disagrees with the ClassLabel names every file's footer carries."""
    from mixbake.config import fingerprint

    def swap(doc, _):
        doc["classes"] = [doc["classes"][1], doc["classes"][0], doc["classes"][2]]
        doc["build_id"] = fingerprint({"format_version": doc["format_version"], "config": doc["config"],
                                       "source": {k: doc["source"][k] for k in ("kind", "fingerprint", "options")},
                                       "classes": doc["classes"], "libraries": doc["libraries"]})
    copy = edited(skipping_build, tmp_path, swap)
    result = cli("verify", copy, code=1)
    assert "labels.parquet: its ClassLabel names differ from the manifest's classes" in result.output
    assert "its footer names build" in result.output


# ---------------------------------------------------------------- a full disk

@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_names_the_file_the_free_space_and_what_the_build_needs(slow_source, tiny_disk):
    out = tiny_disk / "out"
    result = subprocess.run(MIXBAKE + ["bake", str(slow_source), str(out), *SLOW], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{out}/" in result.stderr and "no space left on the device (" in result.stderr
    assert "free there)" in result.stderr and "re-run the same command to resume" in result.stderr
    assert not (out / "manifest.json").exists()
