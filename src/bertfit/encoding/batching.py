"""Tokenize once, then batch by length so padding stays small.

Training batches come from shuffled buckets: texts are shuffled, cut into pools of many
batches, sorted by length inside each pool, and the batches shuffled again. Each batch is
then short-padded while the order stays random enough for quality.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

POOL_BATCHES = 50


@dataclass(frozen=True)
class TextPolicy:
    """How texts become model inputs; saved with the model so prediction does what training did."""

    max_length: int
    long_text: str = "truncate"  # or "window": overlapping windows of max_length tokens
    stride: int = 64  # tokens consecutive windows share
    aggregate: str = "mean"  # how a text's window logits combine: mean or max


@dataclass
class Encoded:
    """Token ids, one row per model input. With windows a text gives several rows: ``owner[row]`` is
    the text it came from (``None``: one row per text). ``types`` are token type ids of text pairs."""

    ids: Sequence[Sequence[int]]  # lists, or rows of a memory-mapped file (data.arrow.TokenColumn)
    texts: int
    types: Sequence[Sequence[int]] | None = None
    owner: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def lengths(self) -> Sequence[int]:
        if hasattr(self.ids, "lengths"):
            return self.ids.lengths()  # read from the file's offsets, not row by row
        return [len(x) for x in self.ids]

    def select(self, texts: Sequence[int]) -> Encoded:
        """The inputs of the chosen texts only, the texts renumbered in the order given."""
        if len(texts) == self.texts and all(i == text for i, text in enumerate(texts)):
            return self  # every text in order (a single process): nothing to copy
        if self.owner is None:
            types = None if self.types is None else [self.types[i] for i in texts]
            return Encoded([self.ids[i] for i in texts], len(texts), types)
        position = {text: k for k, text in enumerate(texts)}
        rows = [row for row, text in enumerate(self.owner) if text in position]
        owner = np.array([position[self.owner[row]] for row in rows], dtype=np.int64)
        return Encoded([self.ids[row] for row in rows], len(texts), owner=owner)


def encode_texts(tokenizer, texts: Sequence[str], policy: TextPolicy | int, pairs: Sequence[str] | None = None,
                 token_types: bool = True) -> Encoded:  # fmt: skip
    """Token ids with [CLS]/[SEP] (or the model's own specials), truncated or cut into windows.

    Pairs are joined as the tokenizer joins them ([CLS] a [SEP] b [SEP]); ``token_types`` keeps their
    segment ids, for models with a token type embedding (BERT does; RoBERTa, DistilBERT do not)."""
    if isinstance(policy, int):
        policy = TextPolicy(policy)
    texts = list(texts)
    if policy.long_text == "window":
        stride = min(policy.stride, policy.max_length // 2)
        out = tokenizer(texts, truncation=True, max_length=policy.max_length, stride=stride,
                        return_overflowing_tokens=True)  # fmt: skip
        return Encoded(out["input_ids"], len(texts), owner=np.asarray(out["overflow_to_sample_mapping"]))
    if pairs is None:
        return Encoded(tokenizer(texts, truncation=True, max_length=policy.max_length)["input_ids"], len(texts))
    out = tokenizer(texts, list(pairs), truncation="longest_first", max_length=policy.max_length,
                    return_token_type_ids=True)  # fmt: skip
    return Encoded(out["input_ids"], len(texts), types=out["token_type_ids"] if token_types else None)


def token_lengths(tokenizer, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray:
    """Untruncated token counts, special tokens included."""
    ids = tokenizer(list(texts), list(pairs) if pairs is not None else None, truncation=False, verbose=False)
    return np.array([len(x) for x in ids["input_ids"]], dtype=np.int32)


def aggregate_windows(logits: np.ndarray, encoded: Encoded, how: str) -> np.ndarray:
    """One row of logits per text: its windows' mean or max (rows pass through without windows)."""
    if encoded.owner is None:
        return logits
    combined = np.full((encoded.texts, logits.shape[1]), -np.inf if how == "max" else 0.0)
    if how == "max":
        np.maximum.at(combined, encoded.owner, logits)
        return combined.astype(np.float32)
    np.add.at(combined, encoded.owner, logits)
    counts = np.bincount(encoded.owner, minlength=encoded.texts)[:, None]
    return (combined / np.maximum(counts, 1)).astype(np.float32)


def choose_max_length(lengths: np.ndarray, cap: int, coverage: float = 0.99) -> int:
    """The shortest length that covers ``coverage`` of texts, rounded up to a multiple of 8."""
    wanted = int(np.ceil(np.quantile(lengths, coverage))) if len(lengths) else cap
    return int(min(cap, max(8, -(-wanted // 8) * 8)))


def training_batches(lengths: Sequence[int] | np.ndarray, batch_size: int, seed: int) -> list[np.ndarray]:
    """Shuffled buckets (see the module note) as arrays of row indices: 8 bytes a row, so a
    million-row epoch costs megabytes, not lists of Python ints. Python's seeded shuffle runs on the
    arrays, and the sort is stable, so a seed gives the batches it gave when these were lists."""
    rng = random.Random(seed)
    lengths = np.asarray(lengths)
    order = np.arange(len(lengths))
    rng.shuffle(order)
    pool = batch_size * POOL_BATCHES
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def inference_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Batches of similar length, longest first so memory peaks early; callers restore order.

    ``max_tokens`` also caps a batch's padded size (rows x its longest row). On a CPU a few large
    matrix products are no faster than several smaller ones, so splitting a mixed batch by length
    saves the padding: 64 random SMS texts score 1.7x faster with a cap of 1024 than as one batch."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for index in order:
        current = batches[-1] if batches else None
        if (
            current is None
            or len(current) == batch_size
            or (max_tokens is not None and (len(current) + 1) * lengths[current[0]] > max_tokens)
        ):
            batches.append([index])
        else:
            current.append(index)
    return batches


def collate(encoded: Encoded, indices: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad the chosen rows to the longest among them."""
    ids = encoded.ids
    width = max(len(ids[i]) for i in indices)
    input_ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        input_ids[row, : len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
        attention_mask[row, : len(ids[i])] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if encoded.types is not None:
        token_type_ids = torch.zeros((len(indices), width), dtype=torch.long)
        for row, i in enumerate(indices):
            token_type_ids[row, : len(ids[i])] = torch.tensor(encoded.types[i], dtype=torch.long)
        batch["token_type_ids"] = token_type_ids
    return batch


def iterate_batches(
    encoded: Encoded, batches: list[list[int]], pad_id: int
) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    for indices in batches:
        yield indices, collate(encoded, indices, pad_id)
