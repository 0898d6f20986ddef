"""Home's typical case (nervseg.evaluate.typical): the lower-median sample, computed once per process and
model, and before the first visit by the server's warm-up."""

from __future__ import annotations

import numpy as np
import pytest

from nervseg import metrics
from nervseg.data import samples
from nervseg.evaluate import typical
from nervseg.inference import load
from nervseg.io.readers import load_image, load_mask
from nervseg.models import provenance


def test_typical_stem_is_the_lower_median():
    assert typical.typical_stem({"a": 0.2, "b": 0.9, "c": 0.5, "d": 0.7}) == "c"
    assert typical.typical_stem({"a": 0.2, "b": 0.9, "c": 0.5}) == "c"
    assert typical.typical_stem({}) is None


def test_sample_dice_is_the_models_mean_dice_over_its_structures(shipped_cards):
    bundled = samples.bundled()
    if not bundled:
        pytest.skip("no bundled samples in sample_images/")
    card = provenance.default_card(shipped_cards)
    shown = typical.shown_samples(card.classes, bundled)
    assert shown and all(set(card.classes[1:]) <= set(s.structures) for s in shown)
    seg = load(card.id)
    dice = typical.sample_dice(seg, shown[:3])
    assert set(dice) == {s.stem for s in shown[:3]}
    s = shown[0]
    pred, truth = seg.predict(load_image(s.image)).mask, load_mask(s.mask)
    expected = np.mean([metrics.score(pred, truth, k)["dice"] for k in range(1, len(card.classes))])
    assert dice[s.stem] == pytest.approx(expected)


def test_the_servers_warm_up_computes_homes_choice_before_the_first_visit(shipped_cards):
    from dashboard import demo, serve

    if not samples.bundled():
        pytest.skip("no bundled samples in sample_images/")
    card = provenance.default_card(shipped_cards)
    demo._sample_dice.cache_clear()
    serve.warm_up([card], [], pause_s=0)
    assert demo._sample_dice.cache_info().currsize == 1
    before = demo._sample_dice.cache_info().hits
    dice = demo.default_sample_dice(card)
    assert demo._sample_dice.cache_info().hits == before + 1 and len(dice) >= 3
