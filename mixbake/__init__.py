"""mixbake: bake mixup / cutmix / cutout augmented image datasets ahead of training, reproducibly.

Library API (mirrors the CLI)::

    import mixbake
    summary = mixbake.bake("demo", "out/", mixup=0.5, cutmix=0.5, seed=7, workers=2)
    print(summary.line())
"""
__version__ = "0.2.0"

_EXPORTS = {
    "bake": "run", "BakeSummary": "run", "BakeConfig": "config", "MixbakeError": "errors",
    "ItemError": "errors", "SourceOptions": "sources", "mixup": "ops.mixup", "cutmix": "ops.cutmix",
    "cutout": "ops.cutout", "cutmix_boxes": "ops.boxes", "cutmix_lam": "ops.boxes",
    "soft_label": "targets.classes",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    """Lazy exports: `import mixbake` (and the CLI) stay light until the pipeline is needed."""
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'mixbake' has no attribute {name!r}")
