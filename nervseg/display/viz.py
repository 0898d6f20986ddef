"""Drawing: overlays, contours, heatmaps, error maps (arrays), and plotly charts."""

from __future__ import annotations

import cv2
import numpy as np

# RGB per class id; chosen to stay distinct on grey ultrasound and for red-green colour blindness.
CLASS_COLOURS: dict[int, tuple[int, int, int]] = {1: (255, 200, 0), 2: (230, 40, 120)}
CLASS_LABELS: dict[int, str] = {1: "nerve", 2: "vessel"}
# Error maps: green / orange / blue, each far (CIE Lab) from both class colours, so an error is never read as a class.
ERROR_COLOURS = {"TP": (0, 190, 110), "FP": (255, 100, 0), "FN": (70, 170, 255)}
# Ground-truth outlines, drawn over a prediction: light tones distinct from the class tints.
TRUTH_COLOURS: dict[int, tuple[int, int, int]] = {1: (255, 255, 255), 2: (0, 230, 255)}
# Class ids 3, 4, ... (a task with more structures) take these in turn, tint and outline alike.
MORE_COLOURS: tuple[tuple[int, int, int], ...] = ((60, 200, 90), (255, 110, 40), (150, 110, 255), (0, 170, 170))


def class_colour(cid: int, truth: bool = False) -> tuple[int, int, int]:
    """The colour of class id `cid` (>= 1): the fixed ones for 1 and 2, then MORE_COLOURS in turn."""
    fixed = TRUTH_COLOURS if truth else CLASS_COLOURS
    return fixed[cid] if cid in fixed else MORE_COLOURS[(cid - 1 - len(fixed)) % len(MORE_COLOURS)]


def class_colours(largest: int, truth: bool = False) -> dict[int, tuple[int, int, int]]:
    """{class id: colour} for ids 1..largest (at least the fixed ones)."""
    fixed = TRUTH_COLOURS if truth else CLASS_COLOURS
    return {c: class_colour(c, truth) for c in range(1, max(int(largest), max(fixed)) + 1)}


def _colours_for(mask: np.ndarray, truth: bool = False) -> dict[int, tuple[int, int, int]]:
    return class_colours(int(mask.max()) if mask.size else 0, truth)

# One outline colour per model when several models' outlines share one image (Okabe-Ito, colour-blind safe).
MODEL_COLOURS: tuple[tuple[int, int, int], ...] = ((86, 180, 233), (230, 159, 0), (0, 200, 140), (204, 121, 167),
                                                   (240, 228, 66))
# The colour maps image_figure can draw a colour bar for, by plotly's name (the heatmaps use inferno).
COLOUR_MAPS = {"Inferno": cv2.COLORMAP_INFERNO}


def hex_colour(rgb: tuple[int, int, int]) -> str:
    """(255, 200, 0) -> '#ffc800' (legends)."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def to_rgb(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.45, colours=None) -> np.ndarray:
    """Grey image with each class id tinted in its colour at opacity `alpha`."""
    colours = colours or _colours_for(mask)
    rgb = to_rgb(image)
    for cid, colour in colours.items():  # float32 blend of the tinted pixels only; a blend of 0..255 stays in it
        sel = mask == cid
        if sel.any():
            rgb[sel] = ((1 - alpha) * rgb[sel].astype(np.float32) + alpha * np.asarray(colour, np.float32)).astype(np.uint8)
    return rgb


def contours(image: np.ndarray, mask: np.ndarray, thickness: int = 2, colours=None) -> np.ndarray:
    """Grey image with each class's outline drawn (OpenCV contours)."""
    colours = colours or _colours_for(mask)
    rgb = np.ascontiguousarray(to_rgb(image))
    for cid, colour in colours.items():
        found, _ = cv2.findContours((mask == cid).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(rgb, found, -1, tuple(int(c) for c in colour), thickness)
    return rgb


def truth_outline(rgb: np.ndarray, truth: np.ndarray, thickness: int = 2) -> np.ndarray:
    """Ground-truth outlines (TRUTH_COLOURS) drawn over an RGB view of the same size."""
    return contours(rgb, truth, thickness, _colours_for(truth, truth=True))


def entropy(probs: np.ndarray) -> np.ndarray:
    """Per-pixel uncertainty of (C, H, W) probabilities: entropy / log C, 0 = certain, 1 = uniform."""
    p = np.clip(probs.astype(np.float32), 1e-7, 1.0)
    return (-(p * np.log(p)).sum(axis=0) / np.log(max(2, probs.shape[0]))).astype(np.float32)


def heatmap(image: np.ndarray, prob: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """A class probability map (H, W, 0..1) in the inferno colour map, blended on the image."""
    heat = cv2.applyColorMap(np.clip(prob * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB).astype(np.float32)
    rgb = to_rgb(image).astype(np.float32)
    return np.clip((1 - alpha) * rgb + alpha * heat, 0, 255).astype(np.uint8)


def error_map(image: np.ndarray, pred: np.ndarray, true: np.ndarray, class_id: int = 1, alpha: float = 0.55) -> np.ndarray:
    """TP / FP / FN pixels of one class coloured on the image (see ERROR_COLOURS)."""
    p, t = pred == class_id, true == class_id
    codes = np.zeros(p.shape, np.uint8)
    codes[p & t], codes[p & ~t], codes[~p & t] = 1, 2, 3
    colours = {1: ERROR_COLOURS["TP"], 2: ERROR_COLOURS["FP"], 3: ERROR_COLOURS["FN"]}
    return overlay(image, codes, alpha, colours)


def model_outlines(image: np.ndarray, masks: list[np.ndarray], class_id: int, truth: np.ndarray | None = None,
                   thickness: int = 2) -> np.ndarray:
    """Every model's outline of one class on one image, model k in MODEL_COLOURS[k] (cycled); the
    ground truth's outline of that class in white underneath, thinner, when given."""
    rgb = np.ascontiguousarray(to_rgb(image))
    if truth is not None:
        rgb = contours(rgb, (truth == class_id).astype(np.uint8), max(1, thickness - 1), {1: TRUTH_COLOURS[1]})
    for k, mask in enumerate(masks):
        colour = MODEL_COLOURS[k % len(MODEL_COLOURS)]
        rgb = contours(rgb, (mask == class_id).astype(np.uint8), thickness, {1: colour})
    return rgb


def model_colour_hex(k: int) -> str:
    """The hex colour of model k's outline in model_outlines (for its legend)."""
    return hex_colour(MODEL_COLOURS[k % len(MODEL_COLOURS)])


def disagreement_map(image: np.ndarray, masks: list[np.ndarray], alpha: float = 0.6) -> np.ndarray:
    """Pixels where the given masks do not all agree, in red on the image."""
    stack = np.stack(masks)
    differ = (stack != stack[0]).any(axis=0)
    return overlay(image, differ.astype(np.uint8), alpha, {1: (255, 50, 50)})


def legend(classes: list[str]) -> list[tuple[str, str]]:
    """(label, hex colour) for each foreground class present in `classes`."""
    return [(name, hex_colour(class_colour(cid))) for cid, name in enumerate(classes) if cid > 0]


def burn_legend(rgb: np.ndarray, classes: list[str]) -> np.ndarray:
    """A copy of `rgb` with a small legend (colour chip + class name) in its bottom-left corner."""
    out = np.ascontiguousarray(rgb.copy())
    h, w = out.shape[:2]
    scale = max(0.4, min(1.0, w / 900))
    size = max(8, int(16 * scale))
    x, y = 8, h - 8
    for name, colour in reversed([(n, class_colour(c)) for c, n in enumerate(classes) if c > 0]):
        (tw, th), _ = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)
        cv2.rectangle(out, (x - 4, y - size - 4), (x + size + tw + 10, y + 4), (0, 0, 0), -1)
        cv2.rectangle(out, (x, y - size), (x + size, y), colour, -1)
        cv2.putText(out, name, (x + size + 6, y - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
        y -= size + 10
    return out
def swatch_html(colour: str, outline: bool = False) -> str:
    """A legend chip readable on light and dark themes: a filled square with a grey rim, or (`outline`) a
    ring of the colour on a dark chip, as an outline is drawn on the grey scan (a white ring stays visible
    on a white page)."""
    box = "display:inline-block;width:0.95em;height:0.95em;vertical-align:-0.12em;margin:0 0.3em 0 0.7em;"
    if outline:
        return (f"<span style='{box}background:#2b2b2b;border-radius:3px;box-shadow:0 0 0 1px #8a8a8a;"
                f"position:relative'><span style='position:absolute;inset:0.17em;border:2px solid {colour};"
                "border-radius:50%'></span></span>")
    return f"<span style='{box}background:{colour};border-radius:2px;box-shadow:0 0 0 1px #8a8a8a'></span>"


BOX_COLOUR = (0, 255, 0)  # annotation boxes: green, apart from the class and error colours


def draw_boxes(rgb: np.ndarray, boxes, colour: tuple[int, int, int] = BOX_COLOUR, thickness: int = 2) -> np.ndarray:
    """A copy of `rgb` with (x, y, width, height) annotation boxes drawn as rectangles."""
    out = np.ascontiguousarray(rgb.copy())
    for x, y, w, h in boxes:
        cv2.rectangle(out, (int(x), int(y)), (int(x + w - 1), int(y + h - 1)), colour, thickness)
    return out


def error_legend_html() -> str:
    """HTML key to error_map's colours (for st.markdown with unsafe_allow_html)."""
    words = {"TP": "true positive", "FP": "false positive", "FN": "false negative"}
    return " ".join(f"{swatch_html(hex_colour(rgb))}{k} ({words[k]})" for k, rgb in ERROR_COLOURS.items())


def side_by_side(*images: np.ndarray, gap: int = 6) -> np.ndarray:
    """Images of the same height in a row with a white gap (for downloads)."""
    rgbs = [to_rgb(i) for i in images]
    h = max(i.shape[0] for i in rgbs)
    parts = []
    for k, im in enumerate(rgbs):
        if im.shape[0] != h:
            im = cv2.resize(im, (round(im.shape[1] * h / im.shape[0]), h))
        parts.append(im)
        if k < len(rgbs) - 1:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
    return np.concatenate(parts, axis=1)


def png_bytes(array: np.ndarray) -> bytes:
    """Encode a grey or RGB uint8 array as PNG."""
    arr = array if array.ndim == 2 else cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


# ---------------------------------------------------------------- plotly charts


def histogram_figure(images: dict[str, np.ndarray], skip_black: bool = False, log: bool = False):
    """Grey-level histograms of several images on one plotly chart.

    `skip_black` leaves out level 0, the black border around the scan sector, whose
    spike would flatten the tissue's curve; `log` puts the counts on a log scale.
    """
    import plotly.graph_objects as go

    start = 1 if skip_black else 0
    fig = go.Figure()
    for name, img in images.items():
        counts = np.bincount(img.ravel(), minlength=256)[start:]
        fig.add_trace(go.Scatter(x=np.arange(start, 256), y=counts, mode="lines", name=name))
    fig.update_layout(xaxis_title="grey level" + (" (0, the black border, left out)" if skip_black else ""),
                      yaxis_title="pixels", height=300, margin=dict(l=10, r=10, t=10, b=10))
    if log:
        fig.update_yaxes(type="log")
    return fig


def fit_width(rgb: np.ndarray, max_width: int) -> np.ndarray:
    """Downscale (area interpolation) so the width is at most `max_width`: send no more than is shown."""
    h, w = rgb.shape[:2]
    if w <= max_width:
        return rgb
    return cv2.resize(rgb, (max_width, max(1, round(h * max_width / w))), interpolation=cv2.INTER_AREA)


def letterbox(image: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """`image` scaled to fit `size_wh` (aspect kept), centred on black: same-size gallery tiles."""
    w, h = size_wh
    ih, iw = image.shape[:2]
    scale = min(w / iw, h / ih)
    small = cv2.resize(image, (max(1, round(iw * scale)), max(1, round(ih * scale))), interpolation=cv2.INTER_AREA)
    out = np.zeros((h, w) + image.shape[2:], image.dtype)
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out


def colour_ramp(name: str, steps: int = 256) -> np.ndarray:
    """A (steps, 1, 3) RGB ramp of a COLOUR_MAPS map, 1 at the top and 0 at the bottom (a colour bar's pixels)."""
    values = np.linspace(255, 0, steps).astype(np.uint8)[:, None]
    return cv2.cvtColor(cv2.applyColorMap(values, COLOUR_MAPS[name]), cv2.COLOR_BGR2RGB)


def image_figure(rgb: np.ndarray, max_width: int = 900, height: int | None = None,
                 colour_scale: tuple[str, str] | None = None, hover: str = "x %{x}, y %{y}"):
    """A zoomable plotly view of an RGB (or grey) image, sent as PNG, at most `max_width` wide.

    Pixel coordinates stay those of the full image (axis scaled), so a hover reads the
    original position. `colour_scale` = (COLOUR_MAPS name, title) adds a 0..1 colour bar for a
    heatmap already blended into the image: drawn in the image's own axes, beside it, so it is
    exactly as tall as the image at any size.
    """
    import plotly.graph_objects as go

    h, w = rgb.shape[:2]
    small = fit_width(to_rgb(rgb) if rgb.ndim == 2 else rgb, max_width)
    sx = w / small.shape[1]
    fig = go.Figure(go.Image(source=_data_url(small), x0=0, dx=sx, y0=0, dy=sx, hovertemplate=hover + "<extra></extra>"))
    right = w
    if colour_scale:
        name, title = colour_scale
        ramp = colour_ramp(name)
        gap, bar = 0.03 * w, 0.05 * w
        fig.add_trace(go.Image(source=_data_url(np.repeat(ramp, 4, axis=1)), x0=w + gap, dx=bar / 4, y0=0,
                               dy=h / ramp.shape[0], hoverinfo="skip"))
        right = w + gap + bar
        for y, text, anchor in ((0, "1", "top"), (h, "0", "bottom")):
            fig.add_annotation(x=right, y=y, text=text, showarrow=False, xanchor="left", yanchor=anchor, xshift=3)
        fig.add_annotation(x=right, y=h / 2, text=title, textangle=-90, showarrow=False, xanchor="left",
                           yanchor="middle", xshift=3)  # upright beside the bar: never wider than the figure
        right += 0.08 * w  # room for the labels
    fig.update_xaxes(visible=False, range=[0, right], constrain="domain")
    fig.update_yaxes(visible=False, range=[h, 0], scaleanchor="x", constrain="domain", constraintoward="top")
    fig.update_layout(height=height or int(min(760, 720 * h / w)), margin=dict(l=0, r=0, t=0, b=0),
                      dragmode="pan", plot_bgcolor="rgba(0,0,0,0)", paper_bgcolor="rgba(0,0,0,0)")
    return fig


def _data_url(rgb: np.ndarray) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode()


def curves_figure(curves: dict):
    """Training loss and validation Dice per epoch (from a model card)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    # a final model trains on every fold, so it has no validation curve: then no Dice axis either
    validated = [k for k in curves if k.startswith("val_dice_") and any(v is not None for v in curves[k])]
    fig = make_subplots(specs=[[{"secondary_y": bool(validated)}]])
    ep = curves.get("epoch", [])
    fig.add_trace(go.Scatter(x=ep, y=curves.get("train_loss", []), name="training loss"))
    for key in validated:
        name = f"validation {key.removeprefix('val_dice_')} Dice"
        # a fold run with --val-every leaves gaps (None) on the epochs it did not validate
        fig.add_trace(go.Scatter(x=ep, y=curves[key], name=name, connectgaps=True), secondary_y=True)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="loss", secondary_y=False)
    if validated:
        fig.update_yaxes(title_text="Dice", range=[0, 1], secondary_y=True)
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=10, b=10),
                      legend=dict(orientation="h", yanchor="top", y=-0.25, x=0))
    return fig


def metric_box_figure(rows: list[dict], metric: str = "dice", by: str = "model"):
    """Per-image metric values as a box plot with points, one box per model."""
    import plotly.express as px

    fig = px.box(rows, x=by, y=metric, points="all", color=by)
    fig.update_layout(height=320, showlegend=False, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def dice_matrix_figure(names: list[str], matrix: np.ndarray):
    """Pairwise agreement (Dice) between models as an annotated heatmap."""
    import plotly.express as px

    fig = px.imshow(matrix, x=names, y=names, zmin=0, zmax=1, text_auto=".2f", color_continuous_scale="Viridis")
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def timeline_figure(stats: list[dict], class_name: str = "nerve", current: int | None = None):
    """Plotly line chart of a class's area (left axis) and mean probability over its marked pixels (right axis) per frame."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    x = [r["time_s"] for r in stats]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Scatter(x=x, y=[r.get(f"{class_name}_area_px") for r in stats], name=f"{class_name} area (px)"),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=x, y=[r.get(f"{class_name}_confidence") for r in stats], name=f"{class_name} mean probability (marked pixels)",
            line=dict(dash="dot"),
        ),
        secondary_y=True,
    )
    if current is not None and 0 <= current < len(stats):
        fig.add_vline(x=stats[current]["time_s"], line_color="grey", line_dash="dash")
    fig.update_xaxes(title_text="time (s)", tickformat=".1f")
    fig.update_yaxes(title_text="area (pixels)", rangemode="tozero", tickformat="~s", secondary_y=False)
    # fixed, readable ticks on the right: left alone they align to the area axis's grid (0.271, 0.542...)
    fig.update_yaxes(title_text="mean probability", range=[0, 1], tickmode="array",
                     tickvals=[0, 0.25, 0.5, 0.75, 1], ticktext=["0", "0.25", "0.5", "0.75", "1"], showgrid=False,
                     secondary_y=True)
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=1.1))
    return fig
