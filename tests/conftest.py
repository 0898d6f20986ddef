"""Shared fixtures: real data from ../shared/data, random-weight model cards, shipped cards.

Tests that need the real data skip with a reason when it is absent; tests that need
shipped models skip when models/ has none. Random-weight models are built in a temp
folder and never pose as trained ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import nervseg

os.environ.setdefault("OMP_NUM_THREADS", "2")

RANDOM_SIZE = [64, 64]
RANDOM_SMP_KWARGS = {"encoder_depth": 4, "decoder_channels": [32, 16, 8, 8]}
RANDOM_CLASSES = ["background", "nerve", "vessel"]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data folder (../shared/data or $NERVSEG_DATA); skips when absent."""
    root = nervseg.data_root()
    if not (root / "usgra-seg").is_dir() or not (root / "kaggle-bp").is_dir():
        pytest.skip(f"real data not found at {root} (set NERVSEG_DATA or provide ../shared/data)")
    return root


@pytest.fixture(scope="session")
def usgra_pair(data_root) -> tuple[Path, Path]:
    """(image, mask) of one usgra-seg pair: RGB or grey PNG image, palette mask 0/1/2."""
    img = data_root / "usgra-seg" / "images" / "0000.png"
    mask = data_root / "usgra-seg" / "masks" / "0000.png"
    if not img.is_file() or not mask.is_file():
        pytest.skip(f"usgra-seg pair 0000 missing under {data_root}")
    return img, mask


@pytest.fixture(scope="session")
def kaggle_pair(data_root) -> tuple[Path, Path]:
    """(image, mask) of one 256x186 kaggle-bp pair, mask 0/255."""
    folder = data_root / "kaggle-bp" / "images-256"
    img = sorted((folder / "images").glob("*.png"))[0]
    mask = folder / "masks" / f"{img.stem}_mask.png"
    if not mask.is_file():
        pytest.skip(f"mask for {img.name} missing under {folder}")
    return img, mask


@pytest.fixture(scope="session")
def fullres_pair(data_root) -> tuple[Path, Path]:
    """(image, mask) of one 580x420 kaggle-bp TIFF pair with a non-empty mask."""
    from nervseg.io import load_mask

    folder = data_root / "kaggle-bp" / "fullres"
    for mask in sorted(folder.glob("*_mask.tif")):
        if load_mask(mask).any():
            return folder / mask.name.replace("_mask", ""), mask
    pytest.skip(f"no non-empty full-resolution mask under {folder}")


def make_random_card(directory: Path, arch: str, classes: list[str] | None = None,
                     model_id: str | None = None, preprocess: dict | None = None):
    """Write a random-weight card + safetensors for `arch` into `directory`; returns the card."""
    import torch

    from nervseg.models import ARCHITECTURES, ModelCard, build, count_parameters, save_weights

    classes = classes or RANDOM_CLASSES
    model_id = model_id or f"random-{arch}"
    torch.manual_seed(0)
    model = build(arch, len(classes), **RANDOM_SMP_KWARGS).eval()
    weights = directory / f"{model_id}.safetensors"
    sha, nbytes = save_weights(model, weights, dtype="float16")
    card = ModelCard(
        id=model_id,
        name=f"{ARCHITECTURES[arch].display} (random weights, tests only)",
        architecture=arch,
        classes=list(classes),
        encoder=ARCHITECTURES[arch].encoder,
        smp_kwargs=dict(RANDOM_SMP_KWARGS),
        input_size=list(RANDOM_SIZE),
        preprocess=dict(preprocess or {}),
        task="usgra" if len(classes) == 3 else "kaggle-bp",
        weights_file=weights.name,
        weights_sha256=sha,
        weights_bytes=nbytes,
        parameters=count_parameters(model),
        notes="random weights",
    )
    card.path = str(directory / f"{model_id}.json")
    card.save(Path(card.path))
    return card


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory) -> Path:
    """A models folder with one random-weight card per architecture (64x64 input, 3 classes)."""
    from nervseg.models import ARCHITECTURES

    directory = tmp_path_factory.mktemp("random_models")
    for arch in ARCHITECTURES:
        make_random_card(directory, arch)
    return directory


@pytest.fixture(scope="session")
def shipped_cards():
    """The model cards shipped in models/ (skips when there are none yet)."""
    from nervseg.models import available

    cards = available(nervseg.models_dir())
    if not cards:
        pytest.skip(f"no shipped models in {nervseg.models_dir()} yet")
    return cards


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
