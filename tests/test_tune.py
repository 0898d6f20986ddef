"""Post-processing tuning (`nervseg.evaluate.tune`) on real usgra scans with a random-weight 3-class model."""

from __future__ import annotations

import numpy as np

from nervseg import metrics
from nervseg.data.pairs import find_pairs
from nervseg.evaluate.tune import GRID, tune_min_component
from nervseg.inference.segmenter import load
from nervseg.io.readers import load_image, load_mask
from nervseg.models.card_ops import remove_small


def test_tuning_scores_every_foreground_class_and_picks_the_best(random_model_dir, data_root):
    pairs = find_pairs(data_root / "usgra-seg")[:4]
    seg = load("random-unet", random_model_dir)
    best, table = tune_min_component(seg, pairs)

    assert list(table) == list(GRID)
    assert table[best] == max(table.values())
    assert seg.card.postprocess == {}, "tuning must not leave the card changed"

    # The figure for one grid value is the mean Dice over images and both classes (nerve, vessel).
    masks = [p.mask for p in seg.predict_many([load_image(p.image) for p in pairs])]
    trues = [load_mask(p.mask) for p in pairs]
    frac = GRID[3]
    expected = np.mean([metrics.score(remove_small(m, int(round(frac * m.size))), t, c)["dice"]
                        for m, t in zip(masks, trues) for c in (1, 2)])
    assert np.isclose(table[frac], expected)


def test_tuning_pairs_come_from_training_data_only(data_root):
    from nervseg.data.datasets import TASKS
    from nervseg.data.splits import split_task
    from nervseg.evaluate.tune import tuning_pairs

    usgra = split_task("usgra", data_root)
    pairs, chosen_on = tuning_pairs(usgra, data_root)
    assert pairs == usgra.train and "training" in chosen_on

    kaggle = split_task("kaggle-bp", data_root)
    pairs, _ = tuning_pairs(kaggle, data_root)
    train_subjects = set(kaggle.description["train_subjects"])
    assert pairs and all(TASKS["kaggle-bp"].group_of(p.stem) in train_subjects for p in pairs)
    assert not {p.stem for p in pairs} & {p.stem for p in kaggle.heldout_fullres}
