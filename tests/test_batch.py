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
