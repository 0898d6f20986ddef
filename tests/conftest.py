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
from nervseg.models.random_cards import SMALL_SMP_KWARGS as RANDOM_SMP_KWARGS

os.environ.setdefault("OMP_NUM_THREADS", "2")

RANDOM_SIZE = [64, 64]


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
    from nervseg.io.readers import load_mask

    folder = data_root / "kaggle-bp" / "fullres"
    for mask in sorted(folder.glob("*_mask.tif")):
        if load_mask(mask).any():
            return folder / mask.name.replace("_mask", ""), mask
    pytest.skip(f"no non-empty full-resolution mask under {folder}")


def make_random_card(directory: Path, arch: str, classes: list[str] | None = None,
                     model_id: str | None = None, preprocess: dict | None = None):
    """A random-weight card (64x64 input, small decoder) in `directory`, via nervseg.models.random_cards."""
    from nervseg.models.random_cards import random_card

    return random_card(directory, arch, classes, model_id, tuple(RANDOM_SIZE), RANDOM_SMP_KWARGS, preprocess)


@pytest.fixture(scope="session")
def random_card_factory():
    """make_random_card as a fixture: tests take it as an argument instead of importing conftest."""
    return make_random_card


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory) -> Path:
    """A models folder with one random-weight card per architecture (64x64 input, 3 classes)."""
    from nervseg.models.cards import ARCHITECTURES

    directory = tmp_path_factory.mktemp("random_models")
    for arch in ARCHITECTURES:
        make_random_card(directory, arch)
    return directory


@pytest.fixture(scope="session")
def shipped_cards():
    """The model cards shipped in models/; fails when one does not load or there are none (they are part of
    the project, not optional)."""
    from nervseg.models.cards import available_with_errors

    cards, errors = available_with_errors(nervseg.models_dir())
    assert not errors, f"model cards that do not load: {errors}"
    assert cards, f"no model cards in {nervseg.models_dir()}"
    return cards


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _synthetic_scan(rng: np.random.Generator, h: int, w: int, classes: int, empty: bool = False):
    """Speckle with bright blobs where the mask is set (no real data is copied)."""
    img = rng.integers(20, 80, (h, w), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    if not empty:
        for c in range(1, classes):
            top, left = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
            mask[top : top + h // 4, left : left + w // 4] = c
            img[mask == c] = 150 + 40 * c
    return img, mask


@pytest.fixture(scope="session")
def tiny_data_root(tmp_path_factory) -> Path:
    """A data root laid out like ../shared/data, with synthetic scans: usgra-seg (12 images, 3 classes),
    kaggle-bp/images-256 (5 subjects x 3 frames, masks 0/255) and kaggle-bp/fullres (subjects 1, 2, half empty).
    For the naming, pairing, split and training logic without the real data."""
    import cv2

    root = tmp_path_factory.mktemp("tiny_data")
    rng = np.random.default_rng(0)
    usgra = root / "usgra-seg"
    (usgra / "images").mkdir(parents=True), (usgra / "masks").mkdir()
    for i in range(12):
        img, mask = _synthetic_scan(rng, 48, 56, 3)
        cv2.imwrite(str(usgra / "images" / f"{i:04d}.png"), img)
        cv2.imwrite(str(usgra / "masks" / f"{i:04d}.png"), mask)
    small = root / "kaggle-bp" / "images-256"
    (small / "images").mkdir(parents=True), (small / "masks").mkdir()
    for subject in range(1, 6):
        for frame in range(1, 4):
            img, mask = _synthetic_scan(rng, 40, 56, 2)
            cv2.imwrite(str(small / "images" / f"{subject}_{frame}.png"), img)
            cv2.imwrite(str(small / "masks" / f"{subject}_{frame}_mask.png"), mask * 255)
    full = root / "kaggle-bp" / "fullres"
    full.mkdir()
    for subject in (1, 2):
        for frame in range(1, 5):
            img, mask = _synthetic_scan(rng, 42, 58, 2, empty=frame % 2 == 0)
            cv2.imwrite(str(full / f"{subject}_{frame}.tif"), img)
            cv2.imwrite(str(full / f"{subject}_{frame}_mask.tif"), mask * 255)
    return root


@pytest.fixture
def write_folds(tmp_path):
    """write_folds(task, folds, excluded=(), groups=None) -> path of a fold file in the agreed format."""
    import json

    def write(task: str, folds: list[list[str]], excluded=(), groups: dict | None = None) -> Path:
        path = tmp_path / f"{task}-folds.json"
        path.write_text(json.dumps({"task": task, "k": len(folds), "grouping": "test grouping",
                                    "excluded": list(excluded), "groups": groups or {}, "folds": folds}))
        return path

    return write


@pytest.fixture(scope="session")
def make_zip():
    """make_zip({name: bytes}) -> the bytes of a zip archive holding those files."""
    import io
    import zipfile

    def build(entries: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in entries.items():
                zf.writestr(name, data)
        return buf.getvalue()

    return build
