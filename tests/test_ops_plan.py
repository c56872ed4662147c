"""The pure maths (mixbake.ops) and the plan (mixbake.plan): no bake, no files.

Sizes are non-square (width != height) on purpose, so a width/height mix-up fails somewhere.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mixbake.config import BakeConfig
from mixbake.ops import NAMES as OPS
from mixbake.ops.boxes import box_area, cutmix_boxes, cutmix_lam
from mixbake.ops.cutmix import cutmix
from mixbake.ops.cutout import cutout
from mixbake.ops.mixup import mixup
from mixbake.targets.classes import soft_label, soft_labels
from mixbake.plan import CUTMIX, CUTOUT, MIXUP, NONE, ORIGINAL, make_pools, plan_shard, pool_target
from helpers import single_item_bounds

W, H = 20, 12  # output width, height used by the plan tests


def cfg(**kw) -> BakeConfig:
    base = dict(size=f"{W}x{H}", mixup=1.0, cutmix=1.0, cutout=0.0, none=0.0, seed=0)
    base.update(kw)
    return BakeConfig(**base)


def three_class_labels(n=21):
    return np.arange(n, dtype=np.int64) % 3


def all_valid(labels):
    return np.ones(len(labels), dtype=bool)


# ====================================================================== soft_label

def test_soft_label_two_hot():
    y = soft_label(1, 3, 0.3, 5)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.array([0, 0.3, 0, 0.7, 0], dtype=np.float32))


def test_soft_label_same_class_is_one_hot():
    y = soft_label(2, 2, 0.37, 4)
    np.testing.assert_array_equal(y, np.array([0, 0, 1, 0], dtype=np.float32))


@pytest.mark.parametrize("label_b", [None, -1])
def test_soft_label_without_partner_is_one_hot(label_b):
    y = soft_label(0, label_b, 1.0, 3)
    np.testing.assert_array_equal(y, np.array([1, 0, 0], dtype=np.float32))
    # lam < 1 with no partner still gives the whole mass to a
    np.testing.assert_array_equal(soft_label(1, label_b, 0.4, 3), np.array([0, 1, 0], dtype=np.float32))


def test_soft_label_smoothing_applied_exactly_once():
    eps, k = 0.1, 4
    y = soft_label(0, 1, 0.25, k, smoothing=eps)
    assert y.dtype == np.float32
    expected = np.array([0.25, 0.75, 0, 0]) * (1 - eps) + eps / k
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-7)
    assert y.sum() == pytest.approx(1.0, abs=1e-6)
    # the untouched classes hold exactly eps/K: smoothing twice would give eps/K*(2-eps)
    assert y.min() == pytest.approx(eps / k, abs=1e-7)
    one_hot = soft_label(3, None, 1.0, k, smoothing=eps)
    assert one_hot[3] == pytest.approx(1 - eps + eps / k, abs=1e-7)
    assert one_hot.sum() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_soft_labels_rowwise_equals_soft_label(smoothing):
    # the vectorised form the worker uses must give the very same float32 values (-1: no partner)
    rng = np.random.default_rng(7)
    n, k = 200, 5
    label_a = rng.integers(0, k, n)
    label_b = np.where(rng.random(n) < 0.3, -1, rng.integers(0, k, n))
    lam = rng.random(n)
    lam[:10] = 1.0
    got = soft_labels(label_a, label_b, lam, k, smoothing)
    assert got.dtype == np.float32 and got.shape == (n, k)
    for r in range(n):
        b = None if label_b[r] < 0 else int(label_b[r])
        np.testing.assert_array_equal(got[r], soft_label(int(label_a[r]), b, float(lam[r]), k, smoothing))


# ====================================================================== cutmix_boxes / cutmix_lam

def test_cutmix_box_unclipped_has_area_one_minus_lam_on_each_axis():
    # lam = 0.75 -> ratio 0.5: the box is H/2 rows tall and W/2 columns wide, centred
    box = cutmix_boxes(np.array([0.75]), np.array([6]), np.array([10]), H, W)[0]
    assert box.tolist() == [5, 3, 15, 9]  # x0, y0, x1, y1
    assert cutmix_lam(box, H, W) == 1 - 60 / 240


def test_cutmix_boxes_inside_image_and_lam_is_exact_clipped_area():
    rng = np.random.default_rng(1)
    n = 3000
    lam = rng.beta(1.0, 1.0, size=n)
    cy, cx = rng.integers(0, H, size=n), rng.integers(0, W, size=n)
    boxes = cutmix_boxes(lam, cy, cx, H, W)
    assert boxes.dtype == np.int64 and boxes.shape == (n, 4)
    x0, y0, x1, y1 = boxes.T
    assert (0 <= x0).all() and (x0 <= x1).all() and (x1 <= W).all()
    assert (0 <= y0).all() and (y0 <= y1).all() and (y1 <= H).all()
    clipped = 0
    for b, l in zip(boxes, lam):
        area = int((b[2] - b[0]) * (b[3] - b[1]))
        assert box_area(b) == area
        assert cutmix_lam(b, H, W) == 1.0 - area / (H * W)
        # unclipped, the area is int(H*r)*int(W*r) with r = sqrt(1 - lam); clipping only shrinks it
        r = np.sqrt(1 - l)
        assert area <= int(H * r) * int(W * r)
        clipped += area < int(H * r) * int(W * r)
    assert clipped > 100  # the clipping path was exercised


def test_cutmix_box_is_half_open():
    # pasting the box changes exactly box_area pixels, in rows [y0, y1) and columns [x0, x1)
    box = cutmix_boxes(np.array([0.5]), np.array([0]), np.array([W - 1]), H, W)[0]
    a = np.zeros((H, W, 3), np.uint8)
    b = np.full((H, W, 3), 9, np.uint8)
    out = cutmix(a, b, box)
    changed = (out != 0).all(axis=2)
    assert changed.sum() == box_area(box) > 0
    ys, xs = np.nonzero(changed)
    assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (box[1], box[3], box[0], box[2])
    assert box[1] == 0 and box[2] == W  # clipped at the top and right edges


def test_cutmix_minmax_sides_within_range_and_lam_ignored():
    rng = np.random.default_rng(2)
    n, h, w, lo, hi = 2000, 50, 100, 0.2, 0.4
    fracs = rng.random((n, 2))
    cy, cx = np.full(n, h // 2), np.full(n, w // 2)  # centred: nothing is clipped
    boxes = cutmix_boxes(np.zeros(n), cy, cx, h, w, minmax=(lo, hi), side_fracs=fracs)
    same = cutmix_boxes(np.ones(n), cy, cx, h, w, minmax=(lo, hi), side_fracs=fracs)
    np.testing.assert_array_equal(boxes, same)  # lam plays no part with minmax
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert bw.min() >= int(lo * w) and bw.max() <= hi * w
    assert bh.min() >= int(lo * h) and bh.max() <= hi * h
    # and they spread over the range
    assert bw.max() - bw.min() >= 0.8 * (hi - lo) * w
    assert bh.max() - bh.min() >= 0.8 * (hi - lo) * h


def test_cutmix_box_that_clips_to_nothing():
    # lam so close to 1 the box has no side: identity, lam 1
    box = cutmix_boxes(np.array([0.9999]), np.array([5]), np.array([5]), H, W)[0]
    assert box_area(box) == 0
    assert cutmix_lam(box, H, W) == 1.0
    # a centre far outside the image: the clipped box is empty
    box = cutmix_boxes(np.array([0.5]), np.array([-50]), np.array([-50]), H, W)[0]
    assert box_area(box) == 0 and cutmix_lam(box, H, W) == 1.0
    a = np.full((H, W, 3), 1, np.uint8)
    np.testing.assert_array_equal(cutmix(a, np.zeros_like(a), box), a)


def test_cutmix_whole_image_lam_zero():
    assert cutmix_lam((0, 0, W, H), H, W) == 0.0
    assert cutmix_lam((0, 0, W, H // 2), H, W) == 0.5


# ====================================================================== ops pixels

def random_pair(seed=0, shape=(H, W, 3)):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, shape, dtype=np.uint8), rng.integers(0, 256, shape, dtype=np.uint8))


@pytest.mark.parametrize("lam", [0.5, 0.3, 0.123456, 0.9, 0.01])
def test_mixup_rounds_not_truncates(lam):
    a, b = random_pair(int(lam * 1000), (64, 48, 3))
    out = mixup(a, b, lam)
    assert out.dtype == np.uint8 and out.shape == a.shape
    ref = np.rint(a.astype(np.float64) * lam + b.astype(np.float64) * (1 - lam))
    diff = np.abs(out.astype(np.int64) - ref.astype(np.int64))
    assert diff.max() <= 1
    assert diff.mean() < 0.03  # truncation would be ~0.5 off on average


def test_mixup_small_values_round_up():
    one, zero = np.ones((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8)
    assert (mixup(one, zero, 0.6) == 1).all()  # 0.6 -> 1, truncation gives 0
    assert (mixup(one, zero, 0.4) == 0).all()
    assert (mixup(np.full((2, 2, 3), 200, np.uint8), np.full((2, 2, 3), 100, np.uint8), 0.75) == 175).all()


def test_cutmix_pastes_exactly_the_box():
    a, b = random_pair(3)
    a_before = a.copy()
    box = (3, 2, 11, 7)
    out = cutmix(a, b, box)
    np.testing.assert_array_equal(a, a_before)  # input untouched
    np.testing.assert_array_equal(out[2:7, 3:11], b[2:7, 3:11])
    mask = np.zeros((H, W), bool)
    mask[2:7, 3:11] = True
    np.testing.assert_array_equal(out[~mask], a[~mask])


def test_cutout_zero_fill_only_in_boxes():
    rng = np.random.default_rng(4)
    img = rng.integers(1, 256, (H, W, 3), dtype=np.uint8)  # no zeros to start with
    boxes = np.array([[0, 0, 3, 2], [10, 5, 20, 12]])
    out = cutout(img, boxes, "zero")
    mask = np.zeros((H, W), bool)
    mask[0:2, 0:3] = True
    mask[5:12, 10:20] = True
    assert (out[mask] == 0).all()
    np.testing.assert_array_equal(out[~mask], img[~mask])
    assert (img != 0).all()  # input untouched


def test_cutout_mean_fill_is_rounded_channel_mean():
    img = np.zeros((H, W, 3), np.uint8)
    img[:, : W // 2] = (255, 0, 10)
    img[:, W // 2:] = (0, 100, 11)  # means: 127.5 -> 128 (half to even), 50, 10.5 -> 10
    img[0, 0] = (255, 0, 10)
    mean = np.rint(img.reshape(-1, 3).mean(axis=0)).astype(np.uint8)
    out = cutout(img, [[2, 3, 8, 9]], "mean")
    assert (out[3:9, 2:8] == mean).all()
    assert mean.tolist() == [128, 50, 10]
    out[3:9, 2:8] = img[3:9, 2:8]
    np.testing.assert_array_equal(out, img)


def test_cutout_noise_deterministic_per_seed():
    img = np.full((H, W, 3), 7, np.uint8)
    boxes = [[1, 1, 11, 9]]
    first = cutout(img, boxes, "noise", fill_seed=123)
    again = cutout(img, boxes, "noise", fill_seed=123)
    other = cutout(img, boxes, "noise", fill_seed=124)
    np.testing.assert_array_equal(first, again)
    assert (first[1:9, 1:11] != other[1:9, 1:11]).mean() > 0.9
    hole = first[1:9, 1:11]
    assert len(np.unique(hole)) > 100  # noise, not a constant
    outside = first.copy()
    outside[1:9, 1:11] = 7
    assert (outside == 7).all()


# ====================================================================== plan.plan_shard

@pytest.mark.parametrize("pairing", ["random", "cross-class"])
def test_partner_never_self(pairing):
    labels = three_class_labels(13)
    for seed in range(40):
        plan = plan_shard(cfg(pairing=pairing, seed=seed, copies=3), 0, labels, all_valid(labels))
        mixed = np.isin(plan.op, [MIXUP, CUTMIX])
        assert mixed.all()  # every row has a usable partner here
        assert (plan.pos_b[mixed] >= 0).all()
        assert (plan.pos_b[mixed] != plan.pos_a[mixed]).all()


def test_partner_never_self_with_two_items_and_invalid_items():
    labels = np.array([0, 0, 1, 1, 0], dtype=np.int64)
    valid = np.array([True, False, True, False, False])
    for seed in range(20):
        for pairing in ("random", "cross-class"):
            plan = plan_shard(cfg(pairing=pairing, seed=seed, copies=4), 0, labels, valid)
            assert set(plan.pos_a.tolist()) == {0, 2}
            np.testing.assert_array_equal(plan.pos_b, 2 - plan.pos_a)  # the only other valid item


def test_cross_class_partner_has_another_label():
    # imbalanced: class 0 dominates, so a random partner would mostly share the label
    labels = np.array([0] * 18 + [1, 2], dtype=np.int64)
    for seed in range(20):
        plan = plan_shard(cfg(pairing="cross-class", seed=seed, copies=5), seed, labels, all_valid(labels))
        assert (plan.pos_b >= 0).all()
        assert (labels[plan.pos_b] != labels[plan.pos_a]).all()


def test_cross_class_falls_back_when_other_classes_unusable():
    labels = np.array([0, 0, 0, 1, 1], dtype=np.int64)
    valid = np.array([True, True, True, False, False])
    plan = plan_shard(cfg(pairing="cross-class", copies=20), 0, labels, valid)
    assert (plan.pos_b >= 0).all() and (plan.pos_b != plan.pos_a).all()
    assert set(plan.pos_b.tolist()) <= {0, 1, 2}


def test_random_partner_uniform_over_other_items():
    n, copies = 6, 600
    labels = np.zeros(n, dtype=np.int64)
    plan = plan_shard(cfg(copies=copies), 0, labels, all_valid(labels))
    counts = np.zeros((n, n), int)
    np.add.at(counts, (plan.pos_a, plan.pos_b), 1)
    assert (np.diag(counts) == 0).all()
    for i in range(n):
        row = np.delete(counts[i], i)
        assert stats.chisquare(row).pvalue > 1e-4


def test_cross_class_partner_uniform_over_other_class_items():
    labels = np.array([0, 0, 1, 1, 1, 2], dtype=np.int64)
    plan = plan_shard(cfg(pairing="cross-class", copies=900), 0, labels, all_valid(labels))
    for i in range(len(labels)):
        others = np.flatnonzero(labels != labels[i])
        got = plan.pos_b[plan.pos_a == i]
        assert set(got.tolist()) == set(others.tolist())
        assert stats.chisquare(np.bincount(got, minlength=len(labels))[others]).pvalue > 1e-4


def mixup_lams(alpha, other_alpha=1.0):
    labels = np.arange(50, dtype=np.int64) % 5
    plan = plan_shard(cfg(mixup=1.0, cutmix=0.0, mixup_alpha=alpha, cutmix_alpha=other_alpha, copies=100),
                      0, labels, all_valid(labels))
    assert len(plan) == 5000 and (plan.op == MIXUP).all()
    return plan.lam


@pytest.mark.parametrize("alpha", [0.2, 2.0])
def test_mixup_lam_follows_beta(alpha):
    lam = mixup_lams(alpha, other_alpha=5.0)  # cutmix alpha must play no part
    assert ((lam >= 0) & (lam <= 1)).all()
    assert stats.kstest(lam, stats.beta(alpha, alpha).cdf).pvalue > 1e-3


def test_mixup_lam_ks_rejects_wrong_alpha():
    # the KS check above has power: the same draws are clearly not Beta of another alpha
    assert stats.kstest(mixup_lams(0.2), stats.beta(2.0, 2.0).cdf).pvalue < 1e-10
    assert stats.kstest(mixup_lams(2.0), stats.beta(0.2, 0.2).cdf).pvalue < 1e-10
    assert stats.kstest(mixup_lams(0.2), stats.beta(0.3, 0.3).cdf).pvalue < 1e-3


def test_op_shares_match_config():
    labels = np.arange(40, dtype=np.int64) % 4
    config = cfg(mixup=2.0, cutmix=1.0, cutout=0.5, none=0.5, copies=100)
    plan = plan_shard(config, 3, labels, all_valid(labels))
    n = len(plan)
    assert n == 4000
    for code, share in enumerate([0.5, 0.25, 0.125, 0.125]):
        count = int((plan.op == code).sum())
        sigma = np.sqrt(n * share * (1 - share))
        assert abs(count - n * share) < 4.5 * sigma, (OPS[code], count, n * share)


def test_zero_share_ops_never_planned():
    labels = three_class_labels()
    plan = plan_shard(cfg(mixup=0.0, cutmix=0.0, cutout=1.0, copies=10), 0, labels, all_valid(labels))
    assert (plan.op == CUTOUT).all()
    plan = plan_shard(cfg(mixup=1.0, cutmix=0.0, copies=10), 0, labels, all_valid(labels))
    assert (plan.op == MIXUP).all()


def test_copies_and_keep_originals_rows():
    labels = three_class_labels(7)
    plan = plan_shard(cfg(copies=3, cutout=1.0, none=1.0), 0, labels, all_valid(labels))
    assert len(plan) == 21
    assert np.bincount(plan.pos_a).tolist() == [3] * 7
    assert (plan.copy >= 0).all()

    plan = plan_shard(cfg(copies=3, cutout=1.0, none=1.0, keep_originals=True), 0, labels, all_valid(labels))
    assert len(plan) == 28
    assert np.bincount(plan.pos_a).tolist() == [4] * 7
    for i in range(7):
        assert sorted(plan.copy[plan.pos_a == i].tolist()) == [ORIGINAL, 0, 1, 2]
    orig = plan.copy == ORIGINAL
    assert orig.sum() == 7
    assert (plan.op[orig] == NONE).all() and (plan.pos_b[orig] == -1).all() and (plan.lam[orig] == 1).all()
    assert all(len(plan.boxes[r]) == 0 for r in np.flatnonzero(orig))
    # originals are shuffled in among the augmented rows, not appended at the end
    assert not orig[-7:].all()


def assert_plans_equal(p, q):
    for field in ("op", "pos_a", "pos_b", "copy", "lam", "fill_seed"):
        np.testing.assert_array_equal(getattr(p, field), getattr(q, field))
    assert len(p.boxes) == len(q.boxes)
    for x, y in zip(p.boxes, q.boxes):
        np.testing.assert_array_equal(x, y)


def test_plan_is_deterministic_and_depends_on_seed_and_shard():
    labels = three_class_labels(30)
    valid = all_valid(labels)
    valid[[4, 17]] = False
    config = cfg(cutout=1.0, none=0.5, copies=2, keep_originals=True, seed=11)
    p = plan_shard(config, 2, labels, valid)
    assert_plans_equal(p, plan_shard(BakeConfig(**config.to_dict()), 2, labels.copy(), valid.copy()))
    for other in (plan_shard(cfg(cutout=1.0, none=0.5, copies=2, keep_originals=True, seed=12), 2, labels, valid),
                  plan_shard(config, 3, labels, valid)):
        assert len(other) == len(p)
        assert not np.array_equal(other.lam, p.lam)
        assert not np.array_equal(other.pos_a, p.pos_a)  # the output order differs
        assert not np.array_equal(other.op, p.op)


def test_invalid_items_never_used():
    rng = np.random.default_rng(5)
    labels = three_class_labels(25)
    for seed in range(25):
        valid = rng.random(25) < 0.6
        valid[:2] = True
        for pairing in ("random", "cross-class"):
            plan = plan_shard(cfg(pairing=pairing, seed=seed, cutout=1.0, none=1.0, copies=2, keep_originals=True),
                              0, labels, valid)
            assert valid[plan.pos_a].all()
            used_b = plan.pos_b[plan.pos_b >= 0]
            assert valid[used_b].all()
            assert len(plan) == 3 * valid.sum()


def test_bad_item_only_changes_partners():
    # documented in plan.py: every random array is drawn for every row, so a bad item only changes
    # the partners chosen; the other rows keep their op, lam and boxes
    labels = three_class_labels(20)
    config = cfg(cutout=1.0, none=1.0, copies=2)
    full = plan_shard(config, 0, labels, all_valid(labels))
    valid = all_valid(labels)
    valid[7] = False
    part = plan_shard(config, 0, labels, valid)
    row_of = by_key(full)
    for r, (a, c) in enumerate(zip(part.pos_a, part.copy)):
        f = row_of[(int(a), int(c))]
        assert part.op[r] == full.op[f]
        if part.op[r] == MIXUP:
            assert part.lam[r] == full.lam[f]
        if part.op[r] == CUTOUT:
            np.testing.assert_array_equal(part.boxes[r], full.boxes[f])
            assert part.fill_seed[r] == full.fill_seed[f]


def by_key(plan):
    """Row index of each (item, copy): the identity of a row whatever the output order."""
    return {(int(a), int(c)): r for r, (a, c) in enumerate(zip(plan.pos_a, plan.copy))}


def test_one_op_option_does_not_move_other_ops():
    labels = three_class_labels(20)
    base = dict(cutout=1.0, copies=3, cutmix_minmax=None)
    p = plan_shard(cfg(cutout_size=0.5, **base), 0, labels, all_valid(labels))
    # same number of draws: everything but the cutout boxes is identical, row for row
    q = plan_shard(cfg(cutout_size=0.25, **base), 0, labels, all_valid(labels))
    for field in ("op", "pos_a", "pos_b", "copy", "lam", "fill_seed"):
        np.testing.assert_array_equal(getattr(p, field), getattr(q, field))
    assert any(not np.array_equal(x, y) for x, y in zip(p.boxes, q.boxes))
    # more holes (more cutout draws): the other rows keep op, partner, lam, box and output position
    q = plan_shard(cfg(cutout_size=0.25, cutout_holes=3, **base), 0, labels, all_valid(labels))
    for field in ("op", "pos_a", "pos_b", "copy", "lam"):
        np.testing.assert_array_equal(getattr(p, field), getattr(q, field))
    for r in np.flatnonzero(p.op != CUTOUT):
        np.testing.assert_array_equal(q.boxes[r], p.boxes[r])


@pytest.mark.parametrize("changed, moved", [({"mixup_alpha": 3.0}, MIXUP), ({"cutmix_alpha": 0.3}, CUTMIX)])
def test_alpha_moves_only_its_own_op(changed, moved):
    # Generator.beta consumes a data-dependent number of raw draws: with a single stream a new alpha
    # would shift every later draw (boxes, holes, fill seeds, row order)
    labels = three_class_labels(20)
    p = plan_shard(cfg(cutout=1.0, copies=3), 0, labels, all_valid(labels))
    q = plan_shard(cfg(cutout=1.0, copies=3, **changed), 0, labels, all_valid(labels))
    for field in ("op", "pos_a", "pos_b", "copy", "fill_seed"):
        np.testing.assert_array_equal(getattr(p, field), getattr(q, field))
    own = p.op == moved
    np.testing.assert_array_equal(p.lam[~own], q.lam[~own])
    assert (p.lam[own] != q.lam[own]).mean() > 0.5
    for r in np.flatnonzero(p.op == CUTOUT):
        np.testing.assert_array_equal(q.boxes[r], p.boxes[r])
    if moved == MIXUP:
        for r in range(len(p)):
            np.testing.assert_array_equal(q.boxes[r], p.boxes[r])


@pytest.mark.parametrize("minmax", [None, (0.3, 0.9)])
def test_plan_cutmix_lam_is_clipped_box_area(minmax):
    labels = three_class_labels(30)
    plan = plan_shard(cfg(mixup=0.0, cutmix=1.0, cutmix_minmax=minmax, copies=40, cutmix_alpha=0.5),
                      1, labels, all_valid(labels))
    assert (plan.op == CUTMIX).all()
    empty = 0
    edge = 0
    for r in range(len(plan)):
        boxes = plan.boxes[r]
        assert boxes.shape in {(0, 4), (1, 4)}
        if len(boxes) == 0:
            empty += 1
            assert plan.lam[r] == 1.0
            continue
        x0, y0, x1, y1 = (int(v) for v in boxes[0])
        assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
        assert plan.lam[r] == 1.0 - (x1 - x0) * (y1 - y0) / (H * W)
        edge += x0 == 0 or y0 == 0 or x1 == W or y1 == H
        if minmax:  # sides before clipping are at most HI * side
            assert x1 - x0 <= minmax[1] * W and y1 - y0 <= minmax[1] * H
    assert edge > 50  # clipped boxes were exercised
    if minmax is None:
        assert empty > 0  # Beta(0.5, 0.5) puts lam near 1 sometimes: a box with no side
    # boxes span the full width range (catches width/height swapped: a box wider than H appears)
    widths = [int(b[0, 2] - b[0, 0]) for b in plan.boxes if len(b)]
    assert max(widths) > H


def test_plan_cutout_rows():
    labels = three_class_labels(20)
    plan = plan_shard(cfg(mixup=0.0, cutmix=0.0, cutout=1.0, cutout_size=0.25, cutout_holes=3, copies=10),
                      0, labels, all_valid(labels))
    assert (plan.op == CUTOUT).all()
    assert (plan.lam == 1.0).all() and (plan.pos_b == -1).all()
    hole_h, hole_w = round(H * 0.25), round(W * 0.25)
    for boxes in plan.boxes:
        assert 1 <= len(boxes) <= 3
        for x0, y0, x1, y1 in boxes.tolist():
            assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
            assert x1 - x0 <= hole_w and y1 - y0 <= hole_h
    sizes = {(int(b[2] - b[0]), int(b[3] - b[1])) for bs in plan.boxes for b in bs}
    assert (hole_w, hole_h) in sizes  # unclipped holes are W/4 wide, H/4 tall
    # the fill seeds differ between rows
    assert len(set(plan.fill_seed.tolist())) == len(plan)


def test_mixup_rows_record_lam_and_partner():
    labels = three_class_labels(20)
    plan = plan_shard(cfg(mixup=1.0, cutmix=0.0, copies=5), 0, labels, all_valid(labels))
    assert (plan.op == MIXUP).all()
    assert all(len(b) == 0 for b in plan.boxes)
    assert ((plan.lam > 0) & (plan.lam < 1)).all()
    assert len(np.unique(plan.lam)) == len(plan)


# ====================================================================== plan.make_pools

def varied_bounds(seed, chunks=60, max_chunk=6):
    sizes = np.random.default_rng(seed).integers(1, max_chunk + 1, size=chunks)
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


@pytest.mark.parametrize("bounds", [single_item_bounds(103), varied_bounds(0), varied_bounds(1)],
                         ids=["single", "varied0", "varied1"])
def test_make_pools_partition_chunks(bounds):
    config = BakeConfig(shard_size=20, copies=2, seed=4)
    target = pool_target(config)
    assert target == 10
    pools = make_pools(config, bounds)
    nchunks = len(bounds) - 1
    allc = np.concatenate(pools)
    assert sorted(allc.tolist()) == list(range(nchunks))  # every chunk in exactly one pool
    sizes = np.diff(bounds)
    items = [int(sizes[p].sum()) for p in pools]
    max_chunk = int(sizes.max())
    assert sum(items) == bounds[-1]
    for n in items[:-1]:
        assert target - max_chunk < n < target + max_chunk
    assert max(2, target // 2) <= items[-1] < 2 * target + max_chunk
    assert abs(len(pools) - bounds[-1] / target) <= 1.5
    # the chunks are shuffled, not cut in order
    assert allc.tolist() != list(range(nchunks))


def test_make_pools_exact_sizes_for_single_item_chunks():
    config = BakeConfig(shard_size=30, copies=2, keep_originals=True, seed=1)  # 3 rows per item -> 10 items
    pools = make_pools(config, single_item_bounds(100))
    assert [len(p) for p in pools] == [10] * 10


def test_make_pools_deterministic_per_seed():
    bounds = varied_bounds(2)
    a = make_pools(BakeConfig(shard_size=15, seed=9), bounds)
    b = make_pools(BakeConfig(shard_size=15, seed=9), bounds)
    c = make_pools(BakeConfig(shard_size=15, seed=10), bounds)
    assert [p.tolist() for p in a] == [p.tolist() for p in b]
    assert np.concatenate(a).tolist() != np.concatenate(c).tolist()


def test_make_pools_tiny_tail_is_merged():
    config = BakeConfig(shard_size=10, seed=0)  # target 10 items
    pools = make_pools(config, single_item_bounds(23))  # 10, 10, 3 -> the 3 join the previous pool
    assert [len(p) for p in pools] == [10, 13]
    pools = make_pools(config, single_item_bounds(25))  # a tail of 5 = target // 2 stays
    assert [len(p) for p in pools] == [10, 10, 5]


def test_pixel_ops_clip_boxes_to_the_image_and_refuse_bad_arguments():
    image = np.full((4, 6, 3), 200, np.uint8)
    other = np.zeros((4, 6, 3), np.uint8)
    for fill in ("zero", "mean", "noise"):  # a box past the right and bottom edges fills what is inside
        out = cutout(image, [(4, 2, 10, 10)], fill, fill_seed=1)
        assert (out[:2] == 200).all() and (out[:, :4] == 200).all()
        assert (out[2:, 4:] != 200).any() if fill != "mean" else (out[2:, 4:] == 200).all()
    out = cutout(image, [(-2, -2, 2, 2)], "zero")  # a negative corner is clipped, not wrapped
    assert (out[:2, :2] == 0).all() and int((out == 0).sum()) == 2 * 2 * 3
    pasted = cutmix(image, other, (-2, 0, 2, 4))
    assert (pasted[:, :2] == 0).all() and (pasted[:, 2:] == 200).all()
    with pytest.raises(ValueError, match="fill must be"):
        cutout(image, [(0, 0, 2, 2)], "black")
    for bad in [dict(label_a=-1, label_b=None, lam=1.0), dict(label_a=0, label_b=3, lam=0.5),
                dict(label_a=0, label_b=1, lam=1.5), dict(label_a=0, label_b=1, lam=0.5, smoothing=-0.5)]:
        with pytest.raises(ValueError):
            soft_label(num_classes=3, **bad)
    assert soft_label(2, -1, 0.3, 3).tolist() == [0.0, 0.0, 1.0]  # no partner: all of a


def test_cutmix_boxes_shapes_and_bad_arguments():
    assert cutmix_boxes(0.75, 5, 5, 10, 10).shape == (4,)
    assert cutmix_boxes(np.array([0.75, 0.5]), np.array([5, 1]), np.array([5, 9]), 10, 10).shape == (2, 4)
    with pytest.raises(ValueError, match="lam must be in"):
        cutmix_boxes(1.2, 5, 5, 10, 10)
    with pytest.raises(ValueError, match="minmax needs side_fracs"):
        cutmix_boxes(0.5, 5, 5, 10, 10, minmax=(0.2, 0.8))
