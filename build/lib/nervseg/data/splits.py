"""Train/validation splits of a task: the seeded grouped split, or one read from a fold file.

Fold files (`splits/<task>-folds.json`) are the agreed format written by the fold
generators: {"task", "k", "grouping", "excluded": [stems], "groups": {stem: group},
"folds": [[stems], ...]}. Stems are image file stems ("0007", "1_30"). With a fold k,
training uses every non-excluded stem outside fold k and validation is fold k; with no
fold, training uses every non-excluded stem and there is no validation set.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nervseg.data.datasets import DatasetSpec, Pair, group_sort_key, spec
from nervseg.io.readers import load_mask


class SplitError(ValueError):
    """A fold file cannot be used for this task and data; the message says why."""


@dataclass
class Split:
    train: list[Pair]
    val: list[Pair]
    extra_train: list[Pair]  # e.g. empty full-resolution frames of training subjects
    heldout_fullres: list[Pair]  # full-resolution pairs of validation subjects
    description: dict
    train_groups: frozenset[str] = field(default_factory=frozenset)
    task: str = ""
    excluded: frozenset[str] = field(default_factory=frozenset)  # stems kept out of everything


@dataclass
class FoldFile:
    """A fold file's content (the one reader; nervseg.data.folds writes them)."""

    task: str
    k: int
    grouping: str
    excluded: list[str]
    groups: dict[str, str]
    folds: list[list[str]]

    def test_stems(self, fold: int) -> list[str]:
        return list(self.folds[fold])

    def train_stems(self, fold: int | None) -> list[str]:
        """Every non-excluded stem outside `fold` (all of them when fold is None)."""
        return sorted(s for i, f in enumerate(self.folds) if i != fold for s in f)

    def fold_of_group(self, group: str) -> int | None:
        """The fold holding a group (e.g. a kaggle-bp subject), None if it is in none."""
        for i, f in enumerate(self.folds):
            if any(self.groups.get(s) == group for s in f):
                return i
        return None

    def validate(self) -> None:
        """SplitError unless each stem is in one fold, none excluded, and groups (when given) stay whole."""
        if len(self.folds) != self.k:
            raise SplitError(f"{self.task}: k={self.k} but {len(self.folds)} folds")
        seen: dict[str, int] = {}
        for i, f in enumerate(self.folds):
            for s in f:
                if s in seen:
                    raise SplitError(f"{self.task}: {s} is in more than one fold ({seen[s]} and {i})")
                seen[s] = i
        if set(seen) & set(self.excluded):
            raise SplitError(f"{self.task}: excluded stems inside folds: {sorted(set(seen) & set(self.excluded))[:5]}")
        if not self.groups:
            return
        if set(seen) | set(self.excluded) != set(self.groups):
            raise SplitError(f"{self.task}: folds + excluded do not cover the groups' stems")
        fold_of: dict[str, int] = {}
        for s, i in seen.items():
            if fold_of.setdefault(self.groups[s], i) != i:
                raise SplitError(f"{self.task}: group {self.groups[s]} straddles folds {fold_of[self.groups[s]]} and {i}")

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")


def read_folds(path: str | Path) -> FoldFile:
    """Read and check a fold file."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
        ff = FoldFile(str(d["task"]), int(d["k"]), str(d.get("grouping", "")), [str(s) for s in d.get("excluded", [])],
                      {str(s): str(g) for s, g in d.get("groups", {}).items()},
                      [[str(s) for s in f] for f in d["folds"]])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SplitError(f"fold file {path} cannot be read: {e}") from None
    ff.validate()
    return ff


def _is_empty_mask(path: Path) -> bool:
    return not load_mask(path).any()


def _with_extra(ds: DatasetSpec, root: Path | None, train: list[Pair], val: list[Pair], desc: dict,
                train_groups: set[str], val_groups: set[str], excluded: frozenset[str] = frozenset()) -> Split:
    """The Split, with the spec's extra set: empty frames of training groups train, frames of validation groups are held out."""
    extra, held = [], []
    if ds.extra:
        full = [p for p in ds.pairs(ds.extra, root) if p.stem not in excluded]
        extra = [p for p in full if ds.group_of(p.stem) in train_groups and _is_empty_mask(p.mask)]
        held = [p for p in full if ds.group_of(p.stem) in val_groups]
        desc.update({"train_empty_fullres_frames": len(extra), "heldout_fullres_frames": len(held),
                     "heldout_fullres_empty": sum(_is_empty_mask(p.mask) for p in held)})
    return Split(train, val, extra, held, desc, frozenset(train_groups), ds.key, excluded)


def split_task(task: str, root: Path | None = None, seed: int = 0, val_fraction: float = 0.2) -> Split:
    """The fixed, seeded, grouped train/validation split of a task (the shipped cards' split)."""
    ds = spec(task)
    rng = random.Random(seed)
    pairs = ds.pairs("main", root)
    groups = sorted({ds.group_of(p.stem) for p in pairs}, key=group_sort_key)
    fixed = set(ds.always_val) | set(ds.always_train)
    others = [g for g in groups if g not in fixed]
    rng.shuffle(others)
    n_val = max(1, round(len(groups) * val_fraction)) - len(ds.always_val)
    val_groups = {*ds.always_val, *others[:n_val]}
    train = [p for p in pairs if ds.group_of(p.stem) not in val_groups]
    val = [p for p in pairs if ds.group_of(p.stem) in val_groups]
    train_groups = set(groups) - val_groups
    if ds.group == "image":
        head, _, note = ds.grouping.partition(" (")
        desc = {"method": f"{head}, seed {seed}, {val_fraction:.0%} validation" + (f" ({note}" if note else ""),
                "train_images": len(train), "val_images": len(val), "val_stems": sorted(val_groups)}
    else:
        rule = "; ".join(f"subject {g} always validation" for g in ds.always_val)
        rule += "".join(f", subject {g} always training" for g in ds.always_train)
        desc = {"method": f"by subject, seed {seed}; {rule}",
                "val_subjects": sorted(val_groups, key=group_sort_key),
                "train_subjects": sorted(train_groups, key=group_sort_key),
                "train_images": len(train), "val_images": len(val)}
    return _with_extra(ds, root, train, val, desc, train_groups, val_groups)


def split_from_folds(task: str, split_file: str | Path, fold: int | None, root: Path | None = None) -> Split:
    """Training (and, with `fold`, validation) pairs of `task` as a fold file assigns them.

    Every non-excluded image of the task must be in some fold, so that new data cannot
    slip into training unseen by the fold generator; excluded stems (e.g. bundled demo
    samples) are kept out of training, validation and the extra set.
    """
    ds, folds = spec(task), read_folds(split_file)
    if folds.task != task:
        raise SplitError(f"{Path(split_file).name} is for task {folds.task!r}, not {task!r}")
    if fold is not None and not 0 <= fold < folds.k:
        raise SplitError(f"fold {fold} does not exist: {Path(split_file).name} has folds 0..{folds.k - 1}")
    excluded = frozenset(folds.excluded)
    pairs = [p for p in ds.pairs("main", root) if p.stem not in excluded]
    in_folds = {s for f in folds.folds for s in f}
    missing, unknown = {p.stem for p in pairs} - in_folds, in_folds - {p.stem for p in pairs}
    if missing or unknown:
        raise SplitError(f"{Path(split_file).name} does not match the data: {len(missing)} images in no fold "
                         f"(e.g. {sorted(missing)[:3]}), {len(unknown)} fold stems without an image "
                         f"(e.g. {sorted(unknown)[:3]})")
    held = set(folds.folds[fold]) if fold is not None else set()
    train = [p for p in pairs if p.stem not in held]
    val = [p for p in pairs if p.stem in held]
    group = lambda stem: folds.groups.get(stem, ds.group_of(stem))  # noqa: E731
    train_groups, val_groups = {group(p.stem) for p in train}, {group(p.stem) for p in val}
    if train_groups & val_groups:
        raise SplitError(f"{Path(split_file).name}: groups on both sides of fold {fold}: {sorted(train_groups & val_groups)[:5]}")
    which = f"fold {fold} of {folds.k} validates" if fold is not None else f"all {folds.k} folds train (final model)"
    desc = {"method": f"fold file {Path(split_file).name}: {which} ({folds.grouping})",
            "split_file": Path(split_file).name, "fold": fold, "k": folds.k, "excluded": len(excluded),
            "train_images": len(train), "val_images": len(val), "val_stems": sorted(held)}
    return _with_extra(ds, root, train, val, desc, train_groups, val_groups, excluded)


def make_split(task: str, root: Path | None = None, seed: int = 0, split_file: str | Path | None = None,
               fold: int | None = None) -> Split:
    """The split training uses: from the fold file when one is given, else the seeded split."""
    if split_file:
        return split_from_folds(task, split_file, fold, root)
    if fold is not None:
        raise SplitError("a fold needs a fold file (--split-file)")
    return split_task(task, root, seed)
