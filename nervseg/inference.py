"""The one inference module: every page, CLI and benchmark predicts through here."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import preprocess as pp
from .card_ops import Normalisation, Postprocess, remove_small
from .models import ModelCard, get_card, load_model


@dataclass
class Prediction:
    """One image's segmentation at the input image's resolution."""

    probs: np.ndarray  # (C, H, W) float32, softmax over classes
    mask: np.ndarray  # (H, W) uint8 class ids (argmax, then the card's post-processing)
    classes: list[str]
    seconds: float
    confidence: dict[str, float] = field(default_factory=dict)
    min_component_pixels: int = 0  # from the card's post-processing

    def mask_at(self, threshold: float = 0.5) -> np.ndarray:
        """Class ids where the most likely foreground class has probability >= threshold.

        The card's post-processing (small components removed) applies here too.
        """
        return remove_small(threshold_mask(self.probs, threshold), self.min_component_pixels)


def threshold_mask(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(C, H, W) probabilities -> (H, W) uint8 ids; background unless a class reaches threshold."""
    fg = probs[1:]
    best = fg.argmax(axis=0)
    keep = np.take_along_axis(fg, best[None], axis=0)[0] >= threshold
    return np.where(keep, best + 1, 0).astype(np.uint8)


def class_confidence(probs: np.ndarray, mask: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Mean probability of each class over the pixels assigned to it (NaN if none)."""
    out = {}
    for c, name in enumerate(classes):
        if c == 0:
            continue
        sel = mask == c
        out[name] = float(probs[c][sel].mean()) if sel.any() else float("nan")
    return out


def configure_threads(n: int | None = None) -> int:
    """Set the CPU thread count once, at an entry point (app start, a CLI's main).

    `n=None` means $NERVSEG_THREADS, else all cores up to 8. Constructors never change it,
    so `--threads` and test fixtures hold.
    """
    import torch

    n = n or _default_threads()
    torch.set_num_threads(n)
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
    """A loaded model plus the card that says how to feed it."""

    def __init__(self, card: ModelCard, model, device: str | None = None, tta: bool = False):
        import torch

        self.card = card
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.tta = tta
        self.train_preprocess = pp.Preprocess.from_dict(card.preprocess)
        self.height, self.width = (int(v) for v in card.input_size)
        self.normalisation = Normalisation.from_card(card.normalisation)
        self.postprocess = Postprocess.from_card(card.postprocess)

    @property
    def classes(self) -> list[str]:
        return list(self.card.classes)

    def _to_tensor(self, images: list[np.ndarray], settings: pp.Preprocess):
        import torch

        batch = np.empty((len(images), 1, self.height, self.width), np.float32)
        for i, img in enumerate(images):
            if img.dtype != np.uint8 or img.ndim != 2:
                raise ValueError(f"expected (H, W) uint8 images, got {img.dtype} {img.shape}")
            x = pp.apply(img, settings)
            x = cv2.resize(x, (self.width, self.height), interpolation=cv2.INTER_AREA)
            batch[i, 0] = self.normalisation.apply(x)
        return torch.from_numpy(batch).to(self.device)

    def _forward(self, x):
        import torch

        logits = self.model(x)
        if isinstance(logits, tuple):
            logits = logits[0]
        probs = torch.softmax(logits.float(), dim=1)
        if self.tta:
            flipped = self.model(torch.flip(x, dims=[3]))
            if isinstance(flipped, tuple):
                flipped = flipped[0]
            probs = 0.5 * (probs + torch.flip(torch.softmax(flipped.float(), dim=1), dims=[3]))
        return probs.cpu().numpy()

    def _finish(self, probs_small: np.ndarray, shape: tuple[int, int], seconds: float) -> Prediction:
        h, w = shape
        probs = np.stack(
            [cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) for p in probs_small]
        ).astype(np.float32)
        probs /= probs.sum(axis=0, keepdims=True)
        mask = probs.argmax(axis=0).astype(np.uint8)
        post = Postprocess.from_card(self.card.postprocess)  # read per call: tune swaps the card's block
        min_pixels = post.min_pixels((h, w))
        mask = remove_small(mask, min_pixels)
        return Prediction(probs, mask, self.classes, seconds, class_confidence(probs, mask, self.classes), min_pixels)

    def predict(self, image: np.ndarray, preprocess: pp.Preprocess | None = None) -> Prediction:
        """Segment one (H, W) uint8 image.

        `preprocess=None` applies the preprocessing the model was trained with (from
        its card); a `Preprocess` given here replaces it (a what-if).
        """
        return self.predict_many([image], preprocess)[0]

    def predict_many(
        self, images: list[np.ndarray], preprocess: pp.Preprocess | None = None, batch_size: int = 8
    ) -> list[Prediction]:
        """Segment several images in batches; `seconds` is each image's share of batch time."""
        import torch

        settings = self.train_preprocess if preprocess is None else preprocess
        out: list[Prediction] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            t0 = time.perf_counter()
            with torch.inference_mode():
                probs = self._forward(self._to_tensor(chunk, settings))
            preds = [self._finish(p, img.shape[:2], 0.0) for p, img in zip(probs, chunk)]
            each = (time.perf_counter() - t0) / len(chunk)
            for p in preds:
                p.seconds = each
            out.extend(preds)
        return out


def load(model_id: str, models_dir: Path | None = None, device: str | None = None, tta: bool = False) -> Segmenter:
    """Load a shipped model by id (weights checked against the card's sha256)."""
    card = get_card(model_id, models_dir)
    return Segmenter(card, load_model(card), device=device, tta=tta)
