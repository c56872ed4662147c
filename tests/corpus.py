"""A corpus of tricky and broken inputs for the mixbake test-suite.

Two generators write small files into a directory the caller gives (use a fresh, empty one,
e.g. pytest's ``tmp_path``) and return a list of :class:`Case` records describing what they
wrote and what a correct reader must do with each:

* :func:`make_tricky_folder` -- an image-folder source ``root/<class>/<file>`` (classes ``a``,
  ``b`` and an empty ``c``) mixing plain good images, awkward-but-valid images and broken files.
* :func:`make_bad_parquet` -- several small Parquet files (bad rows, bad schemas, corrupt files,
  an empty file, and good files using less common column types).

Decoding rules the ``expected_rgb`` arrays follow (also implemented by :func:`reference_rgb`):

1. first frame only (animated GIF);
2. EXIF orientation is applied (Pillow's ``ImageOps.exif_transpose`` semantics);
3. 16-bit greyscale ``v`` becomes 8-bit ``round(v / 257)`` == ``(v + 128) // 257`` (never a tie);
4. anything with alpha (RGBA, LA, palette with tRNS) is composited over WHITE:
   ``out = round(a/255*c + (1 - a/255)*255)`` == ``(a*c + (255-a)*255 + 127) // 255`` (never a tie);
5. everything else is Pillow's ``convert("RGB")`` (mode "1" -> 0/255, palette -> its colours).

Kinds: the plain filler images share kind ``"plain"`` and good Parquet rows share a per-file kind
(``"good_row"``, ``"binary_col_row"``, ``"large_types_row"``); every other kind names exactly one
case. ``expected_rgb`` arrays are read-only.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageOps

__all__ = [
    "Case",
    "make_tricky_folder",
    "make_bad_parquet",
    "reference_rgb",
    "white_composite",
    "gray16_to_8",
    "quadrant_means",
    "by_kind",
    "HF_METADATA",
    "BOMB_SIZE",
]


@dataclass(frozen=True)
class Case:
    relpath: str  # "<class>/<file>" under the folder root, or "<file>.parquet#<row>" / "<file>.parquet"
    kind: str  # short id, e.g. "zero_byte", "truncated_jpeg", "exif_rot6_png"
    bad: bool  # True: mixbake must reject the item (skip or fail); False: must bake it fine
    note: str  # what a correct reader does with it
    # exact decoded RGB (HxWx3 uint8) when known; excluded from ==/hash/repr so Cases stay hashable
    expected_rgb: Optional[np.ndarray] = field(default=None, compare=False, hash=False, repr=False)


# --------------------------------------------------------------------------- decoding rules


def white_composite(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``round(a/255*c + (1-a/255)*255)`` in exact integer arithmetic (ties are impossible)."""
    c = np.asarray(rgb, dtype=np.int64)
    a = np.asarray(alpha, dtype=np.int64)
    if c.ndim == a.ndim + 1:
        a = a[..., None]
    return ((a * c + (255 - a) * 255 + 127) // 255).astype(np.uint8)


def gray16_to_8(v: np.ndarray) -> np.ndarray:
    """``round(v/257)`` for 16-bit samples in exact integer arithmetic (ties are impossible)."""
    return ((np.asarray(v, dtype=np.int64) + 128) // 257).astype(np.uint8)


def reference_rgb(src: Union[str, os.PathLike, bytes]) -> np.ndarray:
    """Decode ``src`` (path or encoded bytes) with Pillow following the module's rules.

    A reference for the tests, not a robust reader: it raises on broken input and does not
    enforce a pixel limit beyond Pillow's own DecompressionBombError.
    """
    fp = io.BytesIO(src) if isinstance(src, (bytes, bytearray, memoryview)) else src
    with Image.open(fp) as im:
        im.seek(0)
        im = ImageOps.exif_transpose(im)  # loads; returns a transposed copy (or a plain copy)
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):  # "I" = 16-bit grey on older Pillow
        g = gray16_to_8(np.asarray(im))
        return np.repeat(g[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = np.asarray(im.convert("RGBA"))
        return white_composite(rgba[..., :3], rgba[..., 3])
    return np.asarray(im.convert("RGB"))


def quadrant_means(rgb: np.ndarray) -> np.ndarray:
    """Mean colour of the centre region of each quadrant, shape (2, 2, 3) [row, col] -- for the
    lossy JPEG cases whose exact pixels are unknown (compare with a tolerance of ~8)."""
    h, w = rgb.shape[:2]
    out = np.zeros((2, 2, 3))
    for i in range(2):
        for j in range(2):
            y0, y1 = i * h // 2, (i + 1) * h // 2
            x0, x1 = j * w // 2, (j + 1) * w // 2
            dy, dx = (y1 - y0) // 4, (x1 - x0) // 4
            out[i, j] = rgb[y0 + dy : y1 - dy, x0 + dx : x1 - dx].reshape(-1, 3).mean(axis=0)
    return out


def by_kind(cases: list[Case], kind: str) -> Case:
    """The single case of ``kind`` (raises if there is not exactly one)."""
    found = [c for c in cases if c.kind == kind]
    if len(found) != 1:
        raise KeyError(f"{len(found)} cases of kind {kind!r}")
    return found[0]


# --------------------------------------------------------------------------- small helpers

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
BOMB_SIZE = (20000, 20000)  # (width, height) claimed by the decompression-bomb PNG
HF_METADATA = {
    "info": {
        "features": {
            "image": {"_type": "Image"},
            "label": {"names": ["a", "b"], "_type": "ClassLabel"},
        }
    }
}


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.uint8)
    a.flags.writeable = False
    return a


def _noise(h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _solid(h: int, w: int, colour) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (h, w, 3)).copy()


def _quadrants(h: int, w: int) -> np.ndarray:
    """Top-left red, top-right green, bottom-left blue, bottom-right white."""
    a = np.empty((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = RED
    a[: h // 2, w // 2 :] = GREEN
    a[h // 2 :, : w // 2] = BLUE
    a[h // 2 :, w // 2 :] = WHITE
    return a


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    bio = io.BytesIO()
    img.save(bio, fmt, **kw)
    return bio.getvalue()


def _png(arr: np.ndarray, **kw) -> bytes:
    return _encode(Image.fromarray(arr), "PNG", **kw)


def _exif(orientation: int) -> Image.Exif:
    e = Image.Exif()
    e[0x0112] = orientation
    return e


def _png_chunks(data: bytes):
    """Yield (type, offset_of_length_field, length) for each chunk of a PNG."""
    i = 8
    while i + 8 <= len(data):
        (n,) = struct.unpack(">I", data[i : i + 4])
        yield data[i + 4 : i + 8], i, n
        i += 12 + n


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def _bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale all-zero PNG of width x height, built without materialising the
    raw data: the zlib stream is a repeated full-flush deflate block of zeros (~48 KB for 20000^2)."""
    row = 1 + (width + 7) // 8  # filter byte + packed bits
    total = row * height
    block = 1 << 20
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate
    unit = comp.compress(bytes(block)) + comp.flush(zlib.Z_FULL_FLUSH)  # history reset => repeatable
    n_units, rest = divmod(total, block)
    body = [unit] * n_units + [comp.compress(bytes(rest)), comp.flush(zlib.Z_FINISH)]
    adler = ((total % 65521) << 16) | 1  # adler32 of `total` zero bytes
    idat = b"\x78\xda" + b"".join(body) + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


# --------------------------------------------------------------------------- image folder


def make_tricky_folder(root: Path) -> list[Case]:
    """Write the image-folder corpus under ``root`` (created if missing; should be empty)."""
    root = Path(root)
    for cls in ("a", "b", "c"):
        (root / cls).mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def put(rel: str, data: bytes, kind: str, bad: bool, note: str, expected=None) -> None:
        (root / rel).write_bytes(data)
        cases.append(Case(rel, kind, bad, note, None if expected is None else _ro(expected)))

    # ---- plain filler so both classes bake
    for cls, colours in (("a", [(200, 30, 30), (230, 90, 40)]), ("b", [(30, 30, 200), (40, 120, 230)])):
        for i, col in enumerate(colours):
            arr = _solid(24, 32, col)
            put(f"{cls}/plain_{i}.png", _png(arr), "plain", False, f"solid {col} PNG, 32x24", arr)
        col = (40, 160, 40) if cls == "a" else (160, 40, 160)
        put(f"{cls}/plain_2.jpg", _encode(Image.fromarray(_solid(32, 32, col)), "JPEG", quality=95),
            "plain", False, f"solid {col} JPEG, 32x32; lossy: decodes to about {col} (+-4)")

    # ---- broken files (bad=True)
    jpeg_noise = _encode(Image.fromarray(_noise(64, 64, 1)), "JPEG", quality=90)
    png_noise = _png(_noise(48, 48, 2))

    put("a/zero.jpg", b"", "zero_byte", True,
        "0-byte file with an image extension: Pillow raises UnidentifiedImageError; must be skipped/failed")
    put("a/truncated.jpg", jpeg_noise[: len(jpeg_noise) // 2], "truncated_jpeg", True,
        "first half of a 64x64 JPEG: header parses (Image.open and simplejpeg.decode_jpeg_header "
        "succeed), full decode fails (Pillow load(): 'image file is truncated'; simplejpeg strict=True: "
        "'Premature end of JPEG file'). Accepting it needs strict=False or "
        "ImageFile.LOAD_TRUNCATED_IMAGES=True, which silently grey-fills the missing part -- must not")
    put("b/truncated.png", png_noise[: len(png_noise) // 2], "truncated_png", True,
        "first half of a 48x48 PNG: Image.open succeeds, load() raises OSError 'image file is truncated'")
    put("b/x.jpg", b"this is plain text, not a JPEG\n" * 4, "text_as_jpg", True,
        "text file named .jpg: Pillow raises UnidentifiedImageError, simplejpeg raises ValueError")

    # IDAT body corrupted (first deflate block header set to the invalid BTYPE=11), CRC fixed up so
    # that only the body is wrong: every decoder fails (Pillow: 'broken data stream', libpng:
    # 'invalid block type').
    (_, off, n) = next(c for c in _png_chunks(png_noise) if c[0] == b"IDAT")
    body = bytearray(png_noise[off + 8 : off + 8 + n])
    body[2] |= 0x06
    bad_body = bytearray(png_noise)
    bad_body[off + 8 : off + 8 + n] = body
    bad_body[off + 8 + n : off + 12 + n] = struct.pack(">I", zlib.crc32(b"IDAT" + bytes(body)))
    put("b/corrupt_idat.png", bytes(bad_body), "png_corrupt_idat", True,
        "IDAT zlib body corrupt (invalid deflate block type, CRC recomputed): Image.open succeeds, "
        "load() raises OSError 'broken data stream'; cv2 returns None")
    # IDAT CRC wrong, body intact.
    bad_crc = bytearray(png_noise)
    bad_crc[off + 8 + n] ^= 0xFF
    put("a/bad_crc.png", bytes(bad_crc), "png_bad_idat_crc", True,
        "IDAT chunk CRC mismatch, pixel data intact. PNG spec: critical-chunk CRC error => reject; "
        "libpng/cv2 reject ('IDAT: CRC error') BUT Pillow never checks IDAT CRCs and decodes it "
        "without complaint -- a Pillow-only reader must verify chunk CRCs itself (zlib.crc32 over "
        "type+data) to reject it")

    bomb = _bomb_png(*BOMB_SIZE)
    put("b/bomb.png", bomb, "decompression_bomb", True,
        f"valid all-zero 1-bit PNG claiming {BOMB_SIZE[0]}x{BOMB_SIZE[1]} (400 Mpx, file ~{len(bomb) // 1024} KB,"
        " decodes to 1.2 GB RGB): must be refused from the header against the configurable pixel "
        "limit, before decoding. Pillow raises DecompressionBombError at Image.open (> 2*89,478,485 px) "
        "unless Image.MAX_IMAGE_PIXELS is changed; OpenCV's default cap (CV_IO_MAX_IMAGE_PIXELS = 2**30) is above 4e8 px, so cv2 would try to decode it")

    root_user = hasattr(os, "geteuid") and os.geteuid() == 0
    unreadable = _noise(16, 24, 3)
    put("a/unreadable.png", _png(unreadable), "unreadable", not root_user,
        "valid 24x16 PNG with mode 000 (chmod 0): a normal user gets PermissionError => must be "
        "skipped/failed; root (euid 0) can still read it, so bad=False and it must bake when the "
        "tests run as root" + (" (this run: root)" if root_user else " (this run: not root)"),
        unreadable if root_user else None)
    os.chmod(root / "a/unreadable.png", 0)

    link = root / "a/dangling.jpg"
    if os.path.lexists(link):
        link.unlink()
    os.symlink("nonexistent.jpg", link)
    cases.append(Case("a/dangling.jpg", "dangling_symlink", True,
                      "broken symlink -> nonexistent.jpg: os.path.exists/is_file() are False, open() "
                      "raises FileNotFoundError; must be skipped/failed, never crash the scan"))

    # ---- awkward but valid (bad=False)
    src = _noise(24, 40, 4)  # stored 40 wide x 24 tall
    src[:12, :20] = RED  # marker in the stored top-left quadrant
    put("a/exif6.png", _png(src, exif=_exif(6)), "exif_rot6_png", False,
        "PNG with an eXIf chunk, Orientation=6: stored 40x24 (WxH), output must be rotated 90 deg "
        "clockwise => 24 wide x 40 tall with the red block in the top-right corner. simplejpeg never "
        "applies EXIF; Pillow needs ImageOps.exif_transpose; cv2.imread applies it",
        np.rot90(src, k=-1))
    put("a/exif3.png", _png(src, exif=_exif(3)), "exif_rot3_png", False,
        "PNG with eXIf Orientation=3: rotate 180 deg => 40x24, red block bottom-right", np.rot90(src, k=2))
    put("a/exif5.png", _png(src, exif=_exif(5)), "exif_rot5_png", False,
        "PNG with eXIf Orientation=5 (mirrored: transpose across the main diagonal) => 24 wide x 40 tall, "
        "red block stays top-left; catches readers that only handle the rotation values 3/6/8",
        np.transpose(src, (1, 0, 2)))
    quad = _quadrants(32, 48)  # stored 48 wide x 32 tall; quadrants 24x16, MCU-aligned
    put("a/exif6.jpg", _encode(Image.fromarray(quad), "JPEG", quality=95, subsampling=0, exif=_exif(6)),
        "exif_rot6_jpeg", False,
        "JPEG with EXIF Orientation=6, stored 48x32 (WxH) quadrants TL red/TR green/BL blue/BR white. "
        "Correct output: 32 wide x 48 tall (shape (48, 32, 3)), TL blue, TR red, BL white, BR green "
        "(lossy: compare quadrant centres with a tolerance). simplejpeg alone returns it unrotated")
    put("a/exif3.jpg", _encode(Image.fromarray(quad), "JPEG", quality=95, subsampling=0, exif=_exif(3)),
        "exif_rot3_jpeg", False,
        "JPEG with EXIF Orientation=3, same stored quadrants: output 48x32 rotated 180 deg => TL white, "
        "TR blue, BL green, BR red (lossy: compare with a tolerance)")

    specials = [0, 1, 128, 129, 200, 255, 256, 385, 1000, 32767, 32768, 65278, 65279, 65534, 65535]
    g16 = np.linspace(0, 65535, 16 * 24).round().astype(np.uint16)
    g16[: len(specials)] = specials
    g16 = g16.reshape(16, 24)
    put("a/gray16.png", _encode(Image.fromarray(g16), "PNG"), "gray16_png", False,
        "16-bit greyscale PNG (Pillow mode 'I;16', 'I' on old Pillow), values 0..65535 incl. 128/129 "
        "and 65278/65279. Rule: 8-bit = round(v/257) == (v+128)//257, grey replicated to RGB. Traps: "
        "Pillow convert('L'/'RGB') CLIPS (256..65535 -> 255); cv2 IMREAD_COLOR gives v>>8 (floor "
        "v/256); both differ from the rule",
        np.repeat(gray16_to_8(g16)[..., None], 3, axis=2))

    cmyk = np.zeros((16, 32, 4), np.uint8)
    cmyk[:, :16] = (0, 255, 255, 0)  # red
    cmyk[:, 16:] = (255, 255, 0, 0)  # blue
    put("a/cmyk.jpg", _encode(Image.frombytes("CMYK", (32, 16), cmyk.tobytes()), "JPEG", quality=95),
        "cmyk_jpeg", False,
        "CMYK JPEG (Adobe APP14, inverted samples) 32x16: left half red, right half blue (+-4). "
        "Pillow opens mode 'CMYK' => convert('RGB'); simplejpeg decode_jpeg() (rgb) handles it too, "
        "but colorspace='CMYK' returns the raw inverted samples")

    la = np.stack([_noise(16, 24, 5, 1), _noise(16, 24, 6, 1)], axis=-1)
    la[0, :, 1] = 0  # fully transparent row (over non-white grey)
    la[1, :, 1] = 255  # opaque row
    la[2, :, 1] = 128
    put("a/la.png", _encode(Image.fromarray(la, "LA"), "PNG"), "la_png", False,
        "greyscale+alpha PNG (mode LA) with alpha 0/128/255/random: composite over WHITE, "
        "out = round(a/255*L + (1-a/255)*255) replicated to RGB. Pillow convert('RGB') and cv2 "
        "IMREAD_COLOR just drop alpha",
        np.repeat(white_composite(la[..., 0], la[..., 1])[..., None], 3, axis=2))

    one = np.array([[[12, 34, 56]]], np.uint8)
    put("a/one_pixel.png", _png(one), "one_pixel", False,
        "1x1 RGB PNG (12, 34, 56): must survive resizing / crop boxes / cutmix boxes of size 0", one)

    nonutf = _noise(20, 28, 7)
    try:
        fd = os.open(os.fsencode(root) + b"/a/bad\xffname.png", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError:  # filesystem refuses non-UTF-8 names (e.g. APFS): no such case
        fd = None
    if fd is not None:
        with os.fdopen(fd, "wb") as f:
            f.write(_png(nonutf))
        cases.append(Case(os.fsdecode(b"a/bad\xffname.png"), "non_utf8_name", False,
                          "file name bytes b'bad\\xffname.png' (not UTF-8). os.listdir gives "
                          "'bad\\udcffname.png' (surrogateescape) which opens fine, but "
                          "'...'.encode('utf-8') and pyarrow string arrays raise UnicodeEncodeError: the "
                          "stored ref must be made representable (e.g. os.fsencode(p).decode('utf-8', "
                          "'backslashreplace') -> 'a/bad\\\\xffname.png')",
                          _ro(nonutf)))

    put("a/notes.txt", b"these are notes, not an image\n", "ignored", False,
        "non-image extension: not an item -- must be ignored silently, not counted in the item total, "
        "not reported as a failure")

    rgba = _noise(20, 24, 8, 4)
    rgba[0, :, 3] = 0  # fully transparent over random (non-white) colours
    rgba[1, :, 3] = 255
    rgba[2, :, 3] = 128
    rgba[3, :, :3] = (255, 0, 0)
    rgba[3, :, 3] = 0  # transparent pure red must come out pure white
    put("b/rgba.png", _png(rgba), "rgba_png", False,
        "RGBA PNG with alpha 0 (over non-white colours), 128, 255 and random: composite over WHITE, "
        "out = round(a/255*rgb + (1-a/255)*255). Pillow convert('RGB') drops alpha (row 3 would be red)",
        white_composite(rgba[..., :3], rgba[..., 3]))

    pal_idx = np.array(_noise(12, 20, 9, 1) % 4, np.uint8)
    palette = [0, 255, 0, 255, 0, 0, 0, 0, 255, 250, 250, 10]  # green, red, blue, yellow
    alpha_of = np.array([0, 128, 255, 255], np.uint8)
    pimg = Image.frombytes("P", (20, 12), pal_idx.tobytes())
    pimg.putpalette(palette + [0] * (768 - len(palette)))
    pal_rgb = np.array(palette, np.uint8).reshape(4, 3)
    put("b/palette_trns.png", _encode(pimg, "PNG", transparency=bytes([0, 128])), "p_transparency_png", False,
        "palette PNG with tRNS: index 0 (green) fully transparent, index 1 (red) alpha 128, others "
        "opaque. Pillow: mode 'P', info['transparency'] is bytes (an int when only one index is fully "
        "transparent). Correct: convert('RGBA') then WHITE composite; convert('RGB') shows green (and "
        "warns)",
        white_composite(pal_rgb[pal_idx], alpha_of[pal_idx]))

    bits = _noise(16, 24, 10, 1) > 127
    put("b/bilevel.png", _encode(Image.fromarray(bits), "PNG"), "mode1_png", False,
        "1-bit PNG (Pillow mode '1', np.asarray gives bool): 0 -> black, 1 -> white (255)",
        np.repeat(np.where(bits, 255, 0).astype(np.uint8)[..., None], 3, axis=2))

    f0 = np.empty((16, 24, 3), np.uint8)
    f0[:, :12] = RED
    f0[:, 12:] = (10, 20, 30)
    frames = [Image.fromarray(f0), Image.fromarray(_solid(16, 24, GREEN)), Image.fromarray(_solid(16, 24, BLUE))]
    put("b/animated.gif", _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0),
        "animated_gif", False,
        "3-frame GIF (frame 0: left red / right (10,20,30); frame 1 green; frame 2 blue): use the FIRST "
        "frame only, as one item. Pillow opens it in mode 'P' at frame 0; later frames become RGB on seek",
        f0)

    bmp = _noise(18, 26, 11)
    put("b/image.bmp", _encode(Image.fromarray(bmp), "BMP"), "bmp", False,
        "24-bit BMP (rows stored bottom-up), exact", bmp)
    tif = _noise(18, 26, 12)
    put("b/image.tiff", _encode(Image.fromarray(tif), "TIFF", compression="tiff_lzw"), "tiff", False,
        "LZW-compressed RGB TIFF, exact", tif)
    webp = _noise(18, 26, 13)
    put("b/image.webp", _encode(Image.fromarray(webp), "WEBP", lossless=True), "webp_lossless", False,
        "lossless RGB WebP, exact", webp)

    uni = _noise(20, 16, 14)
    put("b/köln_猫.png", _png(uni), "unicode_name", False,
        "non-ASCII UTF-8 file name (NFC 'köln_猫.png'); the ref must keep it intact", uni)
    upper = _noise(14, 22, 15)
    put("b/UPPER.PNG", _png(upper), "upper_ext", False,
        "upper-case extension .PNG: extension matching must be case-insensitive", upper)
    misnamed = _noise(14, 22, 16)
    put("b/actually_png.jpg", _png(misnamed), "png_as_jpg", False,
        "PNG data under a .jpg name: the decoder must be chosen by content (magic bytes), not by "
        "extension -- simplejpeg on it raises; Pillow sniffs it fine", misnamed)

    cases.append(Case("c/", "empty_class", False,
                      "class folder with no files: contributes no items and must not break the bake "
                      "(a and b have images). Whether 'c' still appears in the class list (shifting "
                      "nothing, since it sorts last) is mixbake's documented choice"))
    return cases


# --------------------------------------------------------------------------- parquet

_IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _hf_schema(image_type=_IMAGE_STRUCT, label_type=pa.int64()) -> pa.Schema:
    return pa.schema([("image", image_type), ("label", label_type)]).with_metadata(
        {b"huggingface": json.dumps(HF_METADATA).encode()}
    )


def make_bad_parquet(dirpath: Path) -> list[Case]:
    """Write the Parquet corpus into ``dirpath`` (created if missing; should be empty)."""
    d = Path(dirpath)
    d.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    # ---- nulls.parquet: row-level problems; row groups of 3 so refs must use the global row index
    rows: list[tuple] = []  # (image, label, kind, bad, note, expected)

    def good(seed: int, label: int, h: int, w: int):
        arr = _noise(h, w, 100 + seed)
        rows.append(({"bytes": _png(arr), "path": f"img_{seed}.png"}, label, "good_row", False,
                     f"good {w}x{h} PNG, label {label} ('{'ab'[label]}')", arr))

    good(0, 0, 12, 20)
    rows.append((None, 1, "null_image", True, "image struct is null", None))
    rows.append(({"bytes": None, "path": "missing.png"}, 0, "null_image_bytes", True,
                 "image struct with bytes=null and path='missing.png' (HF 'load from path' form; the "
                 "path names no file, beside the Parquet file or in the working directory): a bad item "
                 "saying so", None))
    good(3, 1, 16, 10)
    a_png = _png(_noise(8, 8, 150))
    rows.append(({"bytes": a_png, "path": "nolabel.png"}, None, "null_label", True,
                 "good image, label null", None))
    rows.append(({"bytes": a_png, "path": "label99.png"}, 99, "label_out_of_range", True,
                 "label 99 but the huggingface ClassLabel metadata names only 2 classes ['a', 'b']", None))
    rows.append(({"bytes": a_png, "path": "label-1.png"}, -1, "label_negative", True,
                 "label -1 (Hugging Face's 'no label' marker in unlabelled test splits): not a class; "
                 "must not index classes[-1]", None))
    rows.append(({"bytes": b"definitely not an image", "path": "text.png"}, 0, "non_image_bytes", True,
                 "image bytes are plain text: Pillow UnidentifiedImageError", None))
    good(8, 1, 10, 14)
    images = [r[0] for r in rows]
    labels = [r[1] for r in rows]
    table = pa.Table.from_arrays(
        [pa.array(images, type=_IMAGE_STRUCT), pa.array(labels, type=pa.int64())], schema=_hf_schema()
    )
    pq.write_table(table, d / "nulls.parquet", row_group_size=3)
    for i, (_, label, kind, bad, note, exp) in enumerate(rows):
        cases.append(Case(f"nulls.parquet#{i}", kind, bad,
                          note + f" [nulls.parquet: 9 rows in row groups of 3; classes from the "
                                 f"huggingface ClassLabel metadata: ['a', 'b']]",
                          None if exp is None else _ro(exp)))

    # ---- wrongtypes.parquet
    pq.write_table(pa.table({"image": pa.array([1, 2, 3], pa.int64()),
                             "label": pa.array([0.0, 1.0, 0.5], pa.float64())}),
                   d / "wrongtypes.parquet")
    cases.append(Case("wrongtypes.parquet", "wrong_column_types", True,
                      "image column is int64 and label column is float64: the whole source must be "
                      "refused up front with one clear error naming the column and its type"))

    # ---- binary_col.parquet (good): plain binary images + string class names
    bin_rows = [(_noise(12, 18, 200), "b"), (_noise(18, 12, 201), "a"), (_noise(9, 9, 202), "b"),
                (_noise(20, 8, 203), "a")]
    pq.write_table(pa.table({"image": pa.array([_png(a) for a, _ in bin_rows], pa.binary()),
                             "label": pa.array([l for _, l in bin_rows], pa.string())}),
                   d / "binary_col.parquet")
    for i, (arr, label) in enumerate(bin_rows):
        cases.append(Case(f"binary_col.parquet#{i}", "binary_col_row", False,
                          f"image column plain binary (PNG bytes, {arr.shape[1]}x{arr.shape[0]}), label "
                          f"column string {label!r}; no metadata, so classes come from the label "
                          f"values: sorted ['a', 'b']", _ro(arr)))

    # ---- large_types.parquet (good): large_binary / large_string, as written by polars
    lt_rows = [(_noise(10, 16, 300), "a"), (_noise(16, 10, 301), "b")]
    pq.write_table(pa.table({"image": pa.array([_png(a) for a, _ in lt_rows], pa.large_binary()),
                             "label": pa.array([l for _, l in lt_rows], pa.large_string())}),
                   d / "large_types.parquet")
    for i, (arr, label) in enumerate(lt_rows):
        cases.append(Case(f"large_types.parquet#{i}", "large_types_row", False,
                          f"image column large_binary, label large_string {label!r} (polars' default "
                          f"types): must be accepted like binary/string", _ro(arr)))

    # ---- corrupt.parquet: truncated copy of a valid file; garbage.parquet: random bytes
    valid = (d / "binary_col.parquet").read_bytes()
    (d / "corrupt.parquet").write_bytes(valid[: len(valid) // 2])
    cases.append(Case("corrupt.parquet", "truncated_parquet", True,
                      "first half of a valid parquet file (leading 'PAR1' magic present, footer "
                      "missing): pyarrow raises ArrowInvalid at open; must fail with a clear error "
                      "naming the file"))
    (d / "garbage.parquet").write_bytes(np.random.default_rng(400).integers(0, 256, 1000, np.uint8).tobytes())
    cases.append(Case("garbage.parquet", "garbage_parquet", True,
                      "1000 random bytes named .parquet: pyarrow raises ArrowInvalid (no magic); must "
                      "fail with a clear error naming the file"))

    # ---- empty.parquet: right schema, zero rows
    pq.write_table(_hf_schema().empty_table(), d / "empty.parquet")
    cases.append(Case("empty.parquet", "empty_parquet", True,
                      "valid schema (image struct<bytes,path> + int64 label + huggingface metadata), 0 "
                      "rows: nothing to bake -- alone it must fail with a clear 'no items' error (not "
                      "write empty shards or divide by zero); next to other files it contributes nothing"))
    return cases
