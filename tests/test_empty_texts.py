"""An empty or whitespace-only text, one rule at every entry point (docs/guide.md, "Empty texts"): refused,
never scored, naming its position counted from 0 (a file names its row); the server answers 422."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from bertfit.cli import main
from bertfit.errors import DataError

pytest.importorskip("fastapi")
pytest.importorskip("httpx")


@dataclass(frozen=True)
class Entry:
    name: str
    call: Callable  # (context) -> (code or status, message)
    expected: int  # exit code, HTTP status, or 0 for a DataError from Python
    words: tuple[str, ...]


def _python(method: str, texts: list[str]):
    def call(context):
        with pytest.raises(DataError) as raised:
            getattr(context["predictor"], method)(texts)
        return 0, str(raised.value)

    return call


def _cli(*argv: str, file: str | None = None):
    def call(context):
        if file is not None:
            (context["tmp"] / "in.csv").write_text(file, encoding="utf-8")
        args = [a.format(model=context["model"], tmp=context["tmp"]) for a in ("predict", "{model}", *argv)]
        code = main(args)
        err = context["capsys"].readouterr().err
        assert "Traceback" not in err
        return code, [line for line in err.splitlines() if line.startswith("error:")][-1]

    return call


def _http(path: str, body: dict):
    def call(context):
        answer = context["client"].post(path, json=body)
        return answer.status_code, answer.json()["error"]

    return call


def _v2(texts: list[str]):
    return _http("/v2/models/m/infer", {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES",
                                                    "data": texts}]})  # fmt: skip


ENTRIES = [
    Entry("Predictor.predict", _python("predict", ["fine", "  "]), 0, ("texts[1]", "empty text")),
    Entry("Predictor.predict_proba", _python("predict_proba", ["", "fine"]), 0, ("texts[0]", "empty text")),
    Entry("Predictor.predict, several", _python("predict", ["\t", "ok", "\n "]), 0, ("texts[0], texts[2]",)),
    Entry("predict --text", _cli("--text", "fine", "--text", " "), 3, ("--text[1]", "empty text")),
    Entry("predict --text ''", _cli("--text", ""), 3, ("--text[0]", "empty text")),
    Entry(
        "predict --input",
        _cli("--input", "{tmp}/in.csv", "--output", "{tmp}/out.csv", file="text\nfine\n   \n"),
        3,
        ("in.csv", "row 2", "empty or missing text", "--skip-empty"),
    ),
    Entry("POST /predict texts", _http("/predict", {"texts": ["fine", " "]}), 422, ("texts[1]", "empty text")),
    Entry("POST /predict text", _http("/predict", {"text": ""}), 422, ("texts[0]", "empty text")),
    Entry("POST /predict TEI inputs", _http("/predict", {"inputs": ["ok", "\t"]}), 422, ("inputs[1]", "empty text")),
    Entry("POST / (Inference API)", _http("/", {"inputs": "  "}), 422, ("inputs[0]", "empty text")),
    Entry("POST /v2/models/m/infer", _v2(["ok", ""]), 422, ("text[1]", "empty text")),
]


@pytest.fixture(scope="module")
def served(small_model_dir, tmp_path_factory):
    """The shared tiny model behind the server, under the name ``m`` (the v2 routes take the folder's name)."""
    import shutil

    from fastapi.testclient import TestClient

    from bertfit import Predictor
    from bertfit.serving.app import create_app

    folder = tmp_path_factory.mktemp("served") / "m"
    shutil.copytree(small_model_dir, folder)
    with TestClient(create_app(folder, "torch")) as client:
        yield {"model": str(folder), "client": client, "predictor": Predictor.load(folder, backend="torch")}


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_an_empty_text_is_refused_the_same_way_everywhere(entry, served, tmp_path, capsys):
    context = {**served, "tmp": tmp_path, "capsys": capsys}
    capsys.readouterr()
    code, message = entry.call(context)
    assert code == entry.expected, message
    for word in entry.words:
        assert word in message, (word, message)
    assert not (tmp_path / "out.csv").exists()


def test_the_cli_refuses_an_empty_text_before_loading_the_model(small_model_dir, monkeypatch, capsys):
    from bertfit.inference.predictor import Predictor

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(Predictor, "load", no_loading)
    assert main(["predict", str(small_model_dir), "--text", "fine", "--text", "  "]) == 3
    assert "--text[1]: empty text" in capsys.readouterr().err


def test_skip_empty_still_leaves_file_rows_unpredicted(small_model_dir, tmp_path):
    import pandas as pd

    source = tmp_path / "in.csv"
    source.write_text("text\nfine day\n  \nlovely\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    assert main(["predict", str(small_model_dir), "--input", str(source), "--output", str(out), "--skip-empty"]) == 0
    assert pd.read_csv(out)["predicted_label"].isna().tolist() == [False, True, False]
