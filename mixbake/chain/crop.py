"""``--resize random-crop``: torchvision ``RandomResizedCrop`` on the oriented source, then resized
to ``--size``.

Area fraction uniform in ``--crop-scale``, aspect ratio log-uniform in ``--crop-ratio``, up to 10
tries for a box inside the image, else the centre fallback; the position uniform over the places
the box fits. The draws are uniforms taken for every view; the box is computed in the worker from
the image header's size, before anything is decoded, so the JPEG is decoded at the largest
power-of-two DCT scale at which the crop still covers the output (``imaging.load_image``).
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

from ..options import span
from . import Record, Step

TRIES = 10
SCALE = span("crop_scale", (0.08, 1.0), "With --resize random-crop: the crop's area as a fraction of the "
             "image, uniform in [LO, HI] (torchvision RandomResizedCrop).", 0, 1, "is an area fraction")
RATIO = span("crop_ratio", (3 / 4, 4 / 3), "With --resize random-crop: the crop's aspect ratio w/h, "
             "log-uniform in [LO, HI].", 0, 100, "is an aspect ratio w/h")


def crop_box(width: int, height: int, drawn: np.ndarray, scale, ratio) -> Tuple[int, int, int, int]:
    """The crop (x0, y0, x1, y1) of a ``width`` x ``height`` image from one view's uniforms, as
    torchvision's ``RandomResizedCrop.get_params`` computes it from its draws."""
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for t in range(TRIES):
        target = area * (scale[0] + drawn[t] * (scale[1] - scale[0]))
        aspect = math.exp(log_lo + drawn[TRIES + t] * (log_hi - log_lo))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            y0 = min(int(drawn[2 * TRIES] * (height - h + 1)), height - h)
            x0 = min(int(drawn[2 * TRIES + 1] * (width - w + 1)), width - w)
            return x0, y0, x0 + w, y0 + h
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    x0, y0 = (width - w) // 2, (height - h) // 2
    return x0, y0, x0 + w, y0 + h


def _header_size(payload: bytes):
    """The oriented size of a JPEG (libjpeg-turbo's header parse, and the EXIF orientation as
    ``imaging`` reads it) or of a PNG without an eXIf chunk (its IHDR), in microseconds; None for
    anything else (Pillow then reads the header)."""
    import struct
    if payload[:3] == b"\xff\xd8\xff":
        import simplejpeg

        from ..imaging import jpeg_orientation
        try:
            height, width, _, _ = simplejpeg.decode_jpeg_header(payload)
        except ValueError:
            return None
        return (height, width) if jpeg_orientation(payload) in (5, 6, 7, 8) else (width, height)
    if payload[:8] == b"\x89PNG\r\n\x1a\n" and payload[12:16] == b"IHDR" and b"eXIf" not in payload:
        width, height = struct.unpack(">II", payload[16:24])
        return width, height
    return None


def source_size(payload) -> Tuple[int, int]:
    """The oriented (width, height) of an encoded image (or an array) from its header alone, with
    Pillow (no codec: ``verify --deep`` re-plans crops with it)."""
    if isinstance(payload, np.ndarray):
        return payload.shape[1], payload.shape[0]
    fast = _header_size(payload)
    if fast is not None:
        return fast
    import io
    from PIL import Image
    with Image.open(io.BytesIO(payload)) as im:
        width, height = im.size
        try:
            orientation = int(im.getexif().get(0x0112, 1))
        except Exception:  # a broken EXIF block is not a broken image (as imaging reads it)
            orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


class RandomCrop(Step):
    name = "crop"
    stream = "crop"
    options = (SCALE, RATIO)

    def on(self, config) -> bool:
        return config.resize == "random-crop"

    def inert(self, config):
        if self.on(config):
            return {}
        return {o.name: f"--resize {config.resize}" for o in self.options}

    def draw(self, config, rng, views):
        return rng.random((views, 2 * TRIES + 2))

    def chooser(self, config, drawn: np.ndarray, record: Record):
        """``(width, height) -> box`` for ``imaging.load_image``; the box chosen goes to ``record``."""
        def choose(width: int, height: int):
            record.crop = crop_box(width, height, drawn, config.crop_scale, config.crop_ratio)
            return record.crop
        return choose

    def describe(self, config):
        (s0, s1), (r0, r1) = config.crop_scale, config.crop_ratio
        return f"random-crop (area {s0:g}-{s1:g}, ratio {r0:.3g}-{r1:.3g})"


STEP = RandomCrop()
