"""The arithmetic of calibration and decision rules, shared by the task shapes that fit them on the
validation split (each shape decides what it fits: see ``calibrated`` in its module).

- Temperature scaling: one scalar T divides the logits so that probabilities match observed
  frequencies (lower NLL); argmax decisions do not change.
- Thresholds: a binary task can trade precision for recall (best F1, or a target recall); a
  multi-label task gets one threshold per label, since rare labels rarely reach 0.5.
"""

from __future__ import annotations

import numpy as np

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
    from scipy.optimize import minimize_scalar

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
