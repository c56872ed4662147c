"""Segmentation masks beside the images: ``--masks DIR`` (a tree mirroring an image folder's: the
mask of ``cat/001.jpg`` is ``DIR/cat/001.png``) or ``--mask-column`` (Parquet: a column of PNG
bytes, or an HF Image struct). Readers then yield ``ItemPayload(image, mask=bytes)``; the workers
decode and check each mask (``targets.masks``). A folder's masks are part of its fingerprint
(their paths and sizes), so a changed mask is another source; an image without its mask file is
a bad item saying so.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Optional

import pyarrow as pa

from ..errors import MixbakeError
from ..store import Store
from . import Catalog, ItemPayload


def mask_relpath(image_rel: str) -> str:
    """The mask of an image: the same relative path with the extension .png."""
    stem, dot, ext = image_rel.rpartition(".")
    return (stem if dot and "/" not in ext else image_rel) + ".png"


@dataclass(frozen=True)
class MaskedFolderReader:
    """A folder reader that yields each image with its mask's bytes (None: no mask file)."""
    images: object               # the folder's own reader
    masks: Store

    def read_chunk(self, locator: str, stamp=None) -> list:
        image = self.images.read_chunk(locator, stamp)[0]
        try:
            mask = self.masks.read_bytes(mask_relpath(locator))
        except FileNotFoundError:
            mask = None
        return [ItemPayload(image, mask=mask)]


def with_folder_masks(catalog: Catalog, masks_dir: str) -> Catalog:
    """``catalog`` (a folder's) reading each image's mask from ``masks_dir``: the masks' paths and
    sizes join its fingerprint; a missing mask file makes its item bad."""
    store = Store.open(masks_dir)
    if not store.exists() or not store.isdir():
        raise MixbakeError(f"--masks {masks_dir!r} is not a directory (it mirrors the image folder's tree).")
    h, bad = hashlib.sha256(catalog.fingerprint.encode()), dict(catalog.bad)
    for i, rel in enumerate(catalog.refs):
        mask = mask_relpath(rel)
        try:
            size = store.size(mask)
        except OSError:
            size = -1
            bad.setdefault(i, f"no mask file {mask} in {store.display()}")
        h.update(f"mask\0{mask}\0{size}\n".encode("utf-8", "surrogateescape"))
    return replace(catalog, reader=MaskedFolderReader(catalog.reader, store), fingerprint=h.hexdigest(), bad=bad,
                   options={**catalog.options, "masks": store.display()}, has_masks=True)


def mask_cells(column: pa.Array) -> list:
    """A mask column's cells as bytes (an HF Image struct's ``bytes``, or binary; None where null)."""
    if pa.types.is_struct(column.type):
        column = column.flatten()[column.type.get_field_index("bytes")]
    return column.to_pylist()


def check_mask_column(schema: pa.Schema, name: Optional[str], where: str) -> None:
    if name is None:
        return
    if name not in schema.names:
        raise MixbakeError(f"{where}: --mask-column {name!r} is not a column; columns are: {', '.join(schema.names)}.")
    t = schema.field(name).type
    binary = pa.types.is_binary(t) or pa.types.is_large_binary(t)
    if not (binary or (pa.types.is_struct(t) and "bytes" in [t.field(i).name for i in range(t.num_fields)])):
        raise MixbakeError(f"{where}: --mask-column {name!r} has type {t}: masks are PNG bytes (binary, or an "
                           f"Image struct<bytes, path>).")
