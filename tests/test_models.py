"""nervseg.models.cards: registry, card round trip, weights verification."""

from __future__ import annotations

import json
import shutil

import pytest

from nervseg.models.cards import (
    ARCHITECTURES,
    ModelCard,
    ModelError,
    available,
    build,
    count_parameters,
    get_card,
    load_model,
    load_state_dict,
    read_card,
)


def test_registry_has_three_unets():
    assert set(ARCHITECTURES) == {"unet", "densenet", "sk-unet"}
    assert ARCHITECTURES["unet"].encoder == "resnet34"
    assert ARCHITECTURES["densenet"].encoder == "densenet121"
    assert ARCHITECTURES["sk-unet"].encoder.startswith("tu-skresnet")
    assert all(a.smp_class == "Unet" for a in ARCHITECTURES.values())


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_build_each_without_network(arch):
    import torch

    model = build(arch, 3, encoder_depth=4, decoder_channels=[32, 16, 8, 8], encoder_weights="imagenet")
    model.eval()
    with torch.inference_mode():
        out = model(torch.zeros(1, 1, 64, 64))
    assert tuple(out.shape) == (1, 3, 64, 64)
    assert count_parameters(model) > 100_000


def test_build_unknown_arch():
    with pytest.raises(ModelError, match="unknown architecture"):
        build("vit", 2)


def test_dropped_stages_shrink_depth4_models():
    shallow = count_parameters(build("unet", 2, encoder_depth=4, decoder_channels=[32, 16, 8, 8]))
    full = count_parameters(build("unet", 2, encoder_depth=5, decoder_channels=[32, 16, 8, 8, 8]))
    assert shallow < full - 10_000_000  # ResNet-34's layer4 (13 M) is not shipped at depth 4


def test_card_round_trip(random_model_dir):
    card = get_card("random-unet", random_model_dir)
    again = ModelCard.from_dict(json.loads(json.dumps(card.to_dict())), path=card.path)
    assert again == card
    assert "path" not in card.to_dict()
    assert card.arch_display == "U-Net" and card.n_classes == 3
    assert card.weights_path() == random_model_dir / "random-unet.safetensors"
    assert card.validation_dice("nerve") is None
    card.validation = {"per_class": {"nerve": {"dice_mean": 0.71}}}
    assert card.validation_dice("nerve") == pytest.approx(0.71)


def test_available_and_get_card(random_model_dir, tmp_path):
    ids = [c.id for c in available(random_model_dir)]
    assert ids == sorted(f"random-{a}" for a in ARCHITECTURES)
    assert available(tmp_path / "nothing") == []
    with pytest.raises(ModelError, match="no model 'nope'"):
        get_card("nope", random_model_dir)


def test_card_missing_required_fields(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"id": "bad", "name": "x"}))
    with pytest.raises(ModelError, match="lacks"):
        read_card(p)
    p.write_text("{not json")
    with pytest.raises(ModelError, match="cannot be read"):
        read_card(p)


def _copy_model(src_dir, dst_dir, model_id="random-unet"):
    for suffix in (".json", ".safetensors"):
        shutil.copy(src_dir / f"{model_id}{suffix}", dst_dir / f"{model_id}{suffix}")
    return get_card(model_id, dst_dir)


def test_weights_load_and_sha_checked(random_model_dir, tmp_path):
    import torch

    card = _copy_model(random_model_dir, tmp_path)
    state = load_state_dict(card)
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    model = load_model(card)
    assert not model.training


def test_sha256_mismatch_refused(random_model_dir, tmp_path):
    card = _copy_model(random_model_dir, tmp_path)
    path = card.weights_path()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte in the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its card"):
        load_model(card)


def test_missing_weights_refused(random_model_dir, tmp_path):
    card = _copy_model(random_model_dir, tmp_path)
    card.weights_path().unlink()
    with pytest.raises(ModelError, match="missing"):
        load_model(card)


def test_weights_for_another_architecture_refused(random_model_dir, tmp_path):
    card = _copy_model(random_model_dir, tmp_path)
    card.architecture, card.encoder = "densenet", "densenet121"  # the card's build recipe names another encoder
    with pytest.raises(ModelError, match="do not fit"):
        load_model(card)


def test_build_from_card_follows_the_card_not_the_registry(monkeypatch):
    """A card is its own build recipe: changing the registry must not change how it loads."""
    import dataclasses

    from nervseg.models import cards as models

    card = models.ModelCard(id="c", name="c", architecture="unet", classes=["background", "nerve"],
                            smp_class="Unet", encoder="resnet18",
                            smp_kwargs={"encoder_depth": 3, "decoder_channels": [32, 16, 8]})
    before = sum(p.numel() for p in models.build_from_card(card).parameters())
    changed = dataclasses.replace(models.ARCHITECTURES["unet"], encoder="resnet34")
    monkeypatch.setitem(models.ARCHITECTURES, "unet", changed)
    assert sum(p.numel() for p in models.build_from_card(card).parameters()) == before
    assert sum(p.numel() for p in models.build("unet", 2, **card.smp_kwargs).parameters()) != before
