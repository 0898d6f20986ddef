"""nervseg.metrics against hand-computed cases, including every empty-mask combination."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nervseg import metrics
from nervseg.metrics import METRIC_KEYS, aggregate, hd95, score


def _square(shape, top, left, size, value=1) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    m[top : top + size, left : left + size] = value
    return m


def test_hand_computed_overlap():
    # truth: 4x4 at (2,2) = 16 px; prediction: 4x4 at (2,4) = 16 px; overlap 4x2 = 8 px
    true = _square((10, 10), 2, 2, 4)
    pred = _square((10, 10), 2, 4, 4)
    s = score(pred, true)
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (8, 8, 8, 76)
    assert s["dice"] == pytest.approx(16 / 32)
    assert s["iou"] == pytest.approx(8 / 24)
    assert s["precision"] == pytest.approx(0.5)
    assert s["sensitivity"] == pytest.approx(0.5)
    assert s["specificity"] == pytest.approx(76 / 84)
    assert set(METRIC_KEYS) <= set(s)


def test_perfect_prediction():
    m = _square((12, 12), 3, 3, 5)
    s = score(m, m)
    assert s["dice"] == s["iou"] == s["precision"] == s["sensitivity"] == s["specificity"] == 1.0
    assert s["hd95"] == 0.0


def test_both_empty():
    z = np.zeros((8, 8), np.uint8)
    s = score(z, z)
    assert s["dice"] == 1.0 and s["iou"] == 1.0
    assert s["precision"] == 1.0 and s["sensitivity"] == 1.0 and s["specificity"] == 1.0
    assert s["hd95"] is None


def test_prediction_empty_truth_not():
    z = np.zeros((8, 8), np.uint8)
    t = _square((8, 8), 1, 1, 3)
    s = score(z, t)
    assert s["dice"] == 0.0 and s["iou"] == 0.0
    assert s["precision"] == 0.0 and s["sensitivity"] == 0.0
    assert s["specificity"] == 1.0
    assert math.isinf(s["hd95"])


def test_truth_empty_prediction_not():
    z = np.zeros((8, 8), np.uint8)
    p = _square((8, 8), 1, 1, 3)
    s = score(p, z)
    assert s["dice"] == 0.0 and s["iou"] == 0.0
    assert s["precision"] == 0.0 and s["sensitivity"] == 0.0
    assert s["specificity"] == pytest.approx((64 - 9) / 64)
    assert math.isinf(s["hd95"])


def test_class_ids_are_separate():
    true = _square((10, 10), 0, 0, 4, value=1) + _square((10, 10), 6, 6, 3, value=2)
    pred = _square((10, 10), 0, 0, 4, value=1)
    assert score(pred, true, class_id=1)["dice"] == 1.0
    vessel = score(pred, true, class_id=2)
    assert vessel["dice"] == 0.0 and math.isinf(vessel["hd95"])
    assert score(pred, true, class_id=3)["dice"] == 1.0  # absent from both


def test_hd95_shift_in_pixels_and_mm():
    # A 10x10 square shifted 3 columns: every surface point is 0 or 3 px from the other
    # surface, and more than 5% of points lie at 3 px, so HD95 = 3.
    true = _square((30, 30), 10, 10, 10)
    pred = _square((30, 30), 10, 13, 10)
    assert hd95(pred, true) == pytest.approx(3.0)
    # spacing (row, col) mm per pixel: a column shift scales by the column spacing
    assert hd95(pred, true, spacing=(0.5, 0.2)) == pytest.approx(0.6)
    assert score(pred, true, spacing=(0.5, 0.2))["hd95"] == pytest.approx(0.6)
    # a row shift scales by the row spacing
    pred_rows = _square((30, 30), 14, 10, 10)
    assert hd95(pred_rows, true) == pytest.approx(4.0)
    assert hd95(pred_rows, true, spacing=(0.5, 0.2)) == pytest.approx(2.0)


def test_hd95_ignores_rare_outliers_but_not_frequent_ones():
    true = _square((60, 60), 5, 5, 4)  # 12 surface pixels
    pred = true.copy()
    pred[50, 50] = 1  # 1 far pixel: 1 of 25 distances (4% < 5%), so HD95 stays 0
    assert hd95(pred, true) == 0.0
    pred[50, 8] = 1  # 2 far pixels of 26 distances: 24 zeros, then 42 (to (8, 8)) and 42*sqrt(2)
    # numpy's linear percentile: position 0.95 * 25 = 23.75 -> 0.75 of the way from 0 to 42
    assert hd95(pred, true) == pytest.approx(0.75 * 42)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        score(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


def test_aggregate_mean_sd_pooled():
    true1, pred1 = _square((10, 10), 2, 2, 4), _square((10, 10), 2, 4, 4)  # dice 0.5
    true2 = pred2 = _square((10, 10), 0, 0, 2)  # dice 1
    z = np.zeros((10, 10), np.uint8)
    scores = [score(pred1, true1), score(pred2, true2), score(z, z), score(z, true2)]
    agg = aggregate(scores)
    assert agg.n_images == 4
    dices = [0.5, 1.0, 1.0, 0.0]
    assert agg.mean["dice"] == pytest.approx(np.mean(dices))
    assert agg.sd["dice"] == pytest.approx(np.std(dices, ddof=1))
    # pooled: tp = 8 + 4 + 0 + 0, fp = 8, fn = 8 + 0 + 0 + 4
    assert agg.pooled["dice"] == pytest.approx(2 * 12 / (2 * 12 + 8 + 12))
    # HD95: finite only for images 1 (2 px) and 2 (0 px); one infinite, one None
    assert agg.hd95_infinite == 1
    assert agg.mean["hd95"] == pytest.approx(np.mean([hd95(pred1, true1), 0.0]))
    assert agg.to_dict()["n_images"] == 4


def test_aggregate_single_and_empty():
    m = _square((6, 6), 1, 1, 2)
    one = aggregate([score(m, m)])
    assert one.sd["dice"] == 0.0 and one.mean["dice"] == 1.0
    none = aggregate([])
    assert none.n_images == 0 and none.mean["dice"] is None and none.pooled == {}


def test_dice_per_image_matches_score_under_the_empty_rule():
    from nervseg.metrics import dice_per_image

    rng = np.random.default_rng(0)
    pred = rng.integers(0, 3, (5, 12, 12)).astype(np.uint8)
    true = rng.integers(0, 3, (5, 12, 12)).astype(np.uint8)
    pred[1], true[1] = 0, 0  # both empty: 1 for each class
    true[2] = 0  # truth empty, prediction not: 0
    d = dice_per_image(pred, true, 3)
    assert d.shape == (5, 2)
    expected = [[score(p, t, c)["dice"] for c in (1, 2)] for p, t in zip(pred, true)]
    np.testing.assert_allclose(d, expected)
    assert d[1].tolist() == [1.0, 1.0] and d[2].tolist() == [0.0, 0.0]


def test_pairwise_dice_is_symmetric_with_a_unit_diagonal():
    from nervseg.metrics import pairwise_dice

    a, b, c = _square((10, 10), 2, 2, 4), _square((10, 10), 2, 4, 4), np.zeros((10, 10), np.uint8)
    m = pairwise_dice([a, b, c])
    np.testing.assert_allclose(m, [[1, 0.5, 0], [0.5, 1, 0], [0, 0, 1]])
    assert pairwise_dice([a]).tolist() == [[1.0]]
    assert pairwise_dice([c, c])[0, 1] == 1.0  # both empty: agreement


def test_hd95_over_the_union_box_equals_the_full_frame_computation():
    """hd95 cuts both masks to the box around their union: the same figure as over the whole frame."""
    from scipy import ndimage

    def full_frame(pred, true, spacing):
        sp, st = metrics._surface(pred), metrics._surface(true)
        d_true = ndimage.distance_transform_edt(~st, sampling=spacing)
        d_pred = ndimage.distance_transform_edt(~sp, sampling=spacing)
        return float(np.percentile(np.concatenate([d_true[sp], d_pred[st]]), 95))

    rng = np.random.default_rng(7)
    for i in range(60):
        h, w = (int(v) for v in rng.integers(8, 300, 2))
        yy, xx = np.ogrid[:h, :w]
        masks = []
        for _ in range(2):
            m = np.zeros((h, w), bool)
            for _ in range(int(rng.integers(1, 4))):
                y, x, r = int(rng.integers(0, h)), int(rng.integers(0, w)), int(rng.integers(1, 50))
                m |= (yy - y) ** 2 + (xx - x) ** 2 < r * r
            masks.append(m | (rng.random((h, w)) < 0.001))  # scattered specks reach the borders
        spacing = None if i % 2 else (0.1, 0.25)
        assert metrics.hd95(*masks, spacing) == full_frame(*masks, spacing), i
