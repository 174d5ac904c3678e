"""The training loop, as a generator: it yields after each epoch, so evaluation, best-epoch
tracking, patience, logging and progress display live with the caller, not inside the loop; the one
stopping rule it applies itself, the time budget, is ``stopping.TimeBudget``'s."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from bertfit.encoding.precision import autocast, loss_scaler
from bertfit.modeling import logits_of
from bertfit.training.checkpoint import LoopPosition
from bertfit.training.stopping import TimeBudget

Batch = tuple[dict[str, torch.Tensor], torch.Tensor]


@dataclass
class EpochResult:
    """One epoch's record; the caller fills ``validation`` after scoring."""

    epoch: int
    train_loss: float
    seconds: float
    learning_rate: float
    validation: dict | None = None
    partial: bool = False  # cut short by the time budget


class Callbacks:
    """Hooks for rendering progress; the library's default does nothing."""

    def on_train_begin(self, total_steps: int, done: int = 0) -> None:
        """``done`` steps were already taken by the run this one resumes."""

    def on_step(self, loss: float) -> None: ...

    def on_train_end(self) -> None: ...

    def on_epoch_end(self, record: EpochResult, key: str) -> None:
        """After validation scoring; ``record.validation[key]`` is the primary metric (tuning prunes on it)."""

    def on_repeat_begin(self, name: str, params: dict) -> None:
        """A repeat of training begins (a seed, a fold, a trial: ``name``), with the options it changes."""

    def on_repeat_end(self, metrics: dict, status: str = "FINISHED") -> None:
        """That repeat ended with ``metrics`` (per split); ``status`` FINISHED, or KILLED where it was pruned."""


def build_optimizer(model: nn.Module, learning_rate: float, weight_decay: float, eps: float) -> torch.optim.Optimizer:
    """AdamW with two groups: weight matrices decay; biases and LayerNorm weights (1-D) do not."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=learning_rate, eps=eps, fused=True)
    except (RuntimeError, TypeError):  # builds without a fused kernel for this device
        return torch.optim.AdamW(groups, lr=learning_rate, eps=eps)


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float):
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * total_steps), total_steps)


@dataclass
class EpochBatches:
    """What the loop trains on: ``of_epoch(epoch)`` gives that epoch's ``per_epoch`` (inputs, labels) batches."""

    of_epoch: Callable[[int], Iterable[Batch]]
    per_epoch: int


@dataclass
class StepRecipe:
    """How one optimizer step is taken: every ``accumulate`` batches' gradients add up to one step of
    ``optimizer`` (and ``scheduler``), clipped to ``max_grad_norm`` (0: off), under ``precision``."""

    optimizer: torch.optim.Optimizer
    scheduler: object
    loss_fn: Callable
    max_grad_norm: float
    precision: str
    device: torch.device
    accumulate: int = 1


def fit(
    model: nn.Module,
    batches: EpochBatches,
    epochs: int,
    recipe: StepRecipe,
    callbacks: Callbacks = Callbacks(),
    start: LoopPosition | None = None,
    on_step_end: Callable[[int, LoopPosition], None] | None = None,
    time_budget: float | None = None,
) -> Iterator[EpochResult]:
    """Train ``epochs`` epochs of ``batches``, stepping as ``recipe`` says.

    ``start`` resumes a run: that epoch's first ``start.step`` batches are drawn and skipped, so the
    sampler stands exactly where the interrupted run stopped. ``on_step_end(global_step, position)``
    runs after every optimizer step (checkpointing hooks in there). Once ``time_budget`` seconds have
    passed (counted from ``start.seconds``, the time a resumed run had already spent), the epoch ends
    after the current optimizer step, as a ``partial`` record, and the loop stops."""
    optimizer, scheduler, loss_fn = recipe.optimizer, recipe.scheduler, recipe.loss_fn
    precision, device, accumulate = recipe.precision, recipe.device, recipe.accumulate
    batches_per_epoch = batches.per_epoch
    trainable = [p for p in model.parameters() if p.requires_grad]
    scaler = loss_scaler(precision, device)
    steps_per_epoch = optimizer_steps(batches_per_epoch, accumulate)
    start = start or LoopPosition()
    global_step = (start.epoch - 1) * steps_per_epoch + optimizer_steps(start.step, accumulate)
    callbacks.on_train_begin(steps_per_epoch * epochs, done=global_step)
    budget = TimeBudget(time_budget, start.seconds)
    for epoch in range(start.epoch, epochs + 1):
        model.train()
        resumed = start if epoch == start.epoch else LoopPosition(epoch)
        started, total, count = time.perf_counter(), resumed.loss_total, resumed.loss_count
        for step, (inputs, labels) in enumerate(batches.of_epoch(epoch), 1):
            if step <= resumed.step:
                continue
            # The last group of an epoch may be short; its gradients are averaged over what it has. (accelerate's
            # backward() divides by the full group size, which would under-weigh those batches.)
            group_start = (step - 1) // accumulate * accumulate
            group_size = min(accumulate, batches_per_epoch - group_start)
            closes_group = step - group_start >= group_size
            # Under DDP, gradients are only exchanged on the batch that closes a group.
            exchange = nullcontext() if closes_group or not hasattr(model, "no_sync") else model.no_sync()
            with exchange:
                inputs = {k: v.to(device) for k, v in inputs.items()}
                with autocast(precision, device):
                    logits = logits_of(model(**inputs))
                loss = loss_fn(logits.float(), labels.to(device))
                scaler.scale(loss / group_size).backward()
            total += loss.item() * len(labels)
            count += len(labels)
            if not closes_group:
                continue
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            if recipe.max_grad_norm > 0:
                clip_gradients(optimizer, trainable, recipe.max_grad_norm, fold=not scaler.is_enabled())
            scaler.step(optimizer)  # skipped, with the scale lowered, when fp16 gradients overflowed
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            callbacks.on_step(loss.item())
            global_step += 1
            if on_step_end is not None:
                on_step_end(global_step, LoopPosition(epoch, step, total, count, budget.spent()))
            if budget.ran_out() and step < batches_per_epoch:
                yield EpochResult(epoch, total / max(count, 1), time.perf_counter() - started,
                                  scheduler.get_last_lr()[0], partial=True)  # fmt: skip
                callbacks.on_train_end()
                return
        yield EpochResult(epoch, total / max(count, 1), time.perf_counter() - started, scheduler.get_last_lr()[0])
        if budget.ran_out():
            break
    callbacks.on_train_end()


def clip_gradients(optimizer: torch.optim.Optimizer, params: list[nn.Parameter], max_norm: float, fold: bool) -> None:
    """Scale the gradients down to a global L2 norm of at most ``max_norm``, as ``clip_grad_norm_`` does.

    With ``fold`` and a fused optimizer the scale is not written into the gradients: the fused kernel
    divides each gradient by the optimizer's ``grad_scale`` as it reads it (the hook PyTorch's
    GradScaler uses), which saves a pass that reads and rewrites every gradient in memory."""
    if not (fold and optimizer.defaults.get("fused")):
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        return
    norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    # clip_grad_norm_ multiplies by max_norm / (norm + 1e-6) where that is below 1; this divides by its inverse.
    optimizer.grad_scale = torch.clamp((norm + 1e-6) / max_norm, min=1.0)


def optimizer_steps(batches: int, accumulate: int) -> int:
    return -(-batches // accumulate)
