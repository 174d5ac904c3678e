"""Task shapes: single-label classification (binary or multi-class), multi-label, regression.

One module per shape, each a ``Task`` subclass (see ``base``). Adding a shape means one new module
and one entry in ``SHAPES``; nothing outside this package names a shape.
"""

from __future__ import annotations

import logging

from bertfit.folder import Manifest
from bertfit.tasks.base import CalibrationOptions, Prediction, Task, WorstExamples
from bertfit.tasks.labels import LabelSet, normalize_label
from bertfit.tasks.multi_label import MultiLabelTask
from bertfit.tasks.regression import RegressionTask
from bertfit.tasks.single_label import SingleLabelTask

log = logging.getLogger(__name__)

# In the order ``--task auto`` asks them whether they claim the training labels; the last claims all.
SHAPES: tuple[type[Task], ...] = (MultiLabelTask, RegressionTask, SingleLabelTask)
BY_NAME: dict[str, type[Task]] = {shape.name: shape for shape in SHAPES}
TASK_CHOICES = ("auto", *(shape.name for shape in sorted(SHAPES, key=lambda s: s is not SingleLabelTask)))
DEFAULT_SEP = ","


def shape_named(name: str | None) -> type[Task]:
    """The shape saved under ``name`` in a model folder or a metrics file (None: written before shapes
    had names, so single-label classification)."""
    if name is None:
        return SingleLabelTask
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}: one of {', '.join(BY_NAME)}") from None


def detect_task(train_labels: list, requested: str, label_sep: str | None, source: str) -> tuple[type[Task], str]:
    """(shape, label separator) for ``--task`` (``auto`` asks each shape about the raw training labels:
    list values or strings joined by the separator mean multi-label, numbers with fractions regression,
    anything else single-label classification; the choice is logged, so it is never silent)."""
    sep = label_sep or DEFAULT_SEP
    if requested != "auto":
        return shape_named(requested), sep
    shape = next(shape for shape in SHAPES if shape.claims(train_labels, sep, label_sep is not None, source))
    return shape, sep


def task_from_manifest(manifest: Manifest) -> Task:
    """The task a model folder saved (``Task.to_manifest``), with its labels and fitted rules: the shape
    it names reads its own state (``Task.from_dict``)."""
    return shape_named(manifest.task.name).from_dict(manifest.task.state, LabelSet(tuple(manifest.labels)))


__all__ = [
    "BY_NAME",
    "SHAPES",
    "TASK_CHOICES",
    "CalibrationOptions",
    "LabelSet",
    "MultiLabelTask",
    "Prediction",
    "RegressionTask",
    "SingleLabelTask",
    "Task",
    "WorstExamples",
    "detect_task",
    "normalize_label",
    "shape_named",
    "task_from_manifest",
]
