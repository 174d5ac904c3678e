"""How long a model input may be, chosen from the training texts' token lengths and the model's limit."""

from __future__ import annotations

import logging

import numpy as np

from bertfit.encoding.batching import TextPolicy, choose_max_length

log = logging.getLogger(__name__)

ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert")  # they reserve the first positions for padding offsets


def model_max_length(tokenizer, config) -> int:
    """The longest input the model accepts: the tokenizer's limit and the position table's."""
    limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    usable = [int(v) for v in limits if isinstance(v, int) and 0 < v < 100_000]
    if getattr(config, "model_type", "") in ROBERTA_LIKE and usable:
        usable[0] = min(usable[0], int(config.max_position_embeddings) - 2)
    return min(usable) if usable else 512


def text_policy(requested: str, long_text: str, stride: int, aggregate: str, tokenizer, model_config,
                lengths: np.ndarray) -> tuple[TextPolicy, float]:  # fmt: skip
    """The policy for ``--max-length`` (``auto``: cover 99% of training texts) and the share of
    training texts longer than it."""
    max_length, longer = pick_max_length(requested, long_text, tokenizer, model_config, lengths)
    policy = TextPolicy(max_length, long_text, stride, aggregate)
    if long_text == "window" and longer:
        log.info("long texts are cut into windows of %d tokens overlapping by %d; window logits combine by %s",
                 max_length, min(stride, max_length // 2), aggregate)  # fmt: skip
    return policy, longer


def pick_max_length(requested: str, long_text: str, tokenizer, model_config, lengths: np.ndarray) -> tuple[int, float]:
    cap = model_max_length(tokenizer, model_config)
    if requested == "auto":
        max_length = choose_max_length(lengths, cap)
    else:
        max_length = min(int(requested), cap)
        if int(requested) > cap:
            log.warning("--max-length %s is above the model's limit; using %d", requested, cap)
    truncated = float((lengths > max_length).mean()) if len(lengths) else 0.0
    log.info(
        "max length %d tokens (longest training text %d); %.2f%% of training texts %s",
        max_length,
        int(lengths.max()) if len(lengths) else 0,
        100 * truncated,
        "are longer (windowed)" if long_text == "window" else "truncated",
    )
    return max_length, truncated
