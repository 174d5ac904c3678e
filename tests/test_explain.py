"""``bertfit explain`` and ``Predictor.explain``: occlusion's per-word scores (the output less the output without
the word) and integrated gradients' (adding up to the output's distance from the all-padding baseline), word
pieces merged into the words as written, every task shape, and clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from bertfit.cli import main
from conftest import sentiment_rows, write_csv

TEXTS = ["a truly wonderful film, really", "the service was awful and slow"]


@pytest.fixture(scope="module")
def pooled_model_dir(tiny_bert, tmp_path_factory):
    """A tiny mean-pooled binary model folder (the default model's architecture)."""
    folder = tmp_path_factory.mktemp("pooled") / "m"
    data = write_csv(folder.parent / "data.csv", sentiment_rows(40))
    args = ["train", "--train", str(data), "--model", str(tiny_bert), "--output", str(folder), "--pooling", "mean",
            "--epochs", "1", "--validation-split", "0", "--no-progress", "-q"]  # fmt: skip
    assert main(args) == 0
    return folder


@pytest.fixture(scope="module")
def sharp_predictor(pooled_model_dir):
    """The pooled model with an output layer set so that its probability moves with the words (one epoch of a
    tiny random model barely leaves 0.5)."""
    from bertfit import Predictor
    from bertfit.modeling import output_layer

    predictor = Predictor.load(pooled_model_dir, backend="torch")
    first, second = (torch.from_numpy(v) for v in predictor.sentence_vectors(TEXTS))
    apart = first - second  # the pos logit rises by 4 from the second text's vector to the first's
    with torch.no_grad():
        layer = output_layer(predictor.model)
        layer.weight.zero_()
        layer.bias.zero_()
        positive = predictor.labels.names.index("pos")
        layer.weight[positive] = apart * 4 / apart.dot(apart)
        layer.bias[positive] = -layer.weight[positive].dot((first + second) / 2)
    return predictor


def test_word_scores_add_up_to_the_probabilitys_distance_from_the_baseline(sharp_predictor):
    found = sharp_predictor.explain(TEXTS, method="integrated-gradients")
    assert [e.index for e in found] == [0, 1]
    for explanation, probabilities in zip(found, sharp_predictor.predict_proba(TEXTS)):
        assert explanation.label in ("pos", "neg")
        assert explanation.output == pytest.approx(probabilities.max(), abs=1e-5)
        total = sum(score for _, score in explanation.words)
        assert abs(explanation.output - explanation.baseline) > 0.01  # something to explain
        assert total == pytest.approx(explanation.output - explanation.baseline, abs=0.02)
        assert explanation.delta == pytest.approx(abs(explanation.output - explanation.baseline - total), abs=1e-4)


def test_word_pieces_are_merged_into_the_words_as_written(sharp_predictor):
    text = "Unbelievably   overcooked pasta!!"  # pieces, extra spaces and punctuation stuck to a word
    (explanation,) = sharp_predictor.explain(text)
    assert [word for word, _ in explanation.words] == text.split()
    assert explanation.pair_words is None


def test_gradient_times_input_is_the_other_method(sharp_predictor):
    (explanation,) = sharp_predictor.explain(TEXTS[:1], method="gradient-x-input")
    assert explanation.method == "gradient-x-input" and len(explanation.words) == len(TEXTS[0].split())


def test_occlusion_scores_each_word_by_the_output_without_it(sharp_predictor):
    import re

    text = "a truly wonderful film, really unbelievably good"
    (explanation,) = sharp_predictor.explain([text], method="occlusion")
    tokenizer, task = sharp_predictor.tokenizer, sharp_predictor.task
    encoded = tokenizer([text], return_offsets_mapping=True, return_tensors="pt")
    column = list(task.labels.names).index(explanation.label)
    scale, shift = task.applied_scale()

    def output(mask):
        with torch.no_grad():
            logits = sharp_predictor.model(input_ids=encoded["input_ids"], attention_mask=mask).logits.double()
        return float(task.shown_outputs(logits * scale + shift)[0, column])

    starts = encoded["offset_mapping"][0, :, 0]
    ends = encoded["offset_mapping"][0, :, 1]
    expected = []
    for word in re.finditer(r"\S+", text):  # the word's pieces out of attention and pooling: as if deleted
        pieces = (starts >= word.start()) & (starts < word.end()) & (ends > starts)
        without = torch.where(pieces, 0, encoded["attention_mask"][0])[None]
        expected.append(output(encoded["attention_mask"]) - output(without))
    assert [w for w, _ in explanation.words] == text.split()
    assert [s for _, s in explanation.words] == pytest.approx(expected, abs=1e-5)
    assert max(abs(s) for s in expected) > 1e-3  # the words do move the output


def test_a_chosen_label_is_explained_and_an_unknown_one_refused(sharp_predictor):
    from bertfit.errors import ConfigError

    assert {e.label for e in sharp_predictor.explain(TEXTS, label="neg")} == {"neg"}
    with pytest.raises(ConfigError, match="'maybe' is not a label of this model: neg, pos"):
        sharp_predictor.explain(TEXTS, label="maybe")


def test_explain_from_the_cli(small_model_dir, tmp_path, capsys):
    assert main(["explain", str(small_model_dir), "--text", TEXTS[0], "-q"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(TEXTS[0]) and "(all padding:" in printed and "; for: " in printed
    assert main(["explain", str(small_model_dir), "--text", TEXTS[1], "--json", "-q"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["text"] == TEXTS[1] and [w["word"] for w in record["words"]] == TEXTS[1].split()
    assert record["method"] == "occlusion"  # the default, which bench/explain.py measured best
    assert (
        main(["explain", str(small_model_dir), "--text", TEXTS[1], "--json", "--method", "integrated-gradients"]) == 0
    )
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["method"] == "integrated-gradients"
    source = write_csv(tmp_path / "in.csv", [(i, t) for i, t in enumerate(TEXTS)], header=("id", "text"))
    output = tmp_path / "out.jsonl"
    assert main(["explain", str(small_model_dir), "--input", str(source), "--output", str(output), "-q"]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [str(r["id"]) for r in rows] == ["0", "1"]
    assert all(len(json.loads(r["explanations"])[0]["words"]) == len(r["text"].split()) for r in rows)
    again = tmp_path / "ig.jsonl"
    assert main(["explain", str(small_model_dir), "--input", str(source), "--output", str(again), "-q",
                 "--method", "integrated-gradients"]) == 0  # fmt: skip
    assert {json.loads(json.loads(line)["explanations"])[0]["method"] for line in again.read_text().splitlines()} == {
        "integrated-gradients"
    }


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--text", "   "], "--text[0]"),
        (["--text", "fine", "--label", "maybe"], "'maybe' is not a label of this model"),
        (["--input", "in.csv"], "--input needs --output FILE"),
    ],
)
def test_what_explain_cannot_use_is_one_clear_line(extra, message, small_model_dir, capsys):
    assert main(["explain", str(small_model_dir), *extra]) != 0
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


def test_a_folder_that_is_no_model_is_named(tmp_path, capsys):
    assert main(["explain", str(tmp_path), "--text", "fine"]) != 0
    assert "not a bertfit model folder" in capsys.readouterr().err


def test_multi_label_explains_each_chosen_label_and_regression_its_value(multi_label_model_dir, regression_model_dir):
    from bertfit import Predictor

    tagged = Predictor.load(multi_label_model_dir, backend="torch")
    chosen = tagged.predict(TEXTS)
    found = tagged.explain(TEXTS)
    expected = [(i, label) for i, p in enumerate(chosen)
                for label in (p.labels or (max(p.probabilities, key=p.probabilities.get),))]  # fmt: skip
    assert [(e.index, e.label) for e in found] == expected
    valued = Predictor.load(regression_model_dir, backend="torch")
    (explanation,) = valued.explain(TEXTS[:1])
    assert explanation.label == valued.labels.names[0]
    assert explanation.output == pytest.approx(float(valued.predict_proba(TEXTS[:1])[0]), abs=1e-4)


def test_the_report_tints_the_words_of_its_most_wrong_test_rows(small_model_dir):
    import csv

    with open(small_model_dir / "predictions_test.csv", newline="", encoding="utf-8") as handle:
        wrong = {row["row"]: row["text"] for row in csv.DictReader(handle) if row["misclassified"] == "1"}
    assert wrong, "the one-epoch model gets some test rows wrong"
    explained = json.loads((small_model_dir / "explanations_test.json").read_text())
    assert set(explained) <= set(wrong) and explained
    for row, explanation in explained.items():
        assert [w["word"] for w in explanation["words"]] == wrong[row].split()
    page = (small_model_dir / "report.html").read_text(encoding="utf-8")
    assert page.count("<span class=word") == sum(len(e["words"]) for e in explained.values())


def test_predict_explain_adds_the_explanations_to_its_output(small_model_dir, tmp_path, capsys):
    assert main(["predict", str(small_model_dir), "--text", TEXTS[0], "--explain", "-q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(TEXTS[0]) and "(all padding:" in lines[1]
    assert main(["predict", str(small_model_dir), "--text", TEXTS[0], "--explain", "--json", "-q"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["explanations"][0]["label"] == record["label"]
    source = write_csv(tmp_path / "in.csv", [(t,) for t in TEXTS], header=("text",))
    output = tmp_path / "out.csv"
    args = ["predict", str(small_model_dir), "--input", str(source), "--output", str(output), "--explain", "-q"]
    assert main(args) == 0
    import csv

    with open(output, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert all(json.loads(r["explanations"])[0]["label"] == r["predicted_label"] for r in rows)


def test_a_long_text_read_in_windows_is_explained_over_every_window(sharp_predictor):
    from dataclasses import replace

    from bertfit import Predictor

    windows = replace(sharp_predictor.policy, max_length=12, long_text="window", stride=4)
    predictor = Predictor(sharp_predictor.backend, sharp_predictor.tokenizer, sharp_predictor.task, windows)
    text = " ".join([TEXTS[0], TEXTS[1], "and then", TEXTS[0]])  # 19 words: several windows of 10 word pieces
    assert len(predictor.encode([text]).ids) > 2
    (explanation,) = predictor.explain([text], method="integrated-gradients")
    assert [word for word, _ in explanation.words] == text.split()  # the words of every window, not the first's
    assert explanation.output == pytest.approx(predictor.predict_proba([text]).max(), abs=1e-5)
    total = sum(score for _, score in explanation.words)
    assert abs(explanation.output - explanation.baseline) > 0.01
    assert total == pytest.approx(explanation.output - explanation.baseline, abs=0.02)
    last = explanation.words[-5:]  # beyond the first window, the words still carry scores
    assert any(abs(score) > 1e-4 for _, score in last)
    (occluded,) = predictor.explain([text], method="occlusion")  # each word blanked in every window it is in
    assert [word for word, _ in occluded.words] == text.split()
    assert any(abs(score) > 1e-4 for _, score in occluded.words[-5:])
