"""Segmenters loaded once per process and shared by every session and thread, warmed in the background.

A server answers its first visitor at once only if the models are loaded (and have run once:
ONNX Runtime allocates its buffers on the first call) before anyone asks. `warm_now` does that
(dashboard.serve runs it in a daemon thread at start); `get` returns the loaded model, waiting for that
model only (not for the rest of the warm-up) while another thread is loading it. New weights
for a model replace its old segmenter, so the pool holds at most one per model and folder.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np

from nervseg.inference.segmenter import Segmenter
from nervseg.models.cards import ModelCard

log = logging.getLogger(__name__)
Key = tuple[str, str, str]  # (model id, weights sha256, weights file): another folder's copy is another model
_loaded: dict[Key, Segmenter] = {}
_locks: dict[Key, threading.Lock] = {}
_guard = threading.Lock()


def key(card: ModelCard) -> Key:
    return card.id, card.weights_sha256, str(card.weights_path())


def _lock(k: Key) -> threading.Lock:
    with _guard:
        return _locks.setdefault(k, threading.Lock())


def get(card: ModelCard) -> Segmenter:
    """The card's segmenter, loaded on first use (once, whichever thread asks; weights checked then)."""
    k = key(card)
    with _lock(k):
        seg = _loaded.get(k)
        if seg is None:
            seg = Segmenter(card)
            with _guard:  # new weights for the same model and file: the old segmenter goes
                for old in [o for o in _loaded if o[0] == k[0] and o[2] == k[2]]:
                    del _loaded[old]
                _loaded[k] = seg
        return seg


def loaded() -> list[Key]:
    """The keys of every segmenter this process holds."""
    with _guard:
        return list(_loaded)


def warm_now(cards: Sequence[ModelCard], frame_shape: tuple[int, int] = (512, 512)) -> None:
    """Load each card's model and run it once on a blank frame, in order.

    A card that cannot load is logged and skipped: the page that asks for it says why.
    """
    blank = np.zeros(frame_shape, np.uint8)
    for card in cards:
        try:
            get(card).predict(blank)
        except Exception as e:  # noqa: BLE001 - warm-up only; the page reports the error when used
            log.warning("warm-up of %s failed: %s", card.id, e)
