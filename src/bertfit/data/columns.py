"""Find the text and label columns: by the user's name or index, else by name, else by content."""

from __future__ import annotations

import logging

import pandas as pd

from bertfit.errors import DataError

log = logging.getLogger(__name__)

TEXT_NAMES = ("text", "sentence", "sentences", "message", "content", "review", "comment", "document", "body", "sms")
LABEL_NAMES = ("label", "labels", "target", "class", "category", "y", "sentiment", "intent")


def resolve_column(frame: pd.DataFrame, spec: str | int, role: str, source: str) -> object:
    """The column ``spec`` names: an exact name, a case-insensitive name, or a 0-based index."""
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
        f"Pass --{role}-column with one of those names or a 0-based index."
    )


def infer_columns(
    frame: pd.DataFrame, source: str, text: object | None = None, label: object | None = None
) -> tuple[object, object]:
    """Fill in whichever of (text, label) the user did not name; refuse to guess when ambiguous."""
    given_text, given_label = text, label
    if label is None:
        label = column_by_name(frame, LABEL_NAMES, exclude=text)
    if text is None:
        text = column_by_name(frame, TEXT_NAMES, exclude=label)
        if text is None:
            text = infer_text_column(frame, exclude=label, source=source)
    if label is None:
        label = _infer_label_by_content(frame, text, source)
    guessed = [f"{role} column {column!r}" for role, column, given in
               (("text", text, given_text), ("label", label, given_label)) if given is None]  # fmt: skip
    log.info("%s: inferred %s", source, " and ".join(guessed))
    return text, label


def column_by_name(frame: pd.DataFrame, names: tuple[str, ...], exclude: object = None) -> object | None:
    lowered = {str(c).strip().lower(): c for c in frame.columns if c != exclude}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def _mean_length(series: pd.Series) -> float:
    return float(series.astype(str).str.len().mean()) if len(series) else 0.0


def infer_text_column(frame: pd.DataFrame, exclude: object, source: str) -> object:
    """The column holding clearly the longest strings."""
    lengths = {c: _mean_length(frame[c]) for c in frame.columns if c != exclude and _is_text(frame[c])}
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
        "pass --label-column"
    )


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(series) or series.dtype == object


def _describe(columns) -> str:
    return ", ".join(repr(c) if not isinstance(c, str) else c for c in columns) or "(none)"
