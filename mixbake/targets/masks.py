"""Segmentation masks: a class index per pixel, carried through every geometric step an image goes
through, and mixed by the op with the image's own box or lam.

One rule table (docs/labels.md has it with the label kinds'):

- decode: a single-channel PNG (mode L, or P: the palette's *indices*, not its colours) of the
  image's size (of the oriented image), else the item is bad, saying why;
- geometry (resize: crop / pad / stretch / random-crop; flips; rotate; the auto-augment ops ShearX,
  ShearY, TranslateX, TranslateY, Rotate): the image's own transform with nearest-neighbour
  sampling and the ignore index (``--mask-ignore-index``, 255) wherever nothing of the source
  lands (pad borders, rotated corners); colour steps leave the mask alone;
- erase (the chain's) and cutout: the holes become the ignore index (``--mask-cutout ignore``) or
  keep the source's classes (``keep``);
- cutmix: the mask of b inside the box, of a elsewhere; none: a's; mixup: ``mask`` is a's and
  ``mask_b`` b's (train with ``lam*CE(mask) + (1-lam)*CE(mask_b)``).

The geometric ops of the chain are nearest-neighbour moves of pixels, so they are applied to the
mask through the same pixel functions as the image, with the classes relabelled so the ignore
index is 0 (their fill) and back: ``(m - ignore) mod 256``.
"""
from __future__ import annotations

import io
from typing import Optional

import numpy as np

GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "rotate")


def decode_mask(data, size) -> np.ndarray:
    """Encoded mask bytes -> HxW uint8 class indices; ``size`` (width, height) the oriented image's.
    Raises ``imaging.DecodeError`` (the reason) for a mask that is missing, not single-channel, or
    of another size."""
    from PIL import Image

    from ..imaging import DecodeError
    if data is None:
        raise DecodeError("no mask (the mask file or cell is missing)")
    if _gray8_png(data):  # the common case, decoded by OpenCV in ~2/3 of Pillow's time (same pixels)
        import cv2
        mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if mask is not None and mask.ndim == 2 and mask.dtype == np.uint8:
            return _sized(mask, size)
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.mode not in ("L", "P"):
                raise DecodeError(f"mask is mode {im.mode}: a mask holds one class index per pixel (mode L or P)")
            mask = np.asarray(im)
    except DecodeError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise DecodeError(f"cannot decode mask: {exc}") from None
    return _sized(np.ascontiguousarray(mask, dtype=np.uint8), size)


def _gray8_png(data: bytes) -> bool:
    """A PNG whose IHDR says 8-bit grayscale without alpha (bit depth 8, colour type 0)."""
    return len(data) > 26 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and data[24] == 8 \
        and data[25] == 0


def _sized(mask: np.ndarray, size) -> np.ndarray:
    from ..imaging import DecodeError
    if (mask.shape[1], mask.shape[0]) != tuple(size):
        raise DecodeError(f"mask size {mask.shape[1]}x{mask.shape[0]} differs from its image's {size[0]}x{size[1]}")
    return mask


def out_of_range(mask: np.ndarray, classes, ignore: int) -> str:
    """Why ``mask`` holds values outside 0..classes-1 and ``ignore`` ('' if it does not, or if the
    number of mask classes is not given)."""
    if not classes:
        return ""
    values = np.unique(mask)
    wrong = values[(values >= classes) & (values != ignore)]
    if not len(wrong):
        return ""
    return (f"mask holds class {', '.join(str(v) for v in wrong[:5])}{' ...' if len(wrong) > 5 else ''}: "
            f"--mask-classes {classes} allows 0..{classes - 1} and the ignore index {ignore}")


def load_with_mask(config, payload, chooser=None, record=None):
    """(image, mask) of an item (``sources.ItemPayload``), both at the output size: the mask checked
    against the oriented image's size, then fitted by the image's rule, or (``chooser`` picking the
    image's random crop into ``record``) cropped to the same box; nearest-neighbour."""
    from .. import imaging
    seen = []

    def choose(width, height):
        seen.append((width, height))
        return chooser(width, height) if chooser else None

    resize = "crop" if config.resize == "random-crop" else config.resize
    image = imaging.load_image(payload.image, config.size, resize, config.max_pixels, choose)
    box = record.crop if record is not None and chooser else None
    mask = decode_mask(payload.mask, seen[0])
    wrong = out_of_range(mask, config.mask_classes, config.mask_ignore_index)
    if wrong:
        raise imaging.DecodeError(wrong)
    mask = fit_mask(mask, config.size, resize, config.mask_ignore_index, box)
    return image, mask


def fit_mask(mask: np.ndarray, size, resize: str, ignore: int, box=None) -> np.ndarray:
    """The mask fitted to ``size`` as the image is (``imaging.fit``'s crop / pad / stretch, or the
    crop ``box`` then resized), nearest-neighbour (pixel centres, as INTER_NEAREST_EXACT)."""
    out_w, out_h = size
    h, w = mask.shape
    if box is not None:
        x0, y0, x1, y1 = box
        return _nearest(mask[y0:y1, x0:x1], out_w, out_h)
    if resize == "crop":
        scale = max(out_w / w, out_h / h)
        crop_w, crop_h = min(w, max(1, int(round(out_w / scale)))), min(h, max(1, int(round(out_h / scale))))
        x0, y0 = (w - crop_w) // 2, (h - crop_h) // 2
        return _nearest(mask[y0:y0 + crop_h, x0:x0 + crop_w], out_w, out_h)
    if resize == "pad":
        scale = min(out_w / w, out_h / h)
        new_w, new_h = min(out_w, max(1, int(round(w * scale)))), min(out_h, max(1, int(round(h * scale))))
        canvas = np.full((out_h, out_w), ignore, np.uint8)
        x0, y0 = (out_w - new_w) // 2, (out_h - new_h) // 2
        canvas[y0:y0 + new_h, x0:x0 + new_w] = _nearest(mask, new_w, new_h)
        return canvas
    return _nearest(mask, out_w, out_h)


def _nearest(mask: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    import cv2
    if mask.shape == (out_h, out_w):
        return np.ascontiguousarray(mask)
    return cv2.resize(np.ascontiguousarray(mask), (out_w, out_h), interpolation=cv2.INTER_NEAREST_EXACT)


def replay_mask(mask: np.ndarray, record: dict, ignore: int, holes: str) -> np.ndarray:
    """The view's geometric steps (its record after the crop) applied to its mask."""
    from ..chain import pixels
    if record["hflip"]:
        mask = mask[:, ::-1]
    if record["vflip"]:
        mask = mask[::-1]
    mask = np.ascontiguousarray(mask)
    boxes = iter(record["boxes"])
    for entry in record["ops"]:
        op, value = entry["op"], entry["value"]
        if op == "erase":
            box = next(boxes)
            if holes == "ignore":
                mask = fill(mask, [box], ignore)
        elif op in GEOMETRIC:
            shifted = np.repeat(((mask.astype(np.int16) - ignore) % 256).astype(np.uint8)[:, :, None], 3, axis=2)
            moved = (pixels.BY_NAME[op] if op != "rotate" else pixels.rotate)(shifted, value)[:, :, 0]
            mask = ((moved.astype(np.int16) + ignore) % 256).astype(np.uint8)
    return mask


def fill(mask: np.ndarray, boxes, value: int) -> np.ndarray:
    """``mask`` with every box (x0, y0, x1, y1, clipped) set to ``value``."""
    out = mask.copy()
    h, w = mask.shape
    for x0, y0, x1, y1 in boxes:
        out[max(0, y0):min(h, y1), max(0, x0):min(w, x1)] = value
    return out


def mix_mask(op: str, mask_a: np.ndarray, mask_b: Optional[np.ndarray], boxes, ignore: int, holes: str):
    """(mask, mask_b) of a row made by ``op`` from its views' masks."""
    if op == "cutmix" and mask_b is not None:
        out = mask_a.copy()
        h, w = out.shape
        for x0, y0, x1, y1 in boxes:
            out[max(0, y0):min(h, y1), max(0, x0):min(w, x1)] = mask_b[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
        return out, None
    if op == "cutout":
        return (fill(mask_a, boxes, ignore) if holes == "ignore" else mask_a), None
    if op == "mixup":
        return mask_a, mask_b
    return mask_a, None


def mosaic_mask(masks, cells, resize: str, ignore: int) -> np.ndarray:
    """The masks of a mosaic's four sources, each fitted into its cell (nearest) as its image is."""
    out = np.full_like(masks[0], ignore)
    for mask, (x0, y0, x1, y1) in zip(masks, np.asarray(cells).tolist()):
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = fit_mask(mask, (x1 - x0, y1 - y0), resize, ignore)
    return out


def encode_mask(mask: np.ndarray, image_format: str) -> bytes:
    """A mask as stored: lossless PNG (8-bit gray), or raw HxW bytes with ``--image-format raw``."""
    from ..imaging import encode_png
    return np.ascontiguousarray(mask).tobytes() if image_format == "raw" else encode_png(mask)
