"""The per-model steps a card describes, each implemented once: input normalisation and
mask post-processing. Training, inference, video and tuning all call these.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DEFAULT_NORMALISATION = {"scale": 1 / 255, "mean": 0.5, "std": 0.25}


@dataclass(frozen=True)
class Normalisation:
    """uint8 pixels -> network input: (x * scale - mean) / std, as float32."""

    scale: float = 1 / 255
    mean: float = 0.5
    std: float = 0.25

    @classmethod
    def from_card(cls, block: dict | None) -> "Normalisation":
        block = block or {}
        return cls(float(block.get("scale", 1 / 255)), float(block.get("mean", 0.0)), float(block.get("std", 1.0)))

    def to_dict(self) -> dict:
        return {"scale": self.scale, "mean": self.mean, "std": self.std}

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Any-shape uint8 (or float) array -> float32 network input."""
        return ((pixels.astype(np.float32) * np.float32(self.scale)) - np.float32(self.mean)) / np.float32(self.std)


@dataclass(frozen=True)
class Postprocess:
    """Mask clean-up chosen on training images: drop connected components smaller than a
    fraction of the image, per class."""

    min_component_fraction: float = 0.0

    @classmethod
    def from_card(cls, block: dict | None) -> "Postprocess":
        return cls(float((block or {}).get("min_component_fraction", 0.0)))

    def min_pixels(self, shape: tuple[int, ...]) -> int:
        """The component size limit, in pixels, for a mask of `shape` (H, W)."""
        return int(round(self.min_component_fraction * shape[0] * shape[1]))

    def apply(self, mask: np.ndarray) -> np.ndarray:
        """(H, W) class ids with components below the limit set to background."""
        return remove_small(mask, self.min_pixels(mask.shape))


def remove_small(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """Drop connected components smaller than `min_pixels` per class (OpenCV labelling, 8-connected)."""
    if min_pixels <= 0:
        return mask
    out = mask.copy()
    for c in np.unique(mask):
        if c == 0:
            continue
        n, labels, stats, _ = cv2.connectedComponentsWithStats((mask == c).astype(np.uint8), connectivity=8)
        small = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] < min_pixels) + 1
        if small.size:
            out[np.isin(labels, small)] = 0
    return out
