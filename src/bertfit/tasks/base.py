"""What every task shape provides, and the parts they share.

A ``Task`` says what a label column holds and what the model's raw outputs (logits) mean: how labels
are detected, checked and stratified; the loss that trains the logits; how they become probabilities
or values (temperature, softmax/sigmoid, target scale); how a decision is made (argmax, a tuned
threshold, one threshold per label); which metrics score it and which one picks the best epoch; the
columns a prediction is written as; what the report shows; and when its validation scores are near
chance. It writes and reads its own fitted state (``to_dict``/``from_dict``: ``bertfit.json`` holds
``task: {name, state}``), so training, evaluation and prediction read outputs one way, and a shape's
state is listed in its own class only.

Each shape is one module of this package (``single_label``, ``multi_label``, ``regression``); code
outside the package asks the task object and never checks which shape it holds.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from bertfit.errors import ConfigError, DataError, describe_rows
from bertfit.folder import SavedTask
from bertfit.tasks.labels import LabelSet

if TYPE_CHECKING:  # torch loads only when a model is trained, not for config checks or reports
    import torch

log = logging.getLogger(__name__)

Headlines = tuple[tuple[str, str], ...]  # (title, metric key) pairs, in the order lines show them
# How far above what a model that learnt nothing scores a validation score must be not to count as near chance.
CHANCE_MARGIN = 0.03


@dataclass(frozen=True)
class Prediction:
    """One text's prediction. ``label``: the class, the chosen labels joined by the label separator
    (multi-label), or the value as text (regression); ``probability``: the chosen class's, or the top
    label's; ``labels``: the chosen labels (multi-label); ``value``: the number (regression)."""

    label: str
    probability: float
    probabilities: dict[str, float]
    labels: tuple[str, ...] | None = None
    value: float | None = None

    def to_dict(self) -> dict:
        if self.value is not None:
            return {"value": self.value}
        out = {"label": self.label, "probability": self.probability, "probabilities": self.probabilities}
        return out if self.labels is None else {**out, "labels": list(self.labels)}


@dataclass(frozen=True)
class CalibrationOptions:
    """What the user asked calibration to fit on validation (``--calibrate``, ``--threshold``, ...)."""

    temperature: bool = True
    threshold: str = "auto"  # auto, tune, or a probability
    target_recall: float | None = None
    positive_label: str | None = None


@dataclass(frozen=True)
class WorstExamples:
    """The report's table of the test rows a model got most wrong, as the shape ranks them."""

    note: str
    header: list[str]
    rows: list[list]


@dataclass(frozen=True)
class Task:
    """A task shape with its fitted state; subclasses set the class variables and override what differs.
    A shape with state of its own declares it as fields of its (frozen dataclass) class and saves them in
    its ``to_dict``/``read_state``: each class saves the fields it declares."""

    name: ClassVar[str]
    problem_type: ClassVar[str]  # transformers' ``config.problem_type`` for this shape
    headlines: ClassVar[Headlines]
    distinct_word: ClassVar[str] = "class"  # what training needs two of
    no_classes_reason: ClassVar[str | None] = None  # why class-wise report plots do not apply
    confidence_meaning: ClassVar[str] = "the probability the model gave its (wrong) prediction"  # in the report

    labels: LabelSet  # regression: one name, the predicted value's; saved beside the state (``labels``)
    label_sep: str = ","  # multi-label: joins label names in files and predictions
    temperature: float = 1.0  # probability calibration, fitted on validation
    # True once the temperature (or regression target scale) is folded into the output layer's weights
    # (``logit_scale``), so the model's own logits are final and tools outside bertfit need no extra step.
    scale_in_weights: bool = False
    # Binary: the positive class's threshold; multi-label: one threshold per label.
    thresholds: tuple[float, ...] | None = None

    # -- labels, before a model exists ------------------------------------------------------
    @classmethod
    def claims(cls, train_labels: list, sep: str, sep_given: bool, source: str) -> bool:
        """Whether ``--task auto`` picks this shape for these raw training labels (logging why)."""
        return False

    @classmethod
    def shape_labels(cls, labels: list, sep: str, source: str, rows: Sequence[int]) -> list:
        """Raw label cells in this shape's form; a bad cell stops the run, naming its rows."""
        nested = [i for i, v in enumerate(labels) if isinstance(v, tuple)]
        if nested:
            raise DataError(
                f"{source}, {describe_rows([rows[i] for i in nested])}: list-valued labels; pass --task multi-label"
            )
        return labels

    @classmethod
    def names_in(cls, labels: Iterable) -> Iterator:
        """Every label name of shaped labels, one at a time (a multi-label row gives several)."""
        return iter(labels)

    @classmethod
    def strata(cls, labels: Iterable) -> list[str]:
        """What a stratified split keeps in proportion."""
        return list(labels)

    @classmethod
    def label_set(cls, names: Iterable, display: dict[str, str]) -> LabelSet:
        """The classes the model predicts, from every split's label names."""
        return LabelSet.from_values(names, display)

    @classmethod
    def confusable_names(cls, names: Iterable[str]) -> list[str]:
        """Warnings about label names that look like one class written two ways: names equal but for
        case, or numbers beside words (``1`` and ``spam``). They stay separate classes unless merged."""
        names = sorted(set(names))
        found = []
        by_case: dict[str, list[str]] = {}
        for name in names:
            by_case.setdefault(name.casefold(), []).append(name)
        same = [group for group in by_case.values() if len(group) > 1]
        if same:
            listed = "; ".join(" / ".join(map(repr, group)) for group in same[:5])
            found.append(f"label names that differ only in case are separate classes: {listed}")
        numbers = [n for n in names if n.lstrip("-").isdigit()]
        if numbers and len(numbers) < len(names):
            words = [n for n in names if n not in numbers]
            found.append(f"labels mix numbers ({', '.join(numbers[:5])}) and words ({', '.join(words[:5])}); "
                         "if a number names the same class as a word, they are still two classes")  # fmt: skip
        return [f"{line}; merge them with --lowercase-labels or --label-map FILE" for line in found]

    @classmethod
    def unseen(cls, train_names: set, labels: Iterable) -> list[str]:
        """Label names of a held-out split that training never shows."""
        return sorted(set(cls.names_in(labels)) - train_names)

    @classmethod
    def label_counts(cls, labels: Iterable) -> dict:
        """The data profile's counts: rows per class."""
        return dict(Counter(str(label) for label in labels).most_common())

    @classmethod
    def rows_per_class(cls, labels: Iterable) -> float | None:
        """The median number of rows per class (multi-label: per label), which ``--recipe auto`` goes by;
        None for a shape without classes."""
        if cls.no_classes_reason is not None:
            return None
        counts = list(cls.label_counts(labels).values())
        return float(np.median(counts)) if counts else 0.0

    # -- training ---------------------------------------------------------------------------
    @property
    def primary_metric(self) -> str:
        """What picks the best epoch (greater is better)."""
        return "f1_macro"

    @property
    def parity_metric(self) -> str:
        """What the ONNX parity check compares."""
        return self.primary_metric

    def gold(self, labels: Sequence) -> np.ndarray:
        """Labels as metrics read them: class ids, a 0/1 matrix, or values."""
        return np.asarray(self.labels.encode(labels), dtype=np.int64)

    def targets(self, gold: np.ndarray) -> torch.Tensor:
        """Gold labels (see ``gold``) as the loss reads them."""
        import torch

        return torch.from_numpy(gold)

    def fitted_to_train(self, train_gold: np.ndarray) -> Task:
        """The task with whatever it learns from the training labels alone (regression: their scale)."""
        return self

    def loss(self, train_gold: np.ndarray, class_weights: str = "none") -> Callable:
        raise NotImplementedError

    # -- outputs and decisions --------------------------------------------------------------
    def outputs(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities (per class or per label) or regression values, from raw logits."""
        raise NotImplementedError

    def empty_outputs(self) -> np.ndarray:
        return np.zeros((0, len(self.labels)), dtype=np.float32)

    def logit_scale(self) -> tuple[float, float]:
        """``(a, b)`` such that ``a * logits + b`` are the logits ``outputs`` reads: the calibration
        temperature as ``1/T`` (exact for softmax and sigmoid); regression overrides it with its target scale."""
        return 1.0 / self.temperature, 0.0

    def applied_scale(self) -> tuple[float, float]:
        """What ``outputs`` still applies to the model's logits: nothing once it is in the weights."""
        return (1.0, 0.0) if self.scale_in_weights else self.logit_scale()

    def with_scale_in_weights(self) -> Task:
        return replace(self, scale_in_weights=True)

    def decide(self, outputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def same_decisions(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Per row, whether two sets of decisions (``decide``) agree."""
        return first == second

    def decision_names(self, decisions: np.ndarray) -> list[str]:
        """Decisions as the strings written to files: a class, labels joined by ``label_sep``, a value."""
        return [self.labels.names[i] for i in decisions]

    def calibrated(self, logits: np.ndarray, gold: np.ndarray, options: CalibrationOptions) -> Task:
        """The task with temperature and decision thresholds fitted on validation logits."""
        return self

    def metrics(self, gold: np.ndarray, outputs: np.ndarray) -> dict:
        """This shape's metrics, with the saved decision rule applied to ``outputs``."""
        raise NotImplementedError

    def gold_of(self, labels: list, aliases: dict[str, str], source: str, rows: Sequence[int]) -> np.ndarray:
        """Shaped labels of a file scored against a saved model: raw aliases (0 -> ham) count, and
        labels the model does not know stop the run, naming them and their rows."""
        known = self.labels.label2id

        def name(label: str) -> str:
            return label if label in known else aliases.get(label, label)

        labels = [tuple(map(name, v)) if isinstance(v, tuple) else name(v) for v in labels]
        unknown_by_row = {
            i: sorted(set(v if isinstance(v, tuple) else (v,)) - set(known)) for i, v in enumerate(labels)
        }
        unknown_rows = [i for i, names in unknown_by_row.items() if names]
        if unknown_rows:
            unknown = sorted({n for i in unknown_rows for n in unknown_by_row[i]})
            raise DataError(
                f"{source}: label(s) {', '.join(map(repr, unknown))} "
                f"({describe_rows([rows[i] for i in unknown_rows])}) "
                f"are not among the model's labels: {', '.join(self.labels.names)}"
            )
        return self.gold(labels)

    # -- predictions ------------------------------------------------------------------------
    def predictions(self, outputs: np.ndarray) -> list[Prediction]:
        """``Prediction`` objects from outputs, with the saved decision rule."""
        decisions = self.decide(outputs)
        names = self.decision_names(decisions)
        found = []
        for row, decision, name in zip(outputs, decisions, names):
            probabilities = {label: float(p) for label, p in zip(self.labels.names, row)}
            found.append(Prediction(name, float(row[decision]), probabilities))
        return found

    def scored_labels(self, outputs: np.ndarray) -> list[list[tuple[str, float]]]:
        """Per row, every label with its probability, most probable first (what TEI's ``/predict`` returns)."""
        names = self.labels.names
        return [sorted(zip(names, map(float, row)), key=lambda pair: -pair[1]) for row in outputs]

    def prediction_columns(self, outputs: np.ndarray) -> dict[str, object]:
        """The columns ``predict --input`` adds to a file: the decision and one probability per label."""
        columns: dict[str, object] = {"predicted_label": self.decision_names(self.decide(outputs))}
        for i, name in enumerate(self.labels.names):
            columns[f"prob_{name}"] = outputs[:, i]
        return columns

    @property
    def score_columns(self) -> list[str]:
        """The score columns of ``predictions_test.csv``."""
        return [f"prob_{n}" for n in self.labels.names]

    def test_row(self, label, output: np.ndarray, predicted: str) -> tuple[str, list[str], object]:
        """(gold as written, score cells, misclassified flag) of one ``predictions_test.csv`` row."""
        gold = self.gold_name(label)
        return gold, [f"{p:.6f}" for p in output], int(predicted != gold)

    def gold_name(self, label) -> str:
        return label

    # -- the report (read back from ``predictions_test.csv``) ---------------------------------
    def label_matrix(self, cells: list[str]) -> np.ndarray:
        """One column per label: 1 where a gold or predicted cell is, or includes, that label."""
        return np.array([[name == cell for name in self.labels.names] for cell in cells], dtype=int)

    def curve_labels(self, gold: np.ndarray, most: int) -> list[int]:
        """Which labels get a precision-recall curve: the ``most`` best supported."""
        by_support = np.argsort(-gold.sum(axis=0), kind="stable")
        return sorted(by_support[:most].tolist())

    def decision_rule(self) -> str:
        return "the most probable class (argmax; curves are one-vs-rest)"

    # -- label work: audit, suggest, explain (one label of many here; the other shapes override) ----------
    folds_need_every_class: ClassVar[bool] = True  # a stratified fold must hold each class (audit's check)
    multi_label: ClassVar[bool] = False  # several labels per row (Label Studio's ``choice="multiple"``)

    def uncertainty(self, outputs: np.ndarray) -> np.ndarray:
        """Per row, 0 (sure) to 1 (a coin toss): 1 minus the margin between the two most probable classes."""
        top = np.sort(outputs, axis=1)[:, -2:]
        return 1 - (top[:, 1] - top[:, 0])

    def label_issues(self, gold: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask of rows whose label is likely wrong, label quality per row) from out-of-fold probabilities:
        cleanlab's confident learning."""
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        return find_label_issues(gold, probabilities), get_label_quality_scores(gold, probabilities)

    def given_probability(self, gold: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        """Per row, the probability of its given label."""
        return probabilities[np.arange(len(gold)), gold.astype(np.int64)]

    def explained_columns(self, outputs: np.ndarray, label: str | None) -> list[tuple[int, int]]:
        """(row, output column) pairs to explain: ``label`` where given, else the predicted class."""
        names = list(self.labels.names)
        if label is not None:
            if label not in names:
                raise ConfigError(f"--label {label!r} is not a label of this model: {', '.join(names)}")
            return [(i, names.index(label)) for i in range(len(outputs))]
        return [(i, int(c)) for i, c in enumerate(self.decide(outputs))]

    def shown_outputs(self, logits):
        """What the user sees, from a torch tensor of final logits (the scale already applied), keeping the
        gradient: probabilities per class (softmax)."""
        return logits.softmax(dim=1)

    def choices_of(self, decision: str) -> list[str]:
        """A decision as written to files (``decision_names``), as the list of labels it holds."""
        return [decision]

    def worst_examples(self, predictions: list[dict], most: int) -> WorstExamples:
        """The most confidently wrong test rows."""
        wrong = [row for row in predictions if row.get("misclassified") == "1"]
        if not wrong:
            return WorstExamples("No test example is misclassified.", [], [])
        confidence = self.wrong_confidence(wrong)
        order = np.argsort(-confidence, kind="stable")[:most]
        rows = [[wrong[i]["row"], wrong[i]["text"], wrong[i]["gold"], wrong[i]["predicted"], float(confidence[i])]
                for i in order]  # fmt: skip
        note = (f"{len(wrong)} of {len(predictions)} test examples are wrong; the {len(rows)} most confident "
                f"(confidence = {self.confidence_meaning}) — often mislabelled data.")  # fmt: skip
        return WorstExamples(note, ["row", "text", "gold", "predicted", "confidence"], rows)

    def wrong_confidence(self, wrong: list[dict]) -> np.ndarray:
        scores = saved_scores(wrong, self.labels.names)
        index = self.labels.label2id
        return np.array([scores[i, index[row["predicted"]]] for i, row in enumerate(wrong)])

    # -- near chance ------------------------------------------------------------------------
    def near_chance(self, metrics: dict) -> str | None:
        """Why these validation metrics barely beat a model that learnt nothing, or None; each shape
        says what learning nothing scores for it."""
        return None

    def chance_warning(self, metrics: dict | None) -> str | None:
        """The line the log, the report and the model card show when the kept epoch's validation scores
        are near chance; None without validation metrics, or for a model that learnt."""
        try:
            reason = self.near_chance(metrics) if metrics else None
        except KeyError:  # a metrics.json of an older bertfit may lack what the rule reads: no verdict
            return None
        if reason is None:
            return None
        return (f"near chance on validation: {reason}; this model barely beats a guess, whatever its "
                "probabilities say (more data, more epochs, another learning rate or a larger model may help)")  # fmt: skip

    # -- saving: a task writes and reads its own state ---------------------------------------
    def to_dict(self) -> dict:
        """The fitted state as JSON values (``bertfit.json``'s ``task.state``, and ``config.json``'s
        ``bertfit``); ``from_dict`` reads it back. A shape adds the fields it declares."""
        thresholds = list(self.thresholds) if self.thresholds else None
        return {"label_sep": self.label_sep, "temperature": self.temperature,
                "scale_in_weights": self.scale_in_weights, "thresholds": thresholds}  # fmt: skip

    @classmethod
    def from_dict(cls, state: dict, labels: LabelSet) -> Task:
        """The task ``to_dict`` saved, over the folder's labels. A key the state lacks keeps its field's
        default (a shape that gains state still reads older folders); keys no field reads are ignored."""
        return cls(labels=labels, **cls.read_state(state, labels))

    @classmethod
    def read_state(cls, state: dict, labels: LabelSet) -> dict:
        """The constructor arguments in a saved state (``from_dict``); a shape adds the fields it declares."""
        read = {"label_sep": str, "temperature": float, "scale_in_weights": bool, "thresholds": floats}
        return {key: convert(state[key]) for key, convert in read.items() if key in state}

    def to_manifest(self) -> SavedTask:
        """What ``bertfit.json`` holds of the task: its shape's name and state."""
        return SavedTask(self.name, self.to_dict())

    def with_temperature(self, logits: np.ndarray, gold: np.ndarray, multi_label: bool) -> Task:
        from bertfit.tasks.calibration import fit_temperature

        temperature = fit_temperature(logits, gold, multi_label)  # 1, with the reason logged, where it cannot fit
        if temperature != 1.0:
            log.info("calibration: temperature %.3f fitted on validation", temperature)
        return replace(self, temperature=temperature)


def floats(values) -> tuple[float, ...] | None:
    """Saved thresholds (a JSON list, or null) as the tuple a task holds."""
    return tuple(float(v) for v in values) if values else None


def saved_scores(predictions: list[dict], names: Sequence[str]) -> np.ndarray:
    """The ``prob_<label>`` columns of rows read back from ``predictions_test.csv``."""
    return np.array([[float(row[f"prob_{name}"]) for name in names] for row in predictions])
