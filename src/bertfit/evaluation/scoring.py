"""Score a saved model folder on any labelled file, with the decision rule saved in it."""

from __future__ import annotations

import numpy as np

from bertfit.data.arrow import read_arrow_split
from bertfit.data.table import read_labelled_file
from bertfit.folder import AUTO_BACKEND, PAIR_COLUMN_HINT, Manifest, read_manifest
from bertfit.inference import Predictor
from bertfit.tasks import Task


def evaluate_file(
    model_dir: str,
    data_path: str,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    backend: str = AUTO_BACKEND,
    pair_column: str | None = None,
    arrow: bool = False,
    label_columns: str | None = None,
) -> dict:
    """Metrics of the model on ``data_path``; labels must be the model's (or their raw aliases).

    ``arrow`` reads the file into memory-mapped Arrow (see ``bertfit.data.arrow``) and scores it a
    piece at a time, so only the labels and outputs of every row are held."""
    manifest = read_manifest(model_dir)
    manifest.check_pairs(pair_column, give=PAIR_COLUMN_HINT, model=model_dir)
    read = read_arrow_split if arrow else read_labelled_file
    split = read(
        data_path, text_column, label_column, name="evaluation", pair_column=pair_column, label_columns=label_columns
    )  # label_columns: 0/1 columns, one per label, of a multi-label model
    predictor = Predictor.load(model_dir, backend=backend)
    gold, outputs = [], []
    for piece in split.pieces():
        gold.append(gold_of_split(predictor.task, manifest, piece))
        outputs.append(predictor.predict_proba(piece.texts, piece.pairs))
    return predictor.task.metrics(np.concatenate(gold), np.concatenate(outputs))


def gold_of_split(task: Task, manifest: Manifest, split) -> np.ndarray:
    """The split's labels as the task reads them. Raw aliases (0 -> ham) count; labels the model does
    not know stop the run, naming them and their rows."""
    split = split.with_task(type(task), task.label_sep)
    return task.gold_of(split.labels, manifest.label_aliases or {}, split.source, split.rows)
