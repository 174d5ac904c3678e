"""Classification metrics over a whole split (never averaged per batch), and their table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    precision_recall_fscore_support,
)

from bertfit.data.labels import LabelSet


def primary_metric(num_labels: int) -> str:
    """The metric that picks the best epoch: MCC for binary tasks, macro-F1 otherwise (greater is better)."""
    return "mcc" if num_labels == 2 else "f1_macro"


def log_loss(probabilities: np.ndarray, gold: Sequence[int]) -> float:
    picked = probabilities[np.arange(len(gold)), np.asarray(gold)]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def classification_metrics(gold: Sequence[int], probabilities: np.ndarray, labels: LabelSet) -> dict:
    """Accuracy, MCC, per-class P/R/F1, macro and weighted F1, the confusion matrix and the loss."""
    gold = np.asarray(gold)
    predicted = probabilities.argmax(axis=1)
    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=ids, zero_division=0
    )
    return {
        "loss": log_loss(probabilities, gold),
        "accuracy": float(accuracy_score(gold, predicted)),
        "mcc": float(matthews_corrcoef(gold, predicted)),
        "f1_macro": float(f1_score(gold, predicted, labels=ids, average="macro", zero_division=0)),
        "f1_weighted": float(f1_score(gold, predicted, labels=ids, average="weighted", zero_division=0)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(labels.names)
        },
        "confusion_matrix": confusion_matrix(gold, predicted, labels=ids).tolist(),
        "rows": int(len(gold)),
    }


def format_metrics(metrics: dict, title: str) -> str:
    """A plain-text table: headline metrics, then per-class precision/recall/F1/support."""
    lines = [
        f"{title}: {metrics['rows']} rows  accuracy {metrics['accuracy']:.4f}  MCC {metrics['mcc']:.4f}  "
        f"F1 macro {metrics['f1_macro']:.4f}  F1 weighted {metrics['f1_weighted']:.4f}  loss {metrics['loss']:.4f}"
    ]
    per_class = metrics["per_class"]
    width = max(8, *(len(name) for name in per_class))
    lines.append(f"  {'class':<{width}}  precision  recall     f1  support")
    for name, row in per_class.items():
        lines.append(
            f"  {name:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:.4f}  {row['support']:7d}"
        )
    names = list(per_class)
    lines.append(f"  confusion matrix (rows gold, columns predicted): {', '.join(names)}")
    for name, row in zip(names, metrics["confusion_matrix"]):
        lines.append(f"  {name:<{width}}  " + " ".join(f"{v:6d}" for v in row))
    return "\n".join(lines)


def evaluate_file(
    model_dir: str,
    data_path: str,
    text_column: str | None = None,
    label_column: str | None = None,
    backend: str = "torch",
) -> dict:
    """Score a saved model on any labelled file; labels must be the model's (or their raw aliases)."""
    from pathlib import Path

    from bertfit.data.load import read_labelled_file
    from bertfit.data.readers import ReadOptions
    from bertfit.inference import Predictor, read_manifest

    manifest = read_manifest(Path(model_dir))
    split = read_labelled_file(data_path, text_column, label_column, ReadOptions(), "evaluation")
    predictor = Predictor.load(model_dir, backend=backend)
    gold = gold_ids(predictor.labels, manifest, split)
    return classification_metrics(gold, predictor.predict_proba(split.texts), predictor.labels)


def gold_ids(labels: LabelSet, manifest: dict, split) -> list[int]:
    """The split's labels as the model's ids; raw aliases (0 -> ham) count, unknown labels stop the run."""
    from bertfit.errors import DataError

    aliases = manifest.get("label_aliases") or {}
    names = [name if name in labels.label2id else aliases.get(name, name) for name in split.labels]
    unknown = sorted({n for n in names if n not in labels.label2id})
    if unknown:
        rows = [split.rows[i] for i, n in enumerate(names) if n in unknown][:10]
        raise DataError(
            f"{split.source}: label(s) {', '.join(map(repr, unknown))} (rows {', '.join(map(str, rows))}) "
            f"are not among the model's labels: {', '.join(labels.names)}"
        )
    return labels.encode(names)
