"""Pairing uploaded images with masks (files or zip) and batch scoring, on real data."""

from __future__ import annotations

import numpy as np
import pytest

from nervseg import metrics
from nervseg.evaluate import batch
from nervseg.inference.segmenter import Prediction
from nervseg.io.readers import InputError


@pytest.fixture
def usgra_files(data_root):
    folder = data_root / "usgra-seg"
    stems = ["0000", "0001", "0002"]
    return {s: ((folder / "images" / f"{s}.png").read_bytes(), (folder / "masks" / f"{s}.png").read_bytes()) for s in stems}


def test_zip_with_images_and_masks_folders_same_stem(usgra_files, make_zip):
    entries = {f"set/images/{s}.png": i for s, (i, _) in usgra_files.items()}
    entries |= {f"set/masks/{s}.png": m for s, (_, m) in usgra_files.items()}
    entries["set/images/9999.png"] = usgra_files["0000"][0]  # no mask
    pairing = batch.pair_zip(make_zip(entries), "set.zip")
    assert [p.stem for p in pairing.pairs] == ["0000", "0001", "0002"]
    assert all(p.image == usgra_files[p.stem][0] and p.mask == usgra_files[p.stem][1] for p in pairing.pairs)
    assert pairing.unmatched == ["set/images/9999.png"]


def test_zip_with_mask_suffix_tif(fullres_pair, make_zip):
    img, mask = fullres_pair
    pairing = batch.pair_zip(make_zip({f"images/{img.name}": img.read_bytes(), f"masks/{mask.name}": mask.read_bytes()}))
    assert len(pairing.pairs) == 1 and pairing.pairs[0].stem == img.stem
    loaded = batch.load_pair(pairing.pairs[0])
    assert loaded.image.shape == loaded.mask.shape == (420, 580)


def test_loose_files_pair_by_mask_suffix(kaggle_pair):
    img, mask = kaggle_pair
    pairing = batch.pair_files([(img.name, img.read_bytes()), (mask.name, mask.read_bytes()), ("notes.txt", b"x")])
    assert [(p.image_name, p.mask_name) for p in pairing.pairs] == [(img.name, mask.name)]


def test_bad_archives_give_readable_errors(usgra_files, make_zip):
    with pytest.raises(InputError, match="not a zip"):
        batch.pair_zip(b"PK\x03\x04 garbage", "x.zip")
    with pytest.raises(InputError, match="no images"):
        batch.pair_zip(make_zip({"readme.txt": b"hello"}), "docs.zip")
    with pytest.raises(InputError, match="no image has a matching mask"):
        batch.pair_zip(make_zip({"images/0000.png": usgra_files["0000"][0]}), "half.zip")


class _Oracle:
    """Predicts the truth itself, or the truth shifted right: known, checkable scores."""

    def __init__(self, truths: dict[str, np.ndarray], shift: int):
        self.truths, self.shift = truths, shift

    def __call__(self, model_id, pair, image):
        m = np.roll(self.truths[pair.stem], self.shift if model_id == "shifted" else 0, axis=1)
        return Prediction(np.zeros((3, *m.shape), np.float32), m, ["background", "nerve", "vessel"], 0.01)


def test_score_batch_equals_metrics_and_skips_bad_pairs(usgra_files, kaggle_pair):
    pairs = batch.pair_files([(f"{s}.png", i) for s, (i, _) in usgra_files.items()]
                             + [(f"{s}_mask.png", m) for s, (_, m) in usgra_files.items()]).pairs
    truths = {p.stem: batch.load_pair(p).mask for p in pairs}
    # a mask of another size: skipped with its reason, not fatal
    pairs.append(batch.BatchPair("odd", "odd.png", usgra_files["0000"][0], "odd_mask.png", kaggle_pair[1].read_bytes()))
    done = []
    rows, skipped = batch.score_batch(_Oracle(truths, 7), ["exact", "shifted"], pairs,
                                      lambda m: ["background", "nerve", "vessel"], lambda d, t: done.append((d, t)))
    assert len(skipped) == 1 and "does not match" in skipped[0]
    assert done[-1] == (6, 6)
    exact = [r for r in rows if r["model"] == "exact" and r["class"] == "nerve"]
    assert [r["dice"] for r in exact] == [1.0, 1.0, 1.0]
    for r in (r for r in rows if r["model"] == "shifted"):
        stem = r["image"].split(".")[0]
        cid = 1 if r["class"] == "nerve" else 2
        expected = metrics.score(np.roll(truths[stem], 7, axis=1), truths[stem], cid)
        assert r["dice"] == pytest.approx(expected["dice"]) and r["hd95"] == expected["hd95"]
    summary = {(s["model"], s["class"]): s for s in batch.summarise(rows)}
    shifted = [r["dice"] for r in rows if r["model"] == "shifted" and r["class"] == "nerve"]
    assert summary[("shifted", "nerve")]["dice_mean"] == pytest.approx(np.mean(shifted))
    assert summary[("shifted", "nerve")]["dice_sd"] == pytest.approx(np.std(shifted, ddof=1))
    assert summary[("exact", "nerve")]["dice_pooled"] == 1.0


def test_loose_images_and_masks_of_one_name_pair_by_content(usgra_files):
    """A browser sends images/x.png and masks/x.png both as x.png: the one that reads as a mask is the mask."""
    files = []
    for s, (i, m) in usgra_files.items():
        files += [(f"{s}.png", m), (f"{s}.png", i)] if s == "0001" else [(f"{s}.png", i), (f"{s}.png", m)]
    pairing = batch.pair_files(files)
    assert [p.stem for p in pairing.pairs] == sorted(usgra_files) and not pairing.errors
    assert all(p.image == usgra_files[p.stem][0] and p.mask == usgra_files[p.stem][1] for p in pairing.pairs)
    with_folders = batch.pair_files([("images/0000.png", usgra_files["0000"][0]), ("masks/0000.png", usgra_files["0000"][1])])
    assert [(p.image_name, p.mask_name) for p in with_folders.pairs] == [("images/0000.png", "masks/0000.png")]


def test_an_empty_file_or_a_bad_zip_is_named_and_the_rest_is_paired(usgra_files, make_zip):
    (img, mask) = usgra_files["0000"]
    pairing = batch.pair_uploads([("0000.png", img), ("0000_mask.png", mask), ("0001.png", b""),
                                  ("broken.zip", b"PK\x03\x04 garbage")])
    assert [p.stem for p in pairing.pairs] == ["0000"]
    assert any("0001.png" in e and "empty" in e for e in pairing.errors)
    assert any("broken.zip" in e and "not a zip" in e for e in pairing.errors)
    only_empty = batch.pair_uploads([("scan.png", b"")])
    assert not only_empty.pairs and only_empty.errors == ["scan.png: the file is empty (0 bytes)."]


def test_absent_classes_are_marked_and_left_out_of_the_means():
    truth = np.zeros((10, 10), np.uint8)
    truth[2:6, 2:6] = 1
    rows = batch.score_rows("m", "x", truth, truth, ["background", "nerve", "vessel"])
    by_class = {r["class"]: r for r in rows}
    assert by_class["vessel"]["absent"] == 1 and by_class["vessel"]["dice"] == 1.0  # the rule, kept in the rows
    assert by_class["nerve"]["absent"] == 0
    summary = {s["class"]: s for s in batch.summarise(rows, skip_absent=True)}
    assert set(summary) == {"nerve"}
    summary = {s["class"]: s for s in batch.summarise(rows)}
    assert summary["vessel"]["dice_mean"] == 1.0 and summary["vessel"]["n_absent"] == 0


def test_a_pair_a_model_refuses_is_skipped_and_the_rest_scored(usgra_files):
    pairs = batch.pair_files([(f"{s}.png", i) for s, (i, _) in usgra_files.items()]
                             + [(f"{s}_mask.png", m) for s, (_, m) in usgra_files.items()]).pairs
    truths = {p.stem: batch.load_pair(p).mask for p in pairs}

    def predict(model_id, pair, image):
        if pair.stem == "0001":
            raise InputError("preprocessing failed")
        return _Oracle(truths, 0)(model_id, pair, image)

    rows, skipped = batch.score_batch(predict, ["exact"], pairs, lambda m: ["background", "nerve", "vessel"])
    assert skipped == ["0001.png: preprocessing failed"]
    assert sorted({r["image"] for r in rows}) == ["0000.png", "0002.png"]
