"""Behaviour unchanged: every shipped model's masks on held-out images match the signatures
recorded before the code-shape refactor (tests/golden/shipped_masks.json, made at commit 99c1850).

A signature is, per foreground class, the pixel count in each cell of a 4x4 grid over the image:
it catches moved, grown or lost structures without committing masks derived from the data.
A few boundary pixels may flip between machines (float order), hence the small tolerance.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import nervseg

GOLDEN = json.loads((Path(__file__).parent / "golden" / "shipped_masks.json").read_text())


def signature(mask: np.ndarray, n_classes: int, grid: int = 4) -> dict:
    h, w = mask.shape
    return {str(c): [[int((mask[i * h // grid:(i + 1) * h // grid, j * w // grid:(j + 1) * w // grid] == c).sum())
                      for j in range(grid)] for i in range(grid)] for c in range(1, n_classes)}


def _image(task: str, stem: str, root: Path) -> Path:
    from nervseg.data.datasets import spec

    return spec(task).folder("main", root) / f"{stem}.png"


@pytest.mark.parametrize("model_id", sorted(GOLDEN))
def test_shipped_masks_match_the_recorded_signatures(model_id, data_root):
    from nervseg.inference.segmenter import load
    from nervseg.io.readers import load_image
    seg = load(model_id, models_dir=nervseg.models_dir(), device="cpu")
    for stem, expected in GOLDEN[model_id].items():
        image = load_image(_image(seg.card.task, stem, data_root))
        got = signature(seg.predict(image).mask, len(seg.classes))
        diff = sum(abs(a - b) for c in expected for ra, rb in zip(got[c], expected[c]) for a, b in zip(ra, rb))
        assert diff <= max(20, 0.002 * image.size), f"{model_id} {stem}: {diff} pixels moved class"
