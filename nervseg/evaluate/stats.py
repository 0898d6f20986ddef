"""Uncertainty of cross-validated figures: group bootstrap CIs and paired comparisons.

Images of one group (a kaggle-bp subject, a usgra near-duplicate cluster) are not independent,
so every resampling here draws whole groups: an image-level bootstrap would make the CIs too
narrow. All draws are seeded, so a summary file is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BOOT = 2000
N_PERM = 10000
NO_CLEAR_DIFFERENCE = "no clear difference"


def _group_sums(values, groups) -> tuple[np.ndarray, np.ndarray]:
    """Per-group sums and counts of `values` (1-D, finite)."""
    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(groups)
    if v.ndim != 1 or v.shape != g.shape:
        raise ValueError(f"values and groups must be 1-D of one length, got {v.shape} and {g.shape}")
    if v.size == 0:
        raise ValueError("no values")
    if not np.isfinite(v).all():
        raise ValueError("values must be finite")
    _, inv = np.unique(g, return_inverse=True)
    return np.bincount(inv, weights=v), np.bincount(inv).astype(np.float64)


def group_bootstrap_ci(values, groups, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean over images, and a percentile CI from resampling groups with replacement.

    Each draw takes as many groups as there are, with replacement, and averages all their images
    (large groups weigh by their image count, as in the mean itself). One group: CI = (mean, mean).
    """
    sums, counts = _group_sums(values, groups)
    mean = float(sums.sum() / counts.sum())
    n_groups = len(sums)
    if n_groups < 2:
        return mean, mean, mean
    idx = np.random.default_rng(seed).integers(0, n_groups, size=(n_boot, n_groups))
    draws = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(draws, [a, 1 - a])
    return mean, float(lo), float(hi)


def sign_flip_p(diffs, groups, n_perm: int = N_PERM, seed: int = 0) -> float:
    """Two-sided p-value of "mean difference = 0", flipping the sign of whole groups at random.

    Under the null the two architectures are exchangeable within an image, hence within a group;
    flipping groups keeps their dependence. Exact over all 2^G sign patterns when G <= 12.
    """
    sums, counts = _group_sums(diffs, groups)
    n_groups, total = len(sums), counts.sum()
    observed = abs(sums.sum() / total)
    if n_groups <= 12:
        signs = 1 - 2 * ((np.arange(2**n_groups)[:, None] >> np.arange(n_groups)) & 1)
        stats = np.abs(signs @ sums / total)
        return float(np.mean(stats >= observed - 1e-12))
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_perm, n_groups))
    stats = np.abs(signs @ sums / total)
    return float((1 + np.sum(stats >= observed - 1e-12)) / (n_perm + 1))


def lower_median_index(values) -> int:
    """Index of the middle value, a typical case (neither best nor worst).

    With an even count the two middle values are equally close to the median, so the lower one is
    taken: a stated rule rather than rounding noise, and one that never flatters a model. Equal
    values keep their order (a stable sort).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or not np.isfinite(v).all():
        raise ValueError("lower_median_index needs a non-empty 1-D sequence of finite values")
    return int(np.argsort(v, kind="stable")[(v.size - 1) // 2])


@dataclass(frozen=True)
class Paired:
    """Architecture a minus architecture b on the same images."""

    a: str
    b: str
    n_images: int
    n_groups: int
    mean_a: float
    mean_b: float
    diff_mean: float
    diff_ci95: tuple[float, float]
    p_value: float
    verdict: str

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "n_images": self.n_images, "n_groups": self.n_groups,
                "mean_a": self.mean_a, "mean_b": self.mean_b, "diff_mean": self.diff_mean,
                "diff_ci95": list(self.diff_ci95), "p_value": self.p_value, "verdict": self.verdict}


def verdict(a: str, b: str, ci: tuple[float, float]) -> str:
    """"no clear difference" when the CI of a - b contains 0, else which is higher."""
    lo, hi = ci
    if lo <= 0 <= hi:
        return NO_CLEAR_DIFFERENCE
    return f"{a} higher" if lo > 0 else f"{b} higher"


def paired_comparison(a: str, b: str, values_a, values_b, groups, n_boot: int = N_BOOT, seed: int = 0) -> Paired:
    """Mean per-image difference a - b, its group-bootstrap CI, a group sign-flip p-value, a verdict."""
    va, vb = np.asarray(values_a, np.float64), np.asarray(values_b, np.float64)
    if va.shape != vb.shape:
        raise ValueError(f"paired values differ in length: {va.shape} vs {vb.shape}")
    d = va - vb
    mean, lo, hi = group_bootstrap_ci(d, groups, n_boot, seed)
    n_groups = len(np.unique(np.asarray(groups)))
    return Paired(a, b, int(d.size), n_groups, float(va.mean()), float(vb.mean()), mean, (lo, hi),
                  sign_flip_p(d, groups, seed=seed), verdict(a, b, (lo, hi)))
