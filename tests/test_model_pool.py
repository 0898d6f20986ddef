"""nervseg.model_pool: one segmenter per model and weights per process, whichever thread asks; warm-up."""

from __future__ import annotations

import dataclasses
import logging
import threading

import pytest

from nervseg import model_pool


@pytest.fixture
def pool(monkeypatch):
    """An empty pool whose loads are counted (real random-weight cards are loaded)."""
    monkeypatch.setattr(model_pool, "_loaded", {})
    monkeypatch.setattr(model_pool, "_locks", {})
    loads = []
    real = model_pool.load

    def counting(model_id, *args, **kwargs):
        loads.append(model_id)
        return real(model_id, *args, **kwargs)

    monkeypatch.setattr(model_pool, "load", counting)
    return loads


@pytest.fixture
def cards(random_model_dir, monkeypatch):
    from nervseg.models import available

    monkeypatch.setenv("NERVSEG_MODELS", str(random_model_dir))
    return available(random_model_dir)


def test_concurrent_gets_load_once_and_share_the_segmenter(pool, cards):
    card = cards[0]
    got = []
    threads = [threading.Thread(target=lambda: got.append(model_pool.get(card.id, card.weights_sha256)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pool == [card.id] and len({id(s) for s in got}) == 1
    assert (card.id, card.weights_sha256) in model_pool.loaded()
    assert model_pool.get(card.id, "another-sha") is not got[0]  # new weights: loaded anew
    assert pool == [card.id, card.id]


def test_warm_loads_in_order_and_logs_a_card_that_cannot_load(pool, cards, caplog):
    broken = dataclasses.replace(cards[0], id="no-such-model")
    with caplog.at_level(logging.WARNING, logger="nervseg.model_pool"):
        model_pool.warm([*cards[:2], broken], frame_shape=(40, 60)).join(timeout=120)
    assert pool == [cards[0].id, cards[1].id, "no-such-model"]
    assert {k[0] for k in model_pool.loaded()} == {cards[0].id, cards[1].id}
    assert "warm-up of no-such-model failed" in caplog.text
