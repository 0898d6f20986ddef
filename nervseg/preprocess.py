"""Preprocessing: a registry of filters (pure function + parameter schema) and the settings built from it.

The albumentations pattern: each filter is a pure OpenCV function beside a schema of its
parameters (label, type, range, step, the value that turns it off, the odd-kernel rule,
help). Validation, the order filters run in, `describe`, `is_identity` and the Lab's
sliders all come from `FILTERS`, so a new filter is one entry there, or one `register(Filter(...))`
call from outside (plus its test). `Preprocess()` is the identity. Every filter is deterministic (fixed parameters, no
random sampling), so a preview equals what the model sees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass

import cv2
import numpy as np


class PreprocessError(ValueError):
    """A preprocessing setting is out of its allowed range."""


def clahe(image: np.ndarray, clip: float, tile: int) -> np.ndarray:
    return cv2.createCLAHE(clipLimit=float(clip), tileGridSize=(int(tile), int(tile))).apply(image)


def median(image: np.ndarray, kernel: int) -> np.ndarray:
    return cv2.medianBlur(image, int(kernel))


def gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigmaX=float(sigma))


def nlm(image: np.ndarray, strength: float) -> np.ndarray:
    return cv2.fastNlMeansDenoising(image, None, h=float(strength), templateWindowSize=7, searchWindowSize=21)


@dataclass(frozen=True)
class Param:
    """One setting: its card key, slider label, type and range; `off` is the value at or below
    which the filter does nothing (None: a setting that never switches its filter on)."""

    name: str
    label: str
    type: type
    min: float
    max: float
    step: float
    default: float
    help: str
    off: float | None = 0
    odd: bool = False  # values above 1 must be odd (kernel sizes)

    def check(self, value) -> None:
        if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
            raise PreprocessError(f"{self.name} must be a number, got {value!r}")
        if not self.min <= value <= self.max:
            raise PreprocessError(f"{self.name} must be between {self.min} and {self.max}, got {value}")
        if self.odd and value > 1 and value % 2 == 0:
            raise PreprocessError(f"{self.name} must be odd, got {value}")

    def snap(self, value):
        """The nearest allowed value at or above `value` (a slider moves by 1; kernels need odd sizes)."""
        value = self.type(value)
        return value + 1 if self.odd and value > 1 and value % 2 == 0 else value


@dataclass(frozen=True)
class Filter:
    """A pure function of (image, *param values) and its parameter schema; the first param switches it on."""

    key: str
    fn: Callable[..., np.ndarray]
    params: tuple[Param, ...]
    summary: str  # str.format template over the param names, for describe()

    def is_on(self, values: dict) -> bool:
        switch = self.params[0]
        return values[switch.name] > switch.off

    def __call__(self, image: np.ndarray, values: dict) -> np.ndarray:
        return self.fn(image, *(values[p.name] for p in self.params))


# The registry, in the order filters run: speckle first (NLM averages the speckle texture
# away while keeping nerve fascicle edges, unlike a bilateral filter), then median,
# Gaussian, and contrast equalisation last so it does not amplify the speckle.
FILTERS: list[Filter] = [
    Filter("nlm", nlm, (Param("nlm_strength", "Speckle reduction (non-local means h)", float, 0.0, 30.0, 1.0, 0.0,
                              "0 = off. Averages speckle texture, keeps edges."),), "NLM h={nlm_strength:g}"),
    Filter("median", median, (Param("median_kernel", "Median filter kernel", int, 0, 15, 1, 0,
                                    "0 or 1 = off; odd sizes only.", off=1, odd=True),), "median {median_kernel}"),
    Filter("gaussian", gaussian, (Param("gaussian_sigma", "Gaussian blur sigma (px)", float, 0.0, 5.0, 0.1, 0.0,
                                        "0 = off."),), "Gaussian σ={gaussian_sigma:g}"),
    Filter("clahe", clahe, (Param("clahe_clip", "CLAHE clip limit", float, 0.0, 10.0, 0.1, 0.0,
                                  "0 = off. Local contrast equalisation."),
                            Param("clahe_tile", "CLAHE tiles per side", int, 2, 32, 1, 8, "Used when CLAHE is on.",
                                  off=None)), "CLAHE clip={clahe_clip:g} tiles={clahe_tile}"),
]
PARAMS: dict[str, Param] = {p.name: p for f in FILTERS for p in f.params}


def register(new: Filter, before: str | None = None) -> Filter:
    """Add a filter to the registry (run before the filter keyed `before`, else last); its parameters
    become Preprocess settings, Lab sliders and card keys at once."""
    taken = {f.key for f in FILTERS}
    if new.key in taken or any(p.name in PARAMS for p in new.params):
        raise ValueError(f"filter {new.key!r} or one of its parameters is already registered")
    at = next((i for i, f in enumerate(FILTERS) if f.key == before), len(FILTERS)) if before else len(FILTERS)
    FILTERS.insert(at, new)
    PARAMS.clear()
    PARAMS.update({p.name: p for f in FILTERS for p in f.params})
    return new


def unregister(key: str) -> None:
    """Remove a registered filter (tests that add one put the registry back)."""
    FILTERS[:] = [f for f in FILTERS if f.key != key]
    PARAMS.clear()
    PARAMS.update({p.name: p for f in FILTERS for p in f.params})


class Preprocess:
    """Filter settings, one per registry parameter (PARAMS: name, range, help), each defaulting to its
    `default`; applied in the registry's order. Immutable and hashable; built from the registry when
    made, so a registered filter is a setting at once."""

    def __init__(self, **values) -> None:
        unknown = set(values) - set(PARAMS)
        if unknown:
            raise TypeError(f"Preprocess got unexpected settings {sorted(unknown)}")
        full = {k: values.get(k, p.default) for k, p in PARAMS.items()}
        for p in PARAMS.values():
            p.check(full[p.name])
        object.__setattr__(self, "_values", full)

    def __getattr__(self, name: str):
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        if name in PARAMS:  # registered after this object was made: its default (off)
            return PARAMS[name].default
        raise AttributeError(name)

    def __setattr__(self, name: str, value) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __eq__(self, other) -> bool:
        return isinstance(other, Preprocess) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.to_dict().items())))

    def __repr__(self) -> str:
        return "Preprocess(" + ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items()) + ")"

    def __reduce__(self):
        return (_from_values, (self.to_dict(),))

    @staticmethod
    def names() -> list[str]:
        """The settings' names, in registry order."""
        return list(PARAMS)

    @property
    def is_identity(self) -> bool:
        values = self.to_dict()
        return not any(f.is_on(values) for f in FILTERS)

    def to_dict(self) -> dict:
        values = self.__dict__["_values"]
        return {k: values.get(k, p.default) for k, p in PARAMS.items()}

    @classmethod
    def from_dict(cls, d: dict | None):
        """Build from a dict; unknown keys are refused so typos do not pass silently."""
        d = dict(d or {})
        unknown = set(d) - set(PARAMS)
        if unknown:
            raise PreprocessError(f"unknown preprocessing settings: {sorted(unknown)}")
        try:
            return cls(**{k: PARAMS[k].type(v) for k, v in d.items()})
        except (TypeError, ValueError) as e:
            raise PreprocessError(str(e)) from None

    def describe(self) -> str:
        """Short human-readable summary, e.g. for captions."""
        values = self.to_dict()
        parts = [f.summary.format(**values) for f in FILTERS if f.is_on(values)]
        return ", ".join(parts) or "none"


def _from_values(values: dict) -> Preprocess:
    return Preprocess(**{k: v for k, v in values.items() if k in PARAMS})


def apply(image: np.ndarray, settings: Preprocess | None = None) -> np.ndarray:
    """Apply `settings` to a (H, W) uint8 image, filter by filter in registry order; returns a new uint8 array."""
    if image.dtype != np.uint8 or image.ndim != 2:
        raise PreprocessError(f"expected a (H, W) uint8 image, got {image.dtype} {image.shape}")
    values = (settings or Preprocess()).to_dict()
    out = np.ascontiguousarray(image)
    for f in FILTERS:
        if f.is_on(values):
            out = f(out, values)
    return out if out is not image else out.copy()
