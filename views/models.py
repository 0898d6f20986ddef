"""Models: one section per model card, everything read from the card."""

import pandas as pd
import streamlit as st

from dashboard import common as ac
from dashboard import demo
from nervseg.display import viz
from nervseg.inference import engines
from nervseg.models import provenance
from nervseg.models.cards import ARCHITECTURES
from nervseg.preprocess import Preprocess


def validation_table(per_class: dict) -> pd.DataFrame:
    """Key validation figures per class (the rest stays in the card's JSON below)."""
    rows = []
    for name, v in per_class.items():
        row = {"class": name}
        for key, label, digits in (("dice", "Dice", 3), ("sensitivity", "sensitivity", 3),
                                   ("precision", "precision", 3), ("hd95", "HD95", 1)):
            row[label] = f"{ac.fmt(v.get(f'{key}_mean'), digits)} ± {ac.fmt(v.get(f'{key}_sd'), digits)}"
        row["images with it"] = str(v.get("n_truth_nonempty", "—"))  # text like the others: one type per column
        rows.append(row)
    return pd.DataFrame(rows)


def cv_table(per_class: dict) -> pd.DataFrame:
    """Cross-validated figures per class: mean [95% CI] and the per-fold Dice (the rest stays in the JSON)."""
    rows = []
    for name, v in per_class.items():
        row = {"class": name}
        for key, label in (("dice", "Dice"), ("sensitivity", "sensitivity"), ("precision", "precision")):
            lo, hi = v.get(f"{key}_ci95") or (None, None)
            row[label] = f"{ac.fmt(v.get(f'{key}_mean'))} [{ac.fmt(lo)}, {ac.fmt(hi)}]"
        row["Dice per fold"] = " · ".join(ac.fmt(d, 2) for d in v.get("per_fold", []))
        row["images"] = str(v.get("n_images", "—"))
        rows.append(row)
    return pd.DataFrame(rows)


def presence_lines(presence: dict) -> list[str]:
    """One line per structure of the card's presence block: how "found" is decided and how well it did where
    it was fitted, or why it is not calibrated."""
    return [f"**{name}:** not calibrated ({b['not_calibrated']}); 'found' means pixels are marked"
            if "not_calibrated" in b else
            f"**{name}:** found at a calibrated probability of {float(b.get('threshold', 0.5)):.0%} or more "
            f"({b.get('method', '?')}; sensitivity {ac.fmt(b.get('sensitivity'), 2)}, specificity "
            f"{ac.fmt(b.get('specificity'), 2)} on {b.get('measured_on', '?')})" for name, b in presence.items()]


st.title("Model cards")
cards = ac.cards()
if not cards:
    ac.no_models_notice()
    st.stop()

current = ac.current_model_id()
st.caption("Every figure here comes from the JSON card beside each weights file in models/.")
for c in sorted(cards, key=lambda c: (c.id != current, c.id)):
    label = f"{c.name}  ·  `{c.id}`" + ("  (selected)" if c.id == current else "")
    with st.expander(label, expanded=c.id == current):
        spec = ARCHITECTURES.get(c.architecture)
        m1, m2, m3 = st.columns(3)  # figures only: a name in a metric's large type is cut short at 1024 px
        m1.metric("Parameters", f"{c.parameters / 1e6:.2f} M")
        m2.metric("Weights", f"{c.weights_bytes / 1e6:.1f} MB", help=f"{c.weights_dtype}, sha256 {c.weights_sha256[:16]}…")
        dice = c.quality_dice("nerve")
        m3.metric("Nerve Dice", ac.fmt(dice), help="Mean per-image Dice on held-out images [95% CI]: "
                  + demo.dice_with_ci(c.task, c.id, "nerve", dice) + ". " + demo.how_measured(c.task))
        st.markdown(
            f"**Finds · learnt from:** {provenance.group_label(c)}  \n"
            f"**Architecture:** {c.arch_display}: {spec.description if spec else c.architecture}  \n"
            f"**Input:** {c.input_size[0]}×{c.input_size[1]} (H×W) grey · "
            f"preprocessing: {Preprocess.from_dict(c.preprocess).describe()}  \n"
            f"**Classes:** {', '.join(c.classes)}"
        )
        with st.popover("Technical details (for engineers)"):
            st.markdown(f"smp `{c.smp_class}` · encoder `{c.encoder}`")
            st.json({"smp_kwargs": c.smp_kwargs, "normalisation": c.normalisation, "preprocess": c.preprocess,
                     "postprocess": c.postprocess}, expanded=True)
        left, right = st.columns(2)
        with left:
            st.markdown("**Training data**")
            data = dict(c.data)
            st.markdown(f"{data.pop('name', '–')}  \n*Licence:* {data.pop('licence', '–')}")
            split = data.pop("split", {})
            if split:
                with st.popover("Training split (JSON)"):
                    st.json({k: v for k, v in split.items() if k != "val_stems"}, expanded=True)
            st.markdown("**Training recipe**")
            recipe = {k: v for k, v in c.training.items() if k != "earlier_stages"}
            st.markdown("  \n".join(f"**{k.replace('_', ' ')}:** {v}" for k, v in recipe.items()))
            if c.recipe:
                with st.popover("Common recipe of the task (JSON)"):
                    st.caption("The same for the task's architectures, the folds and the shipped model.")
                    st.json(c.recipe, expanded=True)
            stages = c.training.get("earlier_stages") or []
            if stages:
                with st.popover(f"{len(stages)} earlier training stages"):
                    for stage in stages:
                        st.code(stage.get("command", ""), language="bash", wrap_lines=True)
            if c.command:
                st.caption("The command of the last training stage" + (f" ({len(stages) + 1} stages in all; "
                           "scripts/train_all.sh runs every stage)" if stages else "") + ":")
                st.code(c.command, language="bash", wrap_lines=True)
        with right:
            if c.curves.get("epoch"):
                st.markdown("**Training curves**")
                st.plotly_chart(viz.curves_figure(c.curves), width="stretch", key=f"curves_{c.id}")
            cv = c.cross_validation
            if cv.get("per_class"):
                st.markdown("**Cross-validated figures per class**")
                st.table(cv_table(cv["per_class"]).set_index("class").T.rename_axis("figure"))
                st.caption(f"Mean per image [95% CI, bootstrap over groups]; {demo.how_measured(c.task)}"
                           + ("" if cv.get("complete") else " Not every fold has run yet."))
                rule = cv.get("fullres_kaggle_rule")
                if rule:
                    st.caption(f"Competition rule (empty prediction on an empty mask = 1) on the {rule.get('n_images', '?')} "
                               f"full-resolution frames ({rule.get('n_empty', '?')} empty): {ac.fmt(rule.get('dice_mean'))} "
                               f"as marked, {ac.fmt(rule.get('dice_gated_cross_fitted'))} with the presence check "
                               "fitted without the frame's subject; marking nothing anywhere would score "
                               f"{ac.fmt(rule.get('dice_if_all_empty'))}.")
            if c.presence:
                st.markdown("**Presence check**")
                st.caption("  \n".join(presence_lines(c.presence)))
            per_class = c.validation.get("per_class", {})
            if per_class:
                st.markdown("**Validation metrics per class**")
                # one column per class, one row per figure: fits half the page at 1024 px without cutting a column
                st.table(validation_table(per_class).set_index("class").T.rename_axis("figure"))
                st.caption("Per-image mean ± sd on the card's validation images; HD95 in pixels.")
            if c.int8:
                st.markdown("**8-bit model for Live**")
                why = engines.problem("onnx-int8", c)
                st.caption((f"Not usable now: {ac.md_escape(why)}. Figures of the graph it was made as: " if why else "")
                           + ac.int8_agreement(c) + f" Made by `{c.int8.get('command', '')}`.")
            extra = {k: v for k, v in c.validation.items() if k != "per_class"}
            with st.popover("All validation figures (JSON)"):
                st.json({"per_class": per_class, **extra}, expanded=False)
        if c.notes:
            st.caption(c.notes)
