"""Crash safety: a run killed with SIGKILL mid-epoch resumes to the uninterrupted run's metrics, and
a kill while the model folder is being written leaves the previous folder as it was."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import conftest
from bertfit.cli import main

# Runs `bertfit train ARGS` in a child process that SIGKILLs itself after its Nth training step.
KILL_AFTER_STEP = """
import os, signal, sys
from bertfit.cli import build_parser, config_from_args
from bertfit.training.loop import Callbacks
from bertfit.training.run import train

class KillAfter(Callbacks):
    def __init__(self, step):
        self.step, self.seen = step, 0

    def on_step(self, loss):
        self.seen += 1
        if self.seen == self.step:
            os.kill(os.getpid(), signal.SIGKILL)

train(config_from_args(build_parser().parse_args(sys.argv[2:])), KillAfter(int(sys.argv[1])))
"""

# Writes the model folder over an existing one and SIGKILLs itself half-way through writing it.
KILL_WHILE_SAVING = """
import os, signal, sys
import bertfit.training.save
from bertfit.cli import main

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

bertfit.training.save._write_card = die
main(sys.argv[1:])
"""


train_args = partial(conftest.train_args, base=("--epochs", "3", "--batch-size", "8", "--pooling", "mean"))


def run_child(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300)


def training_log(folder: Path) -> list[dict]:
    with open(folder / "training_log.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def test_run_killed_mid_epoch_resumes_to_the_uninterrupted_metrics(tiny_bert, sentiment_csv, tmp_path, capsys):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(train_args(sentiment_csv, tiny_bert, whole)) == 0

    # 96 training rows in batches of 8: 12 steps an epoch; checkpoints at steps 5, 10, 15; killed after step 19.
    child = run_child(KILL_AFTER_STEP, "19", *train_args(sentiment_csv, tiny_bert, killed, "--save-every", "5"))
    assert child.returncode == -9, child.stderr
    assert not killed.exists()
    checkpoints = tmp_path / "killed.checkpoint"
    assert json.loads((checkpoints / "latest.json").read_text()) == {"checkpoint": "step-00000015"}

    assert main(["train", "--resume", str(killed), "--no-progress"]) == 2  # options come from the checkpoint
    assert "drop --progress" in capsys.readouterr().err
    assert main(["train", "--resume", str(killed)]) == 0
    assert "resuming" in capsys.readouterr().err
    assert json.loads((killed / "metrics.json").read_text()) == json.loads((whole / "metrics.json").read_text())
    assert training_log(killed) == training_log(whole)
    assert not checkpoints.exists()


def test_resume_without_a_checkpoint_says_so(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nothing")]) != 0
    assert "no checkpoint to resume" in capsys.readouterr().err


def test_a_new_run_does_not_silently_discard_an_unfinished_one(tiny_bert, sentiment_csv, tmp_path, capsys):
    output = tmp_path / "model"
    (tmp_path / "model.checkpoint").mkdir()
    assert main(train_args(sentiment_csv, tiny_bert, output, "--save-every", "5")) != 0
    assert "--resume" in capsys.readouterr().err


def folder_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


def test_kill_while_saving_leaves_the_previous_folder_intact(tiny_bert, sentiment_csv, tmp_path):
    output = tmp_path / "model"
    assert main(train_args(sentiment_csv, tiny_bert, output, "--epochs", "1")) == 0
    before = folder_digest(output)
    child = run_child(KILL_WHILE_SAVING, *train_args(sentiment_csv, tiny_bert, output, "--epochs", "2", "--overwrite"))
    assert child.returncode == -9, child.stderr
    assert folder_digest(output) == before
    assert main(["predict", str(output), "--text", "a lovely day"]) == 0
    assert list(tmp_path.glob(".model.tmp-*"))  # the killed save's half-written folder...
    assert main(train_args(sentiment_csv, tiny_bert, output, "--epochs", "1", "--overwrite")) == 0
    assert not list(tmp_path.glob(".model.tmp-*"))  # ...is cleared by the next save
