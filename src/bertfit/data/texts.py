"""The rule every text handed to a model follows, wherever it comes from: ``Predictor.predict``, ``predict
--text``, a request to the server. Each is a string with some characters besides whitespace; anything else
is refused naming its position, since a blank text would get a confident label for nothing.

Rows of a file follow the same rule in ``data.table.checked_texts``, named by row instead, where
``predict --skip-empty`` may leave them unpredicted. Nothing here imports torch: the CLI and the server
check texts before a model runs.
"""

from __future__ import annotations

from collections.abc import Iterable

from bertfit.errors import DataError

MAX_LISTED = 10


def as_texts(values: Iterable, name: str) -> list[str]:
    """Any iterable of strings (a list, a pandas Series, a numpy array) as a list. A missing or non-string
    value, or an empty or whitespace-only text, is refused as ``name[position]`` (counted from 0)."""
    texts = list(values)
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            kind = "missing (None or NaN)" if text is None or text != text else f"of type {type(text).__name__}"
            raise DataError(f"{name}[{position}] is {kind}; every text must be a string")
    blank = [position for position, text in enumerate(texts) if not text.strip()]
    if blank:
        raise DataError(f"{_positions(name, blank)}: empty text (or only whitespace); every text needs some "
                        "characters")  # fmt: skip
    return texts


def _positions(name: str, positions: list[int]) -> str:
    shown = ", ".join(f"{name}[{p}]" for p in positions[:MAX_LISTED])
    return shown + (f" and {len(positions) - MAX_LISTED} more" if len(positions) > MAX_LISTED else "")


def text_key(text) -> str:
    """A text as two copies of it compare: case folded, runs of white space as one space (``bertfit audit``'s
    duplicates, ``bertfit suggest --exclude``)."""
    return " ".join(str(text).casefold().split())
