"""Load a mixbake Parquet bake with Hugging Face ``datasets`` and print what it sees.

    python examples/hf_datasets.py OUT [--cache-dir DIR] [--streaming]

``load_dataset("parquet", data_dir=OUT)`` finds ``OUT/data/train-*.parquet`` (HF's default
``data/{split}-*`` layout) and takes the column types from the ``huggingface`` key of the Parquet
footer: ``image`` decodes to a PIL image (for ``--image-format raw`` it stays a
``{"bytes", "path"}`` dict: reshape ``bytes`` with height/width/channels), ``label`` is a
``ClassLabel`` carrying the class names, ``soft_label`` a list of float32. Nothing is downloaded;
set ``HF_HUB_OFFLINE=1`` to be sure.
"""
from __future__ import annotations

import argparse
import os
import sys


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
    import numpy as np

    ds = load(out, args.cache_dir, args.streaming)
    print(f"datasets {datasets.__version__}: {ds}")
    print("features:")
    for name, feature in ds.features.items():
        print(f"  {name}: {feature}")
    label = ds.features["label"]
    print(f"label is {type(label).__name__} with {label.num_classes} classes: {label.names}")

    row = next(iter(ds))
    image = row["image"]
    if isinstance(image, dict):  # --image-format raw
        pixels = np.frombuffer(image["bytes"], np.uint8).reshape(row["height"], row["width"], row["channels"])
        shown = f"raw uint8 array {pixels.shape}"
    else:
        shown = f"{type(image).__name__} {image.mode} {image.size[0]}x{image.size[1]}"
    soft = ", ".join(f"{label.int2str(i)}={w:.3f}" for i, w in enumerate(row["soft_label"]) if w)
    print(f"first row: key={row['key']} image={shown} label={label.int2str(row['label'])} "
          f"op={row['op']} lam={row['lam']:.4f} soft_label: {soft}")

    if not args.streaming:
        # the label columns as numpy without decoding any image
        soft_labels = np.asarray(ds.with_format("numpy")["soft_label"])
        print(f"soft_label matrix {soft_labels.shape} {soft_labels.dtype}; "
              f"row sums in [{soft_labels.sum(1).min():.6f}, {soft_labels.sum(1).max():.6f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
