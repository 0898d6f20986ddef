"""What a model learnt from, told from its card: labels for pickers, overlap with uploads, unlike scans.

Everything is read from the card (classes, `data` block, split lists, input size) and its task's
dataset spec, so a new card or dataset needs no change here. The overlap check is by file name:
the spec's `file_name` rule recognises one of its images and gives its stem. A card trained from a
fold file (`split_file`, `fold`) trained on every group outside its fold, never on the file's excluded
stems (the demo samples); otherwise a stem not among the card's `val_stems`, or one whose group is
among its `train_subjects`, was a training image.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

from nervseg.data import folds as fl
from nervseg.data.datasets import TASKS, DatasetSpec
from nervseg.data.splits import SplitError, read_folds
from nervseg.models.cards import ModelCard


def finds_label(card: ModelCard) -> str:
    """What the model marks: 'nerve only', 'nerve + vessel'."""
    fg = card.classes[1:]
    return f"{fg[0]} only" if len(fg) == 1 else " + ".join(fg)


def dataset_label(card: ModelCard) -> str:
    """A short name of the training data, e.g. 'usgra-seg', 'Kaggle brachial plexus'."""
    name = str(card.data.get("name", "")) or card.task or "unknown data"
    base, _, rest = name.partition(" (")
    rest = rest.rstrip(")")
    if not rest or "github" in rest or any(ch.isdigit() for ch in rest):
        return base
    return f"{base.split()[0]} {rest}"


def group_label(card: ModelCard) -> str:
    """'nerve + vessel · usgra-seg': what it finds and what it learnt from."""
    return f"{finds_label(card)} · {dataset_label(card)}"


def default_card(cards: list[ModelCard]) -> ModelCard | None:
    """The opening model: most structures found, then best nerve Dice (cross-validated where the card
    has it, see ModelCard.quality_dice), then id."""
    if not cards:
        return None
    return max(cards, key=lambda c: (len(c.classes), c.quality_dice("nerve") or -1.0, c.id))


def dataset_of(card: ModelCard) -> DatasetSpec | None:
    """The dataset spec the card learnt from: its task, else the spec whose data name the card records."""
    if card.task in TASKS:
        return TASKS[card.task]
    name = str(card.data.get("name", ""))
    return next((ds for ds in TASKS.values() if name and ds.data_name == name), None)


def trained_on(card: ModelCard, name: str) -> bool:
    """Whether the image called `name` was among the card's training images (by file name)."""
    split = card.data.get("split", {}) or {}
    ds = dataset_of(card)
    stem = ds.stem_of(name) if ds else None
    if stem is None:
        return False
    folds = _fold_groups(Path(split["split_file"]).name) if split.get("split_file") else None
    if folds is not None:
        excluded, stem_fold, group_fold = folds
        fold = stem_fold.get(stem, group_fold.get(ds.group_of(stem)))  # frames outside the main set: their group's
        return stem not in excluded and fold is not None and fold != split.get("fold")
    if "val_stems" in split:
        return stem not in set(split["val_stems"])
    if "train_subjects" in split:
        return ds.group_of(stem) in {str(s) for s in split["train_subjects"]}
    return False


@lru_cache(maxsize=8)
def _fold_groups(file_name: str) -> tuple[frozenset[str], dict[str, int], dict[str, int]] | None:
    """(excluded stems, {stem: fold}, {group: fold}) of splits/<file_name>; None when it cannot be read."""
    try:
        ff = read_folds(fl.SPLITS_DIR / file_name)
    except (OSError, SplitError, ValueError):
        return None
    stem_fold = {s: i for i, stems in enumerate(ff.folds) for s in stems}
    return frozenset(ff.excluded), stem_fold, {ff.groups[s]: i for s, i in stem_fold.items()}


def training_overlap(card: ModelCard, names: list[str]) -> list[str]:
    """The names among `names` that the model trained on (to warn before scoring them)."""
    return [n for n in names if trained_on(card, n)]


def unlike_training(card: ModelCard, shape: tuple[int, int], tolerance: float = 0.22) -> bool:
    """True when the scan's aspect ratio is far from the model's training input (another scanner setting)."""
    h, w = shape[:2]
    ih, iw = card.input_size
    if min(h, w, ih, iw) <= 0:
        return False
    return abs(math.log((w / h) / (iw / ih))) > tolerance


def heldout_subject_images(card: ModelCard, names: list[str]) -> bool:
    """True when every name is a frame of the card's dataset from a group (subject) the card held out
    (the published protocol, for kaggle-bp)."""
    held = {str(s) for s in (card.data.get("split", {}) or {}).get("val_subjects", [])}
    ds = dataset_of(card)
    stems = [ds.stem_of(n) for n in names] if ds else [None]
    return bool(names) and bool(held) and all(s is not None and ds.group_of(s) in held for s in stems)


def card_presence(card: ModelCard) -> dict | None:
    """The card's calibrated `presence` block (see nervseg.evaluate.presence), or None.

    Read from the card object when it carries the field, else from the card's JSON file,
    so a card written by the fair-comparison training is honoured either way.
    """
    block = getattr(card, "presence", None)
    if not block and card.path:
        import json
        from pathlib import Path

        try:
            block = json.loads(Path(card.path).read_text()).get("presence")
        except (OSError, ValueError):
            block = None
    return block if isinstance(block, dict) and block else None
