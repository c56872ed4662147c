"""Does a bake train like online mixup? A training check anyone can run (PyTorch needed).

The setting is the mixup paper's corrupted-label experiment (Zhang et al. 2018, section 3.4): ERM
memorises wrong labels, mixup with a large alpha resists them. A small CNN is trained for the same
number of steps on

- ``erm``: the training images with their (partly wrong) labels, no mixing;
- ``online``: mixup done in the training loop, fresh partners (a permutation of the batch) and a
  fresh lam ~ Beta(alpha, alpha) per sample at every step;
- ``bake-cN``: ``mixbake bake SRC OUT --mixup 1 --cutmix 0 --mixup-alpha ALPHA --copies N
  --image-format png`` (lossless, so only the pairing differs), trained on its soft labels;
- ``seeds-N`` (with ``--separate N``): N separate ``--copies 1`` bakes with seeds 0..N-1,
  concatenated (what users did to get fresh partners per copy);

and tested on the clean test labels. The data is generated here ("shapes10": ten shape classes at
32x32 with random colours, sizes, rotations, textured noisy backgrounds and distractors; no
download), with ``--noise`` (0.4) of the training labels replaced by another class.

    python scripts/train_check.py                      # erm, online, bake at 1, 8, 32, 64 copies
    python scripts/train_check.py --copies 64 --copies-per-pass 1 2 4 --separate 64 --seeds 0 1
    python scripts/train_check.py --quick              # a smoke run: tiny data, few steps
    python scripts/train_check.py --copies 16 --variant chain='--resize random-crop --hflip 0.5' \\
        --variant mosaic='--mosaic 1 --mixup 0'       # what a chain or mosaic changes, trained

Prints one line per run and a table of clean test accuracy (mean over --seeds), with the share of
online mixup's gain over ERM that each row keeps: (acc - erm) / (online - erm).
"""
import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SIDE = 32
PALETTE = np.array([(60, 60, 60), (190, 190, 190), (60, 90, 160), (170, 120, 60), (80, 150, 80), (150, 70, 120)])
CLASSES = ("circle", "square", "triangle", "star", "cross", "ring", "diamond", "hexagon", "bar", "arrow")


# ---------------------------------------------------------------- data: shapes10

def _polygon(kind: str, r: float):
    """Vertices of a shape of radius r around the origin (unrotated)."""
    def polar(radii, start=0.0):
        k = len(radii)
        return [(q * math.cos(start + 2 * math.pi * j / k), q * math.sin(start + 2 * math.pi * j / k))
                for j, q in enumerate(radii)]
    if kind == "square":
        return polar([r] * 4, math.pi / 4)
    if kind == "triangle":
        return polar([r] * 3)
    if kind == "star":
        return polar([r, r * 0.45] * 5)
    if kind == "diamond":
        return [(0, -r), (r * 0.55, 0), (0, r), (-r * 0.55, 0)]
    if kind == "hexagon":
        return polar([r] * 6)
    if kind == "bar":
        return [(-r, -r * 0.28), (r, -r * 0.28), (r, r * 0.28), (-r, r * 0.28)]
    if kind == "arrow":
        w = r * 0.25
        return [(-r, -w), (r * 0.2, -w), (r * 0.2, -r * 0.6), (r, 0), (r * 0.2, r * 0.6), (r * 0.2, w), (-r, w)]
    if kind == "cross":
        w = r * 0.3
        return [(w, r), (w, w), (r, w), (r, -w), (w, -w), (w, -r), (-w, -r), (-w, -w), (-r, -w), (-r, w),
                (-w, w), (-w, r)]
    raise ValueError(kind)


def shape_image(label: int, rng: np.random.Generator) -> np.ndarray:
    """One 32x32 RGB picture of class ``label``: the class is the shape, nothing else."""
    import cv2
    kind = CLASSES[label]
    # backgrounds from a few palettes, so that no picture is told apart by its background alone
    base = PALETTE[int(rng.integers(len(PALETTE)))] + rng.integers(-12, 13, size=3)
    img = np.clip(base[None, None, :] + rng.normal(0, 20, size=(SIDE, SIDE, 3)), 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 3))):  # distractor blobs of any colour
        centre = tuple(int(v) for v in rng.integers(0, SIDE, size=2))
        cv2.circle(img, centre, int(rng.integers(2, 5)), tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
    r = rng.uniform(8, 13)
    cx, cy = rng.uniform(r * 0.7, SIDE - r * 0.7, size=2)
    # a colour that stands out from the background: the class is the shape, never a guess
    colour = tuple(int(v) for v in np.where(base > 127, rng.integers(0, 60, 3), rng.integers(196, 256, 3)))
    if kind in ("circle", "ring"):
        cv2.circle(img, (int(round(cx * 16)), int(round(cy * 16))), int(round(r * 16 * (0.8 if kind == "ring" else 1))),
                   colour, 3 if kind == "ring" else -1, cv2.LINE_AA, 4)
    else:
        rot = rng.uniform(0, 2 * math.pi)
        c, s = math.cos(rot), math.sin(rot)
        pts = np.array([(cx + x * c - y * s, cy + x * s + y * c) for x, y in _polygon(kind, r)]) * 16
        cv2.fillPoly(img, [np.rint(pts).astype(np.int32)], colour, cv2.LINE_AA, 4)
    return img


def make_data(n_train: int, n_test: int, noise: float, seed: int):
    """(train images, noisy train labels, clean train labels, test images, test labels)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n_train + n_test) % len(CLASSES)
    rng.shuffle(labels)
    images = np.stack([shape_image(int(y), rng) for y in labels])
    train_y = labels[:n_train].copy()
    flip = rng.random(n_train) < noise
    train_y[flip] = (train_y[flip] + rng.integers(1, len(CLASSES), size=int(flip.sum()))) % len(CLASSES)
    return images[:n_train], train_y, labels[:n_train], images[n_train:], labels[n_train:]


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """root/<class>/<index>.png with the (noisy) training labels: the SOURCE of every bake."""
    from PIL import Image
    for i, (img, y) in enumerate(zip(images, labels)):
        folder = root / f"{int(y)}_{CLASSES[int(y)]}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:06d}.png", compress_level=1)


# ---------------------------------------------------------------- bakes

def bake(src: Path, out: Path, copies: int, seed: int, alpha: float, per_pass=None, workers=2, extra=()) -> dict:
    cmd = [sys.executable, "-m", "mixbake", "bake", str(src), str(out), "--size", str(SIDE), "--mixup", "1",
           "--cutmix", "0", "--mixup-alpha", str(alpha), "--copies", str(copies), "--image-format", "png",
           "--seed", str(seed), "-q", "--workers", str(workers)]
    if per_pass is not None:
        cmd += ["--copies-per-pass", str(per_pass)]
    cmd += list(extra)  # (given last: they override the options above)
    started = time.monotonic()
    subprocess.run(cmd, check=True, cwd=REPO)
    return {"seconds": time.monotonic() - started}


def read_bake(out: Path):
    """(images uint8 N x 32 x 32 x 3, soft labels float32 N x 10, partner stats) of a Parquet bake."""
    import cv2
    import pyarrow.parquet as pq
    images, soft = [], []
    for shard in sorted((out / "data").glob("train-*.parquet")):
        table = pq.read_table(shard, columns=["image", "soft_label"])
        for cell in table.column("image").to_pylist():
            images.append(cv2.cvtColor(cv2.imdecode(np.frombuffer(cell["bytes"], np.uint8), cv2.IMREAD_COLOR),
                                       cv2.COLOR_BGR2RGB))
        soft.append(np.asarray(table.column("soft_label").to_pylist(), dtype=np.float32))
    labels = pq.read_table(out / "labels.parquet", columns=["src_a", "src_b"])
    a = labels.column("src_a").to_numpy()
    b = labels.column("src_b").fill_null(-1).to_numpy()
    pairs = np.unique(np.stack([a, b], 1)[b >= 0], axis=0)
    distinct = np.bincount(pairs[:, 0], minlength=a.max() + 1)
    return np.stack(images), np.concatenate(soft), {"median_partners": float(np.median(distinct))}


# ---------------------------------------------------------------- training

def make_model(torch):
    nn = torch.nn

    def block(cin, cout, stride):
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*block(3, 16, 1), *block(16, 32, 2), *block(32, 32, 1), *block(32, 64, 2),
                         *block(64, 64, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, len(CLASSES)))


def train(images, targets, steps: int, seed: int, test, online_alpha=None, batch=128, lr=0.05, wd=5e-3):
    """SGD on (images, soft targets) for ``steps`` steps; clean test accuracy. With ``online_alpha``
    each batch is mixed in the loop (per-sample lam, partner = a permutation of the batch)."""
    import torch
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    model = make_model(torch)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=wd, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    y_all = torch.from_numpy(targets)
    order, at = gen.permutation(len(images)), 0
    model.train()
    for _ in range(steps):
        if at + batch > len(order):
            order, at = gen.permutation(len(images)), 0
        idx = torch.from_numpy(order[at:at + batch])
        at += batch
        x = x_all[idx].float().div_(255.0)
        y = y_all[idx]
        if online_alpha is not None:
            lam = torch.from_numpy(gen.beta(online_alpha, online_alpha, size=len(idx)).astype(np.float32))
            perm = torch.from_numpy(gen.permutation(len(idx)))
            # as a bake stores it: a uint8 blend, rounded
            x = (lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[perm]).mul_(255).round_().div_(255)
            y = lam[:, None] * y + (1 - lam[:, None]) * y[perm]
        loss = -(y * torch.log_softmax(model(x), 1)).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    test_x, test_y = test
    with torch.no_grad():
        logits = torch.cat([model(torch.from_numpy(test_x[i:i + 512]).permute(0, 3, 1, 2).float() / 255.0)
                            for i in range(0, len(test_x), 512)])
    return float((logits.argmax(1).numpy() == test_y).mean())


def onehot(labels):
    y = np.zeros((len(labels), len(CLASSES)), np.float32)
    y[np.arange(len(labels)), labels] = 1.0
    return y


# ---------------------------------------------------------------- the check

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", type=int, default=4000, help="training images (default 4000)")
    p.add_argument("--test", type=int, default=2000, help="clean test images (default 2000)")
    p.add_argument("--noise", type=float, default=0.4, help="share of training labels replaced (0.4)")
    p.add_argument("--alpha", type=float, default=8.0, help="mixup alpha, online and baked (8)")
    p.add_argument("--epochs", type=int, default=64,
                   help="steps = epochs x train / batch, for every run alike (64)")
    p.add_argument("--copies", type=int, nargs="*", default=[1, 8, 32, 64], help="bakes to train on")
    p.add_argument("--copies-per-pass", type=int, nargs="*", default=[None],
                   help="--copies-per-pass values to bake with (default: mixbake's)")
    p.add_argument("--format1", action="store_true",
                   help="also bake each --copies with format 1's pairing (before mixbake 0.2)")
    p.add_argument("--separate", type=int, default=0, help="also N separate --copies 1 bakes, concatenated")
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1], help="training seeds (0 1)")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke run: 400 images, 4 epochs")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=OPTIONS",
                   help="also bake each --copies with these bake options added (they override the defaults), "
                        "e.g. chain='--resize random-crop --crop-scale 0.35 1 --hflip 0.5' or mosaic='--mosaic 1 "
                        "--mixup 0'; repeatable")
    args = p.parse_args()
    if args.quick:
        args.train, args.test, args.epochs, args.copies, args.seeds = 400, 200, 4, [1, 4], [0]
    return args


def runs_to_bake(args):
    for copies in args.copies:
        for per_pass in args.copies_per_pass:
            if per_pass is None or per_pass <= copies:
                yield (f"bake-c{copies}" + (f"-k{per_pass}" if per_pass else ""), copies, per_pass, None)
        if args.format1 and copies > 1:
            yield f"bake-c{copies}-format1", copies, None, "format1"
        for variant in args.variant:
            name, _, options = variant.partition("=")
            yield f"bake-c{copies}-{name}", copies, None, shlex.split(options)


def main():
    args = parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("train_check.py needs PyTorch: pip install torch (the CPU build is enough)")
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2))
    train_x, noisy_y, clean_y, test_x, test_y = make_data(args.train, args.test, args.noise, args.data_seed)
    steps = args.epochs * args.train // 128
    print(f"shapes10: {args.train} train ({(noisy_y != clean_y).mean():.0%} wrong labels), {args.test} clean "
          f"test, {steps} steps of 128, alpha {args.alpha}", flush=True)
    results = {}

    def record(name, accs, extra=None):
        results[name] = {"accuracy": float(np.mean(accs)), "per_seed": accs, **(extra or {})}
        print(f"  {name:<22} {np.mean(accs):.3f}  {' '.join(f'{a:.3f}' for a in accs)}"
              f"{'  ' + json.dumps(extra) if extra else ''}", flush=True)

    test = (test_x, test_y)
    record("erm", [train(train_x, onehot(noisy_y), steps, s, test) for s in args.seeds])
    record("online", [train(train_x, onehot(noisy_y), steps, s, test, online_alpha=args.alpha) for s in args.seeds])
    with tempfile.TemporaryDirectory(prefix="mixbake-train-check-") as tmp:
        src = Path(tmp) / "src"
        write_folder(src, train_x, noisy_y)
        recipe = Path(tmp) / "format1.toml"
        recipe.write_text("format_version = 1\n")
        for name, copies, per_pass, kind in runs_to_bake(args):
            out = Path(tmp) / name
            info = _bake_format1(src, out, copies, args.alpha, recipe) if kind == "format1" else \
                bake(src, out, copies, 0, args.alpha, per_pass, extra=kind or ())
            images, soft, stats = read_bake(out)
            record(name, [train(images, soft, steps, s, test) for s in args.seeds],
                   {**stats, "bake_s": round(info["seconds"], 1)})
            shutil.rmtree(out)
        if args.separate:
            parts = []
            for seed in range(args.separate):
                out = Path(tmp) / f"sep{seed}"
                bake(src, out, 1, seed, args.alpha)
                parts.append(read_bake(out)[:2])
                shutil.rmtree(out)
            images = np.concatenate([p[0] for p in parts])
            soft = np.concatenate([p[1] for p in parts])
            record(f"seeds-{args.separate}", [train(images, soft, steps, s, test) for s in args.seeds])
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def _bake_format1(src, out, copies, alpha, recipe):
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "mixbake", "bake", str(src), str(out), "--recipe", str(recipe),
                    "--size", str(SIDE), "--mixup", "1", "--cutmix", "0", "--mixup-alpha", str(alpha),
                    "--copies", str(copies), "--image-format", "png", "-q"], check=True, cwd=REPO)
    return {"seconds": time.monotonic() - started}


def print_table(results):
    erm, online = results["erm"]["accuracy"], results["online"]["accuracy"]
    print("\n| training data | clean test accuracy | share of online mixup's gain | median partners per item |")
    print("|---|---:|---:|---:|")
    for name, r in results.items():
        share = (r["accuracy"] - erm) / (online - erm) if online != erm else float("nan")
        partners = r.get("median_partners")
        print(f"| {name} | {r['accuracy']:.3f} | {share:.0%} | {'' if partners is None else f'{partners:g}'} |")


if __name__ == "__main__":
    main()
