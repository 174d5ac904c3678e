"""Find the text and label columns: by the user's name or index, else by name, else by content.

A multi-label label may be spread over 0/1 columns, one per label name (the layout of the toxic-comment
and SemEval emotion data): ``--label-columns`` names them, or a block of two or more columns holding
only 0/1 (or true/false) is found when no label column is named.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass

import pandas as pd

from bertfit.errors import DataError
from bertfit.tasks import normalize_label

log = logging.getLogger(__name__)

TEXT_NAMES = ("text", "sentence", "sentences", "message", "content", "review", "comment", "document", "body", "sms")
LABEL_NAMES = ("label", "labels", "target", "class", "category", "y", "sentiment", "intent")
BINARY = {"0": False, "1": True, "0.0": False, "1.0": True, "false": False, "true": True}
_GLOB = "*?["


@dataclass(frozen=True)
class IndicatorColumns:
    """One multi-label label spread over 0/1 columns, one per label name: a row carries the names of
    the columns that hold 1 (none: an empty label set, which is data, not a hole)."""

    columns: tuple

    def __str__(self) -> str:
        return ", ".join(map(str, self.columns))


def taken(column) -> tuple:
    """The columns a role holds: none, one, or an indicator block's."""
    if column is None:
        return ()
    return column.columns if isinstance(column, IndicatorColumns) else (column,)


def resolve_column(frame: pd.DataFrame, spec: str | int, role: str, source: str, flag: str | None = None) -> object:
    """The column ``spec`` names: an exact name, a case-insensitive name, or a 0-based index (``flag``:
    the option named in the message, ``--<role>-column`` by default)."""
    columns = list(frame.columns)
    if spec in columns:
        return spec
    text = str(spec).strip()
    by_name = [c for c in columns if str(c) == text] or [c for c in columns if str(c).lower() == text.lower()]
    if len(by_name) == 1:
        return by_name[0]
    if text.isdigit() and int(text) < len(columns):
        return columns[int(text)]
    raise DataError(
        f"{source}: no {role} column {text!r}; columns found: {_describe(columns)}. "
        f"Pass {flag or f'--{role}-column'} with one of those names or a 0-based index."
    )


def label_column_names(spec: str | None) -> list[str]:
    """The column names (and globs) a ``--label-columns`` spec holds, for header detection; positions
    are left out."""
    parts = [piece.strip() for part in str(spec or "").split(",") for piece in part.split(":")]
    return [part for part in parts if part and not part.isdigit()]


def resolve_label_columns(frame: pd.DataFrame, spec: str, source: str) -> IndicatorColumns:
    """The 0/1 columns ``--label-columns`` names, comma-separated: names or 0-based positions, ranges
    with both ends included (``anger:fear``, ``2:5``, ``anger:`` to the last column) and globs (``emo_*``)."""
    chosen: list = []
    for part in (p.strip() for p in str(spec).split(",")):
        found = _label_columns_of(frame, part, source) if part else []
        chosen += [column for column in found if column not in chosen]
    if len(chosen) < 2:
        raise DataError(f"{source}: --label-columns {spec!r} names {len(chosen)} column(s); 0/1 label columns "
                        "come two or more (one label column is --label-column)")  # fmt: skip
    for column in chosen:  # a range that takes in the text column, say, is refused before any row is read
        values = [normalize_label(v) for v in frame[column]]
        bad = next((i for i, v in enumerate(values) if v is not None and v.lower() not in BINARY), None)
        if bad is not None:
            raise DataError(f"{source}, row {bad + 1}, column {column!r}: --label-columns {spec!r} takes this column, "
                            f"which holds {values[bad]!r}; each must hold only 0/1 (or true/false)")  # fmt: skip
    return IndicatorColumns(tuple(chosen))


def _label_columns_of(frame: pd.DataFrame, part: str, source: str) -> list:
    columns = list(frame.columns)
    if any(char in part for char in _GLOB):
        found = [c for c in columns if fnmatch.fnmatchcase(str(c).lower(), part.lower())]
        if not found:
            raise DataError(
                f"{source}: --label-columns {part!r} matches no column; columns found: {_describe(columns)}"
            )
        return found
    if ":" in part and part not in map(str, columns):
        start, _, end = part.partition(":")
        first = columns.index(resolve_column(frame, start, "label", source, "--label-columns")) if start else 0
        last = (
            columns.index(resolve_column(frame, end, "label", source, "--label-columns")) if end else len(columns) - 1
        )
        if last < first:
            raise DataError(f"{source}: --label-columns {part!r} runs backwards; columns found: {_describe(columns)}")
        return columns[first : last + 1]
    return [resolve_column(frame, part, "label", source, "--label-columns")]


def indicator_block(frame: pd.DataFrame, exclude: object = None) -> IndicatorColumns | None:
    """Two or more named columns holding only 0/1 (or true/false; empty cells are reported later, by
    row), read as one multi-label label. A headerless file has no names to give the labels."""
    if not all(isinstance(c, str) for c in frame.columns):
        return None
    found = tuple(c for c in frame.columns if c not in taken(exclude) and _is_binary(frame[c]))
    return IndicatorColumns(found) if len(found) >= 2 else None


def _is_binary(series: pd.Series) -> bool:
    values = {normalize_label(v) for v in series.unique()} - {None}
    return bool(values) and all(str(v).lower() in BINARY for v in values)


def log_indicators(label: object, source: str) -> None:
    if isinstance(label, IndicatorColumns):
        log.info("%s: read columns %s as one multi-label label (0/1 indicator columns)", source, label)


def infer_columns(
    frame: pd.DataFrame, source: str, text: object | None = None, label: object | None = None
) -> tuple[object, object]:
    """Fill in whichever of (text, label) the user did not name; refuse to guess when ambiguous."""
    given_text, given_label = text, label
    if label is None:
        label = column_by_name(frame, LABEL_NAMES, exclude=text)
    if label is None:
        label = indicator_block(frame, exclude=text)
    if text is None:
        text = column_by_name(frame, TEXT_NAMES, exclude=label)
        if text is None:
            text = infer_text_column(frame, exclude=label, source=source)
    if label is None:
        label = _infer_label_by_content(frame, text, source)
    guessed = [f"{role} column {column!r}" for role, column, given in
               (("text", text, given_text), ("label", label, given_label))
               if given is None and not isinstance(column, IndicatorColumns)]  # fmt: skip
    if guessed:
        log.info("%s: inferred %s", source, " and ".join(guessed))
    return text, label


def column_by_name(frame: pd.DataFrame, names: tuple[str, ...], exclude: object = None) -> object | None:
    lowered = {str(c).strip().lower(): c for c in frame.columns if c not in taken(exclude)}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def _mean_length(series: pd.Series) -> float:
    return float(series.astype(str).str.len().mean()) if len(series) else 0.0


def infer_text_column(frame: pd.DataFrame, exclude: object, source: str) -> object:
    """The column holding clearly the longest strings."""
    lengths = {c: _mean_length(frame[c]) for c in frame.columns if c not in taken(exclude) and _is_text(frame[c])}
    if not lengths:
        raise DataError(f"{source}: found no text column among {_describe(frame.columns)}; pass --text-column")
    ranked = sorted(lengths, key=lengths.get, reverse=True)
    # The text column must be clearly the longest; two similar long columns are ambiguous.
    if len(ranked) > 1 and lengths[ranked[0]] < 1.5 * lengths[ranked[1]]:
        raise DataError(
            f"{source}: cannot tell the text column apart: {ranked[0]!r} and {ranked[1]!r} are both long; "
            "pass --text-column"
        )
    return ranked[0]


def _infer_label_by_content(frame: pd.DataFrame, text: object, source: str) -> object:
    others = [c for c in frame.columns if c != text]
    if len(others) == 1:
        return others[0]
    limit = max(2, len(frame) // 2)
    candidates = [c for c in others if 2 <= frame[c].nunique(dropna=True) <= limit]
    if len(candidates) == 1:
        return candidates[0]
    found = _describe(candidates) if candidates else "none"
    raise DataError(
        f"{source}: cannot infer the label column (candidates: {found}; columns: {_describe(frame.columns)}); "
        "pass --label-column, or --label-columns for 0/1 columns, one per label"
    )


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(series) or series.dtype == object


def _describe(columns) -> str:
    return ", ".join(repr(c) if not isinstance(c, str) else c for c in columns) or "(none)"
