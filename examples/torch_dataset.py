"""Train on a mixbake Parquet bake with plain PyTorch: a ``Dataset`` over the shards and soft targets.

    mixbake bake demo out/ --size 32
    python examples/torch_dataset.py out/ [--steps 5] [--batch-size 32] [--workers 0] [--form dense|sparse]

``MixbakeParquet`` reads the shards listed in ``OUT/manifest.json`` with pyarrow, one row group at a
time (a row group is ~1000 rows or ~100 MB, whichever is smaller), decodes each image with Pillow and
returns ``(image, target)``: a float32 CHW tensor in [0, 1] and the row's soft label as stored.
``GroupedShuffleSampler`` shuffles row groups, then rows within a row group, so a worker decodes each
row group once per epoch instead of once per sample.

The soft label is stored in one of two forms (``mixbake bake --soft-label``; by default dense up to
1000 classes, sparse above):

- dense, ``soft_label``: K float32 per row, smoothing included; ``target`` is that (K,) tensor.
- sparse, ``soft_index`` (ascending int32 classes) and ``soft_value`` (their float32 weights): the
  non-zeros *before* label smoothing (at most 2 per row); ``target`` is the pair
  ``(index int64, value float32)``. ``SoftTargetCollate`` pads a batch's pairs and builds its dense
  target with ``torch.zeros(B, K).scatter_add_(1, index, value)``, then smooths it,
  ``(1 - eps) * dense + eps / K`` (eps: manifest.json config.label_smoothing). No K-float row exists
  outside the batch being trained on: the cost of a row on disk and in the dataset is its 1-2 entries.

A bake with ``--soft-label both`` has both; ``form="dense"|"sparse"`` picks one (default: sparse).
Either way ``SoftTargetCollate`` gives the same (B, K) float32 target.

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
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

COLUMNS = ["image", "lam", "label_a", "label_b"]
SOFT_COLUMNS = {"dense": ["soft_label"], "sparse": ["soft_index", "soft_value"]}


def stored_forms(names) -> List[str]:
    """The soft-label forms whose columns are all in ``names`` (a schema's column names)."""
    return [form for form, columns in SOFT_COLUMNS.items() if set(columns) <= set(names)]


def flat_lists(column) -> Tuple[np.ndarray, np.ndarray]:
    """A list column as (every entry, flat; offsets: row i is entries[offsets[i]:offsets[i+1]])."""
    lists = column.combine_chunks()
    offsets = lists.offsets.to_numpy()
    # a sliced list array's offsets need not start at 0; its values() are not sliced
    return lists.values.to_numpy()[offsets[0]:offsets[-1]], offsets - offsets[0]


class MixbakeParquet(Dataset):
    """Map-style dataset over ``OUT/data/train-*.parquet``.

    ``ds[i]`` is ``(image, target)``, or ``(image, target, info)`` with ``provenance=True``: ``target``
    is the dense soft label (a (K,) tensor) or, for ``form="sparse"``, its ``(index, value)`` tensors
    (see ``SoftTargetCollate``). ``info`` holds ``lam`` (float32) and ``label_a``/``label_b`` (int64;
    a row without a partner, i.e. cutout or an unaugmented row, has ``label_b == label_a``).

    Files are opened lazily in whichever process reads them, so the dataset pickles cheaply into
    DataLoader workers. Each process keeps the last decoded row group's columns (not its pixels).
    """

    def __init__(self, out: str, provenance: bool = False, form: Optional[str] = None):
        self.out = out
        self.provenance = provenance
        with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        if manifest["config"]["format"] != "parquet":
            raise ValueError(f"{out} was baked with --format {manifest['config']['format']}, not parquet")
        self.classes: List[str] = manifest["classes"]
        self.label_smoothing: float = manifest["config"]["label_smoothing"]
        self.paths = [os.path.join(out, s["path"]) for s in manifest["shards"]]
        self.form = self._pick_form(form)
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

    def _pick_form(self, requested: Optional[str]) -> str:
        stored = stored_forms(pq.read_schema(self.paths[0]).names) if self.paths else ["dense"]
        # a --soft-label both bake: read the sparse columns, 1-2 entries a row instead of K
        form = requested or ("sparse" if "sparse" in stored else "dense")
        if form not in stored:
            raise ValueError(f"{self.out} stores its soft label {' and '.join(stored)}, not {form}")
        return form

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
            raw = [c for c in ("height", "width", "channels") if c in names]  # --image-format raw
            columns = COLUMNS + SOFT_COLUMNS[self.form] + raw
            table = self._files[path].read_row_group(rg, columns=columns)
            data = {name: table.column(name) for name in COLUMNS + raw if name != "image"}
            data["bytes"] = table.column("image").combine_chunks().field("bytes")
            data.update(self._soft_columns(table))
            # no partner (cutout, unaugmented): label_b is null; lam*CE(a) + (1-lam)*CE(a) is then CE(a)
            data["label_b"] = pc.coalesce(data["label_b"], data["label_a"])
            for name in ("lam", "label_a", "label_b"):
                data[name] = data[name].to_numpy()
            self._cached = (g, data)
        return self._cached[1]

    def _soft_columns(self, table) -> dict:
        if self.form == "dense":  # list<float32>, one entry per class
            weights, offsets = flat_lists(table.column("soft_label"))
            return {"soft_label": weights.reshape(len(offsets) - 1, -1)}
        index, offsets = flat_lists(table.column("soft_index"))
        value, _ = flat_lists(table.column("soft_value"))  # one value per index: the same offsets
        return {"soft_index": index.astype(np.int64), "soft_value": value, "offsets": offsets}

    def target(self, data: dict, r: int):
        """Row ``r`` of a row group's soft label: the dense tensor, or the sparse (index, value) pair."""
        if self.form == "dense":
            return torch.from_numpy(data["soft_label"][r].copy())
        lo, hi = data["offsets"][r], data["offsets"][r + 1]
        return torch.from_numpy(data["soft_index"][lo:hi].copy()), torch.from_numpy(data["soft_value"][lo:hi].copy())

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
        target = self.target(data, r)
        if not self.provenance:
            return image, target
        info = {"lam": torch.tensor(data["lam"][r]), "label_a": torch.tensor(int(data["label_a"][r])),
                "label_b": torch.tensor(int(data["label_b"][r]))}
        return image, target, info


def pad_sparse(pairs) -> Tuple[torch.Tensor, torch.Tensor]:
    """A batch's (index, value) pairs as (B, M) int64 and float32 tensors, M its longest row (<= 2 for
    mixbake's rows), padded with index 0 and weight 0."""
    width = max(len(index) for index, _ in pairs)
    index = torch.zeros(len(pairs), width, dtype=torch.int64)
    value = torch.zeros(len(pairs), width, dtype=torch.float32)
    for row, (i, v) in enumerate(pairs):
        index[row, :len(i)], value[row, :len(v)] = i, v
    return index, value


def dense_target(index, value, num_classes: int, label_smoothing: float = 0.0) -> torch.Tensor:
    """The (B, K) float32 soft target of padded sparse rows: ``(1 - eps) * dense + eps / K``.

    scatter_add_ rather than scatter_: a padding entry (class 0, weight 0) may share a row with a
    real class 0, and scatter_ with a repeated index keeps either value; adding 0 is exact."""
    dense = torch.zeros(index.shape[0], num_classes, dtype=torch.float32).scatter_add_(1, index, value)
    if label_smoothing:
        dense = dense.mul_(1.0 - label_smoothing).add_(label_smoothing / num_classes)
    return dense


class SoftTargetCollate:
    """``collate_fn`` giving ``(images, soft[, info])`` with ``soft`` the (B, K) float32 target of
    either form: dense rows are stacked, sparse ones scattered (a class, so workers can pickle it)."""

    def __init__(self, num_classes: int, label_smoothing: float = 0.0):
        self.num_classes, self.label_smoothing = num_classes, label_smoothing

    def __call__(self, batch):
        images = torch.stack([sample[0] for sample in batch])
        targets = [sample[1] for sample in batch]
        if isinstance(targets[0], torch.Tensor):  # dense: smoothing is already in the stored values
            soft = torch.stack(targets)
        else:
            soft = dense_target(*pad_sparse(targets), self.num_classes, self.label_smoothing)
        if len(batch[0]) == 2:
            return images, soft
        return images, soft, default_collate([sample[2] for sample in batch])


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
    parser.add_argument("--form", choices=sorted(SOFT_COLUMNS), default=None,
                        help="which stored soft label to read (a --soft-label both bake has both; default: sparse)")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    dataset = MixbakeParquet(args.out, provenance=True, form=args.form)
    image, target, _ = dataset[0]
    if dataset.form == "dense":
        soft = f"soft_label {tuple(target.shape)} {target.dtype}"
    else:
        soft = f"soft label sparse ({len(target[0])} of {len(dataset.classes)} classes, dense per batch)"
    classes = dataset.classes if len(dataset.classes) <= 10 else f"{dataset.classes[:3]}... ({len(dataset.classes)})"
    print(f"{len(dataset)} samples in {len(dataset.paths)} shards / {len(dataset.groups)} row groups; "
          f"image {tuple(image.shape)} {image.dtype}, {soft}; classes {classes}")
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=GroupedShuffleSampler(dataset),
                        num_workers=args.workers, drop_last=False,
                        collate_fn=SoftTargetCollate(len(dataset.classes), dataset.label_smoothing))
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
