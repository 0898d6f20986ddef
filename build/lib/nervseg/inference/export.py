"""Export a model card's network to ONNX for the ONNX Runtime engine (needs torch and onnx).

    python -m nervseg.inference.export [--models ID ...] [--check]

The .onnx file beside the card holds the graph only (Softmax included, batch dynamic).
Its weights are external data pointing into the card's own .safetensors file: the same
float16 bytes torch loads, so the .onnx adds ~0.1 MB per model and both engines compute
with identical fp16-rounded values; a Cast to float32 after each weight is folded by
ONNX Runtime at load. BatchNorm is kept unfolded in the file (folding in torch would
round the fused weights to fp16 differently); ONNX Runtime fuses it in float32.

The file records the weights' sha256: a retrained model whose graph was not re-exported
is detected (`nervseg.inference.engines.onnx_problem`) and runs on torch until this is run again.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np

from nervseg.inference.engines import ONNX_FORMAT, onnx_file, onnx_problem
from nervseg.models.cards import ModelCard, ModelError, available, get_card, load_model

OPSET = 17
_ST_DTYPES = {"F16": (np.float16, 10), "F32": (np.float32, 1)}  # safetensors dtype -> numpy, onnx TensorProto enum


def safetensors_layout(path: Path) -> dict[str, tuple[str, list[int], int, int]]:
    """name -> (dtype, shape, absolute byte offset, byte length) of each tensor in a safetensors file."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    base = 8 + header_len
    return {
        name: (t["dtype"], list(t["shape"]), base + t["data_offsets"][0], t["data_offsets"][1] - t["data_offsets"][0])
        for name, t in header.items()
        if name != "__metadata__"
    }


def _export_graph(model, card: ModelCard):
    """torch.onnx (TorchScript exporter, BatchNorm preserved) -> onnx.ModelProto with inline weights."""
    import io

    import onnx
    import torch

    class WithSoftmax(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            out = self.net(x)
            return torch.softmax((out[0] if isinstance(out, tuple) else out).float(), dim=1)

    h, w = (int(v) for v in card.input_size)
    buf = io.BytesIO()
    torch.onnx.export(
        WithSoftmax(model).eval(), (torch.zeros(2, 1, h, w),), buf, dynamo=False, opset_version=OPSET,
        input_names=["x"], output_names=["probs"], dynamic_axes={"x": {0: "batch"}, "probs": {0: "batch"}},
        do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE,
    )
    return onnx.load_from_string(buf.getvalue())


def _point_into_safetensors(proto, card: ModelCard, state: dict) -> int:
    """Replace each initialiser that is a weights tensor by fp16 external data + Cast; returns inline bytes left."""
    import onnx
    from onnx import helper, numpy_helper

    layout = safetensors_layout(card.weights_path())
    graph = proto.graph
    casts, kept, inline = [], [], 0
    for init in graph.initializer:
        key = init.name.removeprefix("net.")
        if key not in layout or layout[key][0] not in _ST_DTYPES:
            kept.append(init)
            inline += len(init.raw_data)
            continue
        dtype, shape, offset, length = layout[key]
        values = numpy_helper.to_array(init)
        if list(values.shape) != shape or not np.array_equal(values, state[key].numpy()):
            raise ModelError(f"model {card.id}: ONNX initialiser {init.name} differs from the weights file")
        ext = onnx.TensorProto(name=f"{init.name}::stored", data_type=_ST_DTYPES[dtype][1], dims=shape)
        ext.data_location = onnx.TensorProto.EXTERNAL
        for k, v in (("location", card.weights_path().name), ("offset", str(offset)), ("length", str(length))):
            ext.external_data.add(key=k, value=v)
        kept.append(ext)
        casts.append(helper.make_node("Cast", [ext.name], [init.name], to=onnx.TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return inline


def export_card(card: ModelCard) -> Path:
    """Write the card's ONNX graph beside its weights (its external data is named relative to it)."""
    import onnx
    import torch

    model = load_model(card)  # verifies the weights' sha256
    proto = _export_graph(model, card)
    inline = _point_into_safetensors(proto, card, model.state_dict())
    if inline > 1 << 20:
        raise ModelError(f"model {card.id}: {inline} bytes of weights stayed inline; the exporter folded them")
    meta = {"format": ONNX_FORMAT, "model_id": card.id, "weights_file": card.weights_file,
            "weights_sha256": card.weights_sha256, "input_size": json.dumps(list(card.input_size)),
            "classes": json.dumps(list(card.classes)), "exporter": f"torch {torch.__version__}, opset {OPSET}"}
    onnx.helper.set_model_props(proto, meta)
    proto.producer_name = "nervseg.onnx_export"
    path = onnx_file(card)
    path.write_bytes(proto.SerializeToString())
    onnx.checker.check_model(str(path))  # graph and external data references, resolved beside the file
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nervseg.inference.export", description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", metavar="ID", help="model ids (default: every card in models/)")
    ap.add_argument("--check", action="store_true", help="only report which graphs are missing or stale")
    args = ap.parse_args(argv)
    cards = [get_card(m) for m in args.models] if args.models else available()
    stale = 0
    for card in cards:
        problem = onnx_problem(card)
        if args.check:
            stale += bool(problem)
            print(f"{card.id}: {problem or 'up to date'}")
            continue
        path = export_card(card)
        print(f"{card.id}: wrote {path} ({path.stat().st_size / 1e3:.0f} kB); {onnx_problem(card) or 'verified'}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
