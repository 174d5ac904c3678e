"""Multi-label classification: each text carries any number of labels, from list cells or strings
joined by ``--label-sep``.

One sigmoid per label; the decision is one threshold per label, tuned for F1 on validation (rare
labels rarely reach 0.5). Macro F1 picks the best epoch; near chance is a macro F1 hardly above what
saying every label for every text scores.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace

import numpy as np

from bertfit.tasks.base import CHANCE_MARGIN, CalibrationOptions, Prediction, Task, saved_scores
from bertfit.tasks.calibration import (
    best_f1_threshold,
    enough_positives,
    expected_calibration_error,
    shrunk_threshold,
    threshold_at_temperature,
)
from bertfit.tasks.labels import LabelSet
from bertfit.tasks.single_label import per_name, undecided

log = logging.getLogger(__name__)


class MultiLabelTask(Task):
    name = "multi-label"
    problem_type = "multi_label_classification"
    headlines = (("F1 macro", "f1_macro"), ("F1 micro", "f1_micro"), ("F1 macro at 0.5", "f1_macro_at_0.5"),
                 ("subset accuracy", "subset_accuracy"), ("ECE", "ece"), ("loss", "loss"))  # fmt: skip
    confidence_meaning = "the probability behind the most confident wrong label decision"

    @classmethod
    def claims(cls, train_labels: list, sep: str, sep_given: bool, source: str) -> bool:
        if any(isinstance(v, tuple) for v in train_labels):
            log.info("%s: list-valued labels, so the task is multi-label", source)
            return True
        joined = [v for v in train_labels if isinstance(v, str) and sep in v]
        if sep_given or (joined and all(pieces(v, sep) for v in joined)):
            log.info("%s: labels joined by %r, so the task is multi-label (--task classification keeps them whole)",
                     source, sep)  # fmt: skip
            return True
        return False

    @classmethod
    def shape_labels(cls, labels: list, sep: str, source: str, rows: Sequence[int]) -> list:
        return [v if isinstance(v, tuple) else tuple(pieces(v, sep)) for v in labels]

    @classmethod
    def names_in(cls, labels: Iterable) -> Iterator:
        return (name for names in labels for name in names)

    @classmethod
    def strata(cls, labels: Iterable) -> list[str]:
        """A row's rarest label."""
        labels = list(labels)
        counts = Counter(name for names in labels for name in names)
        return [min(names, key=lambda n: (counts[n], n)) if names else "" for names in labels]

    @classmethod
    def label_counts(cls, labels: Iterable) -> dict:
        """Rows carrying each label."""
        return dict(Counter(name for row in labels for name in row).most_common())

    def gold(self, labels: Sequence) -> np.ndarray:
        index = self.labels.label2id
        matrix = np.zeros((len(labels), len(self.labels)), dtype=np.float32)
        for row, names in enumerate(labels):
            matrix[row, [index[n] for n in names]] = 1.0
        return matrix

    def loss(self, train_gold: np.ndarray, class_weights: str = "none") -> Callable:
        import torch
        from torch import nn

        positives = train_gold.sum(axis=0)
        # balanced: each label's positives weigh as much as its negatives
        weight = np.where(positives > 0, (len(train_gold) - positives) / np.maximum(positives, 1), 1.0)
        balanced = class_weights == "balanced"
        return nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weight, dtype=torch.float32) if balanced else None)

    def outputs(self, logits: np.ndarray) -> np.ndarray:
        scale, _ = self.applied_scale()
        scaled = np.asarray(logits, dtype=np.float64) * scale
        return (1.0 / (1.0 + np.exp(-scaled))).astype(np.float32)

    folds_need_every_class = False
    multi_label = True

    def uncertainty(self, outputs: np.ndarray) -> np.ndarray:
        """The least decided label's distance from its threshold."""
        return undecided(outputs, self._thresholds()).max(axis=1)

    def _thresholds(self) -> np.ndarray:
        return np.asarray(self.thresholds if self.thresholds else [0.5] * len(self.labels))

    def label_issues(self, gold: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from cleanlab.multilabel_classification.filter import find_label_issues
        from cleanlab.multilabel_classification.rank import get_label_quality_scores

        labels = [list(np.flatnonzero(row)) for row in gold]
        return find_label_issues(labels, probabilities), get_label_quality_scores(labels, probabilities)

    def given_probability(self, gold: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        """The least likely part of the given label set: each label's probability, or 1 minus it where absent."""
        return np.where(gold > 0.5, probabilities, 1 - probabilities).min(axis=1)

    def explained_columns(self, outputs: np.ndarray, label: str | None) -> list[tuple[int, int]]:
        """Each label the model chose (the most probable one where it chose none), or ``label``."""
        if label is not None:
            return super().explained_columns(outputs, label)
        return [(i, int(c)) for i, row in enumerate(self.decide(outputs))
                for c in (np.flatnonzero(row) if row.any() else [outputs[i].argmax()])]  # fmt: skip

    def shown_outputs(self, logits):
        return logits.sigmoid()

    def choices_of(self, decision: str) -> list[str]:
        return [name for name in decision.split(self.label_sep) if name]

    def decide(self, outputs: np.ndarray) -> np.ndarray:
        """A 0/1 matrix: each label where its probability reaches its threshold."""
        return (outputs >= self._thresholds()).astype(np.int64)

    def same_decisions(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return (first == second).all(axis=1)  # every label's decision

    def decision_names(self, decisions: np.ndarray) -> list[str]:
        return [self.label_sep.join(self.labels.names[i] for i in np.flatnonzero(row)) for row in decisions]

    def calibrated(self, logits: np.ndarray, gold: np.ndarray, options: CalibrationOptions) -> Task:
        if len(gold) == 0:
            return self
        task = self.with_temperature(logits, gold, multi_label=True) if options.temperature else self
        if options.threshold in ("auto", "tune"):
            unscaled = self.outputs(logits)  # tuned at T = 1: see threshold_at_temperature
            chosen = tuple(threshold_at_temperature(self._tuned_threshold(unscaled[:, i], gold[:, i] > 0, name),
                                                    task.temperature)
                           for i, name in enumerate(task.labels.names))  # fmt: skip
        else:
            chosen = tuple([float(options.threshold)] * len(task.labels))
        return replace(task, thresholds=chosen)

    @staticmethod
    def _tuned_threshold(scores: np.ndarray, positive: np.ndarray, name: str) -> float:
        if not enough_positives(positive, f"label {name!r}"):
            return 0.5
        return shrunk_threshold(best_f1_threshold(scores, positive), int(positive.sum()))

    def metrics(self, gold: np.ndarray, outputs: np.ndarray) -> dict:
        return multilabel_metrics(gold, outputs, self.labels, self.decide(outputs))

    def near_chance(self, metrics: dict) -> str | None:
        """Macro F1 within ``CHANCE_MARGIN`` of every label said for every text: a label present in a
        share p of rows then scores F1 2p / (1 + p), and thresholds tuned low reach it with no signal."""
        rows = max(metrics["rows"], 1)
        shares = np.array([c["support"] / rows for c in metrics["per_class"].values()])
        all_positive = float((2 * shares / (1 + shares)).mean()) if len(shares) else 0.0
        if metrics["f1_macro"] >= all_positive + CHANCE_MARGIN:
            return None
        return f"macro F1 {metrics['f1_macro']:.3f} against {all_positive:.3f} for every label on every text"

    def predictions(self, outputs: np.ndarray) -> list[Prediction]:
        decisions = self.decide(outputs)
        found = []
        for row, decision, name in zip(outputs, decisions, self.decision_names(decisions)):
            probabilities = {label: float(p) for label, p in zip(self.labels.names, row)}
            chosen = tuple(self.labels.names[i] for i in np.flatnonzero(decision))
            found.append(Prediction(name, float(row.max()), probabilities, labels=chosen))
        return found

    def gold_name(self, label) -> str:
        return self.label_sep.join(sorted(label, key=self.labels.label2id.get))

    # -- the report -------------------------------------------------------------------------
    def label_matrix(self, cells: list[str]) -> np.ndarray:
        sets = [set(filter(None, cell.split(self.label_sep or ","))) for cell in cells]
        return np.array([[name in chosen for name in self.labels.names] for chosen in sets], dtype=int)

    def decision_rule(self) -> str:
        return (
            "one threshold per label, tuned for F1 on validation" if self.thresholds else "a threshold of 0.5 per label"
        )

    def wrong_confidence(self, wrong: list[dict]) -> np.ndarray:
        names = self.labels.names
        scores = saved_scores(wrong, names)
        gold = self.label_matrix([row["gold"] for row in wrong])
        thresholds = np.asarray(self.thresholds or [0.5] * len(names))
        said = scores >= thresholds
        # A wrong "yes" is as confident as its probability; a wrong "no" as one minus it.
        certainty = np.where(said, scores, 1 - scores)
        return np.where(said != gold.astype(bool), certainty, 0).max(axis=1)


def pieces(value: str, sep: str) -> list[str]:
    return [piece.strip() for piece in value.split(sep) if piece.strip()]


def multilabel_metrics(gold: np.ndarray, probabilities: np.ndarray, labels: LabelSet, predicted: np.ndarray) -> dict:
    """Micro/macro F1, per-label P/R/F1, subset accuracy (every label right), and the same F1s at a
    plain 0.5 threshold so tuned thresholds can be compared with it."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    gold = np.asarray(gold).astype(np.int64)
    at_half = (probabilities >= 0.5).astype(np.int64)
    precision, recall, f1, support = precision_recall_fscore_support(gold, predicted, zero_division=0)
    clipped = np.clip(probabilities.astype(np.float64), 1e-12, 1 - 1e-12)
    return {
        "task": MultiLabelTask.name,
        "loss": float(-(gold * np.log(clipped) + (1 - gold) * np.log(1 - clipped)).mean()),
        "subset_accuracy": float((predicted == gold).all(axis=1).mean()),
        "f1_micro": float(f1_score(gold, predicted, average="micro", zero_division=0)),
        "f1_macro": float(f1_score(gold, predicted, average="macro", zero_division=0)),
        "f1_micro_at_0.5": float(f1_score(gold, at_half, average="micro", zero_division=0)),
        "f1_macro_at_0.5": float(f1_score(gold, at_half, average="macro", zero_division=0)),
        "ece": expected_calibration_error(probabilities, gold, multi_label=True),
        "per_class": per_name(labels, precision, recall, f1, support),
        "rows": int(len(gold)),
    }
