"""Every dashboard page through streamlit's AppTest, with the shipped models and real scans."""

from __future__ import annotations

import io
import re
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from apptest_checks import assert_clean, errors
from streamlit.testing.v1 import AppTest

import nervseg
from nervseg.evaluate import comparison
from dashboard import pages as app_pages

if str(Path(__file__).resolve().parent.parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dashboard import common as ac  # noqa: E402  (the app's own formatting rule)
from dashboard import (
    demo,  # noqa: E402
    )

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "streamlit_app.py"
PAGES = [p.path for p in app_pages.PAGES]
TIMEOUT = 300


def run_app(page: str | None = None, sidebar: list | None = None, **state) -> AppTest:
    """Run the app (Home first), then switch to `page`.

    AppTest keeps sidebar elements of the main script only on the first run of a
    session (a limitation of the test harness, not of the app: the browser test
    sees the sidebar on every page), so `sidebar` collects them from that run.
    """
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    if sidebar is not None:
        sidebar.extend([c.value for c in at.sidebar.caption] + [m.value for m in at.sidebar.markdown]
                       + [w.value for w in at.sidebar.warning])
        sidebar.extend(s.value for s in at.sidebar.selectbox)
        sidebar.extend(r.value for r in at.sidebar.radio)
    if page:
        at.switch_page(page).run()
    return at


def caption_with(at: AppTest, part: str) -> str:
    return next((c.value for c in at.caption if part in c.value), "")


def texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info])


@pytest.fixture(scope="module")
def model(shipped_cards):
    """One shipped card, preferring the Kaggle U-Net (the first one trained)."""
    by_id = {c.id: c for c in shipped_cards}
    return by_id.get("kaggle-bp-unet") or shipped_cards[0]


@pytest.fixture(scope="module")
def trio(shipped_cards):
    """A task with all three architectures shipped (skips otherwise)."""
    for task in ("kaggle-bp", "usgra"):
        group = [c for c in shipped_cards if c.task == task]
        if {c.architecture for c in group} >= {"unet", "densenet", "sk-unet"}:
            return group
    pytest.fail("no task has U-Net, DenseNet and SK-U-Net shipped in models/")


def scan_for(card, data_root) -> Path:
    if card.task == "usgra":
        return data_root / "usgra-seg" / "images" / "0003.png"
    return data_root / "kaggle-bp" / "images-256" / "images" / "10_1.png"


def mask_for(card, data_root) -> Path:
    if card.task == "usgra":
        return data_root / "usgra-seg" / "masks" / "0003.png"
    return data_root / "kaggle-bp" / "images-256" / "masks" / "10_1_mask.png"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(page, model):
    if not (ROOT / page).exists():
        pytest.skip(f"{page} not written yet")
    side = []
    at = run_app(page, sidebar=side, model_id=model.id)
    assert_clean(at)
    assert not errors(at)
    assert any("not a medical device" in str(s) for s in side)
    assert model.id in side  # the sidebar's model choice
    assert at.session_state["model_id"] == model.id


def test_no_models_is_stated_on_every_page(tmp_path, monkeypatch):
    monkeypatch.setenv("NERVSEG_MODELS", str(tmp_path))
    for page in PAGES:
        if not (ROOT / page).exists():
            continue
        side = []
        at = run_app(page, sidebar=side)
        assert_clean(at)
        assert any("No trained models yet" in str(s) for s in side)
        if page != "views/cine.py":
            assert any("No trained models yet" in i.value for i in at.info), page


def test_segment_shows_overlay_and_measurements(model, data_root):
    from nervseg.evaluate.measure import measure
    from nervseg.inference.segmenter import load
    from nervseg.io.readers import load_image

    path = scan_for(model, data_root)
    at = run_app("views/segment.py", model_id=model.id)
    at.file_uploader[0].set_value((path.name, path.read_bytes(), "image/png")).run()
    assert_clean(at)
    assert not errors(at)
    assert len(at.get("plotly_chart")) == 1 and path.name in caption_with(at, "preprocessing:")
    expected = measure(load(model.id).predict(load_image(path)).mask_at(0.5), model.classes)
    table = at.dataframe[0].value.set_index("measure")
    assert list(table.columns) == model.classes[1:]
    assert list(table.loc["area (px)"]) == [str(s.area_px) for s in expected]
    assert list(table.loc["parts"]) == [str(s.components) for s in expected]
    assert [m.label for m in at.metric] == model.classes[1:]
    # the chosen image stays when the user moves to another page and back
    at.switch_page("views/lab.py").run()
    assert_clean(at)
    at.switch_page("views/segment.py").run()
    assert path.name in caption_with(at, "preprocessing:")


def test_slider_change_on_a_segmented_image_reuses_the_cached_prediction(model, data_root, monkeypatch):
    """Opacity and threshold re-render from the cached prediction: the model does not run again.

    (The re-render time itself is a benchmark figure, printed here, not asserted.)
    """
    from nervseg.inference.segmenter import Segmenter

    calls = []
    original = Segmenter.predict_many

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Segmenter, "predict_many", counting)
    st.cache_data.clear()  # an earlier test may have cached this very scan in this process
    path = scan_for(model, data_root)
    at = run_app("views/segment.py", model_id=model.id)
    at.file_uploader[0].set_value((path.name, path.read_bytes(), "image/png")).run()
    assert_clean(at)
    after_first = len(calls)
    assert after_first >= 1
    timings = []
    for value in (0.2, 0.8, 0.6):
        t0 = time.perf_counter()
        at.slider(key="seg_opacity").set_value(value).run()
        timings.append(time.perf_counter() - t0)
        assert_clean(at)
    t0 = time.perf_counter()
    at.slider(key="seg_threshold").set_value(0.3).run()
    timings.append(time.perf_counter() - t0)
    assert_clean(at)
    print(f"\nslider re-render times (s): {[round(t, 3) for t in timings]}")
    assert len(calls) == after_first, "a display slider re-ran the model"


def test_compare_shows_all_three_models(trio, data_root):
    path = scan_for(trio[0], data_root)
    at = run_app("views/compare.py", model_id=trio[0].id)
    at.file_uploader[0].set_value((path.name, path.read_bytes(), "image/png")).run()
    assert_clean(at)
    heads = [m.value for m in at.markdown]
    for name in ("**U-Net**", "**DenseNet**", "**SK-U-Net**"):
        assert name in heads
    assert len(at.get("plotly_chart")) == 4 and len(at.image) == 1  # three panels + agreement; disagreement map
    latency = at.dataframe[0].value
    assert sorted(latency["model"]) == ["DenseNet", "SK-U-Net", "U-Net"]
    params = {c.arch_display: round(c.parameters / 1e6, 2) for c in trio}
    assert dict(zip(latency["model"], latency["parameters (M)"])) == params


def test_compare_with_ground_truth_and_a_mismatched_mask(trio, data_root, kaggle_pair, usgra_pair):
    card = next(c for c in trio if c.architecture == "unet")
    path, mask = scan_for(card, data_root), mask_for(card, data_root)
    at = run_app("views/compare.py", model_id=card.id)
    at.file_uploader[0].set_value((path.name, path.read_bytes(), "image/png")).run()
    at.file_uploader[1].set_value((mask.name, mask.read_bytes(), "image/png")).run()
    assert_clean(at)
    assert len(at.dataframe) == 2  # against the truth (first), latency
    truth_rows = at.dataframe[0].value
    assert sorted(set(truth_rows["model"])) == ["DenseNet", "SK-U-Net", "U-Net"]
    assert set(truth_rows["structure"]) == set(card.classes[1:])
    at.radio(key="cmp_view").set_value(f"Errors ({card.classes[1]})").run()
    assert_clean(at)
    assert any("false negative" in m.value for m in at.markdown)
    at.radio(key="cmp_view").set_value(f"All outlines ({card.classes[1]})").run()  # every model on one image
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 2  # the one image + agreement, not three panels
    legend = next(m.value for m in at.markdown if "one outline per model" in m.value)
    from nervseg.display import viz

    for k, c in enumerate(trio):  # each model named beside its outline colour, in the group's order
        assert f"{viz.model_colour_hex(k)};border-radius:50%'></span></span>{c.arch_display}" in legend
    other = usgra_pair[1] if card.task == "kaggle-bp" else kaggle_pair[1]
    at.file_uploader[1].set_value((other.name, other.read_bytes(), "image/png")).run()
    assert_clean(at)
    assert any("does not match" in e for e in errors(at))


def test_metrics_table_equals_nervseg_metrics(model, data_root):
    from nervseg import metrics
    from nervseg.inference.segmenter import load
    from nervseg.io.readers import load_image, load_mask

    path, mask = scan_for(model, data_root), mask_for(model, data_root)
    at = run_app("views/metrics.py", model_id=model.id)
    at.multiselect(key="metrics_models").set_value([model.id]).run()
    at.file_uploader[0].set_value((path.name, path.read_bytes(), "image/png")).run()
    at.file_uploader[1].set_value((mask.name, mask.read_bytes(), "image/png")).run()
    assert_clean(at)
    assert not errors(at)
    pred = load(model.id).predict(load_image(path)).mask
    truth = load_mask(mask)
    for cid, cname in enumerate(model.classes[1:], start=1):
        expected = metrics.score(pred, truth, cid)
        row = at.dataframe[cid - 1].value.iloc[0]
        absent = expected["tp"] + expected["fp"] + expected["fn"] == 0  # in neither mask: nothing to score
        for key in metrics.METRIC_KEYS:
            if key == "specificity":
                assert key not in row  # ~0.99 for any model: in the CSV only
            elif absent:
                assert row[key] == "n/a", (cname, key)
            else:
                assert row[key] == ac.fmt(expected[key], 1 if key == "hd95" else 3), (cname, key)
    assert "Empty-mask" in texts(at) or any("empty" in e.label.lower() for e in at.expander)


def test_metrics_batch_zip_and_bad_zips(model, data_root, make_zip):
    if model.task == "usgra":
        folder, stems, mname = data_root / "usgra-seg", ["0000", "0001", "0002"], "{}.png"
    else:
        folder, mname = data_root / "kaggle-bp" / "images-256", "{}_mask.png"
        stems = [p.stem for p in sorted((folder / "images").glob("*.png"))[:3]]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for s in stems:
            zf.write(folder / "images" / f"{s}.png", f"images/{s}.png")
            zf.write(folder / "masks" / mname.format(s), f"masks/{mname.format(s)}")
    at = run_app("views/metrics.py", model_id=model.id)
    at.multiselect(key="metrics_models").set_value([model.id]).run()
    at.radio(key="metrics_mode").set_value("Batch: several files or a zip").run()
    at.file_uploader(key="metrics_batch").set_value([("set.zip", buf.getvalue(), "application/zip")]).run()
    assert_clean(at)
    assert not errors(at)
    summary = at.dataframe[0].value
    assert list(summary["images"]) == [3]
    assert len(at.get("plotly_chart")) == 1
    for bad, reason in ((b"garbage", "not a zip"), (make_zip({"a.txt": b"x"}), "no images")):
        at.file_uploader(key="metrics_batch").set_value([("bad.zip", bad, "application/zip")]).run()
        assert_clean(at)
        assert any(reason in e for e in errors(at)), errors(at)



@pytest.mark.parametrize("page", ["views/segment.py", "views/compare.py", "views/lab.py", "views/metrics.py"])
@pytest.mark.parametrize("payload", [b"", b"this is not an image", b"\x89PNG\r\n\x1a\n\x00\x00truncated"])
def test_garbage_uploads_show_an_error(page, payload, model):
    at = run_app(page, model_id=model.id)
    at.file_uploader[0].set_value(("scan.png", payload, "image/png")).run()
    assert_clean(at)
    assert errors(at), f"{page}: no st.error for {payload[:12]!r}"


def test_lab_settings_apply_on_other_pages_until_reset(model, data_root):
    path = scan_for(model, data_root)
    at = run_app("views/lab.py", model_id=model.id)
    at.file_uploader[0].set_value((path.name, path.read_bytes(), "image/png")).run()
    at.slider(key="lab_clahe_clip").set_value(2.0).run()
    at.slider(key="lab_median_kernel").set_value(4).run()
    assert_clean(at)
    assert at.session_state["preprocess"]["clahe_clip"] == 2.0
    assert at.session_state["preprocess"]["median_kernel"] == 5  # even sizes move to the next odd one
    assert len(at.image) == 4 and len(at.get("plotly_chart")) == 1
    at.switch_page("views/segment.py").run()
    assert "what-if: median 5, CLAHE clip=2" in caption_with(at, "preprocessing:")
    side = []
    run_app(sidebar=side, preprocess=at.session_state["preprocess"], model_id=model.id)
    assert any("what-if: median 5, CLAHE clip=2" in str(s) for s in side)
    at.switch_page("views/lab.py").run()
    assert at.slider(key="lab_clahe_clip").value == 2.0
    at.button(key="lab_reset").click().run()
    assert_clean(at)
    assert at.session_state["preprocess"] is None
    assert at.slider(key="lab_clahe_clip").value == float(model.preprocess.get("clahe_clip", 0.0))


def test_lab_shows_dice_before_and_after_when_the_scan_has_its_mask(shipped_cards):
    from nervseg.data import samples

    card = next((c for c in shipped_cards if c.task == "usgra"), shipped_cards[0])
    s = samples.bundled()[0]
    at = run_app("views/lab.py", model_id=card.id)
    at.selectbox(key="lab_bundled").set_value(s.title).run()
    assert_clean(at)
    line = next(m.value for m in at.markdown if "Dice against" in m.value)
    assert s.mask.name in line
    pairs = re.findall(r"(\w+) (\d\.\d{3}) → <b>(\d\.\d{3})</b>", line)
    assert [p[0] for p in pairs] == card.classes[1:]
    assert all(before == after for _, before, after in pairs)  # no what-if yet: the same model, the same mask
    at.slider(key="lab_clahe_clip").set_value(4.0).run()
    assert_clean(at)
    assert "Dice against" in next(m.value for m in at.markdown if "Dice against" in m.value)


# ---------------------------------------------------------------- first sight: no data folder, no network


@pytest.fixture
def no_data(tmp_path, monkeypatch, shipped_cards):
    """As on a newcomer's laptop: no shared data folder, and every sample URL unreachable."""
    monkeypatch.setenv("NERVSEG_DATA", str(tmp_path / "no-data"))
    monkeypatch.setenv("NERVSEG_SAMPLES_URL", "http://127.0.0.1:9/")  # the discard port: nothing answers
    monkeypatch.setenv("NERVSEG_SAMPLES_CACHE", str(tmp_path / "cache"))
    st.cache_data.clear()
    return shipped_cards


def _bundled_with_vessel():
    from nervseg.data import samples

    items = samples.bundled()
    if not items:
        pytest.skip("no bundled samples in sample_images/")
    return items, next(s for s in items if "vessel" in s.structures)


def _open_from_gallery(stem: str) -> AppTest:
    at = run_app()
    at.button(key=f"home_open_{stem}").click().run()
    assert_clean(at)
    return at


def test_gallery_opens_a_sample_segmented_with_truth_dice_and_vessel(no_data):
    from nervseg import metrics
    from nervseg.evaluate.presence import assess
    from nervseg.inference.segmenter import load
    from nervseg.io.readers import load_image, load_mask
    from nervseg.models import provenance

    items, sample = _bundled_with_vessel()
    at = run_app()
    assert_clean(at)
    gallery = [b for b in at.button if str(b.key).startswith("home_open_")]
    assert len(gallery) == len(items) and len(at.image) >= len(items)
    default = provenance.default_card(no_data)
    assert at.session_state["model_id"] == default.id and "vessel" in default.classes

    at.button(key=f"home_open_{sample.stem}").click().run()  # one click: segmented on Segment
    assert_clean(at)
    assert not errors(at)
    assert sample.image.name in caption_with(at, "preprocessing:") and len(at.get("plotly_chart")) == 1
    truth, pred = load_mask(sample.mask), load(default.id).predict(load_image(sample.image)).mask  # the model's decision, as Compare scores it
    line = next(m.value for m in at.markdown if "Dice" in m.value)
    for cid, name in ((1, "nerve"), (2, "vessel")):
        assert f"{name} Dice **{ac.fmt(metrics.score(pred, truth, cid)['dice'])}**" in line
    assert any("ground truth:" in m.value and "outline" in m.value for m in at.markdown)
    shown = {m.label: (m.value, m.delta) for m in at.metric}
    assert shown["nerve"][0] == "found" and shown["vessel"][0] == "found"  # the default finds both
    # the card's presence block, as the library reads it: usgra calibrates vessels only (every image has a nerve)
    prediction = load(default.id).predict(load_image(sample.image))
    expected = {p.name: p for p in assess(prediction.probs, prediction.mask, default.classes,
                                          provenance.card_presence(default))}
    assert expected["vessel"].calibrated and not expected["nerve"].calibrated
    assert shown["vessel"][1] == demo.likelihood_text(expected["vessel"].probability)
    assert not shown["nerve"][1]  # no probability posing as confidence where none was calibrated


def test_home_opens_with_the_opening_models_result_and_segment_reuses_it(no_data, monkeypatch):
    """A newcomer sees a result before any click; opening it on Segment does not run the model again."""
    from nervseg import metrics
    from nervseg.data import samples
    from nervseg.inference.segmenter import Segmenter, load
    from nervseg.io.readers import load_image, load_mask
    from nervseg.models import provenance

    calls = []
    original = Segmenter.predict_many
    monkeypatch.setattr(Segmenter, "predict_many", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    default = provenance.default_card(no_data)
    seg = load(default.id)
    dice = {}  # the opening model's mean Dice over its structures on each bundled sample
    for s in samples.bundled():
        truth, pred = load_mask(s.mask), seg.predict(load_image(s.image)).mask
        dice[s.stem] = np.mean([metrics.score(pred, truth, cid)["dice"] for cid in range(1, len(default.classes))])
    median = np.median(list(dice.values()))
    ranked = sorted(dice, key=dice.get)  # sorted() is stable, as the app's rule
    typical = ranked[(len(ranked) - 1) // 2]  # the middle result; of two, the lower
    at = run_app()
    assert_clean(at)
    sample = next(s for s in samples.bundled() if s.stem == typical)
    assert demo.hero_sample(default).stem == typical
    assert any(ac.md_escape(sample.title) in m.value and default.name in m.value for m in at.markdown)
    said = caption_with(at, "typical case")
    assert f"({dice[typical]:.2f}, Dice averaged" in said and f"(median {median:.2f};" in said, said
    truth, pred = load_mask(sample.mask), load(default.id).predict(load_image(sample.image)).mask
    line = next(m.value for m in at.markdown if "against the expert's outline" in m.value)
    for cid, name in ((1, "nerve"), (2, "vessel")):
        assert f"{name} Dice **{ac.fmt(metrics.score(pred, truth, cid)['dice'])}**" in line
    assert len(at.image) == len(samples.bundled()) + 1  # the hero, then one thumbnail per sample
    made = len(calls)
    at.button(key="home_hero_open").click().run()
    assert_clean(at)
    assert sample.image.name in caption_with(at, "preprocessing:") and len(at.get("plotly_chart")) == 1
    assert len(calls) == made, "Segment re-ran the model on the hero sample"


def test_compare_scores_every_model_against_the_samples_truth(no_data):
    from nervseg import metrics
    from nervseg.inference.segmenter import load
    from nervseg.io.readers import load_image, load_mask

    _, sample = _bundled_with_vessel()
    at = _open_from_gallery(sample.stem)
    at.switch_page("views/compare.py").run()
    assert_clean(at)
    table = at.dataframe[0].value
    card = ac.card_by_id(ac.default_model_id(no_data))
    image, truth = load_image(sample.image), load_mask(sample.mask)
    for c in [c for c in no_data if c.task == card.task]:
        row = table[(table["model"] == c.arch_display) & (table["structure"] == "vessel")].iloc[0]
        assert row["dice"] == ac.fmt(metrics.score(load(c.id).predict(image).mask, truth, 2)["dice"])


def test_calibrated_presence_is_shown_with_what_it_was_measured_on(no_data, tmp_path, monkeypatch):
    import json
    import shutil

    from nervseg.evaluate.presence import assess
    from nervseg.inference.segmenter import load
    from nervseg.io.readers import load_image

    _, sample = _bundled_with_vessel()
    src = next(c for c in no_data if c.id == ac.default_model_id(no_data))
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(nervseg.models_dir() / src.weights_file, models / src.weights_file)
    card = json.loads(Path(src.path).read_text())
    card["presence"] = {name: {"score": "max_prob", "x": [0.0, 0.5, 1.0], "y": [0.0, 0.2, 0.9], "threshold": 0.6,
                               "method": "isotonic", "measured_on": "out-of-fold usgra-seg images",
                               "n_present": 170, "n_absent": 22,
                               "on_scans_with_it": {"n_images": 170, "found_share": 0.81}}
                        for name in ("nerve", "vessel")}
    why = "every one of the 192 images has it: no absent case to calibrate against"
    card["presence"]["nerve"] = {"not_calibrated": why, "measured_on": "out-of-fold usgra-seg images"}
    (models / f"{src.id}.json").write_text(json.dumps(card))
    monkeypatch.setenv("NERVSEG_MODELS", str(models))
    at = _open_from_gallery(sample.stem)
    pred = load(src.id).predict(load_image(sample.image))
    expected = assess(pred.probs, pred.mask_at(0.5), src.classes, card["presence"])
    shown = {m.label: m for m in at.metric}
    nerve = next(p for p in expected if p.name == "nerve")
    assert not nerve.calibrated and shown["nerve"].value == ("found" if nerve.marked else "not found")
    assert why in shown["nerve"].help and not shown["nerve"].delta
    for p in [p for p in expected if p.calibrated]:
        assert shown[p.name].value == ("found" if p.found else "doubtful" if p.marked else "not found")
        assert shown[p.name].delta == demo.likelihood_text(p.probability)
        assert "results on 192 scans it had not seen, 22 of them without one" in shown[p.name].help
        assert "On 170 scans that do show a vessel, this check said found for 81%" in shown[p.name].help
        assert ("the check doubts them" in shown[p.name].help) == (p.marked and not p.found)


def test_a_calibrated_probability_is_never_shown_as_certainty():
    # isotonic calibration on 192 scans gives its top bin 1.0: "100% likely" would claim what no data backs
    assert demo.likelihood_text(1.0) == demo.likelihood_text(0.996) == "over 99% likely"
    assert demo.likelihood_text(0.0) == "under 1% likely"
    assert demo.likelihood_text(0.42) == "42% likely" and demo.likelihood_text(0.994) == "99% likely"


def test_metrics_names_the_images_a_model_trained_on(no_data):
    _, sample = _bundled_with_vessel()
    card = ac.card_by_id(ac.default_model_id(no_data))
    from nervseg.models import provenance

    train_stem = next(f"{i:04d}" for i in range(300) if provenance.trained_on(card, f"{i:04d}.png"))
    for name, warned in ((f"{train_stem}.png", True), (sample.image.name, False)):
        at = run_app("views/metrics.py", model_id=card.id)
        at.multiselect(key="metrics_models").set_value([card.id]).run()
        at.file_uploader[0].set_value((name, sample.image.read_bytes(), "image/png")).run()
        at.file_uploader[1].set_value(("m.png", sample.mask.read_bytes(), "image/png")).run()
        assert_clean(at)
        warnings = [w.value for w in at.warning]
        assert any(name in w and "trained on" in w for w in warnings) == warned, warnings
        assert not any("Worst cases" in h.value for h in at.subheader)  # one image: no worst-case panels
        assert not any("source" in d.value.columns for d in at.dataframe)  # not the published protocol
        assert any("shown only beside" in c.value for c in at.caption)


def test_a_model_that_marks_nothing_on_an_unlike_scan_says_so(no_data):
    from nervseg.data import samples
    from nervseg.inference.segmenter import load
    from nervseg.io.readers import load_image
    from nervseg.models import provenance

    nerve_only = next((c for c in no_data if len(c.classes) == 2), None)
    if nerve_only is None:
        pytest.fail("no nerve-only model shipped")
    seg = load(nerve_only.id)
    empty = next((s for s in samples.bundled() if not seg.predict(load_image(s.image)).mask_at(0.5).any()), None)
    if empty is None:
        pytest.skip(f"{nerve_only.id} marks something on every bundled sample")
    at = run_app(model_id=nerve_only.id)
    at.button(key=f"home_open_{empty.stem}").click().run()
    assert_clean(at)
    notes = [i.value for i in at.info]
    assert any("marks nothing" in n and provenance.dataset_label(nerve_only) in n for n in notes), notes
    unlike = provenance.unlike_training(nerve_only, load_image(empty.image).shape)
    assert any("unlike" in n for n in notes) == unlike


def test_home_and_compare_state_the_architecture_comparison_with_its_source():
    """No bare ranking: each task's verdict and the 95% CIs, saying what data they come from."""
    at = run_app()
    assert_clean(at)
    verdicts = [i.value for i in at.info if "which architecture is better" in i.value]
    assert len(verdicts) == 2, verdicts
    captions = " ".join(c.value for c in at.caption)
    for task in ("kaggle-bp", "usgra"):
        comp = comparison.load(task)
        said = next((v for v in verdicts if comp.plain_source in v), None)
        assert said is not None, (task, verdicts)  # each verdict says where its figures come from
        assert all(sentence in said for sentence in comp.plain_verdicts()), (said, comp.plain_verdicts())
        assert comp.how_measured() in captions, (task, captions)
    table = at.dataframe[0].value
    assert table["nerve Dice"].str.match(r"^0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]$").all()
    at.switch_page("views/compare.py").run()
    assert_clean(at)
    assert any("which architecture is better" in i.value for i in at.info)


@pytest.mark.parametrize("page", ["views/segment.py", "views/compare.py"])
def test_a_mask_belongs_to_one_scan(page, shipped_cards, data_root):
    """A mask given for one scan never scores the next (same size) scan; a misnamed mask is named in a warning."""
    card = next((c for c in shipped_cards if c.task == "kaggle-bp"), None)
    if card is None:
        pytest.fail("no kaggle-bp model shipped")
    folder = data_root / "kaggle-bp" / "images-256"
    first, second = folder / "images" / "10_1.png", folder / "images" / "10_2.png"
    first_mask = folder / "masks" / "10_1_mask.png"
    at = run_app(page, model_id=card.id)
    at.file_uploader[0].set_value((first.name, first.read_bytes(), "image/png")).run()
    at.file_uploader[1].set_value((first_mask.name, first_mask.read_bytes(), "image/png")).run()
    assert_clean(at)
    shown = " ".join(e.value for e in [*at.markdown, *at.subheader, *at.caption])
    assert "nerve Dice **" in shown and first_mask.name in shown
    assert not at.warning or all("not named after" not in w.value for w in at.warning)

    at.file_uploader[0].set_value((second.name, second.read_bytes(), "image/png")).run()
    assert_clean(at)
    assert at.file_uploader[1].value is None  # a fresh uploader for the new scan
    shown = " ".join(e.value for e in [*at.markdown, *at.subheader, *at.caption])
    assert "Dice **" not in shown and first_mask.name not in shown  # no score of this scan

    at.file_uploader[1].set_value((first_mask.name, first_mask.read_bytes(), "image/png")).run()
    assert_clean(at)
    warned = [w.value for w in at.warning if "not named after" in w.value]
    assert warned and first_mask.name in warned[0] and second.name in warned[0]


def test_model_picker_follows_the_chosen_model(shipped_cards):
    """The sidebar radios are built from session_state["model_id"]: a click changes it, a group change
    opens that group's model, and a rerun keeps the choice."""
    groups = demo.model_groups(shipped_cards)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    first = at.session_state["model_id"]
    group = next(cs for cs in groups.values() if first in {c.id for c in cs})
    other = next(c.id for c in group if c.id != first)
    at.radio(key="_model_arch_radio").set_value(other).run()
    assert at.session_state["model_id"] == other
    at.run()
    assert at.session_state["model_id"] == other
    if len(groups) > 1:
        at2 = AppTest.from_file(str(APP), default_timeout=120)
        at2.run()
        radio = at2.radio(key="_model_group_radio")
        label = next(g for g in radio.options if g != radio.value)
        radio.set_value(label).run()
        assert at2.session_state["model_id"] in {c.id for c in groups[label]}


# ---------------------------------------------------------------- presenting (issue 26)


def test_presenter_mode_speaks_plainly_with_the_statistics_one_click_away(no_data):
    at = run_app(presenter=True)
    assert_clean(at)
    verdicts = [i.value for i in at.info if "which architecture is better" in i.value]
    assert verdicts and all("CI" not in v and "DEMONSTRATION" not in v and "pairwise" not in v for v in verdicts)
    assert all("kept out of training" in v or "a model trained without it" in v for v in verdicts)  # where from
    labels = [e.label for e in at.expander]
    assert any("statistics behind this" in lab for lab in labels) and any("95% confidence" in lab for lab in labels)
    assert "agreement with experts (nerve)" in at.dataframe[0].value.columns
    assert any("Agreement with the expert's outline" in m.value for m in at.markdown)
    assert not any("region not labelled" in c.value for c in at.caption)
    at.button(key=f"home_open_{demo.hero_sample(ac.card_by_id(ac.default_model_id(no_data))).stem}").click().run()
    assert_clean(at)
    assert any("coloured = what the model marks" in c.value for c in at.caption)
    assert any("Agreement with the expert's outline" in m.value for m in at.markdown)
    at.session_state["presenter"] = False
    at.run()
    assert any("preprocessing:" in c.value for c in at.caption)  # the engineer's caption is back


def test_metrics_models_follow_the_sidebar_group(shipped_cards):
    tasks = {}
    for c in shipped_cards:
        tasks.setdefault(c.task, []).append(c.id)
    if len(tasks) < 2:
        pytest.skip("one group of models shipped")
    (t1, ids1), (t2, ids2) = list(tasks.items())[:2]
    at = run_app("views/metrics.py", model_id=ids1[0])
    assert sorted(at.multiselect(key="metrics_models").value) == sorted(ids1)
    at.session_state["model_id"] = ids2[0]  # as the sidebar's group radio does
    at.run()
    assert_clean(at)
    assert sorted(at.multiselect(key="metrics_models").value) == sorted(ids2)


def test_metrics_batch_names_bad_files_scores_the_rest_and_says_which_model_is_better(no_data):
    """Loose images/x.png + masks/x.png (both sent as x.png), an empty file: the rest is scored and paired."""
    from nervseg.data import samples
    from nervseg.evaluate import batch, batch_compare
    from nervseg.inference.segmenter import load

    items = samples.bundled()
    card = ac.card_by_id(ac.default_model_id(no_data))
    group = [c for c in no_data if c.task == card.task]
    files = [(s.image.name, s.image.read_bytes(), "image/png") for s in items]
    files += [(s.mask.name, s.mask.read_bytes(), "image/png") for s in items]  # masks/0020.png arrives as 0020.png
    files.append(("9999.png", b"", "image/png"))
    at = run_app("views/metrics.py", model_id=card.id)
    at.radio(key="metrics_mode").set_value("Batch: several files or a zip").run()
    at.file_uploader(key="metrics_batch").set_value(files).run()
    assert_clean(at)
    assert any("9999.png" in e and "empty" in e for e in errors(at)), errors(at)
    assert any(f"Results: {len(items)} images" in h.value for h in at.subheader)
    pairs = batch.pair_files([(n, d) for n, d, _ in files[:-1]]).pairs
    segs = {c.id: load(c.id) for c in group}
    rows, _ = batch.score_batch(lambda m, p, img: segs[m].predict(img), [c.id for c in group], pairs,
                                lambda m: segs[m].classes)
    names = {c.id: c.arch_display for c in group}
    shown = " ".join(m.value for m in at.markdown)
    assert any("Which model is better" in h.value for h in at.subheader)
    for cls in ("nerve", "vessel"):
        for v in batch_compare.paired_verdicts(rows, cls):
            assert v.sentence(names) in shown
            table = next(e for e in at.expander if e.label == f"The figures behind the {cls} verdict").dataframe[0].value
            row = table[table["A vs B"] == f"{names[v.a]} vs {names[v.b]}"].iloc[0]
            assert row["A − B [95% CI]"] == (f"{v.paired.diff_mean:+.3f} [{v.paired.diff_ci95[0]:+.3f}, "
                                             f"{v.paired.diff_ci95[1]:+.3f}]")


def test_an_active_lab_setting_is_stated_on_other_pages_with_a_reset(model, data_root):
    path = scan_for(model, data_root)
    at = run_app("views/segment.py", model_id=model.id, preprocess={**model.preprocess, "clahe_clip": 2.0})
    at.file_uploader[0].set_value((path.name, path.read_bytes(), "image/png")).run()
    assert any("Preprocessing lab setting active" in w.value for w in at.warning)
    at.button(key="segment_lab_reset").click().run()
    assert_clean(at)
    assert at.session_state["preprocess"] is None
    assert not any("Preprocessing lab setting active" in w.value for w in at.warning)
    at.switch_page("views/compare.py").run()
    assert not any("Preprocessing lab setting active" in w.value for w in at.warning)


def test_compare_in_presenter_mode_states_agreement_in_words(no_data):
    from nervseg import metrics
    from nervseg.inference.segmenter import load
    from nervseg.io.readers import load_image, load_mask

    _, sample = _bundled_with_vessel()
    at = _open_from_gallery(sample.stem)
    at.session_state["presenter"] = True
    at.switch_page("views/compare.py").run()
    assert_clean(at)
    card = ac.card_by_id(at.session_state["model_id"])
    image, truth = load_image(sample.image), load_mask(sample.mask)
    captions = [c.value for c in at.caption if c.value.startswith("Agreement with the expert's outline")]
    group = [c for c in no_data if c.task == card.task]
    assert len(captions) == len(group)
    for c in group:
        pred = load(c.id).predict(image).mask
        words = " · ".join(f"{name} **{metrics.score(pred, truth, cid)['dice']:.0%}**"
                           for cid, name in enumerate(c.classes) if cid > 0)
        assert any(words in line for line in captions), (words, captions)
    assert not any(" ms · " in c.value for c in at.caption)  # no engineering figures in front


def test_live_runs_the_8bit_model_by_default_says_how_close_it_is_and_switches_off(shipped_cards):
    """Live opens on the card's int8 graph (issue 24's speed); its help gives the card's measured agreement,
    and the toggle puts the browser session's LiveSession on the full model."""
    from dashboard import live

    card = next(c for c in shipped_cards if c.task == "usgra")
    at = run_app("views/live.py", model_id=card.id)
    assert_clean(at)
    toggle = at.toggle(key=f"live_fast_{card.id}")
    assert toggle.value is True
    assert f"Measured on {card.int8['validation']['n_images']} scans not used to make it" in toggle.help and "masks agree" in toggle.help
    key, session = at.session_state[live.LIVE_KEY]
    assert key[-1] == "onnx-int8" and session.model_id == card.id
    assert session.processor.segmenter.engine_name == "onnx-int8"
    toggle.set_value(False).run()
    assert_clean(at)
    key, session = at.session_state[live.LIVE_KEY]
    assert key[-1] is None and session.processor.segmenter.engine_name == "onnx"
