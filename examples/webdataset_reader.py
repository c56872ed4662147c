"""Read a ``mixbake bake ... --format webdataset`` output with the ``webdataset`` package.

    python examples/webdataset_reader.py OUT [--batch-size 16]

Each sample in ``OUT/train-NNNNNN.tar`` is three files sharing a key: ``<key>.cls`` (the hard label,
ASCII digits), ``<key>.jpg|png|webp`` (``<key>.raw`` for ``--image-format raw``: uint8 HxWx3 bytes, the
size is in manifest.json) and ``<key>.json`` (soft label and provenance: label, soft_label, op, lam,
src_a, src_b, label_a, label_b, boxes). Class names are in ``OUT/manifest.json``.

Shards are listed from the manifest (in order); pass ``shardshuffle=<buffer>`` plus ``.shuffle(n)``
for training. With torch installed, ``wds.WebLoader(dataset, num_workers=...)`` splits the shards
between workers.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import webdataset as wds


def shard_urls(out: str):
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest["config"]["format"] != "webdataset":
        raise SystemExit(f"{out} was baked with --format {manifest['config']['format']}, not webdataset")
    return [os.path.join(out, s["path"]) for s in manifest["shards"]], manifest


def make_dataset(out: str, shuffle: bool = False):
    """(image as HxWx3 uint8 numpy, soft label float32, info dict) per sample."""
    urls, manifest = shard_urls(out)
    width, height = manifest["config"]["size"]
    ext = {"jpeg": "jpg", "png": "png", "webp": "webp", "raw": "raw"}[manifest["config"]["image_format"]]

    def to_sample(sample):
        if ext == "raw":
            image = np.frombuffer(sample["raw"], np.uint8).reshape(height, width, 3)
        else:
            image = sample[ext]  # already decoded by .decode("rgb8")
        info = sample["json"]
        assert int(sample["cls"]) == info["label"]
        return image, np.asarray(info["soft_label"], np.float32), info

    dataset = wds.WebDataset(urls, shardshuffle=100 if shuffle else False, empty_check=False)
    if shuffle:
        dataset = dataset.shuffle(1000)
    return dataset.decode("rgb8").map(to_sample), manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="a mixbake OUT directory baked with --format webdataset")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)

    dataset, manifest = make_dataset(out)
    classes = manifest["classes"]
    n, per_op, soft_mass = 0, {}, np.zeros(len(classes))
    for image, soft, info in dataset:
        if n == 0:
            top = ", ".join(f"{classes[i]}={soft[i]:.3f}" for i in np.flatnonzero(soft))
            print(f"first sample: key={info['key']} image {image.shape} {image.dtype} "
                  f"class={classes[info['label']]} op={info['op']} lam={info['lam']:.4f} soft: {top}")
        n += 1
        per_op[info["op"]] = per_op.get(info["op"], 0) + 1
        soft_mass += soft
    print(f"{n} samples in {len(manifest['shards'])} tar shards (manifest says {manifest['totals']['rows']})")
    print("rows per op: " + ", ".join(f"{op}={k}" for op, k in sorted(per_op.items())))
    print("soft-label mass per class: " + ", ".join(f"{c}={m:.2f}" for c, m in zip(classes, soft_mass)))

    # batched: images stacked to (B, H, W, 3) uint8 and soft labels to (B, K) float32
    batched = dataset.batched(args.batch_size, partial=True)
    images, softs, infos = next(iter(batched))
    print(f"one batch: images {np.asarray(images).shape}, soft labels {np.asarray(softs).shape}")
    return 0 if n == manifest["totals"]["rows"] else 1


if __name__ == "__main__":
    sys.exit(main())
