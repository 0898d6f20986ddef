"""nervseg.evaluate.measure: area, components, centroid, depth, and mm when spacing is known."""

from __future__ import annotations

import numpy as np
import pytest

from nervseg.evaluate.measure import measure


def test_measure_pixels_and_mm():
    mask = np.zeros((50, 60), np.uint8)
    mask[10:20, 20:30] = 1  # 100 px, centroid (24.5, 14.5), top row 10
    mask[30:34, 0:5] = 1  # second nerve component, 20 px
    out = measure(mask, ["background", "nerve", "vessel"], spacing_mm=(0.1, 0.2))
    nerve, vessel = out
    assert (nerve.name, nerve.class_id, nerve.area_px, nerve.components) == ("nerve", 1, 120, 2)
    # x: (100 * 24.5 + 20 * 2) / 120 = 20.75; y: (100 * 14.5 + 20 * 31.5) / 120 = 17.33 (rounded to 0.1)
    assert nerve.centroid_xy == pytest.approx((20.75, 17.33), abs=0.06)
    assert nerve.depth_px == 10
    assert nerve.area_mm2 == pytest.approx(120 * 0.1 * 0.2)
    assert nerve.depth_mm == pytest.approx(1.0)
    assert vessel.area_px == 0 and vessel.components == 0 and vessel.centroid_xy is None
    assert vessel.depth_px is None and vessel.depth_mm is None and vessel.area_mm2 == 0
    assert nerve.to_dict()["area_px"] == 120


def test_measure_without_spacing_has_no_mm():
    mask = np.zeros((10, 10), np.uint8)
    mask[4, 4] = 1
    (nerve,) = measure(mask, ["background", "nerve"])
    assert nerve.area_px == 1 and nerve.depth_px == 4 and nerve.centroid_xy == (4.0, 4.0)
    assert nerve.area_mm2 is None and nerve.depth_mm is None


def test_measure_real_mask(usgra_pair):
    from nervseg.io.readers import load_mask

    mask = load_mask(usgra_pair[1])
    nerve = measure(mask, ["background", "nerve", "vessel"])[0]
    assert nerve.area_px == int((mask == 1).sum()) > 0
    assert nerve.components >= 1
