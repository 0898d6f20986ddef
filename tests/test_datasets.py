"""nervseg.data.datasets and nervseg.data.splits: the task specs, pairing rules, seeded and fold-file splits.

Synthetic data (tiny_data_root) for the logic; the real data only to check that the spec's
pairing finds what the generic folder pairing finds.
"""

from __future__ import annotations

import json

import pytest

from nervseg.data.datasets import TASKS, PairSet, load_specs, spec
from nervseg.data.splits import SplitError, make_split, read_folds, split_from_folds, split_task


def test_every_task_names_its_data_classes_and_sizes():
    assert set(TASKS) == {"usgra", "kaggle-bp"}
    assert TASKS["usgra"].classes == ("background", "nerve", "vessel")
    assert TASKS["kaggle-bp"].classes == ("background", "nerve")
    for ds in TASKS.values():
        assert ds.display and ds.data_name and ds.licence and "main" in ds.sets
        assert all(v % 16 == 0 for v in ds.input_size) and len(ds.frame_size) == 2


def test_group_rules():
    assert spec("kaggle-bp").group_of("12_30") == "12"
    assert spec("usgra").group_of("0007") == "0007"
    with pytest.raises(ValueError, match="unknown task 'nope'; known"):
        spec("nope")


def test_adding_a_dataset_is_one_entry(tmp_path, tiny_data_root):
    entry = {"display": "d", "data_name": "n", "licence": "l", "classes": ["background", "nerve"],
             "input_size": [64, 64], "frame_size": [40, 56], "group": "before_underscore", "grouping": "by subject",
             "sets": {"main": {"folder": "kaggle-bp/images-256", "mask_suffix": "_mask"}}}
    path = tmp_path / "datasets.json"
    path.write_text(json.dumps({"_about": "comment", "new": entry}))
    (ds,) = load_specs(path).values()
    pairs = ds.pairs("main", tiny_data_root)
    assert ds.key == "new" and len(pairs) == 15
    assert all(p.mask.name == f"{p.stem}_mask.png" for p in pairs)
    path.write_text(json.dumps({"bad": {**entry, "group": "by-magic"}}))
    with pytest.raises(ValueError, match="unknown group rule 'by-magic'"):
        load_specs(path)


def test_pair_set_rules(tmp_path):
    (tmp_path / "images").mkdir(), (tmp_path / "masks").mkdir()
    for name in ("a.png", "b.png", "c.jpg", "notes.txt"):
        (tmp_path / "images" / name).write_bytes(b"x")
    (tmp_path / "masks" / "a.png").write_bytes(b"x")
    (tmp_path / "masks" / "c.tif").write_bytes(b"x")
    (tmp_path / "masks" / "b_mask.png").write_bytes(b"x")  # the wrong rule for this set
    pairs = PairSet(".").pairs(tmp_path)
    assert [(p.image.name, p.mask.name) for p in pairs] == [("a.png", "a.png"), ("c.jpg", "c.tif")]
    (tmp_path / "flat").mkdir()
    for name in ("b.png", "b_mask.png", "d.tif"):
        (tmp_path / "flat" / name).write_bytes(b"x")
    flat = PairSet("flat", ".", ".", "_mask").pairs(tmp_path)
    assert [(p.image.name, p.mask.name) for p in flat] == [("b.png", "b_mask.png")]
    assert PairSet("missing").pairs(tmp_path) == []


def test_seeded_split_is_grouped_with_fixed_subjects(tiny_data_root):
    split = split_task("kaggle-bp", tiny_data_root, seed=0)
    ds = spec("kaggle-bp")
    train_groups = {ds.group_of(p.stem) for p in split.train}
    val_groups = {ds.group_of(p.stem) for p in split.val}
    assert not train_groups & val_groups and "2" in val_groups and "1" in train_groups
    assert split.train_groups == train_groups and split.description["val_subjects"] == sorted(val_groups)
    # extra: empty full-resolution frames of training subjects; held out: every frame of validation subjects
    assert {p.stem for p in split.extra_train} == {"1_2", "1_4"}
    assert {p.stem for p in split.heldout_fullres} == {"2_1", "2_2", "2_3", "2_4"}
    assert split_task("kaggle-bp", tiny_data_root, seed=0).val == split.val  # seeded: the same every time


def test_seeded_split_by_image(tiny_data_root):
    split = split_task("usgra", tiny_data_root, seed=3)
    assert len(split.val) == round(12 * 0.2) and len(split.train) == 12 - len(split.val)
    assert split.description["val_stems"] == sorted(p.stem for p in split.val)
    assert split.description["method"].startswith("random by image, seed 3, 20% validation (no subject")
    assert not split.extra_train and not split.heldout_fullres


def test_fold_split_trains_outside_the_fold_and_keeps_excluded_out(tiny_data_root, write_folds):
    stems = [f"{i:04d}" for i in range(12)]
    path = write_folds("usgra", [stems[1:6], stems[6:]], excluded=["0000"])
    split = split_from_folds("usgra", path, 0, tiny_data_root)
    assert [p.stem for p in split.val] == stems[1:6] and [p.stem for p in split.train] == stems[6:]
    final = make_split("usgra", tiny_data_root, split_file=path, fold=None)
    assert [p.stem for p in final.train] == stems[1:] and final.val == []
    assert final.description["fold"] is None and final.description["excluded"] == 1


def test_fold_split_groups_and_extra_frames(tiny_data_root, write_folds):
    folds = [[f"{s}_{f}" for s in subjects for f in (1, 2, 3)] for subjects in ((1, 3), (2, 4, 5))]
    path = write_folds("kaggle-bp", folds, excluded=["1_4"])
    split = split_from_folds("kaggle-bp", path, 1, tiny_data_root)
    assert split.train_groups == {"1", "3"}
    assert {p.stem for p in split.extra_train} == {"1_2"}  # 1_4 is excluded
    assert {p.stem for p in split.heldout_fullres} == {"2_1", "2_2", "2_3", "2_4"}


def test_fold_files_that_cannot_be_used(tiny_data_root, write_folds, tmp_path):
    stems = [f"{i:04d}" for i in range(12)]
    with pytest.raises(SplitError, match="is for task 'usgra', not 'kaggle-bp'"):
        split_from_folds("kaggle-bp", write_folds("usgra", [stems]), 0, tiny_data_root)
    with pytest.raises(SplitError, match="fold 2 does not exist"):
        split_from_folds("usgra", write_folds("usgra", [stems[:6], stems[6:]]), 2, tiny_data_root)
    with pytest.raises(SplitError, match="1 images in no fold"):
        split_from_folds("usgra", write_folds("usgra", [stems[1:]]), 0, tiny_data_root)
    with pytest.raises(SplitError, match="more than one fold"):
        read_folds(write_folds("usgra", [stems[:7], stems[6:]]))
    with pytest.raises(SplitError, match="excluded stems inside folds"):
        read_folds(write_folds("usgra", [stems], excluded=["0001"]))
    groups = {s: "same" for s in stems}
    with pytest.raises(SplitError, match="straddles"):
        split_from_folds("usgra", write_folds("usgra", [stems[:6], stems[6:]], groups=groups), 0, tiny_data_root)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(SplitError, match="cannot be read"):
        read_folds(tmp_path / "broken.json")
    with pytest.raises(SplitError, match="needs a fold file"):
        make_split("usgra", tiny_data_root, fold=0)


def test_spec_pairing_matches_folder_pairing_on_the_real_data(data_root):
    from nervseg.data.pairs import find_pairs

    for ds in TASKS.values():
        for name, pair_set in ds.sets.items():
            pairs = pair_set.pairs(data_root)
            assert pairs, f"{ds.key}/{name}: no pairs under {data_root / pair_set.folder}"
            assert pairs == find_pairs(data_root / pair_set.folder)
