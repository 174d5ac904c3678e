"""Every task shape through the CLI on a tiny random model: train -> folder -> reload -> predict,
and the bad-input messages of each shape."""

import csv
import json
import random
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import conftest
from bertfit.cli import main
from conftest import FILLER, NEGATIVE, POSITIVE, sentiment_rows, write_csv

NEUTRAL = ["table", "chair", "window", "door", "paper", "stone", "river", "road"]
ANIMALS = ["dog", "cat", "horse", "bird", "fish", "cow", "sheep", "mouse"]
LEARN = ["--epochs", "6", "--learning-rate", "3e-3", "--train-word-embeddings"]


tiny_train = partial(conftest.train_args, base=("--batch-size", "16"))


def _sentence(rng, *keywords) -> str:
    words = rng.sample(FILLER, rng.randint(3, 7)) + list(keywords)
    rng.shuffle(words)
    return " ".join(words)


def read_json(path):
    return json.loads(path.read_text())


# -- multi-class ----------------------------------------------------------------------------
def test_multi_class_with_balanced_class_weights(tiny_bert, tmp_path, capsys):
    rng = random.Random(1)
    groups = {"pos": POSITIVE, "neg": NEGATIVE, "neutral": NEUTRAL}
    counts = {"pos": 200, "neg": 120, "neutral": 60}  # imbalanced on purpose
    rows = [(_sentence(rng, rng.choice(groups[label])) + f" {i}", label)
            for label, n in counts.items() for i in range(n)]  # fmt: skip
    data = write_csv(tmp_path / "three.csv", rows)
    output = tmp_path / "m"
    assert (
        main(
            tiny_train(
                data, tiny_bert, output, *LEARN, "--epochs", "10", "--pooling", "mean", "--class-weights", "balanced"
            )
        )
        == 0
    )
    metrics = read_json(output / "metrics.json")["test"]
    assert list(metrics["per_class"]) == ["neg", "neutral", "pos"]
    assert np.array(metrics["confusion_matrix"]).shape == (3, 3)
    assert metrics["f1_macro"] > 0.6
    capsys.readouterr()
    assert main(["predict", str(output), "--text", "the table was lovely", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert set(answer["probabilities"]) == {"neg", "neutral", "pos"}
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-5
    page = report_text(output / "report.html")
    assert "one-vs-rest" in page
    assert (
        read_json(output / "bertfit.json")["data"]["profile"]["labels"]["train"]["neutral"] == 36
    )  # 60 split 0.6/0.2/0.2


# The report's sections, by their element ids.
REPORT_SECTIONS = ("profile", "training", "confusion", "per-class", "pr-curve", "wrong")


def report_text(path: Path) -> str:
    """report.html's text, after checking it has every section."""
    page = path.read_text(encoding="utf-8")
    for section in REPORT_SECTIONS:
        assert f'<section id="{section}">' in page, section
    return page


def test_a_test_label_never_seen_in_training_is_named(tiny_bert, tmp_path, capsys):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(40))
    test = write_csv(tmp_path / "test.csv", [("a lovely day", "pos"), ("what a chair", "neutral")])
    args = ["train", "--train", str(train), "--test", str(test), "--model", str(tiny_bert), "--output",
            str(tmp_path / "m"), "--epochs", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert "test label(s) 'neutral' never occur in training; the model cannot learn them" in capsys.readouterr().err


# -- multi-label ----------------------------------------------------------------------------
def multi_label_rows(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """Each text holds words of one or two groups; its labels are those groups, joined by commas."""
    rng = random.Random(seed)
    groups = {"happy": POSITIVE, "sad": NEGATIVE, "animal": ANIMALS}
    rows = []
    for i in range(count):
        chosen = rng.sample(sorted(groups), rng.choice([1, 1, 2]))
        rows.append((_sentence(rng, *(rng.choice(groups[g]) for g in chosen)) + f" {i}", ",".join(chosen)))
    return rows


def test_multi_label_end_to_end(tiny_bert, tmp_path, capsys):
    data = write_csv(tmp_path / "emotions.csv", multi_label_rows(240))
    output = tmp_path / "m"
    assert main(tiny_train(data, tiny_bert, output, *LEARN)) == 0
    assert "labels joined by ',', so the task is multi-label" in capsys.readouterr().err
    manifest = read_json(output / "bertfit.json")
    assert manifest["task"]["name"] == "multi-label" and manifest["labels"] == ["animal", "happy", "sad"]
    thresholds = manifest["task"]["state"]["thresholds"]
    assert len(thresholds) == 3 and all(0 < t < 1 for t in thresholds)
    test = read_json(output / "metrics.json")["test"]
    for key in ("f1_micro", "f1_macro", "f1_macro_at_0.5", "subset_accuracy", "ece", "per_class"):
        assert key in test
    assert test["f1_macro"] > 0.6
    assert read_json(output / "config.json")["problem_type"] == "multi_label_classification"
    assert "one threshold per label" in report_text(output / "report.html")

    capsys.readouterr()
    assert main(["predict", str(output), "--text", "a dog and a lovely day", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert set(answer["probabilities"]) == {"animal", "happy", "sad"}
    chosen = [n for n, t in zip(manifest["labels"], thresholds) if answer["probabilities"][n] >= t]
    assert answer["labels"] == chosen and answer["label"] == ",".join(chosen)

    # Re-scoring the saved test predictions gives the saved metrics.
    saved = list(csv.DictReader(open(output / "predictions_test.csv", newline="")))
    write_csv(tmp_path / "again.csv", [(r["text"], r["gold"]) for r in saved])
    assert main(["evaluate", str(output), "--data", str(tmp_path / "again.csv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["f1_macro"] == pytest.approx(test["f1_macro"])


def test_multi_label_from_a_list_column(tiny_bert, tmp_path):
    path = tmp_path / "lists.jsonl"
    rows = multi_label_rows(60, seed=3)
    path.write_text("".join(json.dumps({"text": t, "tags": labels.split(",")}) + "\n" for t, labels in rows))
    output = tmp_path / "m"
    assert main(tiny_train(path, tiny_bert, output, "--epochs", "1", "--label-column", "tags")) == 0
    assert read_json(output / "bertfit.json")["task"]["name"] == "multi-label"


def test_multi_label_row_with_an_unknown_label_is_refused(tiny_bert, tmp_path, capsys):
    data = write_csv(tmp_path / "emotions.csv", multi_label_rows(60))
    output = tmp_path / "m"
    assert main(tiny_train(data, tiny_bert, output, "--epochs", "1")) == 0
    odd = write_csv(tmp_path / "odd.csv", [("a dog", "animal"), ("a lovely dog", "happy,bored")])
    capsys.readouterr()
    assert main(["evaluate", str(output), "--data", str(odd)]) == 3
    assert "label(s) 'bored' (row 2) are not among the model's labels: animal, happy, sad" in capsys.readouterr().err


# -- sentence pairs --------------------------------------------------------------------------
def test_sentence_pairs(tiny_bert, tmp_path, capsys):
    rng = random.Random(2)
    rows = []
    for i in range(160):
        label = "pos" if i % 2 == 0 else "neg"
        pair = _sentence(rng, rng.choice(POSITIVE if label == "pos" else NEGATIVE))
        rows.append((_sentence(rng) + f" {i}", pair, label))
    data = write_csv(tmp_path / "pairs.csv", rows, header=("question", "answer", "label"))
    output = tmp_path / "m"
    args = tiny_train(data, tiny_bert, output, *LEARN, "--epochs", "10", "--pooling", "mean", "--text-column",
                      "question", "--text-pair-column", "answer", "--label-column", "label")  # fmt: skip
    assert main(args) == 0
    assert read_json(output / "bertfit.json")["text_pairs"] is True
    assert read_json(output / "metrics.json")["test"]["accuracy"] > 0.7
    assert "text_pair" in next(csv.reader(open(output / "predictions_test.csv", newline="")))

    capsys.readouterr()
    assert main(["predict", str(output), "--text", "what was it like", "--text-pair", "simply wonderful"]) == 0
    assert capsys.readouterr().out.split("\t")[0] in ("neg", "pos")
    assert main(["predict", str(output), "--text", "what was it like"]) == 2
    assert "was trained on text pairs: give --text-pair" in capsys.readouterr().err

    source = write_csv(tmp_path / "in.csv", [(q, a) for q, a, _ in rows[:5]], header=("question", "answer"))
    assert main(["predict", str(output), "--input", str(source), "--output", str(tmp_path / "out.csv"),
                 "--text-column", "question", "--text-pair-column", "answer"]) == 0  # fmt: skip
    assert len(pd.read_csv(tmp_path / "out.csv")) == 5


def test_token_type_ids_mark_the_second_text(default_tokenizer):
    from bertfit.encoding.batching import collate, encode_texts

    encoded = encode_texts(default_tokenizer, ["first text"], 32, pairs=["second"])
    batch = collate(encoded, [0], 0)
    sep = batch["input_ids"][0].tolist().index(default_tokenizer.sep_token_id)
    assert batch["token_type_ids"][0, : sep + 1].sum() == 0 and batch["token_type_ids"][0, sep + 1 :].sum() > 0


# -- regression ------------------------------------------------------------------------------
def regression_rows(count: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        happy = i % 2 == 0
        score = (4.0 if happy else 1.0) + rng.uniform(-0.5, 0.5)
        rows.append((_sentence(rng, rng.choice(POSITIVE if happy else NEGATIVE)) + f" {i}", f"{score:.2f}"))
    return rows


def test_regression_end_to_end(tiny_bert, tmp_path, capsys):
    data = write_csv(tmp_path / "scores.csv", regression_rows(160), header=("text", "score"))
    output = tmp_path / "m"
    assert main(tiny_train(data, tiny_bert, output, *LEARN, "--epochs", "10", "--pooling", "mean")) == 0
    assert "so the task is regression" in capsys.readouterr().err
    manifest = read_json(output / "bertfit.json")
    assert manifest["task"]["name"] == "regression" and 2 < manifest["task"]["state"]["target_mean"] < 3
    test = read_json(output / "metrics.json")["test"]
    for key in ("mse", "rmse", "mae", "pearson", "spearman", "r2"):
        assert key in test
    assert test["pearson"] > 0.6
    capsys.readouterr()
    assert main(["predict", str(output), "--text", "a lovely day", "--json"]) == 0
    value = json.loads(capsys.readouterr().out)["value"]
    assert 0 < value < 6
    assert main(["report", str(output), "--output", str(tmp_path / "again.html")]) == 0
    page = report_text(tmp_path / "again.html")
    assert "Largest absolute errors" in page and "a regression model has no classes" in page


def test_non_numeric_regression_label_is_named(tmp_path, capsys):
    rows = regression_rows(20)
    rows[6] = (rows[6][0], "high")
    data = write_csv(tmp_path / "scores.csv", rows, header=("text", "score"))
    assert main(["train", "--train", str(data), "--split", "0.6,0.2,0.2", "--task", "regression"]) == 3
    assert "scores.csv, row 7: regression labels must be numbers, got 'high'" in capsys.readouterr().err


# -- long texts ------------------------------------------------------------------------------
def long_rows(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """560 filler words, then 40 words among which the sentiment words that decide the label: all of
    the signal sits past token 512."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        label = "pos" if i % 2 == 0 else "neg"
        tail = [rng.choice(FILLER) for _ in range(32)] + rng.sample(POSITIVE if label == "pos" else NEGATIVE, 8)
        rng.shuffle(tail)
        rows.append((" ".join([rng.choice(FILLER) for _ in range(560)] + tail) + f" {i}", label))
    return rows


def test_signal_past_token_512_is_learned_with_windows_not_truncation(tiny_bert, default_tokenizer, tmp_path):
    rows = long_rows(200)
    ids = default_tokenizer(rows[0][0])["input_ids"]
    keyword = next(i for i, t in enumerate(ids) if default_tokenizer.decode([t]) in POSITIVE)
    assert keyword > 512
    data = write_csv(tmp_path / "long.csv", rows)
    accuracy = {}
    for policy in ("truncate", "window"):
        output = tmp_path / policy
        args = tiny_train(data, tiny_bert, output, *LEARN, "--pooling", "mean", "--batch-size", "32",
                          "--max-length", "32", "--long-text", policy, "--stride", "8", "--window-aggregate", "max")  # fmt: skip
        assert main(args) == 0
        accuracy[policy] = read_json(output / "metrics.json")["test"]["accuracy"]
    assert accuracy["window"] >= 0.85 and accuracy["truncate"] < 0.7, accuracy
    manifest = read_json(tmp_path / "window" / "bertfit.json")
    assert (manifest["long_text"], manifest["stride"], manifest["window_aggregate"]) == ("window", 8, "max")

    from bertfit import Predictor

    predictor = Predictor.load(tmp_path / "window")
    texts = [t for t, _ in long_rows(20, seed=9)]
    gold = [label for _, label in long_rows(20, seed=9)]
    assert np.mean([p.label == g for p, g in zip(predictor.predict(texts), gold)]) >= 0.8


# -- imbalance: thresholds and calibration ---------------------------------------------------
def imbalanced_csv(tmp_path):
    rows = [r for i, r in enumerate(sentiment_rows(300, seed=4)) if r[1] == "pos" or i % 6 == 1]
    return write_csv(tmp_path / "rare.csv", rows)


def test_binary_threshold_tuned_for_f1_is_saved_and_used(tiny_bert, tmp_path, capsys):
    output = tmp_path / "m"
    assert main(tiny_train(imbalanced_csv(tmp_path), tiny_bert, output, *LEARN, "--threshold", "tune")) == 0
    state = read_json(output / "bertfit.json")["task"]["state"]
    assert state["positive_label"] == "neg"  # the rarer class
    threshold = state["thresholds"][0]
    metrics = read_json(output / "metrics.json")
    assert metrics["test"]["threshold"] == {"label": "neg", "value": threshold}
    assert "ece" in metrics["test"] and "ece_uncalibrated" in metrics["validation"]
    capsys.readouterr()
    texts = [t for t, _ in sentiment_rows(20, seed=8)]
    assert main(["predict", str(output), *sum((["--text", t] for t in texts), []), "--json"]) == 0
    for line in capsys.readouterr().out.splitlines():
        answer = json.loads(line)
        assert answer["label"] == ("neg" if answer["probabilities"]["neg"] >= threshold else "pos")


def test_target_recall_reaches_the_target_on_validation(tiny_bert, tmp_path):
    output = tmp_path / "m"
    args = tiny_train(imbalanced_csv(tmp_path), tiny_bert, output, "--epochs", "2", "--target-recall", "0.95")
    assert main(args) == 0
    validation = read_json(output / "metrics.json")["validation"]
    assert validation["per_class"]["neg"]["recall"] >= 0.95


def test_temperature_scaling_lowers_validation_nll():
    from bertfit.tasks.calibration import fit_temperature

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 500)
    logits = np.where(np.eye(2)[gold] > 0, 4.0, 0.0) + rng.normal(0, 3, (500, 2))  # overconfident
    t = fit_temperature(logits, gold, multi_label=False)

    def nll(scale):
        z = logits / scale
        return float((np.logaddexp.reduce(z, axis=1) - z[np.arange(500), gold]).mean())

    assert t > 1 and nll(t) < nll(1.0)


def test_a_separable_or_small_validation_keeps_temperature_one(caplog):
    """With no wrong decisions the likelihood keeps improving as T falls; T stays 1 and the log says why."""
    from bertfit.tasks.calibration import MIN_ROWS, fit_temperature

    gold = np.arange(200) % 2
    separated = np.where(np.eye(2)[gold] > 0, 3.0, -3.0)
    with caplog.at_level("WARNING"):
        assert fit_temperature(separated, gold, multi_label=False) == 1.0
    assert "separated too well" in caplog.text
    few = MIN_ROWS - 10
    noisy = np.random.default_rng(0).normal(0, 3, (few, 2))
    with caplog.at_level("WARNING"):
        assert fit_temperature(noisy, gold[:few], multi_label=False) == 1.0
    assert f"{few} validation rows" in caplog.text


def test_multi_label_thresholds_stay_bounded_and_near_half_for_rare_labels():
    from bertfit.tasks import CalibrationOptions, LabelSet, MultiLabelTask
    from bertfit.tasks.calibration import THRESHOLD_BOUNDS

    rng = np.random.default_rng(1)
    rows = 40
    gold = np.zeros((rows, 3), dtype=int)
    gold[:20, 0] = 1  # common
    gold[:3, 1] = 1  # seen three times: too few to tune
    gold[:8, 2] = 1  # seen eight times: tuned, then shrunk toward 0.5
    logits = rng.normal(-4, 1, (rows, 3)) + 3 * gold
    task = MultiLabelTask(labels=LabelSet(("a", "b", "c")))
    fitted = task.calibrated(logits, gold, CalibrationOptions())
    low, high = THRESHOLD_BOUNDS
    assert all(low <= t <= high for t in fitted.thresholds)
    assert fitted.thresholds[1] == 0.5
    raw = task.with_temperature(logits, gold, multi_label=True).outputs(logits)[:, 2]
    from bertfit.tasks.calibration import SHRINK_POSITIVES, best_f1_threshold

    unshrunk = best_f1_threshold(raw, gold[:, 2] > 0)
    assert fitted.thresholds[2] == pytest.approx(0.5 + (unshrunk - 0.5) * 8 / (8 + SHRINK_POSITIVES))


# -- variance: seeds and folds ---------------------------------------------------------------
def test_seeds_report_mean_and_std(tiny_bert, sentiment_csv, tmp_path, capsys):
    output = tmp_path / "m"
    assert main(tiny_train(sentiment_csv, tiny_bert, output, "--epochs", "1", "--seeds", "3")) == 0
    printed = capsys.readouterr().out
    assert "over 3 runs (seeds), mean ± std:" in printed and "test mcc" in printed
    summary = read_json(output / "metrics.json")["summary"]
    assert summary["by"] == "seed" and summary["runs"] == ["seed 42", "seed 43", "seed 44"]
    accuracy = summary["test"]["accuracy"]
    assert len(accuracy["values"]) == 3 and accuracy["mean"] == pytest.approx(np.mean(accuracy["values"]))
    assert accuracy["std"] == pytest.approx(np.std(accuracy["values"], ddof=1))
    assert summary["kept"] in summary["runs"]


def test_folds_report_mean_and_std(tiny_bert, sentiment_csv, tmp_path, capsys):
    output = tmp_path / "m"
    assert main(tiny_train(sentiment_csv, tiny_bert, output, "--epochs", "1", "--folds", "3")) == 0
    summary = read_json(output / "metrics.json")["summary"]
    assert summary["by"] == "fold" and len(summary["validation"]["accuracy"]["values"]) == 3
    manifest = read_json(output / "bertfit.json")
    # Each fold validates on a third of train + validation (96 + 32 rows).
    assert manifest["data"]["rows"]["validation"] in (42, 43)


# -- embeddings and tuning -------------------------------------------------------------------
@pytest.mark.parametrize("freeze", ["none", "all"])
def test_embed_writes_vectors(freeze, tiny_bert, sentiment_csv, tmp_path, capsys):
    output = tmp_path / "m"
    assert main(tiny_train(sentiment_csv, tiny_bert, output, "--epochs", "1", "--freeze", freeze)) == 0
    source = write_csv(
        tmp_path / "in.csv", [(i, t) for i, (t, _) in enumerate(sentiment_rows(7))], header=("id", "text")
    )
    assert main(["embed", str(output), "--input", str(source), "--output", str(tmp_path / "v.npy")]) == 0
    vectors = np.load(tmp_path / "v.npy")
    assert vectors.shape == (7, 32) and np.isfinite(vectors).all()
    assert main(["embed", str(output), "--input", str(source), "--output", str(tmp_path / "v.parquet")]) == 0
    frame = pd.read_parquet(tmp_path / "v.parquet")
    assert list(frame["id"].astype(int)) == list(range(7))
    np.testing.assert_allclose(np.stack(frame["embedding"]), vectors, atol=1e-6)
    assert main(["embed", str(output), "--input", str(source), "--output", str(tmp_path / "v.csv")]) == 2


def test_tune_searches_on_validation_and_writes_a_config(tiny_bert, sentiment_csv, tmp_path, capsys):
    output = tmp_path / "search"
    args = ["tune", "--train", str(sentiment_csv), "--split", "0.6,0.2,0.2", "--model", str(tiny_bert),
            "--output", str(output), "--trials", "3", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert "3 trials" in capsys.readouterr().out
    trials = read_json(output / "trials.json")
    assert len(trials["trials"]) == 3 and trials["metric"] == "validation mcc"
    best = read_json(output / "best_config.json")
    assert best["learning_rate"] == trials["best_params"]["learning_rate"]
    # The written config trains as it is.
    assert main(["train", "--config", str(output / "best_config.json"), "--output", str(tmp_path / "m"),
                 "--epochs", "1", "--no-progress"]) == 0  # fmt: skip


# -- the pieces, without a model -------------------------------------------------------------
@pytest.mark.parametrize("labels, requested, expected", [
    (["pos", "neg"], "auto", "classification"),
    (["0", "1", "2"], "auto", "classification"),
    (["3.5", "1", "4.25"], "auto", "regression"),
    (["joy,love", "anger"], "auto", "multi-label"),
    ([("joy", "love"), ("anger",)], "auto", "multi-label"),
    (["joy,love", "anger"], "classification", "classification"),
])  # fmt: skip
def test_task_detection(labels, requested, expected):
    from bertfit.tasks import detect_task

    assert detect_task(labels, requested, None, "f.csv")[0].name == expected


def test_window_logits_aggregate_per_text():
    from bertfit.encoding.batching import Encoded, aggregate_windows

    encoded = Encoded([[1], [2], [3]], texts=2, owner=np.array([0, 0, 1]))
    logits = np.array([[1.0, -1.0], [3.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(aggregate_windows(logits, encoded, "mean"), [[2.0, -0.5], [0.0, 2.0]])
    np.testing.assert_allclose(aggregate_windows(logits, encoded, "max"), [[3.0, 0.0], [0.0, 2.0]])


def test_thresholds_decide_and_round_trip_through_the_manifest():
    from bertfit.folder import Manifest
    from bertfit.tasks import LabelSet, MultiLabelTask, SingleLabelTask, task_from_manifest

    binary = SingleLabelTask(LabelSet(("ham", "spam")), positive=1, thresholds=(0.3,))
    assert binary.decide(np.array([[0.75, 0.25], [0.65, 0.35]])).tolist() == [0, 1]
    labels = LabelSet(("a", "b", "c"))
    multi = MultiLabelTask(labels, thresholds=(0.5, 0.2, 0.9), temperature=1.5)
    assert multi.decision_names(multi.decide(np.array([[0.6, 0.3, 0.8]]))) == ["a,b"]
    again = task_from_manifest(Manifest(list(labels.names), 32, task=multi.to_manifest()))
    assert again == multi
