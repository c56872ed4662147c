"""Imported once before workers are forked (by the forkserver, or by the CLI itself): everything a
worker needs is loaded a single time instead of once per worker process."""
from . import formats, worker  # noqa: F401  (numpy, OpenCV, simplejpeg, pyarrow)

for _name in formats.NAMES:  # the format modules load on first use: load them here, once
    formats.get(_name)

# Not Image.init() (all of Pillow's format plugins: 0.1 s): JPEG and plain PNG never reach Pillow,
# and Image.open() loads the plugins itself in the worker that first needs them.
