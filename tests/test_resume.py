"""Real crashes and interruptions: SIGKILL of the whole process group at several points of a build,
SIGKILL of one worker, Ctrl-C; each followed by a re-run of the same command that must finish to the
very bytes of an uninterrupted build. Also stale temporaries, the finished-build no-op, a different
build refused, and --overwrite that removes only mixbake's files.

Kill points are observed on disk by polling OUT while the bake runs in its own session.
"""
import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from helpers import (MIXBAKE, all_files, assert_same_tree, cli, cli_as_process, make_folder, make_textured_folder,
                     mixbake_process,
                     snapshot)

SHARD_RE = re.compile(r"^train-(\d{5})-of-(\d{5})\.parquet$")
TMP_RE = re.compile(r"^\.train-\d{5}-of-\d{5}\.parquet\.(\d+)\.tmp$")
# 60 items, 30 copies each in 5 passes of 6 copies over pools of 30 items: 10 pools of 180 rows, one
# 180-row shard each => 10 shards of 64x64 PNGs, two written at a time (slow enough to stop mid-way)
BIG_ARGS = ["--size", "64", "--image-format", "png", "--copies", "30", "--shard-size", "180",
            "--pool-size", "30", "--copies-per-pass", "6", "--workers", "2", "--seed", "5", "-q"]
NUM_SHARDS = 10


# ---------------------------------------------------------------- helpers

@dataclass
class State:
    exists: bool = False
    entries: int = 0
    data: bool = False
    shards: int = 0
    tmps: int = 0
    labels_tmp: bool = False
    labels: bool = False
    manifest: bool = False
    sidecars: int = 0  # shards committed (their sidecar written): what a re-run keeps


def state_of(out) -> State:
    s = State()
    try:
        top = os.listdir(out)
    except FileNotFoundError:
        return s
    s.exists, s.entries = True, len(top)
    s.labels_tmp = any(n.startswith(".labels.parquet") and n.endswith(".tmp") for n in top)
    s.labels = "labels.parquet" in top
    s.manifest = "manifest.json" in top
    sidecars = os.path.join(out, ".mixbake", "shards")
    s.sidecars = len([n for n in os.listdir(sidecars) if n.endswith(".arrow")]) if os.path.isdir(sidecars) else 0
    if "data" in top:
        s.data = True
        try:
            names = os.listdir(os.path.join(out, "data"))
        except FileNotFoundError:
            names = []
        s.shards = sum(1 for n in names if SHARD_RE.match(n))
        s.tmps = sum(1 for n in names if n.endswith(".tmp"))
    return s


def start_bake(src, out, args=BIG_ARGS):
    return subprocess.Popen(MIXBAKE + ["bake", str(src), str(out), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def group_alive(pgid) -> bool:
    """Does any live (non-zombie) process remain in process group ``pgid``? Zombies do not count: an
    orphan is reaped by whoever adopts it (init, or a subreaper such as a CI runner), not by us."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    state, _, pgrp = f.read().rsplit(")", 1)[1].split()[:3]
            except (OSError, ValueError):
                continue
            if int(pgrp) == pgid and state not in ("Z", "X"):
                return True
    return False


def wait_group_gone(pgid, timeout=15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return True
        time.sleep(0.02)
    return False


def wait_for(proc, out, condition, timeout=90.0):
    """Poll OUT until condition(state) holds; returns the state, or None if the bake ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = state_of(out)
        if condition(s):
            return s
        if proc.poll() is not None:
            return None
        # past the last shard the windows are a few ms wide: poll without sleeping
        time.sleep(0 if s.shards >= NUM_SHARDS else 0.001)
    proc.kill()
    pytest.fail("the bake neither reached the kill point nor finished in time")


def kill_group(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert wait_group_gone(proc.pid), "processes of the killed bake survive"


def stderr_within(proc, timeout, failure):
    """The bake's stderr once it has exited; kill its group and fail the test if it takes longer."""
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(failure)


def bake(src, out, args=BIG_ARGS, timeout=120):
    return mixbake_process("bake", src, out, *args, timeout=timeout)


def bake_inproc(src, out, args):
    """The CLI in-process (cheap: no new interpreter). A traceback the user would see fails the test."""
    return cli_as_process("bake", src, out, *args)


def verify_deep(out):
    result = cli("verify", out, "--deep", code=0)
    assert "OK" in result.output


def assert_same_build(out, ref):
    got, want = all_files(out), all_files(ref)
    assert not [p for p in got if p.endswith(".tmp")], "temporaries left behind"
    assert_same_tree(got, want)  # want: the uninterrupted build


def descendants(pid):
    """Pids of every process below ``pid`` (via /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """(source, OUT of an uninterrupted reference bake)."""
    base = tmp_path_factory.mktemp("resume")
    src = make_textured_folder(base / "src")
    ref = base / "ref"
    result = bake(src, ref)
    assert result.returncode == 0, result.stderr
    names = sorted(os.listdir(ref / "data"))
    assert len(names) == NUM_SHARDS and all(SHARD_RE.match(n) for n in names), names
    assert sorted(os.listdir(ref)) == ["README.md", "data", "labels.parquet", "manifest.json"]
    return src, ref


def test_workers_end_when_the_main_process_is_killed_alone(big, tmp_path):
    """The OOM killer takes the main process only: its workers must not wait for tasks forever."""
    src, ref = big
    out = tmp_path / "out"
    proc = start_bake(src, out)
    assert wait_for(proc, out, lambda s: s.tmps > 0) is not None, "the bake finished before its workers ran"
    os.kill(proc.pid, signal.SIGKILL)  # the main process alone, not its group
    proc.wait()
    gone = wait_group_gone(proc.pid, timeout=10.0)
    if not gone:
        os.killpg(proc.pid, signal.SIGKILL)
    assert gone, "worker processes outlived the killed main process"
    result = bake(src, out)  # and the build still resumes to the same bytes
    assert result.returncode == 0, result.stderr
    assert_same_build(out, ref)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    base = tmp_path_factory.mktemp("small")
    return make_textured_folder(base / "src", classes=2, per_class=6, side=24, seed=1)


SMALL_ARGS = ["--size", "16", "--shard-size", "4", "--workers", "2", "-q"]


# ---------------------------------------------------------------- SIGKILL of the whole process group

KILL_POINTS = {
    # name: (condition to kill at, what must hold right after the kill)
    "claimed_before_any_shard": (lambda s: s.exists and s.entries > 0 and not s.data,
                                 lambda s: s.shards == 0 and not s.manifest),
    "first_temporaries_no_shard": (lambda s: s.tmps > 0 and s.shards == 0,
                                   lambda s: s.shards == 0 and s.tmps > 0),
    "after_1_shard": (lambda s: s.shards >= 1, lambda s: 1 <= s.shards < NUM_SHARDS),
    "after_3_shards": (lambda s: s.shards >= 3, lambda s: 3 <= s.shards < NUM_SHARDS),
    "after_7_shards": (lambda s: s.shards >= 7, lambda s: 7 <= s.shards < NUM_SHARDS and not s.manifest),
    # labels.parquet is appended shard by shard while the build runs (a temporary until the end)
    "labels_parquet_half_written": (lambda s: s.labels_tmp and s.shards >= NUM_SHARDS // 2,
                                    lambda s: s.labels_tmp and not s.labels and not s.manifest),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_then_rerun_gives_identical_bytes(big, tmp_path, point):
    src, ref = big
    out = tmp_path / "out"
    condition, after = KILL_POINTS[point]
    proc = start_bake(src, out)
    seen = wait_for(proc, out, condition)
    assert seen is not None, f"the bake finished before the kill point {point}"
    kill_group(proc)
    killed = state_of(out)
    assert after(killed), f"{point}: state after the kill {killed}"
    assert not (out / "manifest.json").exists()
    print(f"\nkill point {point}: {killed}")

    result = bake(src, out)
    assert result.returncode == 0, result.stderr
    # it resumes exactly the shards committed before the kill (a shard file without its sidecar is not)
    expected = f"Resumed ({killed.sidecars} of {NUM_SHARDS} shards kept):" if killed.sidecars else "Baked "
    assert result.stdout.startswith(expected), result.stdout
    assert_same_build(out, ref)
    verify_deep(out)


def test_sigkill_between_labels_and_manifest_best_effort(big, tmp_path):
    """The window between labels.parquet and manifest.json is a few ms wide: try to hit it. Whatever
    is hit, the re-run must end with the reference bytes, and say what it did."""
    src, ref = big
    out = tmp_path / "out"
    proc = start_bake(src, out)
    seen = wait_for(proc, out, lambda s: s.labels)
    if seen is not None:
        kill_group(proc)
    else:
        proc.communicate(timeout=30)
    killed = state_of(out)
    hit = killed.labels and not killed.manifest
    print(f"\nkill point labels_written_before_manifest: {'HIT' if hit else 'missed'} {killed}")
    result = bake(src, out)
    assert result.returncode == 0, result.stderr
    if killed.manifest:
        assert "already holds this finished build" in result.stdout
    else:
        assert result.stdout.startswith("Resumed"), result.stdout
    assert_same_build(out, ref)


# ---------------------------------------------------------------- one worker killed

@pytest.fixture(scope="module")
def worker_killed(big, tmp_path_factory):
    """SIGKILL one worker while it writes a shard. Returns a record of what the parent did; when it
    stopped with an error, the same command is re-run to completion."""
    src, ref = big
    out = tmp_path_factory.mktemp("worker_killed") / "out"
    proc = start_bake(src, out)
    victim = None
    deadline = time.monotonic() + 90
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        s = state_of(out)
        if 1 <= s.shards <= NUM_SHARDS - 4:
            below = set(descendants(proc.pid))
            for name in os.listdir(out / "data"):
                m = TMP_RE.match(name)
                if m and int(m.group(1)) in below and (out / "data" / name).exists():
                    victim = int(m.group(1))
                    os.kill(victim, signal.SIGKILL)  # busy writing this shard right now
                    break
        time.sleep(0.001)
    assert victim is not None, "no busy worker found"
    killed_at = time.monotonic()
    err = stderr_within(proc, 60, "the parent hangs after a worker died")
    record = dict(out=out, victim=victim, returncode=proc.returncode, seconds=time.monotonic() - killed_at,
                  stderr=err.decode("utf-8", "replace"), orphans=not wait_group_gone(proc.pid), rerun=None)
    print(f"\nkilled worker {victim}: exit {proc.returncode}, stderr {record['stderr'].strip()!r}")
    if proc.returncode != 0:
        record["rerun"] = bake(src, out)
    return record


def test_killed_worker_does_not_hang_and_is_reported(worker_killed):
    """The parent either stops with a clear message (exit 1) so a re-run can resume, or reports the
    lost worker and retries the unfinished shards itself. No hang, no traceback, no orphans."""
    r = worker_killed
    assert r["seconds"] < 30
    assert "Traceback" not in r["stderr"]
    assert re.search(r"worker", r["stderr"], re.I), r["stderr"]
    assert not r["orphans"], "processes keep running after the parent exited"
    if r["returncode"] == 0:
        assert re.search(r"retr", r["stderr"], re.I), r["stderr"]
    else:
        assert r["returncode"] == 1, r
        assert re.search(r"re-run|resume", r["stderr"], re.I), r["stderr"]
        assert r["rerun"].returncode == 0, r["rerun"].stderr
        assert r["rerun"].stdout.startswith("Resumed"), r["rerun"].stdout


def test_killed_worker_build_ends_with_the_reference_bytes(big, worker_killed):
    out, ref = worker_killed["out"], big[1]
    got = {p: b for p, b in all_files(out).items() if not p.endswith(".tmp")}
    want = all_files(ref)
    assert_same_tree(got, want)


def test_killed_worker_leaves_no_temporary_in_the_finished_build(worker_killed):
    out = worker_killed["out"]
    left = [p for p in all_files(out) if p.endswith(".tmp")]
    assert not left, left
    verify_deep(out)


# ---------------------------------------------------------------- Ctrl-C

def test_ctrl_c_stops_promptly_and_resumes_to_identical_bytes(big, tmp_path):
    src, ref = big
    out = tmp_path / "out"
    proc = start_bake(src, out)
    assert wait_for(proc, out, lambda s: s.sidecars >= 2) is not None  # committed shards: a re-run keeps them
    os.killpg(proc.pid, signal.SIGINT)
    sent = time.monotonic()
    err = stderr_within(proc, 30, "Ctrl-C did not stop the bake within 30 s")
    elapsed = time.monotonic() - sent
    err = err.decode("utf-8", "replace")
    assert elapsed < 10, elapsed
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err, err
    assert re.search(r"re-run|resume", err, re.I), err
    assert err.count("\n") <= 2, err
    assert not (out / "manifest.json").exists()
    assert wait_group_gone(proc.pid), "orphaned processes keep running after Ctrl-C"

    result = bake(src, out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Resumed")
    assert_same_build(out, ref)


# ---------------------------------------------------------------- stale temporaries

def test_stale_temporaries_are_removed_on_resume_and_nothing_outside_out_is_touched(big, tmp_path):
    """Kill after 3 shards, plant junk temporaries, resume and kill again after 7 (a resume of a
    resume), plant more, then finish: the junk is gone, look-alikes outside OUT are untouched."""
    src, ref = big
    out = tmp_path / "out"
    outside = {tmp_path / ".train-00000-of-00010.parquet.12345.tmp": b"not mixbake's",
               tmp_path / "data" / ".train-00000-of-00010.parquet.12345.tmp": b"not mixbake's either",
               tmp_path / "data" / "train-00000-of-00010.parquet": b"a look-alike outside OUT"}
    for path, content in outside.items():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
    junk = []
    for target, name in ((3, ".train-00000-of-00010.parquet.12345.tmp"),
                         (7, ".train-00009-of-00010.parquet.4194303.tmp")):
        proc = start_bake(src, out)
        assert wait_for(proc, out, lambda s, t=target: s.shards >= t) is not None
        kill_group(proc)
        assert target <= state_of(out).shards < NUM_SHARDS
        assert not (out / "manifest.json").exists()
        junk.append(out / "data" / name)
        junk[-1].write_bytes(b"PAR1 half-written junk")
    result = bake(src, out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Resumed")
    for path in junk:
        assert not path.exists()
    for path, content in outside.items():
        assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".train-00000-of-00010.parquet.12345.tmp", "data", "out"])
    assert sorted(os.listdir(tmp_path / "data")) == sorted(p.name for p in outside if p.parent.name == "data")
    assert_same_build(out, ref)


# ---------------------------------------------------------------- re-runs, other builds, --overwrite

@pytest.fixture(scope="module")
def small_ref(small, tmp_path_factory):
    out = tmp_path_factory.mktemp("small_ref") / "out"
    result = bake_inproc(small, out, SMALL_ARGS)
    assert result.returncode == 0, result.stderr
    assert len(os.listdir(out / "data")) >= 3
    return out


@pytest.fixture
def small_build(small_ref, tmp_path):
    """A private copy of a finished small build."""
    out = tmp_path / "out"
    shutil.copytree(small_ref, out)
    return out


def test_rerun_of_a_finished_build_is_a_noop_that_says_so(small, small_build):
    before = snapshot(small_build)
    result = bake_inproc(small, small_build, SMALL_ARGS)
    assert result.returncode == 0, result.stderr
    assert "already holds this finished build" in result.stdout
    assert_same_tree(snapshot(small_build), before)


def test_different_seed_is_refused_and_nothing_changes(small, small_build):
    before = snapshot(small_build)
    result = bake_inproc(small, small_build, SMALL_ARGS + ["--seed", "9"])
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "different build" in result.stderr and "--overwrite" in result.stderr, result.stderr
    assert "(seed 0 -> 9)" in result.stderr, result.stderr  # says what differs
    assert_same_tree(snapshot(small_build), before)


def test_an_unfinished_different_build_is_refused_naming_what_differs(tmp_path):
    from mixbake import manifest
    from mixbake.errors import MixbakeError
    from mixbake.store import Store
    store = Store.open(str(tmp_path / "out"))
    old = {"config": {"seed": 1, "size": [16, 16]}, "source": {"fingerprint": "f"}, "libraries": {"zlib": "1.2"}}
    assert manifest.claim_out(store, "old-build", "parquet", False, old) == "new"
    (tmp_path / "out" / ".mixbake" / "shards").mkdir(parents=True)
    (tmp_path / "out" / ".mixbake" / "shards" / "shard-00000.arrow").write_bytes(b"a finished shard")
    new = {"config": {"seed": 1, "size": [32, 32]}, "source": {"fingerprint": "g"}, "libraries": {"zlib": "1.3"}}
    with pytest.raises(MixbakeError, match=r"different build \(size \[16, 16\] -> \[32, 32\]; "
                                           r"zlib \"1.2\" -> \"1.3\"; the source's files\)"):
        manifest.claim_out(store, "new-build", "parquet", False, new)


def test_overwrite_replaces_the_build_with_exactly_a_fresh_one(small, small_build, tmp_path):
    other = ["--size", "16", "--shard-size", "6", "--workers", "2", "-q", "--seed", "9"]
    old_shards = set(os.listdir(small_build / "data"))
    result = bake_inproc(small, small_build, other + ["--overwrite"])
    assert result.returncode == 0, result.stderr
    fresh = tmp_path / "fresh"
    assert bake_inproc(small, fresh, other).returncode == 0
    assert_same_tree(small_build, fresh)  # old shards, labels and manifest all replaced
    assert not old_shards & set(os.listdir(small_build / "data"))  # another shard count: other names


@pytest.mark.parametrize("foreign,named", [("notes.txt", "notes.txt"), ("data/README.txt", "data/README.txt"),
                                           ("images/mine.jpg", "images"), (".hidden_config", ".hidden_config")])
def test_overwrite_refuses_when_out_holds_a_foreign_file(small, small_build, foreign, named):
    path = small_build / foreign
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"the user's own file")
    before = snapshot(small_build)
    result = bake_inproc(small, small_build, SMALL_ARGS + ["--seed", "9", "--overwrite"])
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert "did not write" in result.stderr and f"({named}" in result.stderr, result.stderr
    assert_same_tree(snapshot(small_build), before)


def test_foreign_images_dir_in_a_fresh_out_is_refused_not_adopted(small, tmp_path):
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    (out / "images" / "mine.jpg").write_bytes(b"the user's own file")
    result = bake_inproc(small, out, SMALL_ARGS)
    assert result.returncode == 1
    assert "images" in result.stderr
    assert (out / "images" / "mine.jpg").read_bytes() == b"the user's own file"


# ---------------------------------------------------------------- resume after a power loss

def _crash_before_manifest(src, out, args, monkeypatch):
    """A build whose every shard (and sidecar) is written, stopped before its manifest: what a
    power loss leaves when the shards' sidecars reached the disk."""
    import mixbake.run

    def crash(*a, **k):
        raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(mixbake.run, "write_manifest", crash)
        assert bake_inproc(src, out, args).returncode == 130
    assert not (out / "manifest.json").exists() and (out / ".mixbake" / "shards").is_dir()


@pytest.mark.parametrize("fmt", ["parquet", "webdataset"])
def test_a_crash_between_the_card_and_the_manifest_resumes(small, tmp_path, monkeypatch, fmt):
    """The card is written just before manifest.json: a run stopped in between left a card in an
    unfinished build, which is the build's own (not a user's file that blocks the resume)."""
    import mixbake.manifest
    args = SMALL_ARGS + ["--format", fmt]
    ref = tmp_path / "ref"
    assert bake_inproc(small, ref, args).returncode == 0
    out = tmp_path / "out"
    real_write_json = mixbake.manifest.write_json

    def crash_at_the_manifest(store, rel, obj):
        if rel == mixbake.manifest.MANIFEST:
            raise KeyboardInterrupt
        real_write_json(store, rel, obj)
    with monkeypatch.context() as m:
        m.setattr(mixbake.manifest, "write_json", crash_at_the_manifest)
        assert bake_inproc(small, out, args).returncode == 130
    assert (out / "README.md").is_file() and not (out / "manifest.json").exists()
    result = bake_inproc(small, out, args)
    assert result.returncode == 0 and result.stdout.startswith("Resumed"), result.stderr
    assert_same_build(out, ref)


@pytest.mark.parametrize("fmt", ["parquet", "folder"])
def test_resume_rebakes_a_kept_shard_whose_bytes_did_not_survive(small, tmp_path, monkeypatch, fmt):
    """Workers do not fsync their shards (the parent does, before the manifest): after a power
    loss a sidecar can outlive its shard's data. A resume re-hashes each shard it keeps; a shard
    whose bytes changed (same size) is baked again, the others are kept untouched."""
    args = SMALL_ARGS + ["--format", fmt]
    ref = tmp_path / "ref"
    assert bake_inproc(small, ref, args).returncode == 0
    out = tmp_path / "out"
    _crash_before_manifest(small, out, args, monkeypatch)
    files = sorted(p for p in out.rglob("*") if p.is_file() and ".mixbake" not in p.parts
                   and p.suffix in (".parquet", ".jpg") and p.name != "labels.parquet")
    assert len(files) >= 3
    damaged, kept = files[0], files[-1]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)  # the tail zero-filled, size unchanged
    damaged.write_bytes(bytes(data))
    kept_mtime = kept.stat().st_mtime_ns

    result = bake_inproc(small, out, args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Resumed"), result.stdout
    assert_same_build(out, ref)
    assert kept.stat().st_mtime_ns == kept_mtime  # a sound shard is not rewritten
    verify_deep(out)


@pytest.mark.parametrize("fmt", ["parquet", "webdataset", "folder"])
@pytest.mark.parametrize("resumed", [False, True])
def test_every_shard_is_on_disk_before_the_manifest_commits_it(small, tmp_path, monkeypatch, fmt, resumed):
    """Durability order: every shard file the manifest lists (shards kept from an earlier, crashed
    run too) is fsynced, and so is its directory, before labels.parquet and manifest.json are
    written; a folder shard's images through a sync of OUT's whole file system."""
    import mixbake.store.durable
    import mixbake.store.local
    args = SMALL_ARGS + ["--format", fmt]
    out = tmp_path / "out"
    if resumed:
        _crash_before_manifest(small, out, args, monkeypatch)
    events = []
    durable, local_store = mixbake.store.durable, mixbake.store.local.LocalStore
    real_fsync, real_sync, real_replace = durable._fsync, local_store.sync, os.replace
    monkeypatch.setattr(durable, "_fsync", lambda path: (real_fsync(path), events.append(("fsync", path))))
    monkeypatch.setattr(local_store, "sync", lambda store: (real_sync(store), events.append(("syncfs", ""))))
    monkeypatch.setattr(os, "replace", lambda a, b: (real_replace(a, b), events.append(("commit", os.fspath(b)))))
    result = bake_inproc(small, out, args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Resumed" if resumed else "Baked"), result.stdout

    def first(event):
        assert event in events, event
        return events.index(event)
    committed = min(first(("commit", str(out / name))) for name in ("labels.parquet", "manifest.json"))
    shards = json.loads((out / "manifest.json").read_text())["shards"]
    assert len(shards) >= 3
    if fmt == "folder":
        assert first(("syncfs", "")) < committed
        return
    for shard in shards:
        path = out / shard["path"]
        assert first(("fsync", str(path))) < committed, path
        assert first(("fsync", str(path.parent))) < committed, path.parent
