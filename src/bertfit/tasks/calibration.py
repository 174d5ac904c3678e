"""The arithmetic of calibration and decision rules, shared by the task shapes that fit them on the
validation split (each shape decides what it fits: see ``calibrated`` in its module).

- Temperature scaling: one scalar T divides the logits so that probabilities match observed
  frequencies (lower NLL); argmax decisions do not change.
- Thresholds: a binary task can trade precision for recall (best F1, or a target recall); a
  multi-label task gets one threshold per label, since rare labels rarely reach 0.5.

Calibration that cannot lie: what a small or perfectly separated validation split cannot support is
not fitted, and the log says so.
- A temperature is fitted only on at least ``MIN_ROWS`` validation rows with at least ``MIN_ERRORS``
  wrong decisions (with none, the likelihood keeps rising as T falls, towards certainty on every
  row); otherwise T stays 1.
- A fit that runs to the upper bound of ``TEMPERATURE_BOUNDS`` says "soften": the model is far more
  confident than it is right, as a model barely above chance often is (RTE pairs with the default
  model: validation MCC 0.11, accuracy 0.556, ECE 0.35 at T = 1). The search then widens to
  ``SOFTEST_TEMPERATURE`` and its value is kept (the bound itself where it runs there too), and the log
  says so; dropping it would save the overconfident probabilities.
- A fit that runs to the lower bound says "sharpen" without pinning a value, and T stays 1: of the two
  errors, probabilities a little too soft cost less than certainty the evidence cannot support.
- A threshold is tuned only for a label with at least ``MIN_POSITIVES`` validation positives, within
  ``THRESHOLD_BOUNDS``; multi-label thresholds are shrunk toward 0.5 by ``n / (n + SHRINK_POSITIVES)``
  (n: the label's validation positives), so a label seen a few times keeps a threshold near 0.5.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

ECE_BINS = 15
THRESHOLD_BOUNDS = (0.05, 0.95)
THRESHOLD_GRID = np.round(np.arange(THRESHOLD_BOUNDS[0], THRESHOLD_BOUNDS[1] + 1e-9, 0.01), 2)
TEMPERATURE_BOUNDS = (0.25, 10.0)
SOFTEST_TEMPERATURE = 100.0  # where a fit that reaches 10 searches on: at 100 a logit gap of 10 is 0.1
MIN_ROWS = 50
MIN_ERRORS = 3
MIN_POSITIVES = 5
SHRINK_POSITIVES = 5


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


def temperature_problem(logits: np.ndarray, gold: np.ndarray, multi_label: bool) -> str | None:
    """Why validation cannot support a temperature fit (see the module's rules), or None."""
    logits, gold = np.asarray(logits), np.asarray(gold)
    if len(gold) < MIN_ROWS:
        return f"{len(gold)} validation rows, fewer than {MIN_ROWS}"
    errors = int(((logits > 0) != (gold > 0)).sum()) if multi_label else int((logits.argmax(axis=1) != gold).sum())
    if errors < MIN_ERRORS:
        return f"{errors} wrong decision(s) on validation, fewer than {MIN_ERRORS}: it is separated too well to measure"
    return None


def fit_temperature(logits: np.ndarray, gold: np.ndarray, multi_label: bool) -> float:
    """The T that minimises validation negative log-likelihood of ``logits / T``, or 1 where the rules
    above say validation cannot support it (logged)."""
    problem = temperature_problem(logits, gold, multi_label)
    if problem:
        log.warning("calibration: temperature kept at 1 (%s)", problem)
        return 1.0
    nll = negative_log_likelihood(np.asarray(logits, dtype=np.float64), np.asarray(gold), multi_label)
    low, high = TEMPERATURE_BOUNDS
    found = _minimise(nll, low, high)
    if _at(found, low):
        # Sharpening stays conservative: a T pinned to 0.25 would make every probability more certain on
        # evidence that cannot say by how much, and overconfidence is the error calibration exists to undo.
        log.warning("calibration: temperature kept at 1 (the fit ran to its lower bound %.3g: validation asks for "
                    "sharper probabilities but cannot pin down how much sharper)", low)  # fmt: skip
        return 1.0
    if _at(found, high):
        found = _minimise(nll, high, SOFTEST_TEMPERATURE)
        limit = " (its widened bound)" if _at(found, SOFTEST_TEMPERATURE) else ""
        log.warning("calibration: temperature %.3g%s: the fit ran past %.3g, so the model is far more confident "
                    "than it is right on validation; its probabilities are softened to match", found, limit, high)  # fmt: skip
    return found


def negative_log_likelihood(logits: np.ndarray, gold: np.ndarray, multi_label: bool):
    """Validation NLL as a function of log T (a log scale searches 0.25 and 100 alike)."""

    def nll(log_t: float) -> float:
        scaled = logits / np.exp(log_t)
        if multi_label:
            # log(1 + e^-x) for positives, log(1 + e^x) for negatives, computed stably
            return float((np.logaddexp(0, -scaled) * gold + np.logaddexp(0, scaled) * (1 - gold)).mean())
        log_norm = np.logaddexp.reduce(scaled, axis=1)
        return float((log_norm - scaled[np.arange(len(gold)), gold]).mean())

    return nll


def _minimise(nll, low: float, high: float) -> float:
    from scipy.optimize import minimize_scalar

    return float(np.exp(minimize_scalar(nll, bounds=(np.log(low), np.log(high)), method="bounded").x))


def _at(temperature: float, bound: float) -> bool:
    """Whether a fitted T ended on ``bound`` (within 1% on the log scale the search runs on)."""
    return abs(np.log(temperature) - np.log(bound)) < 0.01


def enough_positives(positive: np.ndarray, what: str) -> bool:
    count = int(np.asarray(positive).sum())
    if count < MIN_POSITIVES:
        log.warning("calibration: %s keeps threshold 0.5 (%d validation positives, fewer than %d)", what, count,
                    MIN_POSITIVES)  # fmt: skip
        return False
    return True


def shrunk_threshold(threshold: float, positives: int) -> float:
    """A tuned threshold pulled toward 0.5 by how few positives it was tuned on."""
    weight = positives / (positives + SHRINK_POSITIVES)
    return float(np.clip(0.5 + (threshold - 0.5) * weight, *THRESHOLD_BOUNDS))


def threshold_at_temperature(threshold: float, temperature: float) -> float:
    """The probability threshold that decides at temperature T exactly as ``threshold`` does at T = 1:
    sigmoid(z / T) >= t' when sigmoid(z) >= t, for t' = sigmoid(logit(t) / T). Thresholds are tuned on
    T = 1 outputs and carried over, since a softening T squeezes outputs towards 0.5, where the tuning
    grid's 0.01 steps and the pull towards 0.5 would change which rows are decided, not only the
    probabilities shown."""
    if temperature == 1.0:
        return threshold
    logit = np.log(threshold) - np.log1p(-threshold)
    return float(1.0 / (1.0 + np.exp(-logit / temperature)))


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
