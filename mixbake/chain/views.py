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
from . import BY_NAME, ViewKey, plan_record, replay


@dataclass
class ItemViews:
    views: List[np.ndarray]         # one per copy of the pool, in copy order
    records: List[dict]             # what each view went through (``Record.to_dict``)
    original: Optional[np.ndarray]  # the unaugmented fit, for the --keep-originals row


def item_views(config, payload, draws: dict, first_view: int, keys: List[ViewKey], originals: bool) -> ItemViews:
    """Views ``first_view ..`` of one item (one per key), raising ``imaging.DecodeError`` if it
    does not decode."""
    crop = BY_NAME["crop"]
    random_crop = crop.on(config)
    fit = "crop" if random_crop else config.resize
    base = None
    if not random_crop or originals:
        base = imaging.load_image(payload, config.size, fit, config.max_pixels)
    views, records = [], []
    for j, key in enumerate(keys):
        record = plan_record(config, draws, first_view + j)
        image = base
        if random_crop:
            choose = crop.chooser(config, draws["crop"][first_view + j], record)
            image = imaging.load_image(payload, config.size, fit, config.max_pixels, choose)
        record = record.to_dict()
        views.append(replay.apply(image, record, key))
        records.append(record)
    return ItemViews(views, records, base if originals else None)
