"""nervseg.train: a real (tiny) training run whose loss falls and whose card loads."""

from __future__ import annotations

import numpy as np
import pytest

from nervseg.inference import load
from nervseg.models import sha256_file


@pytest.mark.slow
def test_short_training_run(data_root, tmp_path):
    from nervseg.train import main

    out, runs = tmp_path / "models", tmp_path / "runs"
    main([
        "--arch", "unet", "--task", "usgra", "--limit", "8", "--size", "64", "64", "--epochs", "3",
        "--batch-size", "4", "--augment", "none", "--threads", "2",
        "--data", str(data_root), "--out", str(out), "--runs", str(runs),
    ])
    seg = load("usgra-unet", models_dir=out, device="cpu")
    card = seg.card
    losses = card.curves["train_loss"]
    assert card.curves["epoch"] == [1, 2, 3]
    assert len(card.curves["val_dice_vessel"]) == 3 and card.training["selected_on"].endswith("nerve")
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert card.classes == ["background", "nerve", "vessel"]
    assert card.input_size == [64, 64]
    assert card.weights_sha256 == sha256_file(out / card.weights_file)
    assert card.weights_bytes == (out / card.weights_file).stat().st_size
    assert card.data["split"]["val_images"] > 0
    assert "dice_mean" in card.validation["per_class"]["nerve"]
    assert card.command.startswith("python -m nervseg.train --arch unet")
    assert (runs / "usgra-unet" / "last.pt").is_file()
    # the trained card predicts through the one inference path
    img = np.random.default_rng(0).integers(0, 256, (90, 120), dtype=np.uint8)
    assert seg.predict(img).probs.shape == (3, 90, 120)

    # a second stage continues from the first and records it
    main([
        "--arch", "unet", "--task", "usgra", "--limit", "8", "--size", "64", "64", "--epochs", "1",
        "--batch-size", "4", "--augment", "strong", "--ema", "0.5", "--threads", "2", "--init-from", "usgra-unet",
        "--loss", "image-dice-ce", "--select-on", "foreground", "--co-train", "kaggle-bp",
        "--id", "usgra-unet-stage2", "--data", str(data_root), "--out", str(out), "--runs", str(runs),
    ])
    stage2 = load("usgra-unet-stage2", models_dir=out, device="cpu").card
    assert stage2.training["initialisation"].endswith("tensors; all of them)")
    assert stage2.training["earlier_stages"] == [
        {"id": "usgra-unet", "command": card.command, "wall_minutes": card.training["wall_minutes"]}]
    assert stage2.training["augmentation"] == "strong" and stage2.training["weight_ema_decay"] == 0.5
    assert stage2.training["loss"].startswith("Dice per image")
    assert stage2.training["selected_on"].endswith("foreground")
    assert set(stage2.curves) >= {"val_dice_nerve", "val_dice_vessel"}
    assert stage2.training["co_training"].startswith("8 kaggle-bp training-subject images")
    assert "co_training" not in card.training

    # with --ema the shipped weights are the average, not the last raw weights
    import torch
    from safetensors.torch import load_file

    shipped = load_file(str(out / stage2.weights_file))
    state = torch.load(runs / "usgra-unet-stage2" / "last.pt", weights_only=True)
    name = next(k for k in shipped if k.endswith("weight") and shipped[k].ndim == 4)
    averaged, raw = state["ema"][f"module.{name}"], state["model"][name]
    assert torch.allclose(shipped[name].float(), averaged.half().float())
    assert not torch.allclose(averaged, raw)


def test_strong_augmentation_keeps_mask_classes_and_size():
    from nervseg.data import augmentation

    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (96, 128), dtype=np.uint8)
    mask = np.zeros((96, 128), np.uint8)
    mask[30:60, 40:80], mask[70:90, 10:30] = 1, 2
    aug = augmentation("strong")
    outs = [aug(image=img, mask=mask) for _ in range(20)]
    assert all(o["image"].shape == img.shape and o["mask"].shape == mask.shape for o in outs)
    assert all(set(np.unique(o["mask"])) <= {0, 1, 2} for o in outs)
    assert any(not np.array_equal(o["mask"], mask) for o in outs)  # geometry does change


def test_pad_to_aspect_keeps_content_and_pads_with_background():
    from nervseg.data import pad_to_aspect

    img = np.full((186, 256), 200, np.uint8)
    mask = np.ones((186, 256), np.uint8)
    square_img, square_mask = pad_to_aspect(img, mask, 1.0)
    assert square_img.shape == square_mask.shape == (256, 256)
    assert np.array_equal(square_img[:186], img) and not square_img[186:].any() and not square_mask[186:].any()
    wide_img, _ = pad_to_aspect(img, mask, 2.0)
    assert wide_img.shape == (186, 372)


def test_co_training_arrays_are_nerve_only_and_from_training_subjects(data_root):
    from nervseg import preprocess as pp
    from nervseg.data import co_training_arrays, split_task

    split = split_task("kaggle-bp", data_root)
    if not split.train:
        pytest.skip(f"no kaggle-bp images under {data_root}")
    x, y, note = co_training_arrays("kaggle-bp", (64, 64), pp.Preprocess(), data_root, limit=6)
    assert x.shape == y.shape == (6, 64, 64) and x.dtype == np.uint8
    assert set(np.unique(y)) == {0, 1} and not y[:, 56:].any()  # the padded bottom is never nerve
    assert note.startswith("6 kaggle-bp training-subject images")
    # the first training pair, padded square by hand: validation subjects never appear
    import cv2

    from nervseg.io import load_image

    first = load_image(split.train[0].image)
    padded = np.zeros((first.shape[1], first.shape[1]), np.uint8)
    padded[: first.shape[0]] = first
    assert np.array_equal(x[0], cv2.resize(padded, (64, 64), interpolation=cv2.INTER_AREA))
    with pytest.raises(ValueError, match="cannot co-train"):
        co_training_arrays("usgra", (64, 64), pp.Preprocess(), data_root)


def test_train_help(capsys):
    from nervseg.train import parse_args

    with pytest.raises(SystemExit) as e:
        parse_args(["--help"])
    assert e.value.code == 0 and "--arch" in capsys.readouterr().out


def test_co_training_batches_leave_batchnorm_running_statistics_alone():
    torch = pytest.importorskip("torch")
    from nervseg.train import batchnorm_stats_frozen

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    model.train()
    bn = model[1]
    before = bn.running_mean.clone(), bn.running_var.clone()
    with batchnorm_stats_frozen(model):
        out = model(torch.randn(2, 1, 8, 8) * 5 + 3)
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.running_var, before[1])
    assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-4  # still normalised with the batch's own statistics
    assert bn.momentum == 0.1
    model(torch.randn(2, 1, 8, 8) * 5 + 3)
    assert not torch.equal(bn.running_mean, before[0])  # outside the block, statistics update as usual
