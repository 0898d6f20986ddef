"""The one inference module: every page, CLI and benchmark predicts through here.

The network runs on an engine from `nervseg.inference.engines` (ONNX Runtime when the card's graph is
shipped, else eager torch); resizing, normalisation and post-processing are here, the same
for both engines. Full-resolution probabilities are built once per image for the mask and
then dropped: `Prediction.probs` rebuilds them on first access, so callers that show only
the mask keep a few hundred kB per image instead of C float32 planes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np

from nervseg import preprocess as pp
from nervseg.inference import engines
from nervseg.models.card_ops import Normalisation, Postprocess, remove_small
from nervseg.models.cards import ModelCard, get_card


def upsample(probs_small: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(C, h, w) model-resolution probabilities -> (C, H, W) float32 at `shape`, renormalised to sum 1.

    Bilinear per class, then divided by the per-pixel sum in class order: bit for bit what
    `np.stack([cv2.resize(...)]) / sum(axis=0)` gave, without the stacked and summed copies.
    """
    h, w = shape
    out = np.empty((len(probs_small), h, w), np.float32)
    for c, plane in enumerate(probs_small):
        cv2.resize(np.ascontiguousarray(plane, np.float32), (w, h), dst=out[c], interpolation=cv2.INTER_LINEAR)
    total = out[0].copy()
    for c in range(1, len(out)):
        total += out[c]
    out /= total
    return out


def first_max(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, H, W) -> (index uint8, value) of the largest plane per pixel, the first on ties (as argmax),
    without the transposed copy `argmax(axis=0)` makes."""
    index = np.zeros(planes.shape[1:], np.uint8)
    best = planes[0].copy()
    for k in range(1, len(planes)):
        better = planes[k] > best
        index[better] = k
        np.maximum(best, planes[k], out=best)
    return index, best


def threshold_mask(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(C, H, W) probabilities -> (H, W) uint8 ids; background unless a class reaches threshold."""
    best, value = first_max(probs[1:])
    best += 1
    best[value < threshold] = 0
    return best


def class_confidence(probs: np.ndarray, mask: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Mean probability of each class over the pixels assigned to it (NaN if none)."""
    out = {}
    for c, name in enumerate(classes):
        if c == 0:
            continue
        sel = mask == c
        out[name] = float(probs[c][sel].mean()) if sel.any() else float("nan")
    return out


class Prediction:
    """One image's segmentation at the input image's resolution.

    `.mask` (H, W) uint8 class ids (argmax, then the card's post-processing); `.probs` (C, H, W)
    float32 softmax, computed from `.probs_small` (the model's resolution) on first access and
    kept; `.classes`, `.seconds` (wall time of the call), `.confidence`, `.nbytes`.
    """

    def __init__(self, probs: np.ndarray | None, mask: np.ndarray, classes: list[str], seconds: float,
                 confidence: dict[str, float] | None = None, min_component_pixels: int = 0,
                 probs_small: np.ndarray | None = None):
        if probs is None and probs_small is None:
            raise ValueError("a Prediction needs probs or probs_small")
        self._probs = probs
        self.probs_small = probs_small
        self.mask = mask
        self.classes = list(classes)
        self.seconds = seconds
        self._confidence = confidence
        self.min_component_pixels = min_component_pixels  # from the card's post-processing

    @property
    def probs(self) -> np.ndarray:
        if self._probs is None:
            self._probs = upsample(self.probs_small, self.mask.shape)
        return self._probs

    @property
    def confidence(self) -> dict[str, float]:
        """Mean probability of each class over its mask pixels (computed on first access)."""
        if self._confidence is None:
            self._confidence = class_confidence(self.probs, self.mask, self.classes)
        return self._confidence

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays held now (full-resolution probs count once they were asked for)."""
        return sum(a.nbytes for a in (self.mask, self.probs_small, self._probs) if a is not None)

    def drop_full_resolution(self) -> None:
        """Forget the full-resolution probs (rebuilt on the next access); no-op without probs_small."""
        if self.probs_small is not None:
            self._probs = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.probs_small is not None:  # pickles (st.cache_data) carry the small planes only
            state["_probs"] = None
        return state

    def mask_at(self, threshold: float = 0.5) -> np.ndarray:
        """Class ids where the most likely foreground class has probability >= threshold.

        The card's post-processing (small components removed) applies here too.
        """
        return remove_small(threshold_mask(self.probs, threshold), self.min_component_pixels)


def configure_threads(n: int | None = None) -> int:
    """Set the CPU thread count once, at an entry point (app start, a CLI's main).

    `n=None` means $NERVSEG_THREADS, else all cores up to 8. It applies to ONNX Runtime
    sessions created afterwards and to torch (now if imported, else when an engine imports
    it). Constructors never change it, so `--threads` and test fixtures hold.
    """
    n = n or _default_threads()
    engines.set_threads(n)
    return n


def _default_threads() -> int:
    """$NERVSEG_THREADS, else all cores up to 8.

    On a loaded 2-core machine one thread can be many times faster than two (OpenMP
    threads wait on each other), so the variable lets a busy host turn it down.
    """
    env = os.environ.get("NERVSEG_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(os.cpu_count() or 1, 8))


class Segmenter:
    """A model's engine plus the card that says how to feed it.

    `model` is a torch nn.Module (run eagerly), an instance of a registered engine class
    (`nervseg.inference.engines.register`), or None to let `nervseg.inference.engines.create` pick
    one: `engine` by name, else ONNX Runtime when the card's graph is fresh, else torch.
    `input_size` (h, w) runs the card's model at another size than it was trained at (multiples of 32;
    the Live page's smaller size): everything else (normalisation, post-processing) stays the card's.
    """

    def __init__(self, card: ModelCard, model=None, device: str | None = None, tta: bool = False,
                 engine: str | None = None, input_size: tuple[int, int] | None = None):
        self.card = card
        size = tuple(int(v) for v in (input_size or card.input_size))
        resized = size != tuple(int(v) for v in card.input_size)
        if resized and (len(size) != 2 or any(v <= 0 or v % 32 for v in size)):
            raise ValueError(f"input size {size} must be two positive multiples of 32")
        if model is None:
            self.engine = engines.create(card, engine, device, free_size=resized)
        elif engines.is_engine(model):
            self.engine = model
        else:
            self.engine = engines.TorchEngine(model, device)
        self.device = self.engine.device
        self.model = self.engine.model  # the torch module, None on ONNX Runtime
        self.tta = tta
        self.train_preprocess = pp.Preprocess.from_dict(card.preprocess)
        self.height, self.width = size  # the card's own, or a stated other size (e.g. smaller for live use)
        self.normalisation = Normalisation.from_card(card.normalisation)
        self.postprocess = Postprocess.from_card(card.postprocess)

    @property
    def classes(self) -> list[str]:
        return list(self.card.classes)

    @property
    def engine_name(self) -> str:
        return self.engine.name

    def _batch(self, images: list[np.ndarray], settings: pp.Preprocess) -> np.ndarray:
        batch = np.empty((len(images), 1, self.height, self.width), np.float32)
        for i, img in enumerate(images):
            if img.dtype != np.uint8 or img.ndim != 2:
                raise ValueError(f"expected (H, W) uint8 images, got {img.dtype} {img.shape}")
            x = pp.apply(img, settings)
            x = cv2.resize(x, (self.width, self.height), interpolation=cv2.INTER_AREA)
            batch[i, 0] = self.normalisation.apply(x)
        return batch

    def network_input(self, images: list[np.ndarray], preprocess: pp.Preprocess | None = None) -> np.ndarray:
        """(N, 1, h, w) float32: the images preprocessed, resized and normalised as the network sees them."""
        return self._batch(images, self.train_preprocess if preprocess is None else preprocess)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        """(N, 1, h, w) input -> (N, C, h, w) float32 softmax (flip-averaged with `tta`)."""
        probs = self.engine(x)
        if self.tta:
            flipped = self.engine(np.ascontiguousarray(x[..., ::-1]))
            probs = np.float32(0.5) * (probs + flipped[..., ::-1])
        return probs

    def set_postprocess(self, block: dict) -> None:
        """A new post-processing block (chosen by tuning), in the card and in use from now on."""
        self.card.postprocess = block
        self.postprocess = Postprocess.from_card(block)

    def _finish(self, probs_small: np.ndarray, shape: tuple[int, int], post: Postprocess) -> Prediction:
        full = upsample(probs_small, shape)
        mask, _ = first_max(full)
        min_pixels = post.min_pixels(shape)
        mask = remove_small(mask, min_pixels)
        return Prediction(None, mask, self.classes, 0.0, None, min_pixels, probs_small=np.array(probs_small))

    def predict(self, image: np.ndarray, preprocess: pp.Preprocess | None = None,
                postprocess: Postprocess | None = None) -> Prediction:
        """Segment one (H, W) uint8 image.

        `preprocess=None` applies the preprocessing the model was trained with (from
        its card); a `Preprocess` given here replaces it (a what-if). `postprocess=None`
        applies the card's; tuning passes its own to see raw masks.
        """
        return self.predict_many([image], preprocess, postprocess=postprocess)[0]

    def probs_small_many(self, images, preprocess: pp.Preprocess | None = None, batch_size: int = 8) -> np.ndarray:
        """(N, C, h, w) float32 softmax at the model's input size: the network's own output, nothing more.

        For callers that keep only these (Cine): no full-resolution upsampling, mask or
        post-processing per image, which `predict_many` does for every image.
        """
        settings = self.train_preprocess if preprocess is None else preprocess
        return np.concatenate([self._forward(self._batch(list(images[s : s + batch_size]), settings))
                               for s in range(0, len(images), batch_size)])

    def predict_many(
        self, images: list[np.ndarray], preprocess: pp.Preprocess | None = None, batch_size: int = 8,
        postprocess: Postprocess | None = None,
    ) -> list[Prediction]:
        """Segment several images in batches; `seconds` is each image's share of batch time."""
        settings = self.train_preprocess if preprocess is None else preprocess
        post = self.postprocess if postprocess is None else postprocess
        out: list[Prediction] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            t0 = time.perf_counter()
            probs = self._forward(self._batch(chunk, settings))
            preds = [self._finish(p, img.shape[:2], post) for p, img in zip(probs, chunk, strict=True)]
            each = (time.perf_counter() - t0) / len(chunk)
            for p in preds:
                p.seconds = each
            out.extend(preds)
        return out


def load(model_id: str, models_dir: Path | None = None, device: str | None = None, tta: bool = False,
         engine: str | None = None) -> Segmenter:
    """Load a shipped model by id (weights checked against the card's sha256).

    `engine`: a registered engine's name (`nervseg.inference.engines.ENGINES`: "onnx", "torch", ...),
    or None for ONNX Runtime when the card's graph is fresh and the device is the CPU, else torch
    ($NERVSEG_ENGINE sets the default).
    """
    card = get_card(model_id, models_dir)
    return Segmenter(card, None, device=device, tta=tta, engine=engine)
