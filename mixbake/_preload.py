"""Imported once before workers are forked (by the forkserver, or by the CLI itself): everything a
worker needs is loaded a single time instead of once per worker process."""
from PIL import Image

from . import worker  # noqa: F401  (numpy, OpenCV, simplejpeg, pyarrow)
from .writers import folder, parquet, webdataset  # noqa: F401

Image.init()  # Pillow's format plugins
