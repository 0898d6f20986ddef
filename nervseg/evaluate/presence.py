"""Per-structure presence: is the structure in the image at all, and how likely.

The score is the model's own output (the class's highest pixel probability at the model's
resolution). A card's optional `presence` block maps it to a calibrated probability, fitted on
out-of-fold predictions (see the fair-comparison work), and holds the threshold that decides
"found". Card schema, per foreground class name:

    "presence": {"nerve": {"score": "max_prob", "x": [...], "y": [...], "threshold": 0.5,
                           "method": "isotonic" | "platt", "measured_on": "...",
                           "sensitivity": 0.9, "specificity": 0.7, "n_present": 10, "n_absent": 5}}

`x` (ascending scores) and `y` (probabilities) are the calibration curve, read by linear
interpolation; `threshold` applies to the calibrated probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCORE = "max_prob"


def presence_score(class_probs: np.ndarray) -> float:
    """The raw presence score of one class: its highest pixel probability."""
    return float(np.max(class_probs)) if class_probs.size else 0.0


@dataclass(frozen=True)
class Presence:
    """One structure's presence verdict."""

    name: str
    score: float  # raw model score (max probability)
    probability: float | None  # calibrated probability, None when the card has no calibration
    found: bool  # calibrated: probability >= threshold; uncalibrated: any pixel in the mask
    marked: bool = False  # any pixel of it in the mask (the mask is drawn whatever the presence verdict)

    @property
    def calibrated(self) -> bool:
        return self.probability is not None


def calibrated_probability(block: dict, score: float) -> float:
    """A card's calibration curve read at `score` (clipped to the curve's ends)."""
    return float(np.interp(score, np.asarray(block["x"], float), np.asarray(block["y"], float)))


def assess(probs: np.ndarray, mask: np.ndarray, classes: list[str], card_presence: dict | None) -> list[Presence]:
    """Presence of every foreground class from (C, h, w) probabilities and the final mask."""
    out = []
    for c, name in enumerate(classes):
        if c == 0:
            continue
        score, marked = presence_score(probs[c]), bool((mask == c).any())
        block = (card_presence or {}).get(name)
        if block and block.get("score", SCORE) == SCORE and block.get("x"):
            p = calibrated_probability(block, score)
            out.append(Presence(name, score, p, p >= float(block.get("threshold", 0.5)), marked))
        else:
            out.append(Presence(name, score, None, marked, marked))
    return out
