"""nervseg.train: tiny real training runs on synthetic scans (each checks one thing), and its helpers."""

from __future__ import annotations

import numpy as np
import pytest

from nervseg.inference.segmenter import load
from nervseg.models.cards import sha256_file


def _train(tiny_data_root, tmp_path, *flags: str):
    """One tiny CPU run on the synthetic data root (32x32 input); returns (card, models dir, runs dir)."""
    from nervseg.train.run import main

    out, runs = tmp_path / "models", tmp_path / "runs"
    argv = ["--size", "32", "32", "--batch-size", "4", "--augment", "none", "--threads", "1",
            *flags, "--data", str(tiny_data_root), "--out", str(out), "--runs", str(runs)]
    main(argv)
    value = dict(zip(flags[::2], flags[1::2]))
    model_id = value.get("--id", f"{value['--task']}-{value['--arch']}")
    return load(model_id, models_dir=out, device="cpu").card, out, runs


def test_short_run_writes_a_card_that_loads_and_predicts(tiny_data_root, tmp_path):
    card, out, runs = _train(tiny_data_root, tmp_path, "--arch", "unet", "--task", "usgra", "--epochs", "3")
    losses = card.curves["train_loss"]
    assert card.curves["epoch"] == [1, 2, 3] and len(card.curves["val_dice_vessel"]) == 3
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert card.training["selected_on"].endswith("nerve")
    assert card.classes == ["background", "nerve", "vessel"] and card.input_size == [32, 32]
    assert card.weights_sha256 == sha256_file(out / card.weights_file)
    assert card.weights_bytes == (out / card.weights_file).stat().st_size
    assert card.data["split"]["val_images"] == 2 and "dice_mean" in card.validation["per_class"]["nerve"]
    assert card.command.startswith("python -m nervseg.train --size 32 32")
    assert (runs / "usgra-unet" / "last.pt").is_file()
    import json  # the checkpoint's torch-free record: what the training queue counts when a job resumes
    saved = json.loads((runs / "usgra-unet" / "last.json").read_text())
    assert saved["epochs_done"] == 3 and round(saved["cpu_seconds"] / 60, 1) == card.training["cpu_minutes"]
    assert saved["elapsed_seconds"] > 0
    seg = load("usgra-unet", models_dir=out, device="cpu")  # through the one inference path
    img = np.random.default_rng(0).integers(0, 256, (90, 120), dtype=np.uint8)
    assert seg.predict(img).probs.shape == (3, 90, 120)


def test_the_card_holds_the_whole_recipe(tiny_data_root, tmp_path):
    from dataclasses import asdict

    from nervseg.train.config import parse_args

    card, _, _ = _train(tiny_data_root, tmp_path, "--arch", "unet", "--task", "kaggle-bp", "--epochs", "1",
                        "--limit", "4")
    from nervseg.train.card import RUN_ONLY

    recipe = dict(card.recipe)
    arch = recipe.pop("architecture")
    assert arch["smp_class"] == card.smp_class and arch["smp_kwargs"] == card.smp_kwargs
    rerun = asdict(parse_args(card.command.split()[3:]))
    assert recipe == {**{k: v for k, v in rerun.items() if k not in RUN_ONLY}, "size": list(rerun["size"])}


def test_recipes_of_two_architectures_differ_only_in_architecture():
    from nervseg.train.card import recipe
    from nervseg.train.config import parse_args

    common = ["--task", "usgra", "--epochs", "3", "--split-file", "/x/splits/usgra-folds.json"]
    a = recipe(parse_args(["--arch", "unet", "--init-from", "kaggle-bp-unet", "--out", "a", *common]))
    b = recipe(parse_args(["--arch", "densenet", "--init-from", "kaggle-bp-densenet", "--out", "b", *common]))
    assert a.pop("architecture") != b.pop("architecture")
    assert a == b and a["init_from"] == "kaggle-bp-{arch}" and a["split_file"] == "splits/usgra-folds.json"


def test_second_stage_records_its_origin_and_ships_the_average(tiny_data_root, tmp_path, random_card_factory):
    import torch
    from safetensors.torch import load_file

    from nervseg.models.cards import ARCHITECTURES
    from nervseg.models.random_cards import random_card

    (tmp_path / "models").mkdir()
    first = random_card(tmp_path / "models", "unet", smp_kwargs=ARCHITECTURES["unet"].default_kwargs, model_id="stage1")
    card, out, runs = _train(tiny_data_root, tmp_path, "--arch", "unet", "--task", "usgra", "--epochs", "1",
                             "--ema", "0.5", "--init-from", "stage1", "--loss", "image-dice-ce",
                             "--select-on", "foreground", "--co-train", "kaggle-bp", "--id", "usgra-unet")
    assert card.training["initialisation"].endswith("tensors; all of them)")
    assert card.training["earlier_stages"] == [{"id": "stage1", "command": first.command, "wall_minutes": None}]
    assert card.training["weight_ema_decay"] == 0.5 and card.training["loss"].startswith("Dice per image")
    assert card.training["selected_on"].endswith("foreground")
    assert card.training["co_training"].startswith("12 kaggle-bp training-subject images")
    shipped = load_file(str(out / card.weights_file))
    state = torch.load(runs / "usgra-unet" / "last.pt", weights_only=True)
    name = next(k for k in shipped if k.endswith("weight") and shipped[k].ndim == 4)
    averaged, raw = state["ema"][f"module.{name}"], state["model"][name]
    assert torch.allclose(shipped[name].float(), averaged.half().float())
    assert not torch.allclose(averaged, raw)


def test_a_fold_run_ships_its_last_weights_never_the_best_on_the_fold(tiny_data_root, tmp_path, write_folds):
    """Fairness: the fold validates (reported in the curves) but never picks the shipped epoch."""
    import torch
    from safetensors.torch import load_file

    folds = [[f"{s}_{f}" for s in subjects for f in (1, 2, 3)] for subjects in ((1, 3), (2, 4, 5))]
    path = write_folds("kaggle-bp", folds)
    card, out, runs = _train(tiny_data_root, tmp_path, "--arch", "unet", "--task", "kaggle-bp", "--epochs", "3",
                             "--patience", "1", "--lr", "0.02", "--split-file", str(path), "--fold", "0")
    assert card.curves["epoch"] == [1, 2, 3], "patience must not stop a fixed-budget fold run"
    assert len(card.curves["val_dice_nerve"]) == 3 and card.training["best_epoch"] == 3
    assert "never used to select" in card.training["selected_on"]
    assert card.data["split"]["fold"] == 0 and card.data["split"]["val_stems"] == sorted(folds[0])
    assert not (runs / "kaggle-bp-unet" / "best.safetensors").exists()
    shipped = load_file(str(out / card.weights_file))
    last = torch.load(runs / "kaggle-bp-unet" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(shipped[k], v.half()) for k, v in last.items() if v.is_floating_point())
    assert card.postprocess["chosen_on"].endswith("(mean Dice over foreground classes, empty-on-empty = 1)")
    assert card.postprocess["chosen_on"].startswith("4 full-resolution frames of training subjects")


def test_val_every_thins_a_folds_curve_and_leaves_its_weights_unchanged(tiny_data_root, tmp_path, write_folds):
    """--val-every only skips the curve's points (the last epoch always has one): the shipped weights are
    the ones an every-epoch run ships, so folds run either way are one cross-validation."""
    from safetensors.torch import load_file

    folds = [[f"{s}_{f}" for s in subjects for f in (1, 2, 3)] for subjects in ((1, 3), (2, 4, 5))]
    path = write_folds("kaggle-bp", folds)
    common = ("--arch", "unet", "--task", "kaggle-bp", "--epochs", "3", "--split-file", str(path), "--fold", "0")
    every, out1, _ = _train(tiny_data_root, tmp_path / "every", *common)
    thin, out2, _ = _train(tiny_data_root, tmp_path / "thin", *common, "--val-every", "2")
    assert thin.curves["epoch"] == [1, 2, 3]
    assert thin.curves["val_dice_nerve"][0] is None and None not in thin.curves["val_dice_nerve"][1:]
    assert thin.curves["val_dice_nerve"][1:] == every.curves["val_dice_nerve"][1:]
    a, b = load_file(str(out1 / every.weights_file)), load_file(str(out2 / thin.weights_file))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert "val_every" not in thin.recipe and "--val-every 2" in thin.command  # how it ran, not what it is


def test_a_final_run_trains_on_every_fold_without_validation(tiny_data_root, tmp_path, write_folds):
    stems = [f"{i:04d}" for i in range(12)]
    path = write_folds("usgra", [stems[1:6], stems[6:]], excluded=["0000"])
    card, _, _ = _train(tiny_data_root, tmp_path, "--arch", "unet", "--task", "usgra", "--epochs", "1",
                        "--split-file", str(path))
    assert card.data["split"]["train_images"] == 11 and card.data["split"]["val_images"] == 0
    assert card.curves["val_dice_nerve"] == [] and card.validation["split"].startswith("none")


def test_help_lists_every_config_field(capsys):
    from dataclasses import fields

    from nervseg.train.config import TrainConfig, parse_args

    with pytest.raises(SystemExit) as e:
        parse_args(["--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0
    assert all(f"--{f.name.replace('_', '-')}" in text for f in fields(TrainConfig))


def test_shipped_commands_still_parse(shipped_cards):
    import shlex

    from nervseg.train.config import parse_args

    for card in shipped_cards:
        cfg = parse_args(shlex.split(card.command)[3:])
        assert (cfg.arch, cfg.task) == (card.architecture, card.task)
        for stage in card.training.get("earlier_stages", []):
            assert parse_args(shlex.split(stage["command"])[3:]).arch == card.architecture


def test_strong_augmentation_keeps_mask_classes_and_size():
    from nervseg.train.augment import augmentation

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
    from nervseg.data.arrays import pad_to_aspect

    img = np.full((186, 256), 200, np.uint8)
    mask = np.ones((186, 256), np.uint8)
    square_img, square_mask = pad_to_aspect(img, mask, 1.0)
    assert square_img.shape == square_mask.shape == (256, 256)
    assert np.array_equal(square_img[:186], img) and not square_img[186:].any() and not square_mask[186:].any()
    wide_img, _ = pad_to_aspect(img, mask, 2.0)
    assert wide_img.shape == (186, 372)


def test_co_training_arrays_are_nerve_only_and_from_training_subjects(data_root):
    from nervseg import preprocess as pp
    from nervseg.data.arrays import co_training_arrays
    from nervseg.data.splits import split_task

    split = split_task("kaggle-bp", data_root)
    if not split.train:
        pytest.skip(f"no kaggle-bp images under {data_root}")
    x, y, note = co_training_arrays("kaggle-bp", (64, 64), pp.Preprocess(), data_root, limit=6)
    assert x.shape == y.shape == (6, 64, 64) and x.dtype == np.uint8
    assert set(np.unique(y)) == {0, 1} and not y[:, 56:].any()  # the padded bottom is never nerve
    assert note.startswith("6 kaggle-bp training-subject images")
    # the first training pair, padded square by hand: validation subjects never appear
    import cv2

    from nervseg.io.readers import load_image

    first = load_image(split.train[0].image)
    padded = np.zeros((first.shape[1], first.shape[1]), np.uint8)
    padded[: first.shape[0]] = first
    assert np.array_equal(x[0], cv2.resize(padded, (64, 64), interpolation=cv2.INTER_AREA))
    with pytest.raises(ValueError, match="cannot co-train"):
        co_training_arrays("usgra", (64, 64), pp.Preprocess(), data_root)


def test_co_training_batches_leave_batchnorm_running_statistics_alone():
    torch = pytest.importorskip("torch")
    from nervseg.train.loop import batchnorm_stats_frozen

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
