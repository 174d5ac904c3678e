"""The CLI end to end on tiny random models: train -> folder -> reload -> predict/evaluate, and bad input."""

import csv
import json
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

import conftest
from bertfit.cli import main
from conftest import sentiment_rows, write_csv

FOLDER_FILES = {
    "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "bertfit.json", "metrics.json",
    "training_log.csv", "predictions_test.csv", "loss_curve.png", "confusion_matrix.png", "README.md",
}  # fmt: skip


train_args = partial(conftest.train_args, base=("--epochs", "2", "--batch-size", "16"))


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory) -> Path:
    """One folder trained with this module's usual flags, for the tests that only read it."""
    folder = tmp_path_factory.mktemp("cli")
    data = write_csv(folder / "sentiment.csv", sentiment_rows(160))
    assert main(train_args(data, tiny_bert, folder / "m", "-q")) == 0
    return folder / "m"


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta", "deberta-v2"])
def test_train_writes_a_complete_folder(kind, tiny_models, sentiment_csv, tmp_path, capsys):
    output = tmp_path / "model"
    assert main(train_args(sentiment_csv, tiny_models[kind], output)) == 0
    printed = capsys.readouterr().out
    assert "test: 32 rows  accuracy" in printed and f"saved {output}" in printed
    assert FOLDER_FILES <= {p.name for p in output.iterdir()}
    config = json.loads((output / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"} and config["label2id"] == {"neg": 0, "pos": 1}
    metrics = json.loads((output / "metrics.json").read_text())
    assert set(metrics) == {"validation", "test"}
    for key in ("accuracy", "mcc", "f1_macro", "per_class", "confusion_matrix"):
        assert key in metrics["test"]
    assert sum(map(sum, metrics["test"]["confusion_matrix"])) == 32
    manifest = json.loads((output / "bertfit.json").read_text())
    assert manifest["labels"] == ["neg", "pos"] and manifest["versions"]["torch"]
    assert not list(tmp_path.glob(".model.*")), "no staging folder may be left behind"


def test_reloaded_folder_predicts_exactly_what_was_trained(tiny_bert, sentiment_csv, tmp_path):
    from bertfit import DataConfig, TrainConfig, train

    config = TrainConfig(data=DataConfig(train=str(sentiment_csv), split="0.6,0.2,0.2"), model=str(tiny_bert),
                         output=str(tmp_path / "m"), epochs=2, progress=False)  # fmt: skip
    result = train(config)
    texts = [t for t, _ in sentiment_rows(40, seed=5)]
    in_memory = result.predictor.predict_proba(texts)
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    script = (
        "import json, sys, numpy as np; from bertfit import Predictor; "
        "p = Predictor.load(sys.argv[1]); np.save(sys.argv[3], p.predict_proba(json.load(open(sys.argv[2]))))"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "m"), str(tmp_path / "texts.json"),
                    str(tmp_path / "p.npy")], check=True)  # fmt: skip
    assert np.array_equal(np.load(tmp_path / "p.npy"), in_memory)
    # The saved test predictions are the same model's too.
    with open(tmp_path / "m" / "predictions_test.csv", newline="") as handle:
        saved = list(csv.DictReader(handle))
    test_texts = [row["text"] for row in saved]
    again = result.predictor.predict(test_texts)
    assert [p.label for p in again] == [row["predicted"] for row in saved]


def test_training_lowers_the_loss_and_learns(tiny_bert, sentiment_csv, tmp_path):
    output = tmp_path / "m"
    # A random tiny model must learn its word embeddings to pick up the sentiment words.
    args = train_args(
        sentiment_csv, tiny_bert, output, "--epochs", "6", "--learning-rate", "3e-3", "--train-word-embeddings"
    )
    assert main(args) == 0
    with open(output / "training_log.csv", newline="") as handle:
        losses = [float(row["train_loss"]) for row in csv.DictReader(handle)]
    assert losses[-1] < losses[0]
    assert json.loads((output / "metrics.json").read_text())["validation"]["accuracy"] > 0.6


@pytest.mark.parametrize("freeze", ["1", "all"])
def test_freezing_strategies(freeze, tiny_bert, sentiment_csv, tmp_path):
    output = tmp_path / "m"
    args = train_args(sentiment_csv, tiny_bert, output, "--freeze", freeze, "--class-weights", "balanced")
    assert main(args) == 0
    manifest = json.loads((output / "bertfit.json").read_text())
    expected = "pooled-classifier" if freeze == "all" else "sequence-classifier"
    assert manifest["architecture"] == expected
    if freeze == "all":
        assert (output / "modeling_bertfit.py").is_file() and not (output / "head.safetensors").exists()
        assert json.loads((output / "config.json").read_text())["head"] == "dense"
        assert manifest["pooling"] == "mean" and manifest["epochs_run"] == 2


def test_predict_texts_and_files(trained, tmp_path, capsys):
    output = trained
    capsys.readouterr()
    assert main(["predict", str(output), "--text", "a lovely day", "--text", "an awful day"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[0] in ("neg", "pos") and lines[0].endswith("a lovely day")

    source = write_csv(
        tmp_path / "in.csv", [(i, t) for i, (t, _) in enumerate(sentiment_rows(5))], header=("id", "text")
    )
    assert main(["predict", str(output), "--input", str(source), "--output", str(tmp_path / "out.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 5
    assert set(rows[0]) == {"id", "text", "predicted_label", "prob_neg", "prob_pos"}
    assert abs(rows[0]["prob_neg"] + rows[0]["prob_pos"] - 1) < 1e-5

    assert main(["predict", str(output), "--input", str(source), "--output", str(tmp_path / "out.csv")]) == 0
    with open(tmp_path / "out.csv", newline="") as handle:
        assert next(csv.reader(handle)) == ["id", "text", "predicted_label", "prob_neg", "prob_pos"]


def test_evaluate_rescoring_matches_training(trained, tmp_path, capsys):
    output = trained
    test_rows = [(r["text"], r["gold"]) for r in csv.DictReader(open(output / "predictions_test.csv", newline=""))]
    write_csv(tmp_path / "test.csv", test_rows)
    capsys.readouterr()
    assert main(["evaluate", str(output), "--data", str(tmp_path / "test.csv"), "--json"]) == 0
    rescored = json.loads(capsys.readouterr().out)
    saved = json.loads((output / "metrics.json").read_text())["test"]
    assert rescored["accuracy"] == saved["accuracy"] and rescored["confusion_matrix"] == saved["confusion_matrix"]


def test_evaluate_refuses_unknown_labels(trained, tmp_path, capsys):
    output = trained
    write_csv(tmp_path / "other.csv", [("fine", "pos"), ("meh", "neutral")])
    assert main(["evaluate", str(output), "--data", str(tmp_path / "other.csv")]) == 3
    assert "label(s) 'neutral' (row 2) are not among the model's labels: neg, pos" in capsys.readouterr().err


def test_existing_output_is_kept_without_overwrite(tiny_bert, sentiment_csv, tmp_path, capsys):
    output = tmp_path / "m"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    assert main(train_args(sentiment_csv, tiny_bert, output)) == 5
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert [p.name for p in output.iterdir()] == ["keep.txt"]
    assert main(train_args(sentiment_csv, tiny_bert, output, "--overwrite")) == 0
    assert not (output / "keep.txt").exists() and (output / "bertfit.json").is_file()


def test_config_file_with_flag_override(tiny_bert, sentiment_csv, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(
        f'model = "{tiny_bert}"\nepochs = 3\nprogress = false\n[data]\ntrain = "{sentiment_csv}"\nsplit = "0.6,0.2,0.2"\n'
    )
    assert main(["train", "--config", str(config), "--epochs", "1", "--output", str(tmp_path / "m")]) == 0
    manifest = json.loads((tmp_path / "m" / "bertfit.json").read_text())
    assert manifest["epochs_run"] == 1 and manifest["config"]["model"] == str(tiny_bert)


BAD_INPUTS = [
    # (rows or raw bytes, extra args, expected message)
    ([("good", "pos"), ("", "neg")] + sentiment_rows(8), [], r"bad\.csv, row 2, column 'text': empty or missing text"),
    ([("good", "pos")] + [(f"t{i}", "pos") for i in range(8)], [], r"has 1 class \('pos'\)"),
    (sentiment_rows(10), ["--label-column", "target"], r"no label column 'target'; columns found: text, label"),
    (b"text,label\ngood,pos\nbad,neg\ncaf\xe9,pos\n", [], r"line 4, character 4: byte 0xe9 is not valid UTF-8"),
]


@pytest.mark.parametrize("content, extra, message", BAD_INPUTS)
def test_bad_input_is_one_clear_line_and_writes_nothing(content, extra, message, tiny_bert, tmp_path, capsys):
    """In this process (an exception other than bertfit's own would escape ``main`` and fail the test);
    ``test_a_bad_file_through_the_installed_command_is_one_line`` runs the command itself once."""
    path = tmp_path / "bad.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        write_csv(path, content)
    output = tmp_path / "never"
    assert main(["train", "--train", str(path), "--model", str(tiny_bert), "--output", str(output), *extra]) == 3
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(path) in errors[0]
    import re

    assert re.search(message, errors[0]), errors[0]
    assert not output.exists()


def test_a_bad_file_through_the_installed_command_is_one_line(tiny_bert, tmp_path):
    path = write_csv(tmp_path / "bad.csv", BAD_INPUTS[0][0])
    run = subprocess.run([sys.executable, "-m", "bertfit", "train", "--train", str(path), "--model", str(tiny_bert),
                          "--output", str(tmp_path / "never")], capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 3
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in run.stderr and str(path) in errors[0]


def test_duplicates_across_splits_as_error_via_cli(tiny_bert, tmp_path, capsys):
    rows = sentiment_rows(20)
    train = write_csv(tmp_path / "train.csv", rows)
    test = write_csv(tmp_path / "test.csv", rows[:2] + [("fresh text", "pos")])
    args = ["train", "--train", str(train), "--test", str(test), "--model", str(tiny_bert), "--on-duplicates", "error"]
    assert main(args) == 3
    assert "2 of 3 test texts also occur in the training data (rows 1, 2)" in capsys.readouterr().err


def test_bad_options_are_listed_together(capsys):
    assert main(["train", "--dataset", "cola", "--train", "x.csv", "--batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "--dataset cannot be combined" in err and "--batch-size must be at least 1" in err


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta", "deberta-v2"])
def test_pooled_head_with_partial_freezing_reloads(kind, tiny_models, sentiment_csv, tmp_path):
    from bertfit import Predictor

    output = tmp_path / "m"
    assert main(train_args(sentiment_csv, tiny_models[kind], output, "--pooling", "mean", "--freeze", "1")) == 0
    manifest = json.loads((output / "bertfit.json").read_text())
    assert (manifest["architecture"], manifest["pooling"], manifest["head"]) == ("pooled-classifier", "mean", "linear")
    predictions = Predictor.load(output).predict(["a lovely day", "an awful day"])
    assert [p.label in ("neg", "pos") for p in predictions] == [True, True]


def test_word_embeddings_stay_fixed_unless_asked(tiny_bert, sentiment_csv, tmp_path):
    from safetensors.torch import load_file

    key = "bert.embeddings.word_embeddings.weight"
    before = load_file(tiny_bert / "model.safetensors")["embeddings.word_embeddings.weight"]
    main(train_args(sentiment_csv, tiny_bert, tmp_path / "fixed"))
    main(train_args(sentiment_csv, tiny_bert, tmp_path / "trained", "--train-word-embeddings"))
    assert load_file(tmp_path / "fixed" / "model.safetensors")[key].equal(before)
    assert not load_file(tmp_path / "trained" / "model.safetensors")[key].equal(before)


def test_help_lists_every_training_option(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--dataset", "--split", "--text-column", "--max-length", "--freeze", "--class-weights", "--pooling",
                 "--precision", "--overwrite", "--config"):  # fmt: skip
        assert flag in text


def test_datasets_command_shows_where_files_are_looked_up(capsys):
    from conftest import SHARED_DATA

    assert main(["datasets"]) == 0
    text = capsys.readouterr().out
    assert "cola" in text and "sms_spam" in text and str(SHARED_DATA / "cola") in text


def test_corrupt_model_folder_is_one_clear_line(trained, tmp_path, capsys):
    output = Path(shutil.copytree(trained, tmp_path / "m"))
    (output / "model.safetensors").write_bytes(b"truncated")
    capsys.readouterr()
    assert main(["predict", str(output), "--text", "hello", "--backend", "torch"]) == 4
    assert f"error: {output / 'model.safetensors'}: not a readable safetensors file" in capsys.readouterr().err


def test_tensorboard_logs_steps_and_epochs(tiny_bert, sentiment_csv, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main(train_args(sentiment_csv, tiny_bert, tmp_path / "m", "--tensorboard")) == 0
    events = EventAccumulator(str(tmp_path / "tensorboard" / "m" / "run-1"))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == list(range(1, 13))  # 96 training rows in batches of 16, 2 epochs
    assert [e.step for e in events.Scalars("validation/mcc")] == [6, 12]
    assert "train/learning_rate" in events.Tags()["scalars"]


# -- outputs that would destroy data -----------------------------------------------------------
def test_an_existing_output_is_replaced_only_with_overwrite(small_model_dir, tmp_path, capsys):
    source = write_csv(tmp_path / "in.csv", [(t,) for t, _ in sentiment_rows(3)], header=("text",))
    output = tmp_path / "out.csv"
    output.write_text("mine\n")
    assert main(["predict", str(small_model_dir), "--input", str(source), "--output", str(output)]) == 5
    assert f"--output {output} already exists; pass --overwrite" in capsys.readouterr().err
    assert output.read_text() == "mine\n"
    assert main(["predict", str(small_model_dir), "--input", str(source), "--output", str(output), "--overwrite"]) == 0
    assert len(output.read_text().splitlines()) == 4


@pytest.mark.parametrize("how", ["same path", "another spelling", "hard link", "symbolic link"])
def test_the_input_is_never_the_output_even_with_overwrite(how, small_model_dir, tmp_path, capsys):
    import os

    source = write_csv(tmp_path / "scores.csv", [(t,) for t, _ in sentiment_rows(3)], header=("text",))
    before = source.read_bytes()
    output = {"same path": source, "another spelling": tmp_path / "sub" / ".." / "scores.csv"}.get(how)
    if how == "hard link":
        os.link(source, output := tmp_path / "link.csv")
    elif how == "symbolic link":
        (output := tmp_path / "link.csv").symlink_to(source)
    assert main(["predict", str(small_model_dir), "--input", str(source), "--output", str(output), "--overwrite"]) == 5
    err = capsys.readouterr().err
    assert "is the --input file" in err and len(err.strip().splitlines()) == 1
    assert source.read_bytes() == before


def test_python_callers_get_the_output_checks_before_the_model_loads(small_model_dir, tmp_path, monkeypatch):
    from bertfit import Predictor
    from bertfit.errors import OutputError, OutputExistsError
    from bertfit.inference import predict_file
    from bertfit.inference.embed import embed_file

    source = write_csv(tmp_path / "in.csv", [(t,) for t, _ in sentiment_rows(3)], header=("text",))
    vectors = tmp_path / "v.jsonl"
    vectors.write_text("mine\n")
    predictor = Predictor.load(small_model_dir, backend="torch")
    with pytest.raises(OutputError, match="is the --input file"):
        predict_file(predictor, source, source, overwrite=True)

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(Predictor, "load", no_loading)
    with pytest.raises(OutputExistsError, match="already exists; pass --overwrite"):
        embed_file(small_model_dir, source, vectors)
    with pytest.raises(OutputError, match="is the --input file"):
        embed_file(small_model_dir, vectors, vectors, overwrite=True)
    assert vectors.read_text() == "mine\n"


def test_shard_output_folder_is_checked_by_the_library(small_model_dir, tmp_path):
    from bertfit import Predictor
    from bertfit.errors import DataError, OutputError
    from bertfit.inference.shards import predict_shards_local

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_csv(tmp_path / folder / "part.csv", [("a lovely day",)], header=("text",))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    predictor = Predictor.load(small_model_dir, backend="torch")
    files = [tmp_path / "a" / "part.csv"]
    with pytest.raises(OutputError, match="must be new or empty"):
        predict_shards_local(predictor, files, tmp_path / "out")
    with pytest.raises(OutputError, match="must be new or empty"):
        predict_shards_local(predictor, files, tmp_path / "a")  # the input folder itself
    with pytest.raises(DataError, match="share the file name part.csv"):
        predict_shards_local(predictor, [*files, tmp_path / "b" / "part.csv"], tmp_path / "new")
    assert not (tmp_path / "new").exists()
    assert predict_shards_local(predictor, files, tmp_path / "new", text_column="text") == 1


def test_tune_from_python_writes_beside_the_training_folder(tmp_path):
    pytest.importorskip("optuna")
    from bertfit import DataConfig, TrainConfig
    from bertfit.errors import OutputExistsError
    from bertfit.training.tune import tune, tune_output_dir

    data = write_csv(tmp_path / "sms.csv", sentiment_rows(20))
    config = TrainConfig(data=DataConfig(train=str(data)), progress=False)
    assert tune_output_dir(config) == Path("runs", "sms-tune")  # beside runs/sms, where train would write
    assert tune_output_dir(TrainConfig(data=DataConfig(train=str(data)), output="elsewhere")).name == "elsewhere"
    (tmp_path / "runs" / "sms-tune").mkdir(parents=True)
    with pytest.raises(OutputExistsError, match="sms-tune already exists; pass --overwrite"):
        tune(config, trials=1)
    assert not (tmp_path / "runs" / "sms").exists()
