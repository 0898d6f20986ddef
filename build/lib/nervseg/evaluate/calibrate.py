"""Presence calibration: out-of-fold (score, present) pairs -> a card's `presence` block.

The block's schema is nervseg.evaluate.presence's. Isotonic regression is the default: it assumes only
that a higher max-probability never means a lower chance of presence, which suits a score whose
shape nobody designed; Platt (a logistic curve) is the smoother choice when there are few
images. Isotonic regression is a pool-adjacent-violators pass of a dozen lines, written here
rather than adding scikit-learn (hundreds of MB) for one function.
The "found" threshold is chosen on the same out-of-fold pairs, maximising Youden's J
(sensitivity + specificity - 1); `cross_fitted` measures it honestly, on groups not used to fit.
"""

from __future__ import annotations

import numpy as np

from nervseg.evaluate.presence import SCORE, calibrated_probability

METHODS = ("isotonic", "platt")
PLATT_GRID = 21  # points at which a Platt curve is stored for interpolation


class CalibrationError(ValueError):
    """Pairs that cannot be calibrated (one label only, bad shapes)."""


def pav(y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Pool adjacent violators: the non-decreasing fit to `y` (in score order) minimising weighted squares."""
    y = np.asarray(y, np.float64)
    w = np.ones_like(y) if w is None else np.asarray(w, np.float64)
    vals, wts, lens = [], [], []
    for yi, wi in zip(y, w):
        vals.append(yi), wts.append(wi), lens.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v2, w2, n2 = vals.pop(), wts.pop(), lens.pop()
            wts[-1], vals[-1] = wts[-1] + w2, (vals[-1] * wts[-1] + v2 * w2) / (wts[-1] + w2)
            lens[-1] += n2
    return np.repeat(vals, lens)


def _check(scores, present) -> tuple[np.ndarray, np.ndarray]:
    s, t = np.asarray(scores, np.float64), np.asarray(present).astype(bool)
    if s.ndim != 1 or s.shape != t.shape or not np.isfinite(s).all():
        raise CalibrationError("scores and labels must be finite 1-D arrays of one length")
    if t.all() or not t.any():
        raise CalibrationError(f"need both present and absent images (present {int(t.sum())} of {t.size})")
    return s, t


def fit_isotonic(scores, present) -> tuple[list[float], list[float]]:
    """Curve points (x ascending, y): one per distinct score, y the isotonic fit of presence."""
    s, t = _check(scores, present)
    xs, inv = np.unique(s, return_inverse=True)
    counts = np.bincount(inv).astype(np.float64)
    frac = np.bincount(inv, weights=t.astype(np.float64)) / counts
    ys = pav(frac, counts)
    keep = np.r_[True, np.diff(ys) != 0] | np.r_[np.diff(ys) != 0, True]  # drop the flat interiors
    return xs[keep].tolist(), ys[keep].tolist()


def fit_platt(scores, present) -> tuple[list[float], list[float]]:
    """Logistic p = 1 / (1 + exp(-(a*s + b))) by maximum likelihood, stored on a grid over [0, 1]."""
    from scipy.optimize import minimize

    s, t = _check(scores, present)
    # Platt's targets (n+ + 1)/(n+ + 2) and 1/(n- + 2) keep separable data from infinite slopes
    n1, n0 = t.sum(), (~t).sum()
    y = np.where(t, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))

    def nll(ab):
        z = ab[0] * s + ab[1]
        return float(np.sum(np.logaddexp(0, z) - y * z))

    a, b = minimize(nll, x0=[1.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9}).x
    xs = np.linspace(0.0, 1.0, PLATT_GRID)
    ys = 1 / (1 + np.exp(-(a * xs + b)))
    if a < 0:  # a score that predicts absence is no calibration: keep it monotone (flat at the base rate)
        ys = np.full_like(xs, t.mean())
    return xs.tolist(), ys.tolist()


def detection(prob, present, threshold: float) -> tuple[float, float]:
    """(sensitivity, specificity) of "found" = prob >= threshold."""
    p, t = np.asarray(prob, np.float64), np.asarray(present).astype(bool)
    found = p >= threshold
    sens = float(found[t].mean()) if t.any() else float("nan")
    spec = float((~found[~t]).mean()) if (~t).any() else float("nan")
    return sens, spec


def youden_threshold(prob, present) -> float:
    """The threshold on calibrated probability maximising sensitivity + specificity - 1.

    Candidates are midpoints between distinct probabilities (so a new image's score is judged by
    where it falls, not by a tie); the highest J wins, ties going to the lower threshold.
    """
    p, t = np.asarray(prob, np.float64), np.asarray(present).astype(bool)
    levels = np.unique(p)
    cands = (levels[:-1] + levels[1:]) / 2 if len(levels) > 1 else levels
    best, best_j = float(cands[0]), -np.inf
    for c in cands:
        sens, spec = detection(p, t, c)
        if sens + spec - 1 > best_j + 1e-12:
            best, best_j = float(c), sens + spec - 1
    return best


def fit_presence(scores, present, method: str = "isotonic", measured_on: str = "") -> dict:
    """One class's card `presence` entry (nervseg.evaluate.presence schema) from out-of-fold pairs."""
    if method not in METHODS:
        raise CalibrationError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    s, t = _check(scores, present)
    x, y = fit_isotonic(s, t) if method == "isotonic" else fit_platt(s, t)
    block = {"score": SCORE, "x": x, "y": y, "method": method, "measured_on": measured_on}
    prob = [calibrated_probability(block, v) for v in s]
    thr = youden_threshold(prob, t)
    sens, spec = detection(prob, t, thr)
    return {**block, "threshold": thr, "sensitivity": sens, "specificity": spec,
            "n_present": int(t.sum()), "n_absent": int((~t).sum())}


def cross_fitted(scores, present, folds, method: str = "isotonic") -> dict:
    """Detection measured honestly: each fold's images judged by a calibration fitted on the others.

    Returns the out-of-fold "found" decisions and their sensitivity/specificity; folds whose
    complement has only one label fall back to the uncalibrated rule score >= 0.5.
    """
    s, t, f = np.asarray(scores, np.float64), np.asarray(present).astype(bool), np.asarray(folds)
    found = np.zeros(s.shape, bool)
    for k in np.unique(f):
        test, fit = f == k, f != k
        try:
            block = fit_presence(s[fit], t[fit], method)
            found[test] = [calibrated_probability(block, v) >= block["threshold"] for v in s[test]]
        except CalibrationError:
            found[test] = s[test] >= 0.5
    sens, spec = detection(found.astype(float), t, 0.5)
    return {"found": found.tolist(), "sensitivity": sens, "specificity": spec}
