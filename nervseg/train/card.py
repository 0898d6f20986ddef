"""The model card a training run writes: what was built, on which data, by which recipe."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict
from typing import TYPE_CHECKING

from nervseg.data.datasets import DatasetSpec
from nervseg.models.card_ops import DEFAULT_NORMALISATION
from nervseg.models.cards import ARCHITECTURES, ModelCard, count_parameters
from nervseg.train.losses import LOSS_DESCRIPTIONS

if TYPE_CHECKING:  # train imports this module
    from nervseg.train.config import TrainConfig, TrainData
    from nervseg.train.loop import TrainState


DESIGN = ("encoder depth 4 and decoder widths 128-64-32-16: models train from scratch on a few hundred to two "
          "thousand images, so the deepest stage adds parameters without data to fit them; input {h}x{w} keeps a "
          "CPU training epoch to minutes and CPU inference fast.")


def hardware(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"CUDA {torch.cuda.get_device_name(0)}"
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


RUN_ONLY = ("arch", "data", "out", "runs", "resume", "id", "device", "threads", "val_every")  # where and how a run ran, not what


def recipe(cfg: TrainConfig) -> dict:
    """What defines the training, identical for the architectures of a task except "architecture".

    Run plumbing (paths, device, threads, resume) is left out; an --init-from naming this
    architecture's model is written as the policy "<task>-{arch}".
    """
    arch = ARCHITECTURES[cfg.arch]
    d = {k: v for k, v in asdict(cfg).items() if k not in RUN_ONLY}
    d["size"] = list(d["size"]) if d["size"] else None
    d["crop"] = list(d["crop"]) if d["crop"] else None
    if d["init_from"] and d["init_from"].endswith(f"-{cfg.arch}"):
        d["init_from"] = d["init_from"][: -len(cfg.arch)] + "{arch}"
    if d["split_file"]:
        d["split_file"] = f"splits/{os.path.basename(d['split_file'])}"
    return {**d, "architecture": {"key": arch.key, "smp_class": arch.smp_class, "encoder": arch.encoder,
                                  "smp_kwargs": dict(arch.default_kwargs)}}


def training_block(cfg: TrainConfig, data: TrainData, state: TrainState, device: str, init: dict) -> dict:
    """The card's `training`: loss, optimiser, schedule, how the shipped epoch was chosen, and where it ran."""
    selected = (f"validation Dice at training size: {cfg.select_on}" if cfg.selects_on_validation else
                "last epoch of a fixed budget (the validation fold is reported, never used to select)")
    return {
        "loss": LOSS_DESCRIPTIONS[cfg.loss],
        "selected_on": selected,
        "optimiser": f"AdamW lr {cfg.lr:g}, weight decay 1e-4, warm-up + cosine schedule over steps or time budget",
        "steps": state.step,
        "batch_size": cfg.batch_size,
        "epochs_planned": cfg.epochs,
        "epochs_run": len(state.curves["epoch"]),
        "best_epoch": state.best_epoch,
        "stopped": state.stopped,
        "augmentation": cfg.augment,
        "weight_ema_decay": cfg.ema,
        "empty_frames_oversample": cfg.empty_oversample if data.n_empty else 0,
        "initialisation": init["initialisation"],
        **({"co_training": init["co_training"]} if init.get("co_training") else {}),
        "earlier_stages": init["earlier_stages"],
        "seed": cfg.seed,
        "hardware": hardware(device),
        "wall_minutes": round(state.elapsed / 60, 1),
        "cpu_minutes": round(state.cpu_seconds / 60, 1),
        **({"crop": list(cfg.crop)} if cfg.crop else {}),
        "design": DESIGN.format(h=data.size[0], w=data.size[1]),
    }


def make_card(cfg: TrainConfig, ds: DatasetSpec, model, data: TrainData, state: TrainState, weights: tuple,
              device: str, init: dict, command: str) -> ModelCard:
    """The card of a finished run; `weights` is (path, sha256, bytes) of the shipped file."""
    path, sha, nbytes = weights
    arch = ARCHITECTURES[cfg.arch]
    return ModelCard(
        id=cfg.model_id,
        name=f"{arch.display} · {ds.display}",
        architecture=cfg.arch,
        classes=list(ds.classes),
        smp_class=arch.smp_class,
        encoder=arch.encoder,
        smp_kwargs=dict(arch.default_kwargs),
        input_size=list(data.size),
        normalisation=dict(DEFAULT_NORMALISATION),
        preprocess=data_settings(),
        task=cfg.task,
        weights_file=path.name,
        weights_sha256=sha,
        weights_bytes=nbytes,
        weights_dtype="float16",
        parameters=count_parameters(model),
        data={"name": ds.data_name, "licence": ds.licence, "split": data.split.description},
        training=training_block(cfg, data, state, device, init),
        recipe=recipe(cfg),
        curves=state.curves,
        command=command,
    )


def data_settings() -> dict:
    """The preprocessing training used: none (raw scans), so the Lab's sliders start from identity."""
    from nervseg.preprocess import Preprocess

    return Preprocess().to_dict()
