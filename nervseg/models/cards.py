"""Architecture registry, model cards (models/<id>.json) and weight loading.

A model card is the single source of truth for a shipped model: how to build
it, what it was trained on, how well it did, and which weights file (with its
sha256) belongs to it. Weights are safetensors only; pickle is never loaded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from nervseg import models_dir as _default_models_dir
from nervseg.io.hashing import sha256_file  # noqa: F401 - re-exported for callers of models.sha256_file


class ModelError(RuntimeError):
    """A model card or its weights cannot be used; the message says why."""


@dataclass(frozen=True)
class Architecture:
    """How to build one architecture with segmentation-models-pytorch."""

    key: str
    display: str
    smp_class: str
    encoder: str
    description: str
    # defaults for NEW training runs only; a shipped model is rebuilt from its card's own kwargs
    default_kwargs: dict = field(default_factory=lambda: dict(UNET_KWARGS), hash=False, compare=False)


UNET_KWARGS = {"encoder_depth": 4, "decoder_channels": [128, 64, 32, 16]}  # as the shipped cards were trained

# One place to add an architecture: a new entry here (any smp class, with its own default_kwargs).
ARCHITECTURES: dict[str, Architecture] = {
    a.key: a
    for a in (
        Architecture("unet", "U-Net", "Unet", "resnet34", "U-Net with a ResNet-34 encoder"),
        Architecture("densenet", "DenseNet", "Unet", "densenet121", "U-Net decoder on a DenseNet-121 encoder"),
        Architecture(
            "sk-unet",
            "SK-U-Net",
            "Unet",
            "tu-skresnet18",
            "U-Net on a selective-kernel ResNet-18 encoder (timm skresnet18)",
        ),
    )
}


# smp keeps encoder stages below `encoder_depth` in the module although forward never
# reaches them; dropping them cuts the shipped weights (13 M parameters for ResNet-34).
_UNUSED_BELOW_DEPTH5 = {
    "resnet34": ("layer4",),
    "densenet121": ("features.denseblock4", "features.norm5", "features.transition3.conv"),
}


def _drop_unreached_stages(model, encoder: str, depth: int) -> None:
    import torch.nn as nn

    if depth >= 5:
        return
    for dotted in _UNUSED_BELOW_DEPTH5.get(encoder, ()):
        parent_path, _, leaf = dotted.rpartition(".")
        parent = model.encoder.get_submodule(parent_path) if parent_path else model.encoder
        setattr(parent, leaf, nn.Identity())


def build_smp(smp_class: str, encoder: str, classes: int, in_channels: int = 1, **smp_kwargs):
    """An untrained smp model (the one factory); never downloads encoder weights."""
    import segmentation_models_pytorch as smp

    smp_kwargs = dict(smp_kwargs)
    smp_kwargs.pop("encoder_weights", None)
    model = smp.create_model(arch=smp_class, encoder_name=encoder, encoder_weights=None,
                             in_channels=in_channels, classes=classes, **smp_kwargs)
    _drop_unreached_stages(model, encoder, int(smp_kwargs.get("encoder_depth", 5)))
    return model


def build(arch: str, classes: int, in_channels: int = 1, **smp_kwargs):
    """An untrained model of a registry architecture (new training runs)."""
    if arch not in ARCHITECTURES:
        raise ModelError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    spec = ARCHITECTURES[arch]
    return build_smp(spec.smp_class, spec.encoder, classes, in_channels, **smp_kwargs)


@dataclass
class ModelCard:
    """Everything known about one shipped model (the one source of truth for it)."""

    id: str
    name: str
    architecture: str
    classes: list[str]
    smp_class: str = "Unet"
    encoder: str = ""
    smp_kwargs: dict = field(default_factory=dict)
    input_size: list[int] = field(default_factory=lambda: [256, 256])  # [height, width]
    normalisation: dict = field(default_factory=lambda: {"scale": 1 / 255, "mean": 0.5, "std": 0.25})
    preprocess: dict = field(default_factory=dict)
    postprocess: dict = field(default_factory=dict)
    task: str = ""
    weights_file: str = ""
    weights_sha256: str = ""
    weights_bytes: int = 0
    weights_dtype: str = "float16"
    parameters: int = 0
    data: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)  # the task's common training recipe (nervseg.train.card.recipe)
    validation: dict = field(default_factory=dict)
    cross_validation: dict = field(default_factory=dict)  # out-of-fold figures with CIs (nervseg.cv.summary)
    presence: dict = field(default_factory=dict)  # calibrated presence per class (nervseg.evaluate.presence schema)
    int8: dict = field(default_factory=dict)  # the live int8 graph and its measured agreement (nervseg.inference.quantize)
    curves: dict = field(default_factory=dict)
    command: str = ""
    notes: str = ""
    path: str = ""  # where the card was read from; not written

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def arch_display(self) -> str:
        spec = ARCHITECTURES.get(self.architecture)
        return spec.display if spec else self.architecture

    def weights_path(self) -> Path:
        base = Path(self.path).parent if self.path else _default_models_dir()
        return base / self.weights_file

    def validation_dice(self, cls: str = "nerve") -> float | None:
        """Per-image mean Dice of `cls` on the held-out split, if recorded."""
        v = self.validation.get("per_class", {}).get(cls, {})
        d = v.get("dice_mean")
        return float(d) if d is not None else None

    def cv_dice(self, cls: str = "nerve") -> float | None:
        """Per-image mean out-of-fold Dice of `cls` from a complete cross-validation, if recorded."""
        if not self.cross_validation.get("complete"):
            return None
        d = self.cross_validation.get("per_class", {}).get(cls, {}).get("dice_mean")
        return float(d) if d is not None else None

    def quality(self, cls: str = "nerve") -> tuple[float | None, str]:
        """(the card's headline Dice of `cls`, where it comes from): cross-validated when the card has it,
        else its held-out split's."""
        cv = self.cv_dice(cls)
        return (cv, "cross-validated") if cv is not None else (self.validation_dice(cls), "validation")

    def quality_dice(self, cls: str = "nerve") -> float | None:
        return self.quality(cls)[0]

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("path", None)
        return d

    @classmethod
    def from_dict(cls, d: dict, path: str = "") -> ModelCard:
        """A card from its JSON dict; ModelError naming the card and the field when a field is wrong."""
        where = Path(path).name if path else str(d.get("id", "?")) if isinstance(d, dict) else "?"
        if not isinstance(d, dict):
            raise ModelError(f"model card {where}: expected a JSON object, got {type(d).__name__}")
        known = {f.name: f for f in fields(cls)}
        missing = {"id", "name", "architecture", "classes"} - set(d)
        if missing:
            raise ModelError(f"model card {where} lacks {sorted(missing)}")
        for k, v in d.items():
            if k in known and k != "path":
                problem = _field_problem(k, known[k].type, v)
                if problem:
                    raise ModelError(f"model card {where}: field {k!r} {problem} (got {v!r:.60})")
        return cls(**{k: v for k, v in d.items() if k in known and k != "path"}, path=path)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _field_problem(key: str, annotation: str, value) -> str | None:
    """What is wrong with a card field's value for its annotated type, or None."""
    base = str(annotation).split("[")[0].strip()
    if base == "str":
        return None if isinstance(value, str) else "must be text"
    if base in ("int", "float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok and (base == "float" or float(value).is_integer()) else f"must be a number ({base})"
    if base == "dict":
        if not isinstance(value, dict):
            return "must be an object"
        per_class = value.get("per_class", {}) if key == "validation" else {}
        ok = isinstance(per_class, dict) and all(isinstance(v, dict) for v in per_class.values())
        return None if ok else "must map each class to an object of metrics (per_class)"
    if base == "list":
        if key == "classes":
            ok = isinstance(value, list) and len(value) >= 2 and all(isinstance(c, str) for c in value)
            return None if ok else "must list at least two class names"
        if key == "input_size":
            ok = isinstance(value, list) and len(value) == 2 and all(
                isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 4096 for n in value)
            return None if ok else "must be [height, width] in pixels"
        return None if isinstance(value, list) else "must be a list"
    return None


def read_card(path: Path) -> ModelCard:
    """One card; ModelError naming the file when it is unreadable, not UTF-8 JSON, or malformed."""
    path = Path(path)
    try:
        d = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelError(f"model card {path.name} cannot be read: it is not UTF-8 text.") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"model card {path.name} cannot be read: {e}") from None
    return ModelCard.from_dict(d, path=str(path))


def available_with_errors(directory: Path | None = None) -> tuple[list[ModelCard], list[ModelError]]:
    """(the readable cards sorted by id, one ModelError per unreadable card naming it)."""
    directory = Path(directory) if directory else _default_models_dir()
    if not directory.is_dir():
        return [], []
    good, bad = [], []
    for p in sorted(directory.glob("*.json")):
        try:
            good.append(read_card(p))
        except ModelError as e:
            bad.append(e)
    return good, bad


def available(directory: Path | None = None) -> list[ModelCard]:
    """Every readable model card in `directory` (default: models/), sorted by id.

    A malformed card is left out (see `available_with_errors` for why), so one bad
    file never hides the other models.
    """
    return available_with_errors(directory)[0]


def get_card(model_id: str, directory: Path | None = None) -> ModelCard:
    directory = Path(directory) if directory else _default_models_dir()
    path = directory / f"{model_id}.json"
    if not path.is_file():
        ids = [c.id for c in available(directory)]
        raise ModelError(f"no model {model_id!r}; available: {ids or 'none'}")
    return read_card(path)


def load_state_dict(card: ModelCard) -> dict:
    """The card's weights as float32 tensors, after checking the file's sha256."""
    from safetensors.torch import load_file

    path = card.weights_path()
    if not path.is_file():
        raise ModelError(f"model {card.id}: weights file {path.name} is missing.")
    digest = sha256_file(path)
    if digest != card.weights_sha256:
        raise ModelError(
            f"model {card.id}: weights file {path.name} does not match its card "
            f"(sha256 {digest[:12]}… != {card.weights_sha256[:12]}…); it may be damaged or replaced."
        )
    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises its own error type for a damaged file
        raise ModelError(f"model {card.id}: weights file {path.name} is not a readable safetensors file ({e}).") from None
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def build_from_card(card: ModelCard):
    """The card is the build recipe: its smp class, encoder and kwargs (the registry only fills gaps of
    old cards), so editing the registry never changes how a shipped model loads."""
    spec = ARCHITECTURES.get(card.architecture)
    smp_class, encoder = card.smp_class or (spec and spec.smp_class), card.encoder or (spec and spec.encoder)
    if not smp_class or not encoder:
        raise ModelError(f"model card {card.id} names no smp class/encoder and its architecture "
                         f"{card.architecture!r} is not in the registry")
    return build_smp(smp_class, encoder, card.n_classes, **card.smp_kwargs)


def load_model(card: ModelCard):
    """Build the card's architecture and load its verified weights (eval mode, CPU)."""
    model = build_from_card(card)
    state = load_state_dict(card)  # its own ModelError (missing, checksum) is not an architecture mismatch
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ModelError(f"model {card.id}: weights do not fit the architecture in its card ({e})") from None
    return model.eval()


def save_weights(model, path: Path, dtype: str = "float16") -> tuple[str, int]:
    """Write a model's state dict as safetensors; returns (sha256, bytes)."""
    import torch
    from safetensors.torch import save_file

    target = {"float16": torch.float16, "float32": torch.float32}[dtype]
    state = {
        k: (v.detach().to(target) if v.is_floating_point() else v.detach()).contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    save_file(state, str(path))
    return sha256_file(path), path.stat().st_size


def count_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))
