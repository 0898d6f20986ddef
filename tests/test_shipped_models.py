"""The shipped models in models/: intact weights, complete cards, real predictions.

Skips (with the reason) while models/ holds no cards; the ids are collected from
models/ so each shipped model is its own test case.
"""

from __future__ import annotations

import numpy as np
import pytest
from shipped import per_model as _per_model  # noqa: E402

import nervseg
from nervseg.data.datasets import TASKS
from nervseg.io.readers import check_pair, load_image, load_mask
from nervseg.models.cards import ARCHITECTURES, sha256_file
from nervseg.preprocess import Preprocess

per_model = _per_model()
TASK_CLASSES = {"kaggle-bp": ["background", "nerve"], "usgra": ["background", "nerve", "vessel"]}


@pytest.fixture(scope="module")
def segmenters():
    from nervseg.inference.segmenter import load

    cache = {}

    def get(model_id):
        if model_id not in cache:
            cache[model_id] = load(model_id, device="cpu")
        return cache[model_id]

    return get


def test_every_weights_file_matches_its_card(shipped_cards):
    for card in shipped_cards:
        path = card.weights_path()
        assert path.is_file(), f"{card.id}: {path.name} missing"
        assert path.suffix == ".safetensors"
        assert sha256_file(path) == card.weights_sha256, f"{card.id}: sha256 differs from the card"
        assert path.stat().st_size == card.weights_bytes


def test_no_stray_weights(shipped_cards):
    """Every weights file in models/ belongs to a card (no orphaned or pickled weights)."""
    referenced = {c.weights_file for c in shipped_cards}
    weights = {p.name for p in nervseg.models_dir().iterdir() if p.suffix in (".safetensors", ".pt", ".pth", ".bin")}
    assert weights == referenced


@per_model
def test_card_is_complete(model_id):
    from nervseg.models.cards import get_card

    card = get_card(model_id)
    assert card.architecture in ARCHITECTURES
    assert card.task in TASK_CLASSES and card.classes == TASK_CLASSES[card.task]
    assert all(v % 16 == 0 for v in card.input_size)
    Preprocess.from_dict(card.preprocess)  # valid settings
    assert card.parameters > 0 and card.weights_sha256 and card.command.startswith("python -m nervseg.train")
    assert len(card.curves["train_loss"]) == len(card.curves["epoch"]) >= 1
    dice = card.quality_dice("nerve")  # cross-validated, or the card's own held-out split
    assert dice is not None and 0 <= dice <= 1
    assert card.data.get("licence") and card.data.get("split")


def _heldout_pairs(card, data_root, n: int = 6):
    """`n` pairs of the task's seeded validation side, evenly spaced: the card's held-out images, or, for a
    final model trained on every fold (nothing held out), images it trained on: this checks that the
    weights are trained, not how they generalise (the cross-validated figures say that)."""
    from nervseg.data.splits import split_task
    from nervseg.models.provenance import trained_on

    val = split_task(card.task, data_root).val
    held = [p for p in val if not trained_on(card, p.image.name)] or val
    step = max(1, len(held) // n)
    return [(p.image, p.mask) for p in held[::step][:n]]


@per_model
def test_predicts_real_images_at_their_resolution(model_id, segmenters, kaggle_pair, fullres_pair, usgra_pair):
    seg = segmenters(model_id)
    images = [load_image(p) for p in (kaggle_pair[0], fullres_pair[0], usgra_pair[0])]
    for img in images:
        pred = seg.predict(img)
        assert pred.probs.shape == (len(seg.classes), *img.shape) and pred.probs.dtype == np.float32
        assert pred.mask.shape == img.shape and pred.mask.dtype == np.uint8
        assert set(np.unique(pred.mask).tolist()) <= set(range(len(seg.classes)))
        assert pred.seconds > 0


@per_model
def test_finds_nerves_on_real_scans(model_id, segmenters, data_root):
    """Trained, not random: nerve Dice on real scans (held out where the card has any) is far above what an
    untrained net gets (~0)."""
    from nervseg.metrics import score

    seg = segmenters(model_id)
    dices = []
    for img_path, mask_path in _heldout_pairs(seg.card, data_root):
        img, truth = load_image(img_path), load_mask(mask_path)
        check_pair(img, truth, img_path.name, mask_path.name)
        dices.append(score(seg.predict(img).mask, truth, class_id=1)["dice"])
    assert len(dices) >= 4
    assert np.mean(dices) > 0.3, f"{model_id}: held-out nerve Dice {np.round(dices, 2)}"
