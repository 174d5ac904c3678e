"""Chunked reading and writing: a file streamed in small chunks predicts exactly as a whole, in every format."""

import json

import numpy as np
import pandas as pd
import pytest

from bertfit.data.readers import read_table
from bertfit.data.stream import TableWriter, iter_table
from bertfit.errors import DataError
from conftest import sentiment_rows, write_csv


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl", "parquet"])
def test_chunks_join_to_the_whole_file(suffix, tmp_path):
    frame = pd.DataFrame({"id": [str(i) for i in range(23)], "text": [t for t, _ in sentiment_rows(23)]})
    path = tmp_path / f"in.{suffix}"
    with TableWriter(path) as writer:
        writer.write(frame.iloc[:10])
        writer.write(frame.iloc[10:])
    chunks = list(iter_table(path, chunk_rows=5))
    assert [len(c) for c in chunks] == [5, 5, 5, 5, 3]
    joined = pd.concat(chunks, ignore_index=True).astype(str)
    pd.testing.assert_frame_equal(joined, frame, check_dtype=False)
    pd.testing.assert_frame_equal(read_table(path).astype(str), frame, check_dtype=False)


def test_headerless_raw_tsv_streams_like_it_reads(tmp_path):
    path = tmp_path / "raw.tsv"
    path.write_text('a\t1\tHe said "hi\nb\t0\tno quotes here\nc\t1\tshe "left"\n', encoding="utf-8")
    whole = read_table(path)
    streamed = pd.concat(iter_table(path, chunk_rows=2), ignore_index=True)
    assert list(streamed.columns) == [0, 1, 2] and len(streamed) == 3
    pd.testing.assert_frame_equal(streamed, whole)


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "out.csv"
    with pytest.raises(RuntimeError), TableWriter(path) as writer:
        writer.write(pd.DataFrame({"a": [1]}))
        raise RuntimeError("crash mid-way")
    assert list(tmp_path.iterdir()) == []


def test_non_utf8_jsonl_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl, line 2, character 14: byte 0xe9 is not valid UTF-8"):
        list(iter_table(path))


@pytest.fixture(scope="module")
def predictor(tiny_models):
    from bertfit import Predictor
    from bertfit.modeling import build_pooled_classifier, load_encoder, load_tokenizer
    from bertfit.tasks import LabelSet, SingleLabelTask

    source = str(tiny_models["bert"])
    labels = LabelSet(("neg", "pos"))
    model = build_pooled_classifier(load_encoder(source), labels, "mean", "linear", frozen=False)
    return Predictor.from_model(
        model, load_tokenizer(source), SingleLabelTask(labels), 32, precision="fp32", batch_size=8
    )


def test_streamed_prediction_equals_whole_file_prediction(predictor, tmp_path):
    from bertfit.inference import predict_file

    rows = [(str(i), t) for i, (t, _) in enumerate(sentiment_rows(50))]
    source = write_csv(tmp_path / "in.csv", rows, header=("id", "text"))
    seen = []
    count = predict_file(predictor, source, tmp_path / "out.parquet", chunk_rows=7, progress=seen.append)
    assert count == 50 and seen == [7, 14, 21, 28, 35, 42, 49, 50]
    out = pd.read_parquet(tmp_path / "out.parquet")
    expected = predictor.predict_proba([t for _, t in rows])
    # Chunks batch texts differently (other padding widths), so equal up to float rounding.
    np.testing.assert_allclose(out[["prob_neg", "prob_pos"]].to_numpy(), expected, atol=1e-6)
    assert list(out["predicted_label"]) == [("neg", "pos")[i] for i in expected.argmax(1)]
    assert list(out["id"]) == [r[0] for r in rows]


def test_empty_text_in_a_later_chunk_names_its_row(predictor, tmp_path):
    from bertfit.inference import predict_file

    lines = [{"text": t} for t, _ in sentiment_rows(12)]
    lines[9]["text"] = "  "
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"in.jsonl, row 10, column 'text': empty or missing text"):
        predict_file(predictor, source, tmp_path / "out.csv", chunk_rows=4)
    assert not (tmp_path / "out.csv").exists()
