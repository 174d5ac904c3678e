"""``bertfit audit``: the training rows whose given label is likely wrong, and the texts given two labels.

1. Every row gets out-of-fold probabilities: K stratified folds, each scored by a model that never saw it.
   The default (``recipe="frozen"``) encodes every text once with the encoder as it is and fits only a
   linear head per fold (``frozen.logistic_regression``), so K folds cost one pass over the texts;
   ``recipe="full"`` fine-tunes a model per fold (K trainings of ``AUDIT_FULL_EPOCHS`` epochs unless told).
2. cleanlab's ``find_label_issues`` (confident learning: per class pair, how many rows the probabilities say
   carry the other label) picks the rows; they are ranked by cleanlab's label quality score (the
   probability the model gives the given label; low is suspect), with the model's own label as the
   suggestion.
3. Texts that occur twice with different labels (exactly, after case and spacing; or nearly, by the cosine
   of their sentence vectors) are listed too: whichever label is right, one of the two is wrong.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bertfit.config import TrainConfig
from bertfit.data.load import LoadedData, load_data
from bertfit.data.readers import output_format
from bertfit.data.stream import TableWriter
from bertfit.data.texts import text_key
from bertfit.encoding.batching import aggregate_windows, encode_texts, token_lengths
from bertfit.encoding.policy import text_policy
from bertfit.encoding.precision import PREDICTION_PRECISION, default_device
from bertfit.errors import ConfigError, DataError, OutputError, OutputExistsError
from bertfit.folder import check_writable
from bertfit.modeling import build_model, encoder_config, load_tokenizer, resolve_model_source, uses_token_types
from bertfit.options import AUDIT_FOLDS, AUDIT_RECIPES, NEAR_DUPLICATE, audit_epochs
from bertfit.tasks import Task
from bertfit.training.frozen import encode_features, logistic_regression
from bertfit.training.repeats import stratified_folds

log = logging.getLogger(__name__)

LIKELY_WRONG, DUPLICATE, NEAR = (
    "likely wrong label",
    "duplicate with another label",
    "near-duplicate with another label",
)


@dataclass
class LabelIssue:
    """One row to look at. ``quality``: the out-of-fold probability of the given label (cleanlab's label
    quality score; low is suspect); ``other_row``/``similarity``: the row it duplicates, for duplicates."""

    issue: str
    row: int
    text: str
    given_label: str
    suggested_label: str
    quality: float
    other_row: int | None = None
    other_label: str | None = None
    similarity: float | None = None


@dataclass
class Audit:
    """What ``audit`` found in one training file: the issues, worst first within each kind, and how the
    out-of-fold probabilities were made."""

    source: str
    rows: int
    folds: int
    recipe: str
    out_of_fold_accuracy: float
    seconds: float
    issues: list[LabelIssue] = field(default_factory=list)
    task: Task | None = None  # the labels' shape: what writing Label Studio tasks needs

    def count(self, issue: str) -> int:
        return sum(1 for found in self.issues if found.issue == issue)

    def summary(self) -> str:
        return (f"{self.source}: {self.rows} rows, {self.folds}-fold out-of-fold accuracy "
                f"{self.out_of_fold_accuracy:.4f} ({self.recipe} recipe, {self.seconds:.0f} s): "
                f"{self.count(LIKELY_WRONG)} likely wrong labels, {self.count(DUPLICATE)} duplicate and "
                f"{self.count(NEAR)} near-duplicate rows with another label")  # fmt: skip

    def next_step(self) -> str | None:
        """What would sharpen this audit, in one line; None after the full recipe, the sharpest there is.

        The full recipe's flags were measured sharper (bench/audit.py, 5% of labels flipped): precision
        0.81 -> 0.91 on SMS spam and 0.43 -> 0.46 on AG News, recall up 3 to 4 points, for about 17 times the
        time. So the quick frozen pass says so, and the full one says nothing."""
        if self.recipe != "frozen":
            return None
        return ("for sharper flags, fine-tune the encoder in each fold: add --recipe full "
                f"({self.folds} trainings, many times this audit's time)")  # fmt: skip

    def write(self, path: str | Path) -> Path:
        """The issues as a table (CSV, TSV, JSONL or Parquet by the name), one row per issue, worst first; a
        ``.json`` name writes Label Studio tasks instead, the suggested label as a pre-annotation."""
        import pandas as pd

        path = Path(path)
        if path.suffix.lower() == ".json":
            return self._write_label_studio(path)
        columns = ["file", *(f.name for f in dataclasses.fields(LabelIssue))]
        frame = pd.DataFrame([{"file": self.source, **dataclasses.asdict(i)} for i in self.issues], columns=columns)
        frame["other_row"] = frame["other_row"].astype("Int64")
        with TableWriter(path) as writer:
            writer.write(frame)
        return path

    def _write_label_studio(self, path: Path) -> Path:
        from bertfit.data.labelstudio import task, write_tasks

        tasks = [task({"text": i.text, "file": self.source, "row": i.row, "issue": i.issue, "given_label": i.given_label},
                      self.task.choices_of(i.suggested_label), round(1 - i.quality, 6)) for i in self.issues]  # fmt: skip
        return write_tasks(path, tasks, self.task.labels.names, self.task.multi_label, "text")


def audit(config: TrainConfig, folds: int = AUDIT_FOLDS, near_duplicate: float = NEAR_DUPLICATE) -> Audit:
    """Audit the labels of ``config``'s training data (``config.recipe``: frozen, the default, or full)."""
    started = time.perf_counter()
    recipe = "frozen" if config.recipe in ("auto", "frozen") else config.recipe
    if recipe not in AUDIT_RECIPES:
        raise ConfigError(f"audit scores rows with the frozen or the full recipe, not {config.recipe!r}")
    data = load_data(dataclasses.replace(config.data, validation_split=0.0), for_training=False)
    train = data.train
    task = data.task(labels=data.labels, label_sep=data.label_sep)
    if task.no_classes_reason is not None:  # before any encoding: the shape has no labels to audit
        raise ConfigError(f"{train.source}: audit finds wrong class labels; numeric targets are not supported "
                          f"({task.no_classes_reason})")  # fmt: skip
    _check_folds(data, folds)
    gold = task.gold(train.labels)
    task = task.fitted_to_train(gold)
    config = dataclasses.replace(
        config, recipe=recipe, epochs=audit_epochs(recipe, config.epochs), progress=False, export_onnx=False
    )
    log.info("audit: %d-fold out-of-fold probabilities for %d rows of %s (%s recipe)", folds, len(train),
             train.source, recipe)  # fmt: skip
    folds_at = stratified_folds(task.strata(train.labels), folds, config.seed)
    if recipe == "frozen":
        probabilities, vectors = _frozen_out_of_fold(config, task, data, gold, folds_at)
    else:
        probabilities, vectors = _full_out_of_fold(config, data, folds_at), None
    result = Audit(train.source, len(train), folds, recipe, _accuracy(task, gold, probabilities), 0.0, task=task)
    result.issues = _likely_wrong(task, train, gold, probabilities)
    result.issues += _duplicates(task, train, gold, probabilities, vectors, near_duplicate)
    result.seconds = time.perf_counter() - started
    return result


def _check_folds(data: LoadedData, folds: int) -> None:
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")
    train = data.train
    if len(train) < folds:
        raise DataError(f"{train.source}: {len(train)} rows, fewer than the {folds} folds; use --folds {len(train)}")
    if data.task.folds_need_every_class:
        counts = data.task.label_counts(train.labels)
        rare = {name: count for name, count in counts.items() if count < folds}
        if rare:
            named = ", ".join(f"{name!r} ({count})" for name, count in sorted(rare.items(), key=lambda kv: kv[1]))
            raise DataError(f"{train.source}: label(s) {named} have fewer rows than the {folds} folds, so some fold "
                            f"would score a class it never saw: label more rows or lower --folds")  # fmt: skip


def _frozen_out_of_fold(config: TrainConfig, task: Task, data: LoadedData, gold: np.ndarray,
                        folds_at: list) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Out-of-fold probabilities from a linear head per fold on sentence vectors computed once, and the
    vectors (for near-duplicates)."""
    source = resolve_model_source(config.model)
    tokenizer = load_tokenizer(source, config.trust_remote_code)
    model = build_model(config, source, task)
    encoder = encoder_config(model)
    train = data.train
    lengths = token_lengths(tokenizer, train.texts, train.pairs)
    policy, _ = text_policy(config.max_length, config.long_text, config.stride, config.window_aggregate, tokenizer,
                            encoder, lengths)  # fmt: skip
    encoded = encode_texts(tokenizer, train.texts, policy, train.pairs, uses_token_types(encoder))
    device = default_device()
    model.to(device)
    features = encode_features(model, encoded, tokenizer.pad_token_id or 0, config.eval_batch_size,
                               PREDICTION_PRECISION, device)  # fmt: skip
    vectors = aggregate_windows(features.numpy(), encoded, "mean")
    features = torch.from_numpy(vectors)
    targets = task.targets(gold)
    logits = np.zeros((len(train), len(task.labels)), dtype=np.float32)
    for kept, held_out in folds_at:
        loss_fn = task.loss(gold[kept])
        weight, bias = logistic_regression(features[kept], targets[kept], loss_fn, len(task.labels))
        logits[held_out] = (features[held_out] @ weight.T + bias).numpy()
    return task.outputs(logits), vectors


def _full_out_of_fold(config: TrainConfig, data: LoadedData, folds_at: list) -> np.ndarray:
    """Out-of-fold probabilities from a model fine-tuned per fold (no validation: the recipe's set epochs)."""
    from bertfit.training.run import fit_once

    train = data.train
    probabilities = None
    for number, (kept, held_out) in enumerate(folds_at, 1):
        log.info("audit: fold %d of %d", number, len(folds_at))
        splits = {"train": dataclasses.replace(train.subset(list(kept)), name="train"),
                  "test": dataclasses.replace(train.subset(list(held_out)), name="test")}  # fmt: skip
        result = fit_once(config, dataclasses.replace(data, splits=splits))
        outputs = result.outputs["test"]
        probabilities = np.zeros((len(train), outputs.shape[1]), np.float32) if probabilities is None else probabilities
        probabilities[held_out] = outputs
    return probabilities


def _accuracy(task: Task, gold: np.ndarray, probabilities: np.ndarray) -> float:
    """The share of rows whose out-of-fold decision is the given label (all of a row's labels, multi-label)."""
    return float(task.same_decisions(task.decide(probabilities), gold.astype(np.int64)).mean())


def _likely_wrong(task: Task, train, gold: np.ndarray, probabilities: np.ndarray) -> list[LabelIssue]:
    """Rows cleanlab finds mislabelled (its default rule, ``Task.label_issues``), worst (lowest label quality)
    first."""
    flagged, quality = task.label_issues(gold, probabilities)
    given = task.decision_names(gold.astype(np.int64))
    suggested = task.decision_names(task.decide(probabilities))
    order = sorted(np.flatnonzero(flagged), key=lambda i: quality[i])
    return [LabelIssue(LIKELY_WRONG, train.rows[i], _text(train, i), given[i], suggested[i], float(quality[i]))
            for i in order]  # fmt: skip


def _text(train, i: int) -> str:
    return train.texts[i] if train.pairs is None else f"{train.texts[i]} [SEP] {train.pairs[i]}"


def _duplicates(task: Task, train, gold: np.ndarray, probabilities: np.ndarray, vectors: np.ndarray | None,
                threshold: float) -> list[LabelIssue]:  # fmt: skip
    """Rows whose text (exactly, after case and spacing; or nearly, by sentence vectors) is an earlier row's
    with a different label, each naming that earlier row."""
    given = task.decision_names(gold.astype(np.int64))
    suggested = task.decision_names(task.decide(probabilities))
    quality = task.given_probability(gold, probabilities)

    def issue(kind: str, row: int, other: int, similarity: float) -> LabelIssue:
        return LabelIssue(kind, train.rows[row], _text(train, row), given[row], suggested[row], float(quality[row]),
                          train.rows[other], given[other], round(float(similarity), 4))  # fmt: skip

    groups: dict[str, list[int]] = defaultdict(list)
    for i in range(len(train)):
        groups[text_key(_text(train, i))].append(i)
    group_of = {i: key for key, rows in groups.items() for i in rows}
    found = []
    for rows in groups.values():
        for position, later in enumerate(rows[1:], 1):
            other = next((j for j in rows[:position] if given[j] != given[later]), None)
            if other is not None:
                found.append(issue(DUPLICATE, later, other, 1.0))
    if vectors is not None:
        found += [issue(NEAR, j, i, similarity) for i, j, similarity in _close_pairs(vectors, threshold)
                  if given[i] != given[j] and group_of[i] != group_of[j]]  # fmt: skip
    return found


def _close_pairs(vectors: np.ndarray, threshold: float, block: int = 2048):
    """(i, j, cosine) for i < j with cosine ≥ ``threshold``, a block of rows at a time."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    for start in range(0, len(unit), block):
        similarity = unit[start : start + block] @ unit.T
        rows, columns = np.nonzero(similarity >= threshold)
        for r, c in zip(rows, columns):
            i = start + r
            if i < c:
                yield i, int(c), similarity[r, c]


def check_audit_output(train: str | None, output: str | Path, overwrite: bool) -> None:
    """Refuse, before any work, an output of no known format, the training file itself, or (without
    ``overwrite``) an existing file."""
    output = Path(output)
    output_format(output)
    if train and output.exists() and Path(train).exists() and os.path.samefile(train, output):
        raise OutputError(f"--output {output} is the --train file: the audit would replace your data; choose "
                          "another --output")  # fmt: skip
    if output.exists() and not overwrite:
        raise OutputExistsError(f"--output {output} already exists; pass --overwrite to replace it")
    check_writable(output)
