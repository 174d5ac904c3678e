"""`--arrow`: training rows kept on disk as memory-mapped Arrow train exactly like rows read into
memory, are checked row by row as they are read, and are read once per file."""

from __future__ import annotations

import csv
import json
import logging

import pytest

import conftest
from bertfit.cli import main
from conftest import sentiment_rows, write_csv


@pytest.fixture(autouse=True)
def arrow_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("BERTFIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "arrow"


@pytest.fixture
def split_files(tmp_path):
    rows = sentiment_rows(240)
    return [write_csv(tmp_path / f"{name}.csv", part)
            for name, part in (("train", rows[:160]), ("validation", rows[160:200]), ("test", rows[200:]))]  # fmt: skip


def _train(files, model, output, *extra) -> list[str]:
    train, validation, test = files
    return conftest.train_args(train, model, output, "--validation", validation, "--test", test, *extra, split=None,
                               base=("--batch-size", "16", "--epochs", "3", "--learning-rate", "3e-3",
                                     "--train-word-embeddings", "--pooling", "mean"))  # fmt: skip


def _log_without_seconds(folder) -> list[dict]:
    with open(folder / "training_log.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def _same_runs(memory, arrow) -> None:
    """Same metrics, training log and test predictions, row for row."""
    metrics = [json.loads((folder / "metrics.json").read_text()) for folder in (memory, arrow)]
    assert metrics[0] == metrics[1]
    assert _log_without_seconds(memory) == _log_without_seconds(arrow)
    predictions = [(folder / "predictions_test.csv").read_text() for folder in (memory, arrow)]
    assert predictions[0] == predictions[1] and predictions[0].count("\n") > 10


@pytest.mark.parametrize("strategy", [[], ["--freeze", "all"]], ids=["full", "frozen"])
def test_arrow_trains_exactly_like_memory(strategy, tiny_bert, split_files, tmp_path, arrow_cache, monkeypatch):
    from bertfit.data import arrow

    monkeypatch.setattr(arrow, "PIECE_ROWS", 30)  # several pieces per split
    assert main(_train(split_files, tiny_bert, tmp_path / "memory", *strategy)) == 0
    assert main(_train(split_files, tiny_bert, tmp_path / "arrow", "--arrow", *strategy)) == 0
    _same_runs(tmp_path / "memory", tmp_path / "arrow")
    manifest = json.loads((tmp_path / "arrow" / "bertfit.json").read_text())
    assert manifest["data"]["rows"] == {"train": 160, "validation": 40, "test": 40}
    assert manifest["data"]["profile"]["labels"]["train"] == {"pos": 80, "neg": 80}
    # Every file's rows and tokens sit in the cache, not beside the data or the model.
    assert len(list(arrow_cache.glob("*-*.arrow"))) == 6


def test_arrow_split_and_dropped_duplicates_match_memory(tiny_bert, tmp_path, monkeypatch):
    from bertfit.data import arrow

    monkeypatch.setattr(arrow, "PIECE_ROWS", 30)
    rows = sentiment_rows(200)
    whole = write_csv(tmp_path / "whole.csv", rows + rows[:12])  # 12 texts twice: some land in train and test
    args = ["train", "--train", str(whole), "--split", "0.6,0.2,0.2", "--on-duplicates", "drop", "--model",
            str(tiny_bert), "--batch-size", "16", "--epochs", "2", "--learning-rate", "3e-3", "--pooling", "mean",
            "--no-progress"]  # fmt: skip
    assert main([*args, "--output", str(tmp_path / "memory")]) == 0
    assert main([*args, "--output", str(tmp_path / "arrow"), "--arrow"]) == 0
    _same_runs(tmp_path / "memory", tmp_path / "arrow")
    manifest = json.loads((tmp_path / "arrow" / "bertfit.json").read_text())
    assert sum(manifest["data"]["rows"].values()) < 212  # duplicates were dropped from validation/test


def test_arrow_sentence_pairs_train_like_memory(tiny_bert, tmp_path):
    rows = [(f"{text} first", f"second {i}", label) for i, (text, label) in enumerate(sentiment_rows(120))]
    files = [write_csv(tmp_path / f"{name}.csv", part, header=("a", "b", "label"))
             for name, part in (("train", rows[:80]), ("validation", rows[80:100]), ("test", rows[100:]))]  # fmt: skip
    pairs = ["--text-column", "a", "--text-pair-column", "b", "--label-column", "label", "--epochs", "1"]
    assert main(_train(files, tiny_bert, tmp_path / "memory", *pairs)) == 0
    assert main(_train(files, tiny_bert, tmp_path / "arrow", *pairs, "--arrow")) == 0
    metrics = [json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("memory", "arrow")]
    assert metrics[0] == metrics[1]


def test_arrow_names_the_row_of_a_bad_cell_past_the_first_chunk(monkeypatch, tmp_path, capsys, arrow_cache,
                                                                tiny_bert):  # fmt: skip
    from bertfit.data import arrow

    monkeypatch.setattr(arrow, "READ_CHUNK_ROWS", 50)  # so row 123 lies in the third chunk
    rows = sentiment_rows(200)
    rows[122] = ("   ", "pos")
    train = write_csv(tmp_path / "train.csv", rows)
    assert main(["train", "--train", str(train), "--model", str(tiny_bert), "--arrow"]) == 3
    assert f"{train}, row 123, column 'text': empty or missing text" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    assert not list(arrow_cache.glob("*.arrow"))  # the half-written copy is gone, so a fixed file is read afresh


def test_arrow_regression_labels_are_checked_before_a_model_loads(tmp_path, capsys, tiny_bert):
    rows = [(text, f"{i / 7:.3f}") for i, (text, _) in enumerate(sentiment_rows(60))]
    rows[41] = (rows[41][0], "tall")
    train = write_csv(tmp_path / "train.csv", rows)
    assert main(["train", "--train", str(train), "--model", str(tiny_bert), "--task", "regression", "--arrow"]) == 3
    assert "row 42: regression labels must be numbers, got 'tall'" in capsys.readouterr().err


def test_arrow_reads_a_file_once(tiny_bert, split_files, tmp_path, arrow_cache, caplog):
    from bertfit.data.arrow import read_arrow_split

    first = read_arrow_split(split_files[0])
    written = next(arrow_cache.glob("train-*.arrow")).stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="bertfit.data.arrow"):
        again = read_arrow_split(split_files[0])
    assert "reusing its Arrow copy" in caplog.text
    assert next(arrow_cache.glob("train-*.arrow")).stat().st_mtime_ns == written
    assert list(again.texts) == list(first.texts) == [text for text, _ in sentiment_rows(240)[:160]]


def test_arrow_refuses_what_needs_the_rows_in_memory(split_files, capsys):
    train = str(split_files[0])
    assert main(["train", "--dataset", "cola", "--arrow"]) == 2
    assert "--arrow reads --train/--validation/--test files" in capsys.readouterr().err
    assert main(["train", "--train", train, "--folds", "3", "--arrow"]) == 2
    assert "--arrow trains on rows kept on disk: drop --folds" in capsys.readouterr().err


def test_evaluate_in_arrow_pieces_scores_like_memory(monkeypatch, small_model_dir, tmp_path, capsys):
    from bertfit.data import arrow

    monkeypatch.setattr(arrow, "PIECE_ROWS", 7)  # 50 rows: eight pieces, the last one short
    data = write_csv(tmp_path / "scored.csv", sentiment_rows(50, seed=3))
    # torch: an int8 ONNX export (the auto backend's choice) is not exact across batch compositions
    evaluate = ["evaluate", str(small_model_dir), "--data", str(data), "--json", "--backend", "torch"]
    assert main(evaluate) == 0
    in_memory = json.loads(capsys.readouterr().out)
    assert main([*evaluate, "--arrow"]) == 0
    in_pieces = json.loads(capsys.readouterr().out)
    assert in_pieces.pop("loss") == pytest.approx(in_memory.pop("loss"), abs=1e-6)
    assert in_pieces == in_memory and sum(map(sum, in_memory["confusion_matrix"])) == 50


def test_a_large_training_file_read_into_memory_suggests_arrow(monkeypatch, split_files, caplog):
    from bertfit import DataConfig
    from bertfit.data import load

    train, validation, test = map(str, split_files)
    monkeypatch.setattr(load, "LARGE_FILE_BYTES", 1000)  # the 160-row file is about 8 kB
    with caplog.at_level(logging.WARNING, logger="bertfit.data.load"):
        load.load_data(DataConfig(train=train, validation=validation, test=test))
    assert "train.csv is 0 MB; read into memory it can take tens of times that, and --arrow keeps it" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bertfit.data.load"):
        load.load_data(DataConfig(train=train, validation=validation, test=test, arrow=True))
    assert "--arrow keeps it" not in caplog.text
