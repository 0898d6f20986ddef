"""nervseg.evaluate: the CLI's numbers equal metrics computed independently here."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from nervseg.data.pairs import find_pairs
from nervseg.evaluate.run import evaluate_pairs, main
from nervseg.inference.segmenter import load

STEMS = ["0000", "0001", "0002"]


@pytest.fixture(scope="module")
def eval_folder(data_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for stem in STEMS:
        shutil.copy(data_root / "usgra-seg" / "images" / f"{stem}.png", root / "images" / f"{stem}.png")
        shutil.copy(data_root / "usgra-seg" / "masks" / f"{stem}.png", root / "masks" / f"{stem}.png")
    return root


def _dice(pred: np.ndarray, true: np.ndarray) -> float:
    inter, total = np.logical_and(pred, true).sum(), pred.sum() + true.sum()
    return 1.0 if total == 0 else 2.0 * inter / total


def test_find_pairs_layouts(eval_folder, tmp_path):
    pairs = find_pairs(eval_folder)
    assert [p.stem for p in pairs] == STEMS
    # flat layout with *_mask files
    for p in pairs:
        shutil.copy(p.image, tmp_path / p.image.name)
        shutil.copy(p.mask, tmp_path / f"{p.stem}_mask.png")
    flat = find_pairs(tmp_path)
    assert [(p.image.name, p.mask.name) for p in flat] == [(f"{s}.png", f"{s}_mask.png") for s in STEMS]


def test_cli_matches_independent_metrics(eval_folder, random_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NERVSEG_MODELS", str(random_model_dir))
    out = tmp_path / "scores.csv"
    main(["--model", "random-unet", "--data", str(eval_folder), "--out", str(out)])
    printed = capsys.readouterr().out
    assert "random-unet" in printed and "nerve" in printed and "vessel" in printed

    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(STEMS) * 2  # nerve and vessel per image
    summary = json.loads(out.with_suffix(".json").read_text())["random-unet"]
    assert summary["n_images"] == len(STEMS)

    seg = load("random-unet", models_dir=random_model_dir, device="cpu")
    expected = {"nerve": [], "vessel": []}
    for stem in STEMS:
        image = np.array(Image.open(eval_folder / "images" / f"{stem}.png").convert("L"))
        truth = np.array(Image.open(eval_folder / "masks" / f"{stem}.png"))  # palette indices = ids
        pred = seg.predict(image).mask
        for cid, cname in ((1, "nerve"), (2, "vessel")):
            d = _dice(pred == cid, truth == cid)
            expected[cname].append(d)
            row = next(r for r in rows if r["image"] == f"{stem}.png" and r["class"] == cname)
            assert float(row["dice"]) == pytest.approx(d, abs=1e-6)
            assert int(row["tp"]) == int(np.logical_and(pred == cid, truth == cid).sum())
            assert int(row["truth_empty"]) == int(not (truth == cid).any())
    for cname, values in expected.items():
        assert summary["per_class"][cname]["dice_mean"] == pytest.approx(np.mean(values), abs=1e-6)
        assert summary["per_class"][cname]["dice_sd"] == pytest.approx(np.std(values, ddof=1), abs=1e-6)


def test_evaluate_pairs_progress(eval_folder, random_model_dir):
    seg = load("random-sk-unet", models_dir=random_model_dir, device="cpu")
    calls = []
    res = evaluate_pairs(seg, find_pairs(eval_folder)[:2], progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 2), (2, 2)]
    assert {r["model"] for r in res["rows"]} == {"random-sk-unet"}
    assert set(res["summary"]["per_class"]) == {"nerve", "vessel"}


def test_cli_help_and_empty_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "--model" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no image/mask pairs"):
        main(["--model", "x", "--data", str(tmp_path)])
