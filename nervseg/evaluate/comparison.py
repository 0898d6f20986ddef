"""What the app says about how a task's architectures compare: CV figures when a cross-validation
has run (splits/<task>-paired.json, -cv-summary.json), else the shipped models' own held-out split
(splits/heldout/, made by `python -m nervseg.cv heldout --task T --out-dir splits/heldout`),
always labelled with where the figures come from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from nervseg import PROJECT_ROOT
from nervseg.models.cards import ARCHITECTURES

SPLITS_DIR = PROJECT_ROOT / "splits"


def arch_name(key: str) -> str:
    """An architecture's display name from the registry (the key itself when unknown)."""
    return ARCHITECTURES[key].display if key in ARCHITECTURES else key


@dataclass(frozen=True)
class TaskComparison:
    task: str
    source: str  # where the figures come from, in words
    paired: list[dict]  # nervseg.evaluate.stats paired rows: class, a, b, diff_mean, diff_ci95, p_value, verdict
    models: dict[str, dict]  # model id -> its cross_validation block
    near_duplicates: dict[str, dict] = field(default_factory=dict)  # model id -> near_duplicate_split (held-out only)

    def dice_ci(self, model_id: str, cls: str) -> tuple[float, float, float] | None:
        """(mean, lo, hi) of a model's per-image Dice for a class, if measured."""
        pc = self.models.get(model_id, {}).get("per_class", {}).get(cls)
        if not pc or pc.get("dice_ci95") is None:
            return None
        lo, hi = pc["dice_ci95"]
        return float(pc["dice_mean"]), float(lo), float(hi)

    @property
    def demonstration(self) -> bool:
        return self.source.startswith("DEMONSTRATION")

    def _cv(self) -> dict:
        return next(iter(self.models.values()), {})

    def _grouping(self) -> str:
        """The fold file's grouping rule, its first clause without its explanation: 'by subject',
        'near-duplicates together'."""
        first = str(self._cv().get("grouping", "")).split(";")[0].split(":")[0]
        return re.sub(r"\s*\(.*\)\s*$", "", first).strip()

    @property
    def plain_source(self) -> str:
        """Where the figures come from, for a clinician."""
        if self.demonstration:
            return "measured on scans kept out of training; a first check, a fuller comparison is to come"
        if not self._cv().get("k"):
            return f"measured by {self.source}"
        grouping = self._grouping()
        kept_apart = (" and without the patient's other scans" if grouping.startswith("by subject") else
                      " and without its near-copies" if grouping.startswith("near-duplicate") else "")
        return f"measured on every scan by a model trained without it{kept_apart}"

    def how_measured(self) -> str:
        """Where the figures come from, in full, for the caption under a table of them."""
        if self.demonstration:
            text = ("the shipped models' own held-out validation images, which also chose how long they trained "
                    "(a first check, not cross-validation)")
            dup = next(iter(self.near_duplicates.values()), {}).get("nerve")
            if dup:
                n = dup["n_with_twin_in_training"]
                text += (f"; {n} of those {n + dup['n_without']} images have a near-duplicate among the training "
                         "images, so the figures are optimistic")
            return text
        k, grouping = self._cv().get("k", "?"), self._grouping()
        return (f"{k}-fold cross-validation" + (f" ({grouping})" if grouping else "") + ": every image scored by a "
                f"model trained, the same way, on the other {k - 1 if isinstance(k, int) else '?'} parts; the shipped "
                "model is trained that way on all of them")

    def plain_verdicts(self) -> list[str]:
        """One sentence per class without statistics words: who does better, or no clear difference."""
        out = []
        for cls in dict.fromkeys(p["class"] for p in self.paired):
            rows = [p for p in self.paired if p["class"] == cls]
            clear = [p for p in rows if p["verdict"] != "no clear difference"]
            names = list(dict.fromkeys(arch_name(x) for p in rows for x in (p["a"], p["b"])))
            archs = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
            if not clear:
                out.append(f"{cls.capitalize()}s: no clear difference between {archs}.")
                continue
            parts = [f"{_better(p).replace(' over ', ' finds them better than ')}" for p in clear]
            out.append(f"{cls.capitalize()}s: " + "; ".join(parts) + ".")
        return out

    def verdicts(self) -> list[str]:
        """One plain sentence per class: a ranking only where every CI excludes 0."""
        out = []
        for cls in dict.fromkeys(p["class"] for p in self.paired):
            rows = [p for p in self.paired if p["class"] == cls]
            clear = [p for p in rows if p["verdict"] != "no clear difference"]
            if not clear:
                out.append(f"{cls}: no clear difference between the architectures (every pairwise 95% CI of the "
                           "Dice difference includes 0).")
                continue
            parts = [f"{_better(p)} ahead by {abs(p['diff_mean']):.3f} (95% CI {_ci(p)})" for p in clear]
            out.append(f"{cls}: " + "; ".join(parts) + "; other pairs: no clear difference.")
        return out


def _better(p: dict) -> str:
    a, b = arch_name(p["a"]), arch_name(p["b"])
    return f"{a} over {b}" if p["diff_mean"] > 0 else f"{b} over {a}"


def _ci(p: dict) -> str:
    lo, hi = sorted(abs(x) for x in p["diff_ci95"]) if p["diff_mean"] < 0 else p["diff_ci95"]
    return f"{lo:.3f} to {hi:.3f}"


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None  # a damaged figures file: say nothing rather than something wrong


def load(task: str, splits_dir: Path | None = None) -> TaskComparison | None:
    """The task's comparison, CV first, the held-out demonstration otherwise; None when neither exists."""
    base = Path(splits_dir or SPLITS_DIR)
    for folder in (base, base / "heldout"):
        paired, summary = _read(folder / f"{task}-paired.json"), _read(folder / f"{task}-cv-summary.json")
        if paired and summary:
            entries = summary.get("models", {})
            models = {m: b.get("cross_validation", {}) for m, b in entries.items()}
            source = paired.get("source") or f"{paired.get('folds', '?')}-fold cross-validation"
            dups = {m: b["near_duplicate_split"] for m, b in entries.items() if b.get("near_duplicate_split")}
            return TaskComparison(task, source, list(paired.get("pairs", [])), models, dups)
    return None
