"""Recipes: bake options kept in a TOML file, or taken back from a finished build's manifest.json.

A recipe is a flat mapping of option names (``mixup-alpha`` or ``mixup_alpha``) to values, at the
top level or under a ``[bake]`` table, optionally with ``source``, ``image-column`` and
``label-column``, and a ``preset`` whose values its own keys override. Command-line flags
override it.
"""
from __future__ import annotations

import os
import sys

from .config import OPTIONS
from .errors import MixbakeError
from .manifest import read_json
from .sources import SourceOptions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older Pythons only
    import tomli as tomllib

SOURCE_KEYS = ("source", *SourceOptions.names())
RUN_KEYS = ("workers", "on_error", "quiet")
CONFIG_KEYS = tuple(OPTIONS)  # format_version among them: the output rules to follow


def load_recipe(path: str) -> dict:
    """TOML file -> {param_name: value}, with names checked and sizes spelled for the CLI."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise MixbakeError(f"Cannot read recipe {path}: {exc.strerror or exc}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise MixbakeError(f"Recipe {path} is not valid TOML: {exc}.") from None
    table = doc.get("bake", doc)
    recipe = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in CONFIG_KEYS + SOURCE_KEYS + RUN_KEYS + ("preset",):
            raise MixbakeError(f"Recipe {path}: unknown option {key!r}.")
        recipe[name] = value
    if "preset" in recipe:  # the preset's values, under the recipe's own
        from .presets import preset
        try:
            recipe = {**preset(str(recipe.pop("preset"))), **recipe}
        except MixbakeError as exc:
            raise MixbakeError(f"Recipe {path}: {exc}") from None
    if "source" in recipe and not os.path.isabs(str(recipe["source"])) and recipe["source"] != "demo":
        # a relative source means relative to the recipe, so recipes can travel with their data
        recipe["source"] = os.path.join(os.path.dirname(os.path.abspath(path)), str(recipe["source"]))
    return _for_cli(recipe)


def manifest_recipe(path: str) -> dict:
    """A finished build's manifest.json -> the recipe that rebuilds it bit for bit."""
    if os.path.isdir(path):
        path = os.path.join(path, "manifest.json")
    doc = read_json(path)
    try:
        recipe = dict(doc["config"])
        source = doc["source"]
    except (KeyError, TypeError):
        raise MixbakeError(f"{path} is not a mixbake manifest (no config/source).") from None
    recipe["source"] = source["uri"]
    recipe.update({k: v for k, v in (source.get("options") or {}).items() if k in SOURCE_KEYS})
    recipe["expect_fingerprint"] = source.get("fingerprint")
    recipe["format_version"] = doc.get("format_version", 1)
    return _for_cli(recipe)


def _for_cli(recipe: dict) -> dict:
    size = recipe.get("size")
    if isinstance(size, (list, tuple)):
        recipe["size"] = f"{size[0]}x{size[1]}" if len(size) == 2 else str(size[0])
    elif size is not None:
        recipe["size"] = str(size)
    return {k: v for k, v in recipe.items() if v is not None}
