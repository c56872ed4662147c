"""mixbake throughput / memory benchmark (one run, one Markdown table).

Run from anywhere (mixbake is run with the repo root as working directory, so
the in-tree package is used even when it is not pip-installed):

    python scripts/bench.py                     # full run, N=2000 photos
    python scripts/bench.py --quick             # smoke run on small data
    python scripts/bench.py --only floor,baseline
    python scripts/bench.py --memory            # also peak RSS at 2k vs 20k images
    python scripts/bench.py --only deit         # the augmentation chain vs torchvision v2

Data (cached in --data, default <repo>/bench-data/, regenerated when missing):
  photos-<N>-s<seed>/class_<c>/img_<i>.jpg   N random crops (rescaled, maybe
      flipped) of the colour photos that ship inside the scikit-image wheel,
      width 300..600, height 250..500, JPEG q90, 10 classes. Seeded per image.
  photos-<N>-s<seed>.parquet   the same images as a Parquet file: columns
      image struct<bytes: binary, path: string>, label int64; 500-row groups.
  small-<M>-s<seed>/class_<c>/img_<i>.png    M 32x32 PNG crops.

Rows (all 224x224 JPEG q90 output, --workers (2) workers unless stated;
samples/s = output samples / wall seconds):
  floor        pool of worker processes doing only read + decode + resize +
               encode per image with the fastest codecs (simplejpeg with
               power-of-two DCT scaling, cv2 INTER_LINEAR cover + centre crop,
               simplejpeg encode 4:2:0). Nothing written; pool startup and
               warm-up excluded. The practical upper bound for a bake.
  mixbake-2w   `python -m mixbake bake DATA OUT ... --workers 2`, whole
  mixbake-1w   command wall clock (interpreter start-up included) ... --workers 1.
  floor-1w     the floor with 1 process: the machine's own 2w/1w scaling, for reference.
  baseline     scripts/baseline_pillow.py: single-process PIL + numpy mixup, the typical
               script: a random partner per image, opened again (two decodes per output).
  baseline-batch  ... --pairing batch: partners within batches of 64, each image decoded
               once as mixbake does; for reference (the issue's 6x is against the typical one).
  parquet      mixbake-2w reading the Parquet file instead of the folder (run in turn with it).
  small-floor  the floor for the small images: the same pool of workers doing only read +
               PNG decode (OpenCV) + raw bytes per 32x32 image; nothing written.
  small-png-floor  ... read + PNG decode + PNG encode (OpenCV's, its default level 1 and
               run-length strategy): the floor for small-png, bound by zlib's deflate.
  copies4      mixbake-2w --copies 4 (format 2: passes of fresh pools; per output sample), run in
               turn with copies4-format1: the same with format 1's pairing (every copy of an item in
               one small pool, decoded once), what --copies 4 cost before format 2.
  small-png    mixbake-2w on the 32x32 PNG folder (default 50000 images: CIFAR-10's
               training-set size), --size 32 --image-format png
  small-raw    ... --image-format raw.
  x floor      samples/s over the floor's (small-png: over small-png-floor's; small-raw:
               over small-floor's).
  peak RSS MB  largest max-RSS of any single process in the command's tree
               (getrusage(RUSAGE_CHILDREN) in a wrapper that, on Linux, is a
               child subreaper, so forkserver workers are counted too).
  --memory     mixbake-2w peak RSS at --n (2000) and --n-large (20000) photos.
  mixup-plain  (group deit) mixbake-2w --mixup 1 --cutmix 0: every output a plain mixup
               (cover resize + centre crop, no per-sample augmentation), run in turn with:
  deit         mixbake-2w --preset deit: RandomResizedCrop 0.08-1 + hflip 0.5 + RandAugment(2, 9)
               + mixup 0.8 / cutmix 1.0 50/50 + random erasing 0.25 (noise) + label smoothing 0.1.
  torchvision-deit  scripts/peer_torchvision.py (its docstring has the details): the same chain
               as a torchvision v2 user writes it: ImageFolder + torchvision.io.decode_image,
               v2 RandomResizedCrop / RandomHorizontalFlip / RandAugment(2, 9) on uint8,
               ToDtype float + RandomErasing(0.25, "random"), DataLoader(batch 64, 2 workers),
               RandomChoice([MixUp(0.8), CutMix(1.0)]) per batch in collate_fn, label smoothing,
               back to uint8, torchvision.io.encode_jpeg q90, one .jpg per sample + a .npy of soft
               labels per batch (whole-process wall clock, torch import and worker start-up
               included; samples = .jpg files written). An "error" row when torchvision is not
               installed (pip install -e '.[bench]'). Torch's default threads (the main
               process's intra-op threads oversubscribe the workers' CPUs: --main-threads 1, not
               used here, makes the peer ~25% faster). The deit group is in the default run
               (~40 s per repeat at 10000 photos on 2 CPUs, mostly the peer); --only deit runs it
               alone. x floor / x baseline of these rows compare bakes doing more work per
               sample than the floor / baseline.
  no-masks, with-masks  (only when asked: --only masks) mixbake-2w without and with --masks: a
               segmentation mask per photo (8-bit gray PNG at the photo's size, 21 classes in
               40-pixel blocks and some ignore), decoded, checked, fitted (nearest) and written
               as a PNG beside each image (mask_b for mixup rows); run in turn.
  no-boxes, with-boxes  (only when asked: --only boxes) mixbake-2w on the photos as a classification
               folder, and as a detection source (--annotations: a COCO JSON of 1-8 random boxes per
               photo, 10 categories; every box moved through each output's geometry and op, the
               objects column written); run in turn.
  classes, items  (only when asked: --only classes,items) the scale rows of scripts/bench_scale.py:
               10 / 1,000 / 21,841 classes at 30k tiny items (bake, inspect, verify, verify --deep:
               time, parent and largest-process RSS); 20k vs 300k items (RSS growth per item).
Timed rows keep the best of --repeat runs (default 3). Then the issue's
targets are checked (PASS / FAIL). A busy machine skews everything: the CPU use
measured just before the run is printed (warning if above 0.2 CPUs).

Needs numpy, pillow, simplejpeg, opencv-python-headless, pyarrow (mixbake's own
dependencies) plus scikit-image (only for its bundled photos); torch + torchvision (optional: the
torchvision-deit row). `pip install -e '.[bench]'` installs them all.
"""
import argparse
import compileall
import hashlib
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import simplejpeg
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "scripts" / "baseline_pillow.py"
PEER_TORCHVISION = REPO / "scripts" / "peer_torchvision.py"
# Colour photographs shipped inside the scikit-image wheel (no pooch download).
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg",
          "ihc.png", "motorcycle_left.png", "motorcycle_right.png",
          "retina.jpg", "rocket.jpg")
N_CLASSES = 10
GEN_VERSION = 1  # bump when the generator changes, to invalidate caches
SIZE = 224
QUALITY = 90
RUNS = ("floor", "mixbake-2w", "startup", "mixbake-1w", "baseline", "baseline-batch", "parquet", "small",
        "copies", "deit", "masks", "boxes", "memory", "classes", "items")

# ----------------------------------------------------------------- data


_SOURCES = []


def source_paths():
    """The PHOTOS inside the installed scikit-image (never downloaded)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None:
        raise SystemExit("bench.py needs scikit-image for its source photos: "
                         "pip install scikit-image")
    paths = [Path(spec.origin).parent / "data" / name for name in PHOTOS]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"not in this scikit-image wheel: {', '.join(missing)}")
    return paths


def sources_digest():
    h = hashlib.sha256()
    for path in source_paths():
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _load_sources():
    _SOURCES[:] = [Image.open(p).convert("RGB") for p in source_paths()]


def _random_box(rng, src_size, aspect, min_frac):
    """Random crop box with the given aspect, min_frac..1 of the largest fit."""
    sw, sh = src_size
    bw = min(sw, sh * aspect)
    frac = rng.uniform(min_frac, 1.0)
    cw, ch = bw * frac, bw * frac / aspect
    x0, y0 = rng.uniform(0, sw - cw), rng.uniform(0, sh - ch)
    return (x0, y0, x0 + cw, y0 + ch)


def _make_photo(job):
    root, i, seed = job
    rng = np.random.default_rng([seed, 0, i])
    src = _SOURCES[rng.integers(len(_SOURCES))]
    w, h = int(rng.integers(300, 601)), int(rng.integers(250, 501))
    img = src.resize((w, h), Image.LANCZOS, box=_random_box(rng, src.size, w / h, 0.6))
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    img.save(Path(root) / f"class_{i % N_CLASSES}" / f"img_{i:06d}.jpg", quality=QUALITY)


def _make_small(job):
    root, i, seed = job
    rng = np.random.default_rng([seed, 1, i])
    src = _SOURCES[rng.integers(len(_SOURCES))]
    img = src.resize((32, 32), Image.LANCZOS, box=_random_box(rng, src.size, 1.0, 0.15))
    img.save(Path(root) / f"class_{i % N_CLASSES}" / f"img_{i:06d}.png")


def ensure_folder(data_dir, kind, n, seed, workers):
    """Return data_dir/<kind>-<n>-s<seed>/, generating it unless cached."""
    root = data_dir / f"{kind}-{n}-s{seed}"
    stamp = root.with_name(root.name + ".json")
    meta = {"kind": kind, "n": n, "seed": seed, "version": GEN_VERSION,
            "sources": sources_digest()}
    if root.is_dir() and stamp.is_file() and json.loads(stamp.read_text()) == meta:
        return root
    log(f"generating {n} {kind} in {root} ...")
    t0 = time.perf_counter()
    stamp.unlink(missing_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    for c in range(N_CLASSES):
        (root / f"class_{c}").mkdir(parents=True)
    make = _make_photo if kind == "photos" else _make_small
    jobs = [(str(root), i, seed) for i in range(n)]
    with mp.Pool(workers, initializer=_load_sources) as pool:
        for _ in pool.imap_unordered(make, jobs, chunksize=32):
            pass
    stamp.write_text(json.dumps(meta))
    log(f"  done in {time.perf_counter() - t0:.1f}s")
    return root


def _make_mask(job):
    """The mask of one photo: 21 classes (VOC's count with background) in 40-pixel blocks, some
    blocks the ignore index 255, 8-bit gray PNG at the photo's size, like a VOC/ADE20k annotation."""
    folder, masks, rel = job
    with Image.open(Path(folder) / rel) as im:
        w, h = im.size
    rng = np.random.default_rng(int(hashlib.sha256(rel.encode()).hexdigest()[:8], 16))
    grid = rng.integers(0, 22, (h // 40 + 1, w // 40 + 1))
    grid[grid == 21] = 255
    mask = np.kron(grid, np.ones((40, 40), np.int64))[:h, :w].astype(np.uint8)
    out = (Path(masks) / rel).with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask, "L").save(out)


def ensure_masks(folder, workers):
    """<folder>-masks/: a segmentation mask per photo (mirroring its tree), cached."""
    masks = folder.with_name(folder.name + "-masks")
    stamp = masks.with_name(masks.name + ".json")
    meta = {"folder": folder.name, "version": GEN_VERSION}
    if masks.is_dir() and stamp.is_file() and json.loads(stamp.read_text()) == meta:
        return masks
    log(f"generating masks in {masks} ...")
    shutil.rmtree(masks, ignore_errors=True)
    jobs = [(str(folder), str(masks), str(f.relative_to(folder))) for f in list_files(folder)]
    with mp.Pool(workers) as pool:
        for _ in pool.imap_unordered(_make_mask, jobs, chunksize=32):
            pass
    stamp.write_text(json.dumps(meta))
    return masks


def ensure_annotations(folder):
    """<folder>-coco.json: COCO instances for the photos, 1-8 random boxes each (seeded per photo),
    10 categories; the photos' sizes read from their headers. Cached."""
    path = folder.with_name(folder.name + "-coco.json")
    if path.is_file():
        return path
    log(f"writing {path} ...")
    images, annotations = [], []
    for i, f in enumerate(list_files(folder)):
        with Image.open(f) as im:
            w, h = im.size
        rel = str(f.relative_to(folder))
        images.append({"id": i, "file_name": rel, "width": w, "height": h})
        rng = np.random.default_rng(int(hashlib.sha256(rel.encode()).hexdigest()[:8], 16))
        for _ in range(int(rng.integers(1, 9))):
            bw, bh = float(rng.uniform(0.05, 0.5) * w), float(rng.uniform(0.05, 0.5) * h)
            x, y = float(rng.uniform(0, w - bw)), float(rng.uniform(0, h - bh))
            annotations.append({"id": len(annotations), "image_id": i, "bbox": [x, y, bw, bh],
                                "category_id": int(rng.integers(0, N_CLASSES)), "iscrowd": 0})
    categories = [{"id": c, "name": f"class_{c}"} for c in range(N_CLASSES)]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def ensure_parquet(folder):
    """Parquet copy of an image folder (HF-datasets-like schema), cached."""
    path = folder.with_name(folder.name + ".parquet")
    stamp = folder.with_name(folder.name + ".json")
    if path.is_file() and path.stat().st_mtime >= stamp.stat().st_mtime:
        return path
    log(f"writing {path} ...")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    files = list_files(folder)
    images = [{"bytes": f.read_bytes(), "path": str(f.relative_to(folder))} for f in files]
    labels = [classes.index(f.parent.name) for f in files]
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({"image": pa.array(images, type=image_type),
                      "label": pa.array(labels, type=pa.int64())})
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, row_group_size=500)
    tmp.replace(path)
    return path


def list_files(folder):
    return sorted(p for p in folder.glob("*/*") if p.suffix in (".jpg", ".png"))


# ---------------------------------------------------------------- floor


def _floor_init():
    cv2.setNumThreads(1)


def _floor_one(path):
    """Read + decode (power-of-two DCT scaling) + resize-cover + crop + encode."""
    data = Path(path).read_bytes()
    h, w, _, _ = simplejpeg.decode_jpeg_header(data)
    k = 8
    while k > 1 and min(h, w) // k < SIZE:
        k //= 2
    img = simplejpeg.decode_jpeg(data, min_height=-(-h // k), min_width=-(-w // k))
    ih, iw = img.shape[:2]
    scale = SIZE / min(ih, iw)
    rw, rh = max(SIZE, round(iw * scale)), max(SIZE, round(ih * scale))
    img = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR)
    y, x = (rh - SIZE) // 2, (rw - SIZE) // 2
    return len(simplejpeg.encode_jpeg(img[y:y + SIZE, x:x + SIZE], QUALITY,
                                      colorsubsampling="420"))


def _small_floor_one(path):
    """Read + PNG decode (OpenCV, straight to RGB when it can) + the raw bytes."""
    data = Path(path).read_bytes()
    flags = getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)
    return len(cv2.imdecode(np.frombuffer(data, np.uint8), flags).tobytes())


def _small_png_floor_one(path):
    """Read + PNG decode + PNG encode, both OpenCV's (level 1, run-length: its defaults)."""
    data = Path(path).read_bytes()
    flags = getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)
    return len(cv2.imencode(".png", cv2.imdecode(np.frombuffer(data, np.uint8), flags))[1])


def run_floor(files, workers, one=_floor_one):
    paths = [str(f) for f in files]
    with mp.Pool(workers, initializer=_floor_init) as pool:
        pool.map(one, paths[:workers * 8], chunksize=1)  # warm-up
        t0 = time.perf_counter()
        for _ in pool.imap_unordered(one, paths, chunksize=16):
            pass
        seconds = time.perf_counter() - t0
    return {"samples": len(paths), "seconds": seconds, "rss_mb": None}


# ---------------------------------------------------------- subprocesses

# Runs argv; prints its wall seconds and the max RSS of any descendant. On Linux
# it becomes a child subreaper and reaps orphans (e.g. a multiprocessing
# forkserver and its workers, which the main process never waits for), so
# their RSS is counted too. stderr goes to a file: a pipe would be held open
# by orphans and delay the timing.
_WRAPPER = r"""
import ctypes, json, os, resource, subprocess, sys, tempfile, time
try:
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except (AttributeError, OSError):
    pass
with tempfile.TemporaryFile() as err:
    t0 = time.perf_counter()
    rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=err).returncode
    seconds = time.perf_counter() - t0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # reap orphaned descendants
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.01)
        except ChildProcessError:
            break
    err.seek(0)
    stderr = err.read().decode(errors="replace")[-1500:]
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": rc, "seconds": seconds, "maxrss": rss, "stderr": stderr}))
"""


def run_measured(cmd):
    """Wall seconds + peak RSS (MB) of cmd, run with cwd=REPO."""
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *map(str, cmd)],
                          cwd=REPO, capture_output=True, text=True, check=True)
    res = json.loads(proc.stdout)
    unit = 1 if sys.platform == "darwin" else 1024  # bytes vs KiB
    res["rss_mb"] = res.pop("maxrss") * unit / 2**20
    return res


def mixbake_missing():
    """None if `python -m mixbake` can run, else the reason."""
    code = ("import importlib.util as u, sys; "
            "sys.exit(0 if u.find_spec('mixbake.__main__') else 1)")
    ok = subprocess.run([sys.executable, "-c", code], cwd=REPO,
                        capture_output=True).returncode == 0
    return None if ok else "mixbake not installed"


def count_rows(out):
    """Output samples: rows of the Parquet files that have an `image` column
    (sidecars such as labels.parquet repeat the rows without images)."""
    files = [pq.ParquetFile(f) for f in Path(out).rglob("*.parquet")]
    return sum(f.metadata.num_rows for f in files if "image" in f.schema_arrow.names)


def run_mixbake(src, workers, size=SIZE, fmt="jpeg", extra=()):
    missing = mixbake_missing()
    if missing:
        return {"error": missing}
    with tempfile.TemporaryDirectory(prefix="mixbake-bench-") as tmp:
        out = Path(tmp) / "out"
        quality = ["--quality", QUALITY] if fmt == "jpeg" else []
        cmd = [sys.executable, "-m", "mixbake", "bake", src, out, "--size", size,
               "--image-format", fmt, *quality, "--workers", workers,
               "--quiet", "--seed", 0, *extra]
        res = run_measured(cmd)
        if res["rc"] != 0:
            last = (res["stderr"].strip().splitlines() or ["?"])[-1]
            return {"error": f"mixbake failed (rc={res['rc']}): {last[:120]}"}
        res["samples"] = count_rows(out)
    if not res["samples"]:
        return {"error": "mixbake wrote no Parquet rows"}
    return res


BASELINE_LIMIT = 1000  # the baseline's rate is per image; 1000 of them measure it well enough


def tiny_folder(data_dir, photos):
    """10 photos: a bake of these is almost all fixed cost (interpreter, imports, worker start-up)."""
    tiny = Path(data_dir) / "tiny-10"
    if not tiny.exists():
        for f in list_files(photos)[:10]:
            (tiny / f.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, tiny / f.parent.name / f.name)
    return tiny


def run_baseline(folder, pairing="random"):
    with tempfile.TemporaryDirectory(prefix="mixbake-bench-") as tmp:
        out = Path(tmp) / "out"
        res = run_measured([sys.executable, BASELINE, folder, out, "--limit", BASELINE_LIMIT,
                            "--pairing", pairing])
        if res["rc"] != 0:
            return {"error": f"baseline failed: {res['stderr'][-200:]}"}
        res["samples"] = len(list(out.glob("*.jpg")))
    return res


def run_torchvision_deit(folder, workers):
    """scripts/peer_torchvision.py: the DeiT chain in torchvision v2 + DataLoader, JPEG files out."""
    if importlib.util.find_spec("torchvision") is None or importlib.util.find_spec("torch") is None:
        return {"error": "torchvision not installed (pip install -e '.[bench]')"}
    with tempfile.TemporaryDirectory(prefix="mixbake-bench-") as tmp:
        out = Path(tmp) / "out"
        res = run_measured([sys.executable, PEER_TORCHVISION, folder, out, "--workers", workers,
                            "--batch", 64, "--size", SIZE, "--quality", QUALITY, "--seed", 0])
        if res["rc"] != 0:
            last = (res["stderr"].strip().splitlines() or ["?"])[-1]
            return {"error": f"torchvision peer failed (rc={res['rc']}): {last[:120]}"}
        res["samples"] = len(list(out.glob("*.jpg")))
    return res


def best_of(repeat, fn, *args, **kwargs):
    """Run fn repeat times; keep the fastest run, the largest RSS."""
    return best_of_results([fn(*args, **kwargs) for _ in range(repeat)])


def best_of_results(results):
    if any("error" in r for r in results):
        return next(r for r in results if "error" in r)
    best = min(results, key=lambda r: r["seconds"] / max(r["samples"], 1))
    rss = [r["rss_mb"] for r in results if r.get("rss_mb") is not None]
    return {**best, "rss_mb": max(rss) if rss else None}


def rate(res):
    if not res or "error" in res or not res.get("samples"):
        return None
    return res["samples"] / res["seconds"]


# ---------------------------------------------------------------- output


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def ratio(a, b):
    return None if a is None or b is None else a / b


def print_table(results):
    floor, base = rate(results.get("floor")), rate(results.get("baseline"))
    print("| run | samples/s | x floor | x baseline | peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for name, res in results.items():
        if name == "paired":
            continue
        if "error" in res:
            print(f"| {name} | {res['error']} | | | |")
            continue
        if name == "startup":
            print(f"| startup (10 photos: fixed cost) | {res['seconds']:.2f} s wall | | | "
                  f"{fmt(res.get('rss_mb'), '.0f')} |")
            continue
        r = rate(res)
        same_task = not name.startswith("small")
        own_floor = {"small-png": "small-png-floor", "small-raw": "small-floor"}.get(name, name)
        x_floor = ratio(r, floor) if same_task else ratio(r, rate(results.get(own_floor)))
        x_base = ratio(r, base) if same_task else None
        print(f"| {name} | {fmt(r, '.1f')} | {fmt(x_floor, '.2f')} | "
              f"{fmt(x_base, '.2f')} | {fmt(res.get('rss_mb'), '.0f')} |")


def _median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def print_checks(results):
    paired = results.get("paired", {}).get("ratios", [])
    if paired:
        print("\nmixbake-2w / floor per back-to-back pair: " + ", ".join(fmt(v, ".2f") for v in paired))
    r = {k: rate(v) for k, v in results.items() if k != "paired"}
    checks = [
        ("mixbake-2w / floor", ratio(r.get("mixbake-2w"), r.get("floor")), 0.85),
        ("mixbake-2w / floor, median of back-to-back pairs", _median(paired), 0.85),
        ("mixbake-2w / baseline (pillow 1 proc)",
         ratio(r.get("mixbake-2w"), r.get("baseline")), 6.0),
        ("(mixbake-2w / baseline-batch: each image decoded once)",
         ratio(r.get("mixbake-2w"), r.get("baseline-batch")), 6.0),
        ("2w / 1w scaling", ratio(r.get("mixbake-2w"), r.get("mixbake-1w")), 1.8),
        ("(the floor's own 2w / 1w scaling)", ratio(r.get("floor"), r.get("floor-1w")), 1.8),
        ("parquet / folder (no more than 10% slower)",
         ratio(r.get("parquet"), r.get("mixbake-2w")), 0.90),
        ("copies4 / copies4-format1 per sample (cost <= 1.5x: >= 0.67)",
         ratio(r.get("copies4"), r.get("copies4-format1")), 1 / 1.5),
        ("small-png samples/s", r.get("small-png"), 8000),
        ("(small-png-floor samples/s: the machine's own)", r.get("small-png-floor"), 8000),
        ("small-raw samples/s", r.get("small-raw"), 8000),
        ("deit / mixup-plain", ratio(r.get("deit"), r.get("mixup-plain")), 0.55),
        ("deit / torchvision-deit", ratio(r.get("deit"), r.get("torchvision-deit")), 4.0),
        ("with-masks / no-masks", ratio(r.get("with-masks"), r.get("no-masks")), 0.7),
        ("with-boxes / no-boxes", ratio(r.get("with-boxes"), r.get("no-boxes")), 0.8),
    ]
    print("\n| check | value | target | result |")
    print("|---|---:|---:|---|")
    for name, value, target in checks:
        verdict = "n/a" if value is None else ("PASS" if value >= target else "FAIL")
        print(f"| {name} | {fmt(value, '.2f')} | >= {target:g} | {verdict} |")


def print_memory(rows):
    print("\n| mixbake-2w memory | images | wall s | samples/s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for n, res in rows:
        if "error" in res:
            print(f"| photos | {n} | {res['error']} | | |")
        else:
            print(f"| photos | {n} | {res['seconds']:.1f} | {rate(res):.1f} | "
                  f"{res['rss_mb']:.0f} |")


def busy_cpus(seconds=1.0):
    """CPUs' worth of non-idle time over a short window (Linux), else None."""
    def sample():
        fields = [int(x) for x in Path("/proc/stat").read_text().split()[1:9]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait
    try:
        (t0, i0), _ = sample(), time.sleep(seconds)
        t1, i1 = sample()
    except OSError:
        return None
    return (1 - (i1 - i0) / max(t1 - t0, 1)) * (os.cpu_count() or 1)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ main


def parse_args():
    p = argparse.ArgumentParser(description="mixbake benchmark (see module docstring)")
    p.add_argument("--data", type=Path, default=REPO / "bench-data",
                   help="dataset cache dir (default: <repo>/bench-data)")
    p.add_argument("--n", type=int, help="photos for the main rows (default 10000: enough that "
                                         "mixbake's ~1.5 s of process start-up is amortised as in real use)")
    p.add_argument("--n-small", type=int, help="32x32 PNGs (default 50000, CIFAR-10's training set)")
    p.add_argument("--n-large", type=int, help="photos for --memory (default 20000)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="data-generation seed")
    p.add_argument("--repeat", type=int,
                   help="keep the best of R runs (default 3, --quick: 1)")
    p.add_argument("--quick", action="store_true", help="smoke run on small data")
    p.add_argument("--memory", action="store_true", help="add the 2k vs 20k RSS run")
    p.add_argument("--only", help="comma list of: " + ",".join(RUNS))
    args = p.parse_args()
    quick = args.quick
    args.n = args.n or (200 if quick else 10000)
    args.n_small = args.n_small or (2000 if quick else 50000)
    args.n_large = args.n_large or (2000 if quick else 20000)
    args.repeat = args.repeat or (1 if quick else 3)
    args.only = set(args.only.split(",")) if args.only else set(RUNS) - {"memory", "masks", "boxes", "classes", "items"}
    if args.memory:
        args.only.add("memory")
    unknown = args.only - set(RUNS)
    if unknown:
        p.error(f"unknown runs: {', '.join(sorted(unknown))}")
    return args


def in_turn(rep, steps):
    """Run every step once, in order, ``rep`` times over; {name: [results]}. Rows that are compared
    are measured this way, so their ratios see the same machine conditions even when those drift
    (a shared machine's speed varies by 10-30% over minutes)."""
    runs = {name: [] for name in steps}
    for _ in range(rep):
        for name, step in steps.items():
            runs[name].append(step())
    return runs


def floor_and_mixbake(rep, photos, workers, with_1w, with_parquet=False):
    """The floor, mixbake-2w (and floor-1w, mixbake-1w, parquet) in turn; the best of each kept."""
    steps = {"floor": lambda: run_floor(list_files(photos), workers),
             "mixbake-2w": lambda: run_mixbake(photos, workers)}
    if with_1w:  # with the machine's own scaling, to read mixbake's against
        steps.update({"floor-1w": lambda: run_floor(list_files(photos), 1),
                      "mixbake-1w": lambda: run_mixbake(photos, 1)})
    if with_parquet:  # compared with mixbake-2w: measured in the same turns (it was 0.77-1.02 apart)
        parquet = ensure_parquet(photos)
        steps["parquet"] = lambda: run_mixbake(parquet, workers)
    runs = in_turn(rep, steps)
    best = {name: best_of_results(results) for name, results in runs.items()}
    # Each repeat's mixbake-2w / floor, from runs made back to back: drift between repeats cancels
    # out here, where best-of-each can pair a fast-moment floor with a slow-moment bake.
    best["paired"] = {"ratios": [ratio(rate(b), rate(f)) for f, b in zip(runs["floor"], runs["mixbake-2w"])]}
    return best


def run_all(args, photos):
    results, w, rep = {}, args.workers, args.repeat
    if {"floor", "mixbake-2w"} <= args.only:
        with_1w, with_parquet = "mixbake-1w" in args.only, "parquet" in args.only
        log(f"running floor, mixbake-2w{', mixbake-1w' if with_1w else ''}"
            f"{', parquet' if with_parquet else ''} in turn ...")
        results.update(floor_and_mixbake(rep, photos, w, with_1w, with_parquet))
    steps = {
        "floor": lambda: best_of(rep, run_floor, list_files(photos), w),
        "mixbake-2w": lambda: best_of(rep, run_mixbake, photos, w),
        "startup": lambda: best_of(rep, run_mixbake, tiny_folder(args.data, photos), w),
        "mixbake-1w": lambda: best_of(rep, run_mixbake, photos, 1),
        "baseline": lambda: best_of(rep, run_baseline, photos),
        "baseline-batch": lambda: best_of(rep, run_baseline, photos, "batch"),
        "parquet": lambda: best_of(rep, run_mixbake, ensure_parquet(photos), w),
    }
    for name, step in steps.items():
        if name in args.only and name not in results:
            log(f"running {name} ...")
            results[name] = step()
    if "copies" in args.only:
        recipe = Path(args.data) / "format1.toml"
        recipe.write_text("format_version = 1\n")
        log("running copies4-format1, copies4 in turn ...")
        runs = in_turn(rep, {
            "copies4-format1": lambda: run_mixbake(photos, w, extra=("--copies", 4, "--recipe", recipe)),
            "copies4": lambda: run_mixbake(photos, w, extra=("--copies", 4)),
        })
        results.update({name: best_of_results(r) for name, r in runs.items()})
    if "small" in args.only:
        small = ensure_folder(args.data, "small", args.n_small, args.seed, w)
        for f in list_files(small):  # warm the page cache, as for the photos
            f.read_bytes()
        log("running small-floor, small-png-floor, small-png, small-raw in turn ...")
        runs = in_turn(rep, {
            "small-floor": lambda: run_floor(list_files(small), w, _small_floor_one),
            "small-png-floor": lambda: run_floor(list_files(small), w, _small_png_floor_one),
            "small-png": lambda: run_mixbake(small, w, size=32, fmt="png"),
            "small-raw": lambda: run_mixbake(small, w, size=32, fmt="raw"),
        })
        results.update({name: best_of_results(r) for name, r in runs.items()})
    if "deit" in args.only:
        log("running mixup-plain, deit, torchvision-deit in turn ...")
        runs = in_turn(rep, {
            "mixup-plain": lambda: run_mixbake(photos, w, extra=("--mixup", 1, "--cutmix", 0)),
            "deit": lambda: run_mixbake(photos, w, extra=("--preset", "deit")),
            "torchvision-deit": lambda: run_torchvision_deit(photos, w),
        })
        results.update({name: best_of_results(r) for name, r in runs.items()})
    if "masks" in args.only:
        masks = ensure_masks(photos, os.cpu_count() or 2)
        for f in list_files(masks):
            f.read_bytes()
        log("running no-masks, with-masks in turn ...")
        runs = in_turn(rep, {
            "no-masks": lambda: run_mixbake(photos, w),
            "with-masks": lambda: run_mixbake(photos, w, extra=("--masks", masks)),
        })
        results.update({name: best_of_results(r) for name, r in runs.items()})
    if "boxes" in args.only:
        annotations = ensure_annotations(photos)
        log("running no-boxes, with-boxes in turn ...")
        runs = in_turn(rep, {
            "no-boxes": lambda: run_mixbake(photos, w),
            "with-boxes": lambda: run_mixbake(photos, w, extra=("--annotations", annotations)),
        })
        results.update({name: best_of_results(r) for name, r in runs.items()})
    return results


def main():
    args = parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    photos = ensure_folder(args.data, "photos", args.n, args.seed, os.cpu_count() or 2)
    for f in list_files(photos):  # warm the page cache for every run alike
        f.read_bytes()
    # Byte-compile mixbake as `pip install` does: with PYTHONDONTWRITEBYTECODE set (as on some CI
    # machines) an editable install would otherwise recompile its modules in every command (~70 ms).
    compileall.compile_dir(str(REPO / "mixbake"), quiet=1)
    busy = busy_cpus()
    if busy is not None and busy > 0.2:
        log(f"warning: {busy:.2f} CPUs busy before the bench; "
            "other processes will skew the numbers")
    results = run_all(args, photos)
    print(f"\nmixbake bench: {args.n} photos -> {SIZE}x{SIZE} JPEG q{QUALITY}, "
          f"{args.workers} workers, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, best of {args.repeat}, "
          f"CPUs busy before: {fmt(busy, '.2f')}\n")
    if results:
        print_table(results)
        print_checks(results)
    scale = {"classes", "items"} & args.only
    if scale:  # (see scripts/bench_scale.py)
        sys.path.insert(0, str(REPO / "scripts"))
        import bench_scale
        bench_scale.main(args.data, args.workers, scale)
    if "memory" in args.only:
        large = ensure_folder(args.data, "photos", args.n_large, args.seed,
                              os.cpu_count() or 2)
        log("running memory ...")
        rows = [(n, run_mixbake(folder, args.workers))
                for n, folder in ((args.n, photos), (args.n_large, large))]
        print_memory(rows)


if __name__ == "__main__":
    main()
