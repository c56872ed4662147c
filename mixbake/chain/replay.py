"""A view's pixels from its record: the record is the plan of a view, and this is the only code
that turns it into pixels (what a torchvision replay does too, ``docs/chain.md``). Imported by
workers only: it loads OpenCV."""
from __future__ import annotations

import numpy as np

from . import ViewKey, pixels
from .erase import noise
from .jitter import COMPONENTS


def apply(image: np.ndarray, record: dict, key: ViewKey) -> np.ndarray:
    """``image`` (the view's crop, resized to the output) through the flips and every op of ``record``."""
    if record["hflip"]:
        image = image[:, ::-1]
    if record["vflip"]:
        image = image[::-1]
    if record["hflip"] or record["vflip"]:
        image = np.ascontiguousarray(image)
    boxes = iter(record["boxes"])
    for entry in record["ops"]:
        op, value = entry["op"], entry["value"]
        if op == "rotate":
            image = pixels.rotate(image, value)
        elif op in COMPONENTS:
            image = getattr(pixels, op)(image, value)
        elif op == "erase":
            x0, y0, x1, y1 = next(boxes)
            image = pixels.erase(image, (x0, y0, x1, y1), noise(key, (y1 - y0, x1 - x0, 3)) if value else 0)
        else:
            image = pixels.BY_NAME[op](image, value)
    return image
