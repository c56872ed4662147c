"""The command line: a thin layer over the Python API. Options -> BakeConfig -> mixbake.bake()."""
from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Optional

import click

from . import __version__
from .config import CUTOUT_FILLS, ERROR_POLICIES, IMAGE_FORMATS, OUTPUT_FORMATS, PAIRINGS, RESIZE_MODES
from .errors import MixbakeError

log = logging.getLogger("mixbake")

BAKE_EPILOG = """\b
Examples:
  mixbake bake demo out/
  mixbake bake ~/data/pets out/ --size 224 --mixup 0.5 --cutmix 0.5 --seed 7 --workers 8
  mixbake bake train.parquet out/ --label-column label --image-column image
  mixbake bake ~/data/pets out/ --cutout 1 --mixup 0 --cutmix 0 --cutout-fill noise --copies 3

\b
SOURCE is 'demo' (built-in generated shapes), an image folder laid out as
root/<class>/<image> (sub-folders inside a class are fine), or Parquet: a file,
a directory of *.parquet, or a glob ('data/*.parquet').
OUT receives data/train-XXXXX-of-YYYYY.parquet shards, labels.parquet (one row
per sample, no pixels) and manifest.json (written last). Re-running the same
command resumes an interrupted build, or does nothing if it is finished.
"""


class _Ratio(click.ParamType):
    name = "SHARE"

    def convert(self, value, param, ctx):
        try:
            return float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)


def _choice(values):
    return click.Choice(list(values), case_sensitive=False)


class Interrupted(click.ClickException):
    exit_code = 130


def friendly_errors(f):
    """MixbakeError (or an OSError) -> one clear sentence and exit 1; Ctrl-C -> a resumable stop,
    exit 130."""
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except MixbakeError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # the machine said no (not a directory, disk full, permission): say where
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}.") from None
        except KeyboardInterrupt:
            raise Interrupted("Interrupted: finished shards are kept; re-run the same command to resume.") from None
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="mixbake")
def cli():
    """mixbake bakes mixup / cutmix / cutout augmented image datasets with soft labels ahead of
    training, into Parquet shards any framework can read. Same inputs + same seed => same bytes."""


def clean_options(options: dict) -> dict:
    """Click's spelling of the dataset options -> BakeConfig fields."""
    options = dict(options)
    options["cutmix_minmax"] = options.get("cutmix_minmax") or None
    if options.get("max_pixels") is None:
        options.pop("max_pixels", None)
    return options


def bake_options(f):
    """The options that decide the dataset (they go into BakeConfig and the manifest)."""
    options = [
        click.option("--size", default="224", show_default=True, metavar="N|WxH",
                     help="Output image size: N for NxN, or WIDTHxHEIGHT."),
        click.option("--resize", type=_choice(RESIZE_MODES), default="crop", show_default=True,
                     help="Fit to --size: centre-crop to cover, pad (black) to fit, or stretch."),
        click.option("--format", "format", type=_choice(OUTPUT_FORMATS), default="parquet", show_default=True,
                     help="parquet: data/train-*.parquet shards (HF datasets, DuckDB, Polars, Arrow); "
                          "webdataset: train-*.tar; folder: images/<class>/<key>.<ext> + labels.csv."),
        click.option("--image-format", type=_choice(IMAGE_FORMATS), default="jpeg", show_default=True,
                     help="Encoding of output images; raw = uint8 HxWx3 bytes (+height/width/channels)."),
        click.option("--quality", type=click.IntRange(1, 100), default=90, show_default=True,
                     help="JPEG/WebP quality."),
        click.option("--mixup", type=_Ratio(), default=0.5, show_default=True,
                     help="Share of outputs made by mixup (shares are normalised)."),
        click.option("--cutmix", type=_Ratio(), default=0.5, show_default=True, help="Share made by cutmix."),
        click.option("--cutout", type=_Ratio(), default=0.0, show_default=True, help="Share made by cutout."),
        click.option("--none", "none", type=_Ratio(), default=0.0, show_default=True,
                     help="Share left unaugmented (resized only)."),
        click.option("--mixup-alpha", type=float, default=0.8, show_default=True,
                     help="mixup lam ~ Beta(a, a); small a: lam near 0 or 1, large a: strong mixing."),
        click.option("--cutmix-alpha", type=float, default=1.0, show_default=True,
                     help="cutmix box area ~ (1 - lam), lam ~ Beta(a, a). The label weight is the pasted "
                          "pixel area after clipping."),
        click.option("--cutmix-minmax", type=float, nargs=2, default=None, metavar="LO HI",
                     help="Instead of alpha: box sides uniform in [LO, HI] x image side."),
        click.option("--cutout-size", type=float, default=0.5, show_default=True,
                     help="Cutout hole side as a fraction of the image side."),
        click.option("--cutout-holes", type=int, default=1, show_default=True, help="Holes per cutout sample."),
        click.option("--cutout-fill", type=_choice(CUTOUT_FILLS), default="zero", show_default=True,
                     help="Fill holes with zeros, the image's mean colour, or seeded noise."),
        click.option("--label-smoothing", type=float, default=0.0, show_default=True, metavar="EPS",
                     help="Soft labels become y*(1-EPS) + EPS/K, applied exactly once."),
        click.option("--copies", type=int, default=1, show_default=True,
                     help="Augmented outputs per source item."),
        click.option("--keep-originals", is_flag=True, help="Also write each source item unaugmented."),
        click.option("--pairing", type=_choice(PAIRINGS), default="random", show_default=True,
                     help="Partner choice (never the item itself); cross-class: a partner of another class."),
        click.option("--shard-size", type=int, default=500, show_default=True,
                     help="Rows per shard (about)."),
        click.option("--pool-size", type=click.IntRange(2, 1_000_000), default=None, metavar="ITEMS",
                     help="Source items decoded together; partners are drawn inside a pool, which a worker "
                          "holds decoded: memory per worker ~ 150 MB + pool size x output pixels x 3 bytes "
                          "[default: the items of one shard, shard size / (1 + keep-originals)]."),
        click.option("--copies-per-pass", type=click.IntRange(1, 1000), default=None, metavar="K",
                     help="With --copies > 1: copies made from one decode of a pool. Each pass re-shuffles "
                          "the source into new pools, so an item meets partners from all over the dataset "
                          "across passes; larger K decodes less [default: 4, or every copy at once when "
                          "the source fits one pool]."),
        click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
                     help="Everything random flows from this seed."),
        click.option("--max-pixels", type=int, default=None,
                     help="Refuse images with more pixels than this (decompression-bomb guard; "
                          "default 89478485)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def warn_no_effect(ctx, config) -> None:
    """Options given on the command line that this config never uses: said, not silently kept."""
    given = {name for name in ctx.params
             if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    cutmix_off = "--cutmix 0" if config.cutmix == 0 else None
    unused = {  # option -> why it does nothing here (None: it does something)
        "mixup_alpha": "--mixup 0" if config.mixup == 0 else None,
        "cutmix_alpha": cutmix_off or ("--cutmix-minmax" if config.cutmix_minmax is not None else None),
        "cutmix_minmax": cutmix_off,
        **dict.fromkeys(("cutout_size", "cutout_holes", "cutout_fill"),
                        "--cutout 0" if config.cutout == 0 else None),
        "quality": f"--image-format {config.image_format}" if config.image_format in ("png", "raw") else None,
    }
    for name, why in unused.items():
        if why and name in given:
            log.warning("--%s has no effect with %s (it is still part of the build's config)",
                        name.replace("_", "-"), why)


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
    ctx.default_map = {**(ctx.default_map or {}), **recipe}
    return value


recipe_option = click.option(
    "--recipe", type=click.Path(dir_okay=False), is_eager=True, expose_value=False, callback=_load_recipe,
    help="A TOML file holding bake options (and optionally the source); flags given here override it.")


def recipe_format(ctx) -> Optional[int]:
    """The format version a --from-manifest build (or a recipe) follows: its pairing rules."""
    return ctx.meta.get("recipe", {}).get("format_version")


def _recipe_source(ctx, given: Optional[str], what: str = "SOURCE") -> str:
    """SOURCE as given, else the one the --recipe names."""
    source = given or ctx.meta.get("recipe", {}).get("source")
    if source is None:
        raise click.UsageError(f"expected {what} (or a --recipe that names the source).", ctx=ctx)
    return source


def _source_and_out(ctx, paths):
    recipe_source = ctx.meta.get("recipe", {}).get("source")
    if len(paths) == 2:
        return paths
    if len(paths) == 1 and recipe_source is not None:
        return recipe_source, paths[0]
    raise click.UsageError("expected SOURCE OUT (or OUT alone with a --recipe/--from-manifest that names "
                           "the source).", ctx=ctx)


@cli.command(epilog=BAKE_EPILOG)
@click.argument("paths", nargs=-1, metavar="SOURCE OUT")
@recipe_option
@click.option("--from-manifest", type=click.Path(), is_eager=True, callback=_load_recipe,
              help="Rebuild a finished build bit for bit from its manifest.json: "
                   "mixbake bake --from-manifest OLD/manifest.json NEW_OUT. Options given here "
                   "override the manifest's (then it is another build).")
@click.option("--image-column", default=None, help="Parquet: the image column (struct<bytes, path> or binary).")
@click.option("--label-column", default=None, help="Parquet: the label column (int class index or string name).")
@bake_options
@click.option("--workers", "-w", type=click.IntRange(1, 512), default=None,
              help="Worker processes [default: all cores]. Does not change the output.")
@click.option("--on-error", type=_choice(ERROR_POLICIES), default="fail", show_default=True,
              help="Bad input item: stop naming it, or skip it (listed in OUT/errors.jsonl, counted in "
                   "the manifest).")
@click.option("--executor", type=_choice(("local", "dask")), default="local", show_default=True,
              help="Run shard tasks in a local process pool, or on Dask (a LocalCluster of --workers "
                   "processes unless --scheduler is given; pip install 'mixbake[dask]'). Same bytes either way.")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Address of a running Dask scheduler (implies --executor dask).")
@click.option("--overwrite", is_flag=True, help="Replace a different build in OUT (removes only mixbake's files).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
@friendly_errors
def bake(ctx, paths, from_manifest, image_column, label_column, workers, overwrite, quiet, on_error,
         executor, scheduler, **options):
    """Bake SOURCE into augmented shards + label manifest in OUT."""
    from .config import BakeConfig
    from .executors import ExecutorSpec, Session, default_workers

    source, out = _source_and_out(ctx, paths)
    if scheduler and ctx.get_parameter_source("executor") == click.core.ParameterSource.COMMANDLINE \
            and executor == "local":
        raise click.UsageError("--scheduler runs on Dask; it cannot go with --executor local.", ctx=ctx)
    config = BakeConfig(**clean_options(options), format_version=recipe_format(ctx))  # fails before any process
    warn_no_effect(ctx, config)
    expect = ctx.meta.get("recipe", {}).get("expect_fingerprint") if from_manifest else None
    spec = ExecutorSpec(kind=executor, workers=workers or default_workers(), scheduler=scheduler)
    from .executors import can_fork_now
    if can_fork_now():
        # Fastest: import the pipeline, then fork the workers (they inherit it) before touching data.
        from . import _preload  # noqa: F401  (imports everything the workers will inherit)
        from .run import bake as run_bake
        session = Session(spec, fork=True)
    else:
        # Else start a forkserver first: its start-up overlaps the heavy imports just below.
        session = Session(spec)
        try:
            from .run import bake as run_bake
        except BaseException:
            session.close(failed=True)
            raise
    summary = run_bake(source, out, quiet=quiet, overwrite=overwrite, on_error=on_error,
                       image_column=image_column, label_column=label_column, expect_fingerprint=expect,
                       session=session, config=config)
    click.echo(summary.line())


@cli.command("plan")
@click.argument("source", required=False)
@recipe_option
@click.option("--image-column", default=None, help="Parquet: the image column.")
@click.option("--label-column", default=None, help="Parquet: the label column.")
@bake_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan summary as JSON.")
@click.pass_context
@friendly_errors
def plan_command(ctx, source, image_column, label_column, as_json, **options):
    """Show what `mixbake bake SOURCE ...` would produce, without decoding anything: samples and
    shards, counts per op, classes, estimated size. Takes the same options as bake.

    \b
    Example:
      mixbake plan ~/data/pets --size 224 --cutout 0.2 --copies 2
    """
    import json

    from .dryrun import format_plan, plan_summary

    summary = plan_summary(_recipe_source(ctx, source), image_column, label_column, **clean_options(options),
                           format_version=recipe_format(ctx))
    for warning in summary["warnings"]:
        log.warning(warning)
    click.echo(json.dumps(summary, indent=2) if as_json else format_plan(summary))


@cli.command()
@click.argument("out")
@click.option("--deep", is_flag=True, help="Also list the source again, re-plan every shard and check "
                                           "each row's provenance (op, sources, lam, boxes).")
@friendly_errors
def verify(out, deep):
    """Check a finished build in OUT against its manifest.json.

    Recomputes the sha256, size and row count of every listed file (shards and labels.parquet) and
    checks the label invariants of every row: soft labels sum to 1 and equal
    lam*onehot(a) + (1-lam)*onehot(b) (then smoothed), label == argmax, lam in [0, 1], boxes inside
    the image, cutmix lam == 1 - box area / image area, unique keys, totals per op.
    Exit 0 when all hold; 1 with the list of problems otherwise.
    """
    from .verify import verify as run_verify

    problems = run_verify(out, deep=deep)
    if problems:
        for problem in problems[:200]:
            click.echo(problem, err=True)
        more = " (first 200 shown)" if len(problems) > 200 else ""
        raise click.ClickException(f"{out}: {len(problems)} problem(s) found{more}.")
    click.echo(f"{out}: OK ({'deep: provenance re-planned, ' if deep else ''}all files and rows check out).")


@cli.command("preview")
@click.argument("source_or_out", metavar="SOURCE|OUT", required=False)
@recipe_option
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The PNG to write.")
@click.option("-n", "--samples", "n", type=click.IntRange(1, 1024), default=16, show_default=True,
              help="Samples to show.")
@click.option("--boxes/--no-boxes", default=True, show_default=True,
              help="Outline the cutmix box and cutout holes on each tile.")
@click.option("--tile", type=click.IntRange(16, 4096), default=192, show_default=True,
              help="Long side of a tile in pixels (small images are enlarged by a whole factor).")
@click.option("--columns", type=click.IntRange(1, 256), default=None, help="Tiles per row [default: a square grid].")
@click.option("--image-column", default=None, help="Parquet SOURCE: the image column.")
@click.option("--label-column", default=None, help="Parquet SOURCE: the label column.")
@bake_options
@click.pass_context
@friendly_errors
def preview_command(ctx, source_or_out, output, n, boxes, tile, columns, image_column, label_column, **options):
    """Draw a contact sheet PNG of samples, each captioned with its op, lam and soft label.

    For an OUT (a directory with manifest.json) the samples are read back from the build: the first
    N rows, or N rows drawn with --seed. For a SOURCE, the first N samples that `mixbake bake SOURCE`
    with the same options would write are rendered in memory; nothing is written but the PNG.

    \b
    Examples:
      mixbake preview demo -o grid.png --size 128 --cutout 0.3
      mixbake preview out/ -o grid.png -n 36 --seed 1
    """
    from .preview import is_out, preview_sheet

    source_or_out = _recipe_source(ctx, source_or_out, "SOURCE or OUT")
    if not output.lower().endswith(".png"):
        raise click.BadParameter(f"the sheet is a PNG: name it *.png, not {output!r}.", ctx=ctx,
                                 param_hint="'-o' / '--output'")
    explicit = {name for name in list(options) + ["image_column", "label_column"]
                if ctx.get_parameter_source(name) in (click.core.ParameterSource.COMMANDLINE,
                                                      click.core.ParameterSource.ENVIRONMENT)}
    if is_out(source_or_out):
        seed = options["seed"] if "seed" in explicit else None
        given = {name: True for name in explicit - {"seed"}}
        sheet = preview_sheet(source_or_out, n, seed, boxes=boxes, tile=tile, columns=columns, **given)
    else:
        options = dict(clean_options(options), format_version=recipe_format(ctx))
        sheet = preview_sheet(source_or_out, n, options.pop("seed"), boxes=boxes, tile=tile, columns=columns,
                              image_column=image_column, label_column=label_column, **options)
    try:
        sheet.image.save(output, format="PNG")
    except OSError as exc:
        raise click.ClickException(f"Cannot write {output}: {exc.strerror or exc}.") from None
    for bad in sheet.skipped[:5]:
        log.warning("bad item left out of the preview (a bake stops on it unless --on-error skip): %s", bad)
    if len(sheet.skipped) > 5:
        log.warning("... and %d more bad items", len(sheet.skipped) - 5)
    layout = sheet.layout
    click.echo(f"Wrote {output}: {len(sheet.samples)} samples in {layout.columns}x{layout.rows} tiles, "
               f"{layout.width}x{layout.height} px.")


@cli.command("inspect")
@click.argument("out", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as a JSON object.")
@friendly_errors
def inspect_command(out, as_json):
    """Summarise the finished build in OUT: rows, shards, size, counts per op, lam histograms,
    soft-label mass per class, skipped items, config. Reads only manifest.json and labels.parquet."""
    import json

    from .inspect import format_inspect, inspect

    info = inspect(out)
    click.echo(json.dumps(info, indent=2, ensure_ascii=False) if as_json else format_inspect(info))


def main(argv=None):
    """The ``mixbake`` command. Run as the process itself (``argv`` None), it ends with
    ``os._exit`` once its output is flushed: by then every file is closed and every worker joined,
    and tearing down numpy/OpenCV/pyarrow would cost another 0.1-0.15 s per command."""
    logging.basicConfig(level=logging.WARNING, format="mixbake: %(message)s")
    if argv is not None:
        return cli.main(args=argv, prog_name="mixbake")
    try:
        cli.main(prog_name="mixbake")
        code = 0
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):  # sys.exit("message")
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # e.g. stdout was a closed pipe
        code = code or 1
    os._exit(code or 0)
