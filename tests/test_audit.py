"""``bertfit audit``: out-of-fold probabilities, cleanlab's pick of the likely wrong labels, duplicates with two
labels, the file it writes, the report section, and one clear line for each input it cannot audit."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest

from bertfit.cli import main
from bertfit.data.table import TextSplit
from bertfit.tasks import LabelSet
from bertfit.tasks.single_label import SingleLabelTask
from bertfit.training.audit import DUPLICATE, LIKELY_WRONG, _duplicates, _likely_wrong
from conftest import sentiment_rows, write_csv
from test_few_rows import topic_rows


def read_rows(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def audit_args(train, model, output, *extra) -> list[str]:
    return ["audit", "--train", str(train), "--model", str(model), "--output", str(output), "-q", *map(str, extra)]


def binary_task() -> SingleLabelTask:
    return SingleLabelTask(labels=LabelSet(("neg", "pos")))


def split_of(texts: list[str], labels: list[str]) -> TextSplit:
    return TextSplit("train", "data.csv", texts, labels, rows=list(range(1, len(texts) + 1)))


def test_rows_whose_out_of_fold_probability_contradicts_their_label_are_flagged_worst_first():
    rng = np.random.default_rng(0)
    gold = np.array([0, 1] * 20)
    probabilities = np.where(gold[:, None] == np.arange(2), 0.9, 0.1) + rng.uniform(-0.05, 0.05, (40, 1)) * [1, -1]
    probabilities[[2, 17]] = [[0.01, 0.99], [0.9, 0.1]]  # given neg and pos: the model disagrees, surer on the first
    split = split_of([f"text {i}" for i in range(40)], ["neg" if g == 0 else "pos" for g in gold])
    issues = _likely_wrong(binary_task(), split, gold, probabilities)
    assert [(i.row, i.given_label, i.suggested_label) for i in issues] == [(3, "neg", "pos"), (18, "pos", "neg")]
    assert all(i.issue == LIKELY_WRONG for i in issues)
    assert issues[0].quality < issues[1].quality < 0.2


def test_a_text_given_two_labels_is_listed_against_its_first_row_and_near_copies_by_their_vectors():
    texts = ["Great  film", "awful plot", "great film", "nice one", "nice one!"]
    labels = ["pos", "neg", "neg", "pos", "neg"]
    gold = np.array([1, 0, 0, 1, 0])
    probabilities = np.tile([0.5, 0.5], (5, 1))
    vectors = np.array([[1, 0], [0, 1], [1, 0], [1, 1], [1, 0.98]], dtype=np.float32)
    found = _duplicates(binary_task(), split_of(texts, labels), gold, probabilities, vectors, threshold=0.99)
    exact = [i for i in found if i.issue == DUPLICATE]
    assert [(i.row, i.other_row, i.given_label, i.other_label) for i in exact] == [(3, 1, "neg", "pos")]
    near = [i for i in found if i.issue != DUPLICATE]
    assert [(i.row, i.other_row) for i in near] == [(5, 4)]  # rows 1 and 3 are one text: listed once, above


def test_audit_writes_the_rows_to_check_with_the_users_row_numbers(tiny_sentence_encoder, tmp_path, capsys):
    rows = sentiment_rows(60)
    rows[10] = (rows[4][0].upper(), "neg" if rows[4][1] == "pos" else "pos")  # data row 11 repeats row 5, relabelled
    train = write_csv(tmp_path / "data.csv", rows)
    output = tmp_path / "issues.csv"
    assert main(audit_args(train, tiny_sentence_encoder, output)) == 0
    printed = capsys.readouterr().out
    assert "60 rows, 5-fold out-of-fold accuracy" in printed and f"to {output}" in printed
    assert "add --recipe full" in printed  # the quick frozen pass names the sharper one
    found = read_rows(output)
    assert list(found[0]) == ["file", "issue", "row", "text", "given_label", "suggested_label", "quality",
                              "other_row", "other_label", "similarity"]  # fmt: skip
    duplicate = next(r for r in found if r["issue"] == DUPLICATE)
    assert (duplicate["row"], duplicate["other_row"], duplicate["file"]) == ("11", "5", str(train))
    assert duplicate["text"] == rows[10][0] and duplicate["given_label"] == rows[10][1]
    wrong = [r for r in found if r["issue"] == LIKELY_WRONG]
    assert [float(r["quality"]) for r in wrong] == sorted(float(r["quality"]) for r in wrong)


def test_audit_handles_multi_class_multi_label_and_the_full_recipe(tiny_sentence_encoder, tmp_path):
    topics = write_csv(tmp_path / "topics.csv", topic_rows(6))
    assert main(audit_args(topics, tiny_sentence_encoder, tmp_path / "topics-issues.csv", "--folds", 3)) == 0
    tags = write_csv(tmp_path / "tags.csv", [(text, "a,b" if i % 3 == 0 else "a" if i % 3 == 1 else "b")
                                            for i, (text, _) in enumerate(sentiment_rows(30))])  # fmt: skip
    assert main(audit_args(tags, tiny_sentence_encoder, tmp_path / "tags.jsonl", "--task", "multi-label")) == 0
    assert (tmp_path / "tags.jsonl").stat().st_size > 0
    full = tmp_path / "full.csv"
    assert main(audit_args(write_csv(tmp_path / "few.csv", sentiment_rows(24)), tiny_sentence_encoder, full,
                           "--recipe", "full", "--folds", 2, "--epochs", 1)) == 0  # fmt: skip
    assert read_rows(full) is not None


def test_an_audit_written_into_a_model_folder_joins_its_report(small_model_dir, tiny_bert, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(small_model_dir, folder)
    rows = sentiment_rows(40)
    rows[7] = (rows[3][0], "neg" if rows[3][1] == "pos" else "pos")
    train = write_csv(tmp_path / "data.csv", rows)
    assert main(audit_args(train, tiny_bert, folder / "label_issues.csv")) == 0
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert 'id="label-issues"' in page and "Training rows whose label is likely wrong" in page
    assert rows[7][0] in page


@pytest.mark.parametrize(
    "rows, extra, message",
    [
        (sentiment_rows(4), (), "4 rows, fewer than the 5 folds"),
        (sentiment_rows(40) + [("a lone third class", "meh")] * 2, (), "'meh' (2) have fewer rows than the 5 folds"),
        (
            [(f"text {i}", str(i / 10)) for i in range(30)],
            ("--task", "regression"),
            "numeric targets are not supported",
        ),
        (sentiment_rows(20), ("--folds", 1), "--folds must be at least 2"),
        (sentiment_rows(20), ("--epochs", 2), "--epochs sets the full recipe's training"),
    ],
)
def test_what_cannot_be_audited_is_one_clear_line(rows, extra, message, tiny_bert, tmp_path, capsys):
    train = write_csv(tmp_path / "data.csv", rows)
    assert main(audit_args(train, tiny_bert, tmp_path / "out.csv", *extra)) != 0
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


def test_audit_never_replaces_the_training_file_or_an_existing_output(tiny_bert, tmp_path, capsys):
    train = write_csv(tmp_path / "data.csv", sentiment_rows(20))
    assert main(audit_args(train, tiny_bert, train, "--overwrite")) != 0
    assert "is the --train file" in capsys.readouterr().err
    existing = tmp_path / "issues.csv"
    existing.write_text("keep me")
    assert main(audit_args(train, tiny_bert, existing)) != 0
    assert "already exists" in capsys.readouterr().err and existing.read_text() == "keep me"
    assert main(audit_args(train, tiny_bert, tmp_path / "issues.txt")) != 0
    assert "cannot tell the output format" in capsys.readouterr().err


def test_audit_in_python(tiny_sentence_encoder, tmp_path):
    from bertfit import DataConfig, TrainConfig, audit

    train = write_csv(tmp_path / "data.csv", sentiment_rows(30))
    result = audit(TrainConfig(data=DataConfig(train=str(train)), model=str(tiny_sentence_encoder)), folds=3)
    assert (result.rows, result.folds, result.recipe) == (30, 3, "frozen")
    assert 0 <= result.out_of_fold_accuracy <= 1
    assert result.write(tmp_path / "issues.parquet").is_file()


def test_the_full_recipe_trains_each_fold_for_few_epochs_unless_told(tiny_sentence_encoder, tmp_path, monkeypatch):
    import bertfit.training.audit as audit_module
    from bertfit import DataConfig, TrainConfig, audit
    from bertfit.options import AUDIT_FULL_EPOCHS

    trained_for = []

    def scored_without_training(config, data, folds_at):
        trained_for.append(config.epochs)
        return np.full((len(data.train), 2), 0.5, dtype=np.float32)

    monkeypatch.setattr(audit_module, "_full_out_of_fold", scored_without_training)
    config = TrainConfig(data=DataConfig(train=str(write_csv(tmp_path / "data.csv", sentiment_rows(20)))),
                         model=str(tiny_sentence_encoder), recipe="full")  # fmt: skip
    assert audit(config, folds=2).next_step() is None  # nothing sharper left to suggest
    audit(dataclasses.replace(config, epochs=5), folds=2)
    assert trained_for == [AUDIT_FULL_EPOCHS, 5]
