"""nervseg.data.folds: grouped, balanced, deterministic folds; the fold file format and its checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nervseg.data import folds as fl


def _groups(sizes: dict[str, int]) -> dict[str, str]:
    return {f"{g}_{i}": g for g, n in sizes.items() for i in range(n)}


def test_balanced_folds_keep_groups_whole_and_balance_counts():
    sizes = {str(g): n for g, n in enumerate([30, 25, 20, 20, 18, 15, 12, 10, 9, 7, 5, 3, 2, 1, 1])}
    groups = _groups(sizes)
    folds = fl.balanced_folds(groups, 5, seed=0)
    assert sorted(s for f in folds for s in f) == sorted(groups)
    for f in folds:  # each group inside one fold
        for g in {groups[s] for s in f}:
            assert sum(groups[s] == g for s in f) == sizes[g]
    counts = [len(f) for f in folds]
    assert max(counts) - min(counts) <= max(sizes.values())
    assert max(counts) - min(counts) <= 3  # greedy largest-first is close to even here (178 / 5)
    assert fl.balanced_folds(groups, 5, seed=0) == folds  # deterministic


def test_apart_groups_land_in_different_folds():
    sizes = {"1": 50, "2": 40, **{str(g): 30 for g in range(3, 12)}}
    groups = _groups(sizes)
    for seed in range(5):
        folds = fl.balanced_folds(groups, 5, seed=seed, apart=("1", "2"))
        where = {g: i for i, f in enumerate(folds) for g in {groups[s] for s in f}}
        assert where["1"] != where["2"]


def test_similarity_groups_are_connected_components():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 256))
    a = base[0]
    vecs = np.stack([a, a + 0.1 * rng.normal(size=256),  # near-duplicates of a
                     a + 0.1 * rng.normal(size=256) + 0.35 * base[1],  # a chain member, still r > 0.9
                     base[2], base[3], base[4]])
    stems = ["0003", "0001", "0002", "0004", "0005", "0006"]
    g = fl.similarity_groups(vecs, stems, threshold=0.9)
    assert g["0003"] == g["0001"] == g["0002"] == "g0001"  # id from the first member's stem
    assert len({g["0004"], g["0005"], g["0006"], g["0001"]}) == 4


def _file(**kw) -> fl.FoldFile:
    d = dict(task="usgra", k=2, grouping="test", excluded=["x"], groups={"a": "g1", "b": "g1", "c": "g2", "x": "g3"},
             folds=[["a", "b"], ["c"]])
    d.update(kw)
    return fl.FoldFile(**d)


def test_validate_accepts_a_good_file_and_names_each_fault():
    _file().validate()
    with pytest.raises(fl.FoldError, match="straddles"):
        _file(folds=[["a"], ["b", "c"]]).validate()
    with pytest.raises(fl.FoldError, match="more than one fold"):
        _file(folds=[["a", "b", "c"], ["c"]]).validate()
    with pytest.raises(fl.FoldError, match="excluded stems inside folds"):
        _file(folds=[["a", "b", "x"], ["c"]]).validate()
    with pytest.raises(fl.FoldError, match="k=3"):
        _file(k=3).validate()


def test_round_trip_and_stems(tmp_path):
    ff = _file()
    ff.save(tmp_path / "usgra-folds.json")
    back = fl.read(tmp_path / "usgra-folds.json")
    assert back == ff
    assert back.test_stems(0) == ["a", "b"] and back.train_stems(0) == ["c"]
    assert back.train_stems(None) == ["a", "b", "c"]
    assert back.fold_of_group("g2") == 1 and back.fold_of_group("g3") is None
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(fl.FoldError, match="cannot be read"):
        fl.read(tmp_path / "bad.json")


def test_check_current_compares_with_the_samples_file(tmp_path):
    samples = tmp_path / "samples.json"
    assert fl.sample_stems(samples) == []  # absent file: nothing excluded
    samples.write_text(json.dumps({"stems": ["x"]}))
    fl.check_current(_file(), samples)
    samples.write_text(json.dumps({"stems": ["x", "c"]}))
    with pytest.raises(fl.FoldError, match="rerun"):
        fl.check_current(_file(), samples)


def test_usgra_folds_from_data_exclude_samples(data_root, tmp_path):
    samples = tmp_path / "samples.json"
    samples.write_text(json.dumps({"stems": ["0007", "0020"]}))
    ff = fl.make_folds("usgra", data_root, k=5, seed=0, samples_file=samples)
    assert ff.excluded == ["0007", "0020"]
    assert len(ff.groups) == 204 and sum(len(f) for f in ff.folds) == 202
    sizes = [len(f) for f in ff.folds]
    assert max(sizes) - min(sizes) <= 4


@pytest.mark.parametrize("task", ["usgra", "kaggle-bp"])
def test_committed_fold_files_are_valid_and_current(task, data_root):
    ff = fl.read(fl.folds_path(task))  # validates
    fresh = fl.make_folds(task, data_root, ff.k, 0)
    assert fresh.folds == ff.folds and fresh.groups == ff.groups, f"rerun python -m nervseg.data.folds --task {task}"
    assert ff.k >= 5
    if task == "kaggle-bp":
        assert ff.fold_of_group("1") != ff.fold_of_group("2")
        assert len(set(ff.groups.values())) == 41
