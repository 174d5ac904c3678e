"""Calibration and decision rules, fitted on the validation split only.

- Temperature scaling: one scalar T divides the logits so that probabilities match observed
  frequencies (lower NLL); argmax decisions do not change.
- Thresholds: a binary task can trade precision for recall (best F1, or a target recall); a
  multi-label task gets one threshold per label, since rare labels rarely reach 0.5.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
from scipy.optimize import minimize_scalar

from bertfit.tasks import MULTI_LABEL, REGRESSION, Task

log = logging.getLogger(__name__)

ECE_BINS = 15
THRESHOLD_GRID = np.round(np.arange(0.02, 0.981, 0.01), 2)


def expected_calibration_error(probabilities: np.ndarray, gold: np.ndarray, multi_label: bool = False) -> float:
    """Gap between confidence and accuracy, averaged over equal-width confidence bins.

    Single-label: the top class's probability against whether it was right. Multi-label: every
    (row, label) probability against whether the label was present."""
    if len(gold) == 0:
        return 0.0
    if multi_label:
        confidence, correct = probabilities.ravel(), np.asarray(gold).ravel().astype(np.float64)
    else:
        confidence = probabilities.max(axis=1)
        correct = (probabilities.argmax(axis=1) == np.asarray(gold)).astype(np.float64)
    bins = np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)
    total = 0.0
    for b in np.unique(bins):
        inside = bins == b
        total += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(total)


def fit_temperature(logits: np.ndarray, gold: np.ndarray, multi_label: bool) -> float:
    """The T that minimises validation negative log-likelihood of ``logits / T``."""
    logits = np.asarray(logits, dtype=np.float64)

    def nll(log_t: float) -> float:
        scaled = logits / np.exp(log_t)
        if multi_label:
            # log(1 + e^-x) for positives, log(1 + e^x) for negatives, computed stably
            return float((np.logaddexp(0, -scaled) * gold + np.logaddexp(0, scaled) * (1 - gold)).mean())
        log_norm = np.logaddexp.reduce(scaled, axis=1)
        return float((log_norm - scaled[np.arange(len(gold)), gold]).mean())

    found = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(found.x))


def best_f1_threshold(scores: np.ndarray, positive: np.ndarray) -> float:
    """The grid threshold with the best F1 for the positive class (ties: the one nearest 0.5)."""
    best, best_f1 = 0.5, -1.0
    for threshold in sorted(THRESHOLD_GRID, key=lambda t: abs(t - 0.5)):
        chosen = scores >= threshold
        tp = float((chosen & positive).sum())
        f1 = 2 * tp / max(float(chosen.sum() + positive.sum()), 1.0)
        if f1 > best_f1 + 1e-12:
            best, best_f1 = float(threshold), f1
    return best


def recall_threshold(scores: np.ndarray, positive: np.ndarray, target: float) -> float:
    """The highest threshold whose recall on the positive class is at least ``target``."""
    if not positive.any():
        return 0.5
    ranked = np.sort(scores[positive])[::-1]
    needed = int(np.ceil(target * len(ranked)))
    return float(ranked[max(needed, 1) - 1])


def calibrate(task: Task, logits: np.ndarray, gold: np.ndarray, *, temperature: bool, threshold: str,
              target_recall: float | None, positive_label: str | None) -> Task:  # fmt: skip
    """Fit the temperature, then the decision thresholds, on validation logits and gold labels."""
    if task.kind == REGRESSION or len(gold) == 0:
        return task
    multi_label = task.kind == MULTI_LABEL
    if temperature:
        task = replace(task, temperature=fit_temperature(logits, gold, multi_label))
        log.info("calibration: temperature %.3f fitted on validation", task.temperature)
    outputs = task.outputs(logits)
    if multi_label:
        if threshold == "auto" or threshold == "tune":
            chosen = tuple(
                best_f1_threshold(outputs[:, i], gold[:, i] > 0) if gold[:, i].any() else 0.5
                for i in range(len(task.labels))
            )
        else:
            chosen = tuple([float(threshold)] * len(task.labels))
        return replace(task, thresholds=chosen)
    if threshold == "auto" and target_recall is None:
        return task
    if len(task.labels) != 2:
        log.warning("--threshold/--target-recall apply to binary and multi-label tasks; %d classes use argmax",
                    len(task.labels))  # fmt: skip
        return task
    positive = _positive_class(task, gold, positive_label)
    scores, is_positive = outputs[:, positive], gold == positive
    if target_recall is not None:
        value = recall_threshold(scores, is_positive, target_recall)
    elif threshold == "tune":
        value = best_f1_threshold(scores, is_positive)
    else:
        value = float(threshold)
    log.info("decision: %s when its probability >= %.4f", task.labels.names[positive], value)
    return replace(task, positive=positive, thresholds=(value,))


def _positive_class(task: Task, gold: np.ndarray, name: str | None) -> int:
    """The named class, else the rarer class in validation (what imbalance thresholds are for)."""
    if name is not None:
        from bertfit.errors import ConfigError

        if name not in task.labels.label2id:
            raise ConfigError(f"--positive-label {name!r} is not a label: {', '.join(task.labels.names)}")
        return task.labels.label2id[name]
    counts = np.bincount(gold, minlength=2)
    return int(counts.argmin()) if counts[0] != counts[1] else 1
