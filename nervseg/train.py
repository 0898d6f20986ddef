"""Train one model and write its weights and model card.

    python -m nervseg.train --arch unet --task kaggle-bp --epochs 8

Writes models/<task>-<arch>.safetensors and models/<task>-<arch>.json. Runs
unchanged on CPU and CUDA; checkpoints every epoch to runs/<id>/ for --resume.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import shlex
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .card_ops import DEFAULT_NORMALISATION, Normalisation
from . import models_dir as default_models_dir
from . import preprocess as pp
from .data import CO_TRAINING, TASKS, SegDataset, augmentation, co_training_arrays, load_arrays, split_task
from .losses import LOSS_DESCRIPTIONS, LOSSES, make_loss, nerve_only_loss
from .models import ARCHITECTURES, ModelCard, build, count_parameters, get_card, load_state_dict, save_weights

DEFAULT_SMP_KWARGS = {"encoder_depth": 4, "decoder_channels": [128, 64, 32, 16]}
NORMALISATION = DEFAULT_NORMALISATION


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m nervseg.train", description=__doc__.split("\n")[0])
    ap.add_argument("--arch", required=True, choices=sorted(ARCHITECTURES))
    ap.add_argument("--task", required=True, choices=sorted(TASKS))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="input size (multiples of 16)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    ap.add_argument("--patience", type=int, default=6, help="epochs without better val Dice before stopping")
    ap.add_argument("--max-minutes", type=float, default=0, help="stop after this much training time (0: no limit)")
    ap.add_argument("--empty-oversample", type=int, default=4, help="times each empty training frame is repeated")
    ap.add_argument("--init-from", default=None, help="model id whose matching weights initialise this model")
    ap.add_argument("--augment", default="default", choices=["default", "strong", "none"])
    ap.add_argument("--loss", default="dice-ce", choices=LOSSES,
                    help="Dice pooled over the batch, or per image (the quality figure is a per-image mean), "
                    "or per-image Tversky that prices a missed pixel above a false alarm")
    ap.add_argument("--select-on", default="nerve", choices=["nerve", "foreground"],
                    help="validation Dice that picks the shipped epoch: nerve, or the mean over foreground classes")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="keep an exponential moving average of the weights with this decay per step "
                         "(e.g. 0.99) and validate and ship it (0: off)")
    ap.add_argument("--co-train", default=None, choices=sorted(CO_TRAINING),
                    help="also train on this task's nerve-only labels (one of its batches per main batch)")
    ap.add_argument("--co-train-weight", type=float, default=1.0, help="weight of the co-training loss")
    ap.add_argument("--limit", type=int, default=0, help="use only this many train/val images (smoke tests)")
    ap.add_argument("--data", type=Path, default=None, help="data root (default: $NERVSEG_DATA or ../shared/data)")
    ap.add_argument("--out", type=Path, default=None, help="models folder (default: models/)")
    ap.add_argument("--runs", type=Path, default=Path("runs"), help="checkpoint folder")
    ap.add_argument("--resume", action="store_true", help="continue from runs/<id>/last.pt")
    ap.add_argument("--id", default=None, help="model id (default: <task>-<arch>)")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(argv)
    args.argv = argv
    return args


def _seed_everything(seed: int) -> None:
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


def _endless(loader):
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


def dice_per_image(pred, true, n_classes: int) -> np.ndarray:
    """(N, C-1) Dice per image and foreground class at training size (empty/empty = 1)."""
    out = np.zeros((pred.shape[0], n_classes - 1))
    for c in range(1, n_classes):
        p, t = pred == c, true == c
        inter = (p & t).sum(axis=(1, 2))
        denom = p.sum(axis=(1, 2)) + t.sum(axis=(1, 2))
        out[:, c - 1] = np.where(denom == 0, 1.0, 2 * inter / np.maximum(denom, 1))
    return out


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
    with torch.inference_mode():
        for s in range(0, len(images), batch_size):
            x = Normalisation.from_card(norm).apply(images[s : s + batch_size])
            logits = model(torch.from_numpy(x[:, None]).to(device))
            preds.append(logits.argmax(1).cpu().numpy().astype(np.uint8))
    d = dice_per_image(np.concatenate(preds), masks, n_classes)
    return d.mean(axis=0)


def train(args: argparse.Namespace) -> ModelCard:
    import torch
    from torch.utils.data import DataLoader

    from .evaluate import evaluate_pairs

    _seed_everything(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    spec = TASKS[args.task]
    model_id = args.id or f"{args.task}-{args.arch}"
    size = tuple(args.size) if args.size else spec.input_size
    if size[0] % 16 or size[1] % 16:
        raise SystemExit("--size must be multiples of 16 (the encoder downsamples 16x)")
    out_dir = Path(args.out) if args.out else default_models_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    run_dir = args.runs / model_id
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = pp.Preprocess()  # trained on raw scans: the sliders start from identity

    split = split_task(args.task, args.data, seed=args.seed)
    train_pairs, val_pairs = split.train, split.val
    if args.limit:
        train_pairs, val_pairs = train_pairs[: args.limit], val_pairs[: max(2, args.limit // 2)]
    t_load = time.time()
    xi, yi = load_arrays(train_pairs, size, settings)
    n_empty = 0
    if split.extra_train and not args.limit:
        ei, ey = load_arrays(split.extra_train, size, settings)
        n_empty = len(ei)
        xi = np.concatenate([xi] + [ei] * args.empty_oversample)
        yi = np.concatenate([yi] + [ey] * args.empty_oversample)
    vx, vy = load_arrays(val_pairs, size, settings)
    print(f"[{model_id}] loaded {len(xi)} train ({n_empty} empty x{args.empty_oversample}), "
          f"{len(vx)} val at {size} in {time.time() - t_load:.0f}s", flush=True)

    n_classes = len(spec.classes)
    model = build(args.arch, n_classes, **DEFAULT_SMP_KWARGS).to(device)
    init_note = "random initialisation (no pretrained encoder weights are available offline)"
    earlier_stages: list[dict] = []  # the training that produced the initial weights, oldest first
    if args.init_from:
        src_card = get_card(args.init_from, out_dir)
        src = load_state_dict(src_card)
        own = model.state_dict()
        take = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(take, strict=False)
        rest = "all of them" if len(take) == len(own) else "the rest (the class head) freshly initialised"
        init_note = f"initialised from {args.init_from} ({len(take)}/{len(own)} tensors; {rest})"
        earlier_stages = [*src_card.training.get("earlier_stages", []),
                          {"id": src_card.id, "command": src_card.command,
                           "wall_minutes": src_card.training.get("wall_minutes")}]
    ds = SegDataset(xi, yi, NORMALISATION, augmentation(args.augment))
    g = torch.Generator().manual_seed(args.seed)
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, drop_last=len(ds) > args.batch_size,
                        generator=g, num_workers=0)
    co_batches, co_note = None, None
    if args.co_train:
        cx, cy, co_note = co_training_arrays(args.co_train, size, settings, args.data, args.seed, args.limit)
        co_note += f", weight {args.co_train_weight:g}"
        co_loader = DataLoader(SegDataset(cx, cy, NORMALISATION, augmentation(args.augment)),
                               batch_size=args.batch_size, shuffle=True, drop_last=len(cx) > args.batch_size,
                               generator=torch.Generator().manual_seed(args.seed + 1), num_workers=0)
        co_batches = _endless(co_loader)
        print(f"[{model_id}] co-training on {co_note}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    ema = weight_average(model, args.ema)
    steps = max(1, args.epochs * len(loader))
    loss_fn = make_loss(args.loss)

    fg_names = list(spec.classes[1:])
    curves = {"epoch": [], "train_loss": [], **{f"val_dice_{c}": [] for c in fg_names}, "seconds": []}
    best, best_epoch, start_epoch, elapsed, step = -1.0, -1, 0, 0.0, 0
    ckpt = run_dir / "last.pt"
    if args.resume and ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        if ema is not None and "ema" in state:
            ema.load_state_dict(state["ema"])
        step = int(state["step"])
        curves = {k: list(v) for k, v in state["curves"].items()}
        best, best_epoch, start_epoch, elapsed = state["best"], state["best_epoch"], state["epoch"] + 1, state["elapsed"]
        print(f"[{model_id}] resumed at epoch {start_epoch}", flush=True)

    from tqdm import tqdm

    best_path = run_dir / "best.safetensors"
    stopped = "completed all epochs"
    for epoch in range(start_epoch, args.epochs):
        model.train()
        t0 = time.time()
        losses = []
        bar = tqdm(loader, desc=f"{model_id} epoch {epoch + 1}/{args.epochs}", mininterval=10, file=sys.stdout)
        done = False
        for x, y in bar:
            p = progress(step, steps, elapsed + time.time() - t0, args.max_minutes)
            if p >= 1.0:
                done = True
                break
            for group in opt.param_groups:
                group["lr"] = scheduled_lr(args.lr, p)
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss = loss_fn(logits, y)
            if co_batches is not None:
                cx_b, cy_b = next(co_batches)
                with batchnorm_stats_frozen(model):
                    co_logits = model(cx_b.to(device))
                loss = loss + args.co_train_weight * nerve_only_loss(co_logits, cy_b.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", best_dice=f"{max(best, 0):.3f}")
        if not losses:  # the schedule ended exactly at an epoch boundary
            stopped = f"schedule complete after {step} steps"
            break
        scored = model if ema is None else ema.module
        val_per_class = run_validation(scored, vx, vy, NORMALISATION, device, n_classes)
        score = float(val_per_class[0] if args.select_on == "nerve" else val_per_class.mean())
        elapsed += time.time() - t0
        curves["epoch"].append(epoch + 1)
        curves["train_loss"].append(float(np.mean(losses)))
        for c, d in zip(fg_names, val_per_class):
            curves.setdefault(f"val_dice_{c}", []).append(float(d))  # older checkpoints lack vessel
        curves["seconds"].append(round(elapsed, 1))
        if score > best:
            best, best_epoch = score, epoch + 1
            save_weights(scored, best_path, dtype="float32")
        dices = " ".join(f"{c} {d:.4f}" for c, d in zip(fg_names, val_per_class))
        print(f"[{model_id}] epoch {epoch + 1}: loss {np.mean(losses):.4f} val Dice {dices} "
              f"(best {args.select_on} {best:.4f} @ {best_epoch}) {elapsed / 60:.1f} min", flush=True)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "curves": curves, "best": best, "best_epoch": best_epoch, "epoch": epoch,
                    "elapsed": elapsed, **({"ema": ema.state_dict()} if ema is not None else {})}, ckpt)
        if epoch + 1 - best_epoch >= args.patience:
            stopped = f"early stop: no better validation Dice for {args.patience} epochs"
            break
        if done or progress(step, steps, elapsed, args.max_minutes) >= 1.0:
            stopped = (f"schedule complete after {step} steps"
                       + (f" (time budget {args.max_minutes:g} min)" if args.max_minutes else ""))
            break

    # ship the best epoch as fp16
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(best_path)))
    weights = out_dir / f"{model_id}.safetensors"
    sha, nbytes = save_weights(model.cpu(), weights, dtype="float16")
    arch = ARCHITECTURES[args.arch]
    card = ModelCard(
        id=model_id,
        name=f"{arch.display} · {'brachial plexus (Kaggle)' if args.task == 'kaggle-bp' else 'nerve + vessel (usgra-seg)'}",
        architecture=args.arch,
        classes=list(spec.classes),
        smp_class=arch.smp_class,
        encoder=arch.encoder,
        smp_kwargs=dict(DEFAULT_SMP_KWARGS),
        input_size=list(size),
        normalisation=dict(NORMALISATION),
        preprocess=settings.to_dict(),
        task=args.task,
        weights_file=weights.name,
        weights_sha256=sha,
        weights_bytes=nbytes,
        weights_dtype="float16",
        parameters=count_parameters(model),
        data={"name": spec.data_name, "licence": spec.licence, "split": split.description},
        training={
            "loss": LOSS_DESCRIPTIONS[args.loss],
            "selected_on": f"validation Dice at training size: {args.select_on}",
            "optimiser": f"AdamW lr {args.lr:g}, weight decay 1e-4, warm-up + cosine schedule over steps or time budget",
            "steps": step,
            "batch_size": args.batch_size,
            "epochs_planned": args.epochs,
            "epochs_run": len(curves["epoch"]),
            "best_epoch": best_epoch,
            "stopped": stopped,
            "augmentation": args.augment,
            "weight_ema_decay": args.ema,
            "empty_frames_oversample": args.empty_oversample if n_empty else 0,
            "initialisation": init_note,
            **({"co_training": co_note} if co_note else {}),
            "earlier_stages": earlier_stages,
            "seed": args.seed,
            "hardware": _hardware(device),
            "wall_minutes": round(elapsed / 60, 1),
            "design": (
                "encoder depth 4 and decoder widths 128-64-32-16: models train from scratch on a few "
                "hundred to two thousand images, so the deepest stage adds parameters without data to "
                f"fit them; input {size[0]}x{size[1]} keeps a CPU training epoch to minutes and CPU inference fast."
            ),
        },
        curves=curves,
        command="python -m nervseg.train " + " ".join(shlex.quote(a) for a in args.argv),
    )
    card.path = str(out_dir / f"{model_id}.json")
    card.save(Path(card.path))

    # held-out evaluation at each image's own resolution, through nervseg.inference
    from .inference import Segmenter

    seg = Segmenter(card, model, device=device)
    if split.extra_train and not args.limit:
        from .tune import tune_card, tuning_pairs

        pairs, chosen_on = tuning_pairs(split, args.data)
        tune_card(seg, pairs, val_pairs, split.heldout_fullres, chosen_on)
    else:
        card.validation = {"split": "validation", **evaluate_pairs(seg, val_pairs)["summary"]}
    card.save(Path(card.path))
    print(f"[{model_id}] wrote {weights} ({nbytes / 1e6:.1f} MB) and {card.path}", flush=True)
    return card


def _hardware(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"CUDA {torch.cuda.get_device_name(0)}"
    import os

    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def main(argv=None) -> None:
    args = parse_args(argv)
    train(args)


if __name__ == "__main__":
    main()
