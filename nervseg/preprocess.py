"""Preprocessing settings and the pure functions that apply them.

`Preprocess()` is the identity. Every filter is deterministic (fixed parameters,
no random sampling), so a preview equals what the model sees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np


class PreprocessError(ValueError):
    """A preprocessing setting is out of its allowed range."""


@dataclass(frozen=True)
class Preprocess:
    """Filters applied in this order: speckle (NLM) -> median -> Gaussian -> CLAHE.

    Args:
        clahe_clip: CLAHE clip limit; 0 turns CLAHE off. 0..10.
        clahe_tile: CLAHE tile grid (tiles per side). 2..32.
        median_kernel: median filter aperture, odd; 0 or 1 turns it off. 0..15.
        gaussian_sigma: Gaussian blur sigma in pixels; 0 turns it off. 0..5.
        nlm_strength: non-local-means speckle reduction strength h; 0 off. 0..30.
            Chosen over a bilateral filter because ultrasound speckle is a texture,
            which NLM averages away while keeping nerve fascicle edges.
    """

    clahe_clip: float = 0.0
    clahe_tile: int = 8
    median_kernel: int = 0
    gaussian_sigma: float = 0.0
    nlm_strength: float = 0.0

    def __post_init__(self) -> None:
        _check_range("clahe_clip", self.clahe_clip, 0.0, 10.0)
        _check_range("clahe_tile", self.clahe_tile, 2, 32)
        _check_range("median_kernel", self.median_kernel, 0, 15)
        if self.median_kernel > 1 and self.median_kernel % 2 == 0:
            raise PreprocessError(f"median_kernel must be odd, got {self.median_kernel}")
        _check_range("gaussian_sigma", self.gaussian_sigma, 0.0, 5.0)
        _check_range("nlm_strength", self.nlm_strength, 0.0, 30.0)

    @property
    def is_identity(self) -> bool:
        return (
            self.clahe_clip == 0
            and self.median_kernel <= 1
            and self.gaussian_sigma == 0
            and self.nlm_strength == 0
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Preprocess":
        """Build from a dict; unknown keys are refused so typos do not pass silently."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise PreprocessError(f"unknown preprocessing settings: {sorted(unknown)}")
        types = {f.name: f.type for f in fields(cls)}
        try:
            return cls(**{k: (int(v) if types[k] in (int, "int") else float(v)) for k, v in d.items()})
        except (TypeError, ValueError) as e:
            raise PreprocessError(str(e)) from None

    def describe(self) -> str:
        """Short human-readable summary, e.g. for captions."""
        if self.is_identity:
            return "none"
        parts = []
        if self.nlm_strength:
            parts.append(f"NLM h={self.nlm_strength:g}")
        if self.median_kernel > 1:
            parts.append(f"median {self.median_kernel}")
        if self.gaussian_sigma:
            parts.append(f"Gaussian σ={self.gaussian_sigma:g}")
        if self.clahe_clip:
            parts.append(f"CLAHE clip={self.clahe_clip:g} tiles={self.clahe_tile}")
        return ", ".join(parts)


def _check_range(name: str, value, lo, hi) -> None:
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
        raise PreprocessError(f"{name} must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise PreprocessError(f"{name} must be between {lo} and {hi}, got {value}")


def clahe(image: np.ndarray, clip: float, tile: int) -> np.ndarray:
    return cv2.createCLAHE(clipLimit=float(clip), tileGridSize=(int(tile), int(tile))).apply(image)


def median(image: np.ndarray, kernel: int) -> np.ndarray:
    return cv2.medianBlur(image, int(kernel))


def gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigmaX=float(sigma))


def nlm(image: np.ndarray, strength: float) -> np.ndarray:
    return cv2.fastNlMeansDenoising(image, None, h=float(strength), templateWindowSize=7, searchWindowSize=21)


def apply(image: np.ndarray, settings: Preprocess | None = None) -> np.ndarray:
    """Apply `settings` to a (H, W) uint8 image; returns a new uint8 array."""
    if image.dtype != np.uint8 or image.ndim != 2:
        raise PreprocessError(f"expected a (H, W) uint8 image, got {image.dtype} {image.shape}")
    s = settings or Preprocess()
    out = np.ascontiguousarray(image)
    if s.nlm_strength:
        out = nlm(out, s.nlm_strength)
    if s.median_kernel > 1:
        out = median(out, s.median_kernel)
    if s.gaussian_sigma:
        out = gaussian(out, s.gaussian_sigma)
    if s.clahe_clip:
        out = clahe(out, s.clahe_clip, s.clahe_tile)
    return out if out is not image else out.copy()
