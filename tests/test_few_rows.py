"""Small data is data: a few rows per class train without a traceback, the validation holdout never
has fewer rows than classes (or is skipped, saying so), and classes with few rows are named."""

from __future__ import annotations

import random

import pytest

from bertfit.cli import main
from bertfit.data.splits import stratified_split
from conftest import FILLER, train_args, write_csv

TOPICS = ["sport", "music", "money", "food", "travel", "weather"]


def topic_rows(per_class: int, seed: int = 0) -> list[tuple[str, str]]:
    """``per_class`` rows of each of six topics, each text naming its topic among filler words."""
    rng = random.Random(seed)
    rows = []
    for i in range(per_class):
        for topic in TOPICS:
            words = [*rng.sample(FILLER, 4), topic]
            rng.shuffle(words)
            rows.append((" ".join(words) + f" {i}", topic))
    return rows


def test_a_holdout_smaller_than_the_classes_takes_one_row_of_each():
    """48 rows of 6 classes at 10%: scikit-learn alone would hold out 5 rows and refuse to stratify."""
    labels = [topic for _, topic in topic_rows(8)]
    train, validation, test = stratified_split(labels, (0.9, 0.1, 0.0), 42, "few.csv")
    assert len(validation) == 6 and {labels[i] for i in validation} == set(TOPICS)
    assert sorted(train + validation) == list(range(48)) and test == []


def test_a_split_that_cannot_keep_every_class_on_both_sides_is_plain_random():
    """18 rows of 6 classes, 70% held out: the 5 kept rows cannot hold all 6 classes, where scikit-learn's
    stratified split would refuse; the split is plain random instead, of the sizes asked."""
    labels = [topic for _, topic in topic_rows(3)]
    train, validation, _ = stratified_split(labels, (0.3, 0.7, 0.0), 42, "few.csv")
    assert len(train) == 5 and len(validation) == 13 and sorted(train + validation) == list(range(18))


@pytest.mark.parametrize("per_class", [2, 3, 8])
@pytest.mark.parametrize("encoder", ["plain", "sentence"])
def test_a_few_rows_per_class_train_and_say_what_they_cannot_do(per_class, encoder, request, tmp_path, capsys):
    """A plain encoder fine-tunes (full recipe); a sentence-transformers one takes the few-shot recipe."""
    model = request.getfixturevalue("tiny_bert" if encoder == "plain" else "tiny_sentence_encoder")
    data = write_csv(tmp_path / "few.csv", topic_rows(per_class))
    args = train_args(data, model, tmp_path / "m", "--epochs", "1", "--save-every", "500", split=None)
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert ("the few-shot recipe writes no checkpoints" in err) == (encoder == "sentence")
    assert f"{6 * per_class} training rows: a 10% validation split would hold 6 rows" in err
    assert "training on all of them" in err and "no validation data: the last epoch is kept" in err
    recipe = "full" if encoder == "plain" else "few-shot"
    assert f"recipe {recipe}: --recipe auto: {per_class} labelled rows per class (median)" in err
    if per_class < 8:
        named = ", ".join(f"'{topic}' ({per_class} rows)" for topic in sorted(TOPICS))
        assert f"few training rows for {named}" in err
    else:
        assert "few training rows" not in err


def test_enough_rows_hold_out_one_of_each_class_at_least(tiny_bert, tmp_path, capsys):
    rows = topic_rows(14)  # 84 rows: a 10% holdout of 9 rows
    data = write_csv(tmp_path / "some.csv", rows)
    assert main(train_args(data, tiny_bert, tmp_path / "m", "--epochs", "1", split=None)) == 0
    err = capsys.readouterr().err
    assert "held out 9 of 84 training rows" in err and "few training rows" not in err


def test_a_class_of_one_row_is_named(tiny_bert, tmp_path, capsys):
    rows = topic_rows(3) + [("a lonely text about chess", "chess")]
    data = write_csv(tmp_path / "one.csv", rows)
    assert main(train_args(data, tiny_bert, tmp_path / "m", "--epochs", "1", split=None)) == 0
    err = capsys.readouterr().err
    assert "few training rows for 'chess' (1 row), " in err
