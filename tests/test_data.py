"""Loading, column inference, label handling, splits and the pre-flight checks, with their messages."""

import logging

import pytest

from bertfit.config import DataConfig
from bertfit.data.load import load_data
from bertfit.data.table import read_labelled_file
from bertfit.errors import DataError
from bertfit.tasks import LabelSet
from conftest import sentiment_rows, write_csv


def test_sms_spam_registry_reproduces_the_tutorial_split():
    data = load_data(DataConfig(dataset="sms_spam"))
    assert {name: len(split) for name, split in data.splits.items()} == {"train": 3900, "validation": 836, "test": 836}
    assert data.labels.names == ("ham", "spam")
    assert data.splits["test"].labels.count("spam") == 112  # the tutorial's report: 112 spam in 836


def test_cola_registry_uses_official_files():
    data = load_data(DataConfig(dataset="cola"))
    assert [len(data.splits[s]) for s in ("train", "validation", "test")] == [8551, 527, 516]
    assert data.labels.names == ("unacceptable", "acceptable")
    assert data.train.labels.count("acceptable") == 6023


def test_given_columns_by_name_and_index(tmp_path):
    path = write_csv(tmp_path / "d.csv", [("a", "x", "pos"), ("b", "y", "neg")], header=("id", "body", "tag"))
    by_name = read_labelled_file(path, "body", "tag")
    by_index = read_labelled_file(path, "1", "2")
    assert by_name.texts == by_index.texts == ["x", "y"]
    assert by_name.labels == ["pos", "neg"]


def test_inferred_columns_are_reported(tmp_path, caplog):
    path = write_csv(tmp_path / "d.csv", sentiment_rows(20), header=("sentence", "label"))
    with caplog.at_level(logging.INFO, logger="bertfit"):
        split = read_labelled_file(path)
    assert split.labels[:2] == ["pos", "neg"]
    assert "inferred text column 'sentence' and label column 'label'" in caplog.text


def test_missing_column_lists_columns_found(tmp_path):
    path = write_csv(tmp_path / "d.csv", sentiment_rows(10))
    with pytest.raises(DataError, match=r"d\.csv: no label column 'target'; columns found: text, label"):
        read_labelled_file(path, "text", "target")


def test_ambiguous_label_column_asks_for_the_flag(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text(
        "".join(f"s{i % 3}\t{i % 2}\t{'*' if i % 2 else ''}\tsentence number {i} here\n" for i in range(12))
    )
    with pytest.raises(DataError, match=r"cannot infer the label column \(candidates: 0, 1, 2; .*pass --label-column"):
        read_labelled_file(path)


def test_empty_text_names_rows_and_column(tmp_path):
    path = write_csv(tmp_path / "d.csv", [("good", "pos"), ("", "neg"), ("   ", "pos"), ("bad", "neg")])
    with pytest.raises(DataError, match=r"d\.csv, rows 2, 3, column 'text': empty or missing text"):
        read_labelled_file(path)


@pytest.mark.parametrize("lines, message", [
    ('{"text": "a", "label": 1}\n{"text": null, "label": 0}\n{"label": 1}\n',
     r"d\.jsonl, rows 2, 3, column 'text': empty or missing text"),
])  # fmt: skip
def test_bad_jsonl_rows_are_named(lines, message, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(lines, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_labelled_file(path)


def test_missing_label_names_row(tmp_path):
    path = write_csv(tmp_path / "d.csv", [("good", "pos"), ("bad", "")])
    with pytest.raises(DataError, match=r"d\.csv, row 2, column 'label': empty or missing label"):
        read_labelled_file(path)


def test_one_class_is_refused(tmp_path):
    path = write_csv(tmp_path / "d.csv", [(f"text {i}", "pos") for i in range(6)])
    with pytest.raises(
        DataError, match=r"d\.csv: the training data has 1 class \('pos'\); classification needs at least two"
    ):
        load_data(DataConfig(train=str(path)))


def test_non_utf8_training_file_is_refused(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"text,label\ngood,1\nna\xefve,0\n")
    with pytest.raises(DataError, match=r"d\.csv, line 3, character 3: byte 0xef is not valid UTF-8"):
        load_data(DataConfig(train=str(path)))


def _with_shared_text(tmp_path):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(20))
    test = write_csv(tmp_path / "test.csv", [sentiment_rows(20)[3], ("a brand new text", "neg")])
    return train, test


def test_texts_shared_between_splits_warn_by_default(tmp_path):
    train, test = _with_shared_text(tmp_path)
    data = load_data(DataConfig(train=str(train), test=str(test)))
    assert len(data.splits["test"]) == 2
    assert any("1 of 2 test texts also occur in the training data (row 1)" in w for w in data.warnings)


def test_texts_shared_between_splits_can_be_an_error(tmp_path):
    train, test = _with_shared_text(tmp_path)
    with pytest.raises(DataError, match=r"test\.csv: 1 of 2 test texts also occur in the training data \(row 1\)"):
        load_data(DataConfig(train=str(train), test=str(test), on_duplicates="error"))


def test_texts_shared_between_splits_can_be_dropped(tmp_path):
    train, test = _with_shared_text(tmp_path)
    data = load_data(DataConfig(train=str(train), test=str(test), on_duplicates="drop"))
    assert data.splits["test"].texts == ["a brand new text"]


def test_unseen_test_label_warns_and_joins_the_label_set(tmp_path):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(20))
    test = write_csv(tmp_path / "test.csv", [("something neutral", "neutral")])
    data = load_data(DataConfig(train=str(train), test=str(test)))
    assert data.labels.names == ("neg", "neutral", "pos")
    assert any("test label(s) 'neutral' never occur in training" in w for w in data.warnings)


def test_labels_order_numerically_and_keep_names():
    assert LabelSet.from_values(["10", "2", "1"]).names == ("1", "2", "10")
    assert LabelSet.from_values(["spam", "ham"]).names == ("ham", "spam")
    assert LabelSet.from_values(["0", "1"], {"0": "ham", "1": "spam"}).names == ("ham", "spam")


def test_integer_and_float_labels_from_jsonl(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0.0}\n', encoding="utf-8")
    assert read_labelled_file(path).labels == ["1", "0"]


def test_split_is_stratified_and_seeded(tmp_path):
    path = write_csv(tmp_path / "d.csv", sentiment_rows(200))
    first = load_data(DataConfig(train=str(path), split="0.8,0.1,0.1"))
    again = load_data(DataConfig(train=str(path), split="0.8,0.1,0.1"))
    assert [len(first.splits[s]) for s in ("train", "validation", "test")] == [160, 20, 20]
    assert first.splits["test"].texts == again.splits["test"].texts
    assert first.splits["test"].labels.count("pos") == 10


def test_split_seed_is_its_own_option(tmp_path):
    path = write_csv(tmp_path / "d.csv", sentiment_rows(200))
    base = load_data(DataConfig(train=str(path), split="0.8,0.1,0.1"))
    other = load_data(DataConfig(train=str(path), split="0.8,0.1,0.1", split_seed=7))
    assert base.splits["test"].texts != other.splits["test"].texts


def test_numeric_texts_are_read_as_text(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": 404, "label": "x"}\n{"text": "fine", "label": "y"}\n', encoding="utf-8")
    assert read_labelled_file(path).texts == ["404", "fine"]
