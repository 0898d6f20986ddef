"""Ground-truth metrics: score models on one image + mask or a batch, per class, with worst cases."""

import math

import pandas as pd
import streamlit as st

from dashboard import common as ac
from dashboard import scan
from nervseg import metrics
from nervseg.display import viz
from nervseg.evaluate import batch
from nervseg.io.readers import InputError
from nervseg.models import provenance

PUBLISHED_PROTOCOL = "Kaggle 2016 brachial-plexus data, held-out subjects"
PUBLISHED = [  # nerve Dice reported by others on the Kaggle 2016 brachial-plexus data
    ("Six-model study (Kaggle data)", "DenseNet", 0.3067),
    ("Six-model study (Kaggle data)", "VGG", 0.2668),
    ("Six-model study (Kaggle data)", "SK-U-Net", 0.2376),
    ("Six-model study (Kaggle data)", "U-Net", 0.1737),
    ("Student project (Kaggle data)", "U-Net", 0.618),
]

st.title("Ground-truth metrics")
all_cards = ac.cards()
card = ac.current_card()
if card is None:
    ac.no_models_notice()
    st.stop()

with st.expander("How empty masks are scored", expanded=False):
    st.markdown(metrics.__doc__.split("Empty-mask rule", 1)[1].split("\n", 1)[1])

labels = {c.id: c.name for c in all_cards}
default = [c.id for c in ac.same_task_cards(card)]
chosen = st.multiselect("Models", list(labels), default=default, format_func=labels.get, key="metrics_models",
                        help="Default: every model of the sidebar model's task.")
mode = st.radio("Ground truth", ["One image + mask", "Batch: several files or a zip"], horizontal=True,
                key="metrics_mode")
pre = ac.preprocess_dict()
st.caption(f"Preprocessing: {ac.preprocess_summary(card)} · each model's own decision (argmax) is scored.")


def predict(mid: str, pair: batch.BatchPair, image):
    return ac.cached_predict(mid, ac.image_hash(pair.image), image, pre)


rows, skipped, pairs = [], [], []
if mode.startswith("One"):
    picked = scan.image_picker("metrics")
    if picked is None:
        st.info("Upload a scan with its mask, or open a bundled sample (it comes with its mask).", icon=":material/upload:")
        st.stop()
    given = scan.mask_uploader("Ground-truth mask (PNG/TIFF: class ids 0/1/2, or 0/255)", "metrics_mask", picked)
    if given is None:
        st.info("Add the ground-truth mask of this scan.", icon=":material/upload:")
        st.stop()
    from nervseg.display.viz import png_bytes

    st.caption(f"Scored against **{ac.md_escape(given.name)}**.")

    pairs = [batch.BatchPair(picked.name.rsplit(".", 1)[0], picked.name, picked.data, "mask.png", png_bytes(given.mask))]
    with ac.user_errors():
        rows, skipped = batch.score_batch(predict, chosen, pairs, lambda m: ac.card_by_id(m).classes)
else:
    files = st.file_uploader("Images and masks (masks named <image>_mask.png/.tif), or one zip with images/ and masks/",
                             type=scan.UPLOAD_TYPES + ["zip"], accept_multiple_files=True, key="metrics_batch")
    if not files:
        st.info("Upload several images with their masks, or a zip.", icon=":material/upload:")
        st.stop()
    try:
        pairing = batch.pair_uploads([(f.name, f.getvalue()) for f in files])
    except ac.USER_ERRORS as e:
        ac.show_input_error(e)
        st.stop()
    if pairing.unmatched:
        st.warning(f"Without a partner, not scored: {ac.md_escape(', '.join(pairing.unmatched[:10]))}"
                   + ("…" if len(pairing.unmatched) > 10 else ""))
    pairs = pairing.pairs
    bar = st.progress(0.0, text=f"Scoring {len(pairs)} pairs with {len(chosen)} models…")
    with ac.user_errors():
        rows, skipped = batch.score_batch(predict, chosen, pairs, lambda m: ac.card_by_id(m).classes,
                                          progress=lambda d, t: bar.progress(d / t, text=f"Scored {d}/{t}"))
    bar.empty()

for reason in skipped:
    ac.show_input_error(InputError(reason))
if not chosen:
    st.info("Choose at least one model.")
    st.stop()
if not rows:
    st.stop()

SUMMARY_KEYS = [k for k in metrics.METRIC_KEYS if k != "specificity"]  # ~0.99 everywhere; in the CSV
HD95_HELP = "95th-percentile boundary distance in pixels (mm with DICOM spacing); ∞ when one mask is empty."


def worst_cases(df, pairs) -> None:
    """The three lowest nerve Dice images (one panel each, distinct images)."""
    st.subheader("Worst cases")
    worst = df[df["class"] == "nerve"].sort_values("dice").drop_duplicates("image").head(3)
    by_name = {p.image_name: p for p in pairs}
    cols = st.columns(max(1, len(worst)))
    for col, (_, r) in zip(cols, worst.iterrows()):
        pair = by_name.get(r["image"])
        if pair is None:
            continue
        item = batch.load_pair(pair)
        pred = predict(r["model"], pair, item.image)
        col.image(viz.error_map(item.image, pred.mask, item.mask, 1), width="stretch",
                  caption=f"{ac.md_escape(r['image'])} · {names[r['model']]} · nerve Dice {r['dice']:.3f}")
    st.markdown(viz.error_legend_html(), unsafe_allow_html=True)


def published(summary, image_names: list[str]) -> None:
    """Published figures, only beside our results on the same data and protocol."""
    ours = summary[summary["class"] == "nerve"]
    same = [m for m in ours["model"] if provenance.heldout_subject_images(ac.card_by_id(m), image_names)]
    st.subheader("Beside published results")
    if not same:
        st.caption(f"Published nerve Dice figures are on the {PUBLISHED_PROTOCOL}; they are shown only beside "
                   "results on kaggle-bp frames of subjects the model held out. These images are not that set.")
        return
    table = [{"source": "ours (this run)", "model": names[m], "nerve Dice": d}
             for m, d in zip(ours["model"], ours["dice_mean"]) if m in same]
    table += [{"source": f"theirs: {src}", "model": model, "nerve Dice": d} for src, model, d in PUBLISHED]
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch",
                 column_config={"nerve Dice": st.column_config.NumberColumn(format="%.4f"),
                                "source": st.column_config.TextColumn(width="large")})
    st.caption(f"Both on the {PUBLISHED_PROTOCOL}; theirs with their own splits and empty-mask handling. "
               "Compare with care.")


df = pd.DataFrame(rows)
names = {c.id: c.arch_display + (" (" + c.task + ")" if len({ac.card_by_id(m).task for m in chosen}) > 1 else "")
         for c in all_cards}
summary = pd.DataFrame(batch.summarise(rows))
n_images = df["image"].nunique()
for mid in chosen:
    seen = provenance.training_overlap(ac.card_by_id(mid), sorted(df["image"].unique()))
    if seen:
        st.warning(f"{ac.card_by_id(mid).name} trained on {len(seen)} of these {n_images} images "
                   f"({', '.join(seen[:10])}{'…' if len(seen) > 10 else ''}): their scores flatter it. "
                   "Score it on images it has not seen (e.g. the bundled samples).", icon=":material/warning:")
st.subheader(f"Results: {n_images} image{'s' if n_images != 1 else ''}")
for cname in df["class"].unique():
    st.markdown(f"**{cname}**")
    if n_images == 1:
        table = df[df["class"] == cname][["model", *SUMMARY_KEYS]].copy()
        table["model"] = table["model"].map(names)
        table["hd95"] = table["hd95"].map(lambda v: ac.fmt(v, 1))
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            **{k: st.column_config.NumberColumn(format="%.3f") for k in SUMMARY_KEYS if k != "hd95"},
            "hd95": st.column_config.TextColumn("HD95", help=HD95_HELP)})
        continue
    s = summary[summary["class"] == cname]
    shown = pd.DataFrame({"model": s["model"].map(names), "images": s["n_images"]})
    for k in SUMMARY_KEYS:
        digits = 1 if k == "hd95" else 3
        shown[k] = [f"{ac.fmt(m, digits)} ± {ac.fmt(sd, digits)}" for m, sd in zip(s[f"{k}_mean"], s[f"{k}_sd"])]
    shown["HD95 ∞"] = s["hd95_infinite"].values
    st.dataframe(shown, hide_index=True, width="stretch", column_config={
        "HD95 ∞": st.column_config.NumberColumn(help="Images where HD95 is ∞ (one of the two masks empty).")})
    pooled = pd.DataFrame({"model": s["model"].map(names),
                           **{f"{k} (pooled)": s[f"{k}_pooled"] for k in metrics.METRIC_KEYS if k != "hd95"}})
    st.dataframe(pooled, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.4f") for c in pooled.columns[1:]})
st.caption("Per-image mean ± sd (specificity, ~0.99 for any model, is in the CSV); pooled = from pixel counts summed "
           "over all images. HD95 in pixels (mm with DICOM spacing), its mean over images where it is finite.")

if n_images > 1:
    c1, c2 = st.columns([1, 3])
    metric = c1.selectbox("Chart metric", metrics.METRIC_KEYS, key="metrics_chart")
    cls = c1.selectbox("Class", list(df["class"].unique()), key="metrics_chart_class")
    chart = df[(df["class"] == cls) & df[metric].map(lambda v: v is not None and math.isfinite(v))].copy()
    chart["model"] = chart["model"].map(names)
    c2.plotly_chart(viz.metric_box_figure(chart.to_dict("records"), metric, "model"), width="stretch")

if n_images > 1:
    worst_cases(df, pairs)
st.download_button("Per-image results (CSV)", df.to_csv(index=False), "nervseg_metrics.csv", "text/csv")
published(summary, df["image"].unique().tolist())

