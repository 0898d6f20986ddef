"""Page logic moved into nervseg: the scan report schema, upload pairing across zips and loose
files, the per-class figures shared by evaluate and batch, and the TP/FP/FN legend."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nervseg.display import viz
from nervseg.evaluate import batch
from nervseg.evaluate.measure import measure
from nervseg.evaluate.report import REPORT_KEYS, report_json, scan_report
from nervseg.io.readers import InputError
from nervseg.models.cards import ModelCard


def test_scan_report_schema():
    card = ModelCard(id="m", name="M", architecture="unet", classes=["background", "nerve", "vessel"],
                     weights_sha256="abc", preprocess={"clahe_clip": 2.0})
    mask = np.zeros((30, 40), np.uint8)
    mask[5:10, 5:15] = 1
    structures = measure(mask, card.classes, (0.1, 0.1))
    r = scan_report("scan.png", "f00", mask.shape, (0.1, 0.1), card, None, 0.5, 0.01234567,
                    {"nerve": 0.912345, "vessel": float("nan")}, structures, "not for diagnosis")
    assert tuple(r) == REPORT_KEYS
    assert r["size_px"] == [40, 30] and r["inference_seconds"] == 0.0123
    assert r["preprocessing"] == {"model's own": {"clahe_clip": 2.0}}
    assert r["confidence"] == {"nerve": 0.9123, "vessel": None}
    assert r["structures"][0]["area_px"] == 50 and r["model_weights_sha256"] == "abc"
    parsed = json.loads(report_json(r))  # plain JSON: NaN never reaches the file
    assert tuple(parsed) == REPORT_KEYS and parsed["pixel_spacing_mm"] == [0.1, 0.1]
    assert parsed["confidence"]["vessel"] is None and "NaN" not in report_json(r)
    what_if = scan_report("s", "h", mask.shape, None, card, {"median_kernel": 3}, 0.5, 0.0, {}, [], "")
    assert what_if["preprocessing"] == {"median_kernel": 3}


def test_pair_uploads_joins_zips_and_loose_files(make_zip):
    files = [("a.png", b"A"), ("a_mask.png", b"a"), ("b.png", b"B"),
             ("set.zip", make_zip({"images/c.png": b"C", "masks/c.png": b"c"}))]
    pairing = batch.pair_uploads(files)
    assert sorted(p.stem for p in pairing.pairs) == ["a", "c"] and pairing.unmatched == ["b.png"]
    with pytest.raises(InputError, match="No image has a matching mask"):
        batch.pair_uploads([("b.png", b"B")])


def test_class_figures_summarise_rows():
    true = np.zeros((10, 10), np.uint8)
    true[2:6, 2:6] = 1
    empty = np.zeros((10, 10), np.uint8)
    rows = (batch.score_rows("m", "x", true, true, ["background", "nerve"])
            + batch.score_rows("m", "y", true, empty, ["background", "nerve"]))
    f = batch.class_figures(rows)
    assert f["dice_mean"] == 0.5 and f["n_truth_nonempty"] == 1 and f["dice_mean_truth_nonempty"] == 1.0
    assert f["hd95_infinite"] == 1 and f["pooled"]["dice"] == pytest.approx(2 * 16 / (32 + 16))
    (summary,) = batch.summarise(rows)
    assert summary["dice_mean"] == f["dice_mean"] and summary["dice_pooled"] == f["pooled"]["dice"]


def test_error_legend_names_each_colour():
    html = viz.error_legend_html()
    for name, (r, g, b) in viz.ERROR_COLOURS.items():
        assert f"background:#{r:02x}{g:02x}{b:02x};" in html and f"</span>{name} (" in html
