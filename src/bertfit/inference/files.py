"""Predict over files of any size: read a chunk, predict it, append it to the output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bertfit.data.load import checked_texts, text_column_of
from bertfit.data.stream import CHUNK_ROWS, TableWriter, iter_table
from bertfit.inference.predictor import Predictor


def predict_file(
    predictor: Predictor,
    input_path: str | Path,
    output_path: str | Path,
    text_column: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress=None,
) -> int:
    """Add ``predicted_label`` and one ``prob_<label>`` column per class to the input's columns.

    The file streams through in chunks of ``chunk_rows``, so memory does not grow with its length;
    the output (CSV, TSV, JSONL or Parquet, by suffix) appears only once it is complete.
    ``progress(rows_done)`` is called after each chunk. Returns the row count.
    """
    source = str(input_path)
    column = None
    done = 0
    with TableWriter(output_path) as writer:
        for chunk in iter_table(input_path, chunk_rows):
            column = text_column_of(chunk, text_column, source) if column is None else column
            texts = checked_texts(chunk[column].tolist(), source, column, first_row=done + 1)
            writer.write(with_predictions(chunk, predictor.labels.names, predictor.predict_proba(texts)))
            done += len(chunk)
            if progress is not None:
                progress(done)
    return done


def with_predictions(frame: pd.DataFrame, names: tuple[str, ...], probabilities: np.ndarray) -> pd.DataFrame:
    frame = frame.copy()
    frame["predicted_label"] = [names[i] for i in probabilities.argmax(axis=1)]
    for i, name in enumerate(names):
        frame[f"prob_{name}"] = probabilities[:, i]
    return frame
