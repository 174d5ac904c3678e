"""The frozen-encoder recipe (``--freeze all``): the encoder never changes, so its pooled output is
computed once and only the head trains, on those features."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from bertfit.config import TrainConfig
from bertfit.encoding.batching import aggregate_windows
from bertfit.inference import run_batched
from bertfit.modeling import PooledClassifier
from bertfit.training.loop import EpochBatches
from bertfit.training.plan import Placement, TrainingInputs, TrainingPlan


def frozen_plan(config: TrainConfig, model: PooledClassifier, inputs: TrainingInputs, where: Placement) -> TrainingPlan:
    encoded, targets, ranks = inputs.encoded, inputs.targets, where.ranks
    features = {
        name: encode_features(
            model, encoded[name], inputs.pad_id, config.eval_batch_size, where.precision, where.device
        )
        for name in ("train", "validation")
        if encoded.get(name)
    }

    def epoch_batches(epoch: int) -> Iterable:
        generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        order = torch.randperm(len(targets), generator=generator)
        for start in range(0, len(order) - ranks.world_size + 1, config.batch_size):
            rows = order[start : start + config.batch_size][ranks.rank :: ranks.world_size]
            yield {"features": features["train"][rows]}, targets[rows]

    @torch.inference_mode()
    def validation_logits():
        if "validation" not in features:
            return None
        model.head.eval()
        logits = model.head(features["validation"].to(where.device)).float().cpu().numpy()
        model.head.train()
        return aggregate_windows(logits, encoded["validation"], config.window_aggregate)

    batches = len(range(0, len(targets) - ranks.world_size + 1, config.batch_size))
    return TrainingPlan(model.head, EpochBatches(epoch_batches, batches), validation_logits)


def encode_features(model: PooledClassifier, encoded, pad_id: int, batch_size: int, precision: str,
                    device: torch.device) -> torch.Tensor:  # fmt: skip
    """The pooled sentence vectors of ``encoded``'s rows, in eval mode (the frozen and few-shot heads train on them)."""
    model.eval()
    return torch.from_numpy(run_batched(model.features, encoded, pad_id, batch_size, precision, device))
