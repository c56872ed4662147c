"""The dataset card's parts: mixbake's own YAML writer (no PyYAML dependency) read back by PyYAML,
the parser huggingface_hub reads cards with, for any class name; and the features' YAML form, which
must be exactly what `datasets` itself makes of the JSON form the Parquet footer holds.

Loading bakes through their cards with `datasets` is in test_consumers.py; verify's card checks in
test_verify.py; --overwrite and the card in test_cli.py."""
import json
import math

import numpy as np
import pyarrow as pa
import pytest

from mixbake import card, formats
from mixbake.config import BakeConfig

yaml = pytest.importorskip("yaml")

NASTY = ["a: b", "a:b", 'say "hi"', "it's", "# not a comment", "x #y", "- dash", "? key", "[list]", "{map}",
         "&anchor", "*alias", "!tag", "%directive", "@at", "`tick`", "|", ">", ",", "yes", "No", "ON", "y", "n",
         "null", "Null", "~", "true", "False", "0", "007", "1.5", "1e3", "0x1F", ".inf", ".nan", "-", "",
         " lead", "trail ", "two  spaces", "tab\tx", "line\nbreak", "cr\rlf", "---", "...", "\n---\n",
         "back\\slash", "\\n", "ключ", "猫", "😀 emoji", "é (nfc)", "e\u0301 (nfd)", "nel\x85", "ls\u2028ps\u2029",
         "bom\ufeff", "nul\x00", "bell\x07", "del\x7f", "c1\x9b", "private\ue000", "fffe\ufffe",
         "astral\U0001F4A9", "plain_word", "with.dot", "with-dash"]


def round_trip(value):
    return yaml.safe_load(card.dump_yaml(value))


def test_every_nasty_string_reads_back_as_itself_as_key_and_value():
    doc = {"names": {str(i): name for i, name in enumerate(NASTY)}, "keys": {name: i for i, name in enumerate(NASTY)},
           "list": NASTY}
    assert round_trip(doc) == doc


def test_random_unicode_strings_read_back_as_themselves():
    rng = np.random.default_rng(0)
    planes = [(0x00, 0x80), (0x80, 0x800), (0x800, 0xD800), (0xE000, 0x10000), (0x10000, 0x110000)]
    strings = []
    for _ in range(400):
        lo, hi = planes[rng.integers(len(planes))]
        strings.append("".join(chr(c) for c in rng.integers(lo, hi, rng.integers(0, 12))))
    assert round_trip({"s": strings}) == {"s": strings}


def test_scalars_and_shapes_read_back_with_their_types():
    doc = {"int": -3, "big": 2 ** 62, "floats": [0.5, 1.0, 1e-05, 1e20, -2.5e-300, 0.1],
           "bools": [True, False], "none": None, "empty_map": {}, "empty_list": [], "nested": [[1, [2]], [], {}],
           "maps_in_lists": [{"a": 1, "b": [{"c": "d"}]}, {"e": {}}]}
    assert round_trip(doc) == doc
    specials = round_trip({"x": [math.inf, -math.inf, math.nan]})["x"]
    assert specials[:2] == [math.inf, -math.inf] and math.isnan(specials[2])
    with pytest.raises(TypeError, match="no YAML spelling for bytes"):
        card.dump_yaml({"x": b"raw"})


def test_yaml_lays_out_as_hub_cards_do():
    assert card.dump_yaml({"configs": [{"config_name": "default", "data_files": [
        {"split": "train", "path": "data/train-*"}]}], "tags": ["mixbake"]}) == (
        "configs:\n"
        "- config_name: default\n"
        "  data_files:\n"
        "  - split: train\n"
        '    path: "data/train-*"\n'
        "tags:\n"
        "- mixbake\n")


# ---------------------------------------------------------------- features: JSON form -> YAML form

def features_of(fmt_name, image_format, classes):
    config = BakeConfig(format=fmt_name, image_format=image_format)
    return formats.get(fmt_name).hf_features(config, classes)


CASES = [("parquet", "jpeg"), ("parquet", "raw"), ("webdataset", "png"), ("webdataset", "raw")]


@pytest.mark.parametrize("fmt_name,image_format", CASES)
def test_yaml_features_are_datasets_own_yaml_form(fmt_name, image_format):
    datasets = pytest.importorskip("datasets")
    json_form = features_of(fmt_name, image_format, NASTY)
    ours = card.yaml_features(json_form)
    assert ours == datasets.Features.from_dict(json_form)._to_yaml_list()
    # and datasets reads our YAML (as written, then parsed) back to the same features
    parsed = round_trip({"features": ours})["features"]
    assert datasets.Features._from_yaml_list(parsed) == datasets.Features.from_dict(json_form)


def test_parquet_card_features_are_the_shards_footer():
    from mixbake.formats.parquet import shard_schema
    config = BakeConfig(image_format="raw")
    footer = shard_schema(config, ["x", "y"]).metadata[b"huggingface"]
    assert formats.get("parquet").hf_features(config, ["x", "y"]) == json.loads(footer)["info"]["features"]
    names = [f["name"] for f in card.yaml_features(formats.get("parquet").hf_features(config, ["x", "y"]))]
    assert names == shard_schema(config, ["x", "y"]).names
    assert names[-3:] == ["height", "width", "channels"]


def test_webdataset_features_name_a_samples_entries():
    features = features_of("webdataset", "webp", ["x"])
    assert list(features) == ["cls", "webp", "json", "__key__"]
    assert features["cls"] == {"names": ["x"], "_type": "ClassLabel"}
    assert features["webp"] == {"_type": "Image"}
    assert list(features["json"]) == ["key", "label", "soft_label", "op", "lam", "src_a", "src_b", "label_a",
                                      "label_b", "boxes"]
    assert features_of("webdataset", "raw", ["x"])["raw"] == {"dtype": "binary", "_type": "Value"}


def test_folder_format_writes_no_card():
    assert formats.get("folder").card_data_files is None
    assert all(formats.get(n).card_data_files for n in ("parquet", "webdataset"))


# ---------------------------------------------------------------- the whole card

def manifest_doc(classes, fmt_name="parquet", **config):
    """A manifest as a build of ``classes`` would write it (no build needed to render a card)."""
    return {"format_version": 1, "mixbake_version": "9.9.9", "build_id": "b" * 64, "seed": 7,
            "config": BakeConfig(format=fmt_name, seed=7, **config).to_dict(), "classes": list(classes),
            "source": {"kind": "folder", "uri": "/data/my `odd` dir", "items": 10, "fingerprint": "f" * 64,
                       "options": {}, "ignored_files": 0},
            "totals": {"rows": 10, "items": 10, "skipped": 1, "bytes": 12345,
                       "ops": {"mixup": 6, "cutmix": 4, "cutout": 0, "none": 0}},
            "shards": [{"path": "data/train-00000-of-00001.parquet", "rows": 10, "bytes": 12345, "sha256": "s"}],
            "libraries": {}, "labels": {}, "errors": {"count": 1, "path": "errors.jsonl"}}


def test_card_front_matter_is_what_huggingface_hub_reads_and_the_text_is_plain():
    hub = pytest.importorskip("huggingface_hub")
    doc = manifest_doc(NASTY)
    text = card.render(formats.get("parquet"), BakeConfig.of_manifest(doc), doc)
    data = hub.DatasetCard(text).data.to_dict()
    label = next(f for f in data["dataset_info"]["features"] if f["name"] == "label")
    assert label["dtype"]["class_label"]["names"] == {str(i): n for i, n in enumerate(NASTY)}
    assert data["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    assert data["dataset_info"]["splits"] == [{"name": "train", "num_bytes": 12345, "num_examples": 10}]
    assert data["tags"] == ["mixbake", "mixup", "cutmix"]
    body = text.split("\n---\n", 1)[1]
    assert "10 samples (mixup 6, cutmix 4)" in body and "1 unreadable item skipped" in body
    assert "seed 7" in body and "b" * 64 in body and "mixbake bake --from-manifest manifest.json NEW_OUT" in body
    assert "``/data/my `odd` dir``" in body  # inline code that holds backticks
    # a name shown as itself where it reads as itself on one line, else quoted with escapes
    assert "\n 6  - dash\n" in body and '\n42  "line\\nbreak"\n' in body and '\n55  "ls\\u2028ps\\u2029"\n' in body
    assert '\n38  " lead"\n' in body and '\n37  ""\n' in body and "\n50  猫\n" in body


def test_card_text_lists_at_most_classes_shown():
    doc = manifest_doc([f"c{i}" for i in range(card.CLASSES_SHOWN + 5)])
    text = card.render(formats.get("parquet"), BakeConfig.of_manifest(doc), doc)
    assert f"c{card.CLASSES_SHOWN - 1}\n" in text.split("\n---\n", 1)[1]
    assert "... and 5 more" in text
    assert f'"{card.CLASSES_SHOWN + 4}": c{card.CLASSES_SHOWN + 4}\n' in text  # the YAML has them all


def test_card_is_a_function_of_the_manifest_as_stored():
    """Key order (manifest.json sorts its keys) changes nothing: the card made at the end of a build
    is the one made later from manifest.json."""
    doc = manifest_doc(["a", "b"])
    shuffled = {k: doc[k] for k in reversed(list(doc))}
    shuffled["totals"] = {**doc["totals"], "ops": dict(reversed(list(doc["totals"]["ops"].items())))}
    config = BakeConfig.of_manifest(doc)
    assert card.render(formats.get("parquet"), config, doc) == card.render(formats.get("parquet"), config, shuffled)


def test_read_front_matter_says_why_it_cannot():
    assert card.read_front_matter("---\na: 1\n---\n\ntext") == {"a": 1}
    assert card.read_front_matter("---\r\na: 1\r\n---") == {"a": 1}
    with pytest.raises(ValueError, match="no YAML front matter"):
        card.read_front_matter("# a card\n---\na: 1\n---\n")
    with pytest.raises(ValueError, match="its front matter is not YAML"):
        card.read_front_matter('---\na: "unclosed\n---\n')
    with pytest.raises(ValueError, match="not a YAML mapping"):
        card.read_front_matter("---\n- a\n---\n")


def test_arrow_types_spell_their_datasets_dtypes():
    """The features' dtypes come from the Arrow types (columns.hf_features), the YAML keeps them."""
    from mixbake.columns import hf_features
    schema = pa.schema([("f", pa.float32()), ("d", pa.float64()), ("i", pa.int32()), ("b", pa.binary())])
    assert [f["dtype"] for f in card.yaml_features(hf_features(schema, []))] == ["float32", "float64", "int32",
                                                                                "binary"]
