"""nervseg.display.viz: arrays with the right colours in the right places, and plotly figures."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from nervseg.display import viz


@pytest.fixture
def scene():
    img = np.full((40, 50), 100, np.uint8)
    mask = np.zeros((40, 50), np.uint8)
    mask[5:15, 5:15] = 1
    mask[20:30, 30:45] = 2
    return img, mask


def test_overlay_tints_only_mask_pixels(scene):
    img, mask = scene
    out = viz.overlay(img, mask, alpha=0.5)
    assert out.shape == (40, 50, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[mask == 0], 100)
    nerve = np.round(0.5 * 100 + 0.5 * np.array(viz.CLASS_COLOURS[1]))
    vessel = np.round(0.5 * 100 + 0.5 * np.array(viz.CLASS_COLOURS[2]))
    np.testing.assert_allclose(out[10, 10], nerve, atol=1)
    np.testing.assert_allclose(out[25, 40], vessel, atol=1)
    np.testing.assert_array_equal(viz.overlay(img, mask, alpha=0.0)[..., 0], img)


def test_overlay_equals_a_whole_frame_float_blend():
    """Blending only the tinted pixels gives what blending the whole frame in float32 gave, bit for bit."""
    rng = np.random.default_rng(3)
    for alpha in (0.0, 0.05, 0.45, 0.5, 0.95, 1.0, float(rng.random())):
        img = rng.integers(0, 256, (37, 53), dtype=np.uint8)
        mask = rng.integers(0, 3, img.shape).astype(np.uint8)
        ref = viz.to_rgb(img).astype(np.float32)
        for cid, colour in viz.CLASS_COLOURS.items():
            sel = mask == cid
            ref[sel] = (1 - alpha) * ref[sel] + alpha * np.asarray(colour, np.float32)
        np.testing.assert_array_equal(viz.overlay(img, mask, alpha), np.clip(ref, 0, 255).astype(np.uint8))
        np.testing.assert_array_equal(viz.overlay(np.dstack([img] * 3), mask, alpha),
                                      np.clip(ref, 0, 255).astype(np.uint8))


def test_contours_on_the_boundary_only(scene):
    img, mask = scene
    out = viz.contours(img, mask, thickness=1)
    changed = (out != viz.to_rgb(img)).any(axis=2)
    assert changed[5, 5:15].all()  # top edge of the nerve square
    assert not changed[10, 10]  # interior untouched
    assert not changed[0, 0]
    np.testing.assert_array_equal(out[5, 10], viz.CLASS_COLOURS[1])


def test_heatmap_brighter_where_probable():
    img = np.full((20, 20), 50, np.uint8)
    prob = np.zeros((20, 20), np.float32)
    prob[:, 10:] = 1.0
    out = viz.heatmap(img, prob, alpha=0.6)
    assert out.shape == (20, 20, 3)
    assert out[:, 10:].mean() > out[:, :10].mean() + 30


def test_error_map_colours(scene):
    img, truth = scene
    pred = np.zeros_like(truth)
    pred[5:15, 10:20] = 1  # half overlaps the truth square
    out = viz.error_map(img, pred, truth, class_id=1, alpha=1.0)
    np.testing.assert_array_equal(out[10, 12], viz.ERROR_COLOURS["TP"])
    np.testing.assert_array_equal(out[10, 17], viz.ERROR_COLOURS["FP"])
    np.testing.assert_array_equal(out[10, 7], viz.ERROR_COLOURS["FN"])
    np.testing.assert_array_equal(out[35, 2], (100, 100, 100))


def test_disagreement_map(scene):
    img, a = scene
    b = a.copy()
    b[5:15, 5:10] = 0
    out = viz.disagreement_map(img, [a, b, a], alpha=1.0)
    np.testing.assert_array_equal(out[10, 7], (255, 50, 50))
    np.testing.assert_array_equal(out[10, 12], (100, 100, 100))


def test_legend_and_side_by_side(scene):
    img, mask = scene
    assert viz.legend(["background", "nerve", "vessel"]) == [
        ("nerve", "#%02x%02x%02x" % viz.CLASS_COLOURS[1]),
        ("vessel", "#%02x%02x%02x" % viz.CLASS_COLOURS[2]),
    ]
    assert [n for n, _ in viz.legend(["background", "nerve"])] == ["nerve"]
    row = viz.side_by_side(img, viz.overlay(img, mask), np.zeros((20, 25), np.uint8), gap=4)
    assert row.shape == (40, 50 + 4 + 50 + 4 + 50, 3)
    assert (row[:, 50:54] == 255).all()


def test_png_bytes_round_trip(scene):
    img, mask = scene
    rgb = viz.overlay(img, mask)
    dec = cv2.cvtColor(cv2.imdecode(np.frombuffer(viz.png_bytes(rgb), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(dec, rgb)
    grey = cv2.imdecode(np.frombuffer(viz.png_bytes(img), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(grey, img)


def test_plotly_figures(scene):
    img, _ = scene
    fig = viz.histogram_figure({"raw": img, "other": img // 2})
    assert len(fig.data) == 2 and fig.data[0].y[100] == img.size
    curves = {"epoch": [1, 2, 3], "train_loss": [1.0, 0.7, 0.5], "val_dice_nerve": [0.2, 0.4, 0.5],
              "val_dice_vessel": [0.1, 0.3, 0.6], "seconds": [1, 2, 3]}
    fig = viz.curves_figure(curves)
    assert [t.name for t in fig.data] == ["training loss", "validation nerve Dice", "validation vessel Dice"]
    assert list(fig.data[2].y) == [0.1, 0.3, 0.6]
    assert list(fig.data[0].y) == [1.0, 0.7, 0.5]
    assert fig.layout.yaxis2.title.text == "Dice"
    final = {"epoch": [1, 2], "train_loss": [1.0, 0.7], "val_dice_nerve": [], "val_dice_vessel": [], "seconds": [1, 2]}
    fig = viz.curves_figure(final)  # a final model (trained on every fold): no validation curve, no Dice axis
    assert [t.name for t in fig.data] == ["training loss"] and "yaxis2" not in fig.layout
    rows = [{"model": m, "dice": d} for m, d in [("a", 0.5), ("a", 0.7), ("b", 0.9)]]
    assert len(viz.metric_box_figure(rows).data) == 2
    fig = viz.dice_matrix_figure(["a", "b"], np.array([[1.0, 0.6], [0.6, 1.0]]))
    assert fig.data[0].z.shape == (2, 2)


def test_entropy_is_zero_when_certain_and_one_when_uniform():
    probs = np.zeros((3, 2, 2), np.float32)
    probs[0] = 1.0
    probs[:, 1, 1] = 1 / 3
    e = viz.entropy(probs)
    assert e[0, 0] == pytest.approx(0.0, abs=1e-4) and e[1, 1] == pytest.approx(1.0, abs=1e-4)


def test_truth_outline_draws_only_on_the_boundary(scene):
    img, mask = scene
    out = viz.truth_outline(viz.to_rgb(img), mask, thickness=1)
    white = (out == viz.TRUTH_COLOURS[1]).all(axis=2)
    assert white.any() and (white <= (mask == 1)).all()  # outline within the structure
    assert not white[mask == 1].all()  # and not filled


def test_image_figure_sends_no_more_pixels_than_shown_and_keeps_coordinates():
    import base64

    rgb = np.zeros((600, 1200, 3), np.uint8)
    fig = viz.image_figure(rgb, max_width=400, colour_scale=("Inferno", "uncertainty"))
    src = fig.data[0].source
    png = cv2.imdecode(np.frombuffer(base64.b64decode(src.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert png.shape[:2] == (200, 400)
    assert fig.data[0].dx == pytest.approx(3.0)  # hover reads full-image pixels
    bar = fig.data[1]  # the colour bar: in the image's own axes, exactly its height, right of it
    assert bar.y0 == 0 and bar.dy * 256 == pytest.approx(600) and bar.x0 > 1200
    assert fig.layout.xaxis.range[1] > bar.x0 + 4 * bar.dx
    assert viz.image_figure(rgb[:100, :300], max_width=400).data[0].dx == 1.0


def test_histogram_can_leave_out_the_black_border(scene):
    img, _ = scene
    framed = np.zeros((img.shape[0] + 20, img.shape[1]), np.uint8)
    framed[10:-10] = img
    fig = viz.histogram_figure({"a": framed}, skip_black=True, log=True)
    assert fig.data[0].x[0] == 1 and sum(fig.data[0].y) == int((framed > 0).sum())
    assert fig.layout.yaxis.type == "log"


def test_burn_legend_marks_the_corner_only(scene):
    img, _ = scene
    rgb = viz.to_rgb(np.full((200, 300), 90, np.uint8))
    out = viz.burn_legend(rgb, ["background", "nerve", "vessel"])
    assert out.shape == rgb.shape and (out[:100] == rgb[:100]).all()
    for colour in viz.CLASS_COLOURS.values():
        assert (out == colour).all(axis=2).any()


def test_letterbox_keeps_aspect_on_black():
    img = np.full((100, 200), 200, np.uint8)
    box = viz.letterbox(img, (100, 100))
    assert box.shape == (100, 100)
    assert (box[25:75] == 200).all() and (box[:25] == 0).all() and (box[75:] == 0).all()
def test_timeline_figure_plots_area_and_confidence_per_frame():
    from nervseg.display.viz import timeline_figure

    stats = [{"time_s": i / 10, "nerve_area_px": 100 + i, "nerve_confidence": 0.5} for i in range(5)]
    fig = timeline_figure(stats, "nerve", current=2)
    area, conf = fig.data
    assert list(area.y) == [100, 101, 102, 103, 104] and list(conf.y) == [0.5] * 5
    assert list(area.x) == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert fig.layout.shapes[0].x0 == 0.2  # the current frame's marker


def _lab(rgb) -> np.ndarray:
    return cv2.cvtColor(np.array([[rgb]], np.float32) / 255, cv2.COLOR_RGB2Lab)[0, 0]


def test_error_colours_are_far_from_the_class_colours_and_each_other():
    """An error map is never read as a class: CIE76 distance >= 50 from every class colour (the old
    magenta false positive was 40 from the vessel's pink), and the three errors >= 50 apart."""
    errors = list(viz.ERROR_COLOURS.values())
    for e in errors:
        for c in viz.CLASS_COLOURS.values():
            assert np.linalg.norm(_lab(e) - _lab(c)) >= 50, (e, c)
    for i, a in enumerate(errors):
        for b in errors[i + 1:]:
            assert np.linalg.norm(_lab(a) - _lab(b)) >= 50, (a, b)


def test_model_outlines_draw_each_model_in_its_colour_on_its_own_boundary(scene):
    img, mask = scene
    other = np.zeros_like(mask)
    other[20:35, 25:45] = 1
    out = viz.model_outlines(img, [mask, other], class_id=1, truth=mask, thickness=1)
    for k, m in enumerate([mask, other]):
        drawn = (out == viz.MODEL_COLOURS[k]).all(axis=2)
        assert drawn.any() and (drawn <= (m == 1)).all(), k  # on the model's own structure, its boundary
        assert not drawn[m == 1].all()
    assert viz.model_colour_hex(0) == viz.hex_colour(viz.MODEL_COLOURS[0])
    plain = viz.model_outlines(img, [np.zeros_like(mask)], class_id=1)
    np.testing.assert_array_equal(plain, viz.to_rgb(img))  # nothing marked, nothing drawn


def test_colour_ramp_runs_from_one_at_the_top_to_zero():
    ramp = viz.colour_ramp("Inferno")
    assert ramp.shape == (256, 1, 3)
    assert ramp[0].sum() > ramp[-1].sum()  # inferno: bright at 1, black at 0


def test_swatches_have_a_rim_on_any_background():
    assert "#8a8a8a" in viz.swatch_html("#ffffff") and "#8a8a8a" in viz.swatch_html("#ffffff", outline=True)
    assert "#2b2b2b" in viz.swatch_html("#ffffff", outline=True)  # a white ring on a dark chip


def test_timeline_ticks_are_round_numbers():
    from nervseg.display.viz import timeline_figure

    stats = [{"time_s": i / 20, "nerve_area_px": 18450 * (i % 3), "nerve_confidence": 0.6} for i in range(166)]
    fig = timeline_figure(stats, "nerve")
    assert list(fig.layout.yaxis2.tickvals) == [0, 0.25, 0.5, 0.75, 1]  # not the area grid's 0.271, 0.542...
    assert fig.layout.xaxis.tickformat == ".1f"


def test_draw_boxes_outlines_each_box_and_leaves_the_rest():
    rgb = np.zeros((40, 50, 3), np.uint8)
    out = viz.draw_boxes(rgb, [(5, 6, 20, 10)], thickness=1)
    assert (out[6, 5:25] == viz.BOX_COLOUR).all() and (out[15, 5:25] == viz.BOX_COLOUR).all()
    assert (out[6:16, 5] == viz.BOX_COLOUR).all() and (out[6:16, 24] == viz.BOX_COLOUR).all()
    assert not out[7:15, 6:24].any() and not out[20:].any() and not rgb.any()  # inside and outside untouched
