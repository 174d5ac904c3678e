"""--report-to mlflow against a real MLflow tracking server the test starts (SQLite, loopback) and against a
plain local store: the run's params, per-epoch metrics, final metrics, artifacts and tags read back through
``MlflowClient``, and the logged MLflow model predicting as ``bertfit predict`` does."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import conftest
from bertfit.cli import main

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")

train_args = partial(conftest.train_args, base=("--epochs", "2", "--batch-size", "16", "--pooling", "mean"))


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    """``mlflow server`` on a free loopback port (runs in SQLite, artifacts served by the server); its URI."""
    from bench.mlflow_parity import start_server

    server, uri = start_server(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield uri
    finally:
        server.terminate()
        server.wait(timeout=30)


def only_run(client, experiment: str):
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], "")
    parents = [run for run in found if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1, [run.info.run_name for run in found]
    return parents[0], [run for run in found if run not in parents]


@pytest.mark.exports_onnx
def test_a_run_on_a_tracking_server_holds_params_metrics_artifacts_and_a_model_that_predicts_as_bertfit(
    tiny_bert, sentiment_csv, tmp_path, monkeypatch, tracking_server
):
    from bench.mlflow_parity import score_served, start_model_server

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "sentiment")
    folder = tmp_path / "model"
    args = train_args(sentiment_csv, tiny_bert, folder, "--report-to", "mlflow", "--register-model", "sentiment")
    assert main(args) == 0

    client = mlflow.MlflowClient(tracking_server)
    run, children = only_run(client, "sentiment")
    assert children == [] and run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "2" and run.data.params["data.train"] == str(sentiment_csv)
    assert run.data.params["recipe"] == "full" and run.data.params["learning_rate"] != "None"  # as resolved
    assert run.data.tags["bertfit.task"] == "classification" and run.data.tags["bertfit.encoder"] == str(tiny_bert)
    # Per epoch, at its optimizer step (96 training rows in batches of 16: 6 steps an epoch).
    history = client.get_metric_history(run.info.run_id, "validation_loss")
    assert [m.step for m in history[:2]] == [6, 12]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")][:2] == [6, 12]
    saved = pd.read_json(folder / "metrics.json", typ="series")
    assert run.data.metrics["test_accuracy"] == pytest.approx(saved["test"]["accuracy"])
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/report.html", "report/metrics.json"} <= artifacts
    assert any(path.endswith(".png") for path in artifacts)

    # The MLflow model (registered) answers as `bertfit predict` does, on the test rows.
    test = pd.read_csv(folder / "predictions_test.csv")
    predicted = tmp_path / "predicted.csv"
    test[["text"]].to_csv(tmp_path / "texts.csv", index=False)
    assert main(["predict", str(folder), "--input", str(tmp_path / "texts.csv"), "--output", str(predicted)]) == 0
    expected = pd.read_csv(predicted)
    model = mlflow.pyfunc.load_model("models:/sentiment/1")
    answered = model.predict(test[["text"]])
    assert answered["predicted_label"].tolist() == expected["predicted_label"].tolist()
    np.testing.assert_allclose(answered[["prob_neg", "prob_pos"]], expected[["prob_neg", "prob_pos"]], atol=1e-6)
    as_list = model.predict(test["text"].tolist()[:3])
    assert as_list["predicted_label"].tolist() == expected["predicted_label"].tolist()[:3]

    # ... and so does `mlflow models serve`, over HTTP.
    server, uri = start_model_server("models:/sentiment/1", tmp_path)
    try:
        served = pd.DataFrame(score_served(uri, test["text"].tolist()))
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert served["predicted_label"].tolist() == expected["predicted_label"].tolist()
    np.testing.assert_allclose(served[["prob_neg", "prob_pos"]], expected[["prob_neg", "prob_pos"]], atol=1e-6)


def test_seeds_are_nested_runs_under_one_run_in_a_local_store(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    store = tmp_path / "mlruns.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    assert main(train_args(sentiment_csv, tiny_bert, tmp_path / "model", "--seeds", "2", "--report-to", "mlflow")) == 0

    client = mlflow.MlflowClient(f"sqlite:///{store}")
    run, children = only_run(client, "Default")
    assert sorted(child.info.run_name for child in children) == ["seed 42", "seed 43"]
    assert all(child.info.status == "FINISHED" and "test_accuracy" in child.data.metrics for child in children)
    assert {child.data.params["seed"] for child in children} == {"42", "43"}
    assert "test_accuracy_mean" in run.data.metrics and "test_accuracy_std" in run.data.metrics
    assert client.get_metric_history(children[0].info.run_id, "validation_loss")  # epochs go to the seed's run


def test_report_to_is_checked_before_any_work(tiny_bert, sentiment_csv, tmp_path, capsys):
    assert main(train_args(sentiment_csv, tiny_bert, tmp_path / "m", "--register-model", "x")) == 2
    assert "--register-model registers the model MLflow logs: add --report-to mlflow" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_without_mlflow_the_error_gives_the_install_line(tiny_bert, sentiment_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    assert main(train_args(sentiment_csv, tiny_bert, tmp_path / "m", "--report-to", "mlflow")) == 2
    assert "pip install 'bertfit[mlflow]'" in capsys.readouterr().err
    assert not Path(tmp_path / "m").exists()


def test_a_tracking_server_that_does_not_answer_stops_the_command_before_any_work(
    tiny_bert, sentiment_csv, tmp_path, monkeypatch, capsys
):
    from label_studio_server import free_port

    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert main(train_args(sentiment_csv, tiny_bert, tmp_path / "m", "--report-to", "mlflow")) == 5
    err = capsys.readouterr().err
    assert f"error: MLflow at {uri}: starting the run failed:" in err and "Traceback" not in err
    assert not (tmp_path / "m" / "bertfit.json").exists()


def test_a_tracker_failing_during_training_is_a_warning_and_at_the_end_one_line(
    tiny_bert, sentiment_csv, tmp_path, monkeypatch, capsys
):
    import bertfit.inference.mlflow_model

    store = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    calls = []

    def log_metrics_failing_twice(*args, **kwargs):  # the first two epochs' numbers are lost on the way
        calls.append(args)
        if len(calls) <= 2:
            raise mlflow.exceptions.MlflowException("503 Service Unavailable")
        return real_log_metrics(*args, **kwargs)

    def no_artifact_store(*args, **kwargs):
        raise mlflow.exceptions.MlflowException("Permission denied: '/artifacts'\nmore detail")

    real_log_metrics = mlflow.log_metrics
    monkeypatch.setattr(mlflow, "log_metrics", log_metrics_failing_twice)
    monkeypatch.setattr(bertfit.inference.mlflow_model, "log_folder", no_artifact_store)
    folder = tmp_path / "m"
    assert main(train_args(sentiment_csv, tiny_bert, folder, "--report-to", "mlflow")) == 5

    err = capsys.readouterr().err
    assert err.count("logging failed (503 Service Unavailable); training goes on") == 1  # said once
    assert "epoch 2/2" in err
    assert (f"error: MLflow at {store}: logging the results and the model failed: Permission denied: '/artifacts' "
            f"(the model folder {folder} is saved and whole)") in err  # fmt: skip
    assert "Traceback" not in err and "more detail" not in err
    assert (folder / "bertfit.json").is_file() and (folder / "model.safetensors").is_file()
    run, _ = only_run(mlflow.MlflowClient(store), "Default")
    assert run.info.status == "FAILED" and "test_accuracy" in run.data.metrics  # what could be logged was


def test_a_resumed_run_reports_into_the_run_it_continues(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    from test_resume import KILL_AFTER_STEP, run_child

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    killed = tmp_path / "killed"
    # 96 training rows in batches of 16: 6 steps an epoch; a checkpoint at step 5, killed after step 8.
    args = train_args(sentiment_csv, tiny_bert, killed, "--save-every", "5", "--report-to", "mlflow")
    assert run_child(KILL_AFTER_STEP, "8", *args).returncode == -9
    assert main(["train", "--resume", str(killed)]) == 0

    run, children = only_run(mlflow.MlflowClient(uri), "Default")
    assert children == [] and run.info.status == "FINISHED"
    steps = [m.step for m in mlflow.MlflowClient(uri).get_metric_history(run.info.run_id, "train_loss")]
    # Epoch 1 from the killed process; the resumed one re-runs step 6 from the step-5 checkpoint, then epoch 2.
    assert steps == [6, 6, 12]
    assert "test_accuracy" in run.data.metrics


def test_tune_trials_are_nested_runs(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    args = ["tune", "--train", str(sentiment_csv), "--split", "0.6,0.2,0.2", "--model", str(tiny_bert), "--trials",
            "2", "--epochs", "1", "--no-progress", "--output", str(tmp_path / "search"), "--report-to", "mlflow"]  # fmt: skip
    assert main(args) == 0

    client = mlflow.MlflowClient(uri)
    run, trials = only_run(client, "Default")
    assert run.data.tags["bertfit.command"] == "tune" and "best.learning_rate" in run.data.params
    assert sorted(trial.info.run_name for trial in trials) == ["trial 0", "trial 1"]
    assert all("learning_rate" in trial.data.params for trial in trials)
    assert {item.path for item in client.list_artifacts(run.info.run_id)} >= {"trials.json", "best_config.json"}
