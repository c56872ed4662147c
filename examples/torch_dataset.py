"""Train on a mixbake Parquet bake with plain PyTorch: a ``Dataset`` over the shards and soft targets.

    mixbake bake demo out/ --size 32
    python examples/torch_dataset.py out/ [--steps 5] [--batch-size 32] [--workers 0]

``MixbakeParquet`` reads the shards listed in ``OUT/manifest.json`` with pyarrow, one row group at a
time (a row group is ~1000 rows or ~100 MB, whichever is smaller), decodes each image with Pillow and
returns ``(image, soft_label)``: a float32 CHW tensor in [0, 1] and a float32 tensor of class weights.
``GroupedShuffleSampler`` shuffles row groups, then rows within a row group, so a worker decodes each
row group once per epoch instead of once per sample.

The loss is soft-target cross-entropy, ``-(soft * log_softmax(logits)).sum(1).mean()``. Because mixbake
writes ``soft = lam * onehot(label_a) + (1 - lam) * onehot(label_b)`` (then label smoothing, if any),
this equals the form most mixup/cutmix code uses, ``lam * CE(a) + (1 - lam) * CE(b)``; the script
computes both on every batch and prints the difference.

Needs torch, pyarrow, numpy and Pillow (no mixbake import: any trainer machine can run it).
"""
from __future__ import annotations

import argparse
import bisect
import io
import json
import os
import sys
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

COLUMNS = ["image", "soft_label", "lam", "label_a", "label_b"]


class MixbakeParquet(Dataset):
    """Map-style dataset over ``OUT/data/train-*.parquet``.

    ``ds[i]`` is ``(image, soft_label)``, or ``(image, soft_label, info)`` with ``provenance=True``,
    where ``info`` holds ``lam`` (float32) and ``label_a``/``label_b`` (int64; a row without a partner,
    i.e. cutout or an unaugmented row, has ``label_b == label_a``).

    Files are opened lazily in whichever process reads them, so the dataset pickles cheaply into
    DataLoader workers. Each process keeps the last decoded row group's columns (not its pixels).
    """

    def __init__(self, out: str, provenance: bool = False):
        self.out = out
        self.provenance = provenance
        with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        if manifest["config"]["format"] != "parquet":
            raise ValueError(f"{out} was baked with --format {manifest['config']['format']}, not parquet")
        self.classes: List[str] = manifest["classes"]
        self.label_smoothing: float = manifest["config"]["label_smoothing"]
        self.paths = [os.path.join(out, s["path"]) for s in manifest["shards"]]
        # (path, row group) per group and the global index of each group's first row
        self.groups: List[Tuple[str, int]] = []
        self.starts: List[int] = []
        total = 0
        for path in self.paths:
            meta = pq.read_metadata(path)
            for g in range(meta.num_row_groups):
                self.groups.append((path, g))
                self.starts.append(total)
                total += meta.row_group(g).num_rows
        self.length = total
        self._files: Dict[str, pq.ParquetFile] = {}
        self._cached: Optional[Tuple[int, dict]] = None

    def __len__(self) -> int:
        return self.length

    def group_of(self, index: int) -> int:
        return bisect.bisect_right(self.starts, index) - 1

    def _group(self, g: int) -> dict:
        if self._cached is None or self._cached[0] != g:
            path, rg = self.groups[g]
            if path not in self._files:
                self._files[path] = pq.ParquetFile(path)
            names = self._files[path].schema_arrow.names
            columns = COLUMNS + [c for c in ("height", "width", "channels") if c in names]  # --image-format raw
            table = self._files[path].read_row_group(rg, columns=columns)
            data = {name: table.column(name) for name in columns if name != "image"}
            data["bytes"] = table.column("image").combine_chunks().field("bytes")
            soft = data["soft_label"].combine_chunks()  # list<float32>, one entry per class
            data["soft_label"] = soft.flatten().to_numpy().reshape(len(soft), -1)
            # no partner (cutout, unaugmented): label_b is null; lam*CE(a) + (1-lam)*CE(a) is then CE(a)
            data["label_b"] = pc.coalesce(data["label_b"], data["label_a"])
            for name in ("lam", "label_a", "label_b"):
                data[name] = data[name].to_numpy()
            self._cached = (g, data)
        return self._cached[1]

    def __getitem__(self, index: int):
        if not 0 <= index < self.length:
            raise IndexError(index)
        g = self.group_of(index)
        data, r = self._group(g), index - self.starts[g]
        raw = data["bytes"][r].as_py()
        if "height" in data:  # uint8 HxWxC, no container
            shape = [data[n][r].as_py() for n in ("height", "width", "channels")]
            pixels = np.frombuffer(raw, dtype=np.uint8).reshape(shape)
        else:
            with Image.open(io.BytesIO(raw)) as im:
                pixels = np.asarray(im.convert("RGB"))
        image = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div_(255.0)
        soft = torch.from_numpy(data["soft_label"][r].copy())
        if not self.provenance:
            return image, soft
        info = {"lam": torch.tensor(data["lam"][r]), "label_a": torch.tensor(int(data["label_a"][r])),
                "label_b": torch.tensor(int(data["label_b"][r]))}
        return image, soft, info


class GroupedShuffleSampler(Sampler[int]):
    """Shuffle the order of row groups, then the rows inside each group (call ``set_epoch`` per epoch)."""

    def __init__(self, dataset: MixbakeParquet, seed: int = 0):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        bounds = self.dataset.starts + [len(self.dataset)]
        for g in rng.permutation(len(self.dataset.groups)):
            yield from (bounds[g] + rng.permutation(bounds[g + 1] - bounds[g])).tolist()


def soft_cross_entropy(logits: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    return -(soft * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def lam_cross_entropy(logits, label_a, label_b, lam, label_smoothing: float = 0.0) -> torch.Tensor:
    """``lam * CE(a) + (1 - lam) * CE(b)``, per sample, then the mean (torch's smoothing == mixbake's)."""
    ce_a = F.cross_entropy(logits, label_a, reduction="none", label_smoothing=label_smoothing)
    ce_b = F.cross_entropy(logits, label_b, reduction="none", label_smoothing=label_smoothing)
    return (lam * ce_a + (1.0 - lam) * ce_b).mean()


def tiny_model(num_classes: int) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(32, num_classes),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="a mixbake OUT directory baked with --format parquet")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    dataset = MixbakeParquet(args.out, provenance=True)
    image, soft, _ = dataset[0]
    print(f"{len(dataset)} samples in {len(dataset.paths)} shards / {len(dataset.groups)} row groups; "
          f"image {tuple(image.shape)} {image.dtype}, soft_label {tuple(soft.shape)} {soft.dtype}; "
          f"classes {dataset.classes}")
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=GroupedShuffleSampler(dataset),
                        num_workers=args.workers, drop_last=False)
    model = tiny_model(len(dataset.classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    worst, step, epoch = 0.0, 0, 0
    while step < args.steps:
        loader.sampler.set_epoch(epoch)
        for images, soft, info in loader:
            logits = model(images)
            loss = soft_cross_entropy(logits, soft)
            same = lam_cross_entropy(logits, info["label_a"], info["label_b"], info["lam"],
                                     dataset.label_smoothing)
            diff = abs(loss.item() - same.item())
            worst = max(worst, diff)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            print(f"step {step}: soft-target CE {loss.item():.6f}   lam*CE(a)+(1-lam)*CE(b) {same.item():.6f}"
                  f"   |diff| {diff:.2e}")
            if step >= args.steps:
                break
        epoch += 1
    ok = worst < 1e-5
    print(f"{'OK' if ok else 'MISMATCH'}: the two loss forms agree to {worst:.2e} over {step} steps")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
