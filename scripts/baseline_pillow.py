"""Baseline for scripts/bench.py: the single-process mixup bake a typical user writes.

    python scripts/baseline_pillow.py DATA OUT [--size 224] [--quality 90] [--seed 0]

DATA is an image folder (DATA/<class>/<image>). For every image i (sorted
order) it picks a random partner j, opens both with PIL, converts to RGB,
resizes to cover SIZE x SIZE (bilinear) and centre-crops, mixes them with
lam ~ Beta(0.8, 0.8) in numpy float32, saves OUT/<i>.jpg (JPEG, --quality)
and writes OUT/labels.csv (file, label_a, label_b, lam).

--pairing batch instead mixes within batches of 64 images, as a training
loop's in-batch mixup does (and as mixbake does per pool): each image is
opened once and image k is mixed with image perm[k] of its batch. Half the
decoding of the default, which opens two images per output.

This is deliberately NOT optimised (no draft-mode JPEG decoding, no
multiprocessing): it is the yardstick, not a competitor.
"""
import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image

EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def list_images(root):
    """Return [(path, label)] in sorted class / file order."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    items = []
    for label, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() in EXTS:
                items.append((path, label))
    return items


def load(path, size):
    """Open, convert to RGB, resize to cover size x size, centre-crop."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((new_w, new_h), Image.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return img.crop((left, top, left + size, top + size))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None,
                        help="bake only the first N images (its rate is per image, so a subset suffices)")
    parser.add_argument("--pairing", choices=("random", "batch"), default="random",
                        help="random: a random partner per image, opened again (default); "
                             "batch: partners within batches of 64, each image opened once")
    args = parser.parse_args()

    items = list_images(args.data)
    outputs = items[:args.limit] if args.limit else items
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "label_a", "label_b", "lam"])
        batch = 64 if args.pairing == "batch" else 1
        for start in range(0, len(outputs), batch):
            group = outputs[start:start + batch]
            images = [np.asarray(load(path, args.size), dtype=np.float32) for path, _ in group]
            if args.pairing == "batch":
                partners = [(images[k], group[k][1]) for k in rng.permutation(len(group))]
            else:
                j = int(rng.integers(len(items)))
                partners = [(np.asarray(load(items[j][0], args.size), dtype=np.float32), items[j][1])]
            for k, (a, (_, label), (b, label_b)) in enumerate(zip(images, group, partners)):
                lam = float(rng.beta(0.8, 0.8))
                mixed = lam * a + (1.0 - lam) * b
                out = Image.fromarray(np.clip(np.rint(mixed), 0, 255).astype(np.uint8))
                out.save(args.out / f"{start + k}.jpg", quality=args.quality)
                writer.writerow([f"{start + k}.jpg", label, label_b, f"{lam:.6f}"])

if __name__ == "__main__":
    main()
