"""The training loop's parts: schedule, one epoch of steps, validation, checkpoints.

nervseg.train wires them together; each part is small enough to test on its own.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nervseg.files import write_text_atomic
from nervseg.metrics import dice_per_image
from nervseg.models.card_ops import Normalisation


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def batchnorm_stats_frozen(model):
    """Normalise with batch statistics but leave BatchNorm's running statistics untouched.

    Co-training frames come from another machine with other grey levels; if they fed the
    running statistics, the model would be evaluated (and shipped) with a mixture that
    matches neither set. Momentum 0 makes torch's update a no-op.
    """
    from torch.nn.modules.batchnorm import _BatchNorm

    layers = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    saved = [m.momentum for m in layers]
    for m in layers:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(layers, saved):
            m.momentum = momentum


def endless(loader):
    """Batches of `loader`, reshuffled at each pass, forever."""
    while True:
        yield from loader


def progress(step: int, total_steps: int, seconds: float, max_minutes: float) -> float:
    """Schedule position 0..1: steps done, or time spent when a time budget is set (whichever is further).

    Tying the schedule to the time budget lets the learning rate anneal fully even when a
    shared CPU runs slower than planned, instead of stopping mid-schedule at a high rate.
    """
    p = step / total_steps
    if max_minutes:
        p = max(p, seconds / (60 * max_minutes))
    return p


def scheduled_lr(max_lr: float, p: float, warmup: float = 0.05) -> float:
    """Linear warm-up then cosine decay to 1% of `max_lr`."""
    if p < warmup:
        return max_lr * max(p / warmup, 0.05)
    q = (p - warmup) / (1 - warmup)
    return max_lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(q, 1.0))))


def weight_average(model, decay: float):
    """An exponential moving average of `model`'s weights and BatchNorm buffers, or None when decay is 0.

    Averaging the weights over the last ~1/(1-decay) steps smooths the noise of
    small-batch training on a small set; torch's AveragedModel does the bookkeeping.
    """
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def run_validation(model, images, masks, norm, device, n_classes, batch_size=32) -> np.ndarray:
    """Mean validation Dice per foreground class at training size."""
    import torch

    model.eval()
    preds = []
    normalisation = Normalisation.from_card(norm)
    with torch.inference_mode():
        for s in range(0, len(images), batch_size):
            x = normalisation.apply(images[s : s + batch_size])
            logits = model(torch.from_numpy(x[:, None]).to(device))
            preds.append(logits.argmax(1).cpu().numpy().astype(np.uint8))
    return dice_per_image(np.concatenate(preds), masks, n_classes).mean(axis=0)


@dataclass
class TrainState:
    """Everything the loop carries from epoch to epoch (and a checkpoint restores)."""

    step: int = 0
    curves: dict = field(default_factory=dict)
    best: float = -1.0
    best_epoch: int = -1
    start_epoch: int = 0
    elapsed: float = 0.0
    cpu_seconds: float = 0.0  # process CPU time of the epochs (all threads), kept across resumes
    stopped: str = "completed all epochs"


@dataclass
class Fitter:
    """What one optimisation step needs: model, optimiser, loss, schedule, EMA and co-training."""

    model: object
    opt: object
    loss_fn: object
    device: str
    lr: float
    total_steps: int
    max_minutes: float = 0.0
    ema: object = None
    co_batches: object = None
    co_weight: float = 1.0
    co_loss: object = None

    @property
    def scored(self):
        """The weights that are validated and shipped: the average when EMA is on."""
        return self.model if self.ema is None else self.ema.module

    def step(self, x, y) -> float:
        """One optimiser step on a batch (plus a co-training batch); returns the loss."""
        x, y = x.to(self.device), y.to(self.device)
        loss = self.loss_fn(self.model(x), y)
        if self.co_batches is not None:
            cx, cy = next(self.co_batches)
            with batchnorm_stats_frozen(self.model):
                co_logits = self.model(cx.to(self.device))
            loss = loss + self.co_weight * self.co_loss(co_logits, cy.to(self.device))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return float(loss.detach())


def fit_epoch(fitter: Fitter, loader, state: TrainState, desc: str) -> tuple[list[float], bool]:
    """One pass over `loader` (stopping early when the schedule ends); (losses, schedule ended)."""
    from tqdm import tqdm

    fitter.model.train()
    t0 = time.time()
    losses: list[float] = []
    bar = tqdm(loader, desc=desc, mininterval=10, file=sys.stdout)
    for x, y in bar:
        p = progress(state.step, fitter.total_steps, state.elapsed + time.time() - t0, fitter.max_minutes)
        if p >= 1.0:
            return losses, True
        for group in fitter.opt.param_groups:
            group["lr"] = scheduled_lr(fitter.lr, p)
        losses.append(fitter.step(x, y))
        state.step += 1
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", best_dice=f"{max(state.best, 0):.3f}")
    return losses, False


def save_checkpoint(path: Path, fitter: Fitter, state: TrainState, epoch: int) -> None:
    import torch

    ema = {"ema": fitter.ema.state_dict()} if fitter.ema is not None else {}
    torch.save({"model": fitter.model.state_dict(), "opt": fitter.opt.state_dict(), "step": state.step,
                "curves": state.curves, "best": state.best, "best_epoch": state.best_epoch, "epoch": epoch,
                "elapsed": state.elapsed, "cpu_seconds": state.cpu_seconds, **ema}, path)
    # beside it, readable without torch: the time an interrupted job already spent (the queue logs it on resume)
    write_text_atomic(path.with_suffix(".json"), json.dumps({"epochs_done": epoch + 1, "cpu_seconds": state.cpu_seconds,
                                                            "elapsed_seconds": state.elapsed}))


def load_checkpoint(path: Path, fitter: Fitter, state: TrainState) -> None:
    """Restore model, optimiser, EMA and loop state from `path` (the loop resumes after its epoch)."""
    import torch

    saved = torch.load(path, map_location=fitter.device, weights_only=True)
    fitter.model.load_state_dict(saved["model"])
    fitter.opt.load_state_dict(saved["opt"])
    if fitter.ema is not None and "ema" in saved:
        fitter.ema.load_state_dict(saved["ema"])
    state.step = int(saved["step"])
    state.curves = {k: list(v) for k, v in saved["curves"].items()}
    state.best, state.best_epoch = saved["best"], saved["best_epoch"]
    state.start_epoch, state.elapsed = saved["epoch"] + 1, saved["elapsed"]
    state.cpu_seconds = float(saved.get("cpu_seconds", 0.0))
