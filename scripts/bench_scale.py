"""The scale rows of ``scripts/bench.py`` (``--only classes,items``): costs that must follow what the
data holds, not the number of classes or items.

classes  30,000 tiny items (16x16 PNGs in one Parquet file, 500-row groups) with 10, 1,000 and
         21,841 classes (ImageNet-21k's), baked to raw 16x16 with 2 workers, then ``mixbake inspect``,
         ``mixbake verify`` and ``mixbake verify --deep`` of each bake: wall seconds and the peak
         RSS of the mixbake process itself (the parent, read from /proc while it runs), and of the
         largest process of the command (workers included).
items    the same at 20,000 and 300,000 items (10 classes): parent RSS growth per item, and the
         per-sample cost at both sizes.

Run: ``python scripts/bench.py --only classes,items`` (or ``python scripts/bench_scale.py``).
"""
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
CLASSES = (10, 1000, 21841)
ITEMS = (20000, 300000)
SIDE = 16


def ensure_tiny_parquet(data_dir: Path, items: int, classes: int) -> Path:
    """items 16x16 noise PNGs, label i % classes, cached in data_dir."""
    path = data_dir / f"tiny-{items}-k{classes}.parquet"
    if path.is_file():
        return path
    sys.path.insert(0, str(REPO))
    from mixbake.imaging import encode_png
    rng = np.random.default_rng(items)
    pixels = rng.integers(0, 256, (min(items, 4096), SIDE, SIDE, 3), dtype=np.uint8)
    images = [encode_png(pixels[i % len(pixels)]) for i in range(items)]
    image_type = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
    table = pa.table({"image": pa.array([{"bytes": b, "path": None} for b in images], image_type),
                      "label": pa.array(np.arange(items) % classes, pa.int64())})
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, row_group_size=500)
    tmp.replace(path)
    return path


_WRAPPER = r"""
import ctypes, json, os, resource, subprocess, sys, time
try:
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: workers count too
except (AttributeError, OSError):
    pass
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
parent_kb = 0
while proc.poll() is None:
    try:
        status = open(f"/proc/{proc.pid}/status").read()
        parent_kb = max(parent_kb, int(status.split("VmHWM:")[1].split()[0]))
    except (OSError, IndexError, ValueError):
        pass
    time.sleep(0.02)
seconds = time.perf_counter() - t0
err = proc.stderr.read().decode(errors="replace")[-500:]
while True:  # reap orphaned descendants
    try:
        if os.waitpid(-1, 0)[0] == 0:
            break
    except ChildProcessError:
        break
largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": proc.returncode, "seconds": seconds, "parent_mb": parent_kb / 1024,
                  "largest_mb": largest / 1024, "stderr": err}))
"""


def measure(cmd) -> dict:
    """Wall seconds; the peak RSS (MB) of the command's own process (VmHWM, polled) and of its
    largest process (workers included), each command in a wrapper of its own."""
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *map(str, cmd)], cwd=REPO, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def mixbake(*args):
    return [sys.executable, "-m", "mixbake", *args]


def bake_and_check(source: Path, out: Path, workers: int) -> dict:
    rows = {}
    rows["bake"] = measure(mixbake("bake", source, out, "--size", SIDE, "--image-format", "raw", "-q",
                                   "--workers", workers, "--seed", 0))
    rows["inspect"] = measure(mixbake("inspect", out))
    rows["verify"] = measure(mixbake("verify", out, "--workers", workers))
    rows["verify --deep"] = measure(mixbake("verify", out, "--deep", "--workers", workers))
    return rows


def run_classes(data_dir: Path, workers: int) -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="mixbake-scale-") as tmp:
        for k in CLASSES:
            print(f"classes: {k} ...", file=sys.stderr, flush=True)
            results[k] = bake_and_check(ensure_tiny_parquet(data_dir, 30000, k), Path(tmp) / f"k{k}", workers)
    return results


def run_items(data_dir: Path, workers: int) -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="mixbake-scale-") as tmp:
        for n in ITEMS:
            print(f"items: {n} ...", file=sys.stderr, flush=True)
            results[n] = measure(mixbake("bake", ensure_tiny_parquet(data_dir, n, 10), Path(tmp) / f"n{n}",
                                         "--size", SIDE, "--image-format", "raw", "-q", "--workers", workers))
    return results


def print_classes(results: dict) -> list:
    print("\n| classes | step | wall s | parent peak MB | largest process MB |")
    print("|---:|---|---:|---:|---:|")
    for k, rows in results.items():
        for step, r in rows.items():
            failed = f" (exit {r['rc']}: {r['stderr'].strip()[-80:]})" if r["rc"] else ""
            print(f"| {k} | {step}{failed} | {r['seconds']:.2f} | {r['parent_mb']:.0f} | {r['largest_mb']:.0f} |")
    few, many = results[CLASSES[0]], results[CLASSES[-1]]
    return [
        ("21,841 classes bake speed / 10 classes", few["bake"]["seconds"] / many["bake"]["seconds"], 0.7, ">="),
        ("parent peak RSS MB, bake of 30k items, 21,841 classes", many["bake"]["parent_mb"], 300, "<="),
        ("inspect peak RSS MB, 21,841 classes", many["inspect"]["largest_mb"], 300, "<="),
        ("verify --deep peak RSS MB (largest process), 21,841 classes", many["verify --deep"]["largest_mb"], 400, "<="),
        ("verify --deep / bake time, 21,841 classes", many["verify --deep"]["seconds"] / many["bake"]["seconds"], 2, "<="),
        ("verify / bake time, 21,841 classes", many["verify"]["seconds"] / many["bake"]["seconds"], 1, "<="),
    ]


def print_items(results: dict) -> list:
    print("\n| items | wall s | us per sample | parent peak MB | largest process MB |")
    print("|---:|---:|---:|---:|---:|")
    for n, r in results.items():
        print(f"| {n} | {r['seconds']:.2f} | {1e6 * r['seconds'] / n:.0f} | {r['parent_mb']:.0f} | "
              f"{r['largest_mb']:.0f} |")
    small, large = (results[n] for n in ITEMS)
    growth = (large["parent_mb"] - small["parent_mb"]) * 2**20 / (ITEMS[1] - ITEMS[0])
    per_sample = (large["seconds"] / ITEMS[1]) / (small["seconds"] / ITEMS[0])
    return [("parent RSS growth, bytes per item (20k -> 300k)", growth, 40, "<="),
            ("per-sample cost, 300k / 20k items (flat)", per_sample, 1.1, "<=")]


def print_checks(checks: list) -> None:
    print("\n| check | value | target | result |")
    print("|---|---:|---:|---|")
    for name, value, target, way in checks:
        ok = value >= target if way == ">=" else value <= target
        print(f"| {name} | {value:.2f} | {way} {target:g} | {'PASS' if ok else 'FAIL'} |")


def main(data_dir: Path = REPO / "bench-data", workers: int = 2, only=("classes", "items")) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    checks = []
    if "classes" in only:
        checks += print_classes(run_classes(data_dir, workers))
    if "items" in only:
        checks += print_items(run_items(data_dir, workers))
    print_checks(checks)


if __name__ == "__main__":
    main()
