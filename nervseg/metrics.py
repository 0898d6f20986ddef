"""Overlap and distance metrics per class, with one rule for empty masks.

Empty-mask rule (applied by every function here, and so everywhere in nervseg):
- both prediction and truth empty for the class: Dice = IoU = precision =
  sensitivity = 1 (the rule of the 2016 Kaggle nerve challenge) and HD95 = None
  (no surfaces to measure);
- exactly one of them empty: Dice = IoU = 0 and HD95 = infinity (float("inf"),
  never an exception); precision (nothing predicted) or sensitivity (nothing to
  find), being 0/0, count as 0.
Specificity is TN / (TN + FP), and 1 when the image has no background of that class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

METRIC_KEYS = ("dice", "iou", "precision", "sensitivity", "specificity", "hd95")


def _ratio(num: int, den: int, both_empty: bool) -> float:
    """num/den with 0/0 -> 1 when both masks are empty (nothing to find, nothing found), else 0."""
    if den == 0:
        return 1.0 if both_empty else 0.0
    return num / den


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), border_value=0)


def _union_box(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cut to the box around their union, plus a 1-pixel empty border.

    Every surface pixel of either mask, and so every nearest partner, lies inside the box, so
    the distance transforms over it give the full image's distances exactly, in a fraction of
    the time (a nerve covers a few percent of a scan).
    """
    rows = np.flatnonzero((pred | true).any(axis=1))
    cols = np.flatnonzero((pred | true).any(axis=0))
    box = (slice(max(rows[0] - 1, 0), rows[-1] + 2), slice(max(cols[0] - 1, 0), cols[-1] + 2))
    return pred[box], true[box]


def hd95(pred: np.ndarray, true: np.ndarray, spacing: tuple[float, float] | None = None) -> float | None:
    """95th percentile of symmetric surface distances (pixels, or mm with `spacing`).

    None when both masks are empty, infinity when exactly one is. Distances come from
    scipy's exact Euclidean distance transform.
    """
    pred, true = pred.astype(bool), true.astype(bool)
    if not pred.any() and not true.any():
        return None
    if not pred.any() or not true.any():
        return math.inf
    sampling = spacing if spacing else None
    pred, true = _union_box(pred, true)
    sp, st = _surface(pred), _surface(true)
    d_to_true = ndimage.distance_transform_edt(~st, sampling=sampling)
    d_to_pred = ndimage.distance_transform_edt(~sp, sampling=sampling)
    distances = np.concatenate([d_to_true[sp], d_to_pred[st]])
    return float(np.percentile(distances, 95))


def confusion(pred: np.ndarray, true: np.ndarray) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) pixel counts of two boolean masks."""
    pred, true = pred.astype(bool), true.astype(bool)
    tp = int(np.count_nonzero(pred & true))
    fp = int(np.count_nonzero(pred & ~true))
    fn = int(np.count_nonzero(~pred & true))
    tn = int(pred.size - tp - fp - fn)
    return tp, fp, fn, tn


def from_counts(tp: int, fp: int, fn: int, tn: int) -> dict:
    """Overlap metrics from pixel counts, under the empty-mask rule."""
    both_empty = tp + fp + fn == 0
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        "iou": _ratio(tp, tp + fp + fn, both_empty),
        "precision": _ratio(tp, tp + fp, both_empty),
        "sensitivity": _ratio(tp, tp + fn, both_empty),
        "specificity": tn / (tn + fp) if tn + fp else 1.0,
    }


def score(
    pred_mask: np.ndarray,
    true_mask: np.ndarray,
    class_id: int = 1,
    spacing: tuple[float, float] | None = None,
) -> dict:
    """Dice, IoU, precision, sensitivity, specificity, HD95 of one class in one image.

    Masks are (H, W) class-id arrays of the same shape. HD95 is in pixels, or in mm
    when `spacing` (row, column mm per pixel) is given. Precision with nothing
    predicted, and sensitivity with nothing to find, are 0/0: they count as 1 when
    both masks are empty and 0 otherwise. Also returns the pixel counts tp, fp, fn, tn.
    """
    if pred_mask.shape != true_mask.shape:
        raise ValueError(f"mask shapes differ: {pred_mask.shape} vs {true_mask.shape}")
    p, t = pred_mask == class_id, true_mask == class_id
    tp, fp, fn, tn = confusion(p, t)
    out = from_counts(tp, fp, fn, tn)
    out["hd95"] = hd95(p, t, spacing)
    out.update(tp=tp, fp=fp, fn=fn, tn=tn)
    return out


def class_rows(pred_mask: np.ndarray, true_mask: np.ndarray, classes: list[str],
               spacing: tuple[float, float] | None = None) -> list[dict]:
    """The one per-image score row, one per foreground class: its `score`, plus `class`, `truth_empty`,
    `pred_empty` and `absent` (the class in neither mask: its Dice of 1 says nothing about a model).

    The batch scorer (nervseg.evaluate.batch) and the cross-validation (nervseg.cv.run) add their own
    context to these rows (model and image; task, fold and group).
    """
    rows = []
    for cid, cname in enumerate(classes):
        if cid == 0:
            continue
        s = score(pred_mask, true_mask, cid, spacing)
        rows.append({"class": cname, "truth_empty": int(s["tp"] + s["fn"] == 0), "pred_empty": int(s["tp"] + s["fp"] == 0),
                     "absent": int(s["tp"] + s["fp"] + s["fn"] == 0), **s})
    return rows


@dataclass
class Summary:
    """Per-image mean and sd of each metric, and pooled over all pixels."""

    n_images: int
    mean: dict
    sd: dict
    pooled: dict
    hd95_infinite: int  # images where exactly one mask was empty

    def to_dict(self) -> dict:
        return {
            "n_images": self.n_images,
            "mean": self.mean,
            "sd": self.sd,
            "pooled": self.pooled,
            "hd95_infinite": self.hd95_infinite,
        }


def aggregate(scores: list[dict]) -> Summary:
    """Summarise `score` results over images.

    HD95 mean/sd is over the images where it is finite; the count of infinite
    values (one mask empty) is reported beside it. Pooled metrics add up the
    pixel counts of all images first, so large structures weigh more.
    """
    mean, sd = {}, {}
    for key in METRIC_KEYS:
        vals = [s[key] for s in scores if s.get(key) is not None and math.isfinite(s[key])]
        mean[key] = float(np.mean(vals)) if vals else None
        sd[key] = float(np.std(vals, ddof=1)) if len(vals) > 1 else (0.0 if vals else None)
    totals = [sum(int(s[k]) for s in scores) for k in ("tp", "fp", "fn", "tn")]
    pooled = from_counts(*totals) if scores else {}
    inf = sum(1 for s in scores if s.get("hd95") is not None and math.isinf(s["hd95"]))
    return Summary(len(scores), mean, sd, pooled, inf)


def dice_batch(pred: np.ndarray, true: np.ndarray, class_id: int = 1) -> np.ndarray:
    """(N,) Dice of one class for each of N image pairs (N, H, W), under the empty-mask rule.

    Vectorised over images and without HD95: training validation and agreement matrices
    need only Dice, and the surface distances would cost more than the rest together.
    """
    p, t = pred == class_id, true == class_id
    inter = (p & t).sum(axis=(-2, -1))
    denom = p.sum(axis=(-2, -1)) + t.sum(axis=(-2, -1))
    return np.where(denom == 0, 1.0, 2 * inter / np.maximum(denom, 1))


def dice_per_image(pred: np.ndarray, true: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, C-1) Dice per image and foreground class (classes 1..C-1)."""
    return np.stack([dice_batch(pred, true, c) for c in range(1, n_classes)], axis=1)


def pairwise_dice(masks: list[np.ndarray], class_id: int = 1) -> np.ndarray:
    """(N, N) Dice of one class between every two of N same-shape masks (diagonal 1).

    The agreement between models on one image; symmetric, so each pair is computed once.
    """
    n = len(masks)
    out = np.ones((n, n))
    if n < 2:
        return out
    stack = np.stack(masks)
    for i in range(n - 1):
        d = dice_batch(stack[i + 1:], np.broadcast_to(stack[i], stack[i + 1:].shape), class_id)
        out[i, i + 1:] = out[i + 1:, i] = d
    return out
