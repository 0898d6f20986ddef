"""Ground-truth metrics: score models on one image + mask or a batch, per class, with worst cases."""

import math

import pandas as pd
import streamlit as st

from dashboard import common as ac
from dashboard import scan
from nervseg import metrics
from nervseg.display import viz
from nervseg.evaluate import batch, batch_compare
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
card = ac.require_card()
ac.lab_notice("metrics")

with st.expander("How empty masks are scored", expanded=False):
    st.markdown(metrics.__doc__.split("Empty-mask rule", 1)[1].split("\n", 1)[1])

labels = {c.id: c.name for c in all_cards}
default = [c.id for c in ac.same_task_cards(card)]
if st.session_state.get("metrics_models_group") != card.task:  # the sidebar's group changed: its models
    st.session_state["metrics_models_group"] = card.task
    st.session_state["metrics_models"] = default
chosen = st.multiselect("Models", list(labels), format_func=labels.get, key="metrics_models",
                        help="Every model of the sidebar's group; choosing another group in the sidebar "
                             "starts again from that group's models.")
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
    if pairing.errors:
        st.error("Not scored, the rest of the batch is:  \n" + "  \n".join(
            f"- {ac.md_escape(e)}" for e in pairing.errors[:20]) + ("  \n…" if len(pairing.errors) > 20 else ""),
            icon=":material/error:")
    if pairing.unmatched:
        st.warning(f"Without a partner, not scored: {ac.md_escape(', '.join(pairing.unmatched[:10]))}"
                   + ("…" if len(pairing.unmatched) > 10 else ""))
    pairs = pairing.pairs
    if not pairs:
        st.stop()
    bar = st.progress(0.0, text=f"Scoring {len(pairs)} pairs with {len(chosen)} models…")
    with ac.user_errors():
        rows, skipped = batch.score_batch(predict, chosen, pairs, lambda m: ac.card_by_id(m).classes,
                                          progress=lambda d, t: bar.progress(d / t, text=f"Scored {d}/{t}"))
    bar.empty()

if skipped:
    st.error("Skipped, the rest was scored:  \n" + "  \n".join(f"- {ac.md_escape(r)}" for r in skipped[:20])
             + ("  \n…" if len(skipped) > 20 else ""), icon=":material/error:")
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
summary = pd.DataFrame(batch.summarise(rows, skip_absent=True))
n_images = df["image"].nunique()
NA_NOTE = ("n/a: the structure is in neither the mask nor the prediction, so there is nothing to score "
           "(the empty-mask rule would say 1.000); such images are left out of the means.")
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
        one = df[df["class"] == cname]
        table = pd.DataFrame({"model": one["model"].map(names)})
        for k in SUMMARY_KEYS:
            table[k] = [("n/a" if absent else ac.fmt(v, 1 if k == "hd95" else 3))
                        for v, absent in zip(one[k], one["absent"], strict=True)]
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            "hd95": st.column_config.TextColumn("HD95", help=HD95_HELP)})
        if one["absent"].any():
            st.caption(NA_NOTE)
        continue
    s = summary[summary["class"] == cname]
    if s.empty:
        st.caption(f"n/a on every image: no {cname} in any mask nor any prediction. " + NA_NOTE)
        continue
    if s["n_absent"].any():
        st.caption(NA_NOTE + " Left out: " + ", ".join(
            f"{names[m]} {n} image{'s' if n != 1 else ''}" for m, n in zip(s["model"], s["n_absent"], strict=True) if n))
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
    chart = df[(df["class"] == cls) & (df["absent"] == 0)
               & df[metric].map(lambda v: v is not None and math.isfinite(v))].copy()
    chart["model"] = chart["model"].map(names)
    c2.plotly_chart(viz.metric_box_figure(chart.to_dict("records"), metric, "model"), width="stretch")

def paired_verdicts(rows) -> None:
    """Which model is better on these images: for each pair, the mean per-image Dice difference and its CI."""
    if len(chosen) < 2:
        return
    st.subheader("Which model is better on these scans?")
    for cname in df["class"].unique():
        verdicts = batch_compare.paired_verdicts(rows, cname)
        if not verdicts:
            continue
        st.markdown(f"**{cname}**: " + "; ".join(v.sentence(names) for v in verdicts) + ".")
        table = [{
            "A vs B": f"{names[v.a]} vs {names[v.b]}",
            f"{v.unit}": v.n_groups, "images": v.n_images,
            "mean Dice A": ac.fmt(v.paired.mean_a) if v.paired else "—",
            "mean Dice B": ac.fmt(v.paired.mean_b) if v.paired else "—",
            "A − B [95% CI]": (f"{v.paired.diff_mean:+.3f} [{v.paired.diff_ci95[0]:+.3f}, {v.paired.diff_ci95[1]:+.3f}]"
                               if v.paired else "—"),
            "verdict": v.sentence(names),
        } for v in verdicts]
        with st.expander(f"The figures behind the {cname} verdict", expanded=not ac.presenting()):
            st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")
            unit = verdicts[0].unit
            st.caption(f"Per-image Dice of A minus B on the same images (those whose mask holds a {cname}); "
                       f"95% CI by bootstrap over {unit}"
                       + (" (the number before the underscore in Kaggle names: frames of one subject are not "
                          "independent)" if unit == "subjects" else "")
                       + f". 'No clear difference' when the CI includes 0; no verdict under "
                       f"{batch_compare.MIN_GROUPS} {unit}.")


if n_images > 1:
    paired_verdicts(rows)
    worst_cases(df, pairs)
st.download_button("Per-image results (CSV)", df.to_csv(index=False), "nervseg_metrics.csv", "text/csv")
published(summary, df["image"].unique().tolist())

