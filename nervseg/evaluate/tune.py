"""Tune a model's post-processing on training data and refresh its card.

    python -m nervseg.evaluate.tune --model kaggle-bp-unet

Kaggle-style scoring gives 1 for an empty prediction on an empty frame, so small,
isolated detections cost a lot; on usgra, stray specks lower Dice too. The smallest
component kept (as a fraction of the image) is chosen on training data only (kaggle-bp:
the full-resolution frames of training subjects; usgra: the training split), then the
card's held-out figures are recomputed with it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from nervseg import metrics
from nervseg.data.datasets import Pair, spec
from nervseg.data.splits import Split, make_split
from nervseg.inference.segmenter import Segmenter, configure_threads
from nervseg.io.readers import load_image, load_mask
from nervseg.models.card_ops import Postprocess

GRID = (0.0, 0.002, 0.004, 0.006, 0.008, 0.01, 0.012, 0.015)


def tune_min_component(segmenter: Segmenter, pairs: list[Pair], grid=GRID) -> tuple[float, dict]:
    """The grid value with the best mean Dice over `pairs` and foreground classes (empty-on-empty = 1).

    Ties go to the smaller value.
    """
    images = [load_image(p.image) for p in pairs]
    trues = [load_mask(p.mask) for p in pairs]
    masks = [pr.mask for pr in segmenter.predict_many(images, postprocess=Postprocess(0.0))]  # raw masks
    table = {}
    classes = range(1, len(segmenter.classes))
    for frac in grid:
        kept = [Postprocess(frac).apply(m) for m in masks]
        dice = [metrics.score(k, t, c)["dice"] for k, t in zip(kept, trues) for c in classes]
        table[frac] = float(np.mean(dice))
    best = max(grid, key=lambda f: (round(table[f], 6), -f))
    return best, table


def tuning_pairs(split: Split, root: Path | None = None) -> tuple[list[Pair], str]:
    """The training data a task's post-processing is chosen on (its spec's `tuning`), and how to describe it."""
    ds = spec(split.task)
    if ds.tuning == "train":
        return split.train, ds.tuning_note
    pairs = [p for p in ds.pairs(ds.tuning, root)
             if ds.group_of(p.stem) in split.train_groups and p.stem not in split.excluded]
    return pairs, ds.tuning_note


def tune_card(segmenter: Segmenter, train_pairs: list[Pair], val_pairs: list[Pair], heldout: list[Pair],
              chosen_on: str = "full-resolution frames of training subjects") -> None:
    """Choose the post-processing, then recompute and save the card's validation figures."""
    card = segmenter.card
    best, table = tune_min_component(segmenter, train_pairs)
    segmenter.set_postprocess({
        "min_component_fraction": best,
        "chosen_on": f"{len(train_pairs)} {chosen_on} (mean Dice over foreground classes, empty-on-empty = 1)",
        "grid": {str(k): round(v, 4) for k, v in table.items()},
    })
    card.validation = validation_figures(segmenter, val_pairs, heldout)


def validation_figures(segmenter: Segmenter, val_pairs: list[Pair], heldout: list[Pair] = ()) -> dict:
    """The card's `validation` block: held-out figures at each image's resolution ({} without a validation set)."""
    from nervseg.evaluate.run import evaluate_pairs

    if not val_pairs:
        return {"split": "none: trained on every fold (final model); see the cross-validation figures"}
    out = {"split": "validation", **evaluate_pairs(segmenter, val_pairs)["summary"]}
    if heldout:
        out["fullres_kaggle_rule"] = evaluate_pairs(segmenter, list(heldout))["summary"]
    return out


def main(argv=None) -> None:
    from nervseg.inference.segmenter import load

    ap = argparse.ArgumentParser(prog="python -m nervseg.evaluate.tune", description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--seed", type=int, default=0, help="the split seed the model was trained with")
    ap.add_argument("--split-file", default=None, help="the fold file the model was trained with (default: the seeded split)")
    ap.add_argument("--fold", type=int, default=None, help="the fold it validated on (with --split-file)")
    args = ap.parse_args(argv)
    configure_threads()
    seg = load(args.model)
    split = make_split(seg.card.task, seed=args.seed, split_file=args.split_file, fold=args.fold)
    pairs, chosen_on = tuning_pairs(split)
    tune_card(seg, pairs, split.val, split.heldout_fullres, chosen_on)
    seg.card.save(Path(seg.card.path))
    pp = seg.card.postprocess
    print(f"{args.model}: min_component_fraction {pp['min_component_fraction']} (grid {pp['grid']})")
    v = seg.card.validation
    if "per_class" not in v:
        return
    print(f"  val nerve Dice {v['per_class']['nerve']['dice_mean']:.4f}; full-res held-out Kaggle rule "
          f"{v.get('fullres_kaggle_rule', {}).get('per_class', {}).get('nerve', {}).get('dice_mean')}")


if __name__ == "__main__":
    main()
