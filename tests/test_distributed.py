"""Scaling out: gradient accumulation, gradient checkpointing, and DDP under torchrun (gloo, CPU)."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import socket
import subprocess
import sys
from functools import partial

import pytest
import torch
from torch import nn

import conftest
from bertfit.cli import main
from bertfit.training.loop import EpochBatches, StepRecipe, build_optimizer, build_scheduler, fit

LEARN = ["--epochs", "4", "--learning-rate", "3e-3", "--train-word-embeddings", "--pooling", "mean"]


class _Linear(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(6, 3)

    def forward(self, features):
        return self.layer(features)


def _train_linear(batches, accumulate: int = 1, precision: str = "fp32", loss_fn=nn.CrossEntropyLoss(),
                  max_grad_norm: float = 0.0) -> dict[str, torch.Tensor]:  # fmt: skip
    model = _Linear()
    optimizer = build_optimizer(model, 0.1, 0.0, 1e-8)
    scheduler = build_scheduler(optimizer, 2, 0.0)
    recipe = StepRecipe(optimizer, scheduler, loss_fn, max_grad_norm, precision, torch.device("cpu"), accumulate)
    epochs = fit(model, EpochBatches(lambda epoch: iter(batches), len(batches)), 1, recipe)
    list(epochs)
    return model.state_dict()


def test_accumulated_batches_step_like_one_big_batch():
    generator = torch.Generator().manual_seed(1)
    features, labels = torch.randn(16, 6, generator=generator), torch.randint(0, 3, (16,), generator=generator)
    quarters = [({"features": features[i : i + 4]}, labels[i : i + 4]) for i in range(0, 16, 4)]
    halves = [({"features": features[i : i + 8]}, labels[i : i + 8]) for i in range(0, 16, 8)]
    accumulated, plain = _train_linear(quarters, accumulate=2), _train_linear(halves, accumulate=1)
    for name in plain:
        torch.testing.assert_close(accumulated[name], plain[name])


def test_fp16_scales_the_loss_so_small_gradients_survive():
    # Gradients near 1e-8 vanish in fp16 (smallest step about 6e-8) unless the loss is scaled up before the
    # backward pass; unscaled again before clipping and the step, fp16 then steps like fp32. (CUDA is where
    # fp16 is meant to run; the CPU's fp16 autocast exercises the same loop.)
    generator = torch.Generator().manual_seed(2)
    batches = [({"features": torch.randn(8, 6, generator=generator)}, torch.randint(0, 3, (8,), generator=generator))]
    tiny = nn.CrossEntropyLoss()

    def loss_fn(logits, labels):
        return tiny(logits, labels) * 1e-8

    start = _Linear().state_dict()
    # A clipping norm between the true gradient norm (about 1e-8) and the scaled one (about 1e-3): clipping the
    # scaled gradients would shrink the step.
    half, full = (_train_linear(batches, precision=p, loss_fn=loss_fn, max_grad_norm=1e-5) for p in ("fp16", "fp32"))
    assert (half["layer.weight"] - start["layer.weight"]).abs().mean() > 5e-3  # the weights moved
    for name in full:
        torch.testing.assert_close(half[name], full[name], atol=2e-3, rtol=0)


train_args = partial(conftest.train_args, base=("--batch-size", "16", *LEARN))


def test_gradient_checkpointing_trains_the_same_model(tiny_bert, sentiment_csv, tmp_path):
    assert main(train_args(sentiment_csv, tiny_bert, tmp_path / "plain")) == 0
    assert main(train_args(sentiment_csv, tiny_bert, tmp_path / "checkpointed", "--gradient-checkpointing")) == 0
    plain = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    checkpointed = json.loads((tmp_path / "checkpointed" / "metrics.json").read_text())
    for split in ("validation", "test"):
        assert checkpointed[split]["loss"] == pytest.approx(plain[split]["loss"], abs=1e-4)
        assert checkpointed[split]["confusion_matrix"] == plain[split]["confusion_matrix"]


def _train_losses(folder) -> list[float]:
    with open(folder / "training_log.csv", newline="") as handle:
        return [float(row["train_loss"]) for row in csv.DictReader(handle)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


LAUNCHERS = {
    "torchrun": lambda: ["torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
    # accelerate's multi-process launcher is torchrun underneath; it runs on CPUs too, despite its name
    # (its --cpu with several processes means MPI instead).
    "accelerate": lambda: ["accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port())],
}  # fmt: skip


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_processes_train_like_one(launcher, tiny_bert, sentiment_csv, tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    tracked = launcher == "torchrun" and importlib.util.find_spec("mlflow") is not None  # rank 0 alone reports
    assert main(train_args(sentiment_csv, tiny_bert, single)) == 0
    command = [
        sys.executable,
        "-m",
        *LAUNCHERS[launcher](),
        "-m",
        "bertfit",
        *train_args(sentiment_csv, tiny_bert, ddp),
        *(["--report-to", "mlflow"] if tracked else []),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns.db'}"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("distributed training: 2 processes (gloo)") == 1  # rank 0 alone logs ...
    assert (
        run.stderr.count("first row read as a header") == 1 and run.stdout.count(f"saved {ddp}") == 1
    )  # ... and prints
    written = sorted(p.name for p in tmp_path.iterdir() if p.name not in ("mlruns.db", "mlruns"))
    assert written == ["ddp", "sentiment.csv", "single"]  # rank 0 alone writes
    if tracked:
        import mlflow

        runs = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlruns.db'}").search_runs(["0"])
        assert [run.info.status for run in runs] == ["FINISHED"]
    from bertfit import Predictor

    assert len(Predictor.load(ddp).predict(["a lovely day", "an awful day"])) == 2
    losses = _train_losses(ddp)
    assert losses[-1] < losses[0] * 0.8  # it learns
    # Same global batches and steps; only the dropout masks and float rounding differ.
    one, two = (json.loads((folder / "metrics.json").read_text())["test"] for folder in (single, ddp))
    assert abs(one["accuracy"] - two["accuracy"]) <= 0.1
    assert abs(one["loss"] - two["loss"]) <= 0.1
