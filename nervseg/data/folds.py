"""Cross-validation folds as data: splits/<task>-folds.json, generated once, read by everyone.

    python -m nervseg.data.folds --task TASK        # writes splits/TASK-folds.json (any task of the dataset spec)

File format (agreed, do not change): {"task", "k", "grouping" (the rule, in words), "excluded"
(demo-sample stems, in no fold and never trained on), "groups" {stem: group id}, "folds" [[stems]]}.
Groups never straddle folds. How a task groups is its dataset spec's `folds` entry: by the spec's
group rule (e.g. subjects), or, for a set without subject labels but with near-duplicate frames,
the connected components of a similarity rule (see `similarity_groups`). Folds are balanced by
image count, deterministically (seeded).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from nervseg import PROJECT_ROOT, data_root
from nervseg.data.datasets import TASKS, Pair, spec
from nervseg.data.splits import FoldFile, SplitError, read_folds

SPLITS_DIR = PROJECT_ROOT / "splits"
SAMPLES_FILE = PROJECT_ROOT / "sample_images" / "samples.json"
SIM_SIZE = 16  # compared after an area downscale to SIM_SIZE x SIM_SIZE grey (coarse: over-grouping costs
# little, a near-duplicate split across folds leaks; at r > 0.9, 16 px groups 68 images, 32 px 43, 64 px 14)
SIM_THRESHOLD = 0.9  # Pearson correlation above which two images count as near-duplicates


FoldError = SplitError  # one error type for fold files, raised by the one reader in nervseg.data.splits


def folds_path(task: str, splits_dir: Path | None = None) -> Path:
    return Path(splits_dir or SPLITS_DIR) / f"{task}-folds.json"


def read(path: Path) -> FoldFile:
    """A validated fold file (nervseg.data.splits.read_folds)."""
    return read_folds(path)


def sample_stems(samples_file: Path | None = None) -> list[str]:
    """The demo-sample stems (sample_images/samples.json "stems"), [] when that file is absent."""
    p = Path(samples_file or SAMPLES_FILE)
    if not p.is_file():
        return []
    return sorted(str(s) for s in json.loads(p.read_text()).get("stems", []))


def check_current(ff: FoldFile, samples_file: Path | None = None) -> None:
    """FoldError when the fold file's exclusions differ from today's demo samples (rerun the CLI)."""
    if ff.task not in TASKS or not TASKS[ff.task].folds.exclude_samples:
        return
    now = sample_stems(samples_file)
    if sorted(ff.excluded) != now:
        raise FoldError(f"splits/{ff.task}-folds.json excludes {len(ff.excluded)} stems but samples.json lists "
                        f"{len(now)}: rerun `python -m nervseg.data.folds --task {ff.task}`")


# ---------------------------------------------------------------- grouping


def similarity_groups(vectors: np.ndarray, stems: list[str], threshold: float = SIM_THRESHOLD) -> dict[str, str]:
    """Connected components of "Pearson correlation > threshold" between image vectors (N, D).

    Near-duplicates chain (A~B, B~C): components keep the whole chain in one fold.
    Group ids are "g" + the first member's stem.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    z = vectors.astype(np.float64)
    z = z - z.mean(axis=1, keepdims=True)
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    corr = z @ z.T
    np.fill_diagonal(corr, 0.0)
    _, labels = connected_components(csr_matrix(corr > threshold), directed=False)
    first: dict[int, str] = {}
    for s, lab in sorted(zip(stems, labels)):
        first.setdefault(int(lab), s)
    return {s: "g" + first[int(lab)] for s, lab in zip(stems, labels)}


def similarity_vectors(pairs: list[Pair]) -> tuple[list[str], np.ndarray]:
    """Stems and SIM_SIZE x SIM_SIZE area-downscaled grey images of the pairs' images, flattened."""
    import cv2

    from nervseg.io.readers import load_image

    vecs = [cv2.resize(load_image(p.image), (SIM_SIZE, SIM_SIZE), interpolation=cv2.INTER_AREA).ravel()
            for p in pairs]
    return [p.stem for p in pairs], np.stack(vecs)


def balanced_folds(groups: dict[str, str], k: int, seed: int = 0, apart: tuple[str, ...] = ()) -> list[list[str]]:
    """Whole groups into k folds, largest first, each into the fold with fewest images so far.

    Ties in size are ordered by a seeded shuffle; groups in `apart` go to different folds.
    """
    members: dict[str, list[str]] = {}
    for s, g in groups.items():
        members.setdefault(g, []).append(s)
    order = sorted(members)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -len(members[g]))  # stable: the shuffle breaks ties
    folds: list[list[str]] = [[] for _ in range(k)]
    taken: set[int] = set()
    for g in order:
        allowed = [i for i in range(k) if not (g in apart and i in taken)] or list(range(k))
        i = min(allowed, key=lambda j: (len(folds[j]), j))
        if g in apart:
            taken.add(i)
        folds[i].extend(members[g])
    return [sorted(f) for f in folds]


def make_folds(task: str, root: Path | None = None, k: int = 5, seed: int = 0,
               samples_file: Path | None = None) -> FoldFile:
    """The fold file of a task, from the data."""
    root = Path(root) if root else data_root()
    try:
        ds = spec(task)
    except ValueError as e:
        raise FoldError(str(e)) from None
    rule, pairs = ds.folds, ds.pairs("main", root)
    balance = f"{k} folds balanced by image count (largest {rule.unit} first, seed {seed})"
    if rule.groups == "similarity":
        stems, vecs = similarity_vectors(pairs) if pairs else ([], np.zeros((0, 1)))
        groups = similarity_groups(vecs, stems) if stems else {}
        grouping = (f"near-duplicates together: connected components of Pearson correlation > {SIM_THRESHOLD} "
                    f"between {SIM_SIZE}x{SIM_SIZE} area-downscaled grey images; then {balance}")
    else:
        groups = {p.stem: ds.group_of(p.stem) for p in pairs}
        grouping = f"{ds.grouping}; {balance}"
    if rule.apart_note:
        grouping += f"; {rule.apart_note}"
    excluded = [s for s in sample_stems(samples_file) if s in groups] if rule.exclude_samples else []
    apart = rule.apart
    if not groups:
        raise FoldError(f"no {task} images found under {root}")
    kept = {s: g for s, g in groups.items() if s not in set(excluded)}
    ff = FoldFile(task, k, grouping, sorted(excluded), dict(sorted(groups.items())),
                  balanced_folds(kept, k, seed, apart))
    ff.validate()
    return ff


def describe(ff: FoldFile) -> dict:
    """Counts for reports: groups, multi-image groups, images and groups per fold."""
    sizes: dict[str, int] = {}
    for g in ff.groups.values():
        sizes[g] = sizes.get(g, 0) + 1
    return {
        "images": len(ff.groups), "excluded": len(ff.excluded), "groups": len(sizes),
        "groups_with_2_or_more": sum(n > 1 for n in sizes.values()),
        "images_in_such_groups": sum(n for n in sizes.values() if n > 1),
        "largest_group": max(sizes.values()),
        "fold_images": [len(f) for f in ff.folds],
        "fold_groups": [len({ff.groups[s] for s in f}) for f in ff.folds],
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m nervseg.data.folds", description=__doc__.split("\n")[0])
    ap.add_argument("--task", required=True, choices=TASKS)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=None, help="data root (default: $NERVSEG_DATA or ../shared/data)")
    ap.add_argument("--out", type=Path, default=None, help="default: splits/<task>-folds.json")
    args = ap.parse_args(argv)
    try:
        ff = make_folds(args.task, args.data, args.k, args.seed)
    except FoldError as e:
        raise SystemExit(str(e)) from e
    out = args.out or folds_path(args.task)
    ff.save(out)
    print(f"wrote {out}: {json.dumps(describe(ff))}")


if __name__ == "__main__":
    main()
