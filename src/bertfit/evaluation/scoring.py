"""Score a saved model folder on any labelled file, with the decision rule saved in it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bertfit.errors import ConfigError, DataError
from bertfit.tasks import REGRESSION, Task


def evaluate_file(
    model_dir: str,
    data_path: str,
    text_column: str | None = None,
    label_column: str | None = None,
    backend: str = "torch",
    pair_column: str | None = None,
    arrow: bool = False,
) -> dict:
    """Metrics of the model on ``data_path``; labels must be the model's (or their raw aliases).

    ``arrow`` reads the file into memory-mapped Arrow (see ``bertfit.data.arrow``) and scores it a
    piece at a time, so only the labels and outputs of every row are held."""
    from bertfit.data.load import read_labelled_file
    from bertfit.data.readers import ReadOptions
    from bertfit.evaluation.metrics import task_metrics
    from bertfit.inference import Predictor, read_manifest

    manifest = read_manifest(Path(model_dir))
    require_pair_column(manifest, model_dir, pair_column)
    if arrow:
        from bertfit.data.arrow import read_arrow_split as read
    else:
        read = read_labelled_file
    split = read(data_path, text_column, label_column, ReadOptions(), "evaluation", pair_column)
    predictor = Predictor.load(model_dir, backend=backend)
    gold, outputs = [], []
    for piece in split.pieces():
        gold.append(gold_of_split(predictor.task, manifest, piece))
        outputs.append(predictor.predict_proba(piece.texts, piece.pairs))
    return task_metrics(predictor.task, np.concatenate(gold), np.concatenate(outputs))


def require_pair_column(manifest: dict, model_dir, pair_column) -> None:
    """A model trained on text pairs scores only files that give the second text too."""
    if manifest.get("text_pairs") and pair_column is None:
        raise ConfigError(f"{model_dir} was trained on text pairs: pass --text-pair-column too")


def gold_of_split(task: Task, manifest: dict, split):
    """The split's labels as the task reads them. Raw aliases (0 -> ham) count; labels the model does
    not know stop the run, naming them and their rows."""
    from bertfit.data.readers import describe_rows
    from bertfit.data.targets import shape_labels

    split = shape_labels(split, task.kind, task.label_sep)
    if task.kind == REGRESSION:
        return task.gold(split.labels)
    aliases = manifest.get("label_aliases") or {}
    known = task.labels.label2id

    def name(label: str) -> str:
        return label if label in known else aliases.get(label, label)

    labels = [tuple(map(name, v)) if isinstance(v, tuple) else name(v) for v in split.labels]
    unknown_by_row = {i: sorted(set(v if isinstance(v, tuple) else (v,)) - set(known)) for i, v in enumerate(labels)}
    unknown_rows = [i for i, names in unknown_by_row.items() if names]
    if unknown_rows:
        unknown = sorted({n for i in unknown_rows for n in unknown_by_row[i]})
        raise DataError(
            f"{split.source}: label(s) {', '.join(map(repr, unknown))} "
            f"({describe_rows([split.rows[i] for i in unknown_rows])}) "
            f"are not among the model's labels: {', '.join(task.labels.names)}"
        )
    return task.gold(labels)
