"""Turn the data options into checked train/validation/test splits, before any model is loaded."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from bertfit.config import DataConfig
from bertfit.data.columns import TEXT_NAMES, column_by_name, infer_columns, infer_text_column, resolve_column
from bertfit.data.labels import LabelSet, normalize_label
from bertfit.data.readers import ReadOptions, describe_rows, read_table
from bertfit.data.registry import dataset_files, get_dataset
from bertfit.data.splits import stratified_split
from bertfit.data.targets import detect_task, raw_label, shape_labels
from bertfit.errors import DataError
from bertfit.tasks import CLASSIFICATION, MULTI_LABEL, REGRESSION

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


@dataclass
class TextSplit:
    """Texts and label names of one split; ``rows`` are 1-based data rows of ``source``."""

    name: str
    source: str
    texts: list[str]
    labels: list  # class names; tuples of names (multi-label); floats (regression)
    rows: list[int]
    pairs: list[str] | None = None  # second texts of sentence pairs

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, keep: list[int]) -> TextSplit:
        return replace(
            self,
            texts=[self.texts[i] for i in keep],
            labels=[self.labels[i] for i in keep],
            rows=[self.rows[i] for i in keep],
            pairs=None if self.pairs is None else [self.pairs[i] for i in keep],
        )

    def inputs(self) -> list[tuple[str, str]] | list[str]:
        """What identifies a row's input: its text, or (text, pair)."""
        return self.texts if self.pairs is None else list(zip(self.texts, self.pairs))

    def pieces(self) -> Iterator[TextSplit]:
        """The split in in-memory pieces: all of it at once (``ArrowSplit`` gives many)."""
        yield self

    def with_task(self, task: str, label_sep: str) -> TextSplit:
        """The split with labels in ``task``'s form; a bad cell stops the run, naming its row."""
        return shape_labels(self, task, label_sep)


@dataclass
class LoadedData:
    splits: dict[str, TextSplit]
    labels: LabelSet
    task: str = CLASSIFICATION
    label_sep: str = ","
    warnings: list[str] = field(default_factory=list)

    @property
    def train(self) -> TextSplit:
        return self.splits["train"]

    def get(self, name: str) -> TextSplit | None:
        split = self.splits.get(name)
        return split if split is not None and len(split) else None


# -- reading one file ------------------------------------------------------------------------
def read_labelled_file(
    path: str | Path,
    text_column: str | int | None = None,
    label_column: str | int | None = None,
    options: ReadOptions = ReadOptions(),
    name: str = "data",
    pair_column: str | int | None = None,
) -> TextSplit:
    """Read one labelled file and check every row; raises ``DataError`` naming file, row and column.

    Labels stay raw (names, or tuples of names for list cells) until the task is known."""
    path = Path(path)
    frame = read_table(path, options)
    source = str(path)
    text_col, label_col, pair_col = resolve_columns(frame, text_column, label_column, pair_column, source)
    texts = checked_texts(frame[text_col].tolist(), source, text_col)
    labels = checked_labels(frame[label_col].tolist(), source, label_col)
    pairs = None if pair_col is None else checked_texts(frame[pair_col].tolist(), source, pair_col)
    return TextSplit(name, source, texts, labels, list(range(1, len(texts) + 1)), pairs)


def read_text_file(path: str | Path, text_column: str | int | None = None, options: ReadOptions = ReadOptions()):
    """Read an unlabelled file for prediction: (frame, text column name)."""
    frame = read_table(path, options)
    column = text_column_of(frame, text_column, str(path))
    checked_texts(frame[column].tolist(), str(path), column)
    return frame, column


def text_column_of(frame: pd.DataFrame, text_column: str | int | None, source: str) -> object:
    """The text column of an unlabelled file: the one named, the only one, or the inferred one."""
    if text_column is not None:
        return resolve_column(frame, text_column, "text", source)
    if len(frame.columns) == 1:
        return frame.columns[0]
    return column_by_name(frame, TEXT_NAMES) or infer_text_column(frame, exclude=None, source=source)


def resolve_columns(frame: pd.DataFrame, text_column, label_column, pair_column, source: str) -> tuple:
    """(text, label, pair or None) column names: the ones named, the others inferred."""
    text = resolve_column(frame, text_column, "text", source) if text_column is not None else None
    label = resolve_column(frame, label_column, "label", source) if label_column is not None else None
    if text is None or label is None:
        text, label = infer_columns(frame, source, text=text, label=label)
    pair = resolve_column(frame, pair_column, "text pair", source) if pair_column is not None else None
    return text, label, pair


def checked_texts(values: list, source: str, column, first_row: int = 1) -> list[str]:
    """Texts as strings; empty, blank or missing ones stop the run with their row numbers
    (``first_row`` numbers the first value, for files read in chunks)."""
    texts = [v if isinstance(v, str) else normalize_label(v) or "" for v in values]
    empty = [first_row + i for i, text in enumerate(texts) if not text.strip()]
    if empty:
        raise DataError(f"{source}, {describe_rows(empty)}, column {column!r}: empty or missing text")
    return texts


def checked_labels(values: list, source: str, column, first_row: int = 1) -> list:
    """Raw labels (names, or tuples of names for list cells); missing ones stop the run with their rows."""
    labels = [raw_label(v) for v in values]
    missing = [first_row + i for i, v in enumerate(labels) if v is None]
    if missing:
        raise DataError(f"{source}, {describe_rows(missing)}, column {column!r}: empty or missing label")
    return labels


# -- all splits ------------------------------------------------------------------------------
def load_data(config: DataConfig) -> LoadedData:
    """Read, split and check the data the options describe."""
    header = {"auto": None, "yes": True, "no": False}[config.header]
    display: dict[str, str] = {}
    label_sep = config.label_sep
    if config.dataset:
        spec = get_dataset(config.dataset)
        paths = dataset_files(spec)
        options = ReadOptions(header=spec.header, quoting=spec.quoting)
        text_col, label_col, pair_col = spec.text_column, spec.label_column, spec.text_pair_column
        display = spec.label_names
        files = {split: paths.get(split) for split in SPLITS}
        fractions, seed = spec.split, spec.split_seed
        label_sep = label_sep or spec.label_sep
    else:
        options = ReadOptions(header=header)
        text_col, label_col, pair_col = config.text_column, config.label_column, config.text_pair_column
        files = {split: getattr(config, split) for split in SPLITS}
        fractions, seed = config.split_fractions(), config.split_seed

    if files["train"] and not config.arrow:
        _suggest_arrow(Path(files["train"]))
    splits: dict[str, TextSplit] = {}
    for split in SPLITS:
        if files[split]:
            read = _arrow_reader() if config.arrow else read_labelled_file
            splits[split] = read(files[split], text_col, label_col, options, split, pair_col)
    train = splits["train"]
    distinct = list(dict.fromkeys(label for piece in train.pieces() for label in piece.labels))
    task, label_sep = detect_task(distinct, config.task, label_sep, train.source)
    splits = {name: split.with_task(task, label_sep) for name, split in splits.items()}
    if fractions is not None:
        splits.update(_split_one(splits["train"], fractions, seed, task))
    return check_splits(splits, config.on_duplicates, display, task, label_sep)


LARGE_FILE_BYTES = 256 * 2**20


def _suggest_arrow(path: Path) -> None:
    # Measured (bench/train_memory.py): short texts read into memory cost about 7 kB a row once tokenized,
    # tens of times their size on disk.
    size = path.stat().st_size
    if size > LARGE_FILE_BYTES:
        log.warning("%s is %d MB; read into memory it can take tens of times that, and --arrow keeps it on disk",
                    path, size // 2**20)  # fmt: skip


def _arrow_reader():
    """The reader of ``--arrow`` files (imported late: it needs the optional datasets package)."""
    from bertfit.data.arrow import read_arrow_split

    return read_arrow_split


def _split_one(whole: TextSplit, fractions, seed: int, task: str) -> dict[str, TextSplit]:
    train, validation, test = stratified_split(strata(whole.labels, task), fractions, seed, whole.source)
    parts = {"train": train, "validation": validation, "test": test}
    return {name: replace(whole.subset(rows), name=name) for name, rows in parts.items()}


def strata(labels: Iterable, task: str) -> list[str]:
    """What a stratified split keeps in proportion: the class; a row's rarest label; a value's quartile."""
    labels = list(labels)  # an --arrow split's labels are read from disk once, here
    if task == MULTI_LABEL:
        counts = Counter(name for names in labels for name in names)
        return [min(names, key=lambda n: (counts[n], n)) if names else "" for names in labels]
    if task == REGRESSION:
        edges = np.quantile(labels, [0.25, 0.5, 0.75]) if labels else []
        return [str(int(np.searchsorted(edges, v))) for v in labels]
    return labels


def check_splits(splits: dict[str, TextSplit], on_duplicates: str, display: dict[str, str],
                 task: str = CLASSIFICATION, label_sep: str = ",") -> LoadedData:  # fmt: skip
    """Cross-split checks: enough classes, unseen labels, texts shared between splits."""
    warnings: list[str] = []
    train = splits["train"]
    train_classes = Counter(label_names(train.labels, task))
    if len(train_classes) < 2:
        only = next(iter(train_classes), "none")
        what = "different value" if task == REGRESSION else "class"
        raise DataError(
            f"{train.source}: the training data has {len(train_classes)} {what} ({only!r}); "
            f"{task} needs at least two"
        )
    for name in ("validation", "test"):
        split = splits.get(name)
        if split is None:
            continue
        unseen = sorted(set(label_names(split.labels, task)) - set(train_classes))
        if unseen and task != REGRESSION:
            warnings.append(
                f"{split.source}: {name} label(s) {', '.join(map(repr, unseen))} never occur in training; "
                "the model cannot learn them"
            )
        splits[name] = _check_duplicates(train, split, on_duplicates, warnings)
    if task == REGRESSION:
        label_set = LabelSet(("value",))
    else:
        label_set = LabelSet.from_values((n for s in splits.values() for n in label_names(s.labels, task)), display)
    if display:
        for split in splits.values():
            split.labels = [_display(v, display) for v in split.labels]
    for message in warnings:
        log.warning(message)
    return LoadedData(splits=splits, labels=label_set, task=task, label_sep=label_sep, warnings=warnings)


def label_names(labels: Iterable, task: str) -> Iterable:
    """Every label name (a multi-label row gives several), or every value (regression), one at a time."""
    return (name for names in labels for name in names) if task == MULTI_LABEL else iter(labels)


def _display(value, display: dict[str, str]):
    if isinstance(value, tuple):
        return tuple(display.get(v, v) for v in value)
    return display.get(value, value) if isinstance(value, str) else value


def _check_duplicates(train: TextSplit, split: TextSplit, policy: str, warnings: list[str]) -> TextSplit:
    # The held-out split is the small one: keep its texts in a set and stream the training texts past it.
    held_out = set(split.inputs())
    seen = {text for text in train.inputs() if text in held_out}
    shared = [i for i, text in enumerate(split.inputs()) if text in seen]
    if not shared:
        return split
    rows = [split.rows[i] for i in shared]
    message = (
        f"{split.source}: {len(shared)} of {len(split)} {split.name} texts also occur in the training data "
        f"({describe_rows(rows)}), which inflates {split.name} scores"
    )
    if policy == "error":
        raise DataError(message + "; remove them, or pass --on-duplicates warn or drop")
    if policy == "drop":
        warnings.append(message + f"; dropped from {split.name}")
        drop = set(shared)
        return split.subset([i for i in range(len(split)) if i not in drop])
    warnings.append(message + "; --on-duplicates drop removes them")
    return split
