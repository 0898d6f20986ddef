"""Each registry takes one entry: a fake entry made here runs through the whole path.

- a dataset: a synthetic third task with a fourth class (id 3), one spec entry in a file of the test's own;
- an architecture: smp FPN on a small encoder, one registry entry;
- a preprocessing filter: one `register` call;
- an inference engine: one class registered behind the `Engine` Protocol.

No shipped file is edited; every registry is put back after each test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from apptest_checks import assert_clean
from streamlit.testing.v1 import AppTest

from nervseg.inference.segmenter import load

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "streamlit_app.py"

# ---------------------------------------------------------------- a dataset

TASK = "tri-synth"
CLASSES = ["background", "nerve", "vessel", "tendon"]
SPEC = {
    TASK: {
        "display": "nerve + vessel + tendon (synthetic)",
        "data_name": "tri-synth (made by the test)",
        "licence": "CC0",
        "attribution": "the test suite",
        "classes": CLASSES,
        "input_size": [32, 32],
        "frame_size": [48, 56],
        "sets": {"main": {"folder": "tri-synth", "images": "images", "masks": "masks", "mask_suffix": ""}},
        "group": "before_underscore",
        "grouping": "by subject (the letters and number before the underscore)",
        "split": {"always_val": ["s2"], "always_train": []},
        "file_name": "^(?:tri-)?(?P<stem>s\\d+_\\d+)$",
        "folds": {"groups": "rule", "unit": "subject", "apart": ["s1", "s2"], "apart_note": "s1 and s2 apart"},
    }
}


def _scan(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Speckle with one bright block per class (ids 1, 2 and 3), so class 3 is in every mask."""
    img = rng.integers(20, 80, (48, 56), dtype=np.uint8)
    mask = np.zeros(img.shape, np.uint8)
    for c, (top, left) in zip((1, 2, 3), ((4, 4), (4, 30), (28, 16)), strict=True):
        dy, dx = int(rng.integers(0, 6)), int(rng.integers(0, 6))
        mask[top + dy : top + dy + 12, left + dx : left + dx + 14] = c
        img[mask == c] = 100 + 45 * c
    return img, mask


@pytest.fixture
def third_task(tmp_path, monkeypatch):
    """(data root, spec file): 5 subjects x 3 frames of a 4-class task, its spec added for this test only."""
    from nervseg.data import datasets
    from nervseg.io import readers

    root = tmp_path / "data"
    (root / TASK / "images").mkdir(parents=True), (root / TASK / "masks").mkdir()
    rng = np.random.default_rng(7)
    for subject in range(1, 6):
        for frame in range(1, 4):
            img, mask = _scan(rng)
            cv2.imwrite(str(root / TASK / "images" / f"s{subject}_{frame}.png"), img)
            cv2.imwrite(str(root / TASK / "masks" / f"s{subject}_{frame}.png"), mask)
    spec_file = tmp_path / "more-datasets.json"
    spec_file.write_text(json.dumps(SPEC))
    monkeypatch.setattr(readers, "_max_class_id", readers.max_class_id())  # restored afterwards
    before = dict(datasets.TASKS)
    yield root, spec_file
    datasets.TASKS.clear()  # the registry as it was (in place: modules hold the dict itself)
    datasets.TASKS.update(before)


def test_a_dataset_is_one_spec_entry_a_third_task_with_a_fourth_class(third_task, tmp_path, monkeypatch):
    """Split, folds, one training step, card, load, predict, masks with class id 3 read and drawn,
    the training-overlap rule, the CV scoring items: all from the spec entry."""
    from nervseg.cv.run import eval_pairs
    from nervseg.data import datasets, folds
    from nervseg.data.splits import split_task
    from nervseg.display import viz
    from nervseg.io.readers import load_mask
    from nervseg.models import provenance
    from nervseg.train.config import parse_args
    from nervseg.train.run import train

    root, spec_file = third_task
    with pytest.raises(ValueError, match="unknown task"):
        datasets.spec(TASK)
    assert datasets.add_specs(spec_file) == [TASK]
    ds = datasets.spec(TASK)
    assert ds.classes == tuple(CLASSES) and len(ds.pairs("main", root)) == 15

    # masks with class id 3 are read (the spec raised the limit) and drawn in a colour of their own
    mask = load_mask(root / TASK / "masks" / "s1_1.png")
    assert set(np.unique(mask)) == {0, 1, 2, 3}
    grey = np.full(mask.shape, 60, np.uint8)
    tinted = viz.overlay(grey, mask, alpha=1.0)
    assert (tinted[mask == 3] == viz.class_colour(3)).all()
    assert len({tuple(tinted[mask == c][0]) for c in (1, 2, 3)}) == 3
    outlined = viz.truth_outline(viz.to_rgb(grey), mask)
    assert (outlined == viz.class_colour(3, truth=True)).all(axis=2).any()
    assert [name for name, _ in viz.legend(CLASSES)] == CLASSES[1:]

    # the seeded split and the folds follow the spec's group rule
    split = split_task(TASK, root)
    assert "s2" in split.description["val_subjects"]
    assert {ds.group_of(p.stem) for p in split.train}.isdisjoint({ds.group_of(p.stem) for p in split.val})
    ff = folds.make_folds(TASK, root, k=3)
    assert ff.grouping.startswith(ds.grouping) and ff.grouping.endswith("s1 and s2 apart")
    fold_of = {g: ff.fold_of_group(g) for g in set(ff.groups.values())}
    assert fold_of["s1"] != fold_of["s2"] and sorted(s for f in ff.folds for s in f) == sorted(ff.groups)
    for k in range(ff.k):  # CV scores each fold's own images, grouped by the spec
        assert {p.stem for _, p, _ in eval_pairs(ff, TASK, k, root)} == set(ff.folds[k])

    # one training step (4 images, batch 4, 1 epoch), the card, the ONNX graph, load and predict
    out = tmp_path / "models"
    argv = ["--arch", "unet", "--task", TASK, "--size", "32", "32", "--epochs", "1", "--batch-size", "4",
            "--limit", "4", "--augment", "none", "--threads", "1", "--data", str(root), "--out", str(out),
            "--runs", str(tmp_path / "runs")]
    card = train(parse_args(argv), argv)
    assert card.task == TASK and card.classes == CLASSES and card.data["name"] == ds.data_name
    assert card.curves["epoch"] == [1]
    assert (out / f"{TASK}-unet.onnx").is_file()
    seg = load(f"{TASK}-unet", models_dir=out)
    assert seg.engine_name == "onnx"
    image = cv2.imread(str(root / TASK / "images" / "s3_2.png"), cv2.IMREAD_GRAYSCALE)
    pred = seg.predict(image)
    assert pred.probs.shape == (4, 48, 56) and pred.mask.max() <= 3 and set(pred.confidence) == set(CLASSES[1:])
    np.testing.assert_allclose(pred.probs.sum(axis=0), 1.0, atol=1e-5)

    # the training-overlap warning reads the spec's file-name rule and the card's split
    train_subjects = set(card.data["split"]["train_subjects"])
    val_subjects = set(card.data["split"]["val_subjects"])
    some_train, some_val = sorted(train_subjects)[0], sorted(val_subjects)[0]
    assert provenance.trained_on(card, f"tri-{some_train}_2.png")
    assert not provenance.trained_on(card, f"{some_val}_2.png") and not provenance.trained_on(card, "0003.png")
    assert provenance.heldout_subject_images(card, [f"{some_val}_1.png"])


def test_a_dataset_spec_file_in_the_environment_reaches_the_clis(third_task, tmp_path):
    """$NERVSEG_DATASETS adds the task in every process: the folds CLI writes its fold file."""
    root, spec_file = third_task
    out = tmp_path / "tri-folds.json"
    env = {**os.environ, "NERVSEG_DATASETS": str(spec_file)}
    subprocess.run([sys.executable, "-m", "nervseg.data.folds", "--task", TASK, "--k", "3", "--data", str(root),
                    "--out", str(out)], check=True, cwd=ROOT, env=env, capture_output=True, text=True)
    ff = json.loads(out.read_text())
    assert ff["task"] == TASK and ff["k"] == 3 and len(ff["groups"]) == 15
    assert len({ff["groups"][s] for f in ff["folds"] for s in f}) == 5  # subjects, whole
    without = subprocess.run([sys.executable, "-m", "nervseg.data.folds", "--task", TASK], cwd=ROOT,
                             env={k: v for k, v in env.items() if k != "NERVSEG_DATASETS"}, capture_output=True,
                             text=True)
    assert without.returncode != 0 and "invalid choice" in without.stderr


# ---------------------------------------------------------------- an architecture

FPN = "fpn-small"


@pytest.fixture
def fpn_registered(monkeypatch):
    from nervseg.models import cards

    arch = cards.Architecture(FPN, "FPN (test)", "FPN", "resnet18", "FPN decoder on a ResNet-18 encoder",
                              default_kwargs={"encoder_depth": 5, "decoder_pyramid_channels": 32,
                                              "decoder_segmentation_channels": 32})
    monkeypatch.setitem(cards.ARCHITECTURES, FPN, arch)
    return arch


def test_an_architecture_is_one_registry_entry_fpn_trained_exported_loaded_and_compared(
        fpn_registered, tiny_data_root, tmp_path, monkeypatch, random_card_factory):
    """smp FPN (another decoder) added as one entry: one training step, its ONNX graph, both engines
    predict alike, and the Compare page lists it beside the group's other model."""
    from nervseg.evaluate.comparison import arch_name
    from nervseg.train.run import main

    out = tmp_path / "models"
    main(["--arch", FPN, "--task", "usgra", "--size", "64", "64", "--epochs", "1", "--batch-size", "4",
          "--limit", "4", "--augment", "none", "--threads", "1", "--data", str(tiny_data_root), "--out", str(out),
          "--runs", str(tmp_path / "runs")])
    model_id = f"usgra-{FPN}"
    onnx_seg, torch_seg = load(model_id, models_dir=out), load(model_id, models_dir=out, engine="torch")
    assert onnx_seg.engine_name == "onnx" and onnx_seg.card.smp_class == "FPN"
    assert onnx_seg.card.recipe["architecture"]["smp_class"] == "FPN"
    image = np.random.default_rng(1).integers(0, 256, (70, 90), dtype=np.uint8)
    a, b = onnx_seg.predict(image), torch_seg.predict(image)
    assert a.probs.shape == (3, 70, 90) and np.abs(a.probs - b.probs).max() <= 1e-4
    assert arch_name(FPN) == "FPN (test)"

    other = random_card_factory(out, "unet", model_id="usgra-unet")  # the group's other model
    monkeypatch.setenv("NERVSEG_MODELS", str(out))
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.session_state["model_id"] = model_id
    at.run()
    at.switch_page("views/compare.py").run()
    _, png = cv2.imencode(".png", image)
    at.file_uploader[0].set_value(("scan.png", png.tobytes(), "image/png")).run()
    assert_clean(at)
    heads = [m.value for m in at.markdown]
    assert "**FPN (test)**" in heads and f"**{other.arch_display}**" in heads
    latency = at.dataframe[0].value
    assert sorted(latency["model"]) == sorted(["FPN (test)", other.arch_display])


# ---------------------------------------------------------------- a preprocessing filter


def _gamma(image: np.ndarray, gamma: float) -> np.ndarray:
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** (1.0 / gamma), 0, 255).astype(np.uint8)
    return cv2.LUT(image, lut)


@pytest.fixture
def gamma_registered(monkeypatch):
    from nervseg import preprocess as pp

    monkeypatch.setattr(pp, "FILTERS", list(pp.FILTERS))  # put back afterwards (register mutates in place)
    monkeypatch.setattr(pp, "PARAMS", dict(pp.PARAMS))
    return pp.register(pp.Filter("gamma", _gamma, (pp.Param("gamma", "Gamma (test filter)", float, 0.0, 3.0, 0.1,
                                                            0.0, "0 = off."),), "gamma {gamma:g}"), before="clahe")


def test_a_filter_is_one_registry_entry_slider_and_applied(gamma_registered, random_model_dir, rng, monkeypatch):
    """A gamma filter added with `register`: a Preprocess setting, applied in its place, used by the
    segmenter, and a slider on the Lab page whose value becomes the active what-if."""
    from nervseg import preprocess as pp

    img = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    s = pp.Preprocess(gamma=2.0, median_kernel=3)
    assert s.describe() == "median 3, gamma 2" and not s.is_identity and pp.Preprocess().gamma == 0.0
    np.testing.assert_array_equal(pp.apply(img, s), _gamma(pp.median(img, 3), 2.0))
    assert pp.Preprocess.from_dict({"gamma": 1.5}).to_dict()["gamma"] == 1.5
    with pytest.raises(pp.PreprocessError, match="gamma must be between"):
        pp.Preprocess(gamma=4.0)
    seg = load("random-unet", models_dir=random_model_dir, engine="torch")
    by_hand = seg.predict(_gamma(img, 2.0), pp.Preprocess())
    np.testing.assert_array_equal(seg.predict(img, pp.Preprocess(gamma=2.0)).probs_small, by_hand.probs_small)

    monkeypatch.setenv("NERVSEG_MODELS", str(random_model_dir))
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.session_state["model_id"] = "random-unet"
    at.run()
    at.switch_page("views/lab.py").run()
    assert at.slider(key="lab_gamma").label == "Gamma (test filter)"
    assert len(at.slider) == len(pp.PARAMS)  # every registered setting has its slider
    _, png = cv2.imencode(".png", img)
    at.file_uploader[0].set_value(("scan.png", png.tobytes(), "image/png")).run()
    at.slider(key="lab_gamma").set_value(2.0).run()
    assert_clean(at)
    assert at.session_state["preprocess"]["gamma"] == 2.0
    assert any("what-if: gamma 2" in c.value for c in at.caption)


# ---------------------------------------------------------------- an inference engine


@pytest.fixture
def counting_engine(monkeypatch):
    """An engine class that counts its calls around torch, registered for this test only."""
    from nervseg.inference import engines

    monkeypatch.setattr(engines, "ENGINES", dict(engines.ENGINES))

    @engines.register
    class CountingEngine:
        name = "counting"
        auto = False  # only when asked for by name

        def __init__(self, inner):
            self.inner, self.device, self.model, self.calls = inner, inner.device, None, 0

        @classmethod
        def open(cls, card, device=None):
            return cls(engines.TorchEngine.open(card, device))

        def __call__(self, batch: np.ndarray) -> np.ndarray:
            self.calls += 1
            return self.inner(batch)

    return CountingEngine


def test_an_engine_is_one_class_registered_behind_the_protocol(counting_engine, random_model_dir, rng,
                                                               monkeypatch):
    """Selectable by name (argument and $NERVSEG_ENGINE), used by Segmenter, never chosen unasked,
    and measured by the benchmark like the shipped engines."""
    from nervseg import bench
    from nervseg.inference import engines
    from nervseg.inference.segmenter import Segmenter
    from nervseg.models.cards import get_card

    img = rng.integers(0, 256, (50, 60), dtype=np.uint8)
    seg = load("random-unet", models_dir=random_model_dir, engine="counting")
    assert seg.engine_name == "counting" and isinstance(seg.engine, engines.Engine)
    pred = seg.predict(img)
    assert seg.engine.calls == 1
    reference = load("random-unet", models_dir=random_model_dir, engine="torch").predict(img)
    np.testing.assert_array_equal(pred.probs_small, reference.probs_small)

    card = get_card("random-unet", random_model_dir)
    own = counting_engine.open(card)
    assert Segmenter(card, own).engine is own  # an engine instance is used as given, not wrapped
    assert load("random-unet", models_dir=random_model_dir).engine_name != "counting"  # auto = False
    monkeypatch.setenv("NERVSEG_ENGINE", "counting")
    assert load("random-unet", models_dir=random_model_dir).engine_name == "counting"
    monkeypatch.delenv("NERVSEG_ENGINE")

    assert "counting" in bench.engine_names() and "counting" in bench._parser().parse_args([]).engines
    r = bench.bench_one("random-unet", random_model_dir, runs=2, batch=2, video=None, video_frames=None,
                        random_weights=True, threads=1, engines=("counting",))
    assert r["engines"] == ["counting"] and r["counting_forward_ms_median"] > 0


def test_create_tries_automatic_engines_in_registry_order_and_says_why(monkeypatch, caplog):
    """Pure logic with stand-in engines: the first automatic engine that opens wins, a notable skip is
    logged, and when none opens the error names every reason."""
    import logging

    from nervseg.inference import engines
    from nervseg.models.cards import ModelCard, ModelError

    card = ModelCard(id="m", name="m", architecture="unet", classes=["background", "nerve"])

    def stand_in(name: str, why: str | None, notable: bool = False, auto: bool = True):
        class StandIn:
            device, model = "cpu", None

            @classmethod
            def open(cls, card, device=None):
                if why:
                    raise engines.Unavailable(why, notable)
                return cls()

            def __call__(self, batch):
                return batch

        StandIn.name, StandIn.auto = name, auto
        return StandIn

    monkeypatch.setattr(engines, "ENGINES", {})
    engines.register(stand_in("manual", None, auto=False))
    engines.register(stand_in("first", "its graph is stale", notable=True))
    engines.register(stand_in("second", None))
    with caplog.at_level(logging.WARNING, logger="nervseg.inference.engines"):
        assert engines.create(card).name == "second"
    assert "model m runs on second: its graph is stale" in caplog.text
    assert engines.create(card, "manual").name == "manual"
    with pytest.raises(ModelError, match="model m: its graph is stale"):
        engines.create(card, "first")
    engines.ENGINES["second"] = stand_in("second", "its package is not installed")
    with pytest.raises(ModelError, match="cannot run: its graph is stale, and its package is not installed"):
        engines.create(card)
    with pytest.raises(TypeError, match="no 'open'"):
        engines.register(type("Broken", (), {"name": "broken", "auto": True}))
