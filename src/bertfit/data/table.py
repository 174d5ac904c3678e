"""One labelled (or unlabelled) file read into checked rows: ``TextSplit`` and the readers that make it,
and ``Split``, what every split offers (``TextSplit`` in memory, ``data.arrow.ArrowSplit`` on disk).

Every text and label cell is checked as it is read; a problem stops the run with one line naming the
file, row and column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import pandas as pd

from bertfit.config import LABEL_COLUMNS_CONFLICT
from bertfit.data.columns import (
    BINARY,
    TEXT_NAMES,
    IndicatorColumns,
    column_by_name,
    infer_columns,
    infer_text_column,
    label_column_names,
    log_indicators,
    resolve_column,
    resolve_label_columns,
    taken,
)
from bertfit.data.parsing import QUOTED_FROM, quote_advice
from bertfit.data.readers import ReadOptions, read_table
from bertfit.errors import ConfigError, DataError, describe_rows
from bertfit.tasks import Task, normalize_label
from bertfit.tasks.labels import raw_label


class Column(Protocol):
    """A split's texts, labels, rows or pairs: sized and iterable (an ``ArrowSplit`` reads them lazily)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator: ...


@runtime_checkable
class Split(Protocol):
    """What training, scoring and the cross-split checks ask of a split, wherever its rows are."""

    name: str
    source: str

    @property
    def texts(self) -> Column: ...

    @property
    def labels(self) -> Column: ...

    @property
    def rows(self) -> Column: ...

    @property
    def pairs(self) -> Column | None: ...

    def __len__(self) -> int: ...

    def pieces(self) -> Iterator[TextSplit]:
        """The rows as in-memory ``TextSplit`` pieces, labels in the task's form once it is set."""
        ...

    def inputs(self) -> Iterable:
        """What identifies each row's input: its text, or (text, pair)."""
        ...

    def subset(self, keep: Sequence[int]) -> Split:
        """The rows at the given positions, in the order given."""
        ...

    def with_task(self, task: type[Task], label_sep: str) -> Split:
        """The split with labels in ``task``'s form, every row checked now."""
        ...

    def relabelled(self, rename: Callable[[str], str]) -> Split:
        """The split with every raw label name passed through ``rename`` (``--label-map``)."""
        ...

    def tokenized(self, tokenizer, max_length: int, token_types: bool, progress: bool = True) -> tuple | None:
        """Token ids kept where the rows are (on disk), or None: the caller tokenizes ``texts``."""
        ...


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

    def subset(self, keep: Sequence[int]) -> TextSplit:
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

    def relabelled(self, rename: Callable[[str], str]) -> TextSplit:
        labels = [tuple(map(rename, v)) if isinstance(v, tuple) else rename(v) for v in self.labels]
        return replace(self, labels=labels)

    def tokenized(self, tokenizer, max_length: int, token_types: bool, progress: bool = True) -> None:
        return None  # the texts are in memory: the caller tokenizes them with its text policy


def read_labelled_file(
    path: str | Path,
    text_column: str | int | None = None,
    label_column: str | int | None = None,
    *,
    options: ReadOptions = ReadOptions(),
    name: str = "data",
    pair_column: str | int | None = None,
    label_columns: str | None = None,
) -> TextSplit:
    """Read one labelled file and check every row; raises ``DataError`` naming file, row and column.

    Labels stay raw (names, or tuples of names for list cells and ``label_columns``, 0/1 columns one
    per label) until the task is known."""
    path = Path(path)
    frame = read_table(path, naming(options, text_column, label_column, pair_column, label_columns=label_columns))
    source = str(path)
    columns = resolve_columns(frame, text_column, label_column, pair_column, source, label_columns)
    texts, labels, pairs = checked_rows(frame, columns, source)
    return TextSplit(name, source, texts, labels, list(range(1, len(texts) + 1)), pairs)


def naming(options: ReadOptions, *columns, label_columns: str | None = None) -> ReadOptions:
    """``options`` knowing the column names the user gave (0-based positions left out): one found in
    the first row proves that row a header."""
    names = [str(c).strip() for c in columns if c is not None] + label_column_names(label_columns)
    return replace(options, names=tuple(n for n in names if n and not n.isdigit()))


def checked_rows(frame: pd.DataFrame, columns: tuple, source: str, first_row: int = 1) -> tuple:
    """(texts, raw labels, pairs or None) of the frame's rows in the columns ``resolve_columns`` chose;
    a bad cell stops the run, naming file, row and column (and ``--quoting none`` where a quote
    character read as CSV quoting may be the cause)."""
    text, label, pair = columns
    quoted = frame.attrs.get(QUOTED_FROM)
    texts = checked_texts(frame[text].tolist(), source, text, first_row, quoted_from=quoted)
    if isinstance(label, IndicatorColumns):
        labels = indicator_labels(frame, label, source, first_row)
    else:
        labels = checked_labels(frame[label].tolist(), source, label, first_row, quoted_from=quoted)
    pairs = None if pair is None else checked_texts(frame[pair].tolist(), source, pair, first_row, quoted_from=quoted)
    return texts, labels, pairs


def indicator_labels(frame: pd.DataFrame, label: IndicatorColumns, source: str, first_row: int = 1) -> list:
    """Each row's label names: the columns of ``label`` holding 1 or true (none: an empty tuple)."""
    flags = []
    for column in label.columns:
        values = [normalize_label(v) for v in frame[column].tolist()]
        bad = [i for i, v in enumerate(values) if v is None or v.lower() not in BINARY]
        if bad:
            found = "an empty cell" if values[bad[0]] is None else repr(values[bad[0]])
            raise DataError(f"{source}, {describe_rows([first_row + i for i in bad])}, column {column!r}: expected 0 "
                            f"or 1 (or true/false) in a 0/1 label column, found {found}")  # fmt: skip
        flags.append([BINARY[v.lower()] for v in values])
    names = [str(column) for column in label.columns]
    return [tuple(name for name, on in zip(names, row) if on) for row in zip(*flags)]


def read_text_file(path: str | Path, text_column: str | int | None = None, options: ReadOptions = ReadOptions()):
    """Read an unlabelled file for prediction: (frame, text column name)."""
    frame = read_table(path, naming(options, text_column))
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


def resolve_columns(frame: pd.DataFrame, text_column, label_column, pair_column, source: str,
                    label_columns: str | None = None) -> tuple:  # fmt: skip
    """(text, label, pair or None) columns: the ones named, the others inferred. The label is one column,
    or ``IndicatorColumns`` (``label_columns`` given, or a block of 0/1 columns found)."""
    if label_column is not None and label_columns is not None:
        raise ConfigError(LABEL_COLUMNS_CONFLICT)
    text = resolve_column(frame, text_column, "text", source) if text_column is not None else None
    if label_columns is not None:
        label = resolve_label_columns(frame, label_columns, source)
    else:
        label = resolve_column(frame, label_column, "label", source) if label_column is not None else None
    if text is None or label is None:
        text, label = infer_columns(frame, source, text=text, label=label)
    pair = resolve_column(frame, pair_column, "text pair", source) if pair_column is not None else None
    _one_role_each(text, label, pair, source)
    log_indicators(label, source)
    return text, label, pair


def _one_role_each(text, label, pair, source: str) -> None:
    labels = taken(label)
    role = "one of the label columns" if isinstance(label, IndicatorColumns) else "label"
    if text in labels:
        column, same = text, f"text and {role}"
    elif pair is not None and pair == text:
        column, same = pair, "text and text pair"
    elif pair in labels:
        column, same = pair, f"{role} and text pair"
    else:
        return
    raise DataError(f"{source}: column {column!r} is both the {same}; give each role its own column")


def is_blank(value) -> bool:
    text = value if isinstance(value, str) else normalize_label(value) or ""
    return not text.strip()


def checked_texts(values: list, source: str, column, first_row: int = 1, advice: str = "", *,
                  quoted_from: int | None = None) -> list[str]:  # fmt: skip
    """Texts as strings; empty, blank or missing ones stop the run with their row numbers
    (``first_row`` numbers the first value, for files read in chunks; ``advice`` ends the message;
    ``quoted_from``: the first row at or after a quote read as CSV quoting, see ``parsing.quoted_from``)."""
    texts = [v if isinstance(v, str) else normalize_label(v) or "" for v in values]
    empty = [first_row + i for i, text in enumerate(texts) if is_blank(text)]
    if empty:
        raise DataError(f"{source}, {describe_rows(empty)}, column {column!r}: empty or missing text"
                        f"{quote_advice(quoted_from, empty)}{advice}")  # fmt: skip
    return texts


def checked_labels(values: list, source: str, column, first_row: int = 1, *, quoted_from: int | None = None) -> list:
    """Raw labels (names, or tuples of names for list cells); missing ones stop the run with their rows."""
    labels = [raw_label(v) for v in values]
    missing = [first_row + i for i, v in enumerate(labels) if v is None]
    if missing:
        raise DataError(f"{source}, {describe_rows(missing)}, column {column!r}: empty or missing label"
                        f"{quote_advice(quoted_from, missing)}")  # fmt: skip
    return labels
