"""What a request may hold, and the one check every route runs on the texts it was sent."""

from __future__ import annotations

from dataclasses import dataclass

from bertfit.data.texts import as_texts
from bertfit.errors import ConfigError, DataError
from bertfit.folder import Manifest


@dataclass(frozen=True)
class ServeLimits:
    max_texts: int = 256  # texts per request
    max_chars: int = 20_000  # characters per text


def check_inputs(texts: list, pairs: list | None, manifest: Manifest, limits: ServeLimits, *,
                 names: tuple[str, str] = ("texts", "text_pairs"), give: str | None = None) -> tuple | None:  # fmt: skip
    """(status, message) for a request the model cannot take, else None. The rules on texts and pairs
    are the library's (``data.texts.as_texts``, ``Manifest.check_pairs``), answered with 422 before the
    request joins a shared model call. ``names``: the route's names of the texts and the pairs, which
    messages count positions in; ``give``: how the route takes second texts (default: ``names[1]``)."""
    if not texts:
        return 422, 'no texts given: send {"text": "..."} or a non-empty {"texts": [...]}'
    if len(texts) > limits.max_texts:
        return 413, f"{len(texts)} texts in one request; the limit is {limits.max_texts}"
    longest = max(range(len(texts)), key=lambda i: len(texts[i]))
    if len(texts[longest]) > limits.max_chars:
        return 413, f"text {longest} has {len(texts[longest])} characters; the limit is {limits.max_chars}"
    try:
        as_texts(texts, names[0])
        manifest.check_pairs(pairs, give=give or names[1], model="this model")
        if pairs is not None:
            as_texts(pairs, names[1])
    except (ConfigError, DataError) as err:
        return 422, str(err)
    if pairs is not None and len(pairs) != len(texts):
        return 422, f"{len(texts)} texts but {len(pairs)} text pairs"
    return None
