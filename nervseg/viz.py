"""Drawing: overlays, contours, heatmaps, error maps (arrays), and plotly charts."""

from __future__ import annotations

import cv2
import numpy as np

# RGB per class id; chosen to stay distinct on grey ultrasound and for red-green colour blindness.
CLASS_COLOURS: dict[int, tuple[int, int, int]] = {1: (255, 200, 0), 2: (230, 40, 120)}
CLASS_LABELS: dict[int, str] = {1: "nerve", 2: "vessel"}
ERROR_COLOURS = {"TP": (40, 200, 80), "FP": (230, 60, 200), "FN": (40, 160, 255)}


def to_rgb(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.45, colours=None) -> np.ndarray:
    """Grey image with each class id tinted in its colour at opacity `alpha`."""
    colours = colours or CLASS_COLOURS
    rgb = to_rgb(image).astype(np.float32)
    for cid, colour in colours.items():
        sel = mask == cid
        if sel.any():
            rgb[sel] = (1 - alpha) * rgb[sel] + alpha * np.asarray(colour, np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def contours(image: np.ndarray, mask: np.ndarray, thickness: int = 2, colours=None) -> np.ndarray:
    """Grey image with each class's outline drawn (OpenCV contours)."""
    colours = colours or CLASS_COLOURS
    rgb = np.ascontiguousarray(to_rgb(image))
    for cid, colour in colours.items():
        found, _ = cv2.findContours((mask == cid).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(rgb, found, -1, tuple(int(c) for c in colour), thickness)
    return rgb


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


def disagreement_map(image: np.ndarray, masks: list[np.ndarray], alpha: float = 0.6) -> np.ndarray:
    """Pixels where the given masks do not all agree, in red on the image."""
    stack = np.stack(masks)
    differ = (stack != stack[0]).any(axis=0)
    return overlay(image, differ.astype(np.uint8), alpha, {1: (255, 50, 50)})


def legend(classes: list[str]) -> list[tuple[str, str]]:
    """(label, hex colour) for each foreground class present in `classes`."""
    out = []
    for cid, name in enumerate(classes):
        if cid in CLASS_COLOURS:
            out.append((name, "#%02x%02x%02x" % CLASS_COLOURS[cid]))
    return out


def error_legend_html() -> str:
    """HTML key to error_map's colours (for st.markdown with unsafe_allow_html)."""
    chips = " ".join(f"<span style='color:#{r:02x}{g:02x}{b:02x}'>■</span> {k}" for k, (r, g, b) in ERROR_COLOURS.items())
    return chips + " (true positive, false positive, false negative)"


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


def histogram_figure(images: dict[str, np.ndarray]):
    """Grey-level histograms of several images on one plotly chart."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, img in images.items():
        counts = np.bincount(img.ravel(), minlength=256)
        fig.add_trace(go.Scatter(x=np.arange(256), y=counts, mode="lines", name=name))
    fig.update_layout(xaxis_title="grey level", yaxis_title="pixels", height=260, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def curves_figure(curves: dict):
    """Training loss and validation Dice per epoch (from a model card)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    ep = curves.get("epoch", [])
    fig.add_trace(go.Scatter(x=ep, y=curves.get("train_loss", []), name="training loss"), secondary_y=False)
    for key in (k for k in curves if k.startswith("val_dice_")):
        name = f"validation {key.removeprefix('val_dice_')} Dice"
        fig.add_trace(go.Scatter(x=ep, y=curves[key], name=name), secondary_y=True)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="loss", secondary_y=False)
    fig.update_yaxes(title_text="Dice", range=[0, 1], secondary_y=True)
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10))
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
    """Plotly line chart of a class's area (left axis) and confidence (right axis) per frame."""
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
            x=x, y=[r.get(f"{class_name}_confidence") for r in stats], name=f"{class_name} confidence",
            line=dict(dash="dot"),
        ),
        secondary_y=True,
    )
    if current is not None and 0 <= current < len(stats):
        fig.add_vline(x=stats[current]["time_s"], line_color="grey", line_dash="dash")
    fig.update_xaxes(title_text="time (s)")
    fig.update_yaxes(title_text="area (pixels)", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="mean probability", range=[0, 1], secondary_y=True)
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=1.1))
    return fig
