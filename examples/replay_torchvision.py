"""Replay a baked row with torchvision, from its ``aug_a``/``aug_b`` records (docs/chain.md).

Each record entry is one ``torchvision.transforms.v2.functional`` call on a uint8 CHW tensor; the
mix is the row's own (``lam``, ``boxes``). Usage, on a build made with a chain:

    python examples/replay_torchvision.py OUT SOURCE_ROOT [ROW]

which replays row ROW (default 0) of labels.parquet from the source image files (an image-folder
source: ``ref_a``/``ref_b`` are paths under SOURCE_ROOT) and prints how far the replay is from the
stored image. ``replay_view`` and ``replay_row`` are the functions to borrow.
"""
from __future__ import annotations

import math
import sys

import numpy as np
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

NEAREST, BILINEAR = v2.InterpolationMode.NEAREST, v2.InterpolationMode.BILINEAR


def _affine(img, translate=(0, 0), shear=(0.0, 0.0)):
    return F.affine(img, angle=0.0, translate=list(translate), scale=1.0, shear=list(shear),
                    interpolation=NEAREST, fill=None, center=[0, 0])


# record op -> the call (value: the recorded magnitude), as torchvision's RandAugment makes it
CALLS = {
    "rotate": lambda img, v: F.rotate(img, v, interpolation=NEAREST, fill=None),
    "brightness": F.adjust_brightness, "contrast": F.adjust_contrast, "saturation": F.adjust_saturation,
    "hue": F.adjust_hue,
    "Identity": lambda img, v: img,
    "ShearX": lambda img, v: _affine(img, shear=(math.degrees(math.atan(v)), 0.0)),
    "ShearY": lambda img, v: _affine(img, shear=(0.0, math.degrees(math.atan(v)))),
    "TranslateX": lambda img, v: _affine(img, translate=(int(v), 0)),
    "TranslateY": lambda img, v: _affine(img, translate=(0, int(v))),
    "Rotate": lambda img, v: F.rotate(img, v, interpolation=NEAREST, fill=None),
    "Brightness": lambda img, v: F.adjust_brightness(img, 1.0 + v),
    "Color": lambda img, v: F.adjust_saturation(img, 1.0 + v),
    "Contrast": lambda img, v: F.adjust_contrast(img, 1.0 + v),
    "Sharpness": lambda img, v: F.adjust_sharpness(img, 1.0 + v),
    "Posterize": lambda img, v: F.posterize(img, int(v)),
    "Solarize": lambda img, v: F.solarize(img, 255.0 * v),
    "AutoContrast": lambda img, v: F.autocontrast(img),
    "Equalize": lambda img, v: F.equalize(img),
}


def erase_noise(seed: int, src: int, copy: int, height: int, width: int) -> np.ndarray:
    """The noise mixbake fills an --erase-value noise box with (docs/chain.md)."""
    return np.random.default_rng([seed, src, copy]).integers(0, 256, (height, width, 3), dtype=np.uint8)


def replay_view(source: np.ndarray, record: dict, size, seed: int = 0, src: int = 0, copy: int = 0) -> torch.Tensor:
    """One view: ``source`` the oriented source image (HxWx3 uint8), ``size`` (width, height)."""
    img = torch.from_numpy(np.array(source)).permute(2, 0, 1)  # (a writable copy)
    width, height = size
    if record["crop"] is not None:
        x0, y0, x1, y1 = record["crop"]
        img = F.resized_crop(img, top=y0, left=x0, height=y1 - y0, width=x1 - x0, size=[height, width],
                             interpolation=BILINEAR, antialias=True)
    else:  # the view was fitted by --resize as without a chain: start from the stored original
        img = F.resize(img, [height, width], interpolation=BILINEAR, antialias=True)
    if record["hflip"]:
        img = F.horizontal_flip(img)
    if record["vflip"]:
        img = F.vertical_flip(img)
    boxes = iter(record["boxes"])
    for entry in record["ops"]:
        op, value = entry["op"], entry["value"]
        if op == "erase":
            x0, y0, x1, y1 = next(boxes)
            fill = torch.zeros((3, 1, 1), dtype=torch.uint8) if value == 0 else \
                torch.from_numpy(erase_noise(seed, src, copy, y1 - y0, x1 - x0)).permute(2, 0, 1)
            img = F.erase(img, i=y0, j=x0, h=y1 - y0, w=x1 - x0, v=fill)
        else:
            img = CALLS[op](img, value)
    return img


def replay_row(row: dict, source_a: np.ndarray, source_b, size, seed: int) -> np.ndarray:
    """A row's image (HxWx3 uint8) from its sources: both views, then the row's op."""
    copy = int(row["key"].rsplit("_c", 1)[1])
    a = replay_view(source_a, row["aug_a"], size, seed, row["src_a"], copy).permute(1, 2, 0).numpy()
    if row["op"] in ("none", "cutout") or source_b is None:
        return a  # (cutout: then its holes, as the row's boxes say)
    b = replay_view(source_b, row["aug_b"], size, seed, row["src_b"], copy).permute(1, 2, 0).numpy()
    if row["op"] == "mixup":
        lam = row["lam"]
        return np.clip(np.rint(lam * a.astype(np.float64) + (1 - lam) * b), 0, 255).astype(np.uint8)
    out = a.copy()  # cutmix: b inside the box
    for x0, y0, x1, y1 in row["boxes"]:
        out[y0:y1, x0:x1] = b[y0:y1, x0:x1]
    return out


def _main(out: str, root: str, row_index: int) -> None:
    import json
    import os

    import pyarrow.parquet as pq
    from PIL import Image, ImageOps

    doc = json.load(open(os.path.join(out, "manifest.json")))
    row = pq.read_table(os.path.join(out, "labels.parquet")).slice(row_index, 1).to_pylist()[0]
    shard = pq.read_table(os.path.join(out, doc["shards"][row["shard"]]["path"]), columns=["image"])
    stored = np.asarray(Image.open(__import__("io").BytesIO(shard.column("image")[row["row"]]["bytes"])).convert("RGB"))

    def load(ref):
        return None if ref is None else np.asarray(ImageOps.exif_transpose(Image.open(os.path.join(root, ref))).convert("RGB"))

    replayed = replay_row(row, load(row["ref_a"]), load(row["ref_b"]), doc["config"]["size"], doc["config"]["seed"])
    diff = np.abs(replayed.astype(int) - stored.astype(int))
    print(f"row {row_index} ({row['op']}): mean |replay - stored| = {diff.mean():.2f} levels, max {diff.max()}")


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
