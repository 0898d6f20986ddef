"""The JSON report of one segmented scan (the Segment page's download): one schema, built here."""

from __future__ import annotations

import json
import math

REPORT_KEYS = ("image", "image_sha256", "size_px", "pixel_spacing_mm", "model", "model_weights_sha256",
               "preprocessing", "threshold", "inference_seconds", "confidence", "structures", "note")


def scan_report(image_name: str, image_sha256: str, shape: tuple[int, ...], spacing, card, preprocessing: dict | None,
                threshold: float, seconds: float, confidence: dict[str, float], structures: list, note: str) -> dict:
    """What was segmented, by which model and settings, and what was found.

    `preprocessing` is the what-if settings in use, or None for the model's own (recorded as such);
    `structures` are nervseg.evaluate.measure results; a NaN confidence (structure not found) becomes null.
    """
    return {
        "image": image_name, "image_sha256": image_sha256, "size_px": [int(shape[1]), int(shape[0])],
        "pixel_spacing_mm": spacing, "model": card.id, "model_weights_sha256": card.weights_sha256,
        "preprocessing": preprocessing or {"model's own": card.preprocess},
        "threshold": threshold, "inference_seconds": round(seconds, 4),
        "confidence": {k: (None if math.isnan(v) else round(v, 4)) for k, v in confidence.items()},
        "structures": [s.to_dict() for s in structures],
        "note": note,
    }


def report_json(report: dict) -> str:
    return json.dumps(report, indent=2)
