"""A short description of the training data, saved with the model so its report can show it:
how labels are spread over the splits, and how long the training texts are in tokens."""

from __future__ import annotations

from collections import Counter

import numpy as np

from bertfit.data.load import LoadedData
from bertfit.tasks import MULTI_LABEL, REGRESSION

LENGTH_BINS = 40


def data_profile(data: LoadedData, token_lengths: np.ndarray | None, max_length: int) -> dict:
    return {"labels": {name: label_counts(split.labels, data.task) for name, split in data.splits.items()},
            "token_lengths": length_histogram(token_lengths, max_length)}  # fmt: skip


def label_counts(labels: list, task: str) -> dict:
    """Rows per class; rows carrying each label (multi-label); a histogram of values (regression)."""
    if task == REGRESSION:
        values = np.fromiter(labels, dtype=float)
        counts, edges = np.histogram(values, bins=20) if len(values) else (np.array([]), np.array([]))
        return {"histogram": {"edges": edges.tolist(), "counts": counts.tolist()}}
    if task == MULTI_LABEL:
        return dict(Counter(name for row in labels for name in row).most_common())
    return dict(Counter(str(label) for label in labels).most_common())


def length_histogram(lengths: np.ndarray | None, max_length: int) -> dict | None:
    if lengths is None or not len(lengths):
        return None
    counts, edges = np.histogram(lengths, bins=min(LENGTH_BINS, int(lengths.max()) or 1))
    return {
        "edges": edges.tolist(),
        "counts": counts.tolist(),
        "max_length": max_length,
        "percentiles": {str(p): float(np.percentile(lengths, p)) for p in (50, 90, 99)},
        "longer_than_max": float((lengths > max_length).mean()),
    }
