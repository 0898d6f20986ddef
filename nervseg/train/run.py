"""Train one model and write its weights and model card.

    python -m nervseg.train --arch unet --task kaggle-bp --epochs 8
    python -m nervseg.train --arch unet --task usgra --split-file splits/usgra-folds.json --fold 0

Writes models/<task>-<arch>.safetensors and models/<task>-<arch>.json. Runs
unchanged on CPU and CUDA; checkpoints every epoch to runs/<id>/ for --resume.
Every flag is a field of TrainConfig, written whole into the card as its recipe.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import numpy as np

from nervseg import models_dir as default_models_dir
from nervseg import preprocess as pp
from nervseg.data.arrays import co_training_arrays, load_arrays
from nervseg.data.datasets import DatasetSpec, spec
from nervseg.data.splits import make_split
from nervseg.inference.export import export_card
from nervseg.models.card_ops import DEFAULT_NORMALISATION
from nervseg.models.cards import ARCHITECTURES, ModelCard, build, get_card, load_state_dict, save_weights
from nervseg.train.augment import SegDataset, augmentation
from nervseg.train.card import make_card
from nervseg.train.config import TrainConfig, TrainData, parse_args
from nervseg.train.loop import (
    Fitter,
    TrainState,
    endless,
    fit_epoch,
    load_checkpoint,
    progress,
    run_validation,
    save_checkpoint,
    seed_everything,
    weight_average,
)
from nervseg.train.losses import make_loss, nerve_only_loss

NORMALISATION = DEFAULT_NORMALISATION


def prepare_data(cfg: TrainConfig, ds: DatasetSpec, settings: pp.Preprocess) -> TrainData:
    """Split the task, load and resize its arrays; empty extra frames are repeated `empty_oversample` times."""
    size = tuple(cfg.size) if cfg.size else ds.input_size
    if size[0] % 16 or size[1] % 16:
        raise SystemExit("--size must be multiples of 16 (the encoder downsamples 16x)")
    if cfg.crop and (cfg.crop[0] % 16 or cfg.crop[1] % 16 or cfg.crop[0] > size[0] or cfg.crop[1] > size[1]):
        raise SystemExit("--crop must be multiples of 16 and no larger than --size")
    split = make_split(cfg.task, cfg.data, seed=cfg.seed, split_file=cfg.split_file, fold=cfg.fold)
    train_pairs, val_pairs = split.train, split.val
    if cfg.limit:
        train_pairs, val_pairs = train_pairs[: cfg.limit], val_pairs[: max(2, cfg.limit // 2)]
    t_load = time.time()
    xi, yi = load_arrays(train_pairs, size, settings)
    n_empty = 0
    if split.extra_train and not cfg.limit:
        ei, ey = load_arrays(split.extra_train, size, settings)
        n_empty = len(ei)
        xi = np.concatenate([xi] + [ei] * cfg.empty_oversample)
        yi = np.concatenate([yi] + [ey] * cfg.empty_oversample)
    if val_pairs:
        vx, vy = load_arrays(val_pairs, size, settings)
    else:
        vx, vy = np.zeros((0, *size), np.uint8), np.zeros((0, *size), np.uint8)
    print(f"[{cfg.model_id}] loaded {len(xi)} train ({n_empty} empty x{cfg.empty_oversample}), "
          f"{len(vx)} val at {size} in {time.time() - t_load:.0f}s", flush=True)
    return TrainData(split, size, xi, yi, vx, vy, n_empty, val_pairs)


def initialise(cfg: TrainConfig, n_classes: int, device: str, models: Path):
    """(model, initialisation note, earlier stages): random, or the matching tensors of --init-from."""
    model = build(cfg.arch, n_classes, **ARCHITECTURES[cfg.arch].default_kwargs).to(device)
    if not cfg.init_from:
        return model, "random initialisation (no pretrained encoder weights are available offline)", []
    src_card = get_card(cfg.init_from, models)
    src = load_state_dict(src_card)
    own = model.state_dict()
    take = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(take, strict=False)
    rest = "all of them" if len(take) == len(own) else "the rest (the class head) freshly initialised"
    note = f"initialised from {cfg.init_from} ({len(take)}/{len(own)} tensors; {rest})"
    earlier = [*src_card.training.get("earlier_stages", []),
               {"id": src_card.id, "command": src_card.command, "wall_minutes": src_card.training.get("wall_minutes")}]
    return model, note, earlier


def _loader(x, y, cfg: TrainConfig, seed: int):
    import torch
    from torch.utils.data import DataLoader

    return DataLoader(SegDataset(x, y, NORMALISATION, augmentation(cfg.augment, cfg.crop)), batch_size=cfg.batch_size,
                      shuffle=True, drop_last=len(x) > cfg.batch_size, generator=torch.Generator().manual_seed(seed),
                      num_workers=0)


def make_fitter(cfg: TrainConfig, model, loader, device: str, size, settings) -> tuple[Fitter, str | None]:
    """The optimiser, EMA, loss and co-training batches around `model`; (fitter, co-training note)."""
    import torch

    co_batches, co_note = None, None
    if cfg.co_train:
        cx, cy, co_note = co_training_arrays(cfg.co_train, size, settings, cfg.data, cfg.seed, cfg.limit)
        co_note += f", weight {cfg.co_train_weight:g}"
        co_batches = endless(_loader(cx, cy, cfg, cfg.seed + 1))
        print(f"[{cfg.model_id}] co-training on {co_note}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    fitter = Fitter(model, opt, make_loss(cfg.loss), device, cfg.lr, max(1, cfg.epochs * len(loader)),
                    cfg.max_minutes, weight_average(model, cfg.ema), co_batches, cfg.co_train_weight, nerve_only_loss)
    return fitter, co_note


def _record(state: TrainState, epoch: int, losses: list[float], fg_names: list[str], per_class,
            has_validation: bool = True) -> None:
    state.curves["epoch"].append(epoch + 1)
    state.curves["train_loss"].append(float(np.mean(losses)))
    if per_class is not None:
        for c, d in zip(fg_names, per_class):
            state.curves.setdefault(f"val_dice_{c}", []).append(float(d))  # older checkpoints lack vessel
    elif has_validation:  # an epoch skipped by --val-every: a gap, so each curve stays aligned with the epochs
        for c in fg_names:
            state.curves.setdefault(f"val_dice_{c}", []).append(None)
    state.curves["seconds"].append(round(state.elapsed, 1))


def _after_epoch(cfg: TrainConfig, fitter: Fitter, state: TrainState, epoch: int, per_class, best_path: Path) -> bool:
    """Keep the best epoch (seeded split only), report; True when patience has run out."""
    if per_class is not None and cfg.selects_on_validation:
        score = float(per_class[0] if cfg.select_on == "nerve" else per_class.mean())
        if score > state.best:
            state.best, state.best_epoch = score, epoch + 1
            save_weights(fitter.scored, best_path, dtype="float32")
    elif not cfg.selects_on_validation:
        state.best_epoch = epoch + 1  # fixed budget: the last epoch ships
    dices = " ".join(f"{c} {d:.4f}" for c, d in zip(spec(cfg.task).classes[1:], per_class if per_class is not None else []))
    print(f"[{cfg.model_id}] epoch {epoch + 1}: loss {state.curves['train_loss'][-1]:.4f} val Dice {dices or '-'} "
          f"(best {cfg.select_on} {state.best:.4f} @ {state.best_epoch}) {state.elapsed / 60:.1f} min", flush=True)
    return cfg.selects_on_validation and epoch + 1 - state.best_epoch >= cfg.patience


def run_epochs(cfg: TrainConfig, fitter: Fitter, loader, data: TrainData, state: TrainState, run_dir: Path) -> None:
    """Epochs until the schedule, the time budget or (seeded split only) the patience ends."""
    fg_names = list(spec(cfg.task).classes[1:])
    n_classes = len(fg_names) + 1
    for epoch in range(state.start_epoch, cfg.epochs):
        t0, c0 = time.time(), time.process_time()
        losses, done = fit_epoch(fitter, loader, state, f"{cfg.model_id} epoch {epoch + 1}/{cfg.epochs}")
        if not losses:  # the schedule ended exactly at an epoch boundary
            state.stopped = f"schedule complete after {state.step} steps"
            return
        last = done or epoch + 1 == cfg.epochs or progress(
            state.step, fitter.total_steps, state.elapsed + time.time() - t0, cfg.max_minutes) >= 1.0
        validate = len(data.val_x) and (cfg.selects_on_validation or last or (epoch + 1) % max(1, cfg.val_every) == 0)
        per_class = (run_validation(fitter.scored, data.val_x, data.val_y, NORMALISATION, fitter.device, n_classes)
                     if validate else None)
        state.elapsed += time.time() - t0
        state.cpu_seconds += time.process_time() - c0
        _record(state, epoch, losses, fg_names, per_class, has_validation=len(data.val_x) > 0)
        out_of_patience = _after_epoch(cfg, fitter, state, epoch, per_class, run_dir / "best.safetensors")
        save_checkpoint(run_dir / "last.pt", fitter, state, epoch)
        if out_of_patience:
            state.stopped = f"early stop: no better validation Dice for {cfg.patience} epochs"
            return
        if done or progress(state.step, fitter.total_steps, state.elapsed, cfg.max_minutes) >= 1.0:
            state.stopped = (f"schedule complete after {state.step} steps"
                             + (f" (time budget {cfg.max_minutes:g} min)" if cfg.max_minutes else ""))
            return


def export(cfg: TrainConfig, fitter: Fitter, run_dir: Path, out_dir: Path):
    """The shipped model (best epoch on the seeded split, else the last/EMA weights) written as fp16."""
    from safetensors.torch import load_file

    model = fitter.model
    if cfg.selects_on_validation:
        model.load_state_dict(load_file(str(run_dir / "best.safetensors")))
    elif fitter.ema is not None:
        model.load_state_dict(fitter.ema.module.state_dict())
    weights = out_dir / f"{cfg.model_id}.safetensors"
    sha, nbytes = save_weights(model.cpu(), weights, dtype="float16")
    return model, weights, sha, nbytes


def evaluate_and_tune(cfg: TrainConfig, card: ModelCard, model, data: TrainData, device: str) -> None:
    """Held-out figures at each image's own resolution (and post-processing when the task has extra frames)."""
    from nervseg.evaluate.tune import tune_card, tuning_pairs, validation_figures
    from nervseg.inference.segmenter import Segmenter

    seg = Segmenter(card, model, device=device)
    if data.split.extra_train and not cfg.limit:
        pairs, chosen_on = tuning_pairs(data.split, cfg.data)
        tune_card(seg, pairs, data.val_pairs, data.split.heldout_fullres, chosen_on)
    else:
        card.validation = validation_figures(seg, data.val_pairs)


def train(cfg: TrainConfig, argv: list[str] | None = None) -> ModelCard:
    """Run `cfg` end to end: data, initialisation, epochs, export, card, held-out figures."""
    import torch

    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    ds = spec(cfg.task)
    out_dir = Path(cfg.out) if cfg.out else default_models_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(cfg.runs) / cfg.model_id
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = pp.Preprocess()  # trained on raw scans: the sliders start from identity
    data = prepare_data(cfg, ds, settings)
    model, init_note, earlier = initialise(cfg, len(ds.classes), device, out_dir)
    loader = _loader(data.x, data.y, cfg, cfg.seed)
    fitter, co_note = make_fitter(cfg, model, loader, device, data.size, settings)
    state = TrainState(curves={"epoch": [], "train_loss": [], **{f"val_dice_{c}": [] for c in ds.classes[1:]},
                               "seconds": []})
    if cfg.resume and (run_dir / "last.pt").is_file():
        load_checkpoint(run_dir / "last.pt", fitter, state)
        print(f"[{cfg.model_id}] resumed at epoch {state.start_epoch}", flush=True)
    run_epochs(cfg, fitter, loader, data, state, run_dir)
    model, weights, sha, nbytes = export(cfg, fitter, run_dir, out_dir)
    command = "python -m nervseg.train " + " ".join(shlex.quote(a) for a in (argv or []))
    card = make_card(cfg, ds, model, data, state, (weights, sha, nbytes), device,
                     {"initialisation": init_note, "earlier_stages": earlier, "co_training": co_note}, command)
    card.path = str(out_dir / f"{cfg.model_id}.json")
    card.save(Path(card.path))
    evaluate_and_tune(cfg, card, model, data, device)
    card.save(Path(card.path))
    graph = export_card(card)  # the inference engine's graph, so the new weights never run on a stale one
    print(f"[{cfg.model_id}] wrote {weights} ({nbytes / 1e6:.1f} MB), {graph.name} and {card.path}", flush=True)
    return card


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    train(parse_args(argv), argv)


if __name__ == "__main__":
    main()
