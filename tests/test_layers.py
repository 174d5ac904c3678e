"""The house's shape: reading a model folder needs no torch, task shapes are named only in tasks/,
and a folder whose format this bertfit cannot read says so in one line."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bertfit.cli import main

SRC = Path(__file__).resolve().parents[1] / "src" / "bertfit"


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_folder_module_does_not_import_torch():
    assert "torch" not in _modules_after("import bertfit.folder")


def test_bertfit_report_does_not_import_torch(small_model_dir, tmp_path):
    page = tmp_path / "report.html"
    loaded = _modules_after(f"from bertfit.cli import main\nassert main(['report', {str(small_model_dir)!r}, "
                            f"'--output', {str(page)!r}]) == 0")  # fmt: skip
    assert "torch" not in loaded and "transformers" not in loaded
    assert '<section id="wrong">' in page.read_text(encoding="utf-8")


def test_option_mistakes_are_found_without_torch():
    code = "from bertfit.cli import main\nassert main(['serve', 'somewhere', '--port', '99999']) == 2"
    assert "torch" not in _modules_after(code)


def test_task_shapes_are_named_only_inside_tasks():
    shape_words = re.compile(r"\b(REGRESSION|MULTI_LABEL|CLASSIFICATION|SingleLabelTask|MultiLabelTask|RegressionTask)\b"
                             r"|[\"'](classification|multi-label|regression)[\"']")  # fmt: skip
    found = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        if path.relative_to(SRC).parts[0] != "tasks"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if shape_words.search(line)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"format": 99}, "format 99 is newer than this bertfit reads"),
        ({"format": None}, "no format version"),
    ],
)
def test_a_folder_of_another_format_is_refused_in_one_line(small_model_dir, tmp_path, capsys, change, expected):
    folder = tmp_path / "copy"
    shutil.copytree(small_model_dir, folder)
    manifest = json.loads((folder / "bertfit.json").read_text())
    manifest.update(change)
    (folder / "bertfit.json").write_text(json.dumps(manifest))
    assert main(["predict", str(folder), "--text", "hello"]) == 4
    error = capsys.readouterr().err
    assert expected in error and len(error.strip().splitlines()) == 1


def test_a_folder_of_format_1_still_loads(tiny_bert, sentiment_csv, tmp_path):
    """Format 1 kept a pooled classifier as the encoder's own folder and its head in head.safetensors."""
    from safetensors.torch import save_file

    from bertfit import Predictor

    folder = tmp_path / "m"
    args = ["train", "--train", str(sentiment_csv), "--split", "0.6,0.2,0.2", "--model", str(tiny_bert), "--pooling",
            "mean", "--output", str(folder), "--epochs", "1", "--no-progress", "-q"]  # fmt: skip
    assert main(args) == 0
    current = Predictor.load(folder, precision="fp32")
    old = tmp_path / "old"
    current.model.encoder.save_pretrained(old)
    current.tokenizer.save_pretrained(old)
    save_file({k: v.contiguous() for k, v in current.model.head.state_dict().items()}, old / "head.safetensors")
    manifest = json.loads((folder / "bertfit.json").read_text())
    (old / "bertfit.json").write_text(json.dumps({**manifest, "format": 1}))
    texts = ["a lovely day", "an awful evening"]
    reloaded = Predictor.load(old, precision="fp32").predict_proba(texts)
    assert (reloaded == current.predict_proba(texts)).all()
