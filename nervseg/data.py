"""Training data: image/mask pairs of any folder, training tensors and augmentation.

`find_pairs` takes either layout: `images/<stem>.png` + `masks/<stem>.png`, or
`<stem>_mask.png|.tif` beside or under `masks/` (for evaluation folders and uploads).
What each task's data is lives in nervseg/datasets.json (nervseg.datasets), its splits
in nervseg.splits; both names are re-exported here for older callers.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from . import preprocess as pp
from .card_ops import Normalisation
from .datasets import CO_TRAINING, IMAGE_SUFFIXES, MASK_SUFFIXES, TASKS, Pair
from .io import load_image, load_mask
from .splits import Split, split_task

__all__ = ["CO_TRAINING", "IMAGE_SUFFIXES", "MASK_SUFFIXES", "TASKS", "Pair", "Split", "split_task", "find_pairs",
           "kaggle_subject", "load_arrays", "pad_to_aspect", "co_training_arrays", "augmentation", "SegDataset"]

def _mask_for(stem: str, folders: list[Path]) -> Path | None:
    for folder in folders:
        for name in (f"{stem}_mask", stem):
            for suf in MASK_SUFFIXES:
                p = folder / f"{name}{suf}"
                if p.is_file():
                    return p
    return None


def find_pairs(folder: Path) -> list[Pair]:
    """Image/mask pairs under `folder` (with images/ and masks/, or flat with *_mask files)."""
    folder = Path(folder)
    img_dir = folder / "images" if (folder / "images").is_dir() else folder
    mask_dirs = [folder / "masks", img_dir] if (folder / "masks").is_dir() else [img_dir]
    pairs = []
    for p in sorted(img_dir.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES or p.stem.endswith("_mask") or not p.is_file():
            continue
        m = _mask_for(p.stem, mask_dirs)
        if m is not None and m != p:
            pairs.append(Pair(p, m))
    return pairs


def kaggle_subject(stem: str) -> str:
    """Subject id of a Kaggle frame name `SUBJ_IMG` (the kaggle-bp spec's group rule)."""
    return TASKS["kaggle-bp"].group_of(stem)


# ---------------------------------------------------------------- tensors


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


def augmentation(strength: str = "default", crop: tuple[int, int] | None = None):
    """Albumentations pipeline for training (geometric + intensity), then the random crop if one is set.

    Flips: a left/right mirror is a plausible probe orientation. Small affine:
    probe pressure and position vary. Brightness/contrast and gamma: gain and
    depth-compensation settings vary between machines. Multiplicative noise:
    speckle strength varies. None of them alters the anatomy's topology.
    """
    import albumentations as A

    steps = [] if strength == "none" else [strong_augmentation() if strength == "strong" else default_augmentation()]
    if crop:
        steps.append(random_crop(crop))
    return A.Compose(steps) if steps else None


def random_crop(crop: tuple[int, int]):
    """A crop of (H, W): one in three around a foreground pixel, the rest anywhere.

    Training on crops costs a fraction of the whole image per step on a CPU; forcing
    foreground into a third of them (nnU-Net's rate) keeps small nerves in view.
    """
    import albumentations as A

    h, w = crop
    return A.OneOf([A.RandomCrop(h, w, p=2 / 3), A.CropNonEmptyMaskIfExists(h, w, p=1 / 3)], p=1.0)


def default_augmentation():
    """Flips, small affine, brightness/contrast, gamma, speckle-like noise (see `augmentation`)."""
    import albumentations as A

    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(scale=(0.9, 1.1), translate_percent=(-0.06, 0.06), rotate=(-10, 10), p=0.7,
                     border_mode=cv2.BORDER_CONSTANT),
            A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.5),
            A.RandomGamma(gamma_limit=(80, 120), p=0.3),
            A.MultiplicativeNoise(multiplier=(0.9, 1.1), per_channel=False, elementwise=True, p=0.2),
        ]
    )


def strong_augmentation():
    """Wider ranges plus deformation and blur, against the overfitting seen on usgra-seg.

    usgra-seg has 163 training images and the models reached Dice 0.77-0.86 on them
    against 0.61-0.67 on validation. Larger scale/rotation: depth and probe tilt vary
    more than the default covers. Elastic deformation: tissue deforms under probe
    pressure. Blur: lateral resolution varies with depth, focus and machine.
    Coarse dropout: acoustic shadows hide parts of a structure.
    """
    import albumentations as A

    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(scale=(0.8, 1.25), translate_percent=(-0.1, 0.1), rotate=(-15, 15), shear=(-5, 5), p=0.8,
                     border_mode=cv2.BORDER_CONSTANT),
            A.ElasticTransform(alpha=30, sigma=6, p=0.3, border_mode=cv2.BORDER_CONSTANT),
            A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.25, p=0.7),
            A.RandomGamma(gamma_limit=(70, 140), p=0.5),
            A.GaussianBlur(blur_limit=(3, 5), p=0.2),
            A.MultiplicativeNoise(multiplier=(0.85, 1.15), per_channel=False, elementwise=True, p=0.3),
            A.CoarseDropout(num_holes_range=(1, 4), hole_height_range=(0.05, 0.15), hole_width_range=(0.05, 0.15),
                            fill=0, p=0.2),
        ]
    )


class SegDataset:
    """In-memory training set of (image, mask) arrays with optional augmentation."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, norm: dict, transform=None):
        self.images, self.masks, self.transform = images, masks, transform
        self.normalisation = Normalisation.from_card(norm)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        import torch

        img, m = self.images[i], self.masks[i]
        if self.transform is not None:
            out = self.transform(image=img, mask=m)
            img, m = out["image"], out["mask"]
        x = self.normalisation.apply(img)
        return torch.from_numpy(x[None].copy()), torch.from_numpy(m.astype(np.int64))
