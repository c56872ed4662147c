"""The reference tables of ``docs/options.md``, made from the registries (never written by hand):
every bake option with the room that declares it, the ops, the output formats and the source
options. ``python -m mixbake.reference > docs/options.md`` rewrites the page; a test checks that
the page in the repository is what this prints.
"""
from __future__ import annotations

from typing import List

from . import chain, formats, ops
from .config import OUTPUT_OPTIONS, SAMPLE_OPTIONS
from .options import Option
from .sources import SourceOptions

HEADER = """# Options reference

Generated from the option declarations by `python -m mixbake.reference > docs/options.md`; the
test suite checks that this page matches them. Flags, recipe keys (`name` or `name-with-dashes`)
and `mixbake.bake()` keyword arguments are the same names. Options marked with a format version
above 1 were added then: a build that leaves them at their default records none of them, so a
recipe keeps its bytes.
"""


def _default(option: Option) -> str:
    value = option.default
    if option.kind == "size":
        return "x".join(map(str, value)) if value[0] != value[1] else str(value[0])
    if value is None:
        return "(auto)" if option.since > 1 else "off"
    if option.kind == "flag":
        return "off" if not value else "on"
    if option.kind == "pair":
        return " ".join(f"{v:.4g}" for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _row(option: Option, room: str) -> str:
    values = f" ({'/'.join(option.choices)})" if option.choices else ""
    help_text = option.help.replace("|", "\\|")
    return f"| `{option.flag}` | {_default(option)}{values} | {room} | {option.since} | {help_text} |"


def options_table() -> List[str]:
    lines = ["| option | default | declared in | since format | meaning |", "|---|---|---|---|---|"]
    lines += [_row(o, "config.py") for o in OUTPUT_OPTIONS]
    for step in chain.REGISTRY:
        lines += [_row(o, f"chain/{step.__module__.rsplit('.', 1)[-1]}.py") for o in step.options]
    for op in ops.REGISTRY:
        lines += [_row(o, f"ops/{op.__module__.rsplit('.', 1)[-1]}.py") for o in (op.share, *op.options)]
    lines += [_row(o, "config.py") for o in SAMPLE_OPTIONS if o.cli]
    return lines


def ops_table() -> List[str]:
    lines = ["| op (code) | needs a partner | random streams | options | target rule |", "|---|---|---|---|---|"]
    for op in ops.REGISTRY:
        rule = op.target_rule
        options = ", ".join(f"`{o.flag}`" for o in op.options) or "-"
        streams = ", ".join(op.streams) or "-"
        lines.append(f"| {op.name} ({op.code}) | {'yes' if op.partner else 'no'} | {streams} | {options} | "
                     f"`{rule}` |")
    return lines


def chain_table() -> List[str]:
    lines = ["| step (in running order) | random stream | options |", "|---|---|---|"]
    for step in chain.REGISTRY:
        options = ", ".join(f"`{o.flag}`" for o in step.options) or "-"
        lines.append(f"| {step.name} | {step.stream} | {options} |")
    return lines


def formats_table() -> List[str]:
    lines = ["| format | shard 0 of 12 | a shard is |", "|---|---|---|"]
    for name in formats.NAMES:
        fmt = formats.get(name)
        lines.append(f"| {name} | `{fmt.shard_relpath(0, 12)}` | {'one file' if fmt.shard_kind == 'file' else 'a group of files'} |")
    return lines


def sources_table() -> List[str]:
    lines = ["| option | meaning |", "|---|---|"]
    lines += [f"| `--{name.replace('_', '-')}` | {SourceOptions.HELP[name]} |" for name in SourceOptions.names()]
    return lines


def page() -> str:
    parts = [HEADER, "## Bake options\n", *options_table(), "", "## Ops (the registry's order is the op code)\n",
             *ops_table(), "", "## Chain steps (before the op; see chain.md)\n", *chain_table(), "",
             "## Output formats\n", *formats_table(), "", "## Source options\n",
             *sources_table()]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(page(), end="")
