"""Print the README's model table (markdown) from the shipped model cards."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nervseg.models.cards import available  # noqa: E402


def fmt(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def train_time(training: dict) -> str:
    """This run's minutes, plus those of the earlier stages its weights started from (CPU minutes where
    the card has them: the queue's jobs share a busy machine, so their wall time says little)."""
    if training.get("cpu_minutes") and not training.get("earlier_stages"):
        return f"{training['cpu_minutes']} CPU-min ({training.get('wall_minutes')} wall)"
    own = training.get("wall_minutes") or 0
    before = [s.get("wall_minutes") or 0 for s in training.get("earlier_stages", [])]
    if not before:
        return f"{own} min"
    return f"{own + sum(before):.1f} min ({' + '.join(str(m) for m in [*before, own])})"


def cv_cell(block: dict) -> str:
    """'0.746 [0.713, 0.774]' from a cross_validation class block."""
    lo, hi = block.get("dice_ci95") or (None, None)
    return f"{fmt(block.get('dice_mean'))} [{fmt(lo)}, {fmt(hi)}]"


def main() -> None:
    print("| model | classes | input | params | size | nerve Dice | vessel Dice | figures from | "
          "full-res Kaggle rule: as marked / with presence check | epochs | train time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for c in available():
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
              f"{train_time(t)}, {t.get('hardware')} |")


if __name__ == "__main__":
    main()
