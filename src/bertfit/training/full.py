"""The full fine-tuning recipe: the encoder and its head train together on length-bucketed batches."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext

import numpy as np

from bertfit.config import TrainConfig
from bertfit.encoding.batching import aggregate_windows, iterate_batches, training_batches
from bertfit.inference import predict_logits
from bertfit.training import distributed
from bertfit.training.attention import training_attention
from bertfit.training.dropout import use_fast_dropout
from bertfit.training.loop import EpochBatches
from bertfit.training.plan import Placement, TrainingInputs, TrainingPlan


def full_plan(config: TrainConfig, model, inputs: TrainingInputs, where: Placement) -> TrainingPlan:
    on_cpu = where.device.type == "cpu"
    # PyTorch's per-element CPU dropout masks cost about a tenth of each step; at rate 0 there is no mask
    # to draw, so the swap would change nothing.
    if on_cpu and config.resolved_dropout > 0:
        use_fast_dropout(model)
    train, targets, pad_id, ranks = inputs.encoded["train"], inputs.targets, inputs.pad_id, where.ranks
    lengths = train.lengths()

    def rank_batches(epoch: int) -> list[np.ndarray]:
        """This rank's slice of each global batch (all of it in a single process)."""
        order = training_batches(lengths, config.batch_size, seed=config.seed * 1000 + epoch)
        # Under DDP every rank needs a share of every batch: a last batch smaller than the world is left out.
        return [ranks.slice(batch) for batch in order if len(batch) >= ranks.world_size]

    # bertfit's attention made a bf16 CPU step 2.1x faster than PyTorch's SDPA on CoLA-sized batches (1.07x
    # with dropout 0.1) and an fp32 step no faster (0.96x, 0.99x) (bench/cpu_attention.py, 2 cores with
    # AVX512-BF16): it is used for bf16 steps only.
    own_attention = on_cpu and where.precision == "bf16"

    def epoch_batches(epoch: int) -> Iterable:
        # Training steps only: validation between epochs scores with the model's own attention.
        with training_attention(model) if own_attention else nullcontext():
            for indices, batch in iterate_batches(train, rank_batches(epoch), pad_id):
                yield batch, targets[indices]

    validation = inputs.encoded.get("validation")

    def validation_logits():
        if not validation:
            return None

        def score(rows: list[int]) -> np.ndarray:
            chosen = validation.select(rows)
            logits = predict_logits(model, chosen, pad_id, config.eval_batch_size, where.precision, where.device)
            return aggregate_windows(logits, chosen, config.window_aggregate)

        return distributed.gather_rows(ranks, validation.texts, score)

    return TrainingPlan(model, EpochBatches(epoch_batches, len(rank_batches(1))), validation_logits)
