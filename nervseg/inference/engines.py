"""Inference engines: a normalised (N, 1, H, W) float32 batch in, softmax probabilities out.

An engine is one class registered in `ENGINES` (the `register` decorator) that satisfies `Engine`
(the Protocol): a `name`, the `device` it runs on, the torch `model` (or None), and a call; its
class opens it for a card (`open`, raising `Unavailable` with the reason when it cannot run) and
says whether it may be chosen automatically (`auto`). `create` takes the engine asked for, else the
first registered `auto` engine that can run the card; nothing else names an engine.

ONNX Runtime runs the graph `nervseg.inference.export` wrote beside the card's weights; torch
(the training framework) is the fallback for a card without a fresh graph, for a GPU, or
on request. Neither is imported before it is needed, so the app runs without torch when
every card has its graph. The thread count is set once, by `set_threads` from the
entry point (`nervseg.inference.segmenter.configure_threads`), and read when an engine starts.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from nervseg.models.cards import ModelCard, ModelError, sha256_file

log = logging.getLogger(__name__)
ONNX_FORMAT = "nervseg-onnx-1"  # graph + fp16 external data inside the card's safetensors (nervseg.inference.export)
INT8_FORMAT = "nervseg-onnx-int8-1"  # self-contained int8 QDQ graph (nervseg.inference.quantize)
_threads: int | None = None  # set once at an entry point; None = the library's defaults


def set_threads(n: int) -> None:
    """The CPU thread count for every engine: ONNX sessions read it when created, torch now if loaded."""
    global _threads
    _threads = int(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(_threads)


def _torch():
    """torch, imported on first use, with the entry point's thread count applied then."""
    first = "torch" not in sys.modules
    import torch

    if first and _threads:
        torch.set_num_threads(_threads)
    return torch


@runtime_checkable
class Engine(Protocol):
    """What `nervseg.inference.segmenter.Segmenter` needs from an engine."""

    name: str  # the registry key
    device: str  # where it computes ("cpu", "cuda", ...)
    model: object  # the torch module, None when the engine has none

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """(N, 1, H, W) float32 normalised input -> (N, C, H, W) float32 softmax probabilities."""


class Unavailable(ModelError):
    """An engine cannot run a card here; `notable`: worth a warning when another engine runs instead."""

    def __init__(self, why: str, notable: bool = False):
        super().__init__(why)
        self.notable = notable


ENGINES: dict[str, type] = {}  # name -> engine class, in the order `create` tries them automatically


def register(cls: type) -> type:
    """Class decorator: add an engine class to the registry (its `name` is the key).

    The class needs `name`, `auto` (whether `create` may pick it unasked), a classmethod
    `open(card, device) -> Engine` that raises `Unavailable` when it cannot run the card, and
    instances satisfying `Engine`.
    """
    for attr in ("name", "auto", "open"):
        if not hasattr(cls, attr):
            raise TypeError(f"engine class {cls.__name__} has no {attr!r}")
    ENGINES[cls.name] = cls
    return cls


def is_engine(obj) -> bool:
    """Whether `obj` is an instance of a registered engine class (else, e.g., a bare torch module)."""
    return isinstance(obj, tuple(ENGINES.values()))


def problem(name: str, card: ModelCard, device: str | None = None) -> str | None:
    """Why engine `name` cannot run the card (None when it can), without keeping it open."""
    cls = ENGINES[name]
    check = getattr(cls, "problem", None)
    if check is not None:
        return check(card, device)
    try:
        cls.open(card, device)
    except Unavailable as e:
        return str(e)
    return None


def onnx_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def onnx_file(card: ModelCard):
    """Where the card's ONNX graph lives: beside its weights, models/<weights stem>.onnx."""
    return card.weights_path().with_suffix(".onnx")


def int8_file(card: ModelCard) -> Path:
    """Where the card's int8 graph lives: beside its weights, models/<weights stem>.int8.onnx."""
    return card.weights_path().with_suffix(".int8.onnx")


def _file_digest(path: Path) -> str:
    """sha256 of a file, remembered while its size and modification time stay the same (pages ask on
    every rerun; hashing a 9 MB graph each time costs ~50 ms)."""
    st = path.stat()
    return _digest_of(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _digest_of(path: str, mtime_ns: int, size: int) -> str:
    return sha256_file(Path(path))


def free_size_graph(path) -> bytes | None:
    """The graph at `path` with its input height and width left free, as bytes (None without the onnx
    package). The networks are fully convolutional with scale-factor resizes, so any multiple of 32 runs;
    at the exported size the outputs are identical. Used to run a card's model at a stated smaller size."""
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load(str(path), load_external_data=False)
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for i, name in ((2, "height"), (3, "width")):
            dims[i].Clear()
            dims[i].dim_param = name
    del model.graph.value_info[:]  # shapes inferred for the exported size only
    return model.SerializeToString()


def _session(path, optimise: bool = True, graph: bytes | None = None):
    """An ONNX Runtime CPU session over `path` (or over `graph`, a modified copy of it, whose external
    weights are still read beside `path`), with the entry point's thread count."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimise
                                     else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    opts.intra_op_num_threads = _threads or 0  # 0 = ONNX Runtime's default (physical cores)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Off by default: spinning worker threads keep a core busy after each run, taken from the page,
    # the video encoder or another model (on 2 cores it made the next torch call up to twice as slow).
    spin = "1" if os.environ.get("NERVSEG_ORT_SPINNING") == "1" else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    if graph is not None:
        opts.add_session_config_entry("session.model_external_initializers_file_folder_path", str(Path(path).parent))
        return ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _open(card: ModelCard, optimise: bool = True, free_size: bool = False):
    """(session, None) when the card's graph is usable, else (None, why not). `free_size`: with the
    input's height and width left free (`free_size_graph`)."""
    if not onnx_available():
        return None, "onnxruntime is not installed"
    path = onnx_file(card)
    if not path.is_file():
        return None, f"no ONNX graph {path.name} (run `python -m nervseg.inference.export --models {card.id}`)"
    graph = None
    if free_size and (graph := free_size_graph(path)) is None:
        return None, "running at another input size needs the onnx package"
    try:
        session = _session(path, optimise, graph)
    except Exception as e:  # noqa: BLE001 - any load failure means: use torch, and say why
        return None, f"ONNX graph {path.name} cannot be loaded ({str(e).splitlines()[0][:200]})"
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("format") != ONNX_FORMAT or meta.get("weights_sha256") != card.weights_sha256:
        return None, (f"ONNX graph {path.name} is stale: made for weights {meta.get('weights_sha256', '?')[:12]}…, "
                      f"the card has {card.weights_sha256[:12]}… (re-run `python -m nervseg.inference.export "
                      f"--models {card.id}`)")
    return session, None


def onnx_problem(card: ModelCard) -> str | None:
    """Why the card cannot run on ONNX Runtime (None when it can): package, file, or staleness."""
    return _open(card, optimise=False)[1]


@register
class OnnxEngine:
    """An ONNX Runtime CPU session over the card's graph (weights read from its safetensors)."""

    name: ClassVar[str] = "onnx"
    auto: ClassVar[bool] = True  # first choice on the CPU when the card's graph is fresh
    device = "cpu"
    model = None  # no torch module

    @classmethod
    def open(cls, card: ModelCard, device: str | None = None, free_size: bool = False) -> OnnxEngine:
        if device not in (None, "cpu"):
            raise Unavailable(f"the ONNX engine runs on the CPU only (asked for {device})")
        session, why = _open(card, free_size=free_size)
        if session is None:  # a graph that is there but unusable deserves a word
            raise Unavailable(why, notable=onnx_file(card).is_file())
        return cls(card, session)

    @classmethod
    def problem(cls, card: ModelCard, device: str | None = None) -> str | None:
        if device not in (None, "cpu"):
            return f"the ONNX engine runs on the CPU only (asked for {device})"
        return onnx_problem(card)

    def __init__(self, card: ModelCard, session=None):
        if session is None:
            session, problem = _open(card)
            if problem:
                raise ModelError(f"model {card.id}: {problem}")
        digest = sha256_file(card.weights_path())
        if digest != card.weights_sha256:
            raise ModelError(f"model {card.id}: weights file {card.weights_file} does not match its card "
                             f"(sha256 {digest[:12]}… != {card.weights_sha256[:12]}…); it may be damaged or replaced.")
        self.session = session

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"x": np.ascontiguousarray(batch, np.float32)})[0]


@register
class OnnxInt8Engine(OnnxEngine):
    """ONNX Runtime over the card's int8 graph (`nervseg.inference.quantize`): about 3x faster on CPUs
    with VNNI, masks close to but not identical with the float graph's (the card's `int8` block says how
    close). Chosen by name only (Live), never automatically."""

    name: ClassVar[str] = "onnx-int8"
    auto: ClassVar[bool] = False

    @classmethod
    def open(cls, card: ModelCard, device: str | None = None, free_size: bool = False) -> OnnxInt8Engine:
        if (why := cls.problem(card, device)) is not None:
            raise Unavailable(why)
        path = int8_file(card)
        graph = free_size_graph(path) if free_size else None
        if free_size and graph is None:
            raise Unavailable("running at another input size needs the onnx package")
        try:
            session = _session(path, graph=graph)
        except Exception as e:  # noqa: BLE001 - any load failure: say why, the float graph still runs
            raise Unavailable(f"int8 graph {path.name} cannot be loaded ({str(e).splitlines()[0][:200]})",
                              notable=True) from None
        return cls(card, session)

    @classmethod
    def problem(cls, card: ModelCard, device: str | None = None) -> str | None:
        if device not in (None, "cpu"):
            return f"the int8 engine runs on the CPU only (asked for {device})"
        if not onnx_available():
            return "onnxruntime is not installed"
        path = int8_file(card)
        if not path.is_file():
            return f"no int8 graph {path.name} (run `python -m nervseg.inference.quantize --models {card.id}`)"
        made_for = card.int8.get("weights_sha256")
        if made_for != card.weights_sha256 or card.int8.get("sha256") != _file_digest(path):
            return (f"int8 graph {path.name} does not belong to these weights (re-run "
                    f"`python -m nervseg.inference.quantize --models {card.id}`)")
        return None


@register
class TorchEngine:
    """Eager PyTorch over a loaded nn.Module (CPU or GPU)."""

    name: ClassVar[str] = "torch"
    auto: ClassVar[bool] = True  # the fallback: any card, any device, when torch is installed

    @classmethod
    def open(cls, card: ModelCard, device: str | None = None, free_size: bool = False) -> TorchEngine:
        if importlib.util.find_spec("torch") is None:  # the lean app install has no fallback
            raise Unavailable("torch is not installed")
        from nervseg.models.cards import load_model

        return cls(load_model(card), device)

    @classmethod
    def problem(cls, card: ModelCard, device: str | None = None) -> str | None:
        return None if importlib.util.find_spec("torch") is not None else "torch is not installed"

    def __init__(self, model, device: str | None = None):
        torch = _torch()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = _torch()
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self.device))
            if isinstance(logits, tuple):
                logits = logits[0]
            return torch.softmax(logits.float(), dim=1).cpu().numpy()


def create(card: ModelCard, engine: str | None = None, device: str | None = None,
           free_size: bool = False) -> Engine:
    """A ready engine for the card: the one asked for (or $NERVSEG_ENGINE), else the first registered
    automatic engine that can run it (ONNX Runtime when the card's graph is fresh and the device is the
    CPU, else torch). An engine asked for by name that cannot run raises ModelError saying why.
    `free_size`: any input height and width (a stated smaller size; torch runs any size anyway)."""
    options = {"free_size": True} if free_size else {}  # only engines that take it are asked
    engine = engine or os.environ.get("NERVSEG_ENGINE") or None
    if engine is not None:
        if engine not in ENGINES:
            raise ModelError(f"unknown engine {engine!r}; known: {list(ENGINES)}")
        try:
            return ENGINES[engine].open(card, device, **options)
        except Unavailable as e:
            raise ModelError(f"model {card.id}: {e}") from None
    skipped: list[Unavailable] = []
    for cls in ENGINES.values():
        if not cls.auto:
            continue
        try:
            opened = cls.open(card, device, **options)
        except Unavailable as e:
            skipped.append(e)
            continue
        for e in skipped:
            if e.notable:
                log.warning("model %s runs on %s: %s", card.id, cls.name, e)
        return opened
    raise ModelError(f"model {card.id} cannot run: " + ", and ".join(str(e) for e in skipped))
