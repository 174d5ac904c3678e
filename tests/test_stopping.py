"""Validation always (held out when not given), early stopping and a time budget, on tiny models."""

import json

import pytest

from bertfit.cli import main
from bertfit.config import parse_duration
from bertfit.training.loop import EpochResult
from bertfit.training.stopping import last_progress
from conftest import sentiment_rows, train_tiny, write_csv


def _train(tiny_bert, tmp_path, *extra, rows=80):
    test = write_csv(tmp_path / "test.csv", sentiment_rows(20, seed=9))
    out = train_tiny(tmp_path, tiny_bert, "--test", test, *extra, rows=rows, split=None, quiet=False)
    return out, json.loads((out / "bertfit.json").read_text())


def test_train_and_test_alone_hold_out_validation_keep_the_best_epoch_and_calibrate(tiny_bert, tmp_path, capsys):
    out, manifest = _train(tiny_bert, tmp_path, "--epochs", "2")
    err = capsys.readouterr().err
    assert "no validation file: held out 8 of 80 training rows (10%, stratified, seed 42) as validation" in err
    assert manifest["data"]["rows"] == {"train": 72, "validation": 8, "test": 20}
    metrics = json.loads((out / "metrics.json").read_text())
    assert "validation" in metrics and manifest["best_epoch"] in (1, 2)


def test_validation_split_zero_trains_without_and_says_what_is_lost(tiny_bert, tmp_path, capsys):
    _, manifest = _train(tiny_bert, tmp_path, "--epochs", "1", "--validation-split", "0")
    assert "no validation data: the last epoch is kept, with no early stopping" in capsys.readouterr().err
    assert "validation" not in manifest["data"]["rows"]


def test_patience_stops_when_validation_stops_improving(tiny_bert, tmp_path):
    # a learning rate too small to change any prediction: the score never beats epoch 1
    _, manifest = _train(tiny_bert, tmp_path, "--epochs", "6", "--patience", "2", "--learning-rate", "1e-12")
    assert manifest["epochs_run"] == 3 and manifest["best_epoch"] == 1
    assert "--patience 2" in manifest["stop_reason"]


def test_the_frozen_recipe_runs_every_epoch_and_keeps_the_last_unless_patience_is_given(tiny_bert, tmp_path, capsys):
    # the learning rate that, under patience 2, stops after epoch 3 and keeps epoch 1 (the test above)
    _, manifest = _train(tiny_bert, tmp_path, "--freeze", "all", "--epochs", "4", "--learning-rate", "1e-12")
    assert manifest["epochs_run"] == 4 and manifest["best_epoch"] == 4
    assert manifest["stop_reason"] == "all 4 epochs ran"
    assert "kept the last epoch, 4 (the frozen recipe's rule; --patience N keeps the best)" in capsys.readouterr().err
    _, manifest = _train(tiny_bert, tmp_path, "--freeze", "all", "--epochs", "4", "--learning-rate", "1e-12",
                         "--patience", "2", "--overwrite")  # fmt: skip
    assert manifest["epochs_run"] == 3 and manifest["best_epoch"] == 1


def test_a_time_budget_stops_at_the_end_of_a_step_and_keeps_the_best_so_far(tiny_bert, tmp_path, capsys):
    out, manifest = _train(tiny_bert, tmp_path, "--epochs", "6", "--time-budget", "0.001s", "--batch-size", "8")
    assert manifest["epochs_run"] == 1 and manifest["best_epoch"] == 1
    assert manifest["stop_reason"] == "the time budget (0.001s) ran out in epoch 1"
    assert "(cut short by the time budget)" in capsys.readouterr().err
    assert "test" in json.loads((out / "metrics.json").read_text())


def test_a_resumed_run_keeps_its_time_budget(tiny_bert, tmp_path):
    """The budget counts the time the killed run had spent (saved with each checkpoint): a run killed
    when its budget was all but gone stops one step after it resumes."""
    from test_resume import KILL_AFTER_STEP, run_child, train_args

    data = write_csv(tmp_path / "train.csv", sentiment_rows(80))
    out = tmp_path / "m"
    args = train_args(data, tiny_bert, out, "--save-every", "1", "--time-budget", "1h", "--patience", "0")
    assert run_child(KILL_AFTER_STEP, "3", *args).returncode != 0
    checkpoint = tmp_path / "m.checkpoint"
    step = checkpoint / json.loads((checkpoint / "latest.json").read_text())["checkpoint"]
    state = json.loads((step / "state.json").read_text())
    assert state["position"]["seconds"] > 0
    state["position"]["seconds"] = 3600.0  # as if the killed run had spent its whole hour
    (step / "state.json").write_text(json.dumps(state))
    assert main(["train", "--resume", str(out)]) == 0
    manifest = json.loads((out / "bertfit.json").read_text())
    assert manifest["stop_reason"] == "the time budget (1h) ran out in epoch 1" and manifest["epochs_run"] == 1


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("20m", 1200), ("1.5h", 5400), ("600", 600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5m", "0"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_patience_counts_a_clearly_lower_validation_loss_as_progress():
    # SMS spam at base size, seed 43: the MCC stood still or fell after epoch 1 while the loss fell
    history = [
        EpochResult(epoch, 0.1, 1.0, 1e-5, {"mcc": mcc, "loss": loss})
        for epoch, mcc, loss in [(1, 0.974, 0.0525), (2, 0.953, 0.0486), (3, 0.964, 0.0424), (4, 0.964, 0.0423)]
    ]
    assert last_progress(history[:3], best_epoch=1) == 3  # 12.8% lower: progress, the run goes on
    assert last_progress(history, best_epoch=1) == 3  # 0.2% lower: a wobble, not progress
    assert last_progress(history, best_epoch=4) == 4  # a better score is progress whatever the loss does
    assert last_progress([EpochResult(1, 0.1, 1.0, 1e-5)], best_epoch=1) == 1  # no validation loss


def _record(epoch: int, score: float | None = None, loss: float = 0.5, partial: bool = False) -> EpochResult:
    validation = None if score is None else {"mcc": score, "loss": loss}
    return EpochResult(epoch, 0.1, 1.0, 1e-5, validation, partial)


def test_stopping_keeps_the_best_epoch_and_breaks_a_tie_by_the_lower_loss():
    from torch import nn

    from bertfit.training.stopping import Stopping

    model = nn.Linear(2, 2)
    stopping = Stopping(epochs=4, key="mcc", patience=2)
    assert stopping.offer(_record(1, 0.5, loss=0.6), model)
    assert not stopping.offer(_record(2, 0.4, loss=0.1), model)  # a lower score: kept only as loss progress
    assert stopping.offer(_record(3, 0.5, loss=0.55), model)  # the same score at a lower loss
    assert not stopping.offer(_record(4, 0.5, loss=0.58), model)
    assert (stopping.best.epoch, stopping.best.loss) == (3, 0.55)
    assert set(stopping.best.state) == {"weight", "bias"}


def test_stopping_counts_patience_from_the_last_progress_and_says_why_it_stopped():
    from bertfit.training.stopping import Stopping

    history = [_record(1, 0.5, loss=0.60), _record(2, 0.4, loss=0.50), _record(3, 0.4, loss=0.499)]
    stopping = Stopping(epochs=6, key="mcc", patience=2, time_budget="1h")
    stopping.best.epoch = 1
    assert not stopping.out_of_patience(history[:2])  # epoch 2's loss, 17% lower, is progress
    assert not stopping.out_of_patience(history)  # epoch 3's, 0.2% lower, is not: one epoch without
    assert stopping.out_of_patience([*history, _record(4, 0.4, loss=0.5)])
    assert stopping.reason(history) == ("no better validation mcc, nor a 1% lower validation loss, for 2 epochs "
                                        "(--patience 2)")  # fmt: skip
    assert not Stopping(epochs=6, key="mcc", patience=0).out_of_patience(history)  # 0: every epoch runs
    assert not Stopping(epochs=6, key="mcc", patience=1).out_of_patience(history)  # nothing scored yet


@pytest.mark.parametrize(
    ("history", "reason"),
    [
        ([_record(1), _record(2, partial=True)], "the time budget (20m) ran out in epoch 2"),
        ([_record(1)], "the time budget (20m) ran out in epoch 1"),  # ran out at the end of an epoch
        ([_record(1), _record(2)], "all 2 epochs ran"),
    ],
)
def test_the_stop_reason_names_the_time_budget_or_all_epochs(history, reason):
    from bertfit.training.stopping import Stopping

    assert Stopping(epochs=2, key="mcc", time_budget="20m").reason(history) == reason


def test_a_time_budget_counts_the_time_a_resumed_run_had_spent():
    from bertfit.training.stopping import TimeBudget

    assert not TimeBudget(None, spent=1e9).ran_out()  # no budget
    assert not TimeBudget(60.0).ran_out()
    resumed = TimeBudget(60.0, spent=59.999)
    assert resumed.spent() >= 59.999
    assert TimeBudget(60.0, spent=60.0).ran_out()


def test_a_restored_best_epoch_reads_its_loss_from_the_history():
    from bertfit.training.stopping import BestEpoch

    history = [{"epoch": 1, "validation": {"loss": 0.7}}, {"epoch": 2, "validation": {"loss": 0.4}}]
    assert BestEpoch.restored(0.5, 2, {}, history).loss == 0.4
    assert BestEpoch.restored(0.5, 3, {}, history).loss == float("inf")  # not in the history (no validation loss)
