"""provenance: labels, the opening model, training overlap and 'unlike its training data', from cards."""

from __future__ import annotations

from nervseg.models import provenance
from nervseg.models.cards import ModelCard


def card(id_, classes, data, size=(192, 192), dice=None):
    val = {"per_class": {"nerve": {"dice_mean": dice}}} if dice is not None else {}
    return ModelCard(id=id_, name=id_, architecture="unet", classes=classes, data=data, input_size=list(size),
                     validation=val)


USGRA = {"name": "usgra-seg (Kandaouroff 2025, github.com/tmkand/usgra-seg)",
         "split": {"val_stems": ["0007", "0178"]}}
KAGGLE = {"name": "Kaggle 2016 Ultrasound Nerve Segmentation (brachial plexus)",
          "split": {"val_subjects": ["2", "3"], "train_subjects": ["1", "10"]}}


def test_group_labels_say_what_a_model_finds_and_learnt_from():
    assert provenance.group_label(card("u", ["background", "nerve", "vessel"], USGRA)) == "nerve + vessel · usgra-seg"
    assert provenance.group_label(card("k", ["background", "nerve"], KAGGLE)) == "nerve only · Kaggle brachial plexus"


def test_default_prefers_more_structures_then_nerve_dice():
    cards = [card("k", ["background", "nerve"], KAGGLE, dice=0.72),
             card("u1", ["background", "nerve", "vessel"], USGRA, dice=0.65),
             card("u2", ["background", "nerve", "vessel"], USGRA, dice=0.70)]
    assert provenance.default_card(cards).id == "u2"
    assert provenance.default_card([]) is None


def test_trained_on_by_file_name():
    u, k = card("u", ["background", "nerve", "vessel"], USGRA), card("k", ["background", "nerve"], KAGGLE)
    assert provenance.trained_on(u, "0003.png") and provenance.trained_on(u, "usgra-seg-0003.png")
    assert not provenance.trained_on(u, "0178.png") and not provenance.trained_on(u, "scan.png")
    assert provenance.trained_on(k, "10_4.png") and not provenance.trained_on(k, "2_4.png")
    assert not provenance.trained_on(k, "0003.png") and not provenance.trained_on(u, "10_4.png")
    assert provenance.training_overlap(u, ["0003.png", "0178.png", "0010.tif"]) == ["0003.png", "0010.tif"]


def test_published_protocol_needs_held_out_kaggle_subjects_only():
    k = card("k", ["background", "nerve"], KAGGLE)
    assert provenance.heldout_subject_images(k, ["2_1.png", "3_7.tif"])
    assert not provenance.heldout_subject_images(k, ["2_1.png", "10_1.png"])
    assert not provenance.heldout_subject_images(k, ["0178.png"]) and not provenance.heldout_subject_images(k, [])


def test_unlike_training_by_aspect():
    k = card("k", ["background", "nerve"], KAGGLE, size=(128, 176))
    u = card("u", ["background", "nerve", "vessel"], USGRA)
    assert provenance.unlike_training(k, (512, 534)) and not provenance.unlike_training(k, (420, 580))
    assert not provenance.unlike_training(u, (512, 534)) and not provenance.unlike_training(u, (632, 761))
    assert provenance.unlike_training(u, (186, 256))


def test_card_presence_from_the_card_file(tmp_path):
    c = card("u", ["background", "nerve", "vessel"], USGRA)
    assert provenance.card_presence(c) is None
    path = tmp_path / "u.json"
    path.write_text('{"presence": {"nerve": {"x": [0, 1], "y": [0, 1]}}}')
    c.path = str(path)
    assert provenance.card_presence(c) == {"nerve": {"x": [0, 1], "y": [0, 1]}}
