"""Predict over files of any size: read a chunk, predict it, append it to the output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bertfit.data.columns import resolve_column
from bertfit.data.stream import CHUNK_ROWS, TableWriter, iter_table
from bertfit.data.table import checked_texts, text_column_of
from bertfit.inference.predictor import Predictor


def predict_file(
    predictor: Predictor,
    input_path: str | Path,
    output_path: str | Path,
    text_column: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress=None,
    pair_column: str | None = None,
) -> int:
    """Add ``predicted_label`` and one ``prob_<label>`` column per class to the input's columns
    (multi-label: the chosen labels joined by the label separator; regression: ``predicted_value``).

    The file streams through in chunks of ``chunk_rows``, so memory does not grow with its length;
    the output (CSV, TSV, JSONL or Parquet, by suffix) appears only once it is complete.
    ``progress(rows_done)`` is called after each chunk. Returns the row count.
    """
    source = str(input_path)
    column = pair = None
    done = 0
    with TableWriter(output_path) as writer:
        for chunk in iter_table(input_path, chunk_rows):
            if column is None:
                column, pair = input_columns(chunk, text_column, pair_column, source)
            texts, pairs = checked_inputs(chunk, column, pair, source, first_row=done + 1)
            writer.write(with_predictions(chunk, predictor, predictor.predict_proba(texts, pairs)))
            done += len(chunk)
            if progress is not None:
                progress(done)
    return done


def input_columns(frame: pd.DataFrame, text_column, pair_column, source: str) -> tuple[object, object]:
    """The text column (named or inferred) and the pair column (only if named)."""
    pair = None if pair_column is None else resolve_column(frame, pair_column, "text pair", source)
    return text_column_of(frame, text_column, source), pair


def checked_inputs(frame: pd.DataFrame, column, pair, source: str, first_row: int = 1) -> tuple[list, list | None]:
    """The frame's texts and pair texts; an empty one stops the run, named by row."""
    texts = checked_texts(frame[column].tolist(), source, column, first_row)
    return texts, None if pair is None else checked_texts(frame[pair].tolist(), source, pair, first_row)


def with_predictions(frame: pd.DataFrame, predictor: Predictor, outputs: np.ndarray) -> pd.DataFrame:
    frame = frame.copy()
    for name, values in predictor.task.prediction_columns(outputs).items():
        frame[name] = values
    return frame
