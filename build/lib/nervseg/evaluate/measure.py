"""Per-structure measurements of a class mask: area, components, centroid, depth."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass
class Structure:
    """One class's measurements in one image."""

    name: str
    class_id: int
    area_px: int
    components: int
    centroid_xy: tuple[float, float] | None  # of the whole class, pixels
    depth_px: int | None  # rows from the top edge to the class's shallowest pixel
    area_mm2: float | None = None
    depth_mm: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def measure(mask: np.ndarray, classes: list[str], spacing_mm: tuple[float, float] | None = None) -> list[Structure]:
    """Measurements per foreground class; mm values only when the pixel spacing is known.

    Depth is measured from the top edge of the image, which is the probe face in a
    standard ultrasound frame (assumes the frame is not cropped above the skin).
    """
    out = []
    for cid, name in enumerate(classes):
        if cid == 0:
            continue
        sel = (mask == cid).astype(np.uint8)
        area = int(sel.sum())
        n, _ = cv2.connectedComponents(sel, connectivity=8)
        if area:
            ys, xs = np.nonzero(sel)
            centroid = (round(float(xs.mean()), 1), round(float(ys.mean()), 1))
            depth = int(ys.min())
        else:
            centroid, depth = None, None
        s = Structure(name, cid, area, int(n - 1), centroid, depth)
        if spacing_mm:
            s.area_mm2 = round(area * spacing_mm[0] * spacing_mm[1], 2)
            s.depth_mm = round(depth * spacing_mm[0], 2) if depth is not None else None
        out.append(s)
    return out
