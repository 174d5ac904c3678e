import json

import pandas as pd
import pytest

from bertfit.data.readers import read_table
from bertfit.errors import DataError
from conftest import SHARED_DATA


def test_reads_csv_with_header(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('text,label\n"hello, world",pos\nbye,neg\n', encoding="utf-8")
    frame = read_table(path)
    assert list(frame.columns) == ["text", "label"]
    assert frame["text"].tolist() == ["hello, world", "bye"]


def test_headerless_tsv_gets_numbered_columns(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_text("src\t1\t\tA sentence.\nsrc\t0\t*\tSentence bad.\n", encoding="utf-8")
    frame = read_table(path)
    assert list(frame.columns) == [0, 1, 2, 3]
    assert frame[3].tolist() == ["A sentence.", "Sentence bad."]


def test_reads_jsonl_and_parquet(tmp_path):
    rows = [{"text": "a b", "label": 1}, {"text": "c d", "label": 0}]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    pd.DataFrame(rows).to_parquet(tmp_path / "a.parquet")
    for name in ("a.jsonl", "a.parquet"):
        frame = read_table(tmp_path / name)
        assert frame["text"].tolist() == ["a b", "c d"]


def test_bad_json_line_is_named(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"a\.jsonl, line 2: not valid JSON"):
        read_table(path)


def test_non_utf8_names_line_and_character(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\nok,1\ncaf\xe9 au lait,0\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv, line 3, character 4: byte 0xe9 is not valid UTF-8"):
        read_table(path)


def test_cola_keeps_quotes_verbatim():
    frame = read_table(SHARED_DATA / "cola" / "in_domain_train.tsv")
    assert len(frame) == 8551
    assert 'Susan whispered "Shut up".' in frame[3].tolist()


def test_raw_tsv_with_stray_quotes_keeps_every_row():
    # The UCI SMS file has texts with an unmatched quote; CSV quoting would merge 2 pairs of rows.
    frame = read_table(SHARED_DATA / "sms_spam" / "SMSSpamCollection")
    assert len(frame) == 5574


def test_quoted_tsv_is_unquoted():
    frame = read_table(SHARED_DATA / "goemotions" / "dev.tsv")
    assert len(frame) == 5426
    # Line 89 is written """I didn't ..."" Oh look a new one!": CSV quoting with doubled quotes.
    assert (
        frame[0][88] == "\"I didn't learn anything from the last short clip video on twitter that cut in mid way "
        'through an confrontation" Oh look a new one!'
    )
    assert not frame[0].str.contains('""', regex=False).any()


def test_csv_with_embedded_newlines():
    frame = read_table(SHARED_DATA / "sms_spam" / "spamdata_v2.csv")
    assert frame.shape == (5572, 2)
    assert list(frame.columns) == ["label", "text"]


def test_unknown_suffix_without_delimiter(tmp_path):
    path = tmp_path / "notes.bin"
    path.write_text("just words\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"unknown file type '\.bin'"):
        read_table(path)
