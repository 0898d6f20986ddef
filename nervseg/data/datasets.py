"""What each dataset/task is, read from one data file (nervseg/datasets.json).

nnU-Net's dataset.json is the model: folders, how images pair with masks, the group key
that keeps near-duplicates on one side of a split, classes, licence, frame size and where
post-processing is tuned. Adding a dataset is one entry in that file (plus its data), or one
entry in a file of your own named in $NERVSEG_DATASETS (or passed to `add_specs`): nothing in
the code names a task.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nervseg import data_root
from nervseg.io.readers import IMAGE_SUFFIXES, MASK_SUFFIXES, allow_class_ids

SPEC_FILE = Path(__file__).with_name("datasets.json")

# Group key rules: stem -> group id. A fold file's "groups" overrides them.
GROUP_RULES: dict[str, Callable[[str], str]] = {
    "image": lambda stem: stem,
    "before_underscore": lambda stem: stem.split("_")[0],
}


MASK_MARK = "_mask"  # <stem>_mask.<ext> names the mask of <stem>.<ext> (Kaggle's rule, and uploads')


def mask_names_image(mask_name: str, image_name: str) -> bool:
    """Whether a mask's file name pairs with an image's: the same stem, or the stem + "_mask" (any case/suffix)."""
    m, i = Path(mask_name).stem.lower(), Path(image_name).stem.lower()
    return m in (i, i + MASK_MARK)


@dataclass(frozen=True)
class Pair:
    image: Path
    mask: Path

    @property
    def stem(self) -> str:
        return self.image.stem


@dataclass(frozen=True)
class PairSet:
    """One folder of pairs: <folder>/<images>/<stem>.<ext> with <folder>/<masks>/<stem><mask_suffix>.<ext>."""

    folder: str
    images: str = "images"
    masks: str = "masks"
    mask_suffix: str = ""

    def pairs(self, root: Path) -> list[Pair]:
        """The pairs present under `root` (sorted by image name; [] when the folder is absent)."""
        base = Path(root) / self.folder
        img_dir, mask_dir = base / self.images, base / self.masks
        if not img_dir.is_dir():
            return []
        out = []
        for p in sorted(img_dir.iterdir()):
            if p.suffix.lower() not in IMAGE_SUFFIXES or p.stem.endswith("_mask") or not p.is_file():
                continue
            mask = next((m for m in (mask_dir / f"{p.stem}{self.mask_suffix}{s}" for s in MASK_SUFFIXES)
                         if m.is_file() and m != p), None)
            if mask is not None:
                out.append(Pair(p, mask))
        return out


@dataclass(frozen=True)
class FoldRule:
    """How `python -m nervseg.data.folds` groups a task's images into cross-validation folds."""

    groups: str = "rule"  # "rule": the spec's group rule; "similarity": near-duplicate clusters of the main set
    unit: str = "group"  # what one group is, in words (e.g. "subject")
    apart: tuple[str, ...] = ()  # groups placed in different folds
    apart_note: str = ""  # why, in words (written into the fold file's grouping)
    exclude_samples: bool = False  # the bundled demo samples (sample_images/samples.json) are in no fold


FOLD_GROUPS = ("rule", "similarity")


@dataclass(frozen=True)
class DatasetSpec:
    """One task: its data, classes and split rules (see datasets.json for each field's meaning)."""

    key: str
    display: str
    data_name: str
    licence: str
    attribution: str
    classes: tuple[str, ...]
    input_size: tuple[int, int]  # (H, W) default training input
    frame_size: tuple[int, int]  # (H, W) of the real scans
    sets: dict[str, PairSet]
    group: str
    grouping: str
    always_val: tuple[str, ...] = ()
    always_train: tuple[str, ...] = ()
    tuning: str = "train"
    tuning_note: str = "training-split images"
    extra: str | None = None
    co_training: bool = False
    clips: str | None = None  # folder of box-annotated cine clips of the same anatomy
    presence_set: str = "main"  # the set whose frames calibrate presence (it needs empty frames)
    file_name: str | None = None  # regex with a group "stem": recognises this dataset's images by name
    folds: FoldRule = FoldRule()
    credit_line: str | None = None  # shown with one of its images; default "<licence>, <attribution>"

    @property
    def credit(self) -> str:
        return self.credit_line or f"{self.licence}, {self.attribution}"

    def group_of(self, stem: str) -> str:
        return GROUP_RULES[self.group](stem)

    def stem_of(self, name: str) -> str | None:
        """The stem of this dataset's image called `name` (a file name or stem, any folder and suffix),
        None when the name is not one of its images'."""
        if not self.file_name:
            return None
        m = re.match(self.file_name, Path(name).stem)
        return m.group("stem") if m else None

    def pairs(self, set_name: str = "main", root: Path | None = None) -> list[Pair]:
        """Pairs of one of the task's sets under the data root."""
        if set_name not in self.sets:
            return []
        return self.sets[set_name].pairs(Path(root) if root else data_root())

    def folder(self, set_name: str = "main", root: Path | None = None) -> Path:
        s = self.sets[set_name]
        return (Path(root) if root else data_root()) / s.folder / s.images


def _spec(key: str, d: dict, source: str = SPEC_FILE.name) -> DatasetSpec:
    if d["group"] not in GROUP_RULES:
        raise ValueError(f"{source}: {key}: unknown group rule {d['group']!r}; known: {sorted(GROUP_RULES)}")
    split = d.get("split", {})
    folds = dict(d.get("folds") or {})
    folds["apart"] = tuple(str(g) for g in folds.get("apart", ()))
    rule = FoldRule(**folds)
    if rule.groups not in FOLD_GROUPS:
        raise ValueError(f"{source}: {key}: unknown fold grouping {rule.groups!r}; known: {list(FOLD_GROUPS)}")
    for name in (d.get("extra"), d.get("presence_set", "main"), "main"):
        if name is not None and name not in d["sets"]:
            raise ValueError(f"{source}: {key}: no set {name!r}; its sets: {sorted(d['sets'])}")
    if d.get("file_name") and "(?P<stem>" not in d["file_name"]:
        raise ValueError(f"{source}: {key}: file_name needs a named group (?P<stem>...)")
    return DatasetSpec(
        key=key, display=d["display"], data_name=d["data_name"], licence=d["licence"],
        attribution=d.get("attribution", ""), classes=tuple(d["classes"]),
        input_size=tuple(d["input_size"]), frame_size=tuple(d["frame_size"]),
        sets={name: PairSet(**s) for name, s in d["sets"].items()}, group=d["group"], grouping=d["grouping"],
        always_val=tuple(split.get("always_val", ())), always_train=tuple(split.get("always_train", ())),
        tuning=d.get("tuning", "train"), tuning_note=d.get("tuning_note", "training-split images"),
        extra=d.get("extra"), co_training=bool(d.get("co_training", False)), clips=d.get("clips"),
        presence_set=d.get("presence_set", "main"), file_name=d.get("file_name"), folds=rule,
        credit_line=d.get("credit"),
    )


def load_specs(path: Path = SPEC_FILE) -> dict[str, DatasetSpec]:
    """Every task in the spec file, by key (keys starting with '_' are comments)."""
    raw = json.loads(Path(path).read_text())
    specs = {k: _spec(k, v, Path(path).name) for k, v in raw.items() if not k.startswith("_")}
    allow_class_ids(max((len(s.classes) - 1 for s in specs.values()), default=0))  # masks may hold their ids
    return specs


TASKS: dict[str, DatasetSpec] = load_specs()


def add_specs(path: str | Path) -> list[str]:
    """Add (or replace) the tasks of another spec file of the same shape; returns their keys.

    How a dataset is added without editing datasets.json; `$NERVSEG_DATASETS` names such files
    (separated by os.pathsep) for every process, CLIs and the app included.
    """
    extra = load_specs(Path(path))
    TASKS.update(extra)
    return list(extra)


for _path in filter(None, os.environ.get("NERVSEG_DATASETS", "").split(os.pathsep)):
    add_specs(_path)


CO_TRAINING = tuple(k for k, s in TASKS.items() if s.co_training)  # tasks usable as nerve-only co-training data


def spec(task: str) -> DatasetSpec:
    """The spec of `task`; ValueError naming the known tasks otherwise."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {sorted(TASKS)}")
    return TASKS[task]


def group_sort_key(group: str) -> tuple:
    """Numeric groups in numeric order, then the rest by name."""
    return (0, int(group), group) if group.isdigit() else (1, 0, group)
