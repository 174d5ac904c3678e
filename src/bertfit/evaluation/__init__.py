"""Scoring: metrics for every task shape, calibration and decision thresholds, and scoring saved models."""

from bertfit.evaluation.metrics import (
    classification_metrics,
    format_metrics,
    multilabel_metrics,
    regression_metrics,
    summary_line,
    task_metrics,
)
from bertfit.evaluation.scoring import evaluate_file, gold_of_split

__all__ = [
    "classification_metrics",
    "evaluate_file",
    "format_metrics",
    "gold_of_split",
    "multilabel_metrics",
    "regression_metrics",
    "summary_line",
    "task_metrics",
]
