"""nervseg.train.losses: the per-image Dice loss weighs every image's structure equally."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from nervseg.train.losses import image_dice_loss, make_loss, nerve_only_loss  # noqa: E402


def confident_logits(labels: torch.Tensor, n_classes: int = 3) -> torch.Tensor:
    """Logits that put ~all probability on `labels`."""
    return torch.nn.functional.one_hot(labels, n_classes).permute(0, 3, 1, 2).float() * 30.0


def two_images() -> tuple[torch.Tensor, torch.Tensor]:
    """Image 0: a large nerve found; image 1: a small nerve missed (predicted background)."""
    target = torch.zeros(2, 64, 64, dtype=torch.long)
    target[0, 8:48, 8:48] = 1  # 1600 px
    target[1, 30:34, 30:34] = 1  # 16 px
    pred = target.clone()
    pred[1] = 0
    return confident_logits(pred), target


def test_perfect_prediction_has_zero_loss():
    _, target = two_images()
    assert image_dice_loss(confident_logits(target), target).item() == pytest.approx(0.0, abs=1e-4)


def test_a_missed_small_structure_costs_a_whole_image_share():
    logits, target = two_images()
    # present (image, class) pairs: bg and nerve in both images; only image 1's nerve is wrong
    bg1 = 2 * (4096 - 16) / (4096 + 4096 - 16)
    expected = 1 - (1 + 1 + bg1 + 1 / 17) / 4  # the missed nerve keeps only the smoothing term
    assert image_dice_loss(logits, target).item() == pytest.approx(expected, abs=1e-3)
    # pooled over the batch (smp's DiceLoss) the 16 missed pixels barely register
    from segmentation_models_pytorch.losses import DiceLoss

    pooled = DiceLoss(mode="multiclass", from_logits=True)(logits, target).item()
    assert pooled < 0.01 < 0.2 < image_dice_loss(logits, target).item()


def test_tversky_weights_price_a_miss_above_dice_and_a_false_alarm_below_it():
    target = torch.zeros(1, 32, 32, dtype=torch.long)
    target[0, 8:24, 8:24] = 1  # 256 px
    missed_half = target.clone()
    missed_half[0, 16:24, 8:24] = 0  # 128 px false negatives
    overshoot = target.clone()
    overshoot[0, 24:32, 8:24] = 1  # 128 px false positives
    tversky = make_loss("image-tversky-ce")
    dice = make_loss("image-dice-ce")
    miss, alarm = confident_logits(missed_half), confident_logits(overshoot)
    assert tversky(miss, target).item() > dice(miss, target).item() + 0.01
    assert tversky(alarm, target).item() < dice(alarm, target).item() - 0.01
    perfect = confident_logits(target)
    assert image_dice_loss(perfect, target, fp_weight=0.3, fn_weight=0.7).item() == pytest.approx(0.0, abs=1e-4)


def test_make_loss_adds_cross_entropy_and_rejects_unknown_names():
    logits, target = two_images()
    ce = torch.nn.functional.cross_entropy(logits, target).item()
    assert make_loss("image-dice-ce")(logits, target).item() == pytest.approx(
        image_dice_loss(logits, target).item() + ce, rel=1e-5)
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("focal")


def test_nerve_only_loss_does_not_punish_an_unlabelled_vessel():
    """On nerve-only labels, calling a region vessel or background costs the same."""
    nerve = torch.zeros(1, 32, 32, dtype=torch.long)
    nerve[0, 4:12, 4:12] = 1
    as_background = nerve.clone()
    as_vessel = nerve.clone()
    as_vessel[0, 20:28, 20:28] = 2  # a vessel the co-training label does not know about
    a = nerve_only_loss(confident_logits(as_background), nerve).item()
    b = nerve_only_loss(confident_logits(as_vessel), nerve).item()
    assert a == pytest.approx(0.0, abs=1e-4)
    assert b == pytest.approx(a, abs=1e-4)
    # while the multiclass loss would teach that vessel as background
    assert make_loss("image-dice-ce")(confident_logits(as_vessel), nerve).item() > 1.0


def test_nerve_only_loss_punishes_a_missed_nerve_and_has_gradients():
    nerve = torch.zeros(1, 32, 32, dtype=torch.long)
    nerve[0, 4:12, 4:12] = 1
    logits = confident_logits(torch.zeros_like(nerve)).requires_grad_(True)
    loss = nerve_only_loss(logits, nerve)
    loss.backward()
    assert loss.item() > 1.0  # Dice ~1 lost plus the cross-entropy of 64 confident misses
    assert logits.grad[0, 1, 4:12, 4:12].lt(0).all()  # raising the nerve logit there lowers the loss
