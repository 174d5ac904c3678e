"""What a request may hold, and the one check every route runs on the texts it was sent."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeLimits:
    max_texts: int = 256  # texts per request
    max_chars: int = 20_000  # characters per text


def check_inputs(texts: list, pairs: list | None, pair_model: bool, limits: ServeLimits) -> tuple | None:
    """(status, message) for a request the model cannot take, else None."""
    if not texts:
        return 422, 'no texts given: send {"text": "..."} or a non-empty {"texts": [...]}'
    if len(texts) > limits.max_texts:
        return 413, f"{len(texts)} texts in one request; the limit is {limits.max_texts}"
    longest = max(range(len(texts)), key=lambda i: len(texts[i]))
    if len(texts[longest]) > limits.max_chars:
        return 413, f"text {longest} has {len(texts[longest])} characters; the limit is {limits.max_chars}"
    if any(not t.strip() for t in texts):
        return 422, "empty text: every text needs some characters"
    if pair_model and pairs is None:
        return 422, "this model takes text pairs: send text_pair / text_pairs too"
    if not pair_model and pairs is not None:
        return 422, "this model takes single texts: drop text_pair / text_pairs"
    if pairs is not None and len(pairs) != len(texts):
        return 422, f"{len(texts)} texts but {len(pairs)} text pairs"
    return None
