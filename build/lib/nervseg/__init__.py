"""nervseg: nerve and vessel segmentation in regional-anaesthesia ultrasound."""

from __future__ import annotations

import os
from pathlib import Path

__version__ = "0.1.0"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_ROOT / "models"


def data_root() -> Path:
    """Where the shared ultrasound data lives: $NERVSEG_DATA, else ../shared/data."""
    env = os.environ.get("NERVSEG_DATA")
    return Path(env) if env else PROJECT_ROOT.parent / "shared" / "data"


def models_dir() -> Path:
    """Where model cards and weights live: $NERVSEG_MODELS, else ./models."""
    env = os.environ.get("NERVSEG_MODELS")
    return Path(env) if env else MODELS_DIR
