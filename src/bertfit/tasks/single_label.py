"""Single-label classification, binary or multi-class: one class per text.

Softmax over the classes; the decision is the argmax, or for a binary task the positive class's
probability against a threshold tuned on validation (best F1, or a target recall). MCC picks the best
epoch of a binary task, macro F1 that of a multi-class one. Its state adds the positive class (saved by
name) to the shared calibration; near chance is an MCC under 0.2, or an accuracy hardly above always
predicting the most common class.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from bertfit.errors import ConfigError
from bertfit.tasks.base import CHANCE_MARGIN, CalibrationOptions, Task
from bertfit.tasks.calibration import (
    best_f1_threshold,
    enough_positives,
    expected_calibration_error,
    recall_threshold,
    threshold_at_temperature,
)
from bertfit.tasks.labels import LabelSet

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CHANCE_MCC = 0.2  # below it, a prediction agrees with the truth little more than a coin does


@dataclass(frozen=True)
class SingleLabelTask(Task):
    name = "classification"
    problem_type = "single_label_classification"
    headlines = (("accuracy", "accuracy"), ("MCC", "mcc"), ("F1 macro", "f1_macro"),
                 ("F1 weighted", "f1_weighted"), ("ECE", "ece"), ("loss", "loss"))  # fmt: skip

    positive: int | None = None  # binary with a threshold: the class id the threshold applies to

    @classmethod
    def claims(cls, train_labels: list, sep: str, sep_given: bool, source: str) -> bool:
        return True  # what labels are when no other shape claims them

    @property
    def primary_metric(self) -> str:
        return "mcc" if len(self.labels) == 2 else "f1_macro"

    @property
    def parity_metric(self) -> str:
        return "accuracy"

    def loss(self, train_gold: np.ndarray, class_weights: str = "none") -> Callable:
        from torch import nn

        balanced = class_weights == "balanced"
        return nn.CrossEntropyLoss(weight=balanced_class_weights(train_gold, len(self.labels)) if balanced else None)

    def outputs(self, logits: np.ndarray) -> np.ndarray:
        scale, _ = self.applied_scale()
        scaled = np.asarray(logits, dtype=np.float64) * scale
        scaled -= scaled.max(axis=1, keepdims=True)
        exp = np.exp(scaled)
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)

    def uncertainty(self, outputs: np.ndarray) -> np.ndarray:
        """Binary with a tuned threshold: the distance from it (the boundary is there); else the margin."""
        if self.positive is not None and self.thresholds:
            return undecided(outputs[:, self.positive], np.asarray(self.thresholds[0]))
        return super().uncertainty(outputs)

    def decide(self, outputs: np.ndarray) -> np.ndarray:
        """Class ids: the argmax, or the positive class where its probability reaches the threshold."""
        if self.positive is not None and self.thresholds:
            other = 1 - self.positive
            return np.where(outputs[:, self.positive] >= self.thresholds[0], self.positive, other)
        return outputs.argmax(axis=1)

    def calibrated(self, logits: np.ndarray, gold: np.ndarray, options: CalibrationOptions) -> Task:
        if len(gold) == 0:
            return self
        task: SingleLabelTask = self.with_temperature(logits, gold, multi_label=False) if options.temperature else self
        if options.threshold == "auto" and options.target_recall is None:
            return task
        if len(task.labels) != 2:
            log.warning("--threshold/--target-recall apply to binary and multi-label tasks; %d classes use argmax",
                        len(task.labels))  # fmt: skip
            return task
        positive = task._positive_class(gold, options.positive_label)
        scores, is_positive = task.outputs(logits)[:, positive], gold == positive
        fitted = options.threshold == "tune" or options.target_recall is not None
        if fitted and not enough_positives(is_positive, f"the {task.labels.names[positive]!r} threshold"):
            value = 0.5
        elif options.target_recall is not None:
            value = recall_threshold(scores, is_positive, options.target_recall)
        elif options.threshold == "tune":
            unscaled = self.outputs(logits)[:, positive]  # tuned at T = 1: see threshold_at_temperature
            value = threshold_at_temperature(best_f1_threshold(unscaled, is_positive), task.temperature)
        else:
            value = float(options.threshold)
        log.info("decision: %s when its probability >= %.4f", task.labels.names[positive], value)
        return replace(task, positive=positive, thresholds=(value,))

    def _positive_class(self, gold: np.ndarray, name: str | None) -> int:
        """The named class, else the rarer class in validation (what imbalance thresholds are for)."""
        if name is not None:
            if name not in self.labels.label2id:
                raise ConfigError(f"--positive-label {name!r} is not a label: {', '.join(self.labels.names)}")
            return self.labels.label2id[name]
        counts = np.bincount(gold, minlength=2)
        return int(counts.argmin()) if counts[0] != counts[1] else 1

    def metrics(self, gold: np.ndarray, outputs: np.ndarray) -> dict:
        metrics = classification_metrics(gold, outputs, self.labels, self.decide(outputs))
        if self.thresholds:
            positive = self.labels.names[self.positive]
            metrics["threshold"] = {"label": positive, "value": self.thresholds[0]}
            at_argmax = classification_metrics(gold, outputs, self.labels)
            metrics["at_argmax"] = {k: at_argmax[k] for k in ("accuracy", "mcc", "f1_macro")}
            metrics["at_argmax"][f"f1_{positive}"] = at_argmax["per_class"][positive]["f1"]
        return metrics

    def near_chance(self, metrics: dict) -> str | None:
        """MCC under ``CHANCE_MCC``, or accuracy within ``CHANCE_MARGIN`` of always predicting the most
        common class. On imbalanced data the margin shrinks to a tenth of that guess's error rate: at 95/5,
        accuracy 0.97 is a detector that finds rare rows, not a guess (its MCC says so)."""
        majority = max(c["support"] for c in metrics["per_class"].values()) / max(metrics["rows"], 1)
        mcc, accuracy = metrics["mcc"], metrics["accuracy"]
        if mcc >= CHANCE_MCC and accuracy >= majority + min(CHANCE_MARGIN, (1 - majority) / 10):
            return None
        return (f"MCC {mcc:.2f} (under {CHANCE_MCC} is near chance), accuracy {accuracy:.3f} against "
                f"{majority:.3f} for always predicting the most common class")  # fmt: skip

    # -- saving -----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        positive = None if self.positive is None else self.labels.names[self.positive]
        return {**super().to_dict(), "positive_label": positive}

    @classmethod
    def read_state(cls, state: dict, labels: LabelSet) -> dict:
        read, name = super().read_state(state, labels), state.get("positive_label")
        return read if name is None else {**read, "positive": labels.label2id[name]}

    # -- the report -------------------------------------------------------------------------
    def curve_labels(self, gold: np.ndarray, most: int) -> list[int]:
        if len(self.labels) == 2:
            positive = self.positive if self.positive is not None else 1
            return [positive]
        return super().curve_labels(gold, most)

    def decision_rule(self) -> str:
        if self.positive is not None and self.thresholds:
            name = self.labels.names[self.positive]
            return f"{name} when its probability is at least {self.thresholds[0]:.3f} (fitted on validation)"
        if len(self.labels) == 2:
            return "the more probable class (a threshold of 0.5)"
        return super().decision_rule()


def balanced_class_weights(gold: Sequence[int], num_labels: int) -> torch.Tensor:
    """'balanced' weights n / (k * count), as scikit-learn computes them; unseen classes weigh 1."""
    import torch

    counts = np.bincount(np.asarray(gold, dtype=np.int64), minlength=num_labels).astype(np.float64)
    weights = np.where(counts > 0, len(gold) / (num_labels * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


def log_loss(probabilities: np.ndarray, gold: Sequence[int]) -> float:
    picked = probabilities[np.arange(len(gold)), np.asarray(gold)]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def classification_metrics(
    gold: Sequence[int], probabilities: np.ndarray, labels: LabelSet, predicted: np.ndarray | None = None
) -> dict:
    """Accuracy, MCC, per-class P/R/F1, macro and weighted F1, the confusion matrix, the loss and the
    calibration error. ``predicted`` defaults to the argmax of ``probabilities``."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        matthews_corrcoef,
        precision_recall_fscore_support,
    )

    gold = np.asarray(gold)
    predicted = probabilities.argmax(axis=1) if predicted is None else np.asarray(predicted)
    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(gold, predicted, labels=ids, zero_division=0)
    return {
        "task": SingleLabelTask.name,
        "loss": log_loss(probabilities, gold),
        "accuracy": float(accuracy_score(gold, predicted)),
        "mcc": float(matthews_corrcoef(gold, predicted)),
        "f1_macro": float(f1_score(gold, predicted, labels=ids, average="macro", zero_division=0)),
        "f1_weighted": float(f1_score(gold, predicted, labels=ids, average="weighted", zero_division=0)),
        "ece": expected_calibration_error(probabilities, gold),
        "per_class": per_name(labels, precision, recall, f1, support),
        "confusion_matrix": confusion_matrix(gold, predicted, labels=ids).tolist(),
        "rows": int(len(gold)),
    }


def per_name(labels: LabelSet, precision, recall, f1, support) -> dict:
    return {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(support[i])}
        for i, name in enumerate(labels.names)
    }  # fmt: skip


def undecided(probabilities: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """1 at the threshold, falling linearly to 0 at probability 0 or 1."""
    room = np.where(probabilities >= thresholds, 1 - thresholds, thresholds)
    return 1 - np.abs(probabilities - thresholds) / np.maximum(room, 1e-9)
