"""nervseg.preprocess: identity default, validation, round trip, determinism, visible effects."""

from __future__ import annotations

import numpy as np
import pytest

from nervseg.io.readers import load_image
from nervseg.preprocess import Preprocess, PreprocessError, apply


def _low_contrast(rng, shape=(128, 128)) -> np.ndarray:
    """Structured image squeezed into grey levels 100..130."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    base = 0.5 + 0.5 * np.sin(x / 6.0) * np.cos(y / 9.0)
    return (100 + 30 * base + rng.normal(0, 1, shape)).clip(0, 255).astype(np.uint8)


def test_default_is_identity(rng):
    img = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    s = Preprocess()
    assert s.is_identity and s.describe() == "none"
    out = apply(img, s)
    np.testing.assert_array_equal(out, img)
    assert out is not img  # a copy: callers may modify it
    np.testing.assert_array_equal(apply(img, None), img)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"clahe_clip": -1},
        {"clahe_clip": 11},
        {"clahe_tile": 1},
        {"median_kernel": 4},
        {"median_kernel": 17},
        {"gaussian_sigma": 6},
        {"nlm_strength": -0.5},
        {"clahe_clip": "high"},
        {"median_kernel": True},
    ],
)
def test_out_of_range_refused(kwargs):
    with pytest.raises(PreprocessError):
        Preprocess(**kwargs)


def test_dict_round_trip_and_unknown_keys():
    s = Preprocess(clahe_clip=2.5, clahe_tile=4, median_kernel=5, gaussian_sigma=1.2, nlm_strength=7)
    d = s.to_dict()
    assert Preprocess.from_dict(d) == s
    assert Preprocess.from_dict({}) == Preprocess() == Preprocess.from_dict(None)
    # JSON may give floats for ints: still accepted
    assert Preprocess.from_dict({"median_kernel": 5.0}).median_kernel == 5
    with pytest.raises(PreprocessError, match="clahe_clp"):
        Preprocess.from_dict({"clahe_clp": 2})
    assert "median 5" in s.describe() and "CLAHE" in s.describe() and not s.is_identity


def test_apply_rejects_wrong_input():
    with pytest.raises(PreprocessError):
        apply(np.zeros((10, 10), np.float32))
    with pytest.raises(PreprocessError):
        apply(np.zeros((10, 10, 3), np.uint8))


def test_deterministic(rng):
    img = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    s = Preprocess(clahe_clip=3, median_kernel=3, gaussian_sigma=0.8, nlm_strength=5)
    a, b = apply(img, s), apply(img, s)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, img)


def _local_std(img: np.ndarray, k: int = 15) -> float:
    import cv2

    f = img.astype(np.float32)
    mean = cv2.blur(f, (k, k))
    sq = cv2.blur(f * f, (k, k))
    return float(np.sqrt(np.maximum(sq - mean * mean, 0)).mean())


def test_clahe_raises_local_contrast(rng):
    img = _low_contrast(rng)
    out = apply(img, Preprocess(clahe_clip=3.0, clahe_tile=8))
    assert out.std() > 1.5 * img.std()
    assert _local_std(out) > 1.5 * _local_std(img)


def test_median_removes_salt_and_pepper(rng):
    clean = np.full((96, 96), 128, np.uint8)
    noisy = clean.copy()
    sel = rng.random(clean.shape)
    noisy[sel < 0.03], noisy[sel > 0.97] = 0, 255
    outliers_before = int(np.count_nonzero((noisy == 0) | (noisy == 255)))
    out = apply(noisy, Preprocess(median_kernel=3))
    outliers_after = int(np.count_nonzero((out == 0) | (out == 255)))
    assert outliers_before > 400
    assert outliers_after < outliers_before / 20


def test_gaussian_smooths(rng):
    img = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    out = apply(img, Preprocess(gaussian_sigma=2.0))
    grad = lambda a: np.abs(np.diff(a.astype(float), axis=1)).mean()  # noqa: E731
    assert grad(out) < grad(img) / 3
    assert abs(out.mean() - img.mean()) < 3  # blurring keeps brightness


def test_nlm_reduces_noise(rng):
    clean = np.full((64, 64), 120, np.uint8)
    clean[16:48, 16:48] = 180
    noisy = (clean + rng.normal(0, 12, clean.shape)).clip(0, 255).astype(np.uint8)
    out = apply(noisy, Preprocess(nlm_strength=15))
    err_before = np.abs(noisy.astype(float) - clean).mean()
    err_after = np.abs(out.astype(float) - clean).mean()
    assert err_after < err_before / 2
    assert out[20:44, 20:44].std() < noisy[20:44, 20:44].std() / 2


def test_order_and_real_image(kaggle_pair):
    img = load_image(kaggle_pair[0])
    s = Preprocess(clahe_clip=2.0, median_kernel=5)
    out = apply(img, s)
    assert out.shape == img.shape and out.dtype == np.uint8
    # the median (applied first) then CLAHE: same as doing it by hand in that order
    np.testing.assert_array_equal(out, apply(apply(img, Preprocess(median_kernel=5)), Preprocess(clahe_clip=2.0)))


def test_the_registry_defines_fields_ranges_and_defaults():
    from nervseg.preprocess import FILTERS, PARAMS

    assert Preprocess.names() == list(PARAMS)
    assert set(PARAMS) == {"clahe_clip", "clahe_tile", "median_kernel", "gaussian_sigma", "nlm_strength"}
    assert Preprocess().to_dict() == {k: p.default for k, p in PARAMS.items()}
    for p in PARAMS.values():
        assert isinstance(p.default, p.type) and p.min <= p.default <= p.max and p.label and p.help
        for bad in (p.min - p.step, p.max + p.step):
            with pytest.raises(PreprocessError, match=f"{p.name} must be between"):
                Preprocess(**{p.name: p.type(bad)})
    assert [f.key for f in FILTERS] == ["nlm", "median", "gaussian", "clahe"]  # the order they run in


def test_each_filter_alone_is_described_and_applied_in_registry_order(rng):
    from nervseg.preprocess import FILTERS

    img = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    on = {"nlm_strength": 5.0, "median_kernel": 3, "gaussian_sigma": 1.0, "clahe_clip": 2.0}
    for f in FILTERS:
        switch = f.params[0].name
        alone = Preprocess(**{switch: on[switch]})
        assert not alone.is_identity and alone.describe() == f.summary.format(**alone.to_dict())
        np.testing.assert_array_equal(apply(img, alone), f(img, alone.to_dict()))
    everything = Preprocess(**on)
    expected = img
    for f in FILTERS:
        expected = f(expected, everything.to_dict())
    np.testing.assert_array_equal(apply(img, everything), expected)
    assert everything.describe() == "NLM h=5, median 3, Gaussian σ=1, CLAHE clip=2 tiles=8"


def test_odd_kernel_rule_and_snap():
    from nervseg.preprocess import PARAMS

    kernel = PARAMS["median_kernel"]
    assert [kernel.snap(v) for v in (0, 1, 2, 3, 4)] == [0, 1, 3, 3, 5]
    assert PARAMS["gaussian_sigma"].snap(0.4) == 0.4
    assert Preprocess(median_kernel=1).is_identity  # 1 is the identity kernel
    with pytest.raises(PreprocessError, match="median_kernel must be odd, got 2"):
        Preprocess(median_kernel=2)
