"""A damaged model folder: every file of a trained tiny folder in turn missing, empty, cut in half and
garbled. A file prediction reads gives one line naming it (a ModelError from ``Predictor.load``, exit 4
and no traceback from ``bertfit predict``); a file it never reads changes nothing."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from bertfit import Predictor
from bertfit.cli import main
from bertfit.errors import ModelError
from conftest import sentiment_rows, write_csv

DAMAGES = ("missing", "empty", "truncated", "garbled")


@dataclass(frozen=True)
class FolderFile:
    path: str  # relative to the folder
    backend: str  # the backend that reads it (auto: the CLI's default)
    folder: str = "sequence"  # which trained folder: "sequence" (a sequence classifier) or "pooled"


READ = [
    FolderFile("bertfit.json", "torch"),
    FolderFile("config.json", "torch"),
    FolderFile("model.safetensors", "torch"),
    FolderFile("tokenizer.json", "torch"),
    FolderFile("tokenizer_config.json", "torch"),
    FolderFile("onnx/model.onnx", "onnx"),
    FolderFile("onnx/model_quantized.onnx", "onnx-int8"),
    FolderFile("config.json", "torch", "pooled"),  # a pooled folder's tokenizer is built from it too
    FolderFile("model.safetensors", "torch", "pooled"),
    FolderFile("config.json", "onnx-int8"),  # read by every backend where present
    FolderFile("tokenizer.json", "onnx-int8"),
]
NOT_READ = [
    FolderFile("README.md", "auto"),
    FolderFile("metrics.json", "auto"),
    FolderFile("training_log.csv", "auto"),
    FolderFile("predictions_test.csv", "auto"),
    FolderFile("explanations_test.json", "auto"),  # the report's, written at the end of training
    FolderFile("loss_curve.png", "auto"),
    FolderFile("confusion_matrix.png", "auto"),
    FolderFile("report.html", "auto"),
    FolderFile("onnx/parity.json", "auto"),  # auto falls back to the PyTorch model, with a warning
    FolderFile("onnx/config.json", "auto"),  # the export's copies, for Optimum
    FolderFile("onnx/tokenizer.json", "auto"),
    FolderFile("onnx/tokenizer_config.json", "auto"),
    FolderFile("modeling_bertfit.py", "torch", "pooled"),  # for plain transformers; bertfit runs its own classes
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_bert) -> dict[str, Path]:
    """A tiny sequence classifier with its int8 export, and a tiny pooled classifier; built once, never
    changed (each case damages its own copy)."""
    root = tmp_path_factory.mktemp("damage")
    data = write_csv(root / "data.csv", sentiment_rows(80))
    built = {}
    for name, extra in (("sequence", []), ("pooled", ["--freeze", "all"])):
        built[name] = root / name
        args = ["train", "--train", str(data), "--split", "0.6,0.2,0.2", "--model", str(tiny_bert), "--output",
                str(built[name]), "--epochs", "1", "--no-progress", "-q", "--no-export-onnx", *extra]  # fmt: skip
        assert main(args) == 0  # the export below is explicit: both graphs
    pytest.importorskip("onnxruntime")
    assert main(["export", str(built["sequence"]), "--onnx", "--quantize", "int8", "-q"]) == 0
    return built


def damaged_copy(folders: dict[str, Path], item: FolderFile, damage: str, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(folders[item.folder], copy)
    target = copy / item.path
    assert target.is_file(), f"the trained folder has no {item.path}: update the table"
    content = target.read_bytes()
    if damage == "missing":
        target.unlink()
    elif damage == "empty":
        target.write_bytes(b"")
    elif damage == "truncated":
        target.write_bytes(content[: len(content) // 2])
    else:  # bytes of something else: neither UTF-8, JSON, protobuf nor a safetensors header
        target.write_bytes(b"\x00\xff\xfe garbled {[" * 3)
    return copy


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("item", READ, ids=lambda f: f"{f.folder}:{f.path}:{f.backend}")
def test_a_damaged_file_that_prediction_reads_is_named_in_one_line(folders, item, damage, tmp_path, capsys):
    copy = damaged_copy(folders, item, damage, tmp_path)
    name = Path(item.path).name
    with pytest.raises(ModelError) as raised:
        Predictor.load(copy, backend=item.backend).predict(["hi"])
    assert name in str(raised.value) and "\n" not in str(raised.value)
    capsys.readouterr()
    assert main(["predict", str(copy), "--text", "hi", "--backend", item.backend]) == 4
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and name in errors[0], err


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("item", NOT_READ, ids=lambda f: f"{f.folder}:{f.path}")
def test_a_damaged_file_that_prediction_never_reads_changes_nothing(folders, item, damage, tmp_path, capsys):
    copy = damaged_copy(folders, item, damage, tmp_path)
    assert main(["predict", str(copy), "--text", "hi", "--backend", item.backend]) == 0
    assert capsys.readouterr().out.split("\t")[0] in ("neg", "pos")


def test_the_tables_cover_every_file_of_the_folders(folders):
    listed = {f.path for f in READ + NOT_READ}
    for name, folder in folders.items():
        files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
        assert files <= listed, (name, files - listed)


def test_every_backend_name_has_one_opener():
    """The names live in folder.BACKENDS (option checks read them without torch), the openers in
    inference.backends.OPENERS: a backend added to one and not the other fails here."""
    from bertfit.folder import BACKENDS
    from bertfit.inference.backends import OPENERS

    assert set(OPENERS) == set(BACKENDS)


def test_an_unknown_backend_is_a_config_error(folders):
    from bertfit.errors import ConfigError
    from bertfit.folder import read_manifest
    from bertfit.inference.backends import open_backend

    with pytest.raises(ConfigError, match="backend 'tpu': choose one of auto, torch"):
        open_backend("tpu", folders["sequence"], read_manifest(folders["sequence"]))


@pytest.mark.parametrize("damage", DAMAGES[1:])
def test_a_damaged_metrics_file_still_serves_and_the_report_names_it(folders, damage, tmp_path, capsys):
    """The server does not need metrics.json: it serves on, saying so; ``bertfit report`` does, and stops in
    one line naming it."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from bertfit.serving.app import create_app

    copy = damaged_copy(folders, FolderFile("metrics.json", "auto"), damage, tmp_path)
    with TestClient(create_app(copy, "torch")) as client:
        assert client.post("/predict", json={"texts": ["hi"]}).status_code == 200
        assert client.get("/model").status_code == 200
    capsys.readouterr()
    assert main(["report", str(copy)]) == 4
    err = capsys.readouterr().err
    assert "Traceback" not in err and "metrics.json" in err
