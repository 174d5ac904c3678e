"""How much of a training batch is padding: the most that unpadding or packing could save.

    python -m bench.padding [--batch-size 32]

Position-wise layers (the projections and the FFN, nearly all of a step's FLOPs at these lengths)
run over every position of a padded batch. Running them over real tokens only (unpadding) or packing
short texts into full rows saves at most the padded share; this counts it for bertfit's
length-bucketed batches and, for comparison, for shuffled batches padded to their longest text.
"""

from __future__ import annotations

import argparse

import numpy as np

from bench import peers
from bench.harness import prepare_environment, publish

DATASETS = ("cola", "sms_spam", "ag_news")


def training_texts(dataset: str) -> list[str]:
    if dataset == "cola":
        return peers.cola_split("train")[0]
    from bertfit import DataConfig
    from bertfit.data.load import load_data

    return load_data(DataConfig(dataset=dataset)).splits["train"].texts


def padded_tokens(lengths: np.ndarray, batches) -> int:
    return int(sum(len(batch) * lengths[batch].max() for batch in batches))


def count(dataset: str, tokenizer, batch_size: int, seed: int = 1) -> dict:
    from bertfit.encoding.batching import choose_max_length, token_lengths, training_batches

    lengths = token_lengths(tokenizer, training_texts(dataset))
    lengths = np.minimum(lengths, choose_max_length(lengths, min(tokenizer.model_max_length, 512)))
    shuffled = np.random.default_rng(seed).permutation(len(lengths))
    real = int(lengths.sum())
    return {
        "rows": len(lengths),
        "mean_tokens": real / len(lengths),
        "bucketed": real / padded_tokens(lengths, training_batches(lengths, batch_size, seed)),
        "shuffled": real / padded_tokens(lengths, np.array_split(shuffled, -(-len(lengths) // batch_size))),
    }


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    prepare_environment()
    from bertfit.modeling import load_tokenizer

    tokenizer = load_tokenizer(peers.default_model())
    lines = ["| data set | training rows | mean tokens a text | real share, bertfit's buckets | most unpadding saves "
             "| real share, shuffled batches |", "|---|---|---|---|---|---|"]  # fmt: skip
    for dataset in DATASETS:
        row = count(dataset, tokenizer, args.batch_size)
        lines.append(f"| {dataset} | {row['rows']} | {row['mean_tokens']:.1f} | {100 * row['bucketed']:.1f}% | "
                     f"{1 / row['bucketed']:.3f}× | {100 * row['shuffled']:.1f}% |")  # fmt: skip
    summary = (
        f"batch {args.batch_size}, the default model's tokenizer, texts cut at bertfit's chosen max length; "
        "real share = real tokens / padded positions; the most unpadding saves = its inverse."
    )
    return publish("Padding in training batches", "bench.padding", argv, summary, "\n".join(lines), not args.no_append)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
