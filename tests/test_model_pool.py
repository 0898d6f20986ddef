"""nervseg.inference.pool: one segmenter per model and weights per process, whichever thread asks; warm-up."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
from pathlib import Path

import pytest

from nervseg.inference import pool as model_pool


@pytest.fixture
def pool(monkeypatch):
    """An empty pool whose loads are counted (real random-weight cards are loaded)."""
    monkeypatch.setattr(model_pool, "_loaded", {})
    monkeypatch.setattr(model_pool, "_locks", {})
    loads = []
    real = model_pool.Segmenter

    def counting(card, *args, **kwargs):
        loads.append(card.id)
        return real(card, *args, **kwargs)

    monkeypatch.setattr(model_pool, "Segmenter", counting)
    return loads


@pytest.fixture
def cards(random_model_dir, monkeypatch):
    from nervseg.models.cards import available

    monkeypatch.setenv("NERVSEG_MODELS", str(random_model_dir))
    return available(random_model_dir)


def test_concurrent_gets_load_once_and_share_the_segmenter(pool, cards, tmp_path):
    card = cards[0]
    got = []
    threads = [threading.Thread(target=lambda: got.append(model_pool.get(card))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pool == [card.id] and len({id(s) for s in got}) == 1
    assert model_pool.key(card) in model_pool.loaded()
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in card.weights_path().parent.glob(f"{card.weights_path().stem}.*"):
        shutil.copy(p, copy / p.name)
    other = dataclasses.replace(card, path=str(copy / Path(card.path).name))
    assert model_pool.get(other) is not got[0] and pool == [card.id, card.id]  # another folder's copy: loaded
    retrained = dataclasses.replace(card, weights_sha256="f" * 64)
    with pytest.raises(Exception, match="does not match its card"):
        model_pool.get(retrained)  # checked when loaded: refused, and the good one stays
    assert model_pool.key(card) in model_pool.loaded()


def test_warm_now_loads_in_order_and_logs_a_card_that_cannot_load(pool, cards, caplog):
    broken = dataclasses.replace(cards[0], weights_sha256="0" * 64)  # its weights do not match: refused
    with caplog.at_level(logging.WARNING, logger="nervseg.inference.pool"):
        model_pool.warm_now([*cards[:2], broken], frame_shape=(40, 60))
    assert pool == [cards[0].id, cards[1].id, cards[0].id]
    assert [k[:2] for k in model_pool.loaded()] == [(c.id, c.weights_sha256) for c in cards[:2]]
    assert f"warm-up of {cards[0].id} failed" in caplog.text and "does not match its card" in caplog.text


def test_new_weights_for_a_model_replace_its_old_segmenter(cards, monkeypatch):
    monkeypatch.setattr(model_pool, "_loaded", {})
    monkeypatch.setattr(model_pool, "_locks", {})
    monkeypatch.setattr(model_pool, "Segmenter", lambda card: object())  # no weights check: keys only
    old, new = cards[0], dataclasses.replace(cards[0], weights_sha256="e" * 64)
    first = model_pool.get(old)
    model_pool.get(cards[1])
    assert model_pool.get(new) is not first
    assert model_pool.loaded() == [model_pool.key(cards[1]), model_pool.key(new)]
