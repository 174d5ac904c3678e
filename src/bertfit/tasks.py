"""Task shapes: single-label classification (binary or multi-class), multi-label, regression.

A ``Task`` says what the model's raw outputs (logits) mean: the loss that trains them, how they
become probabilities or values (temperature, softmax/sigmoid, target scale), how a decision is
made (argmax, a tuned threshold, one threshold per label) and which metric picks the best epoch.
It is saved in the model folder, so training, evaluation and prediction read outputs one way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from bertfit.data.labels import LabelSet

if TYPE_CHECKING:  # torch loads only when a model is trained, not for config checks or --help
    import torch

CLASSIFICATION = "classification"
MULTI_LABEL = "multi-label"
REGRESSION = "regression"
TASKS = ("auto", CLASSIFICATION, MULTI_LABEL, REGRESSION)


@dataclass(frozen=True)
class Task:
    kind: str
    labels: LabelSet  # regression: one name, the predicted value's
    label_sep: str = ","  # multi-label: joins label names in files and predictions
    # Regression trains on standardised targets; outputs are scaled back with these.
    target_mean: float = 0.0
    target_std: float = 1.0
    temperature: float = 1.0  # probability calibration, fitted on validation
    # Binary: the positive class id and its threshold; multi-label: one threshold per label.
    positive: int | None = None
    thresholds: tuple[float, ...] | None = None

    @property
    def primary_metric(self) -> str:
        """What picks the best epoch (greater is better)."""
        if self.kind == REGRESSION:
            return "pearson"
        if self.kind == MULTI_LABEL:
            return "f1_macro"
        return "mcc" if len(self.labels) == 2 else "f1_macro"

    # -- targets --------------------------------------------------------------------------
    def gold(self, labels: Sequence) -> np.ndarray:
        """Labels as metrics read them: class ids, a 0/1 matrix, or values."""
        if self.kind == MULTI_LABEL:
            index = self.labels.label2id
            matrix = np.zeros((len(labels), len(self.labels)), dtype=np.float32)
            for row, names in enumerate(labels):
                matrix[row, [index[n] for n in names]] = 1.0
            return matrix
        if self.kind == REGRESSION:
            return np.asarray(labels, dtype=np.float64)
        return np.asarray(self.labels.encode(labels), dtype=np.int64)

    def targets(self, gold: np.ndarray) -> torch.Tensor:
        """Gold labels (see ``gold``) as the loss reads them."""
        import torch

        if self.kind == REGRESSION:
            return torch.tensor((gold - self.target_mean) / self.target_std, dtype=torch.float32)
        return torch.from_numpy(gold)

    def with_target_scale(self, values: Sequence[float]) -> Task:
        values = np.asarray(values, dtype=np.float64)
        std = float(values.std()) if len(values) > 1 else 1.0
        return replace(self, target_mean=float(values.mean()) if len(values) else 0.0, target_std=std or 1.0)

    # -- loss -----------------------------------------------------------------------------
    def loss(self, train_gold: np.ndarray, class_weights: str = "none") -> Callable:
        import torch
        from torch import nn

        balanced = class_weights == "balanced"
        if self.kind == REGRESSION:
            mse = nn.MSELoss()
            return lambda logits, targets: mse(logits.squeeze(-1), targets)
        if self.kind == MULTI_LABEL:
            positives = train_gold.sum(axis=0)
            # balanced: each label's positives weigh as much as its negatives
            weight = np.where(positives > 0, (len(train_gold) - positives) / np.maximum(positives, 1), 1.0)
            return nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weight, dtype=torch.float32) if balanced else None)
        return nn.CrossEntropyLoss(weight=balanced_class_weights(train_gold, len(self.labels)) if balanced else None)

    # -- outputs and decisions -------------------------------------------------------------
    def outputs(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities (per class or per label) or regression values, from raw logits."""
        logits = np.asarray(logits, dtype=np.float64)
        if self.kind == REGRESSION:
            return (logits[:, 0] * self.target_std + self.target_mean).astype(np.float32)
        scaled = logits / self.temperature
        if self.kind == MULTI_LABEL:
            return (1.0 / (1.0 + np.exp(-scaled))).astype(np.float32)
        scaled -= scaled.max(axis=1, keepdims=True)
        exp = np.exp(scaled)
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)

    def decide(self, outputs: np.ndarray) -> np.ndarray:
        """Class ids (classification), a 0/1 matrix (multi-label), or the values (regression)."""
        if self.kind == REGRESSION:
            return outputs
        if self.kind == MULTI_LABEL:
            thresholds = np.asarray(self.thresholds if self.thresholds else [0.5] * len(self.labels))
            return (outputs >= thresholds).astype(np.int64)
        if self.positive is not None and self.thresholds:
            other = 1 - self.positive
            return np.where(outputs[:, self.positive] >= self.thresholds[0], self.positive, other)
        return outputs.argmax(axis=1)

    def label_names(self, decisions: np.ndarray) -> list[str]:
        """Decisions as the strings written to files: a class, labels joined by ``label_sep``, a value."""
        if self.kind == REGRESSION:
            return [f"{v:.6g}" for v in decisions]
        if self.kind == MULTI_LABEL:
            return [self.label_sep.join(self.labels.names[i] for i in np.flatnonzero(row)) for row in decisions]
        return [self.labels.names[i] for i in decisions]

    # -- saving -----------------------------------------------------------------------------
    def to_manifest(self) -> dict:
        return {
            "task": self.kind,
            "label_sep": self.label_sep,
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "temperature": self.temperature,
            "positive_label": None if self.positive is None else self.labels.names[self.positive],
            "thresholds": list(self.thresholds) if self.thresholds else None,
        }

    @classmethod
    def from_manifest(cls, manifest: dict) -> Task:
        labels = LabelSet(tuple(manifest["labels"]))
        positive = manifest.get("positive_label")
        thresholds = manifest.get("thresholds")
        return cls(
            kind=manifest.get("task", CLASSIFICATION),
            labels=labels,
            label_sep=manifest.get("label_sep", ","),
            target_mean=float(manifest.get("target_mean", 0.0)),
            target_std=float(manifest.get("target_std", 1.0)),
            temperature=float(manifest.get("temperature", 1.0)),
            positive=None if positive is None else labels.label2id[positive],
            thresholds=tuple(thresholds) if thresholds else None,
        )


def balanced_class_weights(gold: Sequence[int], num_labels: int) -> torch.Tensor:
    """'balanced' weights n / (k * count), as scikit-learn computes them; unseen classes weigh 1."""
    import torch

    counts = np.bincount(np.asarray(gold, dtype=np.int64), minlength=num_labels).astype(np.float64)
    weights = np.where(counts > 0, len(gold) / (num_labels * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32)
