"""Pixel operations of the augmentation chain, replayable with torchvision.

Conventions
-----------
* Every function takes an RGB image as a numpy array of shape ``(H, W, 3)``,
  dtype ``uint8``, and returns a *new* C-contiguous array of the same shape
  and dtype.  The input is never modified (even the identity cases return a
  copy, so callers may write into any result).
* Each function reproduces the ``torchvision.transforms.v2.functional``
  kernel (torchvision 0.29.1, torch 2.14.1) applied to the uint8 tensor
  ``torch.from_numpy(img).permute(2, 0, 1)``, with the arguments that
  ``RandAugment`` / ``TrivialAugmentWide`` (default ``interpolation=NEAREST,
  fill=None``) and ``ColorJitter`` pass.  ``BY_NAME`` maps the auto-augment op
  names to ``(img, signed magnitude) -> img`` exactly as
  ``_AutoAugmentBase._apply_image_or_video_transform`` applies them (factor
  ``1 + m``, ``int(m)`` pixels / bits, threshold ``255 * m``).

How parity is obtained
----------------------
* Per-value colour ops are ``cv2.LUT`` tables; saturation and sharpness,
  whose result depends on a value and its pixel's grey / blurred value, use
  a 256x256 table.  Table entries re-enact torch's float32 arithmetic in
  numpy: products rounded to float32, ``y.add_(x, alpha=k)`` as one fused
  multiply-add (what torch's vectorised CPU kernels do; re-enacted exactly
  in float64, which holds the unrounded result) and ``.to(uint8)``
  truncating.  ``hue`` re-enacts torchvision's float32 RGB->HSV->RGB per
  pixel, op by op.
* Geometric ops re-enact torchvision's float32 sampling grid
  (``_affine_grid``: ``(x*a + y*b) + c``, rounded at each step, then
  grid_sample's ``(g + 1) * size/2 - 0.5`` and round-half-even) as integer
  source indices gathered by ``cv2.remap``; integer translations are array
  shifts, and 0/180 (90/270 on square images) rotations transposes, as in
  torchvision's fast path.

Measured against torchvision on CPU: bit-exact (0 differing pixels) for every
op, on all RandAugment / TrivialAugmentWide bins with both signs and ~12,000
random magnitudes on images from 3x3 to 259x259.  Residuals that remain:
``contrast`` is exact up to 65,793 pixels (e.g. 256x256), where torch's
float32 sum of the grey image is exact; on larger images that sum's rounding
order is not re-enacted, so rare pixels may differ by 1.  torch running with
``get_cpu_capability() == "DEFAULT"`` (no vectorised FMA) blends unfused, and
its saturation / sharpness then differ from these by 1 on up to ~2% of pixels.
"""

import math
from functools import lru_cache

import cv2
import numpy as np

_F32 = np.float32
_VALUES = np.arange(256, dtype=np.uint8)
_VALUES_F32 = _VALUES.astype(_F32)

# torchvision's rgb_to_grayscale weights, as the float32 values torch uses.
_GREY_WEIGHTS = tuple(float(_F32(w)) for w in (0.2989, 0.587, 0.114))
_SHARPNESS_KERNEL = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=np.float32)


# -- shared helpers ----------------------------------------------------------


def _checked(img):
    """Validate an HxWx3 uint8 image; return it C-contiguous (no copy if so)."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got {img.dtype} {img.shape}")
    return np.ascontiguousarray(img)


def _apply_lut(img, table):
    """Map every value of every channel through the 256-entry uint8 ``table``."""
    return cv2.LUT(_checked(img), table)


def _apply_channel_luts(img, table_for):
    """Map each channel through its own table, ``table_for(plane) -> (256,) uint8``."""
    img = _checked(img)
    if img.size == 0:
        return img.copy()
    return cv2.merge([cv2.LUT(plane, table_for(plane)) for plane in cv2.split(img)])


def _apply_lut2d(table, first, second):
    """``table[first, second]`` elementwise for same-shape uint8 arrays (256x256 table)."""
    index = first.astype(np.uint16)
    index <<= 8
    index |= second
    return np.take(table.reshape(-1), index)


def _to_uint8(values):
    """torch's ``.clamp_(0, 255).to(torch.uint8)`` (truncation) of float32 values."""
    return np.clip(values, 0, 255).astype(np.uint8)


def _float32_fma(x, alpha, y):
    """float32(x * alpha + y) rounded once, as torch's fused ``y.add_(x, alpha=alpha)``.

    ``x`` and ``y`` hold float32 (or uint8) values; in float64 the product is
    exact and, for the magnitudes met here (pixel values, factors), so is the sum.
    """
    acc = np.multiply(x, float(_F32(alpha)), dtype=np.float64)
    in_place = acc.shape == np.shape(y)
    return np.add(acc, y, out=acc if in_place else None, dtype=np.float64).astype(_F32)


def _blend(image_values, other, ratio):
    """torchvision ``_blend`` for uint8: ``image * ratio + other * (1 - ratio)``."""
    ratio = float(ratio)
    return _to_uint8(_float32_fma(other, 1.0 - ratio, np.asarray(image_values, _F32) * _F32(ratio)))


def _check_factor(name, factor):
    if factor < 0:
        raise ValueError(f"{name} ({factor}) is not non-negative.")


# -- geometry ------------------------------------------------------------------


def _inverse_affine_matrix(center, angle, translate, shear):
    """torchvision ``_get_inverse_affine_matrix`` (scale 1), same float64 steps."""
    rot = math.radians(angle)
    sx, sy = math.radians(shear[0]), math.radians(shear[1])
    (cx, cy), (tx, ty) = center, translate
    cos_sy, tan_sx = math.cos(sy), math.tan(sx)
    a = math.cos(rot - sy) / cos_sy
    b = -(a * tan_sx + math.sin(rot))
    c = math.sin(rot - sy) / cos_sy
    d = math.cos(rot) - c * tan_sx
    matrix = [d, -b, 0.0, -c, a, 0.0]
    matrix[2] += cx - matrix[0] * (cx + tx) - matrix[1] * (cy + ty)
    matrix[5] += cy - matrix[3] * (cx + tx) - matrix[4] * (cy + ty)
    return matrix


def _source_index(xs_term, ys_term, offset, size):
    """One grid coordinate, then grid_sample's unnormalisation and rounding."""
    grid = xs_term[None, :] + ys_term[:, None]
    grid += offset
    grid += _F32(1.0)
    grid *= _F32(size / 2)
    grid -= _F32(0.5)
    return np.rint(grid, out=grid)  # round half to even, like torch.round


def _affine_nearest(img, matrix):
    """torchvision ``affine_image`` with NEAREST and zero fill, for an inverse matrix."""
    height, width = img.shape[:2]
    theta = np.array(matrix, dtype=_F32).reshape(2, 3).T / np.array([0.5 * width, 0.5 * height], _F32)
    xs = np.arange(width, dtype=_F32) - _F32((width - 1) * 0.5)
    ys = np.arange(height, dtype=_F32) - _F32((height - 1) * 0.5)
    map_x = _source_index(xs * theta[0, 0], ys * theta[1, 0], theta[2, 0], width)
    map_y = _source_index(xs * theta[0, 1], ys * theta[1, 1], theta[2, 1], height)
    return cv2.remap(img, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _shear(img, shear):
    """RandAugment's shear: affine about the top-left corner (``center=[0, 0]``)."""
    img = _checked(img)
    height, width = img.shape[:2]
    return _affine_nearest(img, _inverse_affine_matrix([-width * 0.5, -height * 0.5], 0.0, [0.0, 0.0], shear))


def shear_x(img, m):
    """ShearX by ``m`` (the RandAugment magnitude) about the top-left corner.

    torchvision: ``F.affine(img, 0.0, [0, 0], 1.0, [degrees(atan(m)), 0.0],
    NEAREST, fill=None, center=[0, 0])``: output pixel (row i, column j) takes
    input column ``round_half_even(j + m * (i + 0.5))`` of row i (0 outside),
    so for m > 0 lower rows move left.  Bit-exact (measured).
    """
    return _shear(img, [math.degrees(math.atan(m)), 0.0])


def shear_y(img, m):
    """ShearY by ``m``: ``shear=[0.0, degrees(atan(m))]``; output (i, j) takes input row
    ``round_half_even(i + m * (j + 0.5))`` of column j.  Bit-exact (measured)."""
    return _shear(img, [0.0, math.degrees(math.atan(m))])


def _shift(img, dx, dy):
    """Integer translation with zero fill: ``out[y, x] = img[y - dy, x - dx]``."""
    img = _checked(img)
    height, width = img.shape[:2]
    out = np.zeros_like(img)
    if abs(dx) < width and abs(dy) < height:
        out[max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = img[
            max(-dy, 0):height + min(-dy, 0), max(-dx, 0):width + min(-dx, 0)
        ]
    return out


def translate_x(img, pixels):
    """TranslateX: content moves right by ``int(pixels)`` (truncated toward 0, as
    RandAugment's ``translate=[int(magnitude), 0]``); zero fill.  Bit-exact."""
    return _shift(img, int(pixels), 0)


def translate_y(img, pixels):
    """TranslateY: content moves down by ``int(pixels)``; zero fill.  Bit-exact."""
    return _shift(img, 0, int(pixels))


def rotate(img, degrees):
    """``F.rotate(img, degrees, NEAREST, expand=False, center=None, fill=None)``.

    Positive angles turn the content counter-clockwise; the centre is the image
    centre; uncovered corners are 0.  Angles are taken modulo 360 first, and
    0/180 (and 90/270 on square images) are exact transposes as in torchvision.
    Bit-exact (measured).
    """
    img = _checked(img)
    angle = degrees % 360
    if angle == 0:
        return img.copy()
    if angle == 180:
        return cv2.rotate(img, cv2.ROTATE_180)
    if img.shape[0] == img.shape[1] and angle in (90, 270):
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE if angle == 90 else cv2.ROTATE_90_CLOCKWISE)
    return _affine_nearest(img, _inverse_affine_matrix([0.0, 0.0], -angle, [0.0, 0.0], [0.0, 0.0]))


# -- colour --------------------------------------------------------------------


def _grey_floor(img):
    """floor of torchvision's float32 grey value ``0.2989 R + 0.587 G + 0.114 B``
    (fused multiply-adds, float32 rounding at each step), as an HxW uint8."""
    red, green, blue = cv2.split(img)
    grey = np.multiply(red, _GREY_WEIGHTS[0], dtype=_F32)
    grey = _float32_fma(green, _GREY_WEIGHTS[1], grey)
    grey = _float32_fma(blue, _GREY_WEIGHTS[2], grey)
    return grey.astype(np.uint8)  # values are >= 0, so truncation is floor


def brightness(img, factor):
    """``F.adjust_brightness``: ``trunc(min(x * factor, 255))`` in float32.  Bit-exact."""
    _check_factor("brightness_factor", factor)
    return _apply_lut(img, _to_uint8(_VALUES_F32 * _F32(factor)))


def contrast(img, factor):
    """``F.adjust_contrast``: blend with the mean of the floored grey image.

    Bit-exact up to 65,793 pixels, where torch's float32 sum of grey values is
    exact; larger images may differ by 1 on rare pixels.
    """
    _check_factor("contrast_factor", factor)
    img = _checked(img)
    grey = _grey_floor(img)
    mean = _F32(grey.sum(dtype=np.float64)) / _F32(grey.size)
    return _apply_lut(img, _blend(_VALUES_F32, mean, factor))


@lru_cache(maxsize=64)
def _saturation_table(factor):
    """table[x, grey] = _blend(x, grey, factor) for all uint8 pairs."""
    return _blend(_VALUES_F32[:, None], _VALUES_F32[None, :], factor)


def saturation(img, factor):
    """``F.adjust_saturation`` (RandAugment's "Color"): blend each channel with the
    floored grey value of its pixel.  Bit-exact."""
    _check_factor("saturation_factor", factor)
    img = _checked(img)
    grey = _grey_floor(img)
    return _apply_lut2d(_saturation_table(float(factor)), img, cv2.merge([grey, grey, grey]))


@lru_cache(maxsize=64)
def _sharpness_table(factor):
    """table[x, blurred] = trunc(clamp(x + (1 - factor) * (blurred - x))), float32 FMA."""
    diff = _VALUES_F32[None, :] - _VALUES_F32[:, None]
    return _to_uint8(_float32_fma(diff, 1.0 - factor, _VALUES_F32[:, None]))


def sharpness(img, factor):
    """``F.adjust_sharpness``: blend with the 3x3 [[1,1,1],[1,5,1],[1,1,1]]/13 blur,
    border pixels unchanged.  The blur is an exact integer sum ``k`` rounded as
    ``(2k + 13) // 26`` (k/13 is never a tie, so torch's float conv + round
    gives the same value).  Bit-exact."""
    _check_factor("sharpness_factor", factor)
    img = _checked(img)
    height, width = img.shape[:2]
    out = img.copy()
    if height <= 2 or width <= 2:
        return out
    weighted_sum = cv2.filter2D(img, cv2.CV_16S, _SHARPNESS_KERNEL)[1:-1, 1:-1]
    blurred = ((weighted_sum * 2 + 13) // 26).astype(np.uint8)
    out[1:-1, 1:-1] = _apply_lut2d(_sharpness_table(float(factor)), img[1:-1, 1:-1], blurred)
    return out


# torchvision _hsv_to_rgb's ``select``: per output channel, which of (v, p, q, t)
# each hue sector 0..5 takes; as 0/255 byte masks [channel, source, sector]
# (sector 6, from a hue of exactly 1.0, is sector 0 after torch's ``% 6``).
_SECTOR_SOURCES = ((0, 2, 1, 1, 3, 0), (3, 0, 0, 2, 1, 1), (1, 1, 3, 0, 0, 2))
_SECTOR_MASKS = np.zeros((3, 4, 256), np.uint8)
for _channel, _sources in enumerate(_SECTOR_SOURCES):
    for _sector in range(7):
        _SECTOR_MASKS[_channel, _sources[_sector % 6], _sector] = 255


def _hue_saturation_value(red, green, blue):
    """torchvision ``_rgb_to_hsv`` on float32 planes in [0, 1] (overwritten).

    Masks multiply like torchvision's (``x * mask``), and ``where(equal, 1, y)``
    becomes ``y + equal`` where ``y`` is 0 or the quotient is 0 anyway, which
    gives the same floats without numpy's slow data-dependent ``where``.
    """
    maxc = np.maximum(np.maximum(red, green), blue)
    chroma = np.subtract(maxc, np.minimum(np.minimum(red, green), blue))
    equal = chroma == 0
    sat = chroma / (maxc + equal)
    chroma += equal
    is_red, is_green = maxc == red, maxc == green
    is_green &= ~is_red
    is_blue = ~(is_red | is_green)
    for plane in (red, green, blue):  # now torchvision's rc, gc, bc
        np.subtract(maxc, plane, out=plane)
        plane /= chroma
    hue = (blue - green) * is_red  # exactly one of the three terms is non-zero
    hue += ((red + _F32(2.0)) - blue) * is_green
    hue += ((green + _F32(4.0)) - red) * is_blue
    hue *= _F32(1.0 / 6.0)
    hue += _F32(1.0)
    hue -= hue >= 1  # fmod(hue, 1.0): hue is in [0, 2)
    return hue, sat, maxc


def _float_to_uint8(plane):
    """torchvision ``to_dtype(float32 -> uint8, scale=True)``: ``x * 255.999`` truncated."""
    plane *= _F32(255.999)
    return plane.astype(np.uint8)


def _rgb_from_hsv(hue, sat, value):
    """torchvision ``_hsv_to_rgb`` (float32 planes, overwritten), then to uint8 HxWx3.

    The per-sector choice of (v, p, q, t) commutes with the uint8 conversion, so it
    is made on bytes with and/or masks.
    """
    hue *= _F32(6.0)
    sector = np.floor(hue)
    sxf = np.subtract(hue, sector, out=hue)
    sxf *= sat
    one_minus_s = np.subtract(_F32(1.0), sat, out=sat)
    q = (_F32(1.0) - sxf) * value
    t = np.add(sxf, one_minus_s, out=sxf)
    t *= value
    p = np.multiply(one_minus_s, value, out=one_minus_s)
    sources = [_float_to_uint8(np.clip(x, 0, 1, out=x)) for x in (value, p, q, t)]
    sector = sector.astype(np.uint8)
    channels = []
    for masks in _SECTOR_MASKS:
        channel = np.zeros_like(sector)
        for source, mask in zip(sources, masks):
            channel |= source & cv2.LUT(sector, mask)
        channels.append(channel)
    return cv2.merge(channels)


def hue(img, hue_factor):
    """``F.adjust_hue`` (ColorJitter), ``hue_factor`` in [-0.5, 0.5]: torchvision's
    float32 RGB->HSV, hue + factor modulo 1, HSV->RGB, re-enacted op by op.  Bit-exact."""
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f"hue_factor ({hue_factor}) is not in [-0.5, 0.5].")
    planes = [plane.astype(_F32) for plane in cv2.split(_checked(img))]
    for plane in planes:
        plane *= _F32(1.0 / 255)
    hue_plane, sat, value = _hue_saturation_value(*planes)
    hue_plane += _F32(hue_factor)
    below, above = hue_plane < 0, hue_plane >= 1
    hue_plane += below  # remainder(hue, 1.0): hue is in [-0.5, 1.5)
    hue_plane -= above
    return _rgb_from_hsv(hue_plane, sat, value)


def posterize(img, bits):
    """``F.posterize``: keep the top ``bits`` bits (int 0..8; 0 gives black).  Bit-exact."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 0 <= bits <= 8:
        raise ValueError(f"bits must be an integer in [0, 8], got {bits!r}")
    mask = ((1 << bits) - 1) << (8 - bits)
    return _apply_lut(img, _VALUES & mask)


def solarize(img, threshold):
    """``F.solarize``: invert values ``>= threshold`` (pixel units, <= 255).

    torch compares in float32, so the threshold is rounded to float32 first
    (e.g. 254.99999999 acts as 255).  A negative threshold inverts everything.
    Bit-exact.
    """
    if threshold > 255:
        raise ValueError(f"Threshold should be less or equal the maximum value of the dtype, but got {threshold}")
    return _apply_lut(img, np.where(_VALUES_F32 >= _F32(threshold), 255 - _VALUES, _VALUES))


def invert(img):
    """``F.invert``: ``255 - x``.  Bit-exact."""
    return _apply_lut(img, 255 - _VALUES)


def _autocontrast_table(plane):
    low, high = (_F32(v) for v in cv2.minMaxLoc(plane)[:2])
    if low == high:
        return _VALUES
    inv_scale = (high - low) * _F32(1.0 / 255)
    return _to_uint8((_VALUES_F32 - low) / inv_scale)


def autocontrast(img):
    """``F.autocontrast``: per channel, ``(x - min) / ((max - min) * (1/255))`` in
    float32, truncated; constant channels unchanged.  Bit-exact.  (As in
    torchvision, the float32 quotient often truncates the maximum to 254.)"""
    return _apply_channel_luts(img, _autocontrast_table)


def _histogram(plane):
    """256-bin counts (int64); cv2's float32 counts are exact below 2**24 pixels."""
    if plane.size < 1 << 24:
        return cv2.calcHist([plane], [0], None, [256], [0, 256]).reshape(-1).astype(np.int64)
    return np.bincount(plane.reshape(-1), minlength=256)


def _equalize_table(plane):
    hist = _histogram(plane)
    cum_hist = np.cumsum(hist)
    step = (cum_hist[-1] - hist[np.flatnonzero(hist)[-1]]) // 255
    if step == 0:
        return _VALUES
    table = np.zeros(256, np.int64)
    table[1:] = (cum_hist[:-1] + step // 2) // step
    return np.clip(table, 0, 255).astype(np.uint8)


def equalize(img):
    """``F.equalize`` (PIL's scheme, per channel): ``lut[k] = (cum_hist[k-1] + step//2) // step``
    with ``step = (pixels not at the channel's maximum value) // 255``; channels
    with ``step == 0`` unchanged.  Bit-exact."""
    return _apply_channel_luts(img, _equalize_table)


def erase(img, box, value=0):
    """``F.erase(img, i=y0, j=x0, h=y1-y0, w=x1-x0, v=value)`` for ``box = (x0, y0, x1, y1)``.

    ``value`` is 0 (or any scalar / per-channel ``(3,)`` fill) or a uint8 array
    of shape ``(y1 - y0, x1 - x0, 3)`` (noise).  Exact by construction.
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    out = _checked(img).copy()
    out[y0:y1, x0:x1] = value
    return out


def _identity(img):
    return _checked(img).copy()


# RandAugment / TrivialAugmentWide op names -> (img, signed magnitude) -> img,
# as torchvision's _AutoAugmentBase._apply_image_or_video_transform.
BY_NAME = {
    "Identity": lambda img, m: _identity(img),
    "ShearX": shear_x,
    "ShearY": shear_y,
    "TranslateX": translate_x,
    "TranslateY": translate_y,
    "Rotate": rotate,
    "Brightness": lambda img, m: brightness(img, 1.0 + m),
    "Color": lambda img, m: saturation(img, 1.0 + m),
    "Contrast": lambda img, m: contrast(img, 1.0 + m),
    "Sharpness": lambda img, m: sharpness(img, 1.0 + m),
    "Posterize": lambda img, m: posterize(img, int(m)),
    "Solarize": lambda img, m: solarize(img, 255 * m),
    "AutoContrast": lambda img, m: autocontrast(img),
    "Equalize": lambda img, m: equalize(img),
    "Invert": lambda img, m: invert(img),
}
