"""Which model is better on the user's own batch: paired per-image Dice differences with a bootstrap CI.

Each pair of models is compared on the same images (`nervseg.evaluate.stats.paired_comparison`),
over the images whose mask holds the class. Resampling draws whole groups (e.g. subjects) when
every image name is one of a dataset's that groups images by a rule (the spec's `file_name` and
`group`: Kaggle `SUBJ_IMG`), since frames of one subject are not independent; else images.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import PurePosixPath

from nervseg.data.datasets import TASKS
from nervseg.evaluate import stats

MIN_GROUPS = 5  # fewer images (or subjects) than this: no verdict, the CI would mean little


def batch_groups(image_names: list[str]) -> tuple[list[str], str]:
    """(group of each image, what a group is, plural): a dataset's groups (e.g. subjects) when every name is
    one of that dataset's images (its `file_name` rule) and it groups by a rule; else each image its own."""
    names = [PurePosixPath(n).name for n in image_names]
    for spec in TASKS.values():
        if spec.group == "image" or not names:
            continue
        stems = [spec.stem_of(n) for n in names]
        if all(stems):
            return [spec.group_of(st) for st in stems], f"{spec.folds.unit}s"
    return [PurePosixPath(n).stem for n in names], "images"


@dataclass(frozen=True)
class BatchVerdict:
    """Model a against model b on one class of the user's batch."""

    cls: str
    a: str
    b: str
    paired: stats.Paired | None  # None when too few images or subjects for a verdict
    n_images: int
    n_groups: int
    unit: str  # "images" or "subjects": what the bootstrap resampled

    @property
    def better(self) -> str | None:
        """The model with the higher Dice when the CI excludes 0, else None."""
        if self.paired is None or self.paired.verdict == stats.NO_CLEAR_DIFFERENCE:
            return None
        return self.a if self.paired.diff_mean > 0 else self.b

    def sentence(self, names: dict[str, str] | None = None) -> str:
        """The verdict in words: 'A better than B', 'no clear difference', or too few to tell."""
        names = names or {}
        a, b = names.get(self.a, self.a), names.get(self.b, self.b)
        if self.paired is None:
            return (f"{a} vs {b}: too few {self.unit} to tell ({self.n_groups}; at least {MIN_GROUPS} needed)")
        if self.better is None:
            return f"{a} vs {b}: no clear difference"
        winner, loser = (a, b) if self.better == self.a else (b, a)
        return f"{winner} better than {loser}"


def paired_verdicts(rows: list[dict], cls: str = "nerve", seed: int = 0) -> list[BatchVerdict]:
    """For each pair of models in `rows` (batch.score_rows rows), the paired Dice verdict on `cls`.

    Only images whose mask holds the class and that every model of the pair scored are used.
    """
    dice: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["class"] == cls and not r["truth_empty"]:
            dice.setdefault(r["model"], {})[r["image"]] = float(r["dice"])
    out = []
    for a, b in combinations(list(dice), 2):
        images = sorted(set(dice[a]) & set(dice[b]))
        groups, unit = batch_groups(images)
        n_groups = len(set(groups))
        paired = None
        if n_groups >= MIN_GROUPS:
            paired = stats.paired_comparison(a, b, [dice[a][i] for i in images], [dice[b][i] for i in images],
                                             groups, seed=seed)
        out.append(BatchVerdict(cls, a, b, paired, len(images), n_groups, unit))
    return out
