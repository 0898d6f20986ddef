"""Training losses: Dice + cross-entropy, with Dice pooled over the batch or taken per image,
a recall-weighted (Tversky) variant, and a nerve-only loss for co-training on data that
labels the nerve alone."""

from __future__ import annotations

from functools import partial

# Tversky weights of the "image-tversky-ce" loss: a miss costs more than a false alarm. The
# usgra vessel failures are whole vessels predicted absent (README), which this leans against.
TVERSKY_FP_WEIGHT, TVERSKY_FN_WEIGHT = 0.3, 0.7
LOSS_DESCRIPTIONS = {
    "dice-ce": "Dice (pooled over the batch) + cross-entropy (multiclass)",
    "image-dice-ce": "Dice per image (classes present in it) + cross-entropy (multiclass)",
    "image-tversky-ce": f"Tversky per image (classes present in it; false negatives weighted "
    f"{TVERSKY_FN_WEIGHT}, false positives {TVERSKY_FP_WEIGHT}) + cross-entropy (multiclass)",
}
LOSSES = tuple(LOSS_DESCRIPTIONS)


def image_dice_loss(logits, target, smooth: float = 1.0, fp_weight: float = 0.5, fn_weight: float = 0.5):
    """1 - mean soft Dice over the (image, class) pairs whose class is present in that image.

    The quality figure is the per-image mean Dice, in which a small nerve missed in one
    image costs as much as a large one; smp's DiceLoss pools each class over the batch,
    where large structures dominate. smp has no per-image mode, hence these few lines.
    Absent classes are left out (as smp does); cross-entropy penalises false positives there.
    Weights other than 0.5/0.5 make it the Tversky loss (Salehi et al. 2017).
    """
    import torch.nn.functional as F

    n_classes = logits.shape[1]
    probs = logits.softmax(1)
    onehot = F.one_hot(target.long(), n_classes).permute(0, 3, 1, 2).to(probs.dtype)
    return _present_dice_loss(probs, onehot, smooth, fp_weight, fn_weight)


def _present_dice_loss(probs, truth, smooth: float, fp_weight: float = 0.5, fn_weight: float = 0.5):
    """1 - mean soft Dice (Tversky index for unequal weights) over the last-two-dims maps
    whose truth is not empty. With weights 0.5/0.5 this is exactly the Dice coefficient."""
    inter = (probs * truth).sum((-2, -1))
    area = truth.sum((-2, -1))
    false_pos = probs.sum((-2, -1)) - inter
    false_neg = area - inter
    denominator = 2 * inter + 2 * fp_weight * false_pos + 2 * fn_weight * false_neg + smooth
    dice = (2 * inter + smooth) / denominator
    present = (area > 0).to(probs.dtype)
    return 1 - (dice * present).sum() / present.sum().clamp(min=1)


def make_loss(name: str):
    """The training loss `name` (one of LOSSES) as a function of (logits, target)."""
    import torch
    from segmentation_models_pytorch.losses import DiceLoss

    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
    ce = torch.nn.CrossEntropyLoss()
    if name == "dice-ce":
        dice = DiceLoss(mode="multiclass", from_logits=True)
    elif name == "image-tversky-ce":
        dice = partial(image_dice_loss, fp_weight=TVERSKY_FP_WEIGHT, fn_weight=TVERSKY_FN_WEIGHT)
    else:
        dice = image_dice_loss
    return lambda logits, target: dice(logits, target) + ce(logits, target)


def nerve_only_loss(logits, nerve, nerve_class: int = 1, smooth: float = 1.0):
    """Dice per image + cross-entropy of "nerve" against "anything else" for multiclass logits.

    Co-training images (kaggle-bp) label the nerve and nothing else: their unlabelled vessels
    must not be taught as background. So the other classes' probabilities are summed into one
    "not nerve" probability (a marginal loss for partially labelled data) and only that
    two-way split is scored. `nerve` is (N, H, W) with 1 for nerve and 0 elsewhere.
    """
    import torch

    log_p = logits.log_softmax(1)
    log_nerve = log_p[:, nerve_class]
    others = [c for c in range(logits.shape[1]) if c != nerve_class]
    log_other = torch.logsumexp(log_p[:, others], dim=1)
    target = nerve.to(log_p.dtype)
    ce = -(target * log_nerve + (1 - target) * log_other).mean()
    return _present_dice_loss(log_nerve.exp(), target, smooth) + ce
