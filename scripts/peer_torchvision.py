"""Peer for scripts/bench.py: the DeiT-style augmentation pipeline as a torchvision v2 user writes it,
writing its outputs to files so that it does the same work as `mixbake bake --preset deit`.

    python scripts/peer_torchvision.py SRC OUT [--workers 2] [--batch 64] [--size 224]
                                       [--quality 90] [--seed 0] [--limit N] [--mix-in collate|main]
                                       [--main-threads N]

SRC is an image folder (SRC/<class>/<image>), listed by torchvision.datasets.ImageFolder (sorted
classes, sorted files). Per sample, in the DataLoader's workers, on uint8 CHW tensors:

    torchvision.io.decode_image(read_file(path), mode=ImageReadMode.RGB)   (libjpeg, full size)
    v2.RandomResizedCrop(224, scale=(0.08, 1), ratio=(3/4, 4/3), antialias=True)   (bilinear)
    v2.RandomHorizontalFlip(0.5)
    v2.RandAugment(num_ops=2, magnitude=9)                         (31 bins, nearest: the defaults)
    v2.ToDtype(torch.float32, scale=True)
    v2.RandomErasing(0.25, value="random")                         (per-pixel normal noise)

then DataLoader(batch_size=64, shuffle=True with a seeded generator, num_workers=2) and per batch
v2.RandomChoice([v2.MixUp(alpha=0.8), v2.CutMix(alpha=1.0)]) (50/50) on the float batch, label
smoothing 0.1 on the mixed one-hot targets, and the batch back to uint8 (clamp to [0, 1], then
v2.ToDtype(torch.uint8, scale=True)). By default the mixing runs in the DataLoader's collate_fn,
i.e. in the workers, as torchvision's references/classification/train.py does; --mix-in main runs
it in the main process's loop instead (the other way torchvision's MixUp/CutMix docs show).

The main process then JPEG-encodes the batch with torchvision.io.encode_jpeg(list, quality=90)
and writes OUT/<batch>_<k>.jpg (one file per sample, torchvision.io.write_file) plus
OUT/labels_<batch>.npy (the batch's soft labels, float32 [B, K]).

Why float for erasing and mixing: v2.MixUp computes `x.roll(1, 0).mul_(1 - lam)`, which raises on a
uint8 batch (a float result cannot be written into uint8 in place), and RandomErasing's
value="random" draws float normal noise, meaningless in uint8. CutMix, flip, crop and RandAugment
work on uint8 (RandAugment's posterize/equalize need it), so the conversion happens after them,
as in torchvision's classification presets.

Threads: torch's defaults, as a user leaves them. DataLoader sets torch.set_num_threads(1) in each
worker; the main process keeps its default intra-op threads (one per CPU). That oversubscribes: the
main process's small parallel regions (tensor copies around encode_jpeg) wake its OpenMP threads,
which spin-wait on the CPUs the workers need. On 2 CPUs, 2000 photos: main process 7.4 CPU-s with
the default vs 3.6-4.4 with one thread, whole run ~20% slower (8.8 s vs 7.1 s wall).
--main-threads 1 (torch.set_num_threads(1) in the main process) is the tuned variant.
"""
import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch.utils.data import DataLoader, Subset, default_collate
from torchvision.io import ImageReadMode, decode_image, encode_jpeg, read_file, write_file
from torchvision.transforms import v2

warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")  # io deprecation notices
warnings.filterwarnings("ignore", category=DeprecationWarning)

LABEL_SMOOTHING = 0.1


def load_rgb(path):
    """ImageFolder loader: the file decoded by torchvision.io to a uint8 RGB CHW tensor."""
    return decode_image(read_file(path), mode=ImageReadMode.RGB)


class MixBatch:
    """Per batch: MixUp (alpha 0.8) or CutMix (alpha 1.0), 50/50, label smoothing, back to uint8."""

    def __init__(self, num_classes):
        self.num_classes = num_classes
        self.mix = v2.RandomChoice([v2.MixUp(alpha=0.8, num_classes=num_classes),
                                    v2.CutMix(alpha=1.0, num_classes=num_classes)])
        self.to_uint8 = v2.ToDtype(torch.uint8, scale=True)

    def __call__(self, images, labels):
        images, labels = self.mix(images, labels)
        labels = labels * (1.0 - LABEL_SMOOTHING) + LABEL_SMOOTHING / self.num_classes
        return self.to_uint8(images.clamp_(0.0, 1.0)), labels


class MixCollate:
    """collate_fn running MixBatch in the DataLoader's workers (torchvision references' way)."""

    def __init__(self, mix):
        self.mix = mix

    def __call__(self, batch):
        return self.mix(*default_collate(batch))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="only the first N images (sorted order)")
    p.add_argument("--mix-in", choices=("collate", "main"), default="collate",
                   help="where MixUp/CutMix run: the workers' collate_fn (default) or the main loop")
    p.add_argument("--main-threads", type=int, default=0,
                   help="torch.set_num_threads in the main process (default 0: torch's default)")
    args = p.parse_args()

    if args.main_threads:
        torch.set_num_threads(args.main_threads)
    torch.manual_seed(args.seed)
    per_sample = v2.Compose([
        v2.RandomResizedCrop(args.size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
        v2.RandomHorizontalFlip(0.5),
        v2.RandAugment(num_ops=2, magnitude=9),
        v2.ToDtype(torch.float32, scale=True),
        v2.RandomErasing(0.25, value="random"),
    ])
    dataset = torchvision.datasets.ImageFolder(str(args.src), transform=per_sample, loader=load_rgb)
    num_classes = len(dataset.classes)
    if args.limit:
        dataset = Subset(dataset, range(min(args.limit, len(dataset))))
    mix = MixBatch(num_classes)
    loader = DataLoader(dataset, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                        generator=torch.Generator().manual_seed(args.seed),
                        collate_fn=MixCollate(mix) if args.mix_in == "collate" else None)
    args.out.mkdir(parents=True, exist_ok=True)
    for b, (images, labels) in enumerate(loader):
        if args.mix_in == "main":
            images, labels = mix(images, labels)
        for k, data in enumerate(encode_jpeg(list(images), quality=args.quality)):
            write_file(str(args.out / f"{b:06d}_{k:03d}.jpg"), data)
        np.save(args.out / f"labels_{b:06d}.npy", labels.numpy().astype(np.float32))


if __name__ == "__main__":
    main()
