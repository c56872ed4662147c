"""none: the source resized only (and the --keep-originals rows); the target is the source's."""
from __future__ import annotations

from ..options import share
from . import Op


class Nothing(Op):
    name = "none"
    share = share("none", 0.0, "Share left unaugmented (resized only).")


OP = Nothing()
