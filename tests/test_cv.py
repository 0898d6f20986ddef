"""nervseg.cv and cv_summary: fold commands, scoring of fold models, aggregation, card patches.

Training itself is not run here: the fold-training step is replaced by a function that writes
a random-weight model (the train CLI's --split-file/--fold land on another branch); everything
after it (loading the fold model, scoring its held-out images, oof.csv, the summary) is real.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import make_random_card

from nervseg.cv import run as cv
from nervseg.cv import summary as cv_summary
from nervseg.data import folds as fl


def test_train_command_trains_one_fold_into_its_own_folder(tmp_path):
    run = cv.CvRun("usgra", "unet", "--size 256 256 --epochs 150 --init-from kaggle-bp-unet",
                   cv_root=tmp_path, splits_dir=tmp_path / "splits", python="py")
    cmd = run.train_command(3)
    d = tmp_path / "usgra" / "unet" / "fold3"
    assert cmd[:3] == ["py", "-m", "nervseg.train"]
    joined = shlex.join(cmd)
    assert f"--split-file {tmp_path / 'splits' / 'usgra-folds.json'} --fold 3" in joined
    assert f"--out {d} --runs {d / 'ckpt'}" in joined  # outside the project: as given
    inside = cv.CvRun("usgra", "unet").train_command(1)
    assert "--out runs/cv/usgra/unet/fold1" in shlex.join(inside)  # inside: relative, so cards stay portable
    assert "--split-file splits/usgra-folds.json" in shlex.join(inside)
    assert cmd[-6:] == ["--size", "256", "256", "--epochs", "150", "--init-from", "kaggle-bp-unet"][-6:]
    assert run.init_from() == "kaggle-bp-unet"
    (d / "ckpt" / "usgra-unet").mkdir(parents=True)
    (d / "ckpt" / "usgra-unet" / "last.pt").write_bytes(b"")
    assert run.train_command(3)[-1] == "--resume" and "--resume" not in run.train_command(2)
    assert cv.CvRun("usgra", "unet", "--epochs 3").init_from() is None


def test_stage_init_model_copies_card_and_weights(tmp_path):
    src = tmp_path / "models"
    src.mkdir()
    make_random_card(src, "unet", ["background", "nerve"], model_id="kaggle-bp-unet")
    run = cv.CvRun("usgra", "unet", "--init-from kaggle-bp-unet", cv_root=tmp_path / "cv", init_dir=src)
    cv.stage_init_model(run, 0)
    d = run.fold_dir(0)
    assert (d / "kaggle-bp-unet.json").is_file() and (d / "kaggle-bp-unet.safetensors").is_file()


def _synthetic_usgra(root, n=10):
    rng = np.random.default_rng(0)
    (root / "usgra-seg" / "images").mkdir(parents=True)
    (root / "usgra-seg" / "masks").mkdir(parents=True)
    for i in range(n):
        img = rng.integers(0, 256, (80, 96), dtype=np.uint8)
        m = np.zeros((80, 96), np.uint8)
        m[10:30, 10:40] = 1
        if i % 2:
            m[50:70, 50:80] = 2
        cv2.imwrite(str(root / "usgra-seg" / "images" / f"{i:04d}.png"), img)
        cv2.imwrite(str(root / "usgra-seg" / "masks" / f"{i:04d}.png"), m)
    return [f"{i:04d}" for i in range(n)]


def test_run_folds_scores_every_held_out_image_once(tmp_path):
    stems = _synthetic_usgra(tmp_path / "data")
    groups = {s: f"g{int(s) // 2}" for s in stems}  # pairs of "near-duplicates"
    ff = fl.FoldFile("usgra", 2, "test", [], groups, fl.balanced_folds(groups, 2))
    ff.save(tmp_path / "splits" / "usgra-folds.json")
    calls = []

    def fake_train(cmd, check, cwd):
        calls.append(cmd)
        out = cmd[cmd.index("--out") + 1]
        make_random_card(Path(out), "unet", model_id="usgra-unet")

    run = cv.CvRun("usgra", "unet", "--epochs 1", cv_root=tmp_path / "cv", splits_dir=tmp_path / "splits",
                   data=tmp_path / "data", samples_file=tmp_path / "none.json")
    oof = cv.run_folds(run, train=fake_train)
    rows = cv.read_rows(oof)
    assert len(calls) == 2 and [c[c.index("--fold") + 1] for c in calls] == ["0", "1"]
    assert calls[0][calls[0].index("--data") + 1] == str(tmp_path / "data")
    assert sorted({r["stem"] for r in rows}) == stems and len(rows) == 2 * len(stems)  # nerve + vessel
    for r in rows:
        assert r["stem"] in ff.test_stems(r["fold"])  # scored only by the model that did not train on it
        assert 0 <= r["dice"] <= 1 and 0 <= r["presence"] <= 1
        assert r["truth_empty"] == int(r["class"] == "vessel" and int(r["stem"]) % 2 == 0)
    cv.run_folds(run, train=fake_train)  # scored folds are kept, not retrained
    assert len(calls) == 2
    (run.fold_dir(1) / "usgra-unet.json").unlink()  # only the scores came back from another machine
    cv.run_folds(run, train=fake_train)
    assert len(calls) == 2
    run.rescore = True
    cv.run_folds(run, train=fake_train)  # rescoring needs the model: fold 1 trains again, fold 0 is reused
    assert [c[c.index("--fold") + 1] for c in calls] == ["0", "1", "1"]
    oof.write_text("")  # folds scored in parallel may leave a stale oof.csv: the summary rebuilds it
    assert len(cv_summary.load_oof(tmp_path / "cv", "usgra")["unet"]) == len(rows)
    tracked = tmp_path / "tracked" / "usgra" / "unet"  # the queue's layout: splits/cv/<task>/<arch>/fold<K>.csv
    tracked.mkdir(parents=True)
    for k in (0, 1):
        (tracked / f"fold{k}.csv").write_bytes((run.fold_dir(k) / "scores.csv").read_bytes())
    assert sorted((r["stem"], r["class"]) for r in cv_summary.load_oof(tmp_path / "tracked", "usgra")["unet"]) == \
        sorted((r["stem"], r["class"]) for r in rows)


def _rows(arch, shift, rng, n_groups=20, per=4, k=5):
    rows = []
    for g in range(n_groups):
        base = rng.uniform(0.4, 0.8)
        for i in range(per):
            stem = f"{g:02d}{i}"
            for cls in ("nerve", "vessel"):
                empty = cls == "vessel" and i == 0
                d = 1.0 if empty and shift > 0 else float(np.clip(base + shift + rng.normal(0, 0.05), 0, 1))
                rows.append({"task": "usgra", "arch": arch, "fold": g % k, "set": "main", "stem": stem,
                             "group": f"g{g}", "class": cls, "truth_empty": int(empty), "pred_empty": int(empty),
                             "dice": 0.0 if empty and shift <= 0 else d, "precision": d, "sensitivity": d,
                             "presence": 0.1 + 0.1 * rng.uniform() if empty else 0.6 + 0.4 * rng.uniform(),
                             "tp": 1, "fp": 0, "fn": 0})
    return rows


def test_summary_blocks_from_synthetic_rows():
    rng = np.random.default_rng(0)
    by_arch = {"unet": _rows("unet", 0.15, np.random.default_rng(1)), "densenet": _rows("densenet", 0.0, rng),
               "sk-unet": _rows("sk-unet", 0.0, np.random.default_rng(2))}
    summary, paired = cv_summary.summarise("usgra", by_arch, 5, "rule", "splits/usgra-folds.json")
    cvb = summary["models"]["usgra-unet"]["cross_validation"]
    nerve = cvb["per_class"]["nerve"]
    dice = [r["dice"] for r in by_arch["unet"] if r["class"] == "nerve"]
    assert cvb["complete"] and cvb["folds_scored"] == [0, 1, 2, 3, 4]
    assert nerve["n_images"] == 80 and nerve["dice_mean"] == pytest.approx(np.mean(dice))
    assert nerve["dice_ci95"][0] < nerve["dice_mean"] < nerve["dice_ci95"][1]
    fold0 = [r["dice"] for r in by_arch["unet"] if r["class"] == "nerve" and r["fold"] == 0]
    assert nerve["per_fold"][0] == pytest.approx(np.mean(fold0)) and len(nerve["sensitivity_per_fold"]) == 5
    # presence: nerve always present (not calibrated, said why); vessel absent in 20 images, separable
    nerve_presence = summary["models"]["usgra-unet"]["presence"]["nerve"]
    assert "x" not in nerve_presence and nerve_presence["not_calibrated"] == (
        "every one of the 80 images has it: no absent case to calibrate against")
    assert summary["models"]["usgra-unet"]["presence_gating"]["nerve"]["not_calibrated"] == nerve_presence["not_calibrated"]
    vessel = summary["models"]["usgra-densenet"]["presence"]["vessel"]
    assert vessel["n_absent"] == 20 and vessel["sensitivity"] == 1 and vessel["specificity"] == 1
    gating = summary["models"]["usgra-densenet"]["presence_gating"]["vessel"]
    assert gating["dice_gated_cross_fitted"] > gating["dice_ungated"]  # empties now score 1
    verdicts = {(p["class"], p["a"], p["b"]): p["verdict"] for p in paired["pairs"]}
    assert verdicts[("nerve", "densenet", "unet")] == "unet higher"
    assert verdicts[("nerve", "densenet", "sk-unet")] == "no clear difference"
    assert len(paired["pairs"]) == 6  # 3 pairs x 2 classes


def test_kaggle_rule_and_gating_on_fullres_rows():
    rows = [{"set": "fullres", "class": "nerve", "group": s, "dice": d, "truth_empty": e, "presence": p,
             "stem": f"{s}_{i}", "fold": int(s)}
            for i, (s, d, e, p) in enumerate([("1", 0.0, 1, 0.3), ("1", 0.8, 0, 0.9), ("2", 0.0, 1, 0.2),
                                              ("2", 1.0, 1, 0.1), ("2", 0.6, 0, 0.95), ("1", 0.0, 1, 0.35)])]
    rule = cv_summary.kaggle_rule(rows)
    assert rule["n_images"] == 6 and rule["n_empty"] == 4
    assert rule["dice_mean"] == pytest.approx(2.4 / 6) and rule["per_subject"]["2"] == pytest.approx(1.6 / 3)
    assert rule["dice_if_all_empty"] == pytest.approx(4 / 6)
    gated = cv_summary.gated_dice(rows, [False, True, False, False, True, False])
    assert gated.tolist() == [1.0, 0.8, 1.0, 1.0, 0.6, 1.0]


def test_write_then_apply_patches_only_complete_summaries(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for arch in ("unet", "densenet"):
        cv.write_rows(_rows(arch, 0.0, rng), tmp_path / "cv" / "usgra" / arch / "oof.csv")
    ff = fl.FoldFile("usgra", 5, "rule", [], {f"{g:02d}{i}": f"g{g}" for g in range(20) for i in range(4)},
                     [[f"{g:02d}{i}" for g in range(20) if g % 5 == f for i in range(4)] for f in range(5)])
    ff.save(tmp_path / "splits" / "usgra-folds.json")
    monkeypatch.setattr(fl, "SPLITS_DIR", tmp_path / "splits")
    s_path, p_path = cv_summary.write("usgra", tmp_path / "cv", tmp_path / "out")
    assert json.loads(p_path.read_text())["pairs"][0]["a"] == "densenet"
    assert cv_summary.load_paired("usgra", tmp_path / "out")["pairs"][0]["b"] == "unet"
    assert cv_summary.load_paired("kaggle-bp", tmp_path / "out") is None
    models = tmp_path / "models"
    models.mkdir()
    for arch in ("unet", "densenet"):
        (models / f"usgra-{arch}.json").write_text(json.dumps({"id": f"usgra-{arch}", "keep": 1}))
    with pytest.raises(cv_summary.SummaryError, match="no recipe"):  # not trained with the common recipe
        cv_summary.apply("usgra", tmp_path / "out", models)
    recipe = {"epochs": 120, "loss": "image-dice-ce", "out": "models", "fold": None}
    for arch in ("unet", "densenet"):
        (models / f"usgra-{arch}.json").write_text(json.dumps({"id": f"usgra-{arch}", "architecture": arch, "keep": 1,
                                                               "recipe": recipe}))
    fold_card = tmp_path / "cv" / "usgra" / "unet" / "fold0" / "usgra-unet.json"
    fold_card.parent.mkdir(parents=True)
    fold_card.write_text(json.dumps({"recipe": {**recipe, "epochs": 60, "out": "x", "fold": 0}}))
    with pytest.raises(cv_summary.SummaryError, match=r"differ in \['epochs'\]"):
        cv_summary.apply("usgra", tmp_path / "out", models, tmp_path / "cv")
    assert "cross_validation" not in json.loads((models / "usgra-densenet.json").read_text())  # none written
    fold_card.write_text(json.dumps({"recipe": {**recipe, "out": "x", "fold": 0}}))  # run fields only
    cv_summary.apply("usgra", tmp_path / "out", models, tmp_path / "cv")
    card = json.loads((models / "usgra-unet.json").read_text())
    assert card["keep"] == 1 and card["cross_validation"]["k"] == 5 and "vessel" in card["presence"]
    cv_summary.write("usgra", tmp_path / "cv", tmp_path / "demo", heldout=True)
    with pytest.raises(cv_summary.SummaryError, match="not a complete"):
        cv_summary.apply("usgra", tmp_path / "demo", models)


def test_missing_rows_are_a_clear_error(tmp_path):
    with pytest.raises(cv_summary.SummaryError, match="nervseg.cv run"):
        cv_summary.load_oof(tmp_path, "usgra")


def test_cv_all_uses_one_recipe_per_task():
    """scripts/cv_all.sh (dry run): per task, the fold and final trainings of the three architectures
    get identical flags except the architecture and its --init-from id, with a budget in epochs."""
    import os
    import subprocess
    import sys

    from nervseg.models.cards import ARCHITECTURES

    script = Path(__file__).resolve().parent.parent / "scripts" / "cv_all.sh"
    res = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True,
                         env={**os.environ, "DRY": "1", "STEP": "all", "PY": sys.executable})
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("+ ")]
    for task in ("kaggle-bp", "usgra"):
        for kind in ("nervseg.cv run", "nervseg.train"):
            sel = [ln for ln in lines if kind in ln and f"--task {task} " in ln]
            archs = [ln.split(" --arch ")[1].split(" ")[0] for ln in sel]
            assert sorted(set(archs)) == sorted(ARCHITECTURES)
            assert len(sel) == (15 if kind == "nervseg.cv run" else 3)  # the CV runs one process per fold
            flags = {re.sub(r"--folds \d ", "", ln.split(" --arch ")[1].split(" ", 1)[1])
                     .replace(f"kaggle-bp-{a}", "kaggle-bp-ARCH") for ln, a in zip(sel, archs)}
            assert len(flags) == 1, flags
            recipe = flags.pop()
            assert "--epochs" in recipe and "--max-minutes" not in recipe
        if task == "usgra":
            assert "--init-from kaggle-bp-ARCH" in recipe and "--size 256 256" in recipe
    order = [ln for ln in lines if "nervseg.train" in ln]
    assert "kaggle-bp" in order[0] and "usgra" in order[-1]  # usgra starts from the final kaggle-bp models


def test_kaggle_summary_gates_on_fullres_and_reports_the_cost_on_the_main_set():
    rng = np.random.default_rng(3)
    rows = []
    for subj in range(1, 11):
        for i in range(6):
            d = float(rng.uniform(0.5, 0.9))
            rows.append({"set": "main", "stem": f"{subj}_{i}", "group": str(subj), "class": "nerve", "fold": subj % 5,
                         "truth_empty": 0, "dice": d, "precision": d, "sensitivity": d,
                         "presence": float(rng.uniform(0.7, 1.0))})
    for subj in (1, 2):
        for i in range(12):
            empty = i % 3 != 0
            rows.append({"set": "fullres", "stem": f"{subj}_{100 + i}", "group": str(subj), "class": "nerve",
                         "fold": subj % 5, "truth_empty": int(empty), "dice": 0.0 if empty else 0.7,
                         "precision": 0.0, "sensitivity": 1.0,
                         "presence": float(rng.uniform(0.2, 0.5) if empty else rng.uniform(0.8, 1.0))})
    summary, _ = cv_summary.summarise("kaggle-bp", {"unet": rows}, 5, "by subject", "splits/kaggle-bp-folds.json")
    e = summary["models"]["kaggle-bp-unet"]
    rule = e["fullres_kaggle_rule"]
    assert rule["n_images"] == 24 and rule["n_empty"] == 16 and rule["dice_mean"] == pytest.approx(0.7 * 8 / 24)
    assert rule["dice_gated_cross_fitted"] == pytest.approx((16 + 0.7 * 8) / 24)  # separable: every empty emptied
    assert e["presence"]["nerve"]["n_absent"] == 16
    assert e["presence_gating"]["nerve"]["cross_fitted_by"] == "leave one group out"
    main = e["presence_gating"]["nerve"]["main_set"]
    assert e["presence"]["nerve"]["on_scans_with_it"] == {"n_images": 60, "found_share": main["sensitivity"]}
    assert main["n_images"] == 60 and main["sensitivity"] == 1.0 and main["dice_gated"] == pytest.approx(main["dice_ungated"])
    assert e["cross_validation"]["per_class"]["nerve"]["n_images"] == 60  # full-resolution frames not in the CV mean


def test_eval_pairs_give_each_fullres_frame_to_its_subjects_fold(data_root):
    ff = fl.read(fl.folds_path("kaggle-bp"))
    seen = []
    for k in range(ff.k):
        items = cv.eval_pairs(ff, "kaggle-bp", k, data_root)
        main = [p.stem for s, p, _ in items if s == "main"]
        assert sorted(main) == sorted(ff.test_stems(k))
        for s, p, g in items:
            if s == "fullres":
                assert ff.fold_of_group(g) == k
                seen.append(p.stem)
    assert len(seen) == len(set(seen)) == 69


def test_near_duplicate_split_separates_images_whose_twin_trained():
    groups = {"a": "g1", "a2": "g1", "b": "g2", "b2": "g2", "c": "g3"}
    rows = [{"set": "main", "class": "nerve", "stem": s, "dice": d} for s, d in (("a", 0.9), ("b", 0.5), ("c", 0.3))]
    rows.append({"set": "fullres", "class": "nerve", "stem": "c", "dice": 0.0})  # not a main-set image
    out = cv_summary.near_duplicate_split(rows, train_stems={"a2"}, groups=groups)["nerve"]  # only a's twin trained
    assert out["n_with_twin_in_training"] == 1 and out["dice_with_twin"] == pytest.approx(0.9)
    assert out["n_without"] == 2 and out["dice_without"] == pytest.approx(0.4)


def test_promote_ships_complete_cv_final_models_or_changes_nothing(tmp_path, monkeypatch):
    """nervseg.cv.promote: summary files, card blocks, final models over the shipped ones, the replaced
    models' demonstration figures and int8 graphs gone; an incomplete CV or a missing final model changes nothing."""
    from nervseg.cv.promote import promote
    from nervseg.inference.export import export_card

    rng = np.random.default_rng(0)
    cv_root, nxt, shipped, splits, heldout = (tmp_path / d for d in ("cv", "next", "models", "splits", "heldout"))
    ff = fl.FoldFile("usgra", 5, "rule", [], {f"{g:02d}{i}": f"g{g}" for g in range(20) for i in range(4)},
                     [[f"{g:02d}{i}" for g in range(20) if g % 5 == f for i in range(4)] for f in range(5)])
    ff.save(splits / "usgra-folds.json")
    monkeypatch.setattr(fl, "SPLITS_DIR", splits)
    recipe = {"epochs": 64, "loss": "image-dice-ce", "out": "models/next", "fold": None}
    nxt.mkdir()
    for arch in ("unet", "densenet"):
        rows = _rows(arch, 0.0, rng)
        for k in range(5):  # the queue's tracked layout: fold<K>.csv and the fold's card
            cv.write_rows([r for r in rows if r["fold"] == k], cv_root / "usgra" / arch / f"fold{k}.csv")
            (cv_root / "usgra" / arch / f"fold{k}.json").write_text(json.dumps({"recipe": {**recipe, "fold": k}}))
        card = make_random_card(nxt, arch, model_id=f"usgra-{arch}")
        export_card(card)
        d = json.loads((nxt / f"usgra-{arch}.json").read_text())
        (nxt / f"usgra-{arch}.json").write_text(json.dumps({**d, "recipe": recipe}))
        shipped.mkdir(exist_ok=True)
        (shipped / f"usgra-{arch}.json").write_text(json.dumps({"id": f"usgra-{arch}", "old": 1}))
        (shipped / f"usgra-{arch}.int8.onnx").write_bytes(b"old graph")
    heldout.mkdir()
    (heldout / "usgra-paired.json").write_text("{}")
    (heldout / "kaggle-bp-paired.json").write_text("{}")
    kwargs = dict(cv_root=cv_root, next_dir=nxt, models_dir=shipped, splits_dir=splits, heldout_dir=heldout,
                  quantize=False)

    def unchanged():
        assert json.loads((shipped / "usgra-unet.json").read_text()) == {"id": "usgra-unet", "old": 1}
        assert not json.loads((nxt / "usgra-densenet.json").read_text())["cross_validation"]
        assert not (splits / "usgra-paired.json").exists() and not (splits / "usgra-cv-summary.json").exists()
        assert (heldout / "usgra-paired.json").exists() and (shipped / "usgra-unet.int8.onnx").read_bytes() == b"old graph"

    monkeypatch.setattr("nervseg.models.cards.ARCHITECTURES", {"unet": 0, "densenet": 0})  # this test's two
    (cv_root / "usgra" / "densenet" / "fold4.csv").rename(tmp_path / "fold4.csv")  # one fold still to run
    with pytest.raises(cv_summary.SummaryError, match="not a complete"):
        promote("usgra", **kwargs)
    unchanged()
    (tmp_path / "fold4.csv").rename(cv_root / "usgra" / "densenet" / "fold4.csv")
    (cv_root / "usgra" / "unet" / "fold3.json").write_text(json.dumps({"recipe": {**recipe, "epochs": 50}}))
    with pytest.raises(cv_summary.SummaryError, match=r"differ in \['epochs'\]"):  # every tracked fold card is checked
        promote("usgra", **kwargs)
    unchanged()
    (cv_root / "usgra" / "unet" / "fold3.json").write_text(json.dumps({"recipe": {**recipe, "fold": 3}}))
    weights = nxt / json.loads((nxt / "usgra-unet.json").read_text())["weights_file"]
    weights.rename(tmp_path / "w")
    with pytest.raises(cv_summary.SummaryError, match="incomplete"):
        promote("usgra", **kwargs)
    unchanged()
    (tmp_path / "w").rename(weights)

    monkeypatch.setattr("nervseg.models.cards.ARCHITECTURES", {"unet": 0, "densenet": 0, "sk-unet": 0})
    with pytest.raises(cv_summary.SummaryError, match=r"no out-of-fold rows for \['usgra-sk-unet'\]"):
        promote("usgra", **kwargs)  # an architecture whose jobs never ran: nothing is promoted
    unchanged()
    monkeypatch.setattr("nervseg.models.cards.ARCHITECTURES", {"unet": 0, "densenet": 0})

    assert promote("usgra", **kwargs) == ["usgra-densenet", "usgra-unet"]
    for arch in ("unet", "densenet"):
        card = json.loads((shipped / f"usgra-{arch}.json").read_text())
        assert card["cross_validation"]["complete"] and card["recipe"] == recipe and "vessel" in card["presence"]
        assert (shipped / card["weights_file"]).is_file() and (shipped / f"usgra-{arch}.onnx").is_file()
        assert not (shipped / f"usgra-{arch}.int8.onnx").exists()  # made for the replaced weights
    assert (splits / "usgra-paired.json").is_file() and (splits / "usgra-cv-summary.json").is_file()
    assert not (heldout / "usgra-paired.json").exists() and (heldout / "kaggle-bp-paired.json").exists()


def test_a_final_model_trained_on_every_fold_never_trained_on_the_excluded_samples(tmp_path, monkeypatch):
    """provenance.trained_on for cards trained from a fold file: every group outside the card's fold,
    never the file's excluded stems (the bundled samples)."""
    from nervseg.models import provenance
    from nervseg.models.cards import ModelCard

    ff = fl.FoldFile("kaggle-bp", 2, "by subject", ["9_9"], {"1_1": "1", "1_2": "1", "3_1": "3", "9_9": "9"},
                     [["1_1", "1_2"], ["3_1"]])
    ff.save(tmp_path / "kaggle-bp-folds.json")
    monkeypatch.setattr(fl, "SPLITS_DIR", tmp_path)
    provenance._fold_groups.cache_clear()

    def card(fold):
        return ModelCard(id="m", name="m", architecture="unet", classes=["background", "nerve"], task="kaggle-bp",
                         data={"split": {"split_file": "kaggle-bp-folds.json", "fold": fold, "val_stems": []}})

    final, fold1 = card(None), card(1)
    assert [provenance.trained_on(final, n) for n in ("1_1.png", "3_1.png", "1_77.tif", "9_9.png", "5_1.png")] == \
        [True, True, True, False, False]  # a full-resolution frame goes with its subject; unknown subjects never
    assert [provenance.trained_on(fold1, n) for n in ("1_1.png", "1_77.tif", "3_1.png")] == [True, True, False]
    provenance._fold_groups.cache_clear()
