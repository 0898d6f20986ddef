"""An int8 graph of a card's network, for live use: faster on the CPU, checked against the full model.

    python -m nervseg.inference.quantize [--models ID ...] [--calibration 200]

ONNX Runtime's static quantization (QDQ, per-channel int8 weights in 7 bits: `reduce_range`, which
ONNX Runtime advises so that x86 CPUs without VNNI do not saturate; uint8 activations) of the graph
that `nervseg.inference.export` wrote, with activation ranges calibrated on the card's own training
images (the task's seeded split: never its validation images or the bundled samples). On CPUs with
AVX-512 VNNI its convolutions run about 3x faster than float32 (usgra-unet at 192 px, one thread:
69 -> 23 ms), which is what lets Live keep up with a scanner's video.

It is a different computation, so it is measured, not assumed: on the seeded split's validation side
(the card's validation images; for a final model, images it trained on but never calibrated with) each
class's Dice against the truth with both graphs (the card's validation rule: empty on empty = 1), the
Dice between the two graphs' masks where either marks the class (agreement), and the largest loss on
one image. The figures and the file's digests go in the card's `int8` block; the engine
("onnx-int8", `nervseg.inference.engines`) refuses a graph made for other weights.
We use ONNX Runtime's own quantizer (not a hand-written one): it knows which operators its int8
kernels fuse.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np

from nervseg.inference.engines import INT8_FORMAT, int8_file, onnx_problem
from nervseg.models.cards import ModelCard, ModelError, available, get_card, sha256_file

CALIBRATION_IMAGES = 200


def calibration_inputs(segmenter, pairs, n: int, seed: int = 0) -> list[np.ndarray]:
    """Up to `n` normalised (1, 1, h, w) network inputs from `pairs` (a seeded sample of them)."""
    from nervseg.io import load_image

    chosen = sorted(pairs, key=lambda p: p.image.name)
    random.Random(seed).shuffle(chosen)
    return [segmenter.network_input([load_image(p.image)]) for p in chosen[:n]]


def output_nodes(model) -> list[str]:
    """The Softmax and the layer that feeds it (the segmentation head): kept in float, since 8-bit logits
    and probabilities (steps of 1/255) tie and flip classes where two are close, for a few % of the time."""
    nodes = list(model.graph.node)
    softmax = [n for n in nodes if n.op_type == "Softmax"]
    feeding = {i for n in softmax for i in n.input}
    return [n.name for n in softmax] + [n.name for n in nodes if set(n.output) & feeding]


def quantized_graph(card: ModelCard, inputs: list[np.ndarray], out: Path) -> None:
    """Write the int8 QDQ graph of `card` to `out`, calibrated on `inputs`, stamped with its weights."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from nervseg.inference.engines import onnx_file

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(inputs)

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {"x": x}

    with tempfile.TemporaryDirectory() as tmp:
        whole, pre, made = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        onnx.save(onnx.load(str(onnx_file(card))), str(whole))  # external fp16 weights read in, saved inline
        quant_pre_process(str(whole), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(made), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=output_nodes(onnx.load(str(pre))))
        model = onnx.load(str(made))
        del model.metadata_props[:]
        for key, value in {"format": INT8_FORMAT, "weights_sha256": card.weights_sha256,
                           "calibration_images": str(len(inputs))}.items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, str(made))
        part = out.with_name(f".{out.name}.part")  # beside the target: os.replace is atomic on one file system
        shutil.copyfile(made, part)
        os.replace(part, out)  # the graph is replaced whole or not at all


def agreement(full, fast, pairs) -> dict:
    """Per class on `pairs`: mean Dice against the truth with each graph, and between their masks."""
    from nervseg.io import load_image, load_mask
    from nervseg.metrics import class_rows

    rows = {c: {"full": [], "int8": [], "agreement": []} for c in full.classes[1:]}
    for p in pairs:
        image, truth = load_image(p.image), load_mask(p.mask)
        a, b = full.predict(image).mask, fast.predict(image).mask
        for key, pred, ref in (("full", a, truth), ("int8", b, truth), ("agreement", b, a)):
            for row in class_rows(pred, ref, full.classes):
                if key != "agreement" or not row["absent"]:  # two empty masks agree trivially
                    rows[row["class"]][key].append(row["dice"])
    return {c: {f"{key}_dice_mean": round(float(np.mean(v)), 4) if v else None for key, v in r.items()}
            | {"int8_worst_image_dice_loss": round(float(np.max(np.subtract(r["full"], r["int8"]), initial=0.0)), 4)}
            for c, r in rows.items()}


def card_pairs(card: ModelCard, root: Path | None = None) -> tuple[list, list, int]:
    """(calibration pairs, measurement pairs, how many of those the model trained on) from the task's seeded split
    (the shipped cards' own): calibration on its training side where the card trained (`provenance.trained_on`),
    measurement on its validation side, so the two never share an image. A final model trained on every
    fold has trained on the validation side too, and the description says so (agreement between the two
    graphs is what is measured there, not quality on new scans)."""
    from nervseg.data.splits import split_task
    from nervseg.models.provenance import trained_on

    split = split_task(card.task, root)
    if not card.data.get("split"):
        return split.train, split.val, 0
    seen = sum(trained_on(card, p.image.name) for p in split.val)
    return [p for p in split.train if trained_on(card, p.image.name)], split.val, seen


def quantize_card(card: ModelCard, n_calibration: int = CALIBRATION_IMAGES, root: Path | None = None) -> dict:
    """Make the card's int8 graph and measure it; returns the card's new `int8` block (also saved)."""
    from nervseg.inference.segmenter import Segmenter

    if (why := onnx_problem(card)) is not None:
        raise ModelError(f"model {card.id}: no usable float graph to quantize ({why})")
    train, val, seen = card_pairs(card, root)
    if not train or not val:
        raise ModelError(f"model {card.id}: no {'training' if not train else 'validation'} images of task "
                         f"{card.task!r} here (calibration needs the first, the measurement the second)")
    full = Segmenter(card, engine="onnx")
    inputs = calibration_inputs(full, train, n_calibration)
    out = int8_file(card)
    quantized_graph(card, inputs, out)
    card.int8 = {
        "file": out.name,
        "sha256": sha256_file(out),
        "weights_sha256": card.weights_sha256,
        "calibration": f"{len(inputs)} training images of the {card.task} seeded split (not its validation side)",
        "command": f"python -m nervseg.inference.quantize --models {card.id}",
    }
    fast = Segmenter(card, engine="onnx-int8")
    on = ("the card's validation images" if not seen else f"the validation side of the {card.task} seeded split, "
          f"none used for calibration; the model trained on {seen} of them")
    card.int8["validation"] = {"n_images": len(val), "n_trained_on": seen, "on": on, "input": "the card's input size",
                               "per_class": agreement(full, fast, val)}
    card.save(Path(card.path))
    return card.int8


def main(argv=None) -> None:
    from nervseg.inference.segmenter import configure_threads

    ap = argparse.ArgumentParser(prog="python -m nervseg.inference.quantize", description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", help="model ids (default: every shipped model)")
    ap.add_argument("--calibration", type=int, default=CALIBRATION_IMAGES, help="training images to calibrate on")
    args = ap.parse_args(argv)
    configure_threads()
    for model_id in args.models or [c.id for c in available()]:
        block = quantize_card(get_card(model_id), args.calibration)
        print(model_id, json.dumps(block["validation"]["per_class"]), flush=True)


if __name__ == "__main__":
    main()
