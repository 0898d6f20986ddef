"""Training arrays: pairs decoded, preprocessed and resized once, held in memory."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from nervseg import preprocess as pp
from nervseg.data.datasets import CO_TRAINING, Pair
from nervseg.data.splits import split_task
from nervseg.io.readers import load_image, load_mask


def resize_pair(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize to (H, W) the way inference does (area for images, nearest for masks)."""
    h, w = size
    return (
        cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA),
        cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST),
    )


def load_arrays(
    pairs: list[Pair], size: tuple[int, int], settings: pp.Preprocess, pad_to_size_aspect: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """All pairs preprocessed and resized: images (N, H, W) uint8, masks (N, H, W) uint8.

    `pad_to_size_aspect` pads each pair to the aspect ratio of `size` first (see pad_to_aspect).
    """
    images, masks = [], []
    for p in pairs:
        img, m = pp.apply(load_image(p.image), settings), load_mask(p.mask)
        if pad_to_size_aspect:
            img, m = pad_to_aspect(img, m, size[1] / size[0])
        img, m = resize_pair(img, m, size)
        images.append(img)
        masks.append(m)
    return np.stack(images), np.stack(masks)


def pad_to_aspect(image: np.ndarray, mask: np.ndarray, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """Pad (black image, background mask) at the bottom or right to width/height = `aspect`.

    Co-training frames from another machine keep their anatomy's proportions when they
    are brought to the main task's input shape; black is what an ultrasound frame shows
    beyond its field of view.
    """
    h, w = image.shape[:2]
    pad_h = max(0, round(w / aspect) - h)
    pad_w = max(0, round(h * aspect) - w)
    pad = dict(top=0, bottom=pad_h, left=0, right=pad_w, borderType=cv2.BORDER_CONSTANT, value=0)
    return cv2.copyMakeBorder(image, **pad), cv2.copyMakeBorder(mask, **pad)


def co_training_arrays(
    task: str, size: tuple[int, int], settings: pp.Preprocess, root: Path | None = None, seed: int = 0,
    limit: int = 0,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Training-split images of `task` as nerve-only labels (1 nerve, 0 anything else) at `size`.

    Only the task's own training subjects are used, so its validation subjects stay unseen.
    """
    if task not in CO_TRAINING:
        raise ValueError(f"{task!r} cannot co-train; choose from {', '.join(CO_TRAINING)}")
    pairs = split_task(task, root, seed=seed).train
    if limit:
        pairs = pairs[:limit]
    images, masks = load_arrays(pairs, size, settings, pad_to_size_aspect=True)
    note = (f"{len(pairs)} {task} training-subject images (nerve-only labels, padded to the input's "
            "aspect ratio), one batch with each main batch, scored nerve against everything else")
    return images, (masks == 1).astype(np.uint8), note
