"""Loading a model folder runs no code from it: no pickled weights, no architecture code unless asked."""

from __future__ import annotations

import json
import shutil

import pytest

from bertfit import Predictor
from bertfit.errors import ModelError


class _WritesAFileWhenUnpickled:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_pickled_weights_are_refused_unread(small_model_dir, tmp_path):
    import torch

    folder, marker = tmp_path / "m", tmp_path / "pickle-ran"
    shutil.copytree(small_model_dir, folder)
    (folder / "model.safetensors").unlink()
    torch.save({"weights": _WritesAFileWhenUnpickled(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match="safetensors files only"):
        Predictor.load(folder, backend="torch")  # the shared folder may hold an int8 export that auto would run
    assert not marker.exists()


def _with_architecture_code(folder, marker) -> None:
    """A config whose auto_map points at a module in the folder that leaves a marker when imported."""
    (folder / "custom_model.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from transformers import BertConfig, BertForSequenceClassification\n"
        "class CustomConfig(BertConfig):\n    pass\n"
        "class CustomModel(BertForSequenceClassification):\n    config_class = CustomConfig\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "custom_model.CustomConfig",
                          "AutoModelForSequenceClassification": "custom_model.CustomModel"}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))


def test_architecture_code_in_a_folder_runs_only_when_trusted(small_model_dir, tmp_path):
    folder, marker = tmp_path / "m", tmp_path / "code-ran"
    shutil.copytree(small_model_dir, folder)
    _with_architecture_code(folder, marker)
    try:
        Predictor.load(folder).predict(["a lovely day"])
    except ModelError:
        pass  # refusing is as good as ignoring the code
    assert not marker.exists()
    Predictor.load(folder, trust_remote_code=True)  # asked for: the folder's code runs
    assert marker.exists()
