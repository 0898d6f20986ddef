"""Training-time augmentation and the in-memory training set."""

from __future__ import annotations

import cv2
import numpy as np

from nervseg.models.card_ops import Normalisation


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
