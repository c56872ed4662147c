"""Imported once by the forkserver, before it forks workers: everything a worker needs is loaded
(and Pillow's format plugins registered) a single time instead of once per worker process."""
from PIL import Image

from . import worker  # noqa: F401  (numpy, OpenCV, simplejpeg, pyarrow)
from .writers import folder, parquet, webdataset  # noqa: F401

Image.init()
