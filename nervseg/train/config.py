"""The training recipe as data: TrainConfig (every CLI flag a field, written whole into the card) and TrainData."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields

import numpy as np

from nervseg.data.datasets import CO_TRAINING, TASKS
from nervseg.data.splits import Split
from nervseg.models.cards import ARCHITECTURES
from nervseg.train.losses import LOSSES


def _opt(default, help: str = "", **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """One training run; each field is the CLI flag --<name with dashes>."""

    arch: str = _opt(MISSING, choices=ARCHITECTURES)  # the registries themselves: an entry added later counts
    task: str = _opt(MISSING, choices=TASKS)
    epochs: int = _opt(20)
    batch_size: int = _opt(16)
    lr: float = _opt(2e-3)
    size: tuple[int, int] | None = _opt(None, "input size (multiples of 16)", nargs=2, metavar=("H", "W"), type=int)
    crop: tuple[int, int] | None = _opt(None, "train on random crops of this size (multiples of 16) of the --size "
                                        "images, a third of them holding foreground; validation and inference "
                                        "see the whole image (the networks are fully convolutional)",
                                        nargs=2, metavar=("H", "W"), type=int)
    seed: int = _opt(0)
    device: str | None = _opt(None, "cpu or cuda (default: cuda when present)")
    threads: int = _opt(0, "CPU threads (0: all cores)")
    patience: int = _opt(6, "epochs without better val Dice before stopping")
    max_minutes: float = _opt(0.0, "stop after this much training time (0: no limit)")
    empty_oversample: int = _opt(4, "times each empty training frame is repeated")
    init_from: str | None = _opt(None, "model id whose matching weights initialise this model")
    augment: str = _opt("default", choices=["default", "strong", "none"])
    loss: str = _opt("dice-ce", "Dice pooled over the batch, or per image (the quality figure is a per-image "
                     "mean), or per-image Tversky that prices a missed pixel above a false alarm", choices=LOSSES)
    select_on: str = _opt("nerve", "validation Dice that picks the shipped epoch: nerve, or the mean over "
                          "foreground classes", choices=["nerve", "foreground"])
    ema: float = _opt(0.0, "keep an exponential moving average of the weights with this decay per step "
                      "(e.g. 0.99) and validate and ship it (0: off)")
    co_train: str | None = _opt(None, "also train on this task's nerve-only labels (one of its batches per main "
                                "batch)", choices=sorted(CO_TRAINING))
    co_train_weight: float = _opt(1.0, "weight of the co-training loss")
    limit: int = _opt(0, "use only this many train/val images (smoke tests)")
    data: str | None = _opt(None, "data root (default: $NERVSEG_DATA or ../shared/data)")
    out: str | None = _opt(None, "models folder (default: models/)")
    runs: str = _opt("runs", "checkpoint folder")
    resume: bool = _opt(False, "continue from runs/<id>/last.pt")
    id: str | None = _opt(None, "model id (default: <task>-<arch>)")
    split_file: str | None = _opt(None, "fold file (splits/<task>-folds.json); default: the seeded split")
    fold: int | None = _opt(None, "with --split-file: validate on this fold and ship the last (EMA) weights, never "
                            "the epoch best on the fold; without it: train on every fold (final model)")
    val_every: int = _opt(1, "with --fold: validate every Nth epoch and the last one. A fold's validation only "
                          "draws its curve (it selects nothing), and on one CPU thread it costs about a quarter of "
                          "a usgra fold's time; validating changes no weight")

    @property
    def model_id(self) -> str:
        return self.id or f"{self.task}-{self.arch}"

    @property
    def selects_on_validation(self) -> bool:
        """Whether the shipped epoch is the one best on validation (only with the seeded split)."""
        return not self.split_file


def build_parser() -> argparse.ArgumentParser:
    """The CLI, one flag per TrainConfig field."""
    ap = argparse.ArgumentParser(prog="python -m nervseg.train", description=__doc__.split("\n")[0])
    for f in fields(TrainConfig):
        meta = dict(f.metadata)
        kw = {"help": meta.pop("help") or None, **meta}
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            ap.add_argument(flag, action="store_true", **kw)
            continue
        if f.default is MISSING:
            kw["required"] = True
        else:
            kw["default"] = f.default
        kw.setdefault("type", {"int": int, "float": float, "int | None": int, "float | None": float}.get(f.type, str))
        ap.add_argument(flag, **kw)
    return ap


def parse_args(argv=None) -> TrainConfig:
    ns = build_parser().parse_args(argv)
    return TrainConfig(**{k: (tuple(v) if k in ("size", "crop") and v else v) for k, v in vars(ns).items()})


@dataclass
class TrainData:
    """Training and validation arrays at the input size, and the split they came from."""

    split: Split
    size: tuple[int, int]
    x: np.ndarray
    y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    n_empty: int
    val_pairs: list
