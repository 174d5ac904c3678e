"""A short description of the training data, saved with the model so its report can show it:
how labels are spread over the splits, and how long the training texts are in tokens."""

from __future__ import annotations

import numpy as np

from bertfit.data.load import LoadedData

LENGTH_BINS = 40


def data_profile(data: LoadedData, token_lengths: np.ndarray | None, max_length: int) -> dict:
    return {"labels": {name: data.task.label_counts(split.labels) for name, split in data.splits.items()},
            "token_lengths": length_histogram(token_lengths, max_length)}  # fmt: skip


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
