"""The command line: a thin layer over the Python API. Options -> BakeConfig -> mixbake.bake()."""
from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Optional

import click

from . import __version__
from .cli_options import (bake_options, choice, clean_options, explicit, from_manifest_option, preset_option,
                          recipe_format, recipe_option, recipe_source, source_and_out, source_options)
from .config import ERROR_POLICIES
from .errors import MixbakeError, OptionsConflict

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


class Interrupted(click.ClickException):
    exit_code = 130


def friendly_errors(f):
    """MixbakeError (or an OSError) -> one clear sentence and exit 1; Ctrl-C -> a resumable stop,
    exit 130."""
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except OptionsConflict as exc:
            raise click.UsageError(str(exc)) from None
        except MixbakeError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # the machine said no (not a directory, disk full, permission): say where
            from .store.arrowfs import unreachable
            lost = unreachable(exc)  # an object store that did not answer: name the object
            if lost is not None:
                raise click.ClickException(str(lost)) from None
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


@cli.command(epilog=BAKE_EPILOG)
@click.argument("paths", nargs=-1, metavar="SOURCE OUT")
@recipe_option
@preset_option
@from_manifest_option
@source_options
@bake_options
@click.option("--workers", "-w", type=click.IntRange(1, 512), default=None,
              help="Worker processes [default: all cores]. Does not change the output.")
@click.option("--on-error", type=choice(ERROR_POLICIES), default="fail", show_default=True,
              help="Bad input item: stop naming it, or skip it (listed in OUT/errors.jsonl, counted in "
                   "the manifest).")
@click.option("--executor", type=choice(("local", "dask")), default=None,
              help="Run shard tasks in a local process pool, or on Dask (a LocalCluster of --workers "
                   "processes unless --scheduler is given; pip install 'mixbake[dask]'). Same bytes either "
                   "way. [default: local; dask with --scheduler]")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Address of a running Dask scheduler (implies --executor dask).")
@click.option("--overwrite", is_flag=True, help="Replace a different build in OUT (removes only mixbake's files).")
@click.option("--wait", is_flag=True, help="If another bake is running into OUT, wait for it to end (and then "
                                           "resume or reuse what it made) instead of refusing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
@friendly_errors
def bake(ctx, paths, from_manifest, workers, overwrite, wait, quiet, on_error, executor, scheduler, **options):
    """Bake SOURCE into augmented shards + label manifest in OUT."""
    from .config import BakeConfig
    from .executors import execution_spec
    from .sources import SourceOptions

    source, out = source_and_out(ctx, paths)
    spec = execution_spec(on_error, executor, scheduler, workers)  # bad options fail before any process
    given = explicit(ctx, options)
    sources = SourceOptions.take(options)
    config = BakeConfig(**clean_options(options), format_version=recipe_format(ctx))
    expect = ctx.meta.get("recipe", {}).get("expect_fingerprint") if from_manifest else None
    session, run_bake = _start_session(spec)
    summary = run_bake(source, out, quiet=quiet, overwrite=overwrite, wait=wait, on_error=on_error,
                       expect_fingerprint=expect,
                       session=session, config=config, explicit=given, source_options=sources,
                       executor=executor, scheduler=scheduler, workers=workers)
    click.echo(summary.line())


def _start_session(spec):
    """The workers, started as early as possible; and the pipeline's entry point."""
    from .executors import Session, can_fork_now
    if can_fork_now():
        # Fastest: import the pipeline, then fork the workers (they inherit it) before touching data.
        from . import forkserver_preload  # noqa: F401  (imports everything the workers will inherit)
        from .run import bake as run_bake
        return Session(spec, fork=True), run_bake
    # Else start a forkserver first: its start-up overlaps the heavy imports just below.
    session = Session(spec)
    try:
        from .run import bake as run_bake
    except BaseException:
        session.close(failed=True)
        raise
    return session, run_bake


@cli.command("plan")
@click.argument("source", required=False)
@recipe_option
@preset_option
@source_options
@bake_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan summary as JSON.")
@click.pass_context
@friendly_errors
def plan_command(ctx, source, as_json, **options):
    """Show what `mixbake bake SOURCE ...` would produce, without decoding anything: samples and
    shards, counts per op, classes, pairing (partners per item), estimated size. Takes the same
    options as bake.

    \b
    Example:
      mixbake plan ~/data/pets --size 224 --cutout 0.2 --copies 2
    """
    import json

    from .config import BakeConfig, warn_inert
    from .plan_summary import format_plan, plan_summary
    from .sources import SourceOptions

    given = explicit(ctx, options)
    sources = SourceOptions.take(options)
    options = dict(clean_options(options), format_version=recipe_format(ctx))
    warn_inert(BakeConfig(**options), given)
    summary = plan_summary(recipe_source(ctx, source), sources, **options)
    for warning in summary["warnings"]:
        log.warning(warning)
    click.echo(json.dumps(summary, indent=2) if as_json else format_plan(summary))


@cli.command()
@click.argument("out")
@click.option("--deep", is_flag=True, help="Also list the source again, re-plan every pool and check "
                                           "each row's provenance (op, sources, lam, boxes).")
@click.option("--workers", "-w", type=click.IntRange(1, 512), default=None,
              help="Processes checking shards in parallel [default: all cores; a build of a few shards is "
                   "checked in this process].")
@click.option("--executor", type=choice(("local", "dask")), default=None,
              help="Check the shards in a local process pool, or on Dask, where the data is.")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Address of a running Dask scheduler (implies --executor dask).")
@friendly_errors
def verify(out, deep, workers, executor, scheduler):
    """Check a finished build in OUT against its manifest.json.

    Checks the manifest against itself (its build id is the hash of what it records), recomputes
    the sha256, size and row count of every listed file (shards and labels.parquet), the class
    names in every footer, and the label invariants of every row: soft labels sum to 1 and equal
    lam*onehot(a) + (1-lam)*onehot(b) (then smoothed), label == argmax, lam in [0, 1], boxes inside
    the image, cutmix lam == 1 - box area / image area, unique keys, totals per op, every source item
    accounted for. Shards are checked in parallel. Exit 0 when all hold; 1 with the list of
    problems otherwise.
    """
    from .store import redact
    from .verify import verify as run_verify

    problems = run_verify(out, deep=deep, workers=workers, executor=executor, scheduler=scheduler)
    out = redact(out)  # (as every message shows a location: without credentials)
    if problems:
        for problem in problems[:200]:
            click.echo(problem, err=True)
        more = " (first 200 shown)" if len(problems) > 200 else ""
        raise click.ClickException(f"{out}: {len(problems)} problem(s) found{more}.")
    click.echo(f"{out}: OK ({'deep: provenance re-planned, ' if deep else ''}all files and rows check out).")


@cli.command("preview")
@click.argument("source_or_out", metavar="SOURCE|OUT", required=False)
@recipe_option
@preset_option
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The PNG to write.")
@click.option("-n", "--samples", "n", type=click.IntRange(1, 1024), default=16, show_default=True,
              help="Samples to show.")
@click.option("--boxes/--no-boxes", default=True, show_default=True,
              help="Outline the cutmix box and cutout holes on each tile.")
@click.option("--tile", type=click.IntRange(16, 4096), default=192, show_default=True,
              help="Long side of a tile in pixels (small images are enlarged by a whole factor).")
@click.option("--columns", type=click.IntRange(1, 256), default=None, help="Tiles per row [default: a square grid].")
@source_options
@bake_options
@click.pass_context
@friendly_errors
def preview_command(ctx, source_or_out, output, n, boxes, tile, columns, **options):
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

    source_or_out = recipe_source(ctx, source_or_out, "SOURCE or OUT")
    if not output.lower().endswith(".png"):
        raise click.BadParameter(f"the sheet is a PNG: name it *.png, not {output!r}.", ctx=ctx,
                                 param_hint="'-o' / '--output'")
    given = explicit(ctx, options)
    if is_out(source_or_out):
        seed = options["seed"] if "seed" in given else None
        sheet = preview_sheet(source_or_out, n, seed, boxes=boxes, tile=tile, columns=columns,
                              **{name: True for name in given - {"seed"}})
    else:
        options = dict(clean_options(options), format_version=recipe_format(ctx))
        sheet = preview_sheet(source_or_out, n, options.pop("seed"), boxes=boxes, tile=tile, columns=columns,
                              **options)
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

    from .report import format_inspect, inspect

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
