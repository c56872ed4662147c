"""The command line's options, generated from the declarations (``config.all_options()``, each op's,
``sources.SourceOptions``), and declared once for every command that takes them."""
from __future__ import annotations

from typing import Optional

import click

from .config import all_options
from .errors import MixbakeError
from .options import Option
from .sources import SourceOptions


class _Ratio(click.ParamType):
    name = "SHARE"

    def convert(self, value, param, ctx):
        try:
            return float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)


def choice(values):
    return click.Choice(list(values), case_sensitive=False)


def _click_option(option: Option):
    """One bake option as a click option: the same name, default and help as the declaration."""
    kw = dict(default=option.default, show_default=option.default is not None, help=option.help,
              metavar=option.metavar)
    if option.kind == "share":
        kw["type"] = _Ratio()
    elif option.kind == "float":
        kw["type"] = float
    elif option.kind == "int":
        kw["type"] = click.IntRange(option.lo, option.hi) if option.lo is not None else int
    elif option.kind == "seed":
        kw["type"] = click.IntRange(0, 2**63 - 1)
    elif option.kind == "choice":
        kw["type"] = choice(option.choices)
    elif option.kind == "pair":
        kw.update(type=float, nargs=option.nargs)
    elif option.kind == "flag":
        kw = dict(is_flag=True, help=option.help)
    elif option.kind == "size":
        kw["default"] = "x".join(map(str, option.default)) if option.default[0] != option.default[1] \
            else str(option.default[0])
    return click.option(option.flag, option.name, **kw)


def bake_options(f):
    """The options that decide the dataset (they go into BakeConfig and the manifest)."""
    for option in reversed([o for o in all_options() if o.cli]):
        f = _click_option(option)(f)
    return f


def source_options(f):
    """How to read the source (sources.SourceOptions)."""
    for name in reversed(SourceOptions.names()):
        f = click.option("--" + name.replace("_", "-"), name, default=None, help=SourceOptions.HELP[name],
                         metavar=SourceOptions.METAVARS.get(name, "TEXT"))(f)
    return f


def take_source_options(options: dict) -> SourceOptions:
    return SourceOptions.take(options)


def clean_options(options: dict) -> dict:
    """Click's spelling of the dataset options -> BakeConfig fields."""
    options = dict(options)
    options["cutmix_minmax"] = options.get("cutmix_minmax") or None
    return options


def explicit(ctx, names) -> set:
    """The options given on the command line (or in the environment), not left at a default."""
    from click.core import ParameterSource
    return {name for name in names
            if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)}


def _load_recipe(ctx, param, value):
    """Eager: a recipe becomes the defaults of every other option, so flags still override it."""
    if value is None:
        return None
    from .recipe import load_recipe, manifest_recipe
    try:
        recipe = manifest_recipe(value) if param.name == "from_manifest" else load_recipe(value)
    except MixbakeError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    ctx.meta.setdefault("recipe", {}).update(recipe)
    _refresh_defaults(ctx)
    return value


def _load_preset(ctx, param, value):
    """Eager: a preset's values become defaults under any recipe's (whatever the order given)."""
    if value is None:
        return None
    from .presets import preset
    try:
        ctx.meta["preset"] = preset(value)
    except MixbakeError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    _refresh_defaults(ctx)
    return value


def _refresh_defaults(ctx) -> None:
    ctx.default_map = {**ctx.meta.get("preset", {}), **ctx.meta.get("recipe", {})}


recipe_option = click.option(
    "--recipe", type=click.Path(dir_okay=False), is_eager=True, expose_value=False, callback=_load_recipe,
    help="A TOML file holding bake options (and optionally the source); flags given here override it.")

preset_option = click.option(
    "--preset", is_eager=True, expose_value=False, callback=_load_preset, metavar="NAME",
    help="Start from a published recipe's options (deit: DeiT's RandomResizedCrop, hflip, RandAugment 2/9, "
         "mixup 0.8 / cutmix 1.0 50/50, erase 0.25, smoothing 0.1; see docs/chain.md); flags and --recipe keys "
         "override it.")

from_manifest_option = click.option(
    "--from-manifest", type=click.Path(), is_eager=True, callback=_load_recipe,
    help="Rebuild a finished build bit for bit from its manifest.json: "
         "mixbake bake --from-manifest OLD/manifest.json NEW_OUT. Options given here "
         "override the manifest's (then it is another build).")


def recipe_format(ctx) -> Optional[int]:
    """The format version a --from-manifest build (or a recipe) follows: its pairing rules."""
    return ctx.meta.get("recipe", {}).get("format_version")


def recipe_source(ctx, given: Optional[str], what: str = "SOURCE") -> str:
    """SOURCE as given, else the one the --recipe names."""
    source = given or ctx.meta.get("recipe", {}).get("source")
    if source is None:
        raise click.UsageError(f"expected {what} (or a --recipe that names the source).", ctx=ctx)
    return source


def source_and_out(ctx, paths):
    recipe_source_ = ctx.meta.get("recipe", {}).get("source")
    if len(paths) == 2:
        return paths
    if len(paths) == 1 and recipe_source_ is not None:
        return recipe_source_, paths[0]
    raise click.UsageError("expected SOURCE OUT (or OUT alone with a --recipe/--from-manifest that names "
                           "the source).", ctx=ctx)
