"""Checkpoints of a running fine-tune, so a killed run continues where it stopped.

A checkpoint is everything the loop's future depends on: the weights being trained, the optimizer
and scheduler, every random generator, where the sampler is in the epoch, the best epoch so far
(its weights and score) and the history, which with the time spent are the state of the stopping
rules (``training/stopping.py``); this module only saves and restores them. The batch order is a pure function of (seed, epoch), so
"where the sampler is" is just the number of batches already done in that epoch.

Layout of ``<output>.checkpoint/``: one ``step-NNNNNNNN/`` folder per checkpoint, written under a
temporary name and renamed when complete, and ``latest.json`` naming the newest complete one
(replaced atomically). A kill at any moment leaves ``latest.json`` pointing at a whole checkpoint.
Tensors are stored as safetensors; the optimizer state goes through ``torch.load(weights_only=True)``,
which refuses anything but tensors and plain containers, so reading a checkpoint runs no code.
(accelerate's ``save_state`` covers the model, optimizer, scheduler and generators, but the sampler's
position, the history and the best epoch would be custom objects, which it reads back with
``weights_only=False``, and it writes into the folder in place, where a kill leaves half a checkpoint.)
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bertfit.errors import ConfigError
from bertfit.folder import atomic_folder, write_json_atomically
from bertfit.training.stopping import BestEpoch

LATEST = "latest.json"
STATE = "state.json"
WEIGHTS = "weights.safetensors"
BEST_WEIGHTS = "best.safetensors"
OPTIMIZER = "optimizer.pt"


def checkpoint_dir(output_dir: Path) -> Path:
    """Checkpoints sit beside the output folder, which is only written once training ends."""
    return output_dir.with_name(output_dir.name + ".checkpoint")


@dataclass
class LoopPosition:
    """Where the loop stands: ``step`` batches of ``epoch`` are done, with this running loss."""

    epoch: int = 1
    step: int = 0
    loss_total: float = 0.0
    loss_count: int = 0
    seconds: float = 0.0  # time the run had spent when it stood here (a time budget continues from it)


@dataclass
class Checkpoint:
    config: dict
    position: LoopPosition
    history: list[dict]
    best_score: float | None
    best_epoch: int | None
    folder: Path
    rng: dict = field(default_factory=dict)

    def restore(self, model: nn.Module, optimizer, scheduler) -> BestEpoch:
        """Load weights, optimizer, scheduler and random generators; return the best epoch so far."""
        from safetensors.torch import load_file, load_model

        load_model(model, self.folder / WEIGHTS)
        states = torch.load(self.folder / OPTIMIZER, weights_only=True)
        optimizer.load_state_dict(states["optimizer"])
        scheduler.load_state_dict(states["scheduler"])
        random.setstate(_as_tuple(self.rng["python"]))
        np.random.set_state(tuple(self.rng["numpy"][:1]) + (np.array(self.rng["numpy"][1], dtype=np.uint32),)
                            + tuple(self.rng["numpy"][2:]))  # fmt: skip
        torch.set_rng_state(states["torch_rng"])
        if states.get("cuda_rng") and torch.cuda.is_available():  # dropout masks drawn on the GPU continue too
            torch.cuda.set_rng_state_all(states["cuda_rng"])
        best = self.folder / BEST_WEIGHTS
        if not best.exists():
            return BestEpoch()
        return BestEpoch.restored(self.best_score, self.best_epoch, load_file(best), self.history)


class Checkpointer:
    """Writes a checkpoint of ``model``, ``optimizer`` and ``scheduler`` every ``every`` steps into
    ``folder`` and keeps only the newest."""

    def __init__(self, folder: Path, every: int, config: dict, model: nn.Module, optimizer, scheduler):
        self.folder, self.every, self.config = folder, every, config
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler

    def due(self, global_step: int) -> bool:
        return self.every > 0 and global_step % self.every == 0

    def save(self, global_step: int, position: LoopPosition, history: list, best: BestEpoch) -> None:
        from safetensors.torch import save_file, save_model

        name = f"step-{global_step:08d}"
        best_state = best.state
        with atomic_folder(self.folder / name) as staging:
            save_model(self.model, str(staging / WEIGHTS))
            if best_state is not None:
                save_file({k: v.contiguous() for k, v in best_state.items()}, staging / BEST_WEIGHTS)
            torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                        "torch_rng": torch.get_rng_state(), "cuda_rng": _cuda_rng_states()}, staging / OPTIMIZER)  # fmt: skip
            numpy_state = np.random.get_state()
            state = {
                "config": self.config,
                "position": asdict(position),
                "history": [asdict(record) for record in history],
                "best_score": None if best_state is None else float(best.score),
                "best_epoch": None if best_state is None else best.epoch,
                "rng": {
                    "python": random.getstate(),
                    "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
                },  # fmt: skip
            }
            (staging / STATE).write_text(json.dumps(state), encoding="utf-8")
        _write_pointer(self.folder, name)
        for old in self.folder.glob("step-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)


def _write_pointer(folder: Path, name: str) -> None:
    write_json_atomically(folder / LATEST, {"checkpoint": name})


def read_checkpoint(output_dir: Path) -> Checkpoint:
    folder = checkpoint_dir(output_dir)
    pointer = folder / LATEST
    if not pointer.is_file():
        raise ConfigError(f"no checkpoint to resume at {folder} (train with --save-every N to write checkpoints)")
    step_folder = folder / json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
    state = json.loads((step_folder / STATE).read_text(encoding="utf-8"))
    return Checkpoint(state["config"], LoopPosition(**state["position"]), state["history"], state["best_score"],
                      state["best_epoch"], step_folder, state["rng"])  # fmt: skip


def _cuda_rng_states() -> list[torch.Tensor]:
    return torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []


def _as_tuple(value):
    """JSON turned Python's random state tuples into lists; ``random.setstate`` wants tuples back."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list) else value
