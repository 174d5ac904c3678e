"""Second texts, one rule (``Manifest.check_pairs``) at every entry point and in both directions: a model
trained on text pairs refuses texts without their second texts (it would score half of each input), a
single-text model refuses second texts. Python gets a ConfigError, the CLI exit 2 before the model loads,
the server 422."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bertfit.cli import main
from bertfit.errors import ConfigError
from conftest import sentiment_rows, write_csv

PAIRS = "trained on text pairs"
SINGLE = "trained on single texts"


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_bert, small_model_dir) -> dict[str, Path]:
    """A tiny pair model, trained once here, beside the shared single-text model."""
    root = tmp_path_factory.mktemp("pairs")
    rows = [(text, f"and then {i}", label) for i, (text, label) in enumerate(sentiment_rows(80))]
    data = write_csv(root / "pairs.csv", rows, header=("text", "text_pair", "label"))
    args = ["train", "--train", str(data), "--text-pair-column", "text_pair", "--split", "0.6,0.2,0.2", "--model",
            str(tiny_bert), "--output", str(root / "pair"), "--epochs", "1", "--no-progress", "-q"]  # fmt: skip
    assert main(args) == 0
    return {"pair": root / "pair", "single": small_model_dir}


@pytest.fixture(scope="module")
def predictors(models):
    from bertfit import Predictor

    return {name: Predictor.load(folder, backend="torch") for name, folder in models.items()}


@dataclass(frozen=True)
class Call:
    name: str
    model: str  # "pair" or "single"
    run: Callable  # (context) -> None, raising ConfigError
    words: tuple[str, ...]


def _files(tmp: Path) -> dict[str, Path]:
    return {
        "texts": write_csv(tmp / "texts.csv", [("a lovely day",)], header=("text",)),
        "pairs": write_csv(tmp / "pairs.csv", [("a lovely day", "indeed")], header=("text", "text_pair")),
        "labelled": write_csv(tmp / "l.csv", [("a lovely day", "pos"), ("awful", "neg")]),
        "labelled pairs": write_csv(
            tmp / "lp.csv", [("a", "lovely", "pos"), ("b", "awful", "neg")], header=("text", "text_pair", "label")
        ),  # fmt: skip
    }


def _predict_file(name: str, pair_column: str | None):
    def run(c):
        from bertfit.inference import predict_file

        predict_file(c["predictor"], c["files"][name], c["tmp"] / "out.csv", pair_column=pair_column)

    return run


def _evaluate(name: str, pair_column: str | None):
    def run(c):
        from bertfit.evaluation.scoring import evaluate_file

        evaluate_file(c["folder"], str(c["files"][name]), pair_column=pair_column)

    return run


LIBRARY = [
    Call("Predictor.predict, no pairs", "pair", lambda c: c["predictor"].predict(["one text"]), (PAIRS, "pairs")),
    Call("Predictor.predict_proba, no pairs", "pair", lambda c: c["predictor"].predict_proba(["a"]), (PAIRS,)),
    Call("Predictor.predict, pairs", "single", lambda c: c["predictor"].predict(["a"], ["b"]), (SINGLE, "pairs")),
    Call("predict_file, no pair column", "pair", _predict_file("texts", None), (PAIRS, "--text-pair-column")),
    Call("predict_file, a pair column", "single", _predict_file("pairs", "text_pair"), (SINGLE,)),
    Call("evaluate_file, no pair column", "pair", _evaluate("labelled", None), (PAIRS, "--text-pair-column")),
    Call("evaluate_file, a pair column", "single", _evaluate("labelled pairs", "text_pair"), (SINGLE,)),
]


@pytest.mark.parametrize("call", LIBRARY, ids=[c.name for c in LIBRARY])
def test_the_library_refuses_the_wrong_kind_of_input(call, models, predictors, tmp_path):
    context = {"predictor": predictors[call.model], "folder": str(models[call.model]), "files": _files(tmp_path),
               "tmp": tmp_path}  # fmt: skip
    with pytest.raises(ConfigError) as raised:
        call.run(context)
    for word in call.words:
        assert word in str(raised.value)
    assert not (tmp_path / "out.csv").exists()


CLI = [
    ("pair", ["predict", "{model}", "--text", "one text"], (PAIRS, "give --text-pair")),
    ("single", ["predict", "{model}", "--text", "a", "--text-pair", "b"], (SINGLE, "drop --text-pair")),
    ("pair", ["predict", "{model}", "--input", "{texts}", "--output", "{tmp}/o.csv"], (PAIRS, "--text-pair-column")),
    (
        "single",
        ["predict", "{model}", "--input", "{pairs}", "--output", "{tmp}/o.csv", "--text-pair-column", "text_pair"],
        (SINGLE,),
    ),  # fmt: skip
    ("pair", ["predict", "{model}", "--input", "{tmp}/shards", "--output", "{tmp}/out"], (PAIRS,)),
    ("pair", ["evaluate", "{model}", "--data", "{labelled}"], (PAIRS, "--text-pair-column")),
    ("single", ["evaluate", "{model}", "--data", "{labelled pairs}", "--text-pair-column", "text_pair"], (SINGLE,)),
]


@pytest.mark.parametrize("model, argv, words", CLI, ids=[" ".join(a[:1] + a[2:4]) + f" ({m})" for m, a, _ in CLI])
def test_the_cli_refuses_it_in_one_line_before_loading_the_model(model, argv, words, models, tmp_path, capsys,
                                                                 monkeypatch):  # fmt: skip
    from bertfit.inference.predictor import Predictor

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    files = _files(tmp_path)
    (tmp_path / "shards").mkdir()
    write_csv(tmp_path / "shards" / "a.csv", [("a lovely day",)], header=("text",))
    places = {"model": str(models[model]), "tmp": str(tmp_path), **{k: str(v) for k, v in files.items()}}
    monkeypatch.setattr(Predictor, "load", no_loading)
    capsys.readouterr()
    assert main([arg.format(**places) for arg in argv]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err
    for word in words:
        assert word in errors[0], (word, errors[0])


@pytest.fixture(scope="module")
def pair_client(models):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from bertfit.serving.app import create_app

    with TestClient(create_app(models["pair"], "torch")) as client:
        yield client


SERVER = [
    ("/predict", {"text": "one text"}, (PAIRS, "text_pair / text_pairs")),
    ("/predict", {"texts": ["a", "b"]}, (PAIRS,)),
    ("/predict", {"inputs": ["a"]}, (PAIRS, "bertfit's body")),
    ("/", {"inputs": "a"}, (PAIRS,)),
    (
        "/v2/models/pair/infer",
        {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}]},
        (PAIRS, "a text_pair tensor"),
    ),  # fmt: skip
]


@pytest.mark.parametrize("path, body, words", SERVER, ids=[f"{p} {sorted(b)}" for p, b, _ in SERVER])
def test_the_server_answers_422_for_a_pair_model_sent_single_texts(pair_client, path, body, words):
    answer = pair_client.post(path, json=body)
    assert answer.status_code == 422
    for word in words:
        assert word in answer.json()["error"]


def test_a_pair_model_still_predicts_pairs_everywhere(models, predictors, pair_client, tmp_path, capsys):
    [one] = predictors["pair"].predict(["a lovely day"], ["indeed"])
    assert one.label in ("neg", "pos")
    assert main(["predict", str(models["pair"]), "--text", "a lovely day", "--text-pair", "indeed"]) == 0
    answer = pair_client.post("/predict", json={"text": "a lovely day", "text_pair": "indeed"})
    assert answer.status_code == 200 and answer.json()["predictions"][0]["label"] == one.label


def test_explain_follows_the_rule_and_scores_the_second_texts_words(predictors):
    from bertfit.errors import ConfigError

    (found,) = predictors["pair"].explain(["a lovely day"], ["and then  again!"])
    assert [w for w, _ in found.words] == ["a", "lovely", "day"]
    assert [w for w, _ in found.pair_words] == ["and", "then", "again!"]
    with pytest.raises(ConfigError, match=PAIRS):
        predictors["pair"].explain(["a lovely day"])
    with pytest.raises(ConfigError):
        predictors["single"].explain(["a lovely day"], ["indeed"])
