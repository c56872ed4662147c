"""CutMix (Yun et al. 2019): a box of area ~(1-lam) from b is pasted into a. The label weight of a
is the pixel area actually kept after clipping, ``1 - box_area / (H*W)``, never the sampled lam;
a box clipped to nothing is an identity (lam 1, no box)."""
from __future__ import annotations

import numpy as np

from ..options import Option, beta_alpha, share
from .boxes import box_area, clip_box, cutmix_boxes, cutmix_lam
from . import Op

TOLERANCE = 1e-5


def cutmix(image_a: np.ndarray, image_b: np.ndarray, box) -> np.ndarray:
    """Paste ``image_b[box]`` into a copy of ``image_a`` (the box clipped to the image)."""
    x0, y0, x1, y1 = clip_box(box, image_a.shape)
    out = image_a.copy()
    out[y0:y1, x0:x1] = image_b[y0:y1, x0:x1]
    return out


MINMAX = Option("cutmix_minmax", None, "pair", "Instead of alpha: box sides uniform in [LO, HI] x image side.",
                metavar="LO HI", check=lambda v: 0 < v[0] <= v[1] <= 1,
                problem="{flag} needs 0 < LO <= HI <= 1, got {value[0]} {value[1]}.")


class Cutmix(Op):
    name = "cutmix"
    share = share("cutmix", 0.5, "Share made by cutmix.")
    options = (beta_alpha("cutmix_alpha", 1.0, "cutmix box area ~ (1 - lam), lam ~ Beta(a, a). The label "
                                               "weight is the pasted pixel area after clipping."),
               MINMAX)
    target_rule = "paste"
    streams = ("cutmix", "box")
    partner = True
    varies_lam = True
    color = (253, 214, 99)

    def inert(self, config):
        if config.cutmix == 0:
            return {"cutmix_alpha": "--cutmix 0", "cutmix_minmax": "--cutmix 0"}
        return {"cutmix_alpha": "--cutmix-minmax"} if config.cutmix_minmax is not None else {}

    def sample(self, config, streams, rows, height, width):
        lam = streams["cutmix"].beta(config.cutmix_alpha, config.cutmix_alpha, size=rows)
        centres = streams["box"].integers(0, [height, width], size=(rows, 2))
        side_fracs = streams["box"].random((rows, 2))
        return {"boxes": cutmix_boxes(lam, centres[:, 0], centres[:, 1], height, width, config.cutmix_minmax,
                                      side_fracs)}

    def resolve(self, config, draws, rows, plan):
        width, height = config.size
        boxes = draws["boxes"]
        pasted = rows[box_area(boxes[rows]) > 0]
        plan.lam[pasted] = cutmix_lam(boxes[pasted], height, width)
        for r in pasted.tolist():
            plan.boxes[r] = boxes[r:r + 1]

    def render(self, config, image_a, image_b, lam, boxes, fill_seed):
        return cutmix(image_a, image_b, boxes[0] if len(boxes) else (0, 0, 0, 0))


    def check_rows(self, lam, first_box, has_box, width, height):
        x0, y0, x1, y1 = first_box.T
        kept = 1.0 - (x1 - x0) * (y1 - y0) / float(width * height)
        wrong = has_box & (np.abs(kept - lam) > TOLERANCE)
        return [(int(r), "cutmix lam is not 1 - pasted box area / image area") for r in np.flatnonzero(wrong)]

    def caption(self, row):
        return f"  lam {row['lam']:.2f}"

    def outline(self, row):
        return row["boxes"]


OP = Cutmix()
