"""Reference masks of every shipped model on real validation images, as hashes only.

Recorded once with the code before the ONNX engine (issue 16) so that a test can show
every shipped model still gives the same masks (issue 14). The JSON holds sha256 digests
and per-class pixel counts, never image data.

    OMP_NUM_THREADS=1 python tests/reference_masks.py   # rewrites tests/data/reference_masks.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path(__file__).resolve().parent / "data" / "reference_masks.json"
PER_MODEL = 8
THRESHOLDS = (0.3, 0.5, 0.7)  # mask_at thresholds the pages offer
TIE_FLIPS_PER = 100_000  # a mask may differ from its record by 1 pixel in this many (float rounding at ties)


def validation_images(card, root: Path) -> list[Path]:
    """PER_MODEL images at native resolution: Kaggle subject-2 TIFFs, usgra's seeded validation side."""
    if card.task == "kaggle-bp":
        folder = root / "kaggle-bp" / "fullres"
        frames = sorted((p for p in folder.glob("2_*.tif") if not p.stem.endswith("_mask")),
                        key=lambda p: int(p.stem.split("_")[1]))
        return frames[:PER_MODEL]
    from nervseg.data.splits import split_task

    stems = [p.stem for p in split_task(card.task, root).val]  # the shipped cards' val_stems; a final model has none
    step = max(1, len(stems) // PER_MODEL)
    return [root / "usgra-seg" / "images" / f"{s}.png" for s in stems[1::step][:PER_MODEL]]  # 512x512, 761x632 (2), 534x512


def digest(mask: np.ndarray) -> dict:
    """sha256 of shape + bytes, and the pixel count of each class (to say how far a change went)."""
    h = hashlib.sha256(f"{mask.shape}{mask.dtype}".encode())
    h.update(np.ascontiguousarray(mask).tobytes())
    return {"sha256": h.hexdigest(), "counts": np.bincount(mask.ravel(), minlength=3).tolist()}


def mask_for(pred, key: str) -> np.ndarray:
    """The mask a record key names: "mask" (the model's decision) or "mask_at_<threshold>"."""
    return pred.mask if key == "mask" else pred.mask_at(float(key.removeprefix("mask_at_")))


def masks_of(pred) -> dict:
    return {key: digest(mask_for(pred, key)) for key in ["mask", *(f"mask_at_{t}" for t in THRESHOLDS)]}


def record(engine: str | None = None) -> dict:
    import nervseg
    from nervseg.inference.segmenter import load
    from nervseg.io.readers import load_image
    from nervseg.models.cards import available

    root = nervseg.data_root()
    result = {}
    for card in available(nervseg.models_dir()):
        seg = load(card.id) if engine is None else load(card.id, engine=engine)
        result[card.id] = {
            "weights_sha256": card.weights_sha256,
            "images": {p.name: masks_of(seg.predict(load_image(p))) for p in validation_images(card, root)},
        }
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from nervseg.inference.segmenter import configure_threads

    configure_threads(1)
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(json.dumps(record(), indent=1) + "\n")
    print(f"wrote {REFERENCE}")
