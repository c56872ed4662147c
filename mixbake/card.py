"""``OUT/README.md``: a Hugging Face dataset card, so that ``datasets.load_dataset(OUT)`` loads a bake
with its features, and a reader of OUT learns where it came from and how to rebuild it.

The YAML front matter says which files are the train split (``configs``) and what a row holds
(``dataset_info``: the features, converted from the JSON form the output format declares (for
Parquet, the shards' own ``huggingface`` footer) into the YAML form ``datasets`` reads; the row
count, which ``datasets`` checks on load). The text after it gives the source, counts, config,
seed, build id and the command that rebuilds the build.

The card is a function of the manifest alone (no timestamps, no path of OUT), so every bake of one
build writes the same card. manifest.json does not list it: its bytes, and those of every shard and
of labels.parquet, are what they were before cards existed. Verify checks the card (``problems``).

mixbake does not depend on PyYAML: the YAML is written here, every string that is not a plain word
double-quoted with escapes (a class name may hold ':', '#', quotes, line breaks or any unicode).
"""
from __future__ import annotations

import json
import math
import re
from typing import List, Optional

from . import formats, ops
from .config import BakeConfig
from .formats import CARD
from .humanize import count, human_bytes

# the last mixbake release that wrote no card: verify requires a card only of builds made after it
# (the manifest cannot say, its bytes predate cards; its mixbake_version can)
LAST_WITHOUT_CARD = (0, 2, 0)
CLASSES_SHOWN = 100  # the text lists this many classes; the YAML (and manifest.json) has them all


def write(store, fmt, config, doc: dict) -> None:
    """Write the card of the build ``doc`` (its manifest) of format ``fmt`` and config ``config``."""
    store.write_bytes(CARD, render(fmt, config, doc).encode("utf-8"))


def render(fmt, config, doc: dict) -> str:
    """The card's text: YAML front matter, then Markdown."""
    # the manifest as manifest.json stores it (keys sorted): the card written at the end of a build is
    # the one made later from its manifest.json (unchanged, for --overwrite)
    doc = json.loads(json.dumps(doc, sort_keys=True))
    return "---\n" + dump_yaml(front_matter(fmt, config, doc)) + "---\n\n" + text(fmt, doc)


def unchanged(store, doc: dict) -> bool:
    """Is OUT's card, byte for byte, the one this mixbake writes for the finished build ``doc``?"""
    fmt = formats.get(doc["config"].get("format"))
    return store.read_bytes(CARD) == render(fmt, BakeConfig.of_manifest(doc), doc).encode("utf-8")


def front_matter(fmt, config, doc: dict) -> dict:
    """What ``datasets`` reads: the train split's files, the features, the number of rows."""
    totals = doc["totals"]
    return {
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": fmt.card_data_files}]}],
        "dataset_info": {
            "features": yaml_features(fmt.hf_features(config, doc["classes"])),
            # num_bytes: the shards as stored (what datasets reports after loading is their Arrow size,
            # known only by reading every image again; it checks num_examples only)
            "splits": [{"name": "train", "num_bytes": totals["bytes"], "num_examples": totals["rows"]}],
            "download_size": totals["bytes"],
        },
        "task_categories": ["image-classification"],
        "tags": ["mixbake"] + [op for op in _ops(totals) if op != "none"],
    }


def _ops(totals: dict) -> List[str]:
    """The ops with rows in the build, in the registry's order."""
    return [op for op in ops.NAMES if totals["ops"].get(op)]


# ---------------------------------------------------------------- features: JSON form -> YAML form

_LISTS = {"Sequence": "list", "List": "list", "LargeList": "large_list"}  # Sequence: datasets < 4's List


def yaml_features(features: dict) -> list:
    """The YAML form of `datasets` features given in their JSON form (``Features.to_dict``, what a
    Parquet footer holds): `datasets`' own ``Features._to_yaml_list``, for the types mixbake writes."""
    return [{"name": name, **_yaml_feature(feature)} for name, feature in features.items()]


def _yaml_feature(feature) -> dict:
    if isinstance(feature, list):  # a Python list of one feature: a list (of structs), `list:` in YAML
        return {"list": _simplified(_yaml_feature(feature[0]))}
    kind = feature.get("_type")
    if kind is None:  # a struct: {field name: feature}
        return {"struct": yaml_features(feature)}
    params = {k: v for k, v in feature.items() if k not in ("_type", "feature")}
    if kind in _LISTS:
        return {_LISTS[kind]: _simplified(_yaml_feature(feature["feature"])), **params}
    if kind == "Value":
        return params
    if kind == "ClassLabel":  # names keyed by their label id, as strings (the Hub requires string keys)
        params["names"] = {str(i): name for i, name in enumerate(params["names"])}
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()  # ClassLabel -> class_label, Image -> image
    return {"dtype": {name: params} if params else name}


def _simplified(inner: dict):
    """A list's item as `datasets` spells it: ``list: float32``, ``list: [fields]`` for structs."""
    if list(inner) in (["dtype"], ["struct"]):
        return next(iter(inner.values()))
    return inner


# ---------------------------------------------------------------- YAML, written without PyYAML

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
# plain words YAML 1.1 (PyYAML, what huggingface_hub parses cards with) reads as booleans or null
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def dump_yaml(value) -> str:
    """Block-style YAML of dicts, lists, strings, ints, floats, bools and None; a dict's order kept."""
    return "".join(line + "\n" for line in _yaml_lines(value, 0))


def _yaml_lines(value, indent: int):
    pad = " " * indent
    if isinstance(value, dict) and value:
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                yield f"{pad}{_scalar(key)}:"
                # a list's dashes at its key's indent (as PyYAML and the Hub write cards)
                yield from _yaml_lines(item, indent if isinstance(item, list) else indent + 2)
            else:
                yield f"{pad}{_scalar(key)}: {_scalar(item)}"
    elif isinstance(value, list) and value:
        for item in value:
            if not isinstance(item, (dict, list)):
                yield f"{pad}- {_scalar(item)}"
                continue
            lines = list(_yaml_lines(item, indent + 2))
            lines[0] = f"{pad}- {lines[0][indent + 2:]}"  # the item's first line follows its dash
            yield from lines
    else:
        yield pad + _scalar(value)


def _scalar(value) -> str:
    if isinstance(value, dict) or isinstance(value, list):
        return "{}" if isinstance(value, dict) else "[]"  # (empty: non-empty ones are blocks)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return ".nan" if math.isnan(value) else ("-.inf" if value < 0 else ".inf")
        text = repr(value)
        # YAML 1.1 reads '1e-05' as a string: its floats need a '.' before the exponent
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    if isinstance(value, str):
        return value if _PLAIN.match(value) and value.lower() not in _RESERVED else _quoted(value)
    raise TypeError(f"no YAML spelling for {type(value).__name__} {value!r}")


_SHORT_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


# what _quoted escapes: quotes, backslashes, and what YAML does not print (see _printable)
_ESCAPED = re.compile(r'["\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]')


def _quoted(text: str) -> str:
    """A double-quoted YAML scalar: printable characters as they are, every other one escaped."""
    if not _ESCAPED.search(text):  # (most names: 21,841 classes' card in 20 ms instead of 200)
        return f'"{text}"'
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif _printable(ord(ch)):
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _printable(code: int) -> bool:
    """YAML's printable set, less what it reads as line breaks (NEL, U+2028/9) and the byte-order mark."""
    return (0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF and code not in (0x2028, 0x2029)
            or 0xE000 <= code <= 0xFFFD and code != 0xFEFF or 0x10000 <= code <= 0x10FFFF)


# ---------------------------------------------------------------- the text

def text(fmt, doc: dict) -> str:
    """Markdown for people: what the bake holds, where it came from, how to load and rebuild it."""
    parts = [f"# A mixbake bake of {_code(_source_name(doc))}\n", _summary(fmt, doc),
             "## Loading\n", _fenced("python", "from datasets import load_dataset\n\n"
                                     'ds = load_dataset("path/to/this/directory", split="train")'),
             "## Columns\n", _columns(fmt), "## Classes\n", _classes(doc["classes"]), _recipe(doc)]
    return "\n".join(parts)


def _source_name(doc: dict) -> str:
    return doc["source"]["uri"].rstrip("/").rsplit("/", 1)[-1] or doc["source"]["uri"]


def _summary(fmt, doc: dict) -> str:
    config, totals, source = doc["config"], doc["totals"], doc["source"]
    made = ", ".join(f"{op} {totals['ops'][op]}" for op in _ops(totals))
    skipped = (f" ({count(totals['skipped'], 'unreadable item')} skipped: see errors.jsonl)"
               if totals["skipped"] else "")
    where = "" if source["uri"] == source["kind"] else f" {_code(source['uri'])}"  # the demo is just 'demo'
    return (f"{count(totals['rows'], 'sample')} ({made}) baked by mixbake {doc['mixbake_version']} from the "
            f"{source['kind']} source{where}: {count(totals['items'], 'item')} of "
            f"{count(len(doc['classes']), 'class', 'classes')}{skipped}, fingerprint "
            f"{_code(source['fingerprint'])}. {_images(config)}, in "
            f"{count(len(doc['shards']), fmt.name + ' shard')} ({human_bytes(totals['bytes'])}); "
            f"seed {doc['seed']}, mixbake output format {doc.get('format_version', 1)}.\n\n"
            f"Build id {_code(doc['build_id'])}: the hash of everything that decides these bytes (the "
            f"config, the source's fingerprint, the classes, the versions of the libraries that wrote "
            f"them). `manifest.json` lists every shard with its sha256; `mixbake verify` checks them.\n")


def _images(config: dict) -> str:
    width, height = config["size"]
    kind = config["image_format"]
    if kind == "raw":
        return f"{width}x{height} raw RGB pixels (uint8, height x width x 3)"
    quality = f" (quality {config['quality']})" if kind in ("jpeg", "webp") else ""
    return f"{width}x{height} {kind.upper()} images{quality}"


def _columns(fmt) -> str:
    where = ("the shard columns" if fmt.name == "parquet" else
             "the fields of each sample's `<key>.json` (its class is also `<key>.cls`)")
    return (f"Each row says how it was made ({where}): `op`, `lam` (the weight of source a), `src_a`, "
            "`src_b` (the sources' indices in the source listing; `src_b` null without a partner), "
            "`label_a`, `label_b` (their classes) and `boxes` (`[x0, y0, x1, y1]`, half-open, in output "
            "pixels: the pasted box or the cut holes); `soft_label` is the dense target and `label` its "
            "argmax. `labels.parquet` holds the same label columns without the images, with each row's "
            "shard and the sources' references.\n")


def _classes(classes) -> str:
    width = len(str(max(len(classes) - 1, 0)))
    lines = [f"{i:>{width}}  {_shown(name)}" for i, name in enumerate(classes[:CLASSES_SHOWN])]
    more = (f"\n... and {len(classes) - CLASSES_SHOWN} more: all are in the YAML above and in manifest.json.\n"
            if len(classes) > CLASSES_SHOWN else "")
    return _fenced("", "\n".join(lines)) + more


def _shown(name: str) -> str:
    """A class name as it is, or quoted with escapes where it would not read as itself on one line."""
    return name if name.isprintable() and name == name.strip() and name else _quoted(name)


def _recipe(doc: dict) -> str:
    config = json.dumps(doc["config"], indent=2, sort_keys=True, ensure_ascii=False)
    return ("## Rebuilding, citing\n\n"
            "The recipe (`manifest.json` -> `config`; the seed is in it):\n\n" + _fenced("json", config) +
            "\nRebuild this bake bit for bit from its manifest (mixbake checks that the source still has "
            "the fingerprint above; the same bytes also need the library versions in `manifest.json` -> "
            "`libraries`):\n\n" + _fenced("bash", "mixbake bake --from-manifest manifest.json NEW_OUT\n"
                                          "mixbake verify NEW_OUT") +
            f"\nTo cite the recipe, give the build id {_code(doc['build_id'])} and publish `manifest.json` "
            "with the data: it holds the config, the source's fingerprint, the classes and the versions.\n")


def _code(text: str) -> str:
    """Inline code that holds any text: a backtick fence longer than any run of backticks in it."""
    ticks = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _fenced(lang: str, body: str) -> str:
    fence = "`" * max(3, max(map(len, re.findall("`+", body)), default=0) + 1)
    return f"{fence}{lang}\n{body}\n{fence}\n"


# ---------------------------------------------------------------- reading a card back (verify)

_FRONT_MATTER = re.compile(r"---[ \t]*\r?\n(.*?)^---[ \t]*(?:\r?\n|\Z)", re.S | re.M)


def read_front_matter(text: str) -> Optional[dict]:
    """The card's YAML front matter as data; None where no YAML parser is installed (PyYAML, which
    `datasets` and huggingface_hub read cards with, is not one of mixbake's dependencies). A
    ValueError says why the card has none."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        raise ValueError("no YAML front matter (a first line '---', the YAML, then a line '---')")
    try:
        import yaml
    except ImportError:
        return None
    try:  # libyaml's loader where PyYAML has it: the names of 21,841 classes parse in 0.2 s, not 4
        data = yaml.load(match.group(1), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ValueError(f"its front matter is not YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(data, dict):
        raise ValueError("its front matter is not a YAML mapping")
    return data


def problems(store, fmt, config, doc: dict) -> List[str]:
    """What is wrong with the card of a finished build: missing (from a mixbake that writes one),
    unreadable, or declaring other files, features or row counts than the build's."""
    if fmt.card_data_files is None:
        return []
    if not store.exists(CARD):
        return [f"{CARD}: missing"] if _release(doc.get("mixbake_version", "0")) > LAST_WITHOUT_CARD else []
    stored = store.read_bytes(CARD)
    if stored == render(fmt, config, doc).encode("utf-8"):  # the card as written: nothing to parse
        return []
    try:
        found = read_front_matter(stored.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return [f"{CARD}: {exc}"]
    if found is None:  # no YAML parser here: the front matter's delimiters are all that is checked
        return []
    want = front_matter(fmt, config, doc)
    info = found.get("dataset_info") if isinstance(found.get("dataset_info"), dict) else {}
    out = [] if found.get("configs") == want["configs"] else [
        f"{CARD}: configs differ from the build's (its data_files must be {fmt.card_data_files})"]
    out += _feature_problems(info.get("features"), want["dataset_info"]["features"])
    if _examples(info.get("splits")) != _examples(want["dataset_info"]["splits"]):  # what datasets checks
        out.append(f"{CARD}: splits differ from the build's ({count(doc['totals']['rows'], 'row')} in train)")
    return out


def _examples(splits):
    """{split name: num_examples} of a card's splits (None if they are not a list of mappings)."""
    if not isinstance(splits, list) or not all(isinstance(s, dict) for s in splits):
        return None
    return {s.get("name"): s.get("num_examples") for s in splits}


def _feature_problems(found, want: list) -> List[str]:
    have = {f.get("name"): f for f in found if isinstance(f, dict)} if isinstance(found, list) else {}
    names = [f["name"] for f in want]
    if list(have) != names:
        return [f"{CARD}: its features are {', '.join(map(str, have)) or 'missing'}; the build's are "
                f"{', '.join(names)}"]
    out = []
    for feature in want:
        if have[feature["name"]] != feature:
            why = " (the class names)" if _names(have[feature["name"]]) != _names(feature) else ""
            out.append(f"{CARD}: feature {feature['name']} differs from the build's{why}")
    return out


def _names(feature: dict):
    """The class names a (YAML form) feature declares, at any depth."""
    if isinstance(feature, dict):
        if "class_label" in feature:
            return feature["class_label"]
        return [_names(v) for v in feature.values()]
    return [_names(v) for v in feature] if isinstance(feature, list) else None


def _release(version: str) -> tuple:
    """'0.2.1' -> (0, 2, 1) ('0.3.0.dev1' -> (0, 3, 0))."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])
