"""When training stops, and which epoch it keeps: the rules, in one place beside the loop.

- The best epoch (``BestEpoch``): the highest validation score, a tie broken by the lower validation loss;
  or the last epoch, where ``Stopping.keep_last`` says so (the frozen recipe's default,
  ``TrainConfig.keeps_last_epoch``).
- Patience (``Stopping``): stop after ``patience`` epochs without progress, where progress is a better
  score or a validation loss 1% below the lowest so far (``last_progress``).
- The time budget (``TimeBudget``): the loop ends its epoch after the step where it ran out.
- Why training ended (``Stopping.reason``), in the words the log and the model folder use.

The state these rules carry across a kill (the best epoch's score, number and weights, the history and the
time spent) is saved with every checkpoint (``training/checkpoint.py``); the loss of the best epoch is read
back from the history.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

# A validation loss this much below the lowest so far counts as progress, so that a loss that merely
# wobbles (rounding, or weights that hardly move) does not keep a run going. In the base-size SMS spam and
# AG News runs behind this rule, each new low was 2-43% below the one before, but for one last epoch's 0.1%.
LOSS_PROGRESS = 0.01


@dataclass
class BestEpoch:
    """The best epoch so far: its validation score, number and weights (``state`` None: none scored
    yet), and its validation loss, which breaks ties: on small data the score often stands still for
    a few epochs (MCC 0 while every text gets one class) while the loss falls, and that is progress."""

    score: float = -np.inf
    epoch: int | None = None
    state: dict[str, torch.Tensor] | None = None
    loss: float = np.inf

    def offer(self, score: float, epoch: int, model: nn.Module, loss: float = np.inf) -> bool:
        """Keep ``model``'s weights if ``score`` beats the best, or ties it at a lower ``loss``; True if it did."""
        if not (score > self.score or (score == self.score and loss < self.loss)):
            return False
        self.score, self.epoch, self.loss = score, epoch, loss
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return True

    @classmethod
    def restored(cls, score: float, epoch: int, state: dict[str, torch.Tensor], history: list[dict]) -> BestEpoch:
        """The best epoch a checkpoint saved (its score, number and weights); its loss is in ``history``."""
        losses = [(r.get("validation") or {}).get("loss", np.inf) for r in history if r["epoch"] == epoch]
        return cls(score, epoch, state, losses[0] if losses else np.inf)


def last_progress(history: list, best_epoch: int) -> int:
    """The last epoch that made progress on validation: the best score's, or a later one whose loss was at
    least 1% below every earlier epoch's. On SMS spam at base size the MCC moves by one text of 112 spam
    while the loss falls: with patience on the score alone, all-mpnet-base-v2 at seed 43 stopped after
    epoch 3 and kept epoch 1 (validation MCC 0.974), with its loss lower in every epoch; all six epochs
    kept the sixth (0.979). On CoLA the loss is lowest at epoch 2 or 3, before the kept epoch, so runs
    there stop where they did (docs/results.md). ``history``: the loop's ``EpochResult`` records."""
    last, lowest = best_epoch, np.inf
    for record in history:
        loss = (record.validation or {}).get("loss", np.inf)
        if loss < lowest * (1 - LOSS_PROGRESS):
            last = max(last, record.epoch)
        lowest = min(lowest, loss)
    return last


class TimeBudget:
    """``seconds`` of training (None: no limit), counted from ``spent``, the seconds a resumed run had
    already used (saved in each checkpoint's loop position)."""

    def __init__(self, seconds: float | None, spent: float = 0.0):
        self.seconds = seconds
        self._clock = time.perf_counter() - spent

    def spent(self) -> float:
        return time.perf_counter() - self._clock

    def ran_out(self) -> bool:
        return self.seconds is not None and self.spent() >= self.seconds


@dataclass
class Stopping:
    """One run's stopping rules: keep the best of ``epochs`` epochs by validation ``key`` (the last where
    ``keep_last``), stop after ``patience`` epochs without progress (0: never), and say why training ended;
    ``time_budget`` is the budget as the user wrote it (the loop applies it, through ``TimeBudget``)."""

    epochs: int
    key: str
    patience: int = 0
    time_budget: str | None = None
    best: BestEpoch = field(default_factory=BestEpoch)
    patience_ran_out: bool = False
    keep_last: bool = False

    def offer(self, record, model: nn.Module) -> bool:
        """Keep ``model``'s weights if the scored epoch ``record`` is the best so far; True if it is. Never where
        ``keep_last``: the model ends training holding the last epoch's weights."""
        if self.keep_last:
            return False
        validation = record.validation
        return self.best.offer(validation[self.key], record.epoch, model, validation.get("loss", np.inf))

    def out_of_patience(self, history: list) -> bool:
        """Whether the epochs in ``history`` since the last progress (``last_progress``) use up the patience."""
        if self.patience and self.best.epoch is not None:
            self.patience_ran_out = history[-1].epoch - last_progress(history, self.best.epoch) >= self.patience
        return self.patience_ran_out

    def reason(self, history: list) -> str:
        """Why training ended, in the words the log and the model folder use."""
        if self.patience_ran_out:
            return (f"no better validation {self.key}, nor a {LOSS_PROGRESS:.0%} lower validation loss, for "
                    f"{self.patience} epochs (--patience {self.patience})")  # fmt: skip
        if history and (history[-1].partial or history[-1].epoch < self.epochs):
            return f"the time budget ({self.time_budget}) ran out in epoch {history[-1].epoch}"
        return f"all {self.epochs} epochs ran"
