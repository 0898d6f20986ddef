"""Grouped k-fold cross-validation: train each fold, score its held-out images, summarise.

    python -m nervseg.cv run --task TASK --arch ARCH --recipe-args "--size 256 256 --epochs 150 ..."
    python -m nervseg.cv summarise --task TASK       # splits/TASK-cv-summary.json, splits/TASK-paired.json
    python -m nervseg.cv apply --task TASK           # copies those blocks into models/TASK-*.json
    python -m nervseg.cv heldout --task TASK         # shipped models on their own held-out split

Tasks are the dataset spec's (nervseg.data.datasets), architectures the registry's (nervseg.models.cards).

Training goes through the training CLI (`--split-file splits/<task>-folds.json --fold K`), one
process per fold; scoring happens here, through nervseg.inference.segmenter at each image's own resolution,
so the figures do not depend on training internals. Per-image rows go to
runs/cv/<task>/<arch>/fold<K>/scores.csv and, all folds together, runs/cv/<task>/<arch>/oof.csv
(git-ignored). Aggregation is in nervseg.cv.summary.
"""

from __future__ import annotations

import csv
import json
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nervseg import PROJECT_ROOT, data_root
from nervseg.data import folds as fl
from nervseg.data.datasets import Pair, spec
from nervseg.evaluate.presence import presence_score
from nervseg.files import write_atomic
from nervseg.io.readers import load_image, load_mask
from nervseg.metrics import class_rows

CV_ROOT = PROJECT_ROOT / "runs" / "cv"
ROW_KEYS = ("task", "arch", "fold", "set", "stem", "group", "class", "truth_empty", "pred_empty",
            "dice", "precision", "sensitivity", "presence", "tp", "fp", "fn")


@dataclass
class CvRun:
    """One architecture's cross-validation on one task."""

    task: str
    arch: str
    recipe_args: str = ""  # training flags shared by every fold (the task's common recipe)
    folds: list[int] | None = None  # None: all folds of the fold file
    cv_root: Path = CV_ROOT
    splits_dir: Path | None = None
    data: Path | None = None
    init_dir: Path = field(default_factory=lambda: PROJECT_ROOT / "models")  # where --init-from models are
    samples_file: Path | None = None  # demo-sample list the fold file must exclude (default: sample_images/)
    rescore: bool = False  # score folds again even when their scores.csv exists
    python: str = sys.executable

    @property
    def model_id(self) -> str:
        return f"{self.task}-{self.arch}"

    def fold_dir(self, fold: int) -> Path:
        return Path(self.cv_root) / self.task / self.arch / f"fold{fold}"

    def checkpoint(self, fold: int) -> Path:
        """The fold's last training checkpoint (nervseg.train --runs <fold>/ckpt)."""
        return self.fold_dir(fold) / "ckpt" / self.model_id / "last.pt"

    def train_command(self, fold: int) -> list[str]:
        """The training CLI call for one fold: its model and checkpoints stay in the fold's folder.

        An interrupted fold (a checkpoint but no card) resumes instead of starting over.
        """
        d = self.fold_dir(fold)
        resume = ["--resume"] if self.checkpoint(fold).is_file() else []
        data = ["--data", str(self.data)] if self.data else []
        return [self.python, "-m", "nervseg.train", "--task", self.task, "--arch", self.arch,
                "--split-file", _rel(fl.folds_path(self.task, self.splits_dir)), "--fold", str(fold),
                "--out", _rel(d), "--runs", _rel(d / "ckpt"), *data, *shlex.split(self.recipe_args), *resume]

    def init_from(self) -> str | None:
        """The --init-from model id in the recipe, if any."""
        args = shlex.split(self.recipe_args)
        return args[args.index("--init-from") + 1] if "--init-from" in args[:-1] else None


def _rel(path: Path) -> str:
    """A path relative to the project root when inside it (training runs there; cards stay portable)."""
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def stage_init_model(run: CvRun, fold: int) -> None:
    """Copy the recipe's --init-from card and weights into the fold folder (train reads it from --out)."""
    src_id = run.init_from()
    if not src_id:
        return
    d = run.fold_dir(fold)
    d.mkdir(parents=True, exist_ok=True)
    card = json.loads((Path(run.init_dir) / f"{src_id}.json").read_text())
    for name in (f"{src_id}.json", card["weights_file"]):
        shutil.copy2(Path(run.init_dir) / name, d / name)


def eval_pairs(ff: fl.FoldFile, task: str, fold: int, root: Path | None = None) -> list[tuple[str, Pair, str]]:
    """(set, pair, group) of every image that fold `fold` holds out: its main-set stems, and the frames
    of its groups in the task's extra set (scored too: e.g. the Kaggle rule and presence need empty frames)."""
    ds, root = spec(task), Path(root) if root else data_root()
    test = set(ff.test_stems(fold))
    out = [("main", p, ff.groups[p.stem]) for p in ds.pairs("main", root) if p.stem in test]
    if ds.extra:
        for p in ds.pairs(ds.extra, root):
            if ff.fold_of_group(ds.group_of(p.stem)) == fold:
                out.append((ds.extra, p, ds.group_of(p.stem)))
    return out


def score_images(segmenter, items: list[tuple[str, Pair, str]], task: str, arch: str, fold: int,
                 batch: int = 8) -> list[dict]:
    """Per-image, per-class rows: Dice, precision, sensitivity, the raw presence score."""
    rows = []
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        images = [load_image(p.image) for _, p, _ in chunk]
        preds = segmenter.predict_many(images, batch_size=batch)
        for (set_name, pair, group), pred in zip(chunk, preds):
            true = load_mask(pair.mask)
            for cid, row in enumerate(class_rows(pred.mask, true, segmenter.classes), start=1):
                rows.append({"task": task, "arch": arch, "fold": fold, "set": set_name, "stem": pair.stem,
                             "group": group, **row, "presence": presence_score(pred.probs[cid])})
    return rows


def write_rows(rows: list[dict], path: Path) -> None:
    """Write rows atomically (folds scored in parallel each rewrite oof.csv)."""
    def write(f) -> None:
        w = csv.DictWriter(f, fieldnames=list(ROW_KEYS), extrasaction="ignore")  # the tracked files' columns
        w.writeheader()
        w.writerows(rows)
    write_atomic(path, write)


def read_rows(path: Path) -> list[dict]:
    """Rows of a scores/oof CSV with numbers restored."""
    ints, floats = {"fold", "truth_empty", "pred_empty", "tp", "fp", "fn"}, {"dice", "precision", "sensitivity", "presence"}
    with open(path, newline="") as f:
        return [{k: int(v) if k in ints else float(v) if k in floats else v for k, v in r.items()}
                for r in csv.DictReader(f)]


def collect_oof(run: CvRun) -> Path:
    """runs/cv/<task>/<arch>/oof.csv from every fold scored so far."""
    base = Path(run.cv_root) / run.task / run.arch
    rows = [r for p in sorted(base.glob("fold*/scores.csv")) for r in read_rows(p)]
    write_rows(rows, base / "oof.csv")
    return base / "oof.csv"


def run_folds(run: CvRun, train=subprocess.run) -> Path:
    """Train (unless already trained) and score each fold; returns the oof.csv path."""
    from nervseg.inference.segmenter import load

    ff = fl.read(fl.folds_path(run.task, run.splits_dir))
    fl.check_current(ff, run.samples_file)
    for k in run.folds if run.folds is not None else range(ff.k):
        d = run.fold_dir(k)
        if (d / "scores.csv").is_file() and not run.rescore:  # done (possibly in an earlier session)
            continue
        if not (d / f"{run.model_id}.json").is_file():
            d.mkdir(parents=True, exist_ok=True)
            stage_init_model(run, k)
            cmd = run.train_command(k)
            print("+", shlex.join(cmd), flush=True)
            train(cmd, check=True, cwd=PROJECT_ROOT)
        seg = load(run.model_id, models_dir=d)
        items = eval_pairs(ff, run.task, k, run.data)
        write_rows(score_images(seg, items, run.task, run.arch, k), d / "scores.csv")
        n_extra = sum(s != "main" for s, _, _ in items)
        print(f"[{run.model_id}] fold {k}: scored {len(items) - n_extra} images"
              + (f" and {n_extra} frames of the extra set" if n_extra else ""), flush=True)
    return collect_oof(run)


def heldout(task: str, arch: str, models_dir: Path | None = None, root: Path | None = None,
            out_root: Path = PROJECT_ROOT / "runs" / "cv-heldout") -> Path:
    """A shipped model scored on the held-out split recorded in its card, as one "fold" 0.

    Not cross-validation: one split, whose images also chose the shipped epoch. A card split by group
    (`val_subjects`) is scored on its validation groups' frames, those of the extra set included; one
    split by image (`val_stems`), on those images, grouped as the task's fold file groups them.
    """
    from nervseg.inference.segmenter import load

    ds = spec(task)
    seg = load(f"{task}-{arch}", models_dir=models_dir)
    split = seg.card.data.get("split", {})
    root = Path(root) if root else data_root()
    if "val_subjects" in split:
        val = {str(g) for g in split["val_subjects"]}
        items = [(set_name, p, ds.group_of(p.stem)) for set_name in ("main", *([ds.extra] if ds.extra else []))
                 for p in ds.pairs(set_name, root) if ds.group_of(p.stem) in val]
    else:
        ff = fl.read(fl.folds_path(task))
        val = set(split["val_stems"])
        items = [("main", p, ff.groups[p.stem]) for p in ds.pairs("main", root) if p.stem in val]
    if not items:
        raise FileNotFoundError(f"{task}-{arch} holds nothing out (a final model trained on every fold): "
                                "its figures are the cross-validation's, not a held-out split's")
    run = CvRun(task, arch, cv_root=out_root)
    write_rows(score_images(seg, items, task, arch, 0), run.fold_dir(0) / "scores.csv")
    return collect_oof(run)
