"""What the label column holds: classes, sets of labels (multi-label), or numbers (regression).

Detected from the training labels unless ``--task`` says it: list values, or strings joined by
``--label-sep`` (default ``,``), mean multi-label; numbers with a fractional part mean regression;
anything else is single-label classification. The choice is logged, so it is never silent.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np

from bertfit.data.labels import normalize_label
from bertfit.data.readers import describe_rows
from bertfit.errors import DataError
from bertfit.tasks import CLASSIFICATION, MULTI_LABEL, REGRESSION

log = logging.getLogger(__name__)

DEFAULT_SEP = ","


def raw_label(value: object) -> str | tuple[str, ...] | None:
    """A label cell as a name, a tuple of names (list-valued cells), or ``None`` when missing."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(name for name in (normalize_label(v) for v in value) if name is not None)
    return normalize_label(value)


def detect_task(train_labels: list, requested: str, label_sep: str | None, source: str) -> tuple[str, str]:
    """(task, label separator) for ``--task`` (``auto`` looks at the training labels)."""
    sep = label_sep or DEFAULT_SEP
    if requested != "auto":
        return requested, sep
    if any(isinstance(v, tuple) for v in train_labels):
        log.info("%s: list-valued labels, so the task is multi-label", source)
        return MULTI_LABEL, sep
    joined = [v for v in train_labels if isinstance(v, str) and sep in v]
    if label_sep is not None or (joined and all(_pieces(v, sep) for v in joined)):
        log.info("%s: labels joined by %r, so the task is multi-label (--task classification keeps them whole)",
                 source, sep)  # fmt: skip
        return MULTI_LABEL, sep
    numbers = [_number(v) for v in train_labels]
    if all(n is not None for n in numbers) and any(not float(n).is_integer() for n in numbers):
        log.info("%s: numeric labels with fractions, so the task is regression (--task classification "
                 "treats them as classes)", source)  # fmt: skip
        return REGRESSION, sep
    return CLASSIFICATION, sep


def shape_labels(split, task: str, sep: str):
    """The split with labels in ``task``'s form; bad cells stop the run with their rows."""
    if task == MULTI_LABEL:
        labels = [v if isinstance(v, tuple) else tuple(_pieces(v, sep)) for v in split.labels]
        return replace(split, labels=labels)
    if task == REGRESSION:
        numbers = [_number(v) for v in split.labels]
        bad = [i for i, n in enumerate(numbers) if n is None]
        if bad:
            raise DataError(
                f"{split.source}, {describe_rows([split.rows[i] for i in bad])}: regression labels must be numbers, got "
                f"{', '.join(repr(split.labels[i]) for i in bad[:3])}"
            )
        return replace(split, labels=numbers)
    nested = [i for i, v in enumerate(split.labels) if isinstance(v, tuple)]
    if nested:
        raise DataError(f"{split.source}, {describe_rows([split.rows[i] for i in nested])}: list-valued labels; pass --task multi-label")
    return split


def _pieces(value: str, sep: str) -> list[str]:
    return [piece.strip() for piece in value.split(sep) if piece.strip()]


def _number(value) -> float | None:
    if isinstance(value, tuple):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
