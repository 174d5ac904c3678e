"""The files people really have (issue 31): pandas CSVs with their index, 0/1 label columns, .txt files,
GLUE TSVs whose texts start with a quote, folders passed as files, --arrow with renamed labels. Each
test builds its file in tmp_path."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from bertfit.cli import main
from bertfit.config import DataConfig
from bertfit.data.load import load_data
from bertfit.data.readers import ReadOptions, read_table
from bertfit.data.stream import iter_table
from bertfit.data.table import read_labelled_file
from bertfit.errors import ConfigError, DataError
from conftest import sentiment_rows, write_csv

EMOTIONS = ("anger", "joy", "fear")


def _reviews(count: int = 30) -> pd.DataFrame:
    rows = [(text, label, f"2020-01-{i % 28 + 1:02d}") for i, (text, label) in enumerate(sentiment_rows(count))]
    return pd.DataFrame(rows, columns=["review", "sentiment", "date"])


def _emotion_rows(count: int) -> list[tuple]:
    """Texts with 0/1 cells for anger, joy and fear, each set by a word; every fourth row has none."""
    words = {"anger": "furious", "joy": "delighted", "fear": "scared"}
    rows = []
    for i, (text, _) in enumerate(sentiment_rows(count)):
        on = [(i + k) % 3 == 0 and i % 4 != 3 for k in range(3)]
        marks = " ".join(words[name] for name, flag in zip(EMOTIONS, on) if flag)
        rows.append((f"{text} {marks}".strip(), *(int(flag) for flag in on)))
    return rows


def _emotions_csv(path, count: int = 60, header=("text", *EMOTIONS)):
    return write_csv(path, _emotion_rows(count), header=header)


# -- 1. pandas to_csv(): an unnamed index column first ------------------------------------------
@pytest.mark.parametrize("twice", [False, True], ids=["index", "index-of-a-reread-frame"])
@pytest.mark.parametrize("shuffled", [False, True])
def test_a_pandas_csv_drops_its_index_and_finds_its_header(tmp_path, caplog, twice, shuffled):
    frame = _reviews().sample(frac=1, random_state=0) if shuffled else _reviews()
    path = tmp_path / "reviews.csv"
    frame.to_csv(path)
    if twice:  # read back without index_col and written again: ",Unnamed: 0,review,..."
        pd.read_csv(path).to_csv(path)
    with caplog.at_level(logging.INFO, logger="bertfit"):
        given = read_labelled_file(path, "review", "sentiment")
        inferred = read_labelled_file(path)
    assert given.texts == inferred.texts == frame["review"].tolist()
    assert given.labels == inferred.labels == frame["sentiment"].tolist()
    assert "a pandas index" in caplog.text
    assert list(read_table(path).columns) == ["review", "sentiment", "date"]


def test_a_column_name_given_proves_the_first_row_a_header(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("Review Text (EN),Stars (1-5)\n" + "".join(f"text number {i},{i % 5 + 1}\n" for i in range(8)))
    assert list(read_table(path).columns) == [0, 1]  # no names given: the first row looks like data
    split = read_labelled_file(path, "Review Text (EN)", "Stars (1-5)")
    assert split.texts[0] == "text number 0" and len(split) == 8


def test_a_pandas_index_streams_as_it_reads(tmp_path):
    path = tmp_path / "reviews.csv"
    _reviews(23).to_csv(path)
    streamed = pd.concat(iter_table(path, chunk_rows=5), ignore_index=True)
    pd.testing.assert_frame_equal(streamed, read_table(path))


# -- 2. multi-label as 0/1 indicator columns ---------------------------------------------------
@pytest.mark.parametrize("spec, order", [
    (None, EMOTIONS), ("anger,joy,fear", EMOTIONS), ("anger:fear", EMOTIONS), ("1:3", EMOTIONS),
    ("anger:", EMOTIONS), ("*r,joy", ("anger", "fear", "joy")),  # a glob keeps the file's order
])  # fmt: skip
def test_indicator_columns_are_one_multi_label_label(tmp_path, caplog, spec, order):
    path = _emotions_csv(tmp_path / "emotions.csv", 12)
    with caplog.at_level(logging.INFO, logger="bertfit"):
        split = read_labelled_file(path, label_columns=spec)
    on = [dict(zip(EMOTIONS, row[1:])) for row in _emotion_rows(12)]
    assert split.labels == [tuple(name for name in order if flags[name]) for flags in on]
    assert () in split.labels  # a row without labels is data
    assert f"read columns {', '.join(order)} as one multi-label label (0/1 indicator columns)" in caplog.text


def test_true_false_columns_are_indicators_too(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"text": f"text {i}", "spam": i % 2 == 0, "urgent": i % 3 == 0} for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    split = read_labelled_file(path)
    assert split.labels[:3] == [("spam", "urgent"), (), ("spam",)]


@pytest.mark.parametrize("spec, kind, words", [
    ("anger", DataError, "names 1 column"),
    ("text:joy", DataError, "row 1, column 'text': --label-columns 'text:joy' takes this column"),
    ("sadness,joy", DataError, "no label column 'sadness'"),
    ("emo_*", DataError, "matches no column"),
    ("fear:anger", DataError, "runs backwards"),
])  # fmt: skip
def test_label_columns_that_cannot_be_labels_are_refused(tmp_path, spec, kind, words):
    path = _emotions_csv(tmp_path / "emotions.csv", 12)
    with pytest.raises(kind, match=words):
        read_labelled_file(path, label_columns=spec)


def test_a_bad_indicator_cell_is_named_by_row_and_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,anger,joy\na,0,1\nb,1,0\nc,2,0\nd,0,\n")
    with pytest.raises(DataError, match=r"d\.csv, row 3, column 'anger': --label-columns .* holds '2'"):
        read_labelled_file(path, label_columns="anger,joy")
    path.write_text("text,anger,joy\na,0,1\nb,1,0\nc,1,0\nd,0,\n")
    with pytest.raises(DataError, match=r"d\.csv, row 4, column 'joy': expected 0 or 1 .* found an empty cell"):
        read_labelled_file(path)
    with pytest.raises(ConfigError, match="not both"):
        read_labelled_file(path, label_column="anger", label_columns="anger,joy")


@pytest.mark.parametrize("given", [True, False], ids=["--label-columns", "detected"])
def test_indicator_columns_train_and_evaluate_with_empty_label_sets(tiny_bert, tmp_path, capsys, monkeypatch, given):
    data = _emotions_csv(tmp_path / "emotions.csv", 80, header=("comment", *EMOTIONS))
    out = tmp_path / "m"
    flags = ["--label-columns", "anger:fear"] if given else []
    args = ["train", "--train", str(data), *flags, "--split", "0.6,0.2,0.2", "--model", str(tiny_bert), "--output",
            str(out), "--epochs", "1", "--no-progress", "-q"]  # fmt: skip
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["task"] == "multi-label" and set(metrics["test"]["per_class"]) == set(EMOTIONS)
    scored = tmp_path / "scored.csv"
    write_csv(scored, _emotion_rows(20), header=("comment", *EMOTIONS))
    evaluate = ["evaluate", str(out), "--data", str(scored), *flags, "--json", "--backend", "torch"]
    capsys.readouterr()
    assert main(evaluate) == 0
    in_memory = json.loads(capsys.readouterr().out)
    assert in_memory["rows"] == 20 and set(in_memory["per_class"]) == set(EMOTIONS)
    pytest.importorskip("datasets")
    monkeypatch.setenv("BERTFIT_CACHE_DIR", str(tmp_path / "cache"))
    assert main([*evaluate, "--arrow"]) == 0
    assert json.loads(capsys.readouterr().out) == in_memory


def test_the_split_keeps_rows_without_labels_in_every_part(tmp_path):
    data = load_data(DataConfig(train=str(_emotions_csv(tmp_path / "e.csv", 80)), split="0.6,0.2,0.2"))
    assert data.task.name == "multi-label"
    assert all(() in split.labels for split in data.splits.values())
    assert sum(len(split) for split in data.splits.values()) == 80


def test_arrow_reads_indicator_columns_like_memory(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("BERTFIT_CACHE_DIR", str(tmp_path / "cache"))
    config = DataConfig(
        train=str(_emotions_csv(tmp_path / "e.csv", 40)), label_columns="anger:fear", split="0.6,0.2,0.2"
    )
    memory, arrow = load_data(config), load_data(DataConfig(**{**vars(config), "arrow": True}))
    for name, split in memory.splits.items():
        assert list(arrow.splits[name].labels) == split.labels
    assert arrow.labels == memory.labels


# -- 3. .txt and other text files are sniffed ----------------------------------------------------
@pytest.mark.parametrize("name, content", [
    ("sst.txt", "".join(f"{t}\t{1 if label == 'pos' else 0}\n" for t, label in sentiment_rows(10))),
    ("comma.txt", "text,label\n" + "".join(f"{t},{label}\n" for t, label in sentiment_rows(10))),
    ("semicolon.dat", "text;label\n" + "".join(f"{t};{label}\n" for t, label in sentiment_rows(10))),
    ("pipe.txt.gz", "text|label\n" + "".join(f"{t}|{label}\n" for t, label in sentiment_rows(10))),
])  # fmt: skip
def test_text_files_of_any_suffix_are_sniffed(tmp_path, name, content):
    import gzip

    path = tmp_path / name
    path.write_bytes(gzip.compress(content.encode()) if name.endswith(".gz") else content.encode())
    split = read_labelled_file(path)
    assert split.texts == [t for t, _ in sentiment_rows(10)] and len(set(split.labels)) == 2
    assert pd.concat(iter_table(path, chunk_rows=3), ignore_index=True).shape == (10, 2)


def test_a_txt_of_one_column_without_delimiters_is_still_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("just words\nmore words\n")
    with pytest.raises(DataError, match=r"unknown file type '\.txt'"):
        read_table(path)


# -- 4. GLUE-style TSVs whose texts start with a quote -------------------------------------------
GLUE = "sentence\tlabel\n" + "".join(
    f"\"That film wasn't bad {i}\t1\n" if i in (3, 11) else f"plain sentence number {i}\t{i % 2}\n" for i in range(16)
)


def test_a_glue_tsv_with_leading_quotes_keeps_every_row(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text(GLUE)
    split = read_labelled_file(path)
    assert len(split) == 16 and split.texts[3] == "\"That film wasn't bad 3" and split.labels[3] == "1"
    streamed = pd.concat(iter_table(path, chunk_rows=4), ignore_index=True)
    pd.testing.assert_frame_equal(streamed, read_table(path))


def test_a_quoted_csv_keeps_its_quoting(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"hello, world",pos\n"say ""hi""",neg\nplain,pos\n')
    assert read_table(path)["text"].tolist() == ["hello, world", 'say "hi"', "plain"]


def test_a_missing_label_after_a_quote_names_quoting_none(tmp_path):
    # A quoted comma: lines differ in commas without quoting too, so CSV quoting stays, and the unmatched
    # quote of line 3 takes line 4 into its row, which then has no label.
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"a, b",pos\n"three four,neg\nfive six"\nseven,neg\n')
    with pytest.raises(DataError, match=r"d\.csv, row 2, column 'label': empty or missing label; .*--quoting none"):
        read_labelled_file(path)


@pytest.mark.parametrize("content, line", [
    ('text\tlabel\n"a\tpos\nb" c\tneg\tx\n', 2),  # the quote closes on line 3, leaving a row too long
    ('text\tlabel\nb\tneg\n"a\tpos\n', 3),  # the quote never closes
])  # fmt: skip
def test_a_parse_error_after_a_quote_names_quoting_none(tmp_path, content, line):
    path = tmp_path / "d.tsv"
    path.write_text(content)
    with pytest.raises(DataError, match=rf"quote character on line {line} .* --quoting none"):
        read_table(path, ReadOptions(quoting=0))


@pytest.mark.parametrize("closed", [True, False])
def test_a_quote_past_the_first_lines_of_a_stream_names_quoting_none(tmp_path, closed):
    lines = [f"plain sentence number {i} with some more words to fill\t{i % 2}" for i in range(3000)]
    lines[2500] = "\"That film wasn't bad\t1"
    if closed:
        lines[2600] = 'a "quoted" word\t0'
    path = tmp_path / "big.tsv"
    path.write_text("\n".join(lines) + "\n")
    assert len(read_table(path)) == 3000  # read whole, every line is seen when choosing the quoting
    where = r"big\.tsv, row 2501: a quote character" if closed else r"big\.tsv: cannot parse as TSV: .* row 2500"
    with pytest.raises(DataError, match=where + ".* --quoting none"):
        list(iter_table(path, chunk_rows=500))


# -- 5. a folder where a file belongs -------------------------------------------------------------
def test_a_folder_where_a_file_belongs_is_named(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    for read in (read_table, lambda p: list(iter_table(p)), read_labelled_file):
        with pytest.raises(DataError, match=r"data: is a folder; pass a file \(\.csv, \.tsv"):
            read(folder)
    assert main(["train", "--train", str(folder), "--no-progress"]) == 2
    assert "--train " + str(folder) + ": is a folder; pass a file" in capsys.readouterr().err


# -- 6. --arrow with --label-map / --lowercase-labels ---------------------------------------------
def test_arrow_renames_labels_like_memory(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("BERTFIT_CACHE_DIR", str(tmp_path / "cache"))
    rows = [(t, {"pos": "Spam", "neg": "ham"}[label]) for t, label in sentiment_rows(40)]
    data = write_csv(tmp_path / "d.csv", rows + [(f"odd words {i}", "SPAM") for i in range(4)])
    label_map = tmp_path / "map.json"
    label_map.write_text(json.dumps({"ham": "HAM"}))
    config = DataConfig(train=str(data), split="0.6,0.2,0.2", label_map=str(label_map), lowercase_labels=True)
    memory, arrow = load_data(config), load_data(DataConfig(**{**vars(config), "arrow": True}))
    assert memory.labels.names == arrow.labels.names == ("ham", "spam")
    for name, split in memory.splits.items():
        assert list(arrow.splits[name].labels) == split.labels


# -- 7, 8. one registry of formats; one Split protocol ---------------------------------------------
def test_a_new_format_is_one_registry_entry(tmp_path, monkeypatch):
    from dataclasses import replace
    from functools import partial

    from bertfit.data import formats
    from bertfit.data.stream import TableWriter

    csv = formats.FORMATS["csv"]
    semicolons = formats.Format("ssv", (".ssv",), lambda path, options: csv.read(path, replace(options, sep=";")),
                                lambda path, rows, options: csv.chunks(path, rows, replace(options, sep=";")),
                                partial(formats._DelimitedSink, sep=";"))  # fmt: skip
    monkeypatch.setitem(formats.FORMATS, "ssv", semicolons)
    monkeypatch.setitem(formats.BY_SUFFIX, ".ssv", semicolons)
    path = tmp_path / "d.ssv"
    with TableWriter(path) as writer:
        writer.write(pd.DataFrame({"text": ["a, b", "c"], "label": ["x", "y"]}))
    assert path.read_text() == "text;label\na, b;x\nc;y\n"
    assert read_table(path)["text"].tolist() == ["a, b", "c"]
    assert pd.concat(iter_table(path, chunk_rows=2))["label"].tolist() == ["x", "y"]


def test_memory_and_arrow_splits_are_both_a_split(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    from bertfit.data.arrow import read_arrow_split
    from bertfit.data.table import Split

    monkeypatch.setenv("BERTFIT_CACHE_DIR", str(tmp_path / "cache"))
    path = write_csv(tmp_path / "d.csv", sentiment_rows(10))
    for split in (read_labelled_file(path), read_arrow_split(path)):
        assert isinstance(split, Split)
        assert isinstance(split.subset([0, 2]), Split) and len(split.subset([0, 2])) == 2


def test_predict_takes_the_header_a_given_text_column_proves(small_model_dir, tmp_path):
    """A column name that is no identifier ('Review Text (EN)') is not taken for a header on its own; the
    user naming it proves it one, in predict as in train."""
    import csv

    from bertfit.cli import main

    source = tmp_path / "reviews.csv"
    source.write_text("id,Review Text (EN)\n1,a lovely day\n2,an awful day\n", encoding="utf-8")
    output = tmp_path / "scored.csv"
    args = ["predict", str(small_model_dir), "--input", str(source), "--output", str(output), "--backend", "torch",
            "--text-column", "Review Text (EN)", "-q"]  # fmt: skip
    assert main(args) == 0
    with open(output, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["Review Text (EN)"] for row in rows] == ["a lovely day", "an awful day"]
