"""mixup (Zhang et al. 2018): ``x = lam*a + (1-lam)*b``, ``lam ~ Beta(alpha, alpha)``; the targets
are blended with the same lam."""
from __future__ import annotations

import numpy as np

from ..options import beta_alpha, share
from . import Op


def mixup(image_a: np.ndarray, image_b: np.ndarray, lam: float) -> np.ndarray:
    """Rounded blend ``lam*a + (1-lam)*b`` (never truncated), as OpenCV's ``addWeighted`` computes it:
    in float32, so where the exact value is within float32 error of a .5 the result can differ by 1
    from float64 rounding (e.g. ``lam=0.1`` of 1 and 6 gives 5)."""
    import cv2
    return cv2.addWeighted(image_a, float(lam), image_b, 1.0 - float(lam), 0.0)


class Mixup(Op):
    name = "mixup"
    share = share("mixup", 0.5, "Share of outputs made by mixup (shares are normalised).")
    options = (beta_alpha("mixup_alpha", 0.8, "mixup lam ~ Beta(a, a); small a: lam near 0 or 1, large a: "
                                             "strong mixing."),)
    target_rule = "blend"
    streams = ("mixup",)
    partner = True
    varies_lam = True
    color = (138, 180, 248)

    def sample(self, config, streams, rows, height, width):
        return {"lam": streams["mixup"].beta(config.mixup_alpha, config.mixup_alpha, size=rows)}

    def resolve(self, config, draws, rows, plan):
        plan.lam[rows] = draws["lam"][rows]

    def render(self, config, image_a, image_b, lam, boxes, fill_seed):
        return mixup(image_a, image_b, lam)


    def caption(self, row):
        return f"  lam {row['lam']:.2f}"


OP = Mixup()
