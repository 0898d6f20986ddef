"""The image region of a scanner's video: a crop kept for the session, proposed from the static border.

A scanner's video output carries its user interface (menus, depth scale, text) around the image;
the interface stays still while the image changes frame to frame. The proposal is the bounding box
of the largest area that changes (or, with one frame or a frozen image, of the largest textured area).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Crop:
    """A rectangle in frame pixels: x, y of its top-left corner, width, height."""

    x: int
    y: int
    w: int
    h: int

    def clamp(self, shape: tuple[int, ...]) -> Crop | None:
        """The part inside a frame of `shape` (H, W, ...); None when nothing of it is left."""
        fh, fw = shape[:2]
        x0, y0 = max(0, self.x), max(0, self.y)
        x1, y1 = min(fw, self.x + self.w), min(fh, self.y + self.h)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        return Crop(x0, y0, x1 - x0, y1 - y0)

    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)

    def as_text(self) -> str:
        return f"{self.w}x{self.h} at ({self.x}, {self.y})"


def full_frame(shape: tuple[int, ...]) -> Crop:
    return Crop(0, 0, int(shape[1]), int(shape[0]))


def _largest_box(binary: np.ndarray, min_fraction: float) -> Crop | None:
    """Bounding box of the largest 8-connected area of `binary`, after closing small gaps and opening
    away thin things (interface edges, text, a ruler)."""
    k = max(3, (min(binary.shape) // 40) | 1)
    kernel = np.ones((k, k), np.uint8)
    closed = cv2.morphologyEx(cv2.morphologyEx(binary.astype(np.uint8), cv2.MORPH_CLOSE, kernel), cv2.MORPH_OPEN, kernel)
    n, _, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    if n <= 1:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h, _ = (int(v) for v in stats[best])
    if w * h < min_fraction * binary.size:
        return None
    return Crop(x, y, w, h)


def propose_crop(frames: Sequence[np.ndarray], min_fraction: float = 0.05, change_level: float = 2.0,
                 texture_level: float = 4.0) -> Crop | None:
    """The image region of a few (H, W) grey frames of one stream, or None when none stands out.

    Pixels whose grey level varies across the frames (std > `change_level`) are the image; the static
    interface around it is left out. With one frame, or frames that do not change, the largest
    textured area is taken instead (local grey-level spread above `texture_level`: speckle, not
    flat panels).
    """
    if not len(frames):
        raise ValueError("propose_crop needs at least one frame")
    shape = frames[0].shape[:2]
    if any(f.shape[:2] != shape for f in frames):
        raise ValueError("the frames differ in size")
    if len(frames) >= 2:
        stack = np.stack([f.astype(np.float32) for f in frames])
        box = _largest_box(stack.std(axis=0) > change_level, min_fraction)
        if box is not None:
            return box
    return _largest_box(_texture(frames[-1]) > texture_level, min_fraction)


def _texture(grey: np.ndarray, size: int = 7) -> np.ndarray:
    """Local standard deviation of the grey levels in a `size` window: speckle is high, flat interface is 0."""
    g = grey.astype(np.float32)
    mean = cv2.blur(g, (size, size))
    return np.sqrt(np.maximum(cv2.blur(g * g, (size, size)) - mean * mean, 0))
