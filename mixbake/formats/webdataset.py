"""WebDataset shards: ``OUT/train-000000.tar`` with ``<key>.cls``, ``<key>.<ext>``, ``<key>.json`` per sample.

Tars are byte-reproducible: fixed mtime (0), owner (0/0, no names) and mode, ustar format; samples
in the plan's (already shuffled) order, each sample's entries sorted by extension.
"""
from __future__ import annotations

import io
import json
import tarfile
from typing import Dict, List

import pyarrow as pa

from ..columns import hf_features, row_json
from . import EXTENSIONS, AtomicFileWriter, Format, is_shard_file


def sample_json(columns: dict, i: int) -> bytes:
    """The soft label and provenance of row ``i`` (what ``<key>.json`` holds)."""
    return json.dumps(row_json(columns, i), sort_keys=True, separators=(",", ":")).encode("utf-8")


class TarShardWriter(AtomicFileWriter):
    def __init__(self, store, relpath: str, config, classes, footer: dict):
        super().__init__(store, relpath)
        self.ext = EXTENSIONS[config.image_format]
        self._tar = None

    def open(self, file) -> None:
        self._tar = tarfile.open(fileobj=file, mode="w", format=tarfile.USTAR_FORMAT)

    def close(self) -> None:
        self._tar.close()

    def _add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._tar.addfile(info, io.BytesIO(data))

    def write(self, columns: dict, images: List[bytes]) -> None:
        for i, image in enumerate(images):
            key = columns["key"][i]
            entries = {self.ext: image, "json": sample_json(columns, i)}
            for name in ("mask", "mask_b"):  # segmentation masks: <key>.mask.png, <key>.mask_b.png (raw: .raw)
                if columns.get(name) is not None and columns[name][i] is not None:
                    entries[f"{name}.{'raw' if self.ext == 'raw' else 'png'}"] = columns[name][i]
            if columns["label"][i] >= 0:  # (a multi-label row has none: its sets are in the json)
                entries["cls"] = str(int(columns["label"][i])).encode()
            for ext in sorted(entries):
                self._add(f"{key}.{ext}", entries[ext])


class WebDatasetFormat(Format):
    name = "webdataset"
    card_data_files = "train-*.tar"

    def hf_features(self, config, classes):
        """A sample as `datasets`' webdataset loader yields it: one field per entry (named by its
        extension: ``cls``, the image's, ``json``) and ``__key__``. ``json`` holds the label columns,
        so its types are theirs (json numbers would otherwise load as int64/float64); ``__url__``
        (the tar's path on the loading machine) is left out, so the loader drops it."""
        ext = EXTENSIONS[config.image_format]
        string = {"dtype": "string", "_type": "Value"}
        features = {
            "cls": {"names": list(classes), "_type": "ClassLabel"},
            ext: {"dtype": "binary", "_type": "Value"} if ext == "raw" else {"_type": "Image"},
            "json": hf_features(pa.schema(config.label_fields(len(classes))), classes),
            "__key__": string,
        }
        if config.label_kind == "multi":
            del features["cls"]
        return features

    def shard_relpath(self, shard_id, num_shards):
        return f"train-{shard_id:06d}.tar"

    def owns(self, name):
        return is_shard_file(name, ".tar")

    def open_writer(self, store, relpath, config, classes, footer):
        return TarShardWriter(store, relpath, config, classes, footer)

    def read_images(self, store, relpath, wanted, config) -> Dict[int, object]:
        from ..errors import MixbakeError
        from ..imaging import decode_output
        ext = EXTENSIONS[config["image_format"]]
        by_name = {f"{r['key']}.{ext}": i for i, r in wanted.items()}
        found = {}
        with store.open_input(relpath) as f, tarfile.open(fileobj=f, mode="r") as tar:
            for member in tar:
                i = by_name.get(member.name)
                if i is not None:
                    found[i] = decode_output(tar.extractfile(member).read(), config["image_format"], config["size"])
                    if len(found) == len(by_name):
                        break
        missing = sorted(name for name, i in by_name.items() if i not in found)
        if missing:
            raise MixbakeError(f"{relpath}: no member {missing[0]} (the output is incomplete; run mixbake verify).")
        return found


FORMAT = WebDatasetFormat()
