"""Turn the data options into checked train/validation/test splits, before any model is loaded."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from bertfit.config import DataConfig
from bertfit.data.columns import TEXT_NAMES, column_by_name, infer_columns, infer_text_column, resolve_column
from bertfit.data.labels import LabelSet, normalize_label
from bertfit.data.readers import ReadOptions, read_table
from bertfit.data.registry import dataset_files, get_dataset
from bertfit.data.splits import stratified_split
from bertfit.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
MAX_LISTED_ROWS = 10


@dataclass
class TextSplit:
    """Texts and label names of one split; ``rows`` are 1-based data rows of ``source``."""

    name: str
    source: str
    texts: list[str]
    labels: list[str]
    rows: list[int]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, keep: list[int]) -> TextSplit:
        return replace(
            self,
            texts=[self.texts[i] for i in keep],
            labels=[self.labels[i] for i in keep],
            rows=[self.rows[i] for i in keep],
        )


@dataclass
class LoadedData:
    splits: dict[str, TextSplit]
    labels: LabelSet
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
) -> TextSplit:
    """Read one labelled file and check every row; raises ``DataError`` naming file, row and column."""
    path = Path(path)
    frame = read_table(path, options)
    source = str(path)
    text_col, label_col = _columns(frame, text_column, label_column, source)
    return _to_split(frame, text_col, label_col, source, name)


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


def _columns(frame: pd.DataFrame, text_column, label_column, source: str) -> tuple[object, object]:
    text = resolve_column(frame, text_column, "text", source) if text_column is not None else None
    label = resolve_column(frame, label_column, "label", source) if label_column is not None else None
    if text is not None and label is not None:
        return text, label
    return infer_columns(frame, source, text=text, label=label)


def checked_texts(values: list, source: str, column, first_row: int = 1) -> list[str]:
    """Texts as strings; empty, blank or missing ones stop the run with their row numbers
    (``first_row`` numbers the first value, for files read in chunks)."""
    texts = [v if isinstance(v, str) else normalize_label(v) or "" for v in values]
    empty = [first_row + i for i, text in enumerate(texts) if not text.strip()]
    if empty:
        raise DataError(f"{source}, {_rows(empty)}, column {column!r}: empty or missing text")
    return texts


def _to_split(frame: pd.DataFrame, text_col, label_col, source: str, name: str) -> TextSplit:
    texts = checked_texts(frame[text_col].tolist(), source, text_col)
    raw_labels = frame[label_col].tolist()
    nested = [i + 1 for i, v in enumerate(raw_labels) if isinstance(v, (list, tuple, dict))]
    if nested:
        raise DataError(f"{source}, {_rows(nested)}, column {label_col!r}: list-valued labels are not supported")
    labels = [normalize_label(v) for v in raw_labels]
    missing = [i + 1 for i, v in enumerate(labels) if v is None]
    if missing:
        raise DataError(f"{source}, {_rows(missing)}, column {label_col!r}: empty or missing label")
    return TextSplit(name, source, texts, labels, list(range(1, len(texts) + 1)))


def _rows(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:MAX_LISTED_ROWS])
    more = f" and {len(rows) - MAX_LISTED_ROWS} more" if len(rows) > MAX_LISTED_ROWS else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


# -- all splits ------------------------------------------------------------------------------
def load_data(config: DataConfig) -> LoadedData:
    """Read, split and check the data the options describe."""
    header = {"auto": None, "yes": True, "no": False}[config.header]
    display: dict[str, str] = {}
    if config.dataset:
        spec = get_dataset(config.dataset)
        paths = dataset_files(spec)
        options = ReadOptions(header=spec.header, quoting=spec.quoting)
        text_col, label_col, display = spec.text_column, spec.label_column, spec.label_names
        files = {split: paths.get(split) for split in SPLITS}
        fractions, seed = spec.split, spec.split_seed
    else:
        options = ReadOptions(header=header)
        text_col, label_col = config.text_column, config.label_column
        files = {split: getattr(config, split) for split in SPLITS}
        fractions, seed = config.split_fractions(), config.split_seed

    splits: dict[str, TextSplit] = {}
    for split in SPLITS:
        if files[split]:
            splits[split] = read_labelled_file(files[split], text_col, label_col, options, split)
    if fractions is not None:
        splits.update(_split_one(splits["train"], fractions, seed))
    return check_splits(splits, config.on_duplicates, display)


def _split_one(whole: TextSplit, fractions, seed: int) -> dict[str, TextSplit]:
    train, validation, test = stratified_split(whole.labels, fractions, seed, whole.source)
    parts = {"train": train, "validation": validation, "test": test}
    return {name: replace(whole.subset(rows), name=name) for name, rows in parts.items()}


def check_splits(splits: dict[str, TextSplit], on_duplicates: str, display: dict[str, str]) -> LoadedData:
    """Cross-split checks: enough classes, unseen labels, texts shared between splits."""
    warnings: list[str] = []
    train = splits["train"]
    train_classes = Counter(train.labels)
    if len(train_classes) < 2:
        only = next(iter(train_classes), "none")
        raise DataError(
            f"{train.source}: the training data has {len(train_classes)} class ({only!r}); "
            "classification needs at least two labels"
        )
    for name in ("validation", "test"):
        split = splits.get(name)
        if split is None:
            continue
        unseen = sorted(set(split.labels) - set(train_classes))
        if unseen:
            warnings.append(
                f"{split.source}: {name} label(s) {', '.join(map(repr, unseen))} never occur in training; "
                "the model cannot learn them"
            )
        splits[name] = _check_duplicates(train, split, on_duplicates, warnings)
    all_labels = [label for split in splits.values() for label in split.labels]
    label_set = LabelSet.from_values(all_labels, display)
    if display:
        for split in splits.values():
            split.labels = [display.get(v, v) for v in split.labels]
    for message in warnings:
        log.warning(message)
    return LoadedData(splits=splits, labels=label_set, warnings=warnings)


def _check_duplicates(train: TextSplit, split: TextSplit, policy: str, warnings: list[str]) -> TextSplit:
    seen = set(train.texts)
    shared = [i for i, text in enumerate(split.texts) if text in seen]
    if not shared:
        return split
    rows = [split.rows[i] for i in shared]
    message = (
        f"{split.source}: {len(shared)} of {len(split)} {split.name} texts also occur in the training data "
        f"({_rows(rows)}), which inflates {split.name} scores"
    )
    if policy == "error":
        raise DataError(message + "; remove them, or pass --on-duplicates warn or drop")
    if policy == "drop":
        warnings.append(message + f"; dropped from {split.name}")
        drop = set(shared)
        return split.subset([i for i in range(len(split)) if i not in drop])
    warnings.append(message + "; --on-duplicates drop removes them")
    return split
