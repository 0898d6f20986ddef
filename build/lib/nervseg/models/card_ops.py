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
    def from_card(cls, block: dict | None) -> Normalisation:
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
    def from_card(cls, block: dict | None) -> Postprocess:
        return cls(float((block or {}).get("min_component_fraction", 0.0)))

    def min_pixels(self, shape: tuple[int, ...]) -> int:
        """The component size limit, in pixels, for a mask of `shape` (H, W)."""
        return int(round(self.min_component_fraction * shape[0] * shape[1]))

    def apply(self, mask: np.ndarray) -> np.ndarray:
        """(H, W) class ids with components below the limit set to background."""
        return remove_small(mask, self.min_pixels(mask.shape))


def remove_small(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """Drop connected components smaller than `min_pixels` per class (OpenCV labelling, 8-connected).

    Each class is labelled inside the bounding box of its pixels only: the same components
    (none reaches outside that box), at a fraction of the full frame's cost.
    """
    if min_pixels <= 0:
        return mask
    out = mask.copy()
    for c in range(1, int(mask.max(initial=0)) + 1):
        binary = (mask == c).view(np.uint8)
        x, y, w, h = cv2.boundingRect(binary)
        if w == 0 or h == 0:
            continue
        _, labels, stats, _ = cv2.connectedComponentsWithStats(binary[y : y + h, x : x + w], connectivity=8)
        small = stats[:, cv2.CC_STAT_AREA] < min_pixels
        small[0] = False  # label 0 is everything else in the box
        if small.any():
            out[y : y + h, x : x + w][small[labels]] = 0
    return out
