"""Prediction from a saved model folder: the Predictor, its backends, and file-to-file prediction."""

from bertfit.inference.backends import OnnxBackend, TorchBackend, predict_logits, run_batched
from bertfit.inference.files import predict_file
from bertfit.inference.predictor import MANIFEST, Prediction, Predictor, read_manifest

__all__ = [
    "MANIFEST",
    "OnnxBackend",
    "Prediction",
    "Predictor",
    "TorchBackend",
    "predict_file",
    "predict_logits",
    "read_manifest",
    "run_batched",
]
