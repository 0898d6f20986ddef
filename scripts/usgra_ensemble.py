"""Score the average of the usgra models' class probabilities on the usgra validation split.

    python scripts/usgra_ensemble.py [MODEL_ID ...]

An experiment, not a shipped model: it tells whether combining the architectures is worth
their summed CPU time. Each model alone is scored the same way (its card's post-processing).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nervseg import metrics  # noqa: E402
from nervseg.data.splits import split_task
from nervseg.inference.segmenter import load  # noqa: E402
from nervseg.io.readers import load_image, load_mask  # noqa: E402

DEFAULT_IDS = ("usgra-unet", "usgra-densenet", "usgra-sk-unet")


def main(ids: list[str]) -> None:
    val = split_task("usgra").val
    images = [load_image(p.image) for p in val]
    truths = [load_mask(p.mask) for p in val]
    predictions = {mid: load(mid).predict_many(images) for mid in ids}
    masks = {mid: [p.mask for p in preds] for mid, preds in predictions.items()}
    masks["average of " + " + ".join(ids)] = [
        np.mean([predictions[mid][i].probs for mid in ids], axis=0).argmax(0) for i in range(len(val))]
    for name, ms in masks.items():
        dice = {c: np.mean([metrics.score(m, t, k)["dice"] for m, t in zip(ms, truths)])
                for k, c in ((1, "nerve"), (2, "vessel"))}
        print(f"{name}: nerve {dice['nerve']:.3f}, vessel {dice['vessel']:.3f} (n={len(val)})")


if __name__ == "__main__":
    main(sys.argv[1:] or list(DEFAULT_IDS))
