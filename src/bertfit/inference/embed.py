"""Sentence vectors from a fine-tuned model: what its classifier head sees, for search, clustering
or a downstream model.

- encoder + pooling + head models (the default): the pooled vector the head reads;
- Hugging Face sequence classifiers: the mean of the last hidden states over real tokens.
Long texts cut into windows get the mean of their windows' vectors.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from bertfit.data.readers import ReadOptions, file_format
from bertfit.data.stream import CHUNK_ROWS, TableWriter, iter_table
from bertfit.data.table import checked_texts, naming, text_column_of
from bertfit.errors import ConfigError
from bertfit.folder import atomic_file, check_writable
from bertfit.inference.files import check_output_file
from bertfit.inference.predictor import Predictor

VECTOR_FORMATS = ("npy", "parquet", "jsonl")


def embed_file(model_dir: str | Path, input_path: str | Path, output_path: str | Path, *,
               text_column: str | None = None, chunk_rows: int = CHUNK_ROWS, progress=None,
               overwrite: bool = False) -> tuple[int, int]:  # fmt: skip
    """Write the vectors of every text in ``input_path``: a (rows, dims) ``.npy`` matrix, or the input's
    columns plus an ``embedding`` list column (``.parquet``, ``.jsonl``). Returns (rows, dims).
    The output may not be the input, nor (without ``overwrite``) any other existing file."""
    output_path = Path(output_path)
    kind = output_path.suffix.lstrip(".").lower()
    kind = file_format(output_path) if kind in ("parquet", "pq", "jsonl", "ndjson") else kind
    if kind not in VECTOR_FORMATS:
        raise ConfigError(f"{output_path}: write vectors to .npy, .parquet or .jsonl")
    check_output_file(input_path, output_path, overwrite)  # before the model loads
    check_writable(output_path)
    predictor = Predictor.load(model_dir, backend="torch")  # vectors come from the PyTorch encoder
    source, column, done, dims = str(input_path), None, 0, 0
    matrices: list[np.ndarray] = []
    writer = TableWriter(output_path) if kind != "npy" else None
    with writer or contextlib.nullcontext():
        for chunk in iter_table(input_path, chunk_rows, naming(ReadOptions(), text_column)):
            column = text_column_of(chunk, text_column, source) if column is None else column
            texts = checked_texts(chunk[column].tolist(), source, column, first_row=done + 1)
            vectors = predictor.sentence_vectors(texts)
            dims = vectors.shape[1]
            if writer is None:
                matrices.append(vectors)
            else:
                writer.write(chunk.assign(embedding=list(vectors)))
            done += len(chunk)
            if progress is not None:
                progress(done)
    if writer is None:
        _save_npy(output_path, np.concatenate(matrices) if matrices else np.zeros((0, 0), np.float32))
    return done, dims


def _save_npy(path: Path, matrix: np.ndarray) -> None:
    with atomic_file(path) as temp, open(temp, "wb") as handle:
        np.save(handle, matrix)
