"""mixbake: bake mixup / cutmix / cutout augmented image datasets ahead of training, reproducibly.

Library API (mirrors the CLI)::

    import mixbake
    summary = mixbake.bake("demo", "out/", mixup=0.5, cutmix=0.5, seed=7, workers=2)
    print(summary.line())
"""
__version__ = "0.1.0"

from .config import BakeConfig  # noqa: E402
from .errors import ItemError, MixbakeError  # noqa: E402
from .ops import cutmix, cutmix_boxes, cutmix_lam, cutout, mixup, soft_label  # noqa: E402
from .run import BakeSummary, bake  # noqa: E402

__all__ = [
    "__version__", "bake", "BakeConfig", "BakeSummary", "MixbakeError", "ItemError",
    "mixup", "cutmix", "cutout", "cutmix_boxes", "cutmix_lam", "soft_label",
]
