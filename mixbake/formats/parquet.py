"""Parquet shards: ``OUT/data/train-NNNNN-of-MMMMM.parquet``, nothing else in ``data/``.

Schema and footer follow what Hugging Face ``datasets``, DuckDB and Polars read without options:
``image`` is ``struct<bytes: binary, path: string>``, ``label`` int64 with a ClassLabel in the
``huggingface`` footer key, ``soft_label`` ``list<float32>``. Image bytes are stored uncompressed
(they are already compressed); the other columns use zstd.
"""
from __future__ import annotations

import functools
import json
from typing import Dict, List, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import arrow_arrays as arrow
from ..columns import IMAGE_TYPE, hf_features, label_arrays
from . import EXTENSIONS, AtomicFileWriter, Format, is_shard_file

DATA = "data"
RAW_FIELDS = [pa.field("height", pa.int32()), pa.field("width", pa.int32()), pa.field("channels", pa.int32())]


def shard_schema(config, classes, footer: Optional[dict] = None) -> pa.Schema:
    """Shard columns; ``footer`` (build id, shard id) says which build a file belongs to."""
    schema, features = _columns_and_features(config, tuple(classes))
    return schema.with_metadata({b"huggingface": features, b"mixbake": json.dumps(footer or {}, sort_keys=True).encode()})


@functools.lru_cache(maxsize=4)
def _columns_and_features(config, classes: tuple):
    """The shards' schema and its ``huggingface`` footer, made once per build in a worker (the
    ClassLabel of 21,841 names is ~0.4 MB of JSON)."""
    labels = config.label_fields(len(classes))
    fields = [labels[0], pa.field("image", IMAGE_TYPE)] + labels[1:]
    if config.with_masks:  # (raw: the mask's HxW bytes; else a PNG, an HF Image)
        mask_type = pa.binary() if config.image_format == "raw" else IMAGE_TYPE
        fields += [pa.field("mask", mask_type), pa.field("mask_b", mask_type)]
    if config.image_format == "raw":
        fields += RAW_FIELDS
    schema = pa.schema(fields)
    features = hf_features(schema, classes, image=config.image_format != "raw")
    return schema, json.dumps({"info": {"features": features}}).encode()


def _mask_arrays(columns: dict, ext: str) -> dict:
    """``mask`` / ``mask_b`` cells: binary with raw images, else Image structs (path ``<key>.mask.png``)."""
    out = {}
    for name in ("mask", "mask_b"):
        data = columns[name]
        if ext == "raw":
            out[name] = arrow.binary(data)
            continue
        paths = [None if d is None else f"{k}.{name.replace('_', '.')}.png" for k, d in zip(columns["key"], data)]
        out[name] = pa.StructArray.from_arrays([arrow.binary(data), arrow.strings(paths)], fields=list(IMAGE_TYPE),
                                               mask=pa.array([d is None for d in data]))
    return out


class ShardWriter(AtomicFileWriter):
    """``with ShardWriter(store, relpath, ...) as w: w.write(...)``; the file appears on clean exit only."""

    native = True  # pyarrow writes straight to the file

    def __init__(self, store, relpath: str, config, classes, footer: dict):
        super().__init__(store, relpath)
        self.config = config
        self.schema = shard_schema(config, classes, footer)
        self.ext = EXTENSIONS[config.image_format]
        self._writer = None

    def open(self, file) -> None:
        paths = leaf_paths(self.schema)
        self._writer = pq.ParquetWriter(
            file, self.schema,
            # per leaf column: nested columns are matched by their full path (soft_label.list.element)
            compression={p: "none" if p == "image.bytes" else "zstd" for p in paths},
            use_dictionary=["op", "image.path"],
            write_statistics=[p for p in paths if p.split(".")[0] not in ("image", "soft_label", "soft_index",
                                                                           "soft_value", "boxes")],
        )

    def close(self) -> None:
        self._writer.close()

    def write(self, columns: dict, images: List[bytes]) -> None:
        """Write one row group: ``columns`` are row-aligned label arrays, ``images`` the encoded bytes."""
        keys = columns["key"]
        paths = [None] * len(keys) if self.ext == "raw" else [f"{k}.{self.ext}" for k in keys]
        arrays = label_arrays(columns)
        arrays["image"] = pa.StructArray.from_arrays(
            [arrow.binary(images), arrow.strings(paths)], fields=list(IMAGE_TYPE))
        if self.config.with_masks:
            arrays.update(_mask_arrays(columns, self.ext))
        if self.ext == "raw":
            width, height = self.config.size
            n = len(images)
            arrays.update(height=arrow.numeric(np.full(n, height), pa.int32()),
                          width=arrow.numeric(np.full(n, width), pa.int32()),
                          channels=arrow.numeric(np.full(n, 3), pa.int32()))
        table = pa.Table.from_arrays([arrays[f.name] for f in self.schema], schema=self.schema)
        self._writer.write_table(table, row_group_size=max(1, len(images)))


_leaf_paths = {}


def leaf_paths(schema: pa.Schema) -> list:
    """The Parquet leaf column paths of an Arrow schema (what per-column writer options match).

    Found by writing a file with no rows once per column layout, not once per shard."""
    key = str(schema.remove_metadata())
    if key not in _leaf_paths:
        sink = pa.BufferOutputStream()
        pq.ParquetWriter(sink, schema.remove_metadata()).close()  # (schema.empty_table() imports pandas)
        parquet_schema = pq.ParquetFile(pa.BufferReader(sink.getvalue())).schema
        _leaf_paths[key] = [parquet_schema.column(i).path for i in range(len(parquet_schema))]
    return _leaf_paths[key]


class ParquetFormat(Format):
    name = "parquet"
    card_data_files = f"{DATA}/train-*"  # HF's own default layout, data/{split}-*

    def hf_features(self, config, classes):
        """The shards' footer features: the card declares what every file already says."""
        return json.loads(shard_schema(config, classes).metadata[b"huggingface"])["info"]["features"]

    def shard_relpath(self, shard_id, num_shards):
        return f"{DATA}/train-{shard_id:05d}-of-{num_shards:05d}.parquet"

    def owns(self, name):
        return name == DATA

    def foreign(self, store):
        return [f"{DATA}/{n}" for n in store.listdir(DATA) if not is_shard_file(n, ".parquet")]

    def remove(self, store):
        for name in store.listdir(DATA):
            if is_shard_file(name, ".parquet"):
                store.remove(f"{DATA}/{name}")
        if store.local and store.isdir(DATA) and not store.listdir(DATA):
            store.rmtree(DATA)

    def temporary_dirs(self):
        return (DATA,)

    def open_writer(self, store, relpath, config, classes, footer):
        return ShardWriter(store, relpath, config, classes, footer)

    def read_back(self, store, relpath, columns):
        """Opened once: the footer of a shard of many classes holds all their names."""
        with store.open_input(relpath) as f:
            pf = pq.ParquetFile(f)
            return pf.metadata.num_rows, pf.schema_arrow.metadata or {}, pf.read(columns=columns)

    def read_images(self, store, relpath, wanted, config) -> Dict[int, np.ndarray]:
        """Read only the row groups holding the wanted rows."""
        from ..imaging import decode_output
        with store.open_input(relpath) as f:
            pf = pq.ParquetFile(f)
            sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
            starts = np.concatenate([[0], np.cumsum(sizes)])
            raw = config["image_format"] == "raw"
            groups: Dict[int, list] = {}
            for i, r in wanted.items():
                groups.setdefault(int(np.searchsorted(starts, r["row"], side="right") - 1), []).append(i)
            found = {}
            for group, indices in sorted(groups.items()):
                table = pf.read_row_group(group, columns=["image", "height", "width"] if raw else ["image"]).to_pydict()
                for i in indices:
                    k = wanted[i]["row"] - int(starts[group])
                    size = (table["width"][k], table["height"][k]) if raw else config["size"]
                    found[i] = decode_output(table["image"][k]["bytes"], config["image_format"], size)
        return found


FORMAT = ParquetFormat()
