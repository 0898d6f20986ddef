"""The paired verdict on a user's batch: per-image Dice differences, bootstrap CI, subjects as groups."""

from __future__ import annotations

import numpy as np
import pytest

from nervseg.evaluate import batch_compare, stats


def _rows(model: str, dice: dict[str, float], cls: str = "nerve", truth_empty: set[str] = frozenset()) -> list[dict]:
    return [{"model": model, "image": name, "class": cls, "dice": d, "truth_empty": int(name in truth_empty)}
            for name, d in dice.items()]


def test_groups_are_subjects_only_when_every_name_carries_one():
    assert batch_compare.batch_groups(["10_1.png", "10_2.png", "3_7.tif"]) == (["10", "10", "3"], "subjects")
    assert batch_compare.batch_groups(["10_1.png", "0020.png"]) == (["10_1", "0020"], "images")


def test_a_clear_difference_names_the_better_model_with_the_stats_figures():
    rng = np.random.default_rng(1)
    names = [f"{s}_{i}.png" for s in range(1, 9) for i in range(1, 4)]  # 8 subjects, 3 frames each
    good = {n: 0.7 + 0.05 * rng.standard_normal() for n in names}
    bad = {n: good[n] - 0.2 - 0.02 * rng.standard_normal() for n in names}
    rows = _rows("unet", good) + _rows("densenet", bad)
    (v,) = batch_compare.paired_verdicts(rows)
    groups, _ = batch_compare.batch_groups(sorted(names))
    expected = stats.paired_comparison("unet", "densenet", [good[n] for n in sorted(names)],
                                       [bad[n] for n in sorted(names)], groups)
    assert v.paired == expected and v.unit == "subjects" and v.n_groups == 8 and v.n_images == 24
    assert v.better == "unet" and v.sentence({"unet": "U-Net", "densenet": "DenseNet"}) == "U-Net better than DenseNet"
    assert v.paired.diff_ci95[0] > 0


def test_noise_gives_no_clear_difference_and_too_few_images_no_verdict():
    rng = np.random.default_rng(2)
    names = [f"{i:04d}.png" for i in range(30)]
    a = {n: float(rng.uniform(0.4, 0.8)) for n in names}
    b = {n: a[n] + float(rng.normal(0, 0.1)) for n in names}
    (v,) = batch_compare.paired_verdicts(_rows("a", a) + _rows("b", b))
    assert v.unit == "images" and v.paired.diff_ci95[0] <= 0 <= v.paired.diff_ci95[1]
    assert v.better is None and v.sentence() == "a vs b: no clear difference"
    few = names[: batch_compare.MIN_GROUPS - 1]
    (v,) = batch_compare.paired_verdicts(_rows("a", {n: 0.9 for n in few}) + _rows("b", {n: 0.1 for n in few}))
    assert v.paired is None and "too few images" in v.sentence()


def test_images_without_the_class_in_their_mask_are_left_out():
    names = [f"{i:04d}.png" for i in range(8)]
    empty = {names[0], names[1]}
    a = {n: (1.0 if n in empty else 0.6) for n in names}
    b = {n: (0.0 if n in empty else 0.6) for n in names}
    (v,) = batch_compare.paired_verdicts(_rows("a", a, truth_empty=empty) + _rows("b", b, truth_empty=empty))
    assert v.n_images == 6 and v.paired.diff_mean == pytest.approx(0.0)
