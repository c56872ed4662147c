"""Presets: published training recipes as bake options (``--preset NAME``; a recipe's ``preset`` key).

A preset only fills in defaults: every flag (or recipe key) given overrides it, and a build
records the resolved options, never the preset's name, so a preset can be refined later without
changing what an existing recipe bakes (its manifest holds every value).

Each value says where it comes from. Where mixbake does something else than the source, it says
so (``DEVIATIONS``).
"""
from __future__ import annotations

from typing import Dict, List, Tuple

from .errors import MixbakeError

DEIT_SOURCE = ("DeiT, Touvron et al. 2021: facebookresearch/deit main.py get_args_parser() defaults (commit "
               "0282d2a) and datasets.py build_transform() -> timm create_transform()")

# (option, value, where the value comes from)
DEIT: Tuple[Tuple[str, object, str], ...] = (
    ("size", "224", "main.py --input-size 224"),
    ("resize", "random-crop", "timm transforms_imagenet_train: RandomResizedCropAndInterpolation"),
    ("crop_scale", (0.08, 1.0), "timm transforms_imagenet_train scale=(0.08, 1.0)"),
    ("crop_ratio", (3 / 4, 4 / 3), "timm transforms_imagenet_train ratio=(3/4, 4/3)"),
    ("hflip", 0.5, "timm transforms_imagenet_train hflip=0.5"),
    ("auto_augment", "randaugment", "main.py --aa rand-m9-mstd0.5-inc1 (RandAugment, magnitude 9)"),
    ("ra_ops", 2, "timm rand_augment_transform: num_layers 2 (the 'n' default)"),
    ("ra_magnitude", 9, "main.py --aa rand-m9-..."),
    ("erase", 0.25, "main.py --reprob 0.25"),
    ("erase_value", "noise", "main.py --remode pixel (per-pixel random values)"),
    ("mixup", 0.5, "main.py --mixup-switch-prob 0.5: half the batches cutmix, half mixup"),
    ("cutmix", 0.5, "main.py --mixup-switch-prob 0.5"),
    ("mixup_alpha", 0.8, "main.py --mixup 0.8"),
    ("cutmix_alpha", 1.0, "main.py --cutmix 1.0"),
    ("label_smoothing", 0.1, "main.py --smoothing 0.1 (applied by timm Mixup to the mixed target)"),
)

DEVIATIONS = {"deit": [
    "RandAugment is torchvision's (its 14 ops, fixed magnitude 9 of 31 bins), not timm's 'rand-m9-mstd0.5-inc1' "
    "(timm samples the magnitude around 9 with std 0.5 and uses its own op set with increasing severity).",
    "Colour jitter is off: timm's create_transform turns --color-jitter 0.4 off whenever an auto-augment policy is "
    "given, as it is here.",
    "Resizing after the crop is bilinear (timm: bicubic, --train-interpolation bicubic).",
    "mixup/cutmix draw lam and the op per sample (timm's mode 'elem'); DeiT draws one per batch (mode 'batch'), "
    "which an offline bake has no notion of.",
    "Random erasing fills with uniform uint8 noise in pixel space; timm's 'pixel' mode draws normal noise in the "
    "normalised space (after mean/std normalisation).",
    "Repeated augmentation (DeiT's RASampler, 3 views of an image in a batch) is a sampler, not a transform: "
    "use --copies for several views of each image.",
]}

PRESETS: Dict[str, Tuple[Tuple[str, object, str], ...]] = {"deit": DEIT}
SOURCES = {"deit": DEIT_SOURCE}


def names() -> List[str]:
    return sorted(PRESETS)


def preset(name: str) -> dict:
    """{option: value} of a preset (CLI spelling of sizes)."""
    try:
        entries = PRESETS[name.lower()]
    except (KeyError, AttributeError):
        raise MixbakeError(f"Unknown preset {name!r}: known presets are {', '.join(names())}.") from None
    return {option: value for option, value, _ in entries}


def config(name: str, **overrides):
    """The ``BakeConfig`` of a preset, with ``overrides`` on top: ``presets.config("deit", copies=4)``."""
    from .config import BakeConfig
    return BakeConfig(**{**preset(name), **overrides})


def table(name: str) -> List[str]:
    """A Markdown table of a preset's values and their sources (docs/chain.md)."""
    lines = ["| option | value | source |", "|---|---|---|"]
    for option, value, source in PRESETS[name]:
        shown = " ".join(f"{v:.4g}" for v in value) if isinstance(value, tuple) else value
        lines.append(f"| `--{option.replace('_', '-')}` | {shown} | {source} |")
    return lines
