"""The frozen-encoder recipe (``--freeze all``): the encoder never changes, so its pooled output is
computed once and only the head trains, on those features."""

from __future__ import annotations

from collections.abc import Callable, Iterable

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


def logistic_regression(features: torch.Tensor, targets: torch.Tensor, loss_fn: Callable,
                        outputs: int) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The weight and bias of a linear layer minimising ``loss_fn`` plus ``|W|^2 / 2n``: scikit-learn's
    LogisticRegression at its default strength (C=1) where ``loss_fn`` is cross-entropy, and the same
    penalty for any other task loss. The features are divided by their mean length first, so the strength
    means the same for every encoder, and the division is folded back into the weight."""
    scale = features.norm(dim=1).mean().clamp(min=1e-6)
    scaled, penalty = features.float() / scale, 1.0 / (2 * len(features))
    weight = torch.zeros(outputs, features.shape[1], device=features.device, requires_grad=True)
    bias = torch.zeros(outputs, device=features.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=500, tolerance_grad=1e-7, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(scaled @ weight.T + bias, targets) + penalty * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    return weight.detach() / scale, bias.detach()
