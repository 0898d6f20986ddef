"""The typical case among the bundled samples for a model: the one at its lower-median Dice.

Home opens on it, so the first result a visitor sees is neither the model's best nor its worst. A pure
function of a segmenter and the samples; the app keeps one answer per model and process
(`dashboard.demo.default_sample_dice`), which its server (`dashboard.serve`) computes before the first visit.
"""

from __future__ import annotations

import numpy as np

from nervseg import metrics
from nervseg.data.samples import BundledSample
from nervseg.evaluate.stats import lower_median_index
from nervseg.io.readers import load_image, load_mask


def shown_samples(classes: list[str], samples: list[BundledSample]) -> list[BundledSample]:
    """The samples holding every structure the model finds (all of them when none does)."""
    wanted = set(classes[1:])
    return [s for s in samples if wanted <= set(s.structures)] or list(samples)


def sample_dice(segmenter, samples: list[BundledSample], preprocess=None) -> dict[str, float]:
    """stem -> Dice averaged over the model's structures on each sample whose mask fits its image."""
    out = {}
    for s in samples:
        image, truth = load_image(s.image), load_mask(s.mask)
        if truth.shape != image.shape:
            continue
        pred = segmenter.predict(image, preprocess)
        out[s.stem] = float(np.mean([r["dice"] for r in metrics.class_rows(pred.mask, truth, segmenter.classes)]))
    return out


def typical_stem(dice: dict[str, float]) -> str | None:
    """The stem at the lower median of `dice` (None when empty)."""
    if not dice:
        return None
    stems = list(dice)
    return stems[lower_median_index([dice[k] for k in stems])]
