"""A task's finished queue -> its shipped models: CV figures in the cards, the final models in models/.

    python -m nervseg.cv promote --task kaggle-bp

1. splits/<task>-cv-summary.json and <task>-paired.json from the queue's tracked out-of-fold rows
   (splits/cv), which the app reads for its comparison;
2. their `cross_validation` and `presence` blocks into the final cards (models/next), only where the
   final model was trained with the fold models' recipe;
3. the final models (card, weights, float graph) copied over models/<task>-*; the held-out
   "demonstration" figures of the models they replace (splits/heldout/<task>-*) removed;
4. each one's int8 graph for Live made and measured again (nervseg.inference.quantize).

Nothing changes unless the cross-validation is complete and every final model of the task is there.
The test records of the shipped masks (tests/reference_masks.py, tests/test_same_masks.py) and the
README's table (scripts/model_table.py) are rewritten by hand afterwards: reviewed, not regenerated blindly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nervseg import PROJECT_ROOT
from nervseg.cv import summary as cv_summary
from nervseg.data import folds as fl

QUEUE_CV = PROJECT_ROOT / "splits" / "cv"
NEXT_MODELS = PROJECT_ROOT / "models" / "next"
SHIPPED = PROJECT_ROOT / "models"
HELDOUT = PROJECT_ROOT / "splits" / "heldout"


def final_files(card_path: Path) -> list[Path]:
    """A final model's files: its card, weights and float graph (what the card names)."""
    card = json.loads(card_path.read_text())
    files = [card_path, card_path.parent / card["weights_file"], card_path.with_suffix(".onnx")]
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        raise cv_summary.SummaryError(f"{card['id']}: final model incomplete in {card_path.parent} (no {missing})")
    return files


def promote(task: str, cv_root: Path = QUEUE_CV, next_dir: Path = NEXT_MODELS, models_dir: Path = SHIPPED,
            splits_dir: Path = fl.SPLITS_DIR, heldout_dir: Path = HELDOUT, quantize: bool = True) -> list[str]:
    """Steps 1-4 above for one task; returns the promoted model ids."""
    from nervseg.inference.quantize import quantize_card
    from nervseg.models.cards import read_card

    summary_path, _ = cv_summary.write(task, cv_root, splits_dir)
    ids = list(json.loads(summary_path.read_text())["models"])
    files = {mid: final_files(Path(next_dir) / f"{mid}.json") for mid in ids}  # all there before any change
    cv_summary.apply(task, splits_dir, next_dir, cv_root)  # checks completeness and recipes first
    for mid, paths in files.items():
        for p in paths:
            shutil.copy2(p, Path(models_dir) / p.name)
        (Path(models_dir) / f"{mid}.int8.onnx").unlink(missing_ok=True)  # made for the replaced weights
    for p in Path(heldout_dir).glob(f"{task}-*.json"):
        p.unlink()
    if quantize:
        for mid in ids:
            block = quantize_card(read_card(Path(models_dir) / f"{mid}.json"))
            print(mid, "int8:", json.dumps(block["validation"]["per_class"]), flush=True)
    print(f"promoted {', '.join(ids)}. Next: `OMP_NUM_THREADS=1 python tests/reference_masks.py` and "
          f"`OMP_NUM_THREADS=1 PYTHONPATH=. python tests/test_same_masks.py {' '.join(ids)}` (review the diffs), "
          "`python scripts/model_table.py` for the README, then the tests.")
    return ids
