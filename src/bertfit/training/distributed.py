"""Data-parallel training under ``torchrun`` (or ``accelerate launch``): PyTorch's own
DistributedDataParallel, gloo on CPU and NCCL on GPU, set up from the launcher's environment.

``--batch-size`` stays the global batch: every rank draws the same seeded, length-bucketed batches
and trains on its slice of each, so N processes take the same optimizer steps on the same rows as
one process would. Validation and test rows are scored in slices too and gathered, so every rank
sees the same metrics and keeps the same epoch; only rank 0 writes the model folder and logs.
(accelerate's prepared data loaders give each rank whole batches of its own, so the global batch would
grow with the number of processes; this slicing keeps a run's steps the same at any world size.)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def slice(self, rows: Sequence[int]) -> Sequence[int]:
        """This rank's share of a global batch."""
        return rows[self.rank :: self.world_size]

    def device(self) -> torch.device | None:
        """Each rank's own GPU where there are GPUs; None leaves the usual choice (the CPU here)."""
        return torch.device("cuda", self.local_rank) if torch.cuda.is_available() else None


def from_environment() -> Distributed:
    """The launcher's RANK / WORLD_SIZE / LOCAL_RANK; a plain run is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Distributed(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def quiet_other_ranks(dist: Distributed) -> None:
    """One voice: ranks other than 0 only speak up for problems."""
    if not dist.is_main:
        logging.getLogger("bertfit").setLevel(logging.WARNING)


def start(dist: Distributed) -> None:
    if not dist.active or torch.distributed.is_initialized():
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(dist.local_rank)
    torch.distributed.init_process_group(backend)
    log.info("distributed training: %d processes (%s)", dist.world_size, backend)


def stop(dist: Distributed) -> None:
    if dist.active and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def wrap(model: torch.nn.Module, dist: Distributed) -> torch.nn.Module:
    if not dist.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device = dist.device()
    return DistributedDataParallel(model, device_ids=[device.index] if device is not None else None)


def gather_rows(dist: Distributed, count: int, score) -> np.ndarray:
    """``score(rows)`` of every row in ``range(count)``: each rank scores its slice, all ranks get all."""
    if not dist.active:
        return score(list(range(count)))
    mine = dist.slice(list(range(count)))
    values = score(mine) if mine else None
    shares: list = [None] * dist.world_size
    torch.distributed.all_gather_object(shares, (mine, values))
    width = next(v.shape[1:] for _, v in shares if v is not None)
    out = np.zeros((count, *width), dtype=np.float32)
    for rows, share in shares:
        if rows:
            out[rows] = share
    return out
