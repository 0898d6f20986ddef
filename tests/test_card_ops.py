"""Normalisation, Postprocess and presence: the card-described steps, each in one place."""

import numpy as np

from nervseg.evaluate.presence import assess, calibrated_probability, presence_score
from nervseg.models.card_ops import Normalisation, Postprocess


def test_normalisation_matches_its_formula_and_round_trips():
    norm = Normalisation.from_card({"scale": 1 / 255, "mean": 0.5, "std": 0.25})
    px = np.array([[0, 255], [128, 64]], np.uint8)
    out = norm.apply(px)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (px / 255 - 0.5) / 0.25, atol=1e-6)
    assert Normalisation.from_card(norm.to_dict()) == norm


def test_postprocess_removes_components_below_the_fraction():
    mask = np.zeros((20, 20), np.uint8)
    mask[2:4, 2:4] = 1  # 4 px
    mask[10:16, 10:16] = 2  # 36 px
    post = Postprocess.from_card({"min_component_fraction": 0.02})  # 8 px on 400
    assert post.min_pixels(mask.shape) == 8
    out = post.apply(mask)
    assert not (out == 1).any() and (out == 2).sum() == 36
    assert Postprocess.from_card({}).apply(mask) is mask


def test_presence_uncalibrated_says_so_and_follows_the_mask():
    probs = np.zeros((3, 4, 4), np.float32)
    probs[0] = 1.0
    probs[1, 0, 0], probs[0, 0, 0] = 0.8, 0.2
    mask = (probs.argmax(0)).astype(np.uint8)
    nerve, vessel = assess(probs, mask, ["background", "nerve", "vessel"], None)
    assert nerve.name == "nerve" and not nerve.calibrated and nerve.found and nerve.score == presence_score(probs[1])
    assert not vessel.found and vessel.probability is None


def test_presence_calibrated_uses_the_curve_and_threshold():
    block = {"nerve": {"score": "max_prob", "x": [0.0, 0.5, 1.0], "y": [0.0, 0.2, 0.9], "threshold": 0.5}}
    assert calibrated_probability(block["nerve"], 0.75) == 0.55
    probs = np.zeros((2, 2, 2), np.float32)
    probs[1, 0, 0] = 0.6
    (nerve,) = assess(probs, np.zeros((2, 2), np.uint8), ["background", "nerve"], block)
    assert nerve.calibrated and abs(nerve.probability - 0.34) < 1e-6 and not nerve.found
