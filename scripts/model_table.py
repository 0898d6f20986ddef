"""Print the README's model table (markdown) from the shipped model cards."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nervseg.models.cards import available  # noqa: E402


def fmt(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def train_time(training: dict) -> str:
    """This run's minutes, plus those of the earlier stages its weights started from."""
    own = training.get("wall_minutes") or 0
    before = [s.get("wall_minutes") or 0 for s in training.get("earlier_stages", [])]
    if not before:
        return f"{own} min"
    return f"{own + sum(before):.1f} min ({' + '.join(str(m) for m in [*before, own])})"


def main() -> None:
    print("| model | classes | input | params | size | nerve Dice (val, mean ± sd) | vessel Dice | "
          "full-res Kaggle rule (held-out subject 2) | epochs | train time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in available():
        pc = c.validation.get("per_class", {})
        nerve, vessel = pc.get("nerve", {}), pc.get("vessel", {})
        full = c.validation.get("fullres_kaggle_rule", {}).get("per_class", {}).get("nerve", {})
        n_val = c.validation.get("n_images", "?")
        nd = f"{fmt(nerve.get('dice_mean'))} ± {fmt(nerve.get('dice_sd'))} (n={n_val})"
        vd = f"{fmt(vessel.get('dice_mean'))} ± {fmt(vessel.get('dice_sd'))}" if vessel else "—"
        fd = f"{fmt(full.get('dice_mean'))} (n={c.validation['fullres_kaggle_rule']['n_images']})" if full else "—"
        t = c.training
        print(f"| `{c.id}` | {len(c.classes)} | {c.input_size[0]}x{c.input_size[1]} | {c.parameters / 1e6:.1f} M | "
              f"{c.weights_bytes / 1e6:.1f} MB | {nd} | {vd} | {fd} | {t.get('epochs_run')} (best {t.get('best_epoch')}) | "
              f"{train_time(t)}, {t.get('hardware')} |")


if __name__ == "__main__":
    main()
