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
    names = {p.name for p in (trained / "onnx").iterdir()}
    assert {"model.onnx", "model_quantized.onnx", "parity.json", "config.json", "tokenizer.json"} <= names


def test_the_export_folder_has_what_optimum_reads(trained):
    """Optimum's ORTModelForSequenceClassification cannot be installed beside transformers 5 (its ONNX
    package pins transformers < 4.58), so this reads the folder as it does: the config's labels, the
    folder's own tokenizer, and the graph's logits output, from the onnx folder alone."""
    import onnxruntime
    from transformers import AutoConfig, AutoTokenizer

    from bertfit import Predictor

    main(["export", str(trained), "--onnx", "--quantize", "int8", "-q"])
    onnx_dir = trained / "onnx"
    config, tokenizer = AutoConfig.from_pretrained(onnx_dir), AutoTokenizer.from_pretrained(onnx_dir)
    assert config.id2label == {0: "neg", 1: "pos"} and config.problem_type == "single_label_classification"
    texts = [t for t, _ in sentiment_rows(30, seed=4)]
    for backend, name in (("onnx", "model.onnx"), ("onnx-int8", "model_quantized.onnx")):
        session = onnxruntime.InferenceSession(str(onnx_dir / name), providers=["CPUExecutionProvider"])
        assert [o.name for o in session.get_outputs()] == ["logits"]
        wanted = {i.name for i in session.get_inputs()}
        batch = tokenizer(texts, padding=True, return_tensors="np")
        logits = session.run(None, {k: v for k, v in batch.items() if k in wanted})[0]
        labels = [config.id2label[i] for i in logits.argmax(axis=1)]
        predicted = Predictor.load(trained, backend=backend).predict(texts)
        assert labels == [p.label for p in predicted]


def test_auto_runs_the_fastest_export_whose_parity_held(trained, capsys):
    from bertfit import Predictor

    main(["export", str(trained), "--onnx", "--quantize", "int8", "-q"])
    parity = trained / "onnx" / "parity.json"
    report = json.loads(parity.read_text())

    def chosen(int8_difference: float, fp32_output_difference: float = 1e-6, **options) -> str:
        report["onnx-int8"]["difference"] = int8_difference
        report["onnx"]["max_output_difference"] = fp32_output_difference
        parity.write_text(json.dumps(report))
        return Predictor.load(trained, **options).backend.name

    assert chosen(-0.004) == "onnx-int8"
    capsys.readouterr()
    assert main(["predict", str(trained), "--text", "a lovely day"]) == 0  # the CLI's default is auto too
    said = "predicting with the ONNX export onnx/model_quantized.onnx (parity: accuracy -0.40 points"
    assert said in capsys.readouterr().err
    assert chosen(-0.006) == "onnx"  # int8 lost more than half a point; the fp32 graph matched PyTorch
    assert chosen(-0.006, fp32_output_difference=2e-4) == "torch"  # neither held
    assert chosen(0.0, precision="bf16") == "torch"  # a torch precision asks for the PyTorch model
    assert chosen(0.0, backend="torch") == "torch"
    (trained / "onnx" / "model_quantized.onnx").unlink()
    assert chosen(0.0) == "onnx"  # only graphs that are there count
    parity.unlink()
    assert Predictor.load(trained).backend.name == "torch"  # no parity check, no export


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


@pytest.mark.exports_onnx
def test_train_leaves_the_fp32_graph_that_prediction_runs(tiny_models, tmp_path):
    """By default the folder holds the fp32 graph, checked on validation, and ``predict`` runs it with
    PyTorch's outputs to 1e-4; ``--no-export-onnx`` leaves the PyTorch model alone."""
    from bertfit import Predictor

    data = write_csv(tmp_path / "data.csv", sentiment_rows(120))
    common = ["train", "--train", str(data), "--split", "0.6,0.2,0.2", "--model", str(tiny_models["bert"]),
              "--epochs", "1", "--no-progress", "-q"]  # fmt: skip
    assert main([*common, "--output", str(tmp_path / "fast")]) == 0
    report = json.loads((tmp_path / "fast" / "onnx" / "parity.json").read_text())
    assert sorted(p.name for p in (tmp_path / "fast" / "onnx").glob("*.onnx")) == ["model.onnx"]
    assert "onnx-int8" not in report and report["onnx"]["max_output_difference"] <= 1e-4
    predictor = Predictor.load(tmp_path / "fast")
    assert predictor.backend.name == "onnx"
    texts = [t for t, _ in sentiment_rows(20, seed=3)]
    reference = Predictor.load(tmp_path / "fast", backend="torch").predict_proba(texts)
    np.testing.assert_allclose(predictor.predict_proba(texts), reference, atol=1e-4)
    assert main([*common, "--output", str(tmp_path / "plain"), "--no-export-onnx"]) == 0
    assert not (tmp_path / "plain" / "onnx").exists()
    assert Predictor.load(tmp_path / "plain").backend.name == "torch"


@pytest.mark.exports_onnx
@pytest.mark.parametrize("failure", ["does not hold", "raises"])
def test_an_export_that_fails_or_misses_parity_leaves_the_pytorch_model(failure, tiny_models, tmp_path, monkeypatch,
                                                                        capsys):  # fmt: skip
    from bertfit import Predictor

    if failure == "raises":

        def broken(*args, **kwargs):
            raise RuntimeError("the tracer gave up\nmore detail")

        monkeypatch.setattr("bertfit.export._export_graph", broken)
        said = "no ONNX export (RuntimeError: the tracer gave up); predict runs the PyTorch model"
    else:
        monkeypatch.setattr("bertfit.inference.backends.FP32_MAX_DIFFERENCE", -1.0)
        said = "the ONNX export's outputs moved"
    data = write_csv(tmp_path / "data.csv", sentiment_rows(120))
    args = ["train", "--train", str(data), "--split", "0.6,0.2,0.2", "--model", str(tiny_models["bert"]),
            "--epochs", "1", "--no-progress", "-q", "--output", str(tmp_path / "m")]  # fmt: skip
    assert main(args) == 0
    assert said in capsys.readouterr().err
    assert not (tmp_path / "m" / "onnx").exists() and not list(tmp_path.glob("m/.onnx*"))
    assert Predictor.load(tmp_path / "m").backend.name == "torch"
