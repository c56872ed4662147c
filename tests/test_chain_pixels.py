"""mixbake.chain.pixels: known answers (run everywhere) and parity with torchvision.

The parity tests need torch + torchvision (skipped in the default CI) and compare
with ``torchvision.transforms.v2.functional`` on ``torch.from_numpy(img).permute(2, 0, 1)``.
Every op was measured bit-exact (geometric ones included: 0 differing pixels), so
they assert exact equality, with one exception: torch built for a CPU without
vectorised FMA (``torch.backends.cpu.get_cpu_capability() == "DEFAULT"``, e.g.
``ATEN_CPU_CAPABILITY=default``) rounds its blends unfused, and then saturation
and sharpness differ by 1 on up to ~2% of pixels; the colour tests allow that there.
"""
import math

import cv2
import numpy as np
import pytest

from mixbake.chain import pixels


def _noise(height=48, width=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _gradient(height=80, width=100):
    ys, xs = np.mgrid[0:height, 0:width]
    return np.dstack([xs * 255 // (width - 1), ys * 255 // (height - 1), (xs + ys) % 256]).astype(np.uint8)


def _shapes(size=224, seed=1):
    """Photo-like: flat regions, hard edges, a few greys."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), (40, 90, 160), np.uint8)
    for k in range(30):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if k % 5 == 0:
            colour = (colour[0],) * 3
        x, y = (int(v) for v in rng.integers(0, size, 2))
        if k % 2:
            cv2.circle(img, (x, y), int(rng.integers(4, 50)), colour, -1)
        else:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(5, 80)), y + int(rng.integers(5, 80))), colour, -1)
    return img


IMAGES = {"noise": _noise(), "gradient": _gradient(), "shapes": _shapes()}

# one call of every public op, for the contract tests
CALLS = [
    ("shear_x", (0.3,)), ("shear_y", (-0.2,)), ("translate_x", (7.9,)), ("translate_y", (-3.0,)),
    ("rotate", (33.0,)), ("brightness", (1.4,)), ("saturation", (0.3,)), ("contrast", (1.7,)),
    ("sharpness", (0.2,)), ("hue", (0.2,)), ("posterize", (3,)), ("solarize", (100.0,)),
    ("autocontrast", ()), ("equalize", ()), ("invert", ()), ("erase", ((3, 4, 20, 30), 0)),
]


# -- contract ------------------------------------------------------------------


@pytest.mark.parametrize("name, args", CALLS, ids=[c[0] for c in CALLS])
def test_returns_new_contiguous_uint8_and_leaves_input(name, args):
    img = IMAGES["noise"]
    before = img.copy()
    out = getattr(pixels, name)(img, *args)
    assert out.dtype == np.uint8 and out.shape == img.shape and out.flags.c_contiguous
    assert out is not img and not np.shares_memory(out, img)
    assert np.array_equal(img, before)


def test_non_contiguous_input_is_accepted():
    img = IMAGES["noise"]
    view = img[:, ::-1]
    assert np.array_equal(pixels.invert(view), 255 - view)
    with pytest.raises(ValueError):
        pixels.invert(img[..., 0])


def test_by_name_covers_the_auto_augment_ops():
    names = {"Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
             "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize"}
    assert names <= set(pixels.BY_NAME)
    img = IMAGES["gradient"]
    out = pixels.BY_NAME["Identity"](img, 0.0)
    assert np.array_equal(out, img) and out is not img
    assert np.array_equal(pixels.BY_NAME["Posterize"](img, 4.0), img & 0xF0)
    assert np.array_equal(pixels.BY_NAME["Solarize"](img, 0.0), 255 - img)
    assert np.array_equal(pixels.BY_NAME["Brightness"](img, 0.0), img)
    assert np.array_equal(pixels.BY_NAME["TranslateX"](img, -5.7), pixels.translate_x(img, -5))


# -- geometry: known answers -----------------------------------------------------


@pytest.mark.parametrize("pixels_, expected", [(5, 5), (5.9, 5), (-5.9, -5), (0.7, 0)])
def test_translate_x_truncates_and_zero_fills(pixels_, expected):
    img = IMAGES["gradient"]
    out = pixels.translate_x(img, pixels_)
    if expected >= 0:
        assert np.array_equal(out[:, expected:], img[:, :img.shape[1] - expected])
        assert not out[:, :expected].any()
    else:
        assert np.array_equal(out[:, :expected], img[:, -expected:])
        assert not out[:, expected:].any()


def test_translate_y_and_beyond_the_image():
    img = IMAGES["gradient"]
    out = pixels.translate_y(img, 4)
    assert np.array_equal(out[4:], img[:-4]) and not out[:4].any()
    assert not pixels.translate_x(img, img.shape[1]).any()
    assert not pixels.translate_y(img, -img.shape[0] - 3).any()


def test_rotate_fast_paths():
    square = IMAGES["shapes"]
    assert np.array_equal(pixels.rotate(square, 0.0), square)
    assert np.array_equal(pixels.rotate(square, 360.0), square)
    assert np.array_equal(pixels.rotate(square, 90.0), np.rot90(square, 1))  # counter-clockwise
    assert np.array_equal(pixels.rotate(square, -90.0), np.rot90(square, -1))
    assert np.array_equal(pixels.rotate(square, 270.0), np.rot90(square, -1))
    wide = IMAGES["noise"]
    assert np.array_equal(pixels.rotate(wide, 180.0), wide[::-1, ::-1])


@pytest.mark.parametrize("size", [30, 31])
def test_rotate_general_path_at_a_right_angle(size):
    # 90 + 1e-6 misses the fast path; pixel centres still map onto pixel centres
    img = _noise(size, size, seed=size)
    assert np.array_equal(pixels.rotate(img, 90.0 + 1e-6), np.rot90(img, 1))


def test_rotate_zero_fills_corners():
    img = np.full((40, 40, 3), 255, np.uint8)
    out = pixels.rotate(img, 45.0)
    assert not out[0, 0].any() and not out[-1, -1].any() and (out[20, 20] == 255).all()


@pytest.mark.parametrize("m", [0.25, -0.25, 0.3])
def test_shear_known_answer(m):
    img = _noise(40, 50, seed=3)
    height, width = img.shape[:2]
    rows, cols = np.mgrid[0:height, 0:width]
    source = np.rint(cols + m * (rows + 0.5)).astype(int)
    inside = (source >= 0) & (source < width)
    expected = np.where(inside[..., None], img[rows, np.clip(source, 0, width - 1)], 0)
    assert np.array_equal(pixels.shear_x(img, m), expected)
    source = np.rint(rows + m * (cols + 0.5)).astype(int)
    inside = (source >= 0) & (source < height)
    expected = np.where(inside[..., None], img[np.clip(source, 0, height - 1), cols], 0)
    assert np.array_equal(pixels.shear_y(img, m), expected)


def test_shear_zero_is_identity():
    img = IMAGES["noise"]
    assert np.array_equal(pixels.shear_x(img, 0.0), img)
    assert np.array_equal(pixels.shear_y(img, -0.0), img)


# -- colour: known answers ---------------------------------------------------------


@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation", "sharpness"])
def test_factor_one_is_identity(name):
    for img in IMAGES.values():
        assert np.array_equal(getattr(pixels, name)(img, 1.0), img)


def test_hue_zero_is_identity():
    colours = np.random.default_rng(4).integers(0, 256, (200, 250, 3), dtype=np.uint8)
    assert np.array_equal(pixels.hue(colours, 0.0), colours)
    with pytest.raises(ValueError):
        pixels.hue(colours, 0.6)


def test_brightness_scales_and_clips():
    img = IMAGES["gradient"]
    assert not pixels.brightness(img, 0.0).any()
    assert np.array_equal(pixels.brightness(img, 2.0), np.minimum(img.astype(int) * 2, 255))
    with pytest.raises(ValueError):
        pixels.brightness(img, -0.1)


def test_zero_saturation_is_grey_and_zero_contrast_is_flat():
    img = IMAGES["shapes"]
    grey = pixels.saturation(img, 0.0)
    assert (grey == grey[..., :1]).all()
    # r = g = b = v gives 0.9999 v, floored to v - 1 (v > 0), as torchvision
    assert np.array_equal(pixels.saturation(np.full((3, 3, 3), 100, np.uint8), 0.0), np.full((3, 3, 3), 99))
    flat = pixels.contrast(img, 0.0)
    assert (flat == flat[0, 0, 0]).all()


def test_sharpness_keeps_the_border():
    img = IMAGES["noise"]
    out = pixels.sharpness(img, 2.0)
    for edge in (np.s_[0], np.s_[-1], np.s_[:, 0], np.s_[:, -1]):
        assert np.array_equal(out[edge], img[edge])
    assert not np.array_equal(out[1:-1, 1:-1], img[1:-1, 1:-1])
    assert np.array_equal(pixels.sharpness(img[:2], 5.0), img[:2])


def test_posterize_bits():
    img = IMAGES["noise"]
    assert np.array_equal(pixels.posterize(img, 8), img)
    assert np.array_equal(pixels.posterize(img, 1), img & 0x80)
    assert np.array_equal(pixels.posterize(img, 3), img & 0xE0)
    assert not pixels.posterize(img, 0).any()
    for bad in (9, -1, 2.0, True):
        with pytest.raises(ValueError):
            pixels.posterize(img, bad)


def test_solarize_threshold():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    assert np.array_equal(pixels.solarize(values, 0.0), 255 - values)
    assert np.array_equal(pixels.solarize(values, -3.0), 255 - values)
    expected = np.where(values >= 128, 255 - values, values)
    assert np.array_equal(pixels.solarize(values, 128.0), expected)
    assert np.array_equal(pixels.solarize(values, 127.5), expected)  # float threshold, >=
    only_top = pixels.solarize(values, 255.0)
    assert only_top[15, 15, 0] == 0 and np.array_equal(only_top.reshape(-1, 3)[:255], values.reshape(-1, 3)[:255])
    assert np.array_equal(pixels.solarize(values, 254.99999999), only_top)  # float32 rounds it to 255
    with pytest.raises(ValueError):
        pixels.solarize(values, 255.5)


def test_invert_twice_is_identity():
    img = IMAGES["noise"]
    assert np.array_equal(pixels.invert(pixels.invert(img)), img)


def test_autocontrast_stretches_each_channel():
    img = IMAGES["gradient"].copy()
    img[..., 0] = img[..., 0] // 4 + 60  # 60..123
    img[..., 2] = 77  # constant channel: unchanged
    out = pixels.autocontrast(img)
    # torchvision's float32 (x - min) / ((max - min) * (1/255)) often truncates max to 254
    assert out[..., 0].min() == 0 and out[..., 0].max() == 254
    assert out[..., 1].min() == 0 and out[..., 1].max() == 255
    assert (out[..., 2] == 77).all()
    assert np.array_equal(np.argsort(img[0, :, 0], kind="stable"), np.argsort(out[0, :, 0], kind="stable"))


def test_equalize_two_levels_and_constant():
    img = np.full((40, 60, 3), 50, np.uint8)
    img[20:] = 200
    out = pixels.equalize(img)
    assert (out[:20] == 0).all() and (out[20:] == 255).all()
    flat = np.full((10, 10, 3), 9, np.uint8)
    assert np.array_equal(pixels.equalize(flat), flat)


def test_erase_box_only():
    img = IMAGES["noise"]
    out = pixels.erase(img, (5, 10, 25, 30), 0)
    assert not out[10:30, 5:25].any()
    mask = np.ones(img.shape[:2], bool)
    mask[10:30, 5:25] = False
    assert np.array_equal(out[mask], img[mask])
    noise = _noise(20, 20, seed=9)
    out = pixels.erase(img, (5, 10, 25, 30), noise)
    assert np.array_equal(out[10:30, 5:25], noise) and np.array_equal(out[mask], img[mask])


# -- parity with torchvision -------------------------------------------------------


@pytest.fixture(scope="module")
def tv():
    """torchvision.transforms.v2 (the test is skipped without torch and torchvision), run on
    one thread: on small images torch's thread pool is ~100x slower on a busy machine."""
    torch = pytest.importorskip("torch")
    v2 = pytest.importorskip("torchvision.transforms.v2")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield v2
    torch.set_num_threads(threads)


def _torch_apply(fn, img):
    import torch

    return fn(torch.from_numpy(img).permute(2, 0, 1)).permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def colour_tolerance(tv):
    """Max abs difference allowed on colour ops: 0, or 1 where torch blends without FMA."""
    import torch

    return 1 if torch.backends.cpu.get_cpu_capability() == "DEFAULT" else 0


def _assert_same(ours, theirs, label, tolerance=0):
    diff = np.abs(ours.astype(int) - theirs)
    assert diff.max() <= tolerance, f"{label}: {(diff > 0).any(-1).mean():.4%} pixels differ, max {diff.max()}"


@pytest.mark.parametrize("policy", ["RandAugment", "TrivialAugmentWide"])
def test_auto_augment_ops_match_torchvision(tv, colour_tolerance, policy):
    """Every op at bins 0, 1, 9 (RandAugment's default), 15 and 30 of 31, both signs,
    applied by torchvision's own _apply_image_or_video_transform."""
    augment = getattr(tv, policy)()
    for image_name, img in IMAGES.items():
        height, width = img.shape[:2]
        for name, (magnitudes_fn, signed) in augment._AUGMENTATION_SPACE.items():
            magnitudes = magnitudes_fn(31, height, width)
            values = [0.0] if magnitudes is None else [float(magnitudes[b]) for b in (0, 1, 9, 15, 30)]
            values += [-v for v in values if signed]
            for m in values:
                theirs = _torch_apply(lambda t: augment._apply_image_or_video_transform(
                    t, name, m, interpolation=augment.interpolation, fill=augment._fill), img)
                _assert_same(pixels.BY_NAME[name](img, m), theirs, f"{policy} {name}({m}) on {image_name}",
                             0 if name in GEOMETRIC_OPS else colour_tolerance)


GEOMETRIC_OPS = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"}
GEOMETRY = [
    ("shear_x", m, lambda F, m=m: lambda t: F.affine(
        t, angle=0.0, translate=[0, 0], scale=1.0, shear=[math.degrees(math.atan(m)), 0.0],
        interpolation=F.InterpolationMode.NEAREST, fill=None, center=[0, 0]))
    for m in (0.5, -0.99, 1.0, 2.0)
] + [
    ("shear_y", m, lambda F, m=m: lambda t: F.affine(
        t, angle=0.0, translate=[0, 0], scale=1.0, shear=[0.0, math.degrees(math.atan(m))],
        interpolation=F.InterpolationMode.NEAREST, fill=None, center=[0, 0]))
    for m in (0.5, -0.99, 1.0)
] + [
    ("rotate", a, lambda F, a=a: lambda t: F.rotate(t, a, interpolation=F.InterpolationMode.NEAREST))
    for a in (1e-3, 45.0, 90.0, -90.0, 180.0, 270.0, 123.4, -135.0, 400.0)
] + [
    ("translate_x", p, lambda F, p=p: lambda t: F.affine(
        t, angle=0.0, translate=[int(p), 0], scale=1.0, shear=[0.0, 0.0], interpolation=F.InterpolationMode.NEAREST))
    for p in (3.99, -63.0, 500.0)
]


@pytest.mark.parametrize("name, value, make", GEOMETRY, ids=[f"{g[0]}({g[1]})" for g in GEOMETRY])
def test_geometry_matches_torchvision(tv, name, value, make):
    fn = make(tv.functional)
    for image_name, img in {**IMAGES, "odd": _noise(17, 31, seed=5)}.items():
        _assert_same(getattr(pixels, name)(img, value), _torch_apply(fn, img), f"{name}({value}) on {image_name}")


COLOUR = (
    [("brightness", f, "adjust_brightness") for f in (0.0, 0.37, 1.9, 3.3)]
    + [("contrast", f, "adjust_contrast") for f in (0.0, 0.37, 0.91, 1.9)]
    + [("saturation", f, "adjust_saturation") for f in (0.0, 0.37, 1.09, 1.9)]
    + [("sharpness", f, "adjust_sharpness") for f in (0.0, 0.37, 1.09, 2.5)]
    + [("hue", h, "adjust_hue") for h in (-0.5, -0.27, -1e-7, 0.013, 0.2, 0.5)]
    + [("posterize", b, "posterize") for b in range(9)]
    + [("solarize", t, "solarize") for t in (-1.0, 0.0, 0.5, 127.5, 178.49999, 255.0)]
    + [("autocontrast", None, "autocontrast"), ("equalize", None, "equalize"), ("invert", None, "invert")]
)


@pytest.mark.parametrize("name, arg, tv_name", COLOUR, ids=[f"{c[0]}({c[1]})" for c in COLOUR])
def test_colour_matches_torchvision(tv, colour_tolerance, name, arg, tv_name):
    tv_fn = getattr(tv.functional, tv_name)
    ours = getattr(pixels, name)
    for image_name, img in IMAGES.items():
        theirs = _torch_apply(tv_fn if arg is None else (lambda t: tv_fn(t, arg)), img)
        _assert_same(ours(img) if arg is None else ours(img, arg), theirs, f"{name}({arg}) on {image_name}",
                     colour_tolerance)


def test_hue_matches_torchvision_on_many_colours(tv):
    """Greys, two equal channels and every hue sector boundary, at a few shifts."""
    rng = np.random.default_rng(6)
    colours = rng.integers(0, 256, (120, 120, 3), dtype=np.uint8)
    colours[:40, :, 1] = colours[:40, :, 0]
    colours[40:60, :, 2] = colours[40:60, :, 0]
    colours[60:70] = colours[60:70, :, :1]
    for h in (-0.4, -0.1666, 0.1, 0.3333):
        _assert_same(pixels.hue(colours, h),
                     _torch_apply(lambda t: tv.functional.adjust_hue(t, h), colours), f"hue({h})")


def test_erase_matches_torchvision(tv):
    import torch

    img = IMAGES["shapes"]
    noise = _noise(50, 70, seed=8)
    for value, v in ((0, torch.tensor(0, dtype=torch.uint8)), (noise, torch.from_numpy(noise).permute(2, 0, 1))):
        theirs = _torch_apply(lambda t: tv.functional.erase(t, i=30, j=20, h=50, w=70, v=v), img)
        _assert_same(pixels.erase(img, (20, 30, 90, 80), value), theirs, "erase")


def test_magnitude_tables_are_torchvisions_to_the_bit():
    """The recorded magnitudes are those torchvision's RandAugment / TrivialAugmentWide would pass."""
    pytest.importorskip("torchvision")
    from torchvision.transforms import v2

    from mixbake.chain.augment import magnitudes
    for kind, cls in (("randaugment", v2.RandAugment), ("trivialaugment", v2.TrivialAugmentWide)):
        for bins in (2, 10, 31, 101):
            for width, height in ((224, 224), (320, 240), (17, 5)):
                ours = magnitudes(kind, bins, width, height)
                for name, (fn, _) in cls._AUGMENTATION_SPACE.items():
                    theirs = fn(bins, height, width)
                    if theirs is None:
                        assert name not in ours
                    else:
                        assert np.array_equal(ours[name], theirs.numpy().astype(np.float32)), (kind, bins, name)
