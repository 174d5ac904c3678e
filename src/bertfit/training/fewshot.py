"""The few-shot recipe (``--recipe few-shot``, and ``auto``'s choice on small data): SetFit's method in
bertfit's one training path.

1. The encoder's sentence vector is tuned contrastively: every pair of rows in a batch is pulled
   towards cosine similarity 1 when the two share a label and towards 0 when they do not (SetFit's
   objective). SetFit samples pairs and spends two encoder passes on each; here a batch of B rows
   yields all B(B-1)/2 of its pairs for B passes, so the same rows cost a fraction of the compute
   (bench/fewshot.py measures both).
2. The head is fitted on the tuned vectors, computed once: the task's own loss with an L2 penalty,
   minimised by L-BFGS (what scikit-learn's LogisticRegression, SetFit's head, does), for every task
   shape the loss covers. No epoch is chosen on validation, so nothing is decided on a handful of rows.

The classifier stays an ordinary pooled classifier (encoder, pooling, linear head), so the folder it
is saved in loads, exports and serves as any other.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from bertfit.config import FEW_SHOT_LEARNING_RATE, TrainConfig
from bertfit.encoding.batching import iterate_batches
from bertfit.encoding.precision import PREDICTION_PRECISION
from bertfit.modeling import PooledClassifier, output_layer
from bertfit.training import loop
from bertfit.training.frozen import encode_features, logistic_regression
from bertfit.training.loop import Callbacks, EpochBatches, EpochResult
from bertfit.training.plan import Placement, TrainingInputs

log = logging.getLogger(__name__)

# The contrastive stage takes at least this many optimizer steps, however few the rows: 8 rows per class is
# one batch, and one pass over it teaches the encoder little. Chosen on bench/fewshot.py's selection rows
# (8 per class, AG News and six emotions, two draws): 40 steps with balanced pairs averaged 0.690 accuracy,
# 20 steps 0.670; without the balance 0.669 and 0.664.
MIN_CONTRASTIVE_STEPS = 40
CONTRASTIVE_EPOCHS = 5  # passes over the rows once there are more than MIN_CONTRASTIVE_STEPS batches


class SentenceVector(nn.Module):
    """What the contrastive stage trains: a pooled classifier's sentence vector (its head takes no part)."""

    def __init__(self, classifier: PooledClassifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, **inputs) -> torch.Tensor:
        return self.classifier.features(**inputs)


def shares_a_label(targets: torch.Tensor) -> torch.Tensor:
    """1 where two rows of a batch share a label, else 0: class ids compare equal; multi-label rows (0/1 per
    label) share one of their labels, and two rows with no label at all count as alike."""
    if targets.ndim == 1:
        return (targets[:, None] == targets[None, :]).float()
    labels = (targets > 0.5).float()
    unlabelled = labels.sum(1) == 0
    alike = (labels @ labels.T > 0) | (unlabelled[:, None] & unlabelled[None, :])
    return alike.float()


def all_pairs_cosine_loss(vectors: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """SetFit's loss (sentence-transformers' ``CosineSimilarityLoss``: the squared error between two vectors'
    cosine similarity and 1 for a shared label, 0 otherwise) over every pair of rows in the batch, the pairs
    that share a label and those that do not weighing half each, as SetFit's sampling draws one of each per
    row. Unweighted, the unlike pairs of six classes are five in six of a batch: on bench/fewshot.py's
    selection rows, 8 rows of each of six emotions, the balance gained 5 points of accuracy.

    Written here rather than imported: a process importing sentence_transformers' losses took 7.8 s where
    torch and transformers alone take 2.4 s (2 cores, start to exit), a sixth of a few-shot run, for a few
    lines of formula; a test checks it against ``CosineSimilarityLoss.compute_loss_from_embeddings``."""
    first, second = torch.triu_indices(len(vectors), len(vectors), offset=1, device=vectors.device)
    target = shares_a_label(targets)[first, second]
    errors = (torch.cosine_similarity(vectors[first], vectors[second]) - target) ** 2
    alike = target > 0.5
    groups = [errors[group].mean() for group in (alike, ~alike) if group.any()]
    return torch.stack(groups).mean()


def contrastive_batches(inputs: TrainingInputs, batch_size: int, seed: int) -> EpochBatches:
    """Each epoch, the rows in a fresh seeded order, cut into batches of at most ``batch_size``."""
    train, targets = inputs.encoded["train"], inputs.targets
    rows = len(targets)
    count = math.ceil(rows / min(batch_size, rows))

    def of_epoch(epoch: int) -> Iterable:
        order = torch.randperm(rows, generator=torch.Generator().manual_seed(seed * 1000 + epoch)).numpy()
        # Batches of equal size (48 rows at 32: two of 24), so no row sits out an epoch and none is alone.
        for indices, batch in iterate_batches(train, np.array_split(order, count), inputs.pad_id):
            yield batch, targets[indices]

    return EpochBatches(of_epoch, count)


def contrastive_epochs(config: TrainConfig, batches_per_epoch: int) -> int:
    """``--epochs`` where given; else enough passes for ``MIN_CONTRASTIVE_STEPS`` steps, and at least
    ``CONTRASTIVE_EPOCHS``."""
    if config.epochs is not None:
        return config.epochs
    return max(CONTRASTIVE_EPOCHS, math.ceil(MIN_CONTRASTIVE_STEPS / batches_per_epoch))


def fit_few_shot(config: TrainConfig, model: PooledClassifier, loss_fn: Callable, inputs: TrainingInputs,
                 where: Placement, callbacks: Callbacks) -> tuple[list[EpochResult], int, str]:  # fmt: skip
    """Tune the sentence vector contrastively, then fit the head on it; returns the history, the last epoch
    and why training stopped (every epoch ran, or the time budget)."""
    vector = SentenceVector(model)
    model.head.requires_grad_(False)
    batches = contrastive_batches(inputs, config.batch_size, config.seed)
    epochs = contrastive_epochs(config, batches.per_epoch)
    learning_rate = config.learning_rate_for(FEW_SHOT_LEARNING_RATE)
    optimizer = loop.build_optimizer(vector, learning_rate, config.weight_decay, config.adam_epsilon)
    scheduler = loop.build_scheduler(
        optimizer, loop.optimizer_steps(batches.per_epoch, 1) * epochs, config.warmup_ratio
    )
    steps = loop.StepRecipe(optimizer, scheduler, all_pairs_cosine_loss, config.max_grad_norm, where.precision,
                            where.device)  # fmt: skip
    log.info("few-shot: tuning the sentence vector on every pair of rows in a batch: %d rows, %d batches an epoch, "
             "%d epochs, learning rate %g, dropout %g", len(inputs.targets), batches.per_epoch, epochs, learning_rate,
             config.resolved_dropout)  # fmt: skip
    history = []
    for record in loop.fit(vector, batches, epochs, steps, callbacks, time_budget=config.time_budget_seconds):
        history.append(record)
        log.info("epoch %d/%d: pair loss %.4f (%.1fs)", record.epoch, epochs, record.train_loss, record.seconds)
        callbacks.on_epoch_end(record, "")  # no validation score: the pair loss is all there is to report
    model.head.requires_grad_(True)
    fit_head(model, loss_fn, inputs, config.eval_batch_size, where)
    stop = "the time budget ran out" if history and history[-1].partial else f"all {epochs} epochs ran"
    return history, len(history), stop


def fit_head(model: PooledClassifier, loss_fn: Callable, inputs: TrainingInputs, batch_size: int,
             where: Placement) -> None:  # fmt: skip
    """Fit the head's output layer on the sentence vectors of the training rows, computed once in the
    precision the folder predicts in (``logistic_regression``)."""
    features = encode_features(model, inputs.encoded["train"], inputs.pad_id, batch_size, PREDICTION_PRECISION,
                               where.device).to(where.device)  # fmt: skip
    layer = output_layer(model)
    weight, bias = logistic_regression(features, inputs.targets.to(where.device), loss_fn, layer.out_features)
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    log.info("few-shot: head fitted on the %d tuned sentence vectors (L2-regularised, L-BFGS)", len(features))
