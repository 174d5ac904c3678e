"""One labelled (or unlabelled) file read into checked rows: ``TextSplit`` and the readers that make it.

Every text and label cell is checked as it is read; a problem stops the run with one line naming the
file, row and column.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from bertfit.data.columns import TEXT_NAMES, column_by_name, infer_columns, infer_text_column, resolve_column
from bertfit.data.readers import ReadOptions, read_table
from bertfit.errors import DataError, describe_rows
from bertfit.tasks import Task, normalize_label
from bertfit.tasks.labels import raw_label


@dataclass
class TextSplit:
    """Texts and label names of one split; ``rows`` are 1-based data rows of ``source``."""

    name: str
    source: str
    texts: list[str]
    labels: list  # raw cells until ``with_task``, then in the task shape's form (see ``Task.shape_labels``)
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

    def with_task(self, task: type[Task], label_sep: str) -> TextSplit:
        """The split with labels in ``task``'s form; a bad cell stops the run, naming its row."""
        return replace(self, labels=task.shape_labels(self.labels, label_sep, self.source, self.rows))


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
    if text == label or pair in (text, label):
        same = "text and label" if text == label else ("text and text pair" if pair == text else "label and text pair")
        raise DataError(f"{source}: column {text if text == label else pair!r} is both the {same}; "
                        "give each role its own column")  # fmt: skip
    return text, label, pair


def is_blank(value) -> bool:
    text = value if isinstance(value, str) else normalize_label(value) or ""
    return not text.strip()


def checked_texts(values: list, source: str, column, first_row: int = 1, advice: str = "") -> list[str]:
    """Texts as strings; empty, blank or missing ones stop the run with their row numbers
    (``first_row`` numbers the first value, for files read in chunks; ``advice`` ends the message)."""
    texts = [v if isinstance(v, str) else normalize_label(v) or "" for v in values]
    empty = [first_row + i for i, text in enumerate(texts) if is_blank(text)]
    if empty:
        raise DataError(f"{source}, {describe_rows(empty)}, column {column!r}: empty or missing text{advice}")
    return texts


def checked_labels(values: list, source: str, column, first_row: int = 1) -> list:
    """Raw labels (names, or tuples of names for list cells); missing ones stop the run with their rows."""
    labels = [raw_label(v) for v in values]
    missing = [first_row + i for i, v in enumerate(labels) if v is None]
    if missing:
        raise DataError(f"{source}, {describe_rows(missing)}, column {column!r}: empty or missing label")
    return labels
