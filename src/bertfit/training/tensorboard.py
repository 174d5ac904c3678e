"""``--tensorboard``: training loss and learning rate per step, validation metrics per epoch, written
with PyTorch's own SummaryWriter (the ``tensorboard`` extra) so `tensorboard --logdir` shows them."""

from __future__ import annotations

import logging
from pathlib import Path

from bertfit.errors import ConfigError
from bertfit.training.loop import Callbacks, EpochResult

log = logging.getLogger(__name__)


def tensorboard_dir(output_dir: Path) -> Path:
    """runs/tensorboard/<run>: one --logdir (runs/tensorboard) compares every run beside it."""
    return output_dir.parent / "tensorboard" / output_dir.name


class TensorBoardLogger(Callbacks):
    def __init__(self, folder: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "--tensorboard needs the tensorboard package: pip install 'bertfit[tensorboard]'"
            ) from None
        self.folder, self.make_writer = folder, SummaryWriter
        self.writer, self.step, self.runs = None, 0, 0

    def on_train_begin(self, total_steps: int, done: int = 0) -> None:
        # Repeated runs (--seeds, --folds) each get their own curve: run-1, run-2, ...
        self.runs += 1
        if self.writer is not None:
            self.writer.close()
        self.writer = self.make_writer(str(self.folder / f"run-{self.runs}"), purge_step=done or None)
        self.step = done
        log.info("TensorBoard logs in %s (tensorboard --logdir %s)", self.folder, self.folder.parent)

    def on_step(self, loss: float) -> None:
        self.step += 1
        self.writer.add_scalar("train/loss", loss, self.step)

    def on_epoch_end(self, record: EpochResult, key: str) -> None:
        self.writer.add_scalar("train/epoch_loss", record.train_loss, self.step)
        self.writer.add_scalar("train/learning_rate", record.learning_rate, self.step)
        for name, value in (record.validation or {}).items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(f"validation/{name}", value, self.step)
        self.writer.flush()

    def on_train_end(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class CallbackList(Callbacks):
    """Several callbacks as one: each hook calls them in order."""

    def __init__(self, *callbacks: Callbacks):
        self.callbacks = callbacks

    def on_train_begin(self, total_steps: int, done: int = 0) -> None:
        for callback in self.callbacks:
            callback.on_train_begin(total_steps, done)

    def on_step(self, loss: float) -> None:
        for callback in self.callbacks:
            callback.on_step(loss)

    def on_epoch_end(self, record: EpochResult, key: str) -> None:
        for callback in self.callbacks:
            callback.on_epoch_end(record, key)

    def on_train_end(self) -> None:
        for callback in self.callbacks:
            callback.on_train_end()

    def on_repeat_begin(self, name: str, params: dict) -> None:
        for callback in self.callbacks:
            callback.on_repeat_begin(name, params)

    def on_repeat_end(self, metrics: dict, status: str = "FINISHED") -> None:
        for callback in self.callbacks:
            callback.on_repeat_end(metrics, status)
