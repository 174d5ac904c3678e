"""Stratified, seeded splits of one labelled table."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from sklearn.model_selection import train_test_split

from bertfit.errors import DataError


def stratified_split(
    labels: Sequence[str], fractions: tuple[float, float, float], seed: int, source: str
) -> tuple[list[int], list[int], list[int]]:
    """Row indices for (train, validation, test).

    Two steps, as the SMS spam tutorial does it (train vs rest, then rest halved by ratio), so
    ``(0.7, 0.15, 0.15)`` with seed 2018 reproduces its 836-row test set exactly.
    """
    _, f_val, f_test = fractions
    indices = list(range(len(labels)))
    rest_share = f_val + f_test
    if rest_share == 0:
        return indices, [], []
    train, rest = _split(indices, labels, rest_share, seed)
    if f_val == 0 or f_test == 0:
        return (list(train), list(rest), []) if f_test == 0 else (list(train), [], list(rest))
    validation, test = _split(rest, [labels[i] for i in rest], f_test / rest_share, seed)
    if not train:
        raise DataError(f"{source}: too few rows to split {fractions}")
    return list(train), list(validation), list(test)


def _split(indices: list[int], labels: Sequence[str], share: float, seed: int) -> tuple[list[int], list[int]]:
    """``indices`` split into (kept, held out ``share``), stratified where both parts can hold a row of
    every class: a held-out share smaller than the number of classes (5 rows of 6 classes) grows to one
    row per class, and where the rest could not keep one of each, the split is plain random."""
    stratify = _stratify_or_none(labels)
    size: float | int = share
    if stratify is not None:
        classes = len(set(labels))
        held_out = math.ceil(share * len(indices))  # how scikit-learn rounds a share
        if held_out < classes:
            size = classes
        if len(indices) - max(held_out, classes) < classes:
            stratify, size = None, share
    train, held = train_test_split(indices, test_size=size, random_state=seed, stratify=stratify)
    return list(train), list(held)


def _stratify_or_none(labels: Sequence[str]) -> Sequence[str] | None:
    # sklearn cannot stratify a class with a single row; fall back to a plain random split.
    counts = Counter(labels)
    return labels if min(counts.values()) >= 2 else None
