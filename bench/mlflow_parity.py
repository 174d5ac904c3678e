"""The MLflow hand-off, checked as a user would: start a local tracking server (SQLite, loopback), train with
``--report-to mlflow --register-model``, read the run back through ``MlflowClient``, and check that the registered
MLflow model's predictions on the test split equal ``bertfit predict``'s (labels exactly, probabilities within
1e-6), loaded in Python and served by ``mlflow models serve``.

    python -m bench.mlflow_parity [--dataset sms_spam] [--keep DIR]

Exits non-zero where anything differs. ``start_server`` and ``start_model_server`` also serve the tests."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.harness import cpu_flags, prepare_environment

SERVER_SECONDS = 90


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    """``mlflow server`` on a free loopback port, runs in SQLite under ``folder``, artifacts served by the
    server; (the process, its URI) once it answers ``/health``."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'runs.db'}",
               "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]  # fmt: skip
    return _started("mlflow server", command, folder, f"http://127.0.0.1:{port}")


def start_model_server(model_uri: str, folder: Path) -> tuple[subprocess.Popen, str]:
    """``mlflow models serve`` for ``model_uri`` (a registry or run URI: the tracking server comes from
    ``MLFLOW_TRACKING_URI``) in this environment (``--env-manager local``) on a free loopback port; (the
    process, its URI) once it answers ``/health``. It scores at ``/invocations``."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    # It execs `uvicorn` by name: this environment's, found first, whether or not the environment is activated.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return _started("mlflow models serve", command, folder, f"http://127.0.0.1:{port}", {**os.environ, "PATH": path})


def score_served(uri: str, texts: list[str]) -> list[dict]:
    """The served model's answers for ``texts`` (one record per text), as any HTTP client asks for them."""
    request = urllib.request.Request(f"{uri}/invocations", data=json.dumps({"inputs": texts}).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.load(answer)["predictions"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _started(name: str, command: list[str], folder: Path, uri: str,
             env: dict | None = None) -> tuple[subprocess.Popen, str]:  # fmt: skip
    """``command`` started, its output in ``folder``/<name>.log; (the process, ``uri``) once it answers ``/health``."""
    log = folder / f"{name.replace(' ', '-')}.log"
    server = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=folder, env=env)
    deadline = time.time() + SERVER_SECONDS
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"{name} exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            return server, uri
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"{name} did not answer within {SERVER_SECONDS} s:\n{log.read_text()[-3000:]}")


def check(dataset: str, folder: Path) -> list[str]:
    """Train ``dataset`` reporting to a fresh server in ``folder``; the differences found (none: all good)."""
    import mlflow
    import pandas as pd

    from bertfit.cli import main

    server, uri = start_server(folder)
    os.environ.update(
        MLFLOW_TRACKING_URI=uri,
        MLFLOW_EXPERIMENT_NAME=f"bertfit-{dataset}",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    )
    model_dir, name = folder / dataset, f"bertfit-{dataset}"
    try:
        started = time.perf_counter()
        if main(["train", "--dataset", dataset, "--output", str(model_dir), "--report-to", "mlflow",
                 "--register-model", name, "--no-progress"]) != 0:  # fmt: skip
            return ["training failed"]
        print(f"trained and logged in {time.perf_counter() - started:.0f} s (CPU flags: {cpu_flags()})")
        client = mlflow.MlflowClient(uri)
        run = client.search_runs([client.get_experiment_by_name(f"bertfit-{dataset}").experiment_id])[0]
        epochs = client.get_metric_history(run.info.run_id, "validation_loss")
        artifacts = [item.path for item in client.list_artifacts(run.info.run_id, "report")]
        print(f"run {run.info.run_id}: {len(run.data.params)} params, {len(run.data.metrics)} metrics "
              f"(validation_loss at steps {[m.step for m in epochs]}), artifacts {artifacts}, "
              f"test accuracy {run.data.metrics.get('test_accuracy')}")  # fmt: skip

        test = pd.read_csv(model_dir / "predictions_test.csv")
        texts = folder / "test_texts.csv"
        test[["text"]].to_csv(texts, index=False)
        predicted = folder / "bertfit_predict.csv"
        if main(["predict", str(model_dir), "--input", str(texts), "--output", str(predicted), "-q"]) != 0:
            return ["bertfit predict failed"]
        expected = pd.read_csv(predicted)
        answered = mlflow.pyfunc.load_model(f"models:/{name}/latest").predict(test["text"].tolist())
        problems = compare(answered, expected, f"MLflow model models:/{name}/latest")
        served, served_uri = start_model_server(f"models:/{name}/latest", folder)
        try:
            records = pd.DataFrame(score_served(served_uri, test["text"].tolist()))
        finally:
            served.terminate()
            served.wait(timeout=30)
        problems += compare(records, expected, "`mlflow models serve`")
        return problems
    finally:
        server.terminate()
        server.wait(timeout=30)


def compare(answered, expected, what: str) -> list[str]:
    """How ``answered`` (label and probability columns) differs from ``bertfit predict``'s ``expected``; says so."""
    import numpy as np

    differing = int((answered["predicted_label"].astype(str) != expected["predicted_label"].astype(str)).sum())
    scores = [c for c in expected.columns if c.startswith("prob_")]
    gap = float(np.abs(answered[scores].to_numpy() - expected[scores].to_numpy()).max())
    print(f"{what} against `bertfit predict` on {len(expected)} test rows: {len(expected) - differing} labels "
          f"equal, probabilities within {gap:.1e}")  # fmt: skip
    problems = [f"{what}: {differing} of {len(expected)} labels differ"] if differing else []
    return problems + ([f"{what}: probabilities differ by up to {gap:.2e}"] if gap > 1e-6 else [])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="sms_spam")
    parser.add_argument("--keep", help="a folder to keep the server's store and the model in (default: temporary)")
    args = parser.parse_args(argv)
    prepare_environment()
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        problems = check(args.dataset, Path(args.keep).resolve())
    else:
        with tempfile.TemporaryDirectory() as folder:
            problems = check(args.dataset, Path(folder))
    for problem in problems:
        print(f"DIFFERS: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
