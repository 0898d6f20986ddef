"""Out-of-fold rows -> each model's `cross_validation` and `presence` blocks, and the paired comparison.

Writes splits/<task>-cv-summary.json ({"models": {id: {"cross_validation", "presence", ...}}}) and
splits/<task>-paired.json (every pair of architectures, per class: mean per-image Dice difference
on the same out-of-fold images, group-bootstrap CI, group sign-flip p-value, verdict), which the
app reads. Rows come from nervseg.cv (see ROW_KEYS there).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from nervseg.data import folds as fl
from nervseg.data.datasets import spec
from nervseg.evaluate import calibrate, stats

# Where presence is calibrated is the dataset spec's `presence_set`: a set needs empty frames for a
# true base rate (kaggle-bp's main set has none, so its full-resolution frames calibrate it).
METRICS = ("dice", "sensitivity", "precision")


class SummaryError(ValueError):
    """Rows missing or inconsistent for a summary."""


def load_oof(cv_root: Path, task: str) -> dict[str, list[dict]]:
    """{arch: rows} for every architecture with rows under cv_root/task: the queue's tracked
    fold<K>.csv files (splits/cv), else an oof.csv rebuilt from fold<K>/scores.csv (runs/cv)."""
    from nervseg.cv.run import CvRun, collect_oof, read_rows
    from nervseg.models.cards import ARCHITECTURES

    out = {}
    for arch in ARCHITECTURES:
        base = Path(cv_root) / task / arch
        tracked = sorted(base.glob("fold*.csv"))
        if tracked:
            out[arch] = [r for p in tracked for r in read_rows(p)]
            continue
        if any(base.glob("fold*/scores.csv")):  # rebuilt from the folds: parallel folds race on oof.csv
            collect_oof(CvRun(task, arch, cv_root=Path(cv_root)))
        if (base / "oof.csv").is_file():
            out[arch] = read_rows(base / "oof.csv")
    if not out:
        raise SummaryError(f"no out-of-fold rows under {Path(cv_root) / task}: run `python -m nervseg.cv run` first")
    return out


def class_block(rows: list[dict], k: int, seed: int = 0) -> dict:
    """One class's CV figures over its main-set rows: means, group-bootstrap CIs, per-fold means."""
    groups = [r["group"] for r in rows]
    folds = np.array([r["fold"] for r in rows])
    out: dict = {"n_images": len(rows)}
    for m in METRICS:
        vals = np.array([r[m] for r in rows], np.float64)
        mean, lo, hi = stats.group_bootstrap_ci(vals, groups, seed=seed)
        out[f"{m}_mean"], out[f"{m}_ci95"] = mean, [lo, hi]
        per_fold = [float(vals[folds == f].mean()) if (folds == f).any() else None for f in range(k)]
        out["per_fold" if m == "dice" else f"{m}_per_fold"] = per_fold
    return out


def cross_validation_block(rows: list[dict], k: int, grouping: str, folds_file: str) -> dict:
    main = [r for r in rows if r["set"] == "main"]
    done = sorted({r["fold"] for r in main})
    classes = sorted({r["class"] for r in main}, key=lambda c: (c != "nerve", c))
    return {"folds": folds_file, "k": k, "folds_scored": done, "complete": done == list(range(k)),
            "grouping": grouping, "scored_at": "each image's own resolution, after the card's post-processing",
            "per_class": {c: class_block([r for r in main if r["class"] == c], k) for c in classes}}


def gated_dice(rows: list[dict], found) -> np.ndarray:
    """Per-image Dice when a mask is emptied where presence says "not found" (empty-on-empty = 1)."""
    d = np.array([r["dice"] for r in rows], np.float64)
    empty_truth = np.array([r["truth_empty"] for r in rows], bool)
    return np.where(np.asarray(found, bool), d, empty_truth.astype(np.float64))


def presence_for_class(rows: list[dict], measured_on: str) -> tuple[dict | None, dict]:
    """(card presence entry or None, gating figures) for one class's rows of the presence set."""
    scores = [r["presence"] for r in rows]
    present = [not r["truth_empty"] for r in rows]
    groups = [r["group"] for r in rows]
    unit = "group" if len(set(groups)) > 1 else "image"
    info: dict = {"n_images": len(rows), "n_present": int(sum(present)),
                  "dice_ungated": float(np.mean([r["dice"] for r in rows]))}
    if all(present) or not any(present):
        info["not_calibrated"] = (f"every one of the {len(rows)} images has it: no absent case to calibrate against"
                                  if all(present) else
                                  f"none of the {len(rows)} images has it: no present case to calibrate against")
        return None, info
    try:
        block = calibrate.fit_presence(scores, present, "isotonic", measured_on)
    except calibrate.CalibrationError as e:
        info["not_calibrated"] = str(e)
        return None, info
    found_in = [calibrate.calibrated_probability(block, s) >= block["threshold"] for s in scores]
    xf = calibrate.cross_fitted(scores, present, groups if unit == "group" else np.arange(len(rows)))
    info.update({"dice_gated_in_sample": float(gated_dice(rows, found_in).mean()),
                 "dice_gated_cross_fitted": float(gated_dice(rows, xf["found"]).mean()),
                 "cross_fitted_by": f"leave one {unit} out",
                 "cross_fitted_sensitivity": xf["sensitivity"], "cross_fitted_specificity": xf["specificity"]})
    return block, info


def presence_blocks(rows: list[dict], task: str, source: str) -> tuple[dict, dict]:
    """({class: presence entry}, {class: gating figures}) from one model's out-of-fold rows."""
    set_name = spec(task).presence_set
    sel = [r for r in rows if r["set"] == set_name]
    measured_on = f"{len({r['stem'] for r in sel})} {task} {set_name} images, {source}"
    blocks, gating = {}, {}
    for c in sorted({r["class"] for r in sel}):
        block, info = presence_for_class([r for r in sel if r["class"] == c], measured_on)
        gating[c] = info
        if block is None:  # said in the card, so the app can say why there is no probability
            blocks[c] = {"not_calibrated": info["not_calibrated"], "measured_on": measured_on}
        else:
            blocks[c] = block
            if set_name != "main":  # what the gate fitted there does to the main set (kaggle-bp: all present)
                info["main_set"] = effect = gate_effect([r for r in rows if r["set"] == "main" and r["class"] == c], block)
                if effect["specificity"] is None:  # the main set all shows it: how often the check agrees, for the app
                    block["on_scans_with_it"] = {"n_images": effect["n_images"], "found_share": effect["sensitivity"]}
    return blocks, gating


def gate_effect(rows: list[dict], block: dict) -> dict:
    """Detection and Dice on `rows` when `block`'s threshold gates them."""
    found = [calibrate.calibrated_probability(block, r["presence"]) >= block["threshold"] for r in rows]
    present = [not r["truth_empty"] for r in rows]
    sens, spec = calibrate.detection(np.asarray(found, float), present, 0.5)
    return {"n_images": len(rows), "sensitivity": sens, "specificity": None if np.isnan(spec) else spec,
            "dice_ungated": float(np.mean([r["dice"] for r in rows])), "dice_gated": float(gated_dice(rows, found).mean())}


def kaggle_rule(rows: list[dict]) -> dict:
    """The Kaggle rule (mean Dice, empty-on-empty = 1) on the extra set's frames (kaggle-bp: full resolution),
    overall and per subject."""
    full = [r for r in rows if r["set"] != "main" and r["class"] == "nerve"]
    if not full:
        return {}
    per = {g: float(np.mean([r["dice"] for r in full if r["group"] == g])) for g in sorted({r["group"] for r in full})}
    n_empty = sum(r["truth_empty"] for r in full)
    return {"n_images": len(full), "n_empty": n_empty, "dice_mean": float(np.mean([r["dice"] for r in full])),
            "per_subject": per,
            "dice_if_all_empty": n_empty / len(full)}  # what marking nothing anywhere scores: the bar a gate must clear


def paired_block(by_arch: dict[str, list[dict]], seed: int = 0) -> list[dict]:
    """Every pair of architectures, per class, on the main-set images both scored."""
    out = []
    for a, b in itertools.combinations(sorted(by_arch), 2):
        ra = {(r["stem"], r["class"]): r for r in by_arch[a] if r["set"] == "main"}
        rb = {(r["stem"], r["class"]): r for r in by_arch[b] if r["set"] == "main"}
        keys = sorted(set(ra) & set(rb))
        for c in sorted({key[1] for key in keys}, key=lambda c: (c != "nerve", c)):
            ks = [key for key in keys if key[1] == c]
            p = stats.paired_comparison(a, b, [ra[key]["dice"] for key in ks], [rb[key]["dice"] for key in ks],
                                        [ra[key]["group"] for key in ks], seed=seed)
            out.append({"class": c, "metric": "per-image Dice", **p.to_dict()})
    return out


def summarise(task: str, by_arch: dict[str, list[dict]], k: int, grouping: str, folds_file: str,
              source: str = "out-of-fold predictions of grouped cross-validation") -> tuple[dict, dict]:
    """(summary, paired) dictionaries for a task."""
    models = {}
    for arch, rows in sorted(by_arch.items()):
        presence, gating = presence_blocks(rows, task, source)
        entry = {"cross_validation": {**cross_validation_block(rows, k, grouping, folds_file), "source": source},
                 "presence": presence, "presence_gating": gating}
        rule = kaggle_rule(rows)
        if rule:
            nerve = gating.get("nerve", {})
            rule.update({k2: nerve[k2] for k2 in ("dice_gated_in_sample", "dice_gated_cross_fitted") if k2 in nerve})
            entry["fullres_kaggle_rule"] = rule
        models[f"{task}-{arch}"] = entry
    paired = {"task": task, "folds": folds_file, "source": source, "rule": stats.NO_CLEAR_DIFFERENCE +
              " when the 95% CI of the mean difference contains 0 (CI: bootstrap over groups, 2000 draws)",
              "pairs": paired_block(by_arch)}
    return {"task": task, "models": models}, paired


def near_duplicate_split(rows: list[dict], train_stems: set[str], groups: dict[str, str]) -> dict:
    """Per class, mean Dice of the main-set images with and without a near-duplicate (same group) in training.

    Measures how much a split by image leaks: the held-out images whose twin trained score higher.
    """
    twins = {g for s, g in groups.items() if s in train_stems}
    out = {}
    for c in sorted({r["class"] for r in rows if r["set"] == "main"}):
        sel = [r for r in rows if r["set"] == "main" and r["class"] == c]
        with_twin = [r["dice"] for r in sel if groups.get(r["stem"]) in twins]
        without = [r["dice"] for r in sel if groups.get(r["stem"]) not in twins]
        out[c] = {"n_with_twin_in_training": len(with_twin), "n_without": len(without),
                  "dice_with_twin": float(np.mean(with_twin)) if with_twin else None,
                  "dice_without": float(np.mean(without)) if without else None}
    return out


def _add_leak_check(summary: dict, task: str, by_arch: dict, models_dir: Path | None) -> None:
    """Split each shipped model's held-out figure by near-duplicates in its training split (tasks whose
    fold groups are near-duplicate clusters; cards split by image)."""
    from nervseg.models.cards import ModelError, get_card

    groups = fl.read(fl.folds_path(task)).groups
    for arch, rows in by_arch.items():
        try:
            val = set(get_card(f"{task}-{arch}", models_dir).data["split"]["val_stems"])
        except (ModelError, KeyError):  # no such card, or one without an image-level split
            continue
        summary["models"][f"{task}-{arch}"]["near_duplicate_split"] = near_duplicate_split(
            rows, set(groups) - val, groups)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def build(task: str, cv_root: Path, heldout: bool = False, models_dir: Path | None = None) -> tuple[dict, dict]:
    """(summary, paired) of the rows under cv_root, in memory."""
    by_arch = load_oof(cv_root, task)
    if heldout:
        summary, paired = summarise(task, by_arch, 1, "the shipped models' own held-out split (see each card)",
                                    "the card's data.split",
                                    source="DEMONSTRATION: one held-out split that also chose the epoch, not CV")
        if spec(task).folds.groups == "similarity":
            _add_leak_check(summary, task, by_arch, models_dir)
        return summary, paired
    path = fl.folds_path(task)
    ff = fl.read(path)
    return summarise(task, by_arch, ff.k, ff.grouping, f"splits/{path.name}")


def write_files(task: str, summary: dict, paired: dict, out_dir: Path) -> tuple[Path, Path]:
    """<task>-cv-summary.json and <task>-paired.json in out_dir (what the app reads)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    s_path, p_path = out_dir / f"{task}-cv-summary.json", out_dir / f"{task}-paired.json"
    s_path.write_text(json.dumps(summary, indent=1) + "\n")
    p_path.write_text(json.dumps(paired, indent=1) + "\n")
    return s_path, p_path


def write(task: str, cv_root: Path, out_dir: Path, heldout: bool = False,
          models_dir: Path | None = None) -> tuple[Path, Path]:
    """Summarise the rows under cv_root and write <task>-cv-summary.json and <task>-paired.json to out_dir."""
    summary, paired = build(task, cv_root, heldout, models_dir)
    s_path, p_path = write_files(task, summary, paired, out_dir)
    print(f"wrote {s_path} and {p_path}")
    for mid, e in summary["models"].items():
        for c, b in e["cross_validation"]["per_class"].items():
            print(f"{mid:22s} {c:7s} n={b['n_images']:4d} Dice {b['dice_mean']:.3f} "
                  f"[{b['dice_ci95'][0]:.3f}, {b['dice_ci95'][1]:.3f}]")
        for c, b in e.get("near_duplicate_split", {}).items():
            print(f"{mid:22s} {c:7s} with a near-duplicate in training n={b['n_with_twin_in_training']} "
                  f"Dice {_num(b['dice_with_twin'])}; without n={b['n_without']} {_num(b['dice_without'])}")
    for p in paired["pairs"]:
        print(f"{p['class']:7s} {p['a']} - {p['b']}: {p['diff_mean']:+.3f} [{p['diff_ci95'][0]:+.3f}, "
              f"{p['diff_ci95'][1]:+.3f}] p={p['p_value']:.3f} -> {p['verdict']}")
    return s_path, p_path


# TrainConfig fields that say where and how a run happened, not what was trained
RUN_SPECIFIC = ("out", "runs", "resume", "fold", "data", "threads", "device", "id", "split_file")


def recipe_of(card: dict) -> dict | None:
    """A card's recipe (top level, as the train CLI writes it)."""
    return card.get("recipe")


def check_same_recipe(final: dict, fold_card: dict) -> None:
    """SummaryError unless the final model was trained as the fold models were (but for run-specific fields)."""
    a, b = recipe_of(final), recipe_of(fold_card)
    if not a:
        raise SummaryError(f"{final.get('id')} has no recipe: train the final models with the common recipe first "
                           "(scripts/cv_all.sh STEP=final)")
    if b is None:  # no fold card at hand (only the scores came back): nothing to compare
        return
    diff = sorted(k for k in set(a) | set(b) if k not in RUN_SPECIFIC and a.get(k) != b.get(k))
    if diff:
        raise SummaryError(f"{final.get('id')}: final model and fold models differ in {diff}; CV figures not copied")


def patched_cards(task: str, summary: dict, models_dir: Path, cv_root: Path | None = None) -> dict[Path, dict]:
    """{card path: card with the summary's cross_validation and presence blocks}, nothing written.

    SummaryError unless the summary is a complete cross-validation and each final model was trained
    as the fold models were (checked against every fold card at hand under cv_root: the queue's
    tracked fold<K>.json, or runs/cv's fold<K>/<id>.json).
    """
    from nervseg.cv.run import CV_ROOT

    cards = {}
    for mid, e in summary["models"].items():
        cv = e["cross_validation"]
        if not cv.get("complete") or cv.get("source", "").startswith("DEMONSTRATION"):
            raise SummaryError(f"{mid}: summary is not a complete cross-validation; not copied into cards")
        path = Path(models_dir) / f"{mid}.json"
        card = json.loads(path.read_text())
        base = Path(cv_root or CV_ROOT) / task / card.get("architecture", mid[len(task) + 1:])
        fold_cards = [*sorted(base.glob("fold*.json")), *sorted(base.glob(f"fold*/{mid}.json"))]  # queue's, runs/cv's
        for fold_card in [json.loads(p.read_text()) for p in fold_cards] or [{}]:  # {}: the recipe must exist
            check_same_recipe(card, fold_card)
        card["cross_validation"] = {**cv, **({"fullres_kaggle_rule": e["fullres_kaggle_rule"]}
                                             if "fullres_kaggle_rule" in e else {})}
        card["presence"] = e["presence"]
        cards[path] = card
    return cards


def apply(task: str, summary_dir: Path, models_dir: Path, cv_root: Path | None = None) -> list[Path]:
    """Copy each model's cross_validation and presence blocks from <task>-cv-summary.json into its card
    (other keys untouched); every card is checked (`patched_cards`) before any is written."""
    summary = json.loads((Path(summary_dir) / f"{task}-cv-summary.json").read_text())
    cards = patched_cards(task, summary, models_dir, cv_root)
    for path, card in cards.items():
        path.write_text(json.dumps(card, indent=2) + "\n")
    return list(cards)


def load_paired(task: str, splits_dir: Path | None = None) -> dict | None:
    """The task's paired comparison (splits/<task>-paired.json) for the app; None until CV has run."""
    path = Path(splits_dir or fl.SPLITS_DIR) / f"{task}-paired.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SummaryError(f"cannot read {path}: {e}") from e
