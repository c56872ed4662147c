"""Output formats: one module each behind :class:`Format`, one registry.

A format owns everything about how a build's shards look on disk:

- its naming (``shard_relpath``) and which entries of OUT are its own (``owns``, ``foreign``,
  ``remove``, ``temporary_dirs``);
- its writer (``open_writer``): a context manager with ``write(columns, images)``, one call per
  row group; the shard appears under its final name only on a clean exit (temporary + rename, or
  all of a folder shard's files removed on an exception); ``relpath``, ``bytes``, ``sha256`` after;
- its extra label columns in labels.parquet (``label_columns``) and what it writes once a build
  is complete (``finish``: labels.csv; the dataset card, ``OUT/README.md``, for a format whose
  shards a Hugging Face ``datasets`` loader reads: ``card_data_files`` and ``hf_features``);
- reading back: a shard's digest (``digest``, resume and verify), which file to make durable
  (``durable_path``), the label columns of a shard (``shard_labels``, verify) and its images
  (``read_images``, preview).

Adding a format: a module here defining a :class:`Format` subclass as ``FORMAT``, its name in
``NAMES`` (``--format`` offers these, in this order), and its tests. Format modules are imported
when first used, so choosing a format costs nothing until a build needs it.
"""
from __future__ import annotations

import contextlib
import importlib
from typing import Dict, List, Optional, Tuple

NAMES = ("parquet", "webdataset", "folder", "yolo")
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp", "raw": "raw"}  # file name endings per image format
LABELS = "labels.parquet"  # every build's label manifest (the folder format makes labels.csv from it)
CARD = "README.md"  # the dataset card (mixbake/card.py) of a format with ``card_data_files``


class Format:
    name: str = ""
    shard_kind: str = "file"         # a shard is one file, or a group of files (folder)
    # the glob (relative to OUT) of the shards a `datasets` loader reads as the train split; a format
    # without one writes no dataset card
    card_data_files: Optional[str] = None

    def shard_relpath(self, shard_id: int, num_shards: int) -> str:
        raise NotImplementedError

    # ---- the files in OUT
    def owns(self, name: str) -> bool:
        """Is top-level entry ``name`` of OUT something this format writes (besides what every build
        writes: manifest.json, labels.parquet, errors.jsonl, .mixbake, and README.md with a
        ``card_data_files``)?"""
        return False

    def foreign(self, store) -> List[str]:
        """Entries inside this format's own directories that it did not write."""
        return []

    def remove(self, store) -> None:
        """Remove this format's own entries (never a foreign file)."""
        for name in store.listdir():
            if self.owns(name):
                store.rmtree(name) if store.isdir(name) else store.remove(name)

    def temporary_dirs(self) -> Tuple[str, ...]:
        """Directories of OUT where this format's writers leave dot-named temporaries."""
        return ()

    # ---- writing
    def open_writer(self, store, relpath: str, config, classes, footer: dict):
        raise NotImplementedError

    def label_columns(self, classes, config, columns: dict) -> Dict[str, list]:
        """Extra labels.parquet columns of a shard's rows (folder: where each image file is)."""
        return {}

    def finish(self, store, config, doc: dict) -> None:
        """Once every shard is in, before manifest.json (``doc``: the manifest about to be written)."""
        if self.card_data_files is not None:
            from .. import card
            card.write(store, self, config, doc)

    def hf_features(self, config, classes) -> dict:
        """The `datasets` features (the JSON form, ``Features.to_dict``) of a row as the loader of
        ``card_data_files`` yields it (what the dataset card declares)."""
        raise NotImplementedError

    def durable_path(self, relpath: str) -> Optional[str]:
        """The file to fsync for a finished shard; None: OUT's whole file system is synced instead."""
        return relpath

    # ---- reading back
    def digest(self, store, relpath: str, paths=None) -> Tuple[int, str]:
        """(bytes, sha256) of a shard as stored (``paths``: a folder shard's files, in row order)."""
        return store.digest(relpath)

    def read_back(self, store, relpath: str, columns) -> Tuple[Optional[int], dict, object]:
        """What a shard file says of itself, read once (verify): (its rows, its footer's metadata,
        its label columns as an Arrow table), each None/{} where the format does not hold it."""
        return None, {}, None

    def read_images(self, store, relpath: str, wanted: Dict[int, dict], config: dict) -> Dict[int, object]:
        """{i: HxWx3 pixels} of the rows ``wanted`` ({i: labels.parquet row}) of one shard."""
        raise NotImplementedError


class AtomicFileWriter:
    """Base for single-file shards: the file is opened through ``store.atomic_output`` on enter and
    committed (or discarded, on an exception) on exit; ``bytes``/``sha256`` are known after.
    A writer whose ``open`` takes a pyarrow sink sets ``native = True`` (see ``Store.atomic_output``)."""

    native = False

    def __init__(self, store, relpath: str):
        self.store, self.relpath = store, relpath
        self.bytes, self.sha256 = 0, ""
        self._stack = None
        self.file = None

    def __enter__(self):
        self._stack = contextlib.ExitStack()
        # no fsync here: the build syncs each shard before its manifest (see store.durable.Syncer)
        self.file = self._stack.enter_context(self.store.atomic_output(self.relpath, fsync=False,
                                                                       native=self.native))
        self.open(self.file.sink if self.native else self.file)
        return self

    def open(self, file) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.close()
        finally:
            self._stack.__exit__(exc_type, exc, tb)
        if exc_type is None:
            self.bytes, self.sha256 = self.file.bytes, self.file.sha256
        return False


def is_temporary(name: str) -> bool:
    """A writer's temporary: dot-named, ``.tmp`` at the end (readers and globs skip it)."""
    return name.startswith(".") and name.endswith(".tmp")


def is_shard_file(name: str, ending: str) -> bool:
    """A shard file ``train-*<ending>``, or one of its temporaries (``.train-*<ending>.<pid>.tmp``)."""
    if is_temporary(name):
        return name.startswith(".train-") and f"{ending}." in name
    return name.startswith("train-") and name.endswith(ending)


def get(name: Optional[str]) -> Format:
    """The format called ``name`` (a manifest without one is a Parquet build)."""
    name = name or "parquet"
    if name not in NAMES:
        raise ValueError(f"unknown output format {name!r}")
    return importlib.import_module(f"{__name__}.{name}").FORMAT
