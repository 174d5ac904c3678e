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
    describe_load_error,
    load_encoder,
    load_errors,
    load_tokenizer,
    safe_loading,
    uses_token_types,
)
from bertfit.tasks import CLASSIFICATION, MULTI_LABEL, REGRESSION, Task
from bertfit.training.batching import Encoded, TextPolicy, aggregate_windows, encode_texts
from bertfit.training.precision import default_device, resolve_precision

MANIFEST = "bertfit.json"


@dataclass(frozen=True)
class Prediction:
    """One text's prediction. ``label``: the class, the chosen labels joined by the label separator
    (multi-label), or the value as text (regression); ``probability``: the chosen class's, or the top
    label's; ``labels``: the chosen labels (multi-label); ``value``: the number (regression)."""

    label: str
    probability: float
    probabilities: dict[str, float]
    labels: tuple[str, ...] | None = None
    value: float | None = None

    def to_dict(self) -> dict:
        if self.value is not None:
            return {"value": self.value}
        out = {"label": self.label, "probability": self.probability, "probabilities": self.probabilities}
        return out if self.labels is None else {**out, "labels": list(self.labels)}


class Predictor:
    """A fine-tuned model with its tokenizer, task (labels, calibration, decision rule) and text policy.

    ``backend`` computes logits from token ids: ``TorchBackend`` or ``OnnxBackend``; everything after
    the logits (window aggregation, temperature, softmax/sigmoid, thresholds) is the same for both.
    """

    def __init__(self, backend: TorchBackend | OnnxBackend, tokenizer, task: Task, policy: TextPolicy,
                 batch_size: int = 64, token_types: bool = True):  # fmt: skip
        self.backend = backend
        self.tokenizer = tokenizer
        self.task = task
        self.policy = policy
        self.batch_size = batch_size
        self.token_types = token_types

    @classmethod
    def from_model(cls, model: nn.Module, tokenizer, task: Task | LabelSet, policy: TextPolicy | int,
                   precision: str = "auto", device: torch.device | None = None, batch_size: int = 64) -> Predictor:  # fmt: skip
        """A predictor over an in-memory model; a ``LabelSet`` means single-label classification and an
        int ``policy`` the max length, truncating."""
        task = Task(CLASSIFICATION, task) if isinstance(task, LabelSet) else task
        policy = TextPolicy(policy) if isinstance(policy, int) else policy
        device = device or default_device()
        backend = TorchBackend(model, resolve_precision(precision, device), device)
        return cls(backend, tokenizer, task, policy, batch_size, uses_token_types(model.config))

    @classmethod
    def load(cls, folder: str | Path, precision: str | None = None, device: str | None = None,
             backend: str = "torch", trust_remote_code: bool = False) -> Predictor:  # fmt: skip
        """Rebuild a saved model folder; weights load from safetensors only, and no code runs from it
        unless ``trust_remote_code`` (for models whose architecture ships as code).

        ``backend``: ``torch`` (the saved model), ``onnx`` or ``onnx-int8`` (after ``bertfit export``).
        """
        if backend not in BACKENDS:
            raise ConfigError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        folder = Path(folder)
        manifest = read_manifest(folder)
        task = Task.from_manifest(manifest)
        tokenizer = load_tokenizer(str(folder), trust_remote_code)
        policy = policy_of(manifest)
        batch_size = int(manifest.get("eval_batch_size", 64))
        if backend != "torch":
            onnx = OnnxBackend(onnx_path(folder, backend), backend)
            return cls(onnx, tokenizer, task, policy, batch_size, "token_type_ids" in onnx.inputs)
        model = _load_model(folder, manifest, task.labels, trust_remote_code)
        return cls.from_model(model, tokenizer, task, policy, precision or manifest.get("precision", "auto"),
                              torch.device(device) if device else None, batch_size)  # fmt: skip

    @property
    def labels(self) -> LabelSet:
        return self.task.labels

    @property
    def max_length(self) -> int:
        return self.policy.max_length

    @property
    def model(self) -> nn.Module:
        if not isinstance(self.backend, TorchBackend):
            raise ModelError(f"this predictor runs the {self.backend.name} export, not a PyTorch model")
        return self.backend.model

    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Encoded:
        return encode_texts(self.tokenizer, texts, self.policy, pairs, self.token_types)

    def logits_of(self, encoded: Encoded) -> np.ndarray:
        """One row of logits per text (windows of a long text aggregated)."""
        logits = self.backend.logits(encoded, self.tokenizer.pad_token_id or 0, self.batch_size)
        return aggregate_windows(logits, encoded, self.policy.aggregate)

    def outputs_of(self, encoded: Encoded) -> np.ndarray:
        return self.task.outputs(self.logits_of(encoded))

    def predict_proba(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray:
        """Per text: one probability per label (``labels.names`` order), or the value (regression)."""
        if isinstance(texts, str):
            raise TypeError("predict_proba takes a list of texts, not one string")
        if pairs is not None and len(pairs) != len(texts):
            raise ConfigError(f"{len(texts)} texts but {len(pairs)} pair texts")
        if not texts:
            shape = (0,) if self.task.kind == REGRESSION else (0, len(self.labels))
            return np.zeros(shape, dtype=np.float32)
        return self.outputs_of(self.encode(texts, pairs))

    def predict(self, texts: Sequence[str] | str, pairs: Sequence[str] | str | None = None) -> list[Prediction]:
        if isinstance(texts, str):
            texts = [texts]
            pairs = [pairs] if isinstance(pairs, str) else pairs
        return self.predictions(self.predict_proba(texts, pairs))

    def predictions(self, outputs: np.ndarray) -> list[Prediction]:
        """``Prediction`` objects from ``predict_proba``'s outputs, with the saved decision rule."""
        decisions = self.task.decide(outputs)
        names = self.task.label_names(decisions)
        if self.task.kind == REGRESSION:
            return [Prediction(name, float("nan"), {}, value=float(v)) for name, v in zip(names, outputs)]
        found = []
        for row, decision, name in zip(outputs, decisions, names):
            probabilities = {label: float(p) for label, p in zip(self.labels.names, row)}
            if self.task.kind == MULTI_LABEL:
                chosen = tuple(self.labels.names[i] for i in np.flatnonzero(decision))
                found.append(Prediction(name, float(row.max()), probabilities, labels=chosen))
            else:
                found.append(Prediction(name, float(row[decision]), probabilities))
        return found


def policy_of(manifest: dict) -> TextPolicy:
    return TextPolicy(int(manifest["max_length"]), manifest.get("long_text", "truncate"),
                      int(manifest.get("stride", 64)), manifest.get("window_aggregate", "mean"))  # fmt: skip


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise ModelError(f"{folder}: not a bertfit model folder (no {MANIFEST})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ModelError(f"{path}: unreadable ({err.msg})") from None


def _load_model(folder: Path, manifest: dict, labels: LabelSet, trust_remote_code: bool = False) -> nn.Module:
    from transformers import AutoModelForSequenceClassification

    architecture = manifest.get("architecture", SEQUENCE_CLASSIFIER)
    try:
        if architecture == SEQUENCE_CLASSIFIER:
            return AutoModelForSequenceClassification.from_pretrained(folder, **safe_loading(trust_remote_code))
        if architecture == POOLED_CLASSIFIER:
            from safetensors.torch import load_file

            encoder = load_encoder(str(folder), trust_remote_code)
            head = HEADS[manifest["head"]](encoder.config.hidden_size, len(labels))
            head.load_state_dict(load_file(folder / HEAD_FILE))
            return PooledClassifier(encoder, head, manifest["pooling"], manifest["head"], manifest["frozen_encoder"])
    except load_errors() as err:
        raise ModelError(f"{folder}: cannot load the model: {describe_load_error(err)}") from None
    raise ModelError(f"{folder}: unknown architecture {architecture!r} in {MANIFEST}")
