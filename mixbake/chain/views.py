"""An item's views: its source decoded and sent through the chain, once per copy of the pool.

Imported by workers only (it decodes). With ``--resize random-crop`` each view decodes the source
again, at the DCT scale its own crop allows; otherwise the item is decoded once and each view runs
the later steps on that image. The ``--keep-originals`` row of an item is its plain fit (a
centre crop under random-crop), unaugmented.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .. import imaging
from ..targets.masks import load_with_mask, replay_mask
from . import BY_NAME, ViewKey, plan_record, replay


@dataclass
class ItemViews:
    views: List[np.ndarray]         # one per copy of the pool, in copy order
    records: List[dict]             # what each view went through (``Record.to_dict``)
    original: Optional[np.ndarray]  # the unaugmented fit, for the --keep-originals row
    masks: Optional[List[np.ndarray]] = None  # each view's segmentation mask (a source with masks)
    original_mask: Optional[np.ndarray] = None


def item_views(config, payload, draws: dict, first_view: int, keys: List[ViewKey], originals: bool) -> ItemViews:
    """Views ``first_view ..`` of one item (one per key), raising ``imaging.DecodeError`` if it
    does not decode. ``payload``: the image's, or with masks a ``sources.ItemPayload``."""
    crop = BY_NAME["crop"]
    random_crop = crop.on(config)
    base = base_mask = None
    if not random_crop or originals:
        base, base_mask = _load(config, payload)
    views, records, masks = [], [], []
    for j, key in enumerate(keys):
        record = plan_record(config, draws, first_view + j)
        image, mask = base, base_mask
        if random_crop:
            image, mask = _load(config, payload, crop.chooser(config, draws["crop"][first_view + j], record), record)
        record = record.to_dict()
        views.append(replay.apply(image, record, key))
        records.append(record)
        if config.with_masks:
            masks.append(replay_mask(mask, record, config.mask_ignore_index, config.mask_cutout))
    return ItemViews(views, records, base if originals else None, masks if config.with_masks else None,
                     base_mask if originals else None)


def _load(config, payload, chooser=None, record=None):
    """(image, mask or None) at the output size (see ``targets.masks.load_with_mask``)."""
    if config.with_masks:
        return load_with_mask(config, payload, chooser, record)
    fit = "crop" if config.resize == "random-crop" else config.resize
    return imaging.load_image(payload, config.size, fit, config.max_pixels, chooser), None
