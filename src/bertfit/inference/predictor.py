"""``Predictor.load(folder).predict(texts)``: the same code that scored the model in training."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bertfit.data.labels import LabelSet
from bertfit.errors import ConfigError, ModelError
from bertfit.inference.backends import BACKENDS, OnnxBackend, TorchBackend, onnx_path
from bertfit.modeling import (
    HEAD_FILE,
    HEADS,
    POOLED_CLASSIFIER,
    SEQUENCE_CLASSIFIER,
    PooledClassifier,
    load_encoder,
    load_errors,
    load_tokenizer,
)
from bertfit.training.batching import encode_texts
from bertfit.training.precision import default_device, resolve_precision

MANIFEST = "bertfit.json"


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float
    probabilities: dict[str, float]


class Predictor:
    """A fine-tuned classifier with its tokenizer, labels and max length.

    ``backend`` computes probabilities from token ids: ``TorchBackend`` or ``OnnxBackend``.
    """

    def __init__(self, backend: TorchBackend | OnnxBackend, tokenizer, labels: LabelSet, max_length: int,
                 batch_size: int = 64):  # fmt: skip
        self.backend = backend
        self.tokenizer = tokenizer
        self.labels = labels
        self.max_length = max_length
        self.batch_size = batch_size

    @classmethod
    def from_model(cls, model: nn.Module, tokenizer, labels: LabelSet, max_length: int, precision: str = "auto",
                   device: torch.device | None = None, batch_size: int = 64) -> Predictor:  # fmt: skip
        device = device or default_device()
        return cls(TorchBackend(model, resolve_precision(precision, device), device), tokenizer, labels,
                   max_length, batch_size)  # fmt: skip

    @classmethod
    def load(cls, folder: str | Path, precision: str | None = None, device: str | None = None,
             backend: str = "torch") -> Predictor:  # fmt: skip
        """Rebuild a saved model folder; weights load from safetensors only, no code runs from it.

        ``backend``: ``torch`` (the saved model), ``onnx`` or ``onnx-int8`` (after ``bertfit export``).
        """
        if backend not in BACKENDS:
            raise ConfigError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        folder = Path(folder)
        manifest = read_manifest(folder)
        labels = LabelSet(tuple(manifest["labels"]))
        tokenizer = load_tokenizer(str(folder))
        max_length = int(manifest["max_length"])
        batch_size = int(manifest.get("eval_batch_size", 64))
        if backend != "torch":
            return cls(OnnxBackend(onnx_path(folder, backend), backend), tokenizer, labels, max_length, batch_size)
        model = _load_model(folder, manifest, labels)
        return cls.from_model(model, tokenizer, labels, max_length, precision or manifest.get("precision", "auto"),
                              torch.device(device) if device else None, batch_size)  # fmt: skip

    @property
    def model(self) -> nn.Module:
        if not isinstance(self.backend, TorchBackend):
            raise ModelError(f"this predictor runs the {self.backend.name} export, not a PyTorch model")
        return self.backend.model

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return encode_texts(self.tokenizer, texts, self.max_length)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, one row per text and one column per label (in ``labels.names`` order)."""
        if isinstance(texts, str):
            raise TypeError("predict_proba takes a list of texts, not one string")
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self.proba_of_ids(self.encode(texts))

    def proba_of_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        return self.backend.probabilities(ids, self.tokenizer.pad_token_id or 0, self.batch_size)

    def predict(self, texts: Sequence[str] | str) -> list[Prediction]:
        if isinstance(texts, str):
            texts = [texts]
        probabilities = self.predict_proba(texts)
        return [self._prediction(row) for row in probabilities]

    def _prediction(self, row: np.ndarray) -> Prediction:
        best = int(row.argmax())
        return Prediction(
            self.labels.names[best],
            float(row[best]),
            {name: float(p) for name, p in zip(self.labels.names, row)},
        )


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise ModelError(f"{folder}: not a bertfit model folder (no {MANIFEST})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ModelError(f"{path}: unreadable ({err.msg})") from None


def _load_model(folder: Path, manifest: dict, labels: LabelSet) -> nn.Module:
    from transformers import AutoModelForSequenceClassification

    architecture = manifest.get("architecture", SEQUENCE_CLASSIFIER)
    try:
        if architecture == SEQUENCE_CLASSIFIER:
            return AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True)
        if architecture == POOLED_CLASSIFIER:
            from safetensors.torch import load_file

            encoder = load_encoder(str(folder), use_safetensors=True)
            head = HEADS[manifest["head"]](encoder.config.hidden_size, len(labels))
            head.load_state_dict(load_file(folder / HEAD_FILE))
            return PooledClassifier(encoder, head, manifest["pooling"], manifest["head"], manifest["frozen_encoder"])
    except load_errors() as err:
        raise ModelError(f"{folder}: cannot load the model: {str(err).splitlines()[0]}") from None
    raise ModelError(f"{folder}: unknown architecture {architecture!r} in {MANIFEST}")
