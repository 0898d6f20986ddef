"""The int8 graph for live use (nervseg.inference.quantize and the "onnx-int8" engine): made from a card,
stamped with its weights, refused when it belongs to other weights, never chosen unasked, and close to
the full model on real scans."""

from __future__ import annotations

import json

import numpy as np
import pytest
from shipped import per_model

from nervseg.inference import engines, load
from nervseg.models.cards import ModelError, get_card


@pytest.fixture(scope="module")
def quantized_random(random_card_factory, tmp_path_factory, tiny_data_root):
    from nervseg.inference.export import export_card
    from nervseg.inference.quantize import quantize_card

    directory = tmp_path_factory.mktemp("quantized")
    card = random_card_factory(directory, "unet")
    export_card(card)
    block = quantize_card(card, n_calibration=4, root=tiny_data_root)
    return directory, card.id, block


def test_quantize_writes_a_stamped_graph_that_runs_close_to_the_float_graph(quantized_random, rng):
    directory, model_id, block = quantized_random
    card = get_card(model_id, directory)
    assert card.int8 == block and (directory / block["file"]).is_file()
    assert block["weights_sha256"] == card.weights_sha256 and block["calibration"].startswith("4 training images")
    assert set(block["validation"]["per_class"]) == set(card.classes[1:])
    assert block["validation"]["n_images"] > 0
    fast = load(model_id, models_dir=directory, engine="onnx-int8")
    full = load(model_id, models_dir=directory, engine="onnx")
    assert fast.engine_name == "onnx-int8"
    image = rng.integers(0, 255, (70, 90), dtype=np.uint8)
    x = full.network_input([image])
    a, b = full.engine(x), fast.engine(x)
    assert a.shape == b.shape and np.abs(a - b).mean() < 0.05
    assert fast.predict(image).mask.shape == image.shape
    # a smaller stated size runs too (the Live page's size slider)
    assert load(model_id, models_dir=directory).engine_name == "onnx"  # never chosen unasked
    from nervseg.inference.segmenter import Segmenter

    small = Segmenter(card, engine="onnx-int8", input_size=(32, 32))
    assert small.predict(image).mask.shape == image.shape


def test_an_int8_graph_of_other_weights_or_a_changed_file_is_refused(quantized_random, tmp_path):
    import shutil

    directory, model_id, _ = quantized_random
    for p in directory.glob(f"{model_id}*"):
        shutil.copy2(p, tmp_path / p.name)
    card_path = tmp_path / f"{model_id}.json"
    d = json.loads(card_path.read_text())
    d["int8"]["weights_sha256"] = "0" * 64  # made for other weights
    card_path.write_text(json.dumps(d))
    why = engines.problem("onnx-int8", get_card(model_id, tmp_path))
    assert why and "does not belong" in why and "nervseg.inference.quantize" in why
    with pytest.raises(ModelError, match="does not belong"):
        load(model_id, models_dir=tmp_path, engine="onnx-int8")
    assert load(model_id, models_dir=tmp_path).engine_name == "onnx"  # the float graph still runs

    d["int8"]["weights_sha256"] = get_card(model_id, directory).weights_sha256
    card_path.write_text(json.dumps(d))
    assert engines.problem("onnx-int8", get_card(model_id, tmp_path)) is None
    with open(tmp_path / d["int8"]["file"], "ab") as f:  # the file changed after it was measured
        f.write(b"\0")
    assert "does not belong" in engines.problem("onnx-int8", get_card(model_id, tmp_path))
    (tmp_path / d["int8"]["file"]).unlink()
    assert "no int8 graph" in engines.problem("onnx-int8", get_card(model_id, tmp_path))


@per_model()
def test_shipped_int8_graph_agrees_with_the_full_model_on_validation_scans(model_id, data_root):
    from nervseg.inference.quantize import card_pairs
    from nervseg.io import load_image, load_mask

    card = get_card(model_id)
    assert engines.problem("onnx-int8", card) is None, "every shipped model has its int8 graph"
    for cls, r in card.int8["validation"]["per_class"].items():  # what the card says it measured
        assert r["agreement_dice_mean"] >= 0.95, (cls, r)
        assert r["int8_dice_mean"] >= r["full_dice_mean"] - 0.02, (cls, r)
    _, val, trained_on = card_pairs(card, data_root)
    assert len(val) == card.int8["validation"]["n_images"]
    assert trained_on == card.int8["validation"].get("n_trained_on", 0)  # graphs made before the count: none
    pairs = [p for p in val if load_mask(p.mask).any()][:8]
    assert pairs, f"no validation scans of {card.task} with structures"
    full, fast = load(model_id, engine="onnx"), load(model_id, engine="onnx-int8")
    both = np.zeros(len(card.classes), np.int64)
    sizes = np.zeros(len(card.classes), np.int64)
    for p in pairs:
        image = load_image(p.image)
        a, b = full.predict(image).mask, fast.predict(image).mask
        for k in range(1, len(card.classes)):
            both[k] += np.sum((a == k) & (b == k))
            sizes[k] += np.sum(a == k) + np.sum(b == k)
    for k in range(1, len(card.classes)):
        if sizes[k] > 1000:
            assert 2 * both[k] / sizes[k] >= 0.95, (card.classes[k], 2 * both[k] / sizes[k])
