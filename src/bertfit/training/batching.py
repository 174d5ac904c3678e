"""Tokenize once, then batch by length so padding stays small.

Training batches come from shuffled buckets: texts are shuffled, cut into pools of many
batches, sorted by length inside each pool, and the batches shuffled again. Each batch is
then short-padded while the order stays random enough for quality.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch

POOL_BATCHES = 50


def encode_texts(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids with [CLS]/[SEP] (or the model's own specials), truncated to ``max_length``."""
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def token_lengths(tokenizer, texts: Sequence[str]) -> np.ndarray:
    """Untruncated token counts, special tokens included."""
    ids = tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
    return np.array([len(x) for x in ids])


def choose_max_length(lengths: np.ndarray, cap: int, coverage: float = 0.99) -> int:
    """The shortest length that covers ``coverage`` of texts, rounded up to a multiple of 8."""
    wanted = int(np.ceil(np.quantile(lengths, coverage))) if len(lengths) else cap
    return int(min(cap, max(8, -(-wanted // 8) * 8)))


def training_batches(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * POOL_BATCHES
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def inference_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Batches of similar length, longest first so memory peaks early; callers restore order."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(ids: Sequence[Sequence[int]], indices: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad the chosen rows to the longest among them."""
    width = max(len(ids[i]) for i in indices)
    input_ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        input_ids[row, : len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
        attention_mask[row, : len(ids[i])] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def iterate_batches(
    ids: Sequence[Sequence[int]], batches: list[list[int]], pad_id: int
) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    for indices in batches:
        yield indices, collate(ids, indices, pad_id)
