"""Score models on a folder of images and masks.

    python -m nervseg.evaluate --model kaggle-bp-unet --data DIR [--out FILE.csv]
    python -m nervseg.evaluate --all --data DIR

DIR holds images/ and masks/ (mask named <stem>.png or <stem>_mask.png|.tif), or
image and *_mask files side by side. Writes a per-image CSV and a JSON summary
per class (per-image mean ± sd, pooled). Empty masks follow nervseg.metrics' rule.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

from nervseg.data.datasets import Pair
from nervseg.data.pairs import find_pairs
from nervseg.evaluate.batch import class_figures, score_rows
from nervseg.files import write_atomic
from nervseg.inference.segmenter import configure_threads
from nervseg.io.limits import InputError, safe_name
from nervseg.io.readers import check_pair, load_image_data, load_mask
from nervseg.models.cards import ModelError


def evaluate_pairs(segmenter, pairs: list[Pair], progress=None) -> dict:
    """Per-image rows (batch.score_rows) and a per-class summary (batch.class_figures) for one segmenter."""
    classes = segmenter.classes
    rows = []
    for i, pair in enumerate(pairs):
        data = load_image_data(pair.image)
        true = load_mask(pair.mask)
        check_pair(data.image, true, safe_name(pair.image.name), safe_name(pair.mask.name))
        pred = segmenter.predict(data.image)
        rows += score_rows(segmenter.card.id, safe_name(pair.image.name), pred.mask, true, classes, data.pixel_spacing_mm,
                           pred.seconds)
        if progress:
            progress(i + 1, len(pairs))
    per_class = {c: class_figures([r for r in rows if r["class"] == c]) for c in classes[1:]}
    return {"rows": rows, "summary": {"n_images": len(pairs), "per_class": per_class}}


def write_csv(rows: list[dict], path: Path) -> None:
    """Per-image rows as UTF-8 CSV, written atomically (all or nothing)."""
    def write(f) -> None:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    write_atomic(path, write)


def _json_safe(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None if math.isnan(o) else "inf"
    if isinstance(o, dict):
        return {k: _json_safe(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_json_safe(v) for v in o]
    return o


def main(argv=None) -> None:
    from nervseg.inference.segmenter import load
    from nervseg.models.cards import available

    ap = argparse.ArgumentParser(prog="python -m nervseg.evaluate", description=__doc__.split("\n")[0])
    who = ap.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", help="model id (see models/*.json)")
    who.add_argument("--all", action="store_true", help="every shipped model")
    ap.add_argument("--data", type=Path, required=True, help="folder with images and masks")
    ap.add_argument("--out", type=Path, default=None, help="per-image CSV (JSON summary beside it)")
    ap.add_argument("--tta", action="store_true", help="horizontal-flip test-time augmentation")
    args = ap.parse_args(argv)
    configure_threads()

    pairs = find_pairs(args.data)
    if not pairs:
        raise SystemExit(f"no image/mask pairs found under {args.data}")
    ids = [c.id for c in available()] if args.all else [args.model]
    all_rows, summaries = [], {}
    for mid in ids:
        try:
            seg = load(mid, tta=args.tta)
            res = evaluate_pairs(seg, pairs)
        except (InputError, ModelError) as e:  # a readable line, no traceback, no partial output
            raise SystemExit(f"error: {e}") from None
        all_rows += res["rows"]
        summaries[mid] = res["summary"]
        for cname, e in res["summary"]["per_class"].items():
            print(f"{mid:24s} {cname:7s} n={res['summary']['n_images']:4d} "
                  f"dice {e['dice_mean']:.4f} ± {e['dice_sd']:.4f}  pooled {e['pooled']['dice']:.4f}  "
                  f"iou {e['iou_mean']:.4f}  hd95 {e['hd95_mean'] if e['hd95_mean'] is not None else float('nan'):.1f}px")
    if args.out:
        write_csv(all_rows, args.out)
        write_atomic(args.out.with_suffix(".json"), lambda f: f.write(json.dumps(_json_safe(summaries), indent=2)))
        print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
