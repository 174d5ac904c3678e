"""Regression: one number per text.

Trained with mean squared error on standardised targets (mean 0, standard deviation 1 over the
training labels), so one learning rate suits any scale; outputs are scaled back with that scale, the
shape's state. Pearson correlation picks the best epoch; near chance is an R^2 under 0.1.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from bertfit.errors import ConfigError, DataError, describe_rows
from bertfit.tasks.base import Prediction, Task, WorstExamples
from bertfit.tasks.labels import LabelSet

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

VALUE_LABEL = "value"  # the one name of a regression model's output
# Below it, the predictions explain under a tenth of the variance that predicting the mean leaves.
CHANCE_R2 = 0.1


@dataclass(frozen=True)
class RegressionTask(Task):
    name = "regression"
    problem_type = "regression"
    headlines = (("Pearson", "pearson"), ("Spearman", "spearman"), ("RMSE", "rmse"), ("MAE", "mae"), ("R2", "r2"))
    distinct_word = "different value"
    no_classes_reason = "a regression model has no classes"

    # Training targets are standardised; outputs are scaled back with these (see ``fitted_to_train``).
    target_mean: float = 0.0
    target_std: float = 1.0

    @classmethod
    def claims(cls, train_labels: list, sep: str, sep_given: bool, source: str) -> bool:
        numbers = [number(v) for v in train_labels]
        if all(n is not None for n in numbers) and any(not float(n).is_integer() for n in numbers):
            log.info("%s: numeric labels with fractions, so the task is regression (--task classification "
                     "treats them as classes)", source)  # fmt: skip
            return True
        return False

    @classmethod
    def shape_labels(cls, labels: list, sep: str, source: str, rows: Sequence[int]) -> list:
        numbers = [number(v) for v in labels]
        bad = [i for i, n in enumerate(numbers) if n is None]
        if bad:
            raise DataError(
                f"{source}, {describe_rows([rows[i] for i in bad])}: regression labels must be numbers, got "
                f"{', '.join(repr(labels[i]) for i in bad[:3])}"
            )
        return numbers

    @classmethod
    def strata(cls, labels: Iterable) -> list[str]:
        """A value's quartile."""
        labels = list(labels)
        edges = np.quantile(labels, [0.25, 0.5, 0.75]) if labels else []
        return [str(int(np.searchsorted(edges, v))) for v in labels]

    @classmethod
    def label_set(cls, names: Iterable, display: dict[str, str]) -> LabelSet:
        return LabelSet((VALUE_LABEL,))

    @classmethod
    def confusable_names(cls, names: Iterable[str]) -> list[str]:
        return []  # values, not names

    @classmethod
    def unseen(cls, train_names: set, labels: Iterable) -> list[str]:
        return []  # a value need not occur in training to be predicted

    @classmethod
    def label_counts(cls, labels: Iterable) -> dict:
        """A histogram of the values."""
        values = np.fromiter(labels, dtype=float)
        counts, edges = np.histogram(values, bins=20) if len(values) else (np.array([]), np.array([]))
        return {"histogram": {"edges": edges.tolist(), "counts": counts.tolist()}}

    @property
    def primary_metric(self) -> str:
        return "pearson"

    def gold(self, labels: Sequence) -> np.ndarray:
        return np.asarray(labels, dtype=np.float64)

    def targets(self, gold: np.ndarray) -> torch.Tensor:
        import torch

        return torch.tensor((gold - self.target_mean) / self.target_std, dtype=torch.float32)

    def fitted_to_train(self, train_gold: np.ndarray) -> Task:
        values = np.asarray(train_gold, dtype=np.float64)
        std = float(values.std()) if len(values) > 1 else 1.0
        return replace(self, target_mean=float(values.mean()) if len(values) else 0.0, target_std=std or 1.0)

    def loss(self, train_gold: np.ndarray, class_weights: str = "none") -> Callable:
        from torch import nn

        mse = nn.MSELoss()
        return lambda logits, targets: mse(logits.squeeze(-1), targets)

    def logit_scale(self) -> tuple[float, float]:
        return self.target_std, self.target_mean

    def outputs(self, logits: np.ndarray) -> np.ndarray:
        scale, shift = self.applied_scale()
        return (np.asarray(logits, dtype=np.float64)[:, 0] * scale + shift).astype(np.float32)

    def empty_outputs(self) -> np.ndarray:
        return np.zeros((0,), dtype=np.float32)

    folds_need_every_class = False

    def uncertainty(self, outputs: np.ndarray) -> np.ndarray:
        raise ConfigError("suggest ranks rows by how unsure the class probabilities are; a regression model gives "
                          "one value, with no probability to rank by")  # fmt: skip

    def label_issues(self, gold: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise ConfigError("audit finds wrong class labels; numeric targets are not supported")

    def explained_columns(self, outputs: np.ndarray, label: str | None) -> list[tuple[int, int]]:
        """The value, always."""
        if label is not None and label not in self.labels.names:
            raise ConfigError(f"--label {label!r}: a regression model explains its value ({self.labels.names[0]!r})")
        return [(i, 0) for i in range(len(outputs))]

    def shown_outputs(self, logits):
        return logits[:, :1]

    def decide(self, outputs: np.ndarray) -> np.ndarray:
        return outputs

    def decision_names(self, decisions: np.ndarray) -> list[str]:
        return [f"{v:.6g}" for v in decisions]

    def metrics(self, gold: np.ndarray, outputs: np.ndarray) -> dict:
        return regression_metrics(gold, outputs)

    def gold_of(self, labels: list, aliases: dict[str, str], source: str, rows: Sequence[int]) -> np.ndarray:
        return self.gold(labels)

    def predictions(self, outputs: np.ndarray) -> list[Prediction]:
        names = self.decision_names(outputs)
        return [Prediction(name, float("nan"), {}, value=float(v)) for name, v in zip(names, outputs)]

    def scored_labels(self, outputs: np.ndarray) -> list[list[tuple[str, float]]]:
        return [[(VALUE_LABEL, float(value))] for value in outputs]

    def prediction_columns(self, outputs: np.ndarray) -> dict[str, object]:
        return {"predicted_value": outputs}

    @property
    def score_columns(self) -> list[str]:
        return ["error"]

    def test_row(self, label, output, predicted: str) -> tuple[str, list[str], object]:
        return f"{label:.6g}", [f"{output - label:.6g}"], ""

    def worst_examples(self, predictions: list[dict], most: int) -> WorstExamples:
        ranked = sorted(predictions, key=lambda row: -abs(float(row["error"])))[:most]
        rows = [[row["row"], row["text"], row["gold"], row["predicted"], float(row["error"])] for row in ranked]
        return WorstExamples("Largest absolute errors.", ["row", "text", "gold", "predicted", "error"], rows)

    def near_chance(self, metrics: dict) -> str | None:
        """R^2 under ``CHANCE_R2`` (undefined on fewer than two rows: no verdict)."""
        r2 = metrics.get("r2", float("nan"))
        return f"R2 {r2:.3f} (under {CHANCE_R2} is near predicting the mean)" if r2 < CHANCE_R2 else None

    # -- saving -----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {**super().to_dict(), "target_mean": self.target_mean, "target_std": self.target_std}

    @classmethod
    def read_state(cls, state: dict, labels: LabelSet) -> dict:
        scale = {key: float(state[key]) for key in ("target_mean", "target_std") if key in state}
        return {**super().read_state(state, labels), **scale}


def number(value) -> float | None:
    if isinstance(value, tuple):
        return None
    try:
        found = float(value)
    except (TypeError, ValueError):
        return None
    return found if math.isfinite(found) else None


def regression_metrics(gold: np.ndarray, predicted: np.ndarray) -> dict:
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    gold = np.asarray(gold, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    constant = len(gold) < 2 or np.ptp(gold) == 0 or np.ptp(predicted) == 0
    mse = float(mean_squared_error(gold, predicted)) if len(gold) else float("nan")
    return {
        "task": RegressionTask.name,
        "loss": mse,
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(mean_absolute_error(gold, predicted)) if len(gold) else float("nan"),
        "r2": float(r2_score(gold, predicted)) if len(gold) > 1 else float("nan"),
        # Correlation is undefined for a constant column; 0 keeps "greater is better" working.
        "pearson": 0.0 if constant else float(pearsonr(gold, predicted)[0]),
        "spearman": 0.0 if constant else float(spearmanr(gold, predicted)[0]),
        "rows": int(len(gold)),
    }
