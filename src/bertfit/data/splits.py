"""Stratified, seeded splits of one labelled table."""

from __future__ import annotations

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
    stratify = _stratify_or_none(labels)
    train, rest = train_test_split(indices, test_size=rest_share, random_state=seed, stratify=stratify)
    if f_val == 0 or f_test == 0:
        return (list(train), list(rest), []) if f_test == 0 else (list(train), [], list(rest))
    rest_labels = [labels[i] for i in rest]
    validation, test = train_test_split(
        rest, test_size=f_test / rest_share, random_state=seed, stratify=_stratify_or_none(rest_labels)
    )
    if not train:
        raise DataError(f"{source}: too few rows to split {fractions}")
    return list(train), list(validation), list(test)


def _stratify_or_none(labels: Sequence[str]) -> Sequence[str] | None:
    # sklearn cannot stratify a class with a single row; fall back to a plain random split.
    counts = Counter(labels)
    return labels if min(counts.values()) >= 2 else None
