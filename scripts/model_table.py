"""Print the README's model table (markdown) from the shipped model cards."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nervseg.models.cards import available  # noqa: E402


def fmt(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def train_time(training: dict, cpu_of=lambda model_id: None) -> str:
    """This run's minutes, plus those of the earlier stages its weights started from: CPU minutes where
    every stage has them (the queue's jobs share a busy machine, so their wall time says little; an
    earlier stage's CPU minutes come from its own card through `cpu_of`), else wall minutes."""
    own_wall, own_cpu = training.get("wall_minutes") or 0, training.get("cpu_minutes")
    stages = training.get("earlier_stages", [])
    if own_cpu:
        before = [s.get("cpu_minutes") or cpu_of(s.get("id")) for s in stages]
        if not before:
            return f"{own_cpu} CPU-min ({own_wall} wall)"
        if all(before):
            return f"{own_cpu + sum(before):.1f} CPU-min ({' + '.join(str(m) for m in [*before, own_cpu])})"
    before = [s.get("wall_minutes") or 0 for s in stages]
    if not before:
        return f"{own_wall} min"
    return f"{own_wall + sum(before):.1f} min ({' + '.join(str(m) for m in [*before, own_wall])})"


def cv_cell(block: dict) -> str:
    """'0.746 [0.713, 0.774]' from a cross_validation class block."""
    lo, hi = block.get("dice_ci95") or (None, None)
    return f"{fmt(block.get('dice_mean'))} [{fmt(lo)}, {fmt(hi)}]"


def main() -> None:
    print("| model | classes | input | params | size | nerve Dice | vessel Dice | figures from | "
          "full-res Kaggle rule: as marked / with presence check | epochs | train time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    cards = available()
    cpu_of = {c.id: c.training.get("cpu_minutes") for c in cards}.get
    for c in cards:
        cv = c.cross_validation if c.cross_validation.get("complete") else {}
        if cv:  # out-of-fold means with group-bootstrap CIs (nervseg.cv.summary)
            pc = cv.get("per_class", {})
            nd = cv_cell(pc.get("nerve", {}))
            vd = cv_cell(pc["vessel"]) if "vessel" in pc else "—"
            source = f"{cv.get('k', '?')}-fold CV, {pc.get('nerve', {}).get('n_images', '?')} images"
            rule = cv.get("fullres_kaggle_rule", {})
            fd = (f"{fmt(rule.get('dice_mean'))} / {fmt(rule.get('dice_gated_cross_fitted'))} "
                  f"(n={rule.get('n_images', '?')}, out of fold)") if rule else "—"
        else:  # the card's own held-out split
            pc = c.validation.get("per_class", {})
            nerve, vessel = pc.get("nerve", {}), pc.get("vessel", {})
            nd = f"{fmt(nerve.get('dice_mean'))} ± {fmt(nerve.get('dice_sd'))}"
            vd = f"{fmt(vessel.get('dice_mean'))} ± {fmt(vessel.get('dice_sd'))}" if vessel else "—"
            source = f"held-out validation, {c.validation.get('n_images', '?')} images (mean ± sd)"
            full = c.validation.get("fullres_kaggle_rule", {}).get("per_class", {}).get("nerve", {})
            fd = f"{fmt(full.get('dice_mean'))} / — (n={c.validation['fullres_kaggle_rule']['n_images']})" if full else "—"
        t = c.training
        epochs = t.get("epochs_run") if cv else f"{t.get('epochs_run')} (best {t.get('best_epoch')})"
        print(f"| `{c.id}` | {len(c.classes)} | {c.input_size[0]}x{c.input_size[1]} | {c.parameters / 1e6:.1f} M | "
              f"{c.weights_bytes / 1e6:.1f} MB | {nd} | {vd} | {source} | {fd} | {epochs} | "
              f"{train_time(t, cpu_of)}, {t.get('hardware')} |")


if __name__ == "__main__":
    main()
