"""What a training recipe hands the loop: the module that trains, its batches, and validation logits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bertfit.encoding.batching import Encoded
from bertfit.training.loop import EpochBatches


@dataclass
class TrainingInputs:
    """What a run trains and validates on: every split's model inputs and gold labels, one training
    target per model input (a long text's windows all carry its label), and the padding token."""

    encoded: dict[str, Encoded]
    gold: dict[str, np.ndarray]
    targets: torch.Tensor
    pad_id: int


@dataclass
class Placement:
    """Where and how the run computes: precision, device, and this process's place among the ranks."""

    precision: str
    device: torch.device
    ranks: object  # training.distributed.Distributed


@dataclass
class TrainingPlan:
    """The module whose weights change, its batches, and the validation logits after an epoch (None
    without a validation split)."""

    trainable: nn.Module
    batches: EpochBatches
    validation_logits: Callable[[], np.ndarray | None]
