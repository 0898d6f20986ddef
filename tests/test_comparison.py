"""The comparison the app states: CV files first, the held-out demonstration otherwise, never a bare ranking."""

import json

from nervseg.evaluate import comparison


def _write(folder, task, pairs, source):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{task}-paired.json").write_text(json.dumps({"source": source, "pairs": pairs}))
    summary = {"models": {f"{task}-unet": {"cross_validation": {"per_class": {
        "nerve": {"dice_mean": 0.7, "dice_ci95": [0.65, 0.75]}}}}}}
    (folder / f"{task}-cv-summary.json").write_text(json.dumps(summary))


def _pair(a, b, diff, lo, hi, verdict):
    return {"class": "nerve", "a": a, "b": b, "diff_mean": diff, "diff_ci95": [lo, hi], "verdict": verdict}


def test_no_clear_difference_is_said_when_every_ci_contains_zero(tmp_path):
    _write(tmp_path / "heldout", "t", [_pair("unet", "densenet", 0.03, -0.01, 0.07, "no clear difference")], "demo")
    c = comparison.load("t", tmp_path)
    assert c.source == "demo" and c.dice_ci("t-unet", "nerve") == (0.7, 0.65, 0.75)
    assert c.verdicts() == ["nerve: no clear difference between the architectures (every pairwise 95% CI of the "
                            "Dice difference includes 0)."]
    assert c.dice_ci("t-unet", "vessel") is None


def test_cv_files_win_and_a_clear_difference_names_the_better_one(tmp_path):
    _write(tmp_path / "heldout", "t", [], "demo")
    _write(tmp_path, "t", [_pair("unet", "sk-unet", -0.06, -0.09, -0.02, "sk-unet better")], "5-fold CV")
    c = comparison.load("t", tmp_path)
    assert c.source == "5-fold CV"
    (line,) = c.verdicts()
    assert "SK-U-Net over U-Net ahead by 0.060 (95% CI 0.020 to 0.090)" in line


def test_absent_or_damaged_files_give_none(tmp_path):
    assert comparison.load("t", tmp_path) is None
    (tmp_path / "t-paired.json").write_text("{")
    (tmp_path / "t-cv-summary.json").write_text("{}")
    assert comparison.load("t", tmp_path) is None


def test_shipped_tasks_have_a_stated_comparison():
    for task in ("usgra", "kaggle-bp"):
        c = comparison.load(task)
        assert c is not None and c.source and c.verdicts(), task


def test_plain_verdicts_and_source_carry_no_statistics_words(tmp_path):
    pairs = [_pair("unet", "densenet", 0.03, -0.01, 0.07, "no clear difference"),
             _pair("unet", "sk-unet", -0.06, -0.09, -0.02, "sk-unet better")]
    _write(tmp_path / "heldout", "t", pairs, "DEMONSTRATION: one held-out split that also chose the epoch, not CV")
    c = comparison.load("t", tmp_path)
    (line,) = c.plain_verdicts()
    assert line == "Nerves: SK-U-Net finds them better than U-Net."
    assert "kept out of training" in c.plain_source and "DEMONSTRATION" not in c.plain_source
    _write(tmp_path / "heldout", "t", pairs[:1], "5-fold CV")
    c = comparison.load("t", tmp_path)
    assert c.plain_verdicts() == ["Nerves: no clear difference between U-Net and DenseNet."]
    assert c.plain_source == "measured by 5-fold CV"  # a summary without k: the source as written
    for text in c.plain_verdicts() + [c.plain_source]:
        assert "CI" not in text and "pairwise" not in text


def test_cv_figures_say_how_each_scan_was_held_out(tmp_path):
    _write(tmp_path, "t", [], "out-of-fold predictions of grouped cross-validation")
    summary = json.loads((tmp_path / "t-cv-summary.json").read_text())
    summary["models"]["t-unet"]["cross_validation"].update(
        k=5, grouping="by subject (the number before the underscore); 5 folds balanced by image count")
    (tmp_path / "t-cv-summary.json").write_text(json.dumps(summary))
    c = comparison.load("t", tmp_path)
    assert not c.demonstration
    assert c.plain_source == "measured on every scan by a model trained without it and without the patient's other scans"
    assert c.how_measured().startswith("5-fold cross-validation (by subject): every image scored by a model trained, "
                                       "the same way, on the other 4 parts")


def test_the_demonstration_says_how_many_images_have_a_near_duplicate_in_training():
    c = comparison.load("usgra", comparison.SPLITS_DIR)
    if not c.demonstration:  # usgra's cross-validation has been promoted: nothing to warn about
        assert "cross-validation" in c.how_measured()
        return
    assert "11 of those 41 images have a near-duplicate" in c.how_measured()
