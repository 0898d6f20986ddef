"""The shipped models as test parameters: one per card file in models/, so a card that no longer
parses fails its tests instead of silently dropping them (available() skips unreadable cards)."""

from __future__ import annotations

import pytest

import nervseg

SHIPPED_IDS = sorted(p.stem for p in nervseg.models_dir().glob("*.json"))


def per_model(argname: str = "model_id"):
    """Parametrize over every shipped card file; with none at all, one failing case says so."""
    return pytest.mark.parametrize(argname, SHIPPED_IDS or [pytest.param(
        None, marks=pytest.mark.xfail(reason="no model cards in models/", strict=True, run=False))])
