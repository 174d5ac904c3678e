"""Prediction from a saved model folder: the Predictor, its backends, and file-to-file prediction."""

from bertfit.inference.backends import OnnxBackend, TorchBackend, predict_logits, run_batched
from bertfit.inference.files import predict_file
from bertfit.inference.predictor import Predictor
from bertfit.tasks import Prediction

__all__ = [
    "OnnxBackend",
    "Prediction",
    "Predictor",
    "TorchBackend",
    "predict_file",
    "predict_logits",
    "run_batched",
]
