"""Read a ``mixbake bake ... --format webdataset`` output with the ``webdataset`` package.

    python examples/webdataset_reader.py OUT [--batch-size 16]

Each sample in ``OUT/train-NNNNNN.tar`` is three files sharing a key: ``<key>.cls`` (the hard label,
ASCII digits), ``<key>.jpg|png|webp`` (``<key>.raw`` for ``--image-format raw``: uint8 HxWx3 bytes, the
size is in manifest.json) and ``<key>.json`` (soft label and provenance: label, soft_label, op, lam,
src_a, src_b, label_a, label_b, boxes). Class names are in ``OUT/manifest.json``.

A bake of more than 1000 classes (or ``--soft-label sparse``) writes the soft label sparse: the
json has ``soft_index`` (ascending classes) and ``soft_value`` (their weights) instead of
``soft_label``, the non-zeros before label smoothing. A sample then carries that pair, not K floats;
``collate`` builds a batch's dense (B, K) target, ``(1 - eps) * sparse + eps / K`` with eps from
manifest.json config.label_smoothing. (``--soft-label both``: the sparse pair is read.)

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


def target_of(info: dict):
    """A sample's soft label as stored: the dense (K,) float32 array, or the sparse (index, value) pair."""
    if "soft_index" in info:
        return np.asarray(info["soft_index"], np.int64), np.asarray(info["soft_value"], np.float32)
    return np.asarray(info["soft_label"], np.float32)


def dense_targets(targets, num_classes: int, label_smoothing: float = 0.0) -> np.ndarray:
    """Stored targets of a batch as (B, K) float32: dense ones stacked, sparse ones scattered, then
    smoothed (a dense soft_label holds its smoothing already)."""
    if not isinstance(targets[0], tuple):
        return np.stack(targets)
    dense = np.zeros((len(targets), num_classes), np.float32)
    for row, (index, value) in enumerate(targets):
        dense[row, index] = value
    if label_smoothing:
        dense = dense * np.float32(1 - label_smoothing) + np.float32(label_smoothing / num_classes)
    return dense


def add_mass(mass: np.ndarray, target, label_smoothing: float) -> None:
    """Add one sample's soft label, smoothing included, to the per-class ``mass``."""
    if isinstance(target, tuple):
        index, value = target
        mass += label_smoothing / len(mass)
        np.add.at(mass, index, (1 - label_smoothing) * value)
    else:
        mass += target


def make_dataset(out: str, shuffle: bool = False):
    """(image as HxWx3 uint8 numpy, soft label as stored (see ``target_of``), info dict) per sample."""
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
        return image, target_of(info), info

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
    classes, eps = manifest["classes"], manifest["config"]["label_smoothing"]
    n, per_op, soft_mass = 0, {}, np.zeros(len(classes))
    for image, target, info in dataset:
        if n == 0:
            print(f"first sample: key={info['key']} image {image.shape} {image.dtype} "
                  f"class={classes[info['label']]} op={info['op']} lam={info['lam']:.4f} {describe(target, classes)}")
        n += 1
        per_op[info["op"]] = per_op.get(info["op"], 0) + 1
        add_mass(soft_mass, target, eps)
    print(f"{n} samples in {len(manifest['shards'])} tar shards (manifest says {manifest['totals']['rows']})")
    print("rows per op: " + ", ".join(f"{op}={k}" for op, k in sorted(per_op.items())))
    top = np.argsort(-soft_mass, kind="stable")[:10] if len(classes) > 10 else range(len(classes))
    print(f"soft-label mass per class{' (top 10)' if len(classes) > 10 else ''}: "
          + ", ".join(f"{classes[c]}={soft_mass[c]:.2f}" for c in top))

    # batched: images stacked to (B, H, W, 3) uint8 and soft labels to (B, K) float32
    def collate(samples):
        images, targets, infos = zip(*samples)
        return np.stack(images), dense_targets(targets, len(classes), eps), list(infos)

    images, softs, infos = next(iter(dataset.batched(args.batch_size, collation_fn=collate, partial=True)))
    print(f"one batch: images {images.shape}, soft labels {softs.shape}")
    return 0 if n == manifest["totals"]["rows"] else 1


def describe(target, classes) -> str:
    if isinstance(target, tuple):  # sparse: before smoothing
        return "soft_index/soft_value: " + ", ".join(f"{classes[i]}={w:.3f}" for i, w in zip(*target))
    return "soft: " + ", ".join(f"{classes[i]}={target[i]:.3f}" for i in np.flatnonzero(target))


if __name__ == "__main__":
    sys.exit(main())
