"""Inference: a card's model behind one Segmenter, on ONNX Runtime or torch (engines), shared per process (pool).

`nervseg.inference.load(model_id).predict(image)` is the contract.
"""

from nervseg.inference.segmenter import Prediction, Segmenter, configure_threads, load

__all__ = ["Prediction", "Segmenter", "configure_threads", "load"]
