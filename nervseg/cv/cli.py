"""python -m nervseg.cv run|summarise|apply|heldout|promote (nervseg.cv.run and nervseg.cv.promote say what each does)."""

from __future__ import annotations

import argparse
import shlex
import subprocess
from pathlib import Path

from nervseg import PROJECT_ROOT
from nervseg.cv import summary as cv_summary
from nervseg.cv.run import CV_ROOT, CvRun, heldout, run_folds
from nervseg.cv.run import __doc__ as RUN_DOC
from nervseg.data import folds as fl
from nervseg.data.datasets import TASKS
from nervseg.models.cards import ARCHITECTURES, ModelError, available


def main(argv=None) -> None:
    from nervseg.inference.segmenter import configure_threads

    ap = argparse.ArgumentParser(prog="python -m nervseg.cv", description=RUN_DOC.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train and score folds of one architecture")
    r.add_argument("--task", required=True, choices=TASKS)
    r.add_argument("--arch", required=True, choices=ARCHITECTURES)
    r.add_argument("--folds", default=None, help="comma-separated fold numbers (default: all)")
    r.add_argument("--recipe-args", default="", help="training flags shared by every fold, one quoted string")
    r.add_argument("--init-dir", type=Path, default=PROJECT_ROOT / "models", help="where --init-from models are")
    r.add_argument("--rescore", action="store_true", help="score already scored folds again")
    r.add_argument("--cv-root", type=Path, default=CV_ROOT, help="where fold models and scores go (default: runs/cv)")
    for name in ("summarise", "apply", "heldout"):
        p = sub.add_parser(name)
        p.add_argument("--task", required=True, choices=TASKS)
        p.add_argument("--cv-root", type=Path, default=None, help="default: runs/cv (heldout: runs/cv-heldout)")
        p.add_argument("--out-dir", type=Path, default=None, help="summary files (default: splits/)")
    sub.choices["apply"].add_argument("--models", type=Path, default=PROJECT_ROOT / "models")
    pr = sub.add_parser("promote", help="a task's finished queue -> CV summary, card blocks, shipped models, int8 graphs")
    pr.add_argument("--task", required=True, choices=TASKS)
    args = ap.parse_args(argv)
    configure_threads()
    try:
        if args.cmd == "run":
            folds = [int(f) for f in args.folds.split(",")] if args.folds else None
            print(run_folds(CvRun(args.task, args.arch, args.recipe_args, folds, cv_root=args.cv_root,
                                  init_dir=args.init_dir, rescore=args.rescore)))
        elif args.cmd == "heldout":
            out_root = args.cv_root or PROJECT_ROOT / "runs" / "cv-heldout"
            shipped = {c.id for c in available()}
            for arch in [a for a in ARCHITECTURES if f"{args.task}-{a}" in shipped]:  # the task's shipped models
                print(heldout(args.task, arch, out_root=out_root))
            cv_summary.write(args.task, out_root, args.out_dir or out_root, heldout=True)
        elif args.cmd == "promote":
            from nervseg.cv.promote import promote

            promote(args.task)
        elif args.cmd == "summarise":
            cv_summary.write(args.task, args.cv_root or CV_ROOT, args.out_dir or fl.SPLITS_DIR)
        else:
            cv_summary.apply(args.task, args.out_dir or fl.SPLITS_DIR, args.models, args.cv_root)
    except (fl.FoldError, cv_summary.SummaryError, FileNotFoundError, ModelError) as e:
        raise SystemExit(str(e)) from e
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"fold training failed (exit {e.returncode}): {shlex.join(e.cmd)}") from e


if __name__ == "__main__":
    main()
