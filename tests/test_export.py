"""ONNX export: the exported graphs predict what the PyTorch model does, through the CLI and Predictor."""

import json

import numpy as np
import pytest

from bertfit.cli import main
from conftest import sentiment_rows, write_csv

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def trained(tiny_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    data = write_csv(folder / "data.csv", sentiment_rows(160))
    output = folder / "model"
    args = ["train", "--train", str(data), "--split", "0.6,0.2,0.2", "--model", str(tiny_models["bert"]),
            "--output", str(output), "--epochs", "2", "--no-progress", "-q"]  # fmt: skip
    assert main(args) == 0
    return output


def test_export_writes_graphs_and_a_parity_report(trained, capsys):
    assert main(["export", str(trained), "--onnx", "--quantize", "int8"]) == 0
    printed = capsys.readouterr().out
    assert "agreement" in printed and "onnx-int8" in printed
    report = json.loads((trained / "onnx" / "parity.json").read_text())
    assert report["rows"] == 32  # the validation split of the 0.6/0.2/0.2 split of 160 rows
    assert report["onnx"]["agreement"] == 1.0
    assert report["onnx"]["max_output_difference"] < 1e-4
    assert report["onnx-int8"]["agreement"] >= 0.9
    assert {p.name for p in (trained / "onnx").iterdir()} == {"model.onnx", "model.int8.onnx", "parity.json"}


def test_predictor_on_the_export_matches_torch(trained):
    from bertfit import Predictor

    main(["export", str(trained), "--onnx", "-q"])
    texts = [t for t, _ in sentiment_rows(50, seed=9)] + ["x", "a much longer text " * 20]
    reference = Predictor.load(trained, precision="fp32").predict_proba(texts)
    exported = Predictor.load(trained, backend="onnx").predict_proba(texts)
    assert exported.shape == reference.shape
    np.testing.assert_allclose(exported, reference, atol=1e-4)


def test_predict_and_evaluate_take_a_backend(trained, tmp_path, capsys):
    main(["export", str(trained), "--onnx", "-q"])
    capsys.readouterr()
    assert main(["predict", str(trained), "--backend", "onnx", "--text", "a lovely day"]) == 0
    assert capsys.readouterr().out.split("\t")[0] in ("neg", "pos")
    data = write_csv(tmp_path / "test.csv", sentiment_rows(20, seed=3))
    results = {}
    for backend in ("torch", "onnx"):
        assert main(["evaluate", str(trained), "--data", str(data), "--backend", backend, "--json"]) == 0
        results[backend] = json.loads(capsys.readouterr().out)
    assert results["onnx"]["confusion_matrix"] == results["torch"]["confusion_matrix"]


def test_missing_export_names_the_command(tiny_models, trained, capsys):
    import shutil

    shutil.rmtree(trained / "onnx", ignore_errors=True)
    assert main(["predict", str(trained), "--backend", "onnx-int8", "--text", "hi"]) == 4
    assert f"run: bertfit export {trained} --onnx --quantize int8" in capsys.readouterr().err


def test_parity_data_with_unknown_labels_is_refused_before_exporting(trained, tmp_path, capsys):
    import shutil

    shutil.rmtree(trained / "onnx", ignore_errors=True)
    data = write_csv(tmp_path / "odd.csv", [("fine text", "pos"), ("odd text", "meh")])
    assert main(["export", str(trained), "--onnx", "--data", str(data)]) == 3
    assert "label(s) 'meh' (row 2) are not among the model's labels: neg, pos" in capsys.readouterr().err
    assert not (trained / "onnx").exists()
