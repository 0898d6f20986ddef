"""nervseg.evaluate.calibrate: PAV isotonic fit, Platt, the Youden threshold, and the card schema presence reads."""

from __future__ import annotations

import numpy as np
import pytest

from nervseg.evaluate import calibrate, presence

SCHEMA_KEYS = {"score", "x", "y", "threshold", "method", "measured_on", "sensitivity", "specificity",
               "n_present", "n_absent"}


def test_pav_matches_a_hand_worked_case_and_is_monotone(rng):
    assert calibrate.pav([1, 3, 2, 4]).tolist() == [1, 2.5, 2.5, 4]
    assert calibrate.pav([3, 1], [3, 1]).tolist() == [2.5, 2.5]  # weighted pool
    y = rng.uniform(size=50)
    fit = calibrate.pav(y)
    assert np.all(np.diff(fit) >= -1e-12)
    assert fit.sum() == pytest.approx(y.sum())  # pooling preserves the total


def _overlapping(rng, n=400):
    present = rng.uniform(size=n) < 0.5
    scores = np.clip(np.where(present, rng.normal(0.8, 0.12, n), rng.normal(0.5, 0.15, n)), 0, 1)
    return scores, present


@pytest.mark.parametrize("method", calibrate.METHODS)
def test_fit_presence_writes_the_card_schema_that_presence_reads(method, rng):
    scores, present = _overlapping(rng)
    block = calibrate.fit_presence(scores, present, method, measured_on="synthetic")
    assert set(block) == SCHEMA_KEYS
    assert block["method"] == method and block["score"] == presence.SCORE
    x, y = np.array(block["x"]), np.array(block["y"])
    assert np.all(np.diff(x) > 0) and np.all(np.diff(y) >= -1e-12) and y.min() >= 0 and y.max() <= 1
    assert block["n_present"] == present.sum() and block["n_absent"] == (~present).sum()
    assert 0.7 < block["sensitivity"] <= 1 and 0.7 < block["specificity"] <= 1
    # nervseg.evaluate.presence uses it: a confident high score is found, a low one is not
    probs = np.zeros((2, 4, 4), np.float32)
    probs[1, 0, 0] = 0.97
    high = presence.assess(probs, np.zeros((4, 4), np.uint8), ["background", "nerve"], {"nerve": block})[0]
    probs[1, 0, 0] = 0.2
    low = presence.assess(probs, np.zeros((4, 4), np.uint8), ["background", "nerve"], {"nerve": block})[0]
    assert high.calibrated and high.found and high.probability > 0.8
    assert not low.found and low.probability < 0.3
    assert not high.marked and not low.marked  # nothing in the mask
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0] = 1
    doubted = presence.assess(probs, mask, ["background", "nerve"], {"nerve": block})[0]
    assert doubted.marked and not doubted.found  # marked, but the check doubts it (the page says "doubtful")
    plain = presence.assess(probs, mask, ["background", "nerve"], None)[0]
    assert plain.found and plain.marked and not plain.calibrated


def test_isotonic_probabilities_track_the_true_rate(rng):
    scores = rng.uniform(size=4000)
    present = rng.uniform(size=4000) < scores  # P(present | s) = s
    x, y = calibrate.fit_isotonic(scores, present)
    got = np.interp([0.2, 0.5, 0.8], x, y)
    assert np.allclose(got, [0.2, 0.5, 0.8], atol=0.08)


def test_platt_recovers_a_logistic(rng):
    scores = rng.uniform(size=5000)
    present = rng.uniform(size=5000) < 1 / (1 + np.exp(-(8 * scores - 4)))
    x, y = calibrate.fit_platt(scores, present)
    assert np.allclose(np.interp([0.25, 0.5, 0.75], x, y), 1 / (1 + np.exp(-np.array([-2, 0, 2]))), atol=0.05)


def test_separable_scores_give_perfect_detection():
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    present = np.array([0, 0, 0, 1, 1, 1], bool)
    block = calibrate.fit_presence(scores, present)
    assert block["sensitivity"] == 1 and block["specificity"] == 1
    xf = calibrate.cross_fitted(scores, present, folds=[0, 1, 0, 1, 0, 1])
    assert xf["sensitivity"] == 1 and xf["specificity"] == 1


def test_youden_threshold_sits_between_the_classes():
    prob = np.array([0.0, 0.0, 0.4, 1.0, 1.0])
    present = np.array([0, 0, 1, 1, 1], bool)
    t = calibrate.youden_threshold(prob, present)
    assert 0.0 < t < 0.4
    assert calibrate.detection(prob, present, t) == (1.0, 1.0)


def test_one_label_cannot_be_calibrated():
    with pytest.raises(calibrate.CalibrationError, match="both present and absent"):
        calibrate.fit_presence([0.5, 0.9], [True, True])
    with pytest.raises(calibrate.CalibrationError, match="unknown method"):
        calibrate.fit_presence([0.1, 0.9], [False, True], method="beta")
