"""nervseg.evaluate.stats: group bootstrap, group sign-flip test, paired comparison and its verdict."""

from __future__ import annotations

import numpy as np
import pytest

from nervseg.evaluate import stats


def test_group_bootstrap_mean_is_the_image_mean_and_ci_brackets_it(rng):
    v = rng.uniform(0, 1, 300)
    g = np.repeat(np.arange(30), 10)
    mean, lo, hi = stats.group_bootstrap_ci(v, g, seed=0)
    assert mean == pytest.approx(v.mean())
    assert lo < mean < hi
    assert stats.group_bootstrap_ci(v, g, seed=0) == (mean, lo, hi)  # seeded


def test_clustered_data_give_a_wider_ci_than_independent_images(rng):
    group_means = rng.normal(0.7, 0.15, 10)
    g = np.repeat(np.arange(10), 20)
    v = np.repeat(group_means, 20)  # 20 identical images per group: really 10 observations
    _, lo_g, hi_g = stats.group_bootstrap_ci(v, g, seed=1)
    _, lo_i, hi_i = stats.group_bootstrap_ci(v, np.arange(200), seed=1)  # every image its own group
    assert (hi_g - lo_g) > 3 * (hi_i - lo_i)


def test_one_group_has_no_spread_and_bad_input_is_refused():
    assert stats.group_bootstrap_ci([0.2, 0.4], ["a", "a"]) == pytest.approx((0.3, 0.3, 0.3))
    with pytest.raises(ValueError):
        stats.group_bootstrap_ci([0.1, np.nan], [1, 2])
    with pytest.raises(ValueError):
        stats.group_bootstrap_ci([0.1, 0.2], [1])


def test_sign_flip_exact_for_few_groups():
    # 3 groups all +0.1: of the 8 sign patterns only all-plus and all-minus reach |mean| 0.1
    assert stats.sign_flip_p([0.1, 0.1, 0.1], [1, 2, 3]) == pytest.approx(2 / 8)


def test_sign_flip_separates_a_shift_from_noise(rng):
    g = np.repeat(np.arange(40), 5)
    assert stats.sign_flip_p(0.05 + rng.normal(0, 0.05, 200), g, seed=0) < 0.01
    assert stats.sign_flip_p(rng.normal(0, 0.05, 200), g, seed=0) > 0.05


def test_verdict_rule():
    assert stats.verdict("unet", "densenet", (-0.02, 0.03)) == stats.NO_CLEAR_DIFFERENCE
    assert stats.verdict("unet", "densenet", (0.01, 0.03)) == "unet higher"
    assert stats.verdict("unet", "densenet", (-0.05, -0.01)) == "densenet higher"


def test_paired_comparison_on_the_same_images(rng):
    g = np.repeat(np.arange(40), 5)
    b = rng.uniform(0.4, 0.9, 200)
    better = stats.paired_comparison("a", "b", b + 0.1, b, g)
    assert better.diff_mean == pytest.approx(0.1)
    assert better.verdict == "a higher" and better.diff_ci95[0] > 0 and better.p_value < 0.01
    same = stats.paired_comparison("a", "b", b + rng.normal(0, 0.1, 200), b, g)
    assert same.verdict == stats.NO_CLEAR_DIFFERENCE
    assert same.to_dict()["n_groups"] == 40
    with pytest.raises(ValueError, match="length"):
        stats.paired_comparison("a", "b", b, b[:-1], g)


def test_lower_median_index_is_a_typical_case():
    from nervseg.evaluate.stats import lower_median_index

    assert lower_median_index([0.9, 0.1, 0.52, 0.7, 0.3]) == 2  # the middle of five
    assert lower_median_index([0.8, 0.564, 0.670, 0.2]) == 1  # even: the lower middle, never the flattering one
    assert lower_median_index([0.5, 0.5, 0.5]) == 1  # equal values keep their order
    with pytest.raises(ValueError):
        lower_median_index([])
