"""nervseg.inference.segmenter round trip with random-weight cards (never trained, never shipped)."""

from __future__ import annotations

import numpy as np
import pytest

from nervseg.inference.segmenter import Prediction, load, threshold_mask
from nervseg.models.card_ops import remove_small
from nervseg.preprocess import Preprocess


@pytest.fixture(scope="module")
def seg(random_model_dir):
    return load("random-unet", models_dir=random_model_dir, device="cpu")


@pytest.mark.parametrize("shape", [(64, 64), (97, 131), (33, 200)])
def test_predict_shapes_and_types(seg, rng, shape):
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    p = seg.predict(img)
    assert isinstance(p, Prediction)
    assert p.probs.shape == (3, *shape) and p.probs.dtype == np.float32
    np.testing.assert_allclose(p.probs.sum(axis=0), 1.0, atol=1e-5)
    assert p.mask.shape == shape and p.mask.dtype == np.uint8
    np.testing.assert_array_equal(p.mask, p.probs.argmax(axis=0))
    assert p.seconds > 0
    assert p.classes == ["background", "nerve", "vessel"]
    assert set(p.confidence) == {"nerve", "vessel"}


def test_each_architecture_predicts(random_model_dir, rng):
    img = rng.integers(0, 256, (70, 90), dtype=np.uint8)
    for arch in ("unet", "densenet", "sk-unet"):
        s = load(f"random-{arch}", models_dir=random_model_dir, device="cpu")
        assert s.card.architecture == arch
        assert s.predict(img).probs.shape == (3, 70, 90)


def test_predict_many_equals_predict(seg, rng):
    images = [rng.integers(0, 256, s, dtype=np.uint8) for s in [(64, 64), (80, 50), (45, 99)]]
    many = seg.predict_many(images, batch_size=2)
    assert len(many) == 3
    for img, m in zip(images, many, strict=True):
        one = seg.predict(img)
        np.testing.assert_allclose(m.probs, one.probs, atol=1e-4)  # batched kernels round differently
        assert np.mean(m.mask != one.mask) < 0.001  # argmax ties may flip a rare pixel


def test_tta_runs_and_differs(random_model_dir, rng):
    img = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    plain = load("random-unet", models_dir=random_model_dir, device="cpu").predict(img)
    tta = load("random-unet", models_dir=random_model_dir, device="cpu", tta=True).predict(img)
    assert tta.probs.shape == plain.probs.shape
    np.testing.assert_allclose(tta.probs.sum(axis=0), 1.0, atol=1e-5)
    assert not np.allclose(tta.probs, plain.probs)  # averaging with the flipped pass changes it


def test_preprocess_override_changes_input(seg, rng):
    img = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    base = seg.predict(img)
    same = seg.predict(img, preprocess=Preprocess())  # card's preprocessing is identity too
    np.testing.assert_allclose(base.probs, same.probs, atol=1e-6)
    blurred = seg.predict(img, preprocess=Preprocess(gaussian_sigma=3.0))
    assert np.abs(blurred.probs - base.probs).max() > 1e-3


def test_card_preprocess_is_default(tmp_path, rng, random_card_factory):
    random_card_factory(tmp_path, "unet", model_id="with-clahe", preprocess={"clahe_clip": 3.0})
    s = load("with-clahe", models_dir=tmp_path, device="cpu")
    img = rng.integers(90, 140, (64, 64), dtype=np.uint8)
    default = s.predict(img)
    explicit = s.predict(img, preprocess=Preprocess(clahe_clip=3.0))
    identity = s.predict(img, preprocess=Preprocess())
    np.testing.assert_allclose(default.probs, explicit.probs, atol=1e-6)
    assert np.abs(default.probs - identity.probs).max() > 1e-3


def test_rejects_non_uint8(seg):
    with pytest.raises(ValueError, match="uint8"):
        seg.predict(np.zeros((64, 64), np.float32))


def test_threshold_mask_and_mask_at():
    probs = np.zeros((3, 2, 2), np.float32)
    probs[:, 0, 0] = (0.2, 0.7, 0.1)
    probs[:, 0, 1] = (0.5, 0.3, 0.2)
    probs[:, 1, 0] = (0.1, 0.35, 0.55)
    probs[:, 1, 1] = (0.9, 0.05, 0.05)
    np.testing.assert_array_equal(threshold_mask(probs, 0.5), [[1, 0], [2, 0]])
    np.testing.assert_array_equal(threshold_mask(probs, 0.3), [[1, 1], [2, 0]])
    p = Prediction(probs, probs.argmax(0).astype(np.uint8), ["bg", "nerve", "vessel"], 0.1)
    np.testing.assert_array_equal(p.mask_at(0.6), [[1, 0], [0, 0]])


def test_remove_small():
    m = np.zeros((20, 20), np.uint8)
    m[2:10, 2:10] = 1  # 64 px
    m[15, 15] = 1  # 1 px speck
    m[12:14, 2:4] = 2  # 4 px of class 2
    out = remove_small(m, 5)
    assert out[15, 15] == 0 and out[2:10, 2:10].all() and not (out == 2).any()
    np.testing.assert_array_equal(remove_small(m, 0), m)


def test_real_image_at_its_resolution(seg, usgra_pair):
    from nervseg.io.readers import load_image

    img = load_image(usgra_pair[0])
    p = seg.predict(img)
    assert p.mask.shape == img.shape and p.probs.shape[1:] == img.shape


def test_remove_small_equals_a_scipy_labelling(rng):
    """The bounding-box labelling drops exactly the components scipy finds too small (8-connected)."""
    from scipy import ndimage

    for trial in range(5):
        m = (rng.random((90, 120)) < 0.08 + 0.1 * trial).astype(np.uint8) * rng.integers(1, 3, (90, 120), dtype=np.uint8)
        m[10:40, 20:70] = 1  # one large component
        want = m.copy()
        for c in (1, 2):
            labels, n = ndimage.label(m == c, structure=np.ones((3, 3)))
            sizes = np.bincount(labels.ravel())
            want[(labels > 0) & (sizes[labels] < 6)] = 0
        np.testing.assert_array_equal(remove_small(m, 6), want)
