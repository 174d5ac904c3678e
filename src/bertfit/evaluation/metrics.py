"""Metrics over a whole split (never averaged per batch), for each task shape, and their tables."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
)

from bertfit.data.labels import LabelSet
from bertfit.evaluation.calibration import expected_calibration_error
from bertfit.tasks import MULTI_LABEL, REGRESSION, Task


def task_metrics(task: Task, gold: np.ndarray, outputs: np.ndarray) -> dict:
    """The metrics of ``task``'s shape, with its saved decision rule applied to ``outputs``."""
    if task.kind == REGRESSION:
        return regression_metrics(gold, outputs)
    if task.kind == MULTI_LABEL:
        return multilabel_metrics(gold, outputs, task.labels, task.decide(outputs))
    metrics = classification_metrics(gold, outputs, task.labels, task.decide(outputs))
    if task.thresholds:
        positive = task.labels.names[task.positive]
        metrics["threshold"] = {"label": positive, "value": task.thresholds[0]}
        at_argmax = classification_metrics(gold, outputs, task.labels)
        metrics["at_argmax"] = {k: at_argmax[k] for k in ("accuracy", "mcc", "f1_macro")}
        metrics["at_argmax"][f"f1_{positive}"] = at_argmax["per_class"][positive]["f1"]
    return metrics


def log_loss(probabilities: np.ndarray, gold: Sequence[int]) -> float:
    picked = probabilities[np.arange(len(gold)), np.asarray(gold)]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def classification_metrics(
    gold: Sequence[int], probabilities: np.ndarray, labels: LabelSet, predicted: np.ndarray | None = None
) -> dict:
    """Accuracy, MCC, per-class P/R/F1, macro and weighted F1, the confusion matrix, the loss and the
    calibration error. ``predicted`` defaults to the argmax of ``probabilities``."""
    gold = np.asarray(gold)
    predicted = probabilities.argmax(axis=1) if predicted is None else np.asarray(predicted)
    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=ids, zero_division=0
    )
    return {
        "task": "classification",
        "loss": log_loss(probabilities, gold),
        "accuracy": float(accuracy_score(gold, predicted)),
        "mcc": float(matthews_corrcoef(gold, predicted)),
        "f1_macro": float(f1_score(gold, predicted, labels=ids, average="macro", zero_division=0)),
        "f1_weighted": float(f1_score(gold, predicted, labels=ids, average="weighted", zero_division=0)),
        "ece": expected_calibration_error(probabilities, gold),
        "per_class": _per_name(labels, precision, recall, f1, support),
        "confusion_matrix": confusion_matrix(gold, predicted, labels=ids).tolist(),
        "rows": int(len(gold)),
    }


def multilabel_metrics(gold: np.ndarray, probabilities: np.ndarray, labels: LabelSet, predicted: np.ndarray) -> dict:
    """Micro/macro F1, per-label P/R/F1, subset accuracy (every label right), and the same F1s at a
    plain 0.5 threshold so tuned thresholds can be compared with it."""
    gold = np.asarray(gold).astype(np.int64)
    at_half = (probabilities >= 0.5).astype(np.int64)
    precision, recall, f1, support = precision_recall_fscore_support(gold, predicted, zero_division=0)
    clipped = np.clip(probabilities.astype(np.float64), 1e-12, 1 - 1e-12)
    return {
        "task": MULTI_LABEL,
        "loss": float(-(gold * np.log(clipped) + (1 - gold) * np.log(1 - clipped)).mean()),
        "subset_accuracy": float((predicted == gold).all(axis=1).mean()),
        "f1_micro": float(f1_score(gold, predicted, average="micro", zero_division=0)),
        "f1_macro": float(f1_score(gold, predicted, average="macro", zero_division=0)),
        "f1_micro_at_0.5": float(f1_score(gold, at_half, average="micro", zero_division=0)),
        "f1_macro_at_0.5": float(f1_score(gold, at_half, average="macro", zero_division=0)),
        "ece": expected_calibration_error(probabilities, gold, multi_label=True),
        "per_class": _per_name(labels, precision, recall, f1, support),
        "rows": int(len(gold)),
    }


def regression_metrics(gold: np.ndarray, predicted: np.ndarray) -> dict:
    gold = np.asarray(gold, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    constant = len(gold) < 2 or np.ptp(gold) == 0 or np.ptp(predicted) == 0
    mse = float(mean_squared_error(gold, predicted)) if len(gold) else float("nan")
    return {
        "task": REGRESSION,
        "loss": mse,
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(mean_absolute_error(gold, predicted)) if len(gold) else float("nan"),
        "r2": float(r2_score(gold, predicted)) if len(gold) > 1 else float("nan"),
        # Correlation is undefined for a constant column; 0 keeps "greater is better" working.
        "pearson": 0.0 if constant else float(pearsonr(gold, predicted)[0]),
        "spearman": 0.0 if constant else float(spearmanr(gold, predicted)[0]),
        "rows": int(len(gold)),
    }


def _per_name(labels: LabelSet, precision, recall, f1, support) -> dict:
    return {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(support[i])}
        for i, name in enumerate(labels.names)
    }  # fmt: skip


HEADLINES = {
    "classification": (("accuracy", "accuracy"), ("MCC", "mcc"), ("F1 macro", "f1_macro"),
                       ("F1 weighted", "f1_weighted"), ("ECE", "ece"), ("loss", "loss")),
    MULTI_LABEL: (("F1 macro", "f1_macro"), ("F1 micro", "f1_micro"), ("F1 macro at 0.5", "f1_macro_at_0.5"),
                  ("subset accuracy", "subset_accuracy"), ("ECE", "ece"), ("loss", "loss")),
    REGRESSION: (("Pearson", "pearson"), ("Spearman", "spearman"), ("RMSE", "rmse"), ("MAE", "mae"), ("R2", "r2")),
}  # fmt: skip


def summary_line(metrics: dict, title: str) -> str:
    values = "  ".join(f"{name} {metrics[key]:.4f}" for name, key in HEADLINES[metrics.get("task", "classification")])
    return f"{title}: {metrics['rows']} rows  {values}"


def format_metrics(metrics: dict, title: str) -> str:
    """A plain-text table: headline metrics, then per-class precision/recall/F1/support."""
    lines = [summary_line(metrics, title)]
    if "threshold" in metrics:
        threshold, plain = metrics["threshold"], metrics["at_argmax"]
        lines.append(f"  decision: {threshold['label']} when its probability >= {threshold['value']:.4f} "
                     f"(at argmax: accuracy {plain['accuracy']:.4f}, MCC {plain['mcc']:.4f})")  # fmt: skip
    per_class = metrics.get("per_class")
    if not per_class:
        return "\n".join(lines)
    width = max(8, *(len(name) for name in per_class))
    lines.append(f"  {'class':<{width}}  precision  recall     f1  support")
    for name, row in per_class.items():
        lines.append(
            f"  {name:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:.4f}  {row['support']:7d}"
        )
    if "confusion_matrix" in metrics:
        names = list(per_class)
        lines.append(f"  confusion matrix (rows gold, columns predicted): {', '.join(names)}")
        for name, row in zip(names, metrics["confusion_matrix"]):
            lines.append(f"  {name:<{width}}  " + " ".join(f"{v:6d}" for v in row))
    return "\n".join(lines)
