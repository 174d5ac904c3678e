"""Confident and wrong, never silently: a temperature fit that says "soften" is kept, and a model whose
validation scores are near chance says so in the log, the report and the model card."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from bertfit.cli import main
from bertfit.tasks import LabelSet, MultiLabelTask, RegressionTask, SingleLabelTask
from bertfit.tasks.calibration import SOFTEST_TEMPERATURE, TEMPERATURE_BOUNDS, fit_temperature
from conftest import sentiment_rows, write_csv


# -- the temperature fit ---------------------------------------------------------------------
def _binary_rows(scale: float, rows: int = 4000, spread: float = 1.0, seed: int = 0):
    """Logits ``scale`` times the true log-odds of gold drawn from them: the best T is ``scale``."""
    rng = np.random.default_rng(seed)
    log_odds = rng.normal(0, spread, rows)
    gold = (rng.random(rows) < 1 / (1 + np.exp(-log_odds))).astype(int)
    return np.stack([np.zeros(rows), scale * log_odds], axis=1), gold


def _nll(logits, gold, t):
    z = logits / t
    return float((np.logaddexp.reduce(z, axis=1) - z[np.arange(len(gold)), gold]).mean())


def test_a_fit_past_the_upper_bound_widens_the_search_and_keeps_softening(caplog):
    logits, gold = _binary_rows(scale=30.0)
    with caplog.at_level("WARNING"):
        t = fit_temperature(logits, gold, multi_label=False)
    assert TEMPERATURE_BOUNDS[1] < t < SOFTEST_TEMPERATURE and t == pytest.approx(30.0, rel=0.25)
    assert _nll(logits, gold, t) < _nll(logits, gold, TEMPERATURE_BOUNDS[1]) < _nll(logits, gold, 1.0)
    assert "ran past 10" in caplog.text


def test_logits_with_no_signal_keep_the_widest_softening(caplog):
    """Confident noise (the near-chance case): T goes to the widened bound, not back to 1."""
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 2, 500)
    logits = rng.normal(0, 20, (500, 2))
    with caplog.at_level("WARNING"):
        t = fit_temperature(logits, gold, multi_label=False)
    assert t == pytest.approx(SOFTEST_TEMPERATURE, rel=0.02)
    assert "its widened bound" in caplog.text


def test_a_multi_label_fit_keeps_softening_too():
    rng = np.random.default_rng(2)
    gold = rng.integers(0, 2, (300, 3)).astype(float)
    assert fit_temperature(rng.normal(0, 20, (300, 3)), gold, multi_label=True) > TEMPERATURE_BOUNDS[1]


def test_a_fit_at_the_lower_bound_stays_at_one(caplog):
    """Sharpening is the conservative side: a fit that wants T below 0.25 keeps T = 1, and says why."""
    logits, gold = _binary_rows(scale=0.05, spread=3.0)
    with caplog.at_level("WARNING"):
        assert fit_temperature(logits, gold, multi_label=False) == 1.0
    assert "lower bound" in caplog.text


# -- the near-chance rule, per shape -----------------------------------------------------------
def _single(gold, predicted, labels=("a", "b")):
    task = SingleLabelTask(LabelSet(labels))
    return task, task.metrics(np.asarray(gold), np.eye(len(labels))[np.asarray(predicted)])


def test_single_label_near_chance_by_mcc_or_the_majority_share():
    gold = np.arange(100) % 2
    coin = np.where(np.arange(100) < 56, gold, 1 - gold)  # 56% right: MCC 0.12
    task, metrics = _single(gold, coin)
    assert "MCC 0.12" in task.chance_warning(metrics)
    task, metrics = _single(gold, np.where(np.arange(100) < 90, gold, 1 - gold))
    assert task.chance_warning(metrics) is None
    rare = (np.arange(100) < 5).astype(int)  # 95/5
    task, metrics = _single(rare, np.zeros(100, dtype=int))  # always the common class
    assert "0.950 for always predicting the most common class" in task.chance_warning(metrics)
    detector = rare.copy()
    detector[[10, 20, 30]] = 1  # every rare row found, three false alarms: accuracy 0.97, MCC 0.78
    task, metrics = _single(rare, detector)
    assert task.chance_warning(metrics) is None


def test_multi_label_near_chance_against_every_label_on_every_text():
    rng = np.random.default_rng(0)
    gold = (rng.random((200, 3)) < [0.5, 0.2, 0.1]).astype(float)
    task = MultiLabelTask(LabelSet(("a", "b", "c")))
    everything = task.metrics(gold, np.ones_like(gold))
    assert "for every label on every text" in task.chance_warning(everything)
    assert task.chance_warning(task.metrics(gold, gold * 0.9 + 0.05)) is None


def test_regression_near_chance_by_r2():
    gold = np.linspace(0, 5, 50)
    task = RegressionTask(LabelSet(("value",)))
    assert "R2 0.000" in task.chance_warning(task.metrics(gold, np.full(50, gold.mean())))
    assert task.chance_warning(task.metrics(gold, gold + 0.1)) is None
    assert task.chance_warning(task.metrics(gold[:1], gold[:1])) is None  # R2 undefined: no verdict


def test_no_validation_metrics_means_no_verdict():
    task = SingleLabelTask(LabelSet(("a", "b")))
    assert task.chance_warning(None) is None
    assert task.chance_warning({"accuracy": 0.5, "mcc": 0.0}) is None  # an older metrics.json, without counts


# -- where it shows ---------------------------------------------------------------------------
NEAR_CHANCE = {"accuracy": 0.556, "mcc": 0.11, "rows": 277,
               "per_class": {"neg": {"support": 146}, "pos": {"support": 131}}}  # fmt: skip


def test_the_report_shows_the_warning(small_model_dir, tmp_path):
    from bertfit.evaluation.report import build_report

    folder = tmp_path / "m"
    shutil.copytree(small_model_dir, folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["validation"].update(NEAR_CHANCE)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    assert "class=warning><strong>Warning:</strong> near chance on validation: MCC 0.11" in build_report(folder)
    metrics["validation"].update(mcc=0.9, accuracy=0.95)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    assert "near chance" not in build_report(folder)


def test_the_model_card_shows_the_warning(small_model_dir, tmp_path):
    from huggingface_hub import ModelCard

    from bertfit.folder import read_manifest
    from bertfit.inference import Predictor
    from bertfit.training.save import _write_card

    manifest = read_manifest(small_model_dir)
    metrics = json.loads((small_model_dir / "metrics.json").read_text())
    result = SimpleNamespace(metrics={**metrics, "validation": {**metrics["validation"], **NEAR_CHANCE}},
                             output_dir=small_model_dir, history=[1], summary=None,
                             task=Predictor.load(small_model_dir, backend="torch").task)  # fmt: skip
    _write_card(tmp_path / "README.md", manifest, result)
    card = ModelCard.load(tmp_path / "README.md")
    assert "> **Warning:** near chance on validation: MCC 0.11" in card.text
    result.metrics["validation"].update(mcc=0.9, accuracy=0.95)
    _write_card(tmp_path / "README.md", manifest, result)
    assert "near chance" not in (tmp_path / "README.md").read_text()


def test_training_near_chance_warns_in_the_log_the_card_and_the_report(tiny_bert, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(SingleLabelTask, "near_chance", lambda self, metrics: "as this test says")
    data = write_csv(tmp_path / "data.csv", sentiment_rows(60))
    output = tmp_path / "m"
    args = ["train", "--train", str(data), "--split", "0.6,0.2,0.2", "--model", str(tiny_bert), "--output",
            str(output), "--epochs", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    line = "near chance on validation: as this test says"
    assert line in capsys.readouterr().err
    assert line in (output / "README.md").read_text() and line in (output / "report.html").read_text()


def test_a_tuned_threshold_decides_the_same_rows_after_softening():
    """Thresholds are tuned at T = 1 and carried to the fitted T: the rows decided do not move."""
    from bertfit.tasks.calibration import threshold_at_temperature

    logits = np.random.default_rng(0).normal(0, 3, 2000)
    for threshold in (0.05, 0.37, 0.5, 0.81):
        for temperature in (0.5, 1.0, 30.0, 100.0):
            moved = threshold_at_temperature(threshold, temperature)
            before = 1 / (1 + np.exp(-logits)) >= threshold
            after = 1 / (1 + np.exp(-logits / temperature)) >= moved
            assert (before == after).mean() > 0.999  # rows within float rounding of the threshold may tie
    assert threshold_at_temperature(0.37, 1.0) == 0.37
