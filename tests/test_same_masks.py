"""Behaviour unchanged: every shipped model's masks on held-out images match the signatures
recorded before the code-shape refactor (tests/golden/shipped_masks.json, made at commit 99c1850).

A signature is, per foreground class, the pixel count in each cell of a 4x4 grid over the image:
it catches moved, grown or lost structures without committing masks derived from the data.
A few boundary pixels may flip between machines (float order), hence the small tolerance.
A model replaced by new weights (e.g. `python -m nervseg.cv promote`) is re-recorded, same images:

    OMP_NUM_THREADS=1 PYTHONPATH=. python tests/test_same_masks.py kaggle-bp-unet kaggle-bp-densenet ...
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import nervseg

GOLDEN_FILE = Path(__file__).parent / "golden" / "shipped_masks.json"
GOLDEN = json.loads(GOLDEN_FILE.read_text())


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


def record(model_ids: list[str]) -> None:
    """Rewrite the signatures of `model_ids` (existing entries only: the same images as before)."""
    from nervseg.inference.segmenter import load
    from nervseg.io.readers import load_image

    golden = json.loads(GOLDEN_FILE.read_text())
    for model_id in model_ids:
        seg = load(model_id, models_dir=nervseg.models_dir(), device="cpu")
        golden[model_id] = {stem: signature(seg.predict(load_image(_image(seg.card.task, stem, nervseg.data_root()))).mask,
                                            len(seg.classes)) for stem in golden[model_id]}
    GOLDEN_FILE.write_text(json.dumps(golden, separators=(",", ":")))


if __name__ == "__main__":
    import sys

    record(sys.argv[1:])
