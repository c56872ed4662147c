"""Load a mixbake Parquet bake with Hugging Face ``datasets`` and print what it sees.

    python examples/hf_datasets.py OUT [--cache-dir DIR] [--streaming]

``load_dataset("parquet", data_dir=OUT)`` finds ``OUT/data/train-*.parquet`` (HF's default
``data/{split}-*`` layout) and takes the column types from the ``huggingface`` key of the Parquet
footer: ``image`` decodes to a PIL image (for ``--image-format raw`` it stays a
``{"bytes", "path"}`` dict: reshape ``bytes`` with height/width/channels), ``label`` is a
``ClassLabel`` carrying the class names, ``soft_label`` a list of float32. Nothing is downloaded;
set ``HF_HUB_OFFLINE=1`` to be sure.

A bake of more than 1000 classes (or ``--soft-label sparse``) stores the soft label sparse instead:
``soft_index`` (a sequence of int32, ascending classes) and ``soft_value`` (float32, their weights),
the non-zeros before label smoothing. ``dense_view`` gives a dataset whose ``soft_label`` is built
per accessed batch (``with_transform``), ``(1 - eps) * sparse + eps / K`` with eps from
``OUT/manifest.json`` config.label_smoothing: no K floats a row are cached or stored.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np


def dense_batch(soft_index, soft_value, num_classes: int, label_smoothing: float = 0.0) -> np.ndarray:
    """Sparse rows (a list of classes and one of their weights per row) as a (B, K) float32 target,
    smoothed: ``(1 - eps) * sparse + eps / K``."""
    dense = np.zeros((len(soft_index), num_classes), np.float32)
    for row, (index, value) in enumerate(zip(soft_index, soft_value)):
        dense[row, np.asarray(index, np.int64)] = value
    if label_smoothing:
        dense = dense * np.float32(1 - label_smoothing) + np.float32(label_smoothing / num_classes)
    return dense


def dense_view(ds, num_classes: int, label_smoothing: float):
    """``ds`` with a ``soft_label`` column made from ``soft_index``/``soft_value`` when rows are read
    (a batch at a time, nothing cached); the other columns as they are."""
    def transform(batch):
        batch["soft_label"] = dense_batch(batch.pop("soft_index"), batch.pop("soft_value"),
                                          num_classes, label_smoothing)
        return batch
    return ds.with_transform(transform)


def label_smoothing_of(out: str) -> float:
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)["config"]["label_smoothing"]


def load(out: str, cache_dir=None, streaming: bool = False):
    import datasets
    return datasets.load_dataset("parquet", data_dir=out, split="train", cache_dir=cache_dir,
                                 streaming=streaming)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="a mixbake OUT directory baked with --format parquet")
    parser.add_argument("--cache-dir", default=None, help="HF datasets cache (default: HF's own)")
    parser.add_argument("--streaming", action="store_true", help="iterate the shards without caching")
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)

    import datasets

    ds = load(out, args.cache_dir, args.streaming)
    print(f"datasets {datasets.__version__}: {ds}")
    label = ds.features["label"]
    # an ImageNet-21k bake has 21,841 class names: show a few
    names = label.names if label.num_classes <= 20 else f"{label.names[:10]} ... {label.names[-1]!r}"
    print("features:")
    for name, feature in ds.features.items():
        print(f"  {name}: {feature if name != 'label' else f'ClassLabel(names={names})'}")
    print(f"label is {type(label).__name__} with {label.num_classes} classes: {names}")

    row = next(iter(ds))
    image = row["image"]
    if isinstance(image, dict):  # --image-format raw
        pixels = np.frombuffer(image["bytes"], np.uint8).reshape(row["height"], row["width"], row["channels"])
        shown = f"raw uint8 array {pixels.shape}"
    else:
        shown = f"{type(image).__name__} {image.mode} {image.size[0]}x{image.size[1]}"
    if "soft_index" in row:  # sparse: the non-zeros, before smoothing
        soft = "soft_index/soft_value: " + ", ".join(
            f"{label.int2str(i)}={w:.3f}" for i, w in zip(row["soft_index"], row["soft_value"]))
    else:
        soft = "soft_label: " + ", ".join(f"{label.int2str(i)}={w:.3f}" for i, w in enumerate(row["soft_label"]) if w)
    print(f"first row: key={row['key']} image={shown} label={label.int2str(row['label'])} "
          f"op={row['op']} lam={row['lam']:.4f} {soft}")

    if not args.streaming:
        show_soft_labels(ds, out, label.num_classes)
    return 0


def show_soft_labels(ds, out: str, num_classes: int) -> None:
    """The soft labels as numpy, without decoding any image."""
    if "soft_label" in ds.features:  # dense: one (rows, K) matrix
        soft_labels = np.asarray(ds.with_format("numpy")["soft_label"])
        print(f"soft_label matrix {soft_labels.shape} {soft_labels.dtype}; "
              f"row sums in [{soft_labels.sum(1).min():.6f}, {soft_labels.sum(1).max():.6f}]")
    if "soft_index" in ds.features:  # sparse: the entries, flat, straight from the Arrow table
        eps = label_smoothing_of(out)
        values = ds.data.column("soft_value").combine_chunks()
        sums = np.add.reduceat(values.values.to_numpy(), values.offsets.to_numpy()[:-1])  # every row has >= 1
        sums = (1 - eps) * sums + eps
        print(f"soft_index/soft_value: {len(values.values)} entries for {len(values)} rows "
              f"(label smoothing {eps} over {num_classes} classes); dense row sums in "
              f"[{sums.min():.6f}, {sums.max():.6f}]")
        batch = dense_view(ds.select_columns(["soft_index", "soft_value"]), num_classes, eps)[:8]["soft_label"]
        print(f"dense soft_label of rows 0-7, built on read: {batch.shape} {batch.dtype}")


if __name__ == "__main__":
    sys.exit(main())
