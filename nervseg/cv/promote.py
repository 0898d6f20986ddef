"""A task's finished queue -> its shipped models: CV figures in the cards, the final models in models/.

    python -m nervseg.cv promote --task kaggle-bp

1. the summary and the paired comparison of the queue's tracked out-of-fold rows (splits/cv);
2. their `cross_validation` and `presence` blocks in each final card (models/next), only where the
   final model was trained with the fold models' recipe;
3. each final model's int8 graph for Live, made and measured (nervseg.inference.quantize);
4. then, and only then: splits/<task>-cv-summary.json and <task>-paired.json (what the app reads), the
   patched cards in models/next, the final models (card, weights, float and int8 graphs) over
   models/<task>-*, and the replaced models' held-out "demonstration" figures (splits/heldout/<task>-*) gone.

Steps 1-3 run in memory and in a scratch folder: a task whose cross-validation is incomplete, lacks an
architecture or a final model, or whose models cannot be quantized here (no data) changes nothing.
The test records of the shipped masks (tests/reference_masks.py, tests/test_same_masks.py) and the
README's table (scripts/model_table.py) are rewritten by hand afterwards: reviewed, not regenerated blindly.
"""

from __future__ import annotations

import json
import shutil
import tempfile
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
    if not card_path.is_file():
        raise cv_summary.SummaryError(f"no final model {card_path.stem} in {card_path.parent}")
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
    from nervseg.models.cards import ARCHITECTURES, read_card

    summary, paired = cv_summary.build(task, cv_root)
    ids = sorted(summary["models"])
    missing = sorted({f"{task}-{a}" for a in ARCHITECTURES} - set(ids))
    if missing:
        raise cv_summary.SummaryError(f"no out-of-fold rows for {missing}: every architecture of {task} is promoted together")
    files = {mid: final_files(Path(next_dir) / f"{mid}.json") for mid in ids}
    cards = cv_summary.patched_cards(task, summary, next_dir, cv_root)  # completeness and recipes
    with tempfile.TemporaryDirectory(prefix=f"promote-{task}-") as tmp:
        stage = Path(tmp)
        for mid, paths in files.items():
            for p in paths[1:]:
                shutil.copy2(p, stage / p.name)
            (stage / f"{mid}.json").write_text(json.dumps(cards[Path(next_dir) / f"{mid}.json"], indent=2) + "\n")
            if quantize:
                block = quantize_card(read_card(stage / f"{mid}.json"))
                print(mid, "int8:", json.dumps(block["validation"]["per_class"]), flush=True)
        # nothing outside the scratch folder has changed so far
        cv_summary.write_files(task, summary, paired, splits_dir)
        for path, card in cards.items():
            path.write_text(json.dumps(card, indent=2) + "\n")
        for mid, paths in files.items():
            int8 = paths[1].with_suffix(".int8.onnx").name  # nervseg.inference.engines.int8_file's rule
            (Path(models_dir) / int8).unlink(missing_ok=True)  # made for the replaced weights
            for name in [p.name for p in paths] + ([int8] if (stage / int8).is_file() else []):
                shutil.copy2(stage / name, Path(models_dir) / name)
    for p in Path(heldout_dir).glob(f"{task}-*.json"):
        p.unlink()
    print(f"promoted {', '.join(ids)}. Next: `OMP_NUM_THREADS=1 python tests/reference_masks.py` and "
          f"`OMP_NUM_THREADS=1 PYTHONPATH=. python tests/test_same_masks.py {' '.join(ids)}` (review the diffs), "
          "`python scripts/model_table.py` for the README, then the tests.")
    return ids
