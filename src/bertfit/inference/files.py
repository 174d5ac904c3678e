"""Predict over files of any size: read a chunk, predict it, append it to the output."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from bertfit.data.columns import resolve_column
from bertfit.data.readers import ReadOptions, output_format
from bertfit.data.stream import CHUNK_ROWS, TableWriter, iter_table
from bertfit.data.table import checked_texts, is_blank, naming, read_text_file, text_column_of
from bertfit.data.texts import text_key
from bertfit.errors import DataError, OutputError, OutputExistsError
from bertfit.folder import PAIR_COLUMN_HINT, check_writable
from bertfit.inference.predictor import Predictor

log = logging.getLogger(__name__)


def predict_file(
    predictor: Predictor,
    input_path: str | Path,
    output_path: str | Path,
    *,
    text_column: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress=None,
    pair_column: str | None = None,
    skip_empty: bool = False,
    overwrite: bool = False,
    explainer: Predictor | None = None,
) -> int:
    """Add ``predicted_label`` and one ``prob_<label>`` column per class to the input's columns
    (multi-label: the chosen labels joined by the label separator; regression: ``predicted_value``).

    The file streams through in chunks of ``chunk_rows``, so memory does not grow with its length;
    the output (CSV, TSV, JSONL or Parquet, by suffix) appears only once it is complete.
    ``progress(rows_done)`` is called after each chunk. Returns the row count.

    Every input row has its output row. An empty text stops the run, naming its rows, unless
    ``skip_empty``: then its row gets no prediction (empty cells), and the count is logged.
    The output may not be the input, nor (without ``overwrite``) any other existing file. ``explainer`` (a
    PyTorch ``Predictor`` of the same folder) adds ``explanations`` (see ``explain_file``).
    """
    check_output_file(input_path, output_path, overwrite)
    predictor.check_pairs(pair_column, give=PAIR_COLUMN_HINT)
    source = str(input_path)
    done = skipped = 0
    with TableWriter(output_path) as writer:
        for chunk, column, pair in _chunks(input_path, writer, chunk_rows, text_column, pair_column):
            kept = _kept_rows(chunk, column, pair, skip_empty)
            texts, pairs = checked_inputs(chunk.iloc[kept], column, pair, source, first_row=done + 1)
            scored = with_predictions(chunk, predictor, predictor.predict_proba(texts, pairs), kept)
            if explainer is not None:
                column_values = pd.Series([None] * len(chunk), index=chunk.index, dtype=object)
                column_values.iloc[kept] = explanation_cells(explainer, texts, pairs)
                scored["explanations"] = column_values
            writer.write(scored)
            skipped += len(chunk) - len(kept)
            done += len(chunk)
            if progress is not None:
                progress(done)
    if skipped:
        log.warning("%s: %d empty text(s) got no prediction (--skip-empty)", source, skipped)
    return done


def _chunks(input_path: str | Path, writer: TableWriter, chunk_rows: int, text_column, pair_column):
    """The input in chunks of ``chunk_rows``, with its text (and pair) column found in the first: (chunk, text
    column, pair column). Numeric columns stay numbers where ``writer``'s format stores them."""
    source, column, pair, typed, done = str(input_path), None, None, None, 0
    for chunk in iter_table(input_path, chunk_rows, naming(ReadOptions(), text_column, pair_column)):
        if column is None:
            column, pair = input_columns(chunk, text_column, pair_column, source)
        if typed is None:
            typed = _numeric_columns(chunk, {column, pair}) if writer.typed else []
        yield _with_numbers(chunk, typed, source, done + 1), column, pair
        done += len(chunk)


def _numeric_columns(frame: pd.DataFrame, texts: set) -> list:
    """Columns of a CSV/TSV input (read as strings) whose every value is a number: JSONL and Parquet
    outputs write them as numbers, as the input meant them."""
    found = []
    for name in frame.columns:
        if name in texts or frame[name].dtype != object or not len(frame):
            continue
        values = frame[name].map(lambda v: v if isinstance(v, str) else None)
        if values.isna().any() or (values == "").any():
            continue
        if pd.to_numeric(values, errors="coerce").notna().all():
            found.append(name)
    return found


def _with_numbers(frame: pd.DataFrame, columns: list, source: str, first_row: int) -> pd.DataFrame:
    if not columns or frame.empty:
        return frame
    frame = frame.copy()
    for name in columns:
        numbers = pd.to_numeric(frame[name], errors="coerce")
        bad = np.flatnonzero(numbers.isna().to_numpy())
        if len(bad):
            raise DataError(f"{source}, row {first_row + int(bad[0])}, column {name!r}: not a number, though the "
                            "first rows are; write CSV output to keep the column as text")  # fmt: skip
        frame[name] = numbers
    return frame


def _kept_rows(frame: pd.DataFrame, column, pair, skip_empty: bool) -> np.ndarray:
    """Positions of the rows to predict: all of them, or (``skip_empty``) those with text."""
    if not skip_empty:
        return np.arange(len(frame))
    filled = np.array([not is_blank(v) for v in frame[column].tolist()], dtype=bool)
    if pair is not None:
        filled &= np.array([not is_blank(v) for v in frame[pair].tolist()], dtype=bool)
    return np.flatnonzero(filled)


def check_files(input_path: str | Path, output_path: str | Path, *, text_column=None, pair_column=None,
                overwrite: bool = False) -> None:  # fmt: skip
    """Everything about the files that can go wrong, found before a model loads: the output's format
    (from its suffix), whether it would replace a file, its folder, the input's first rows and columns."""
    output_format(Path(output_path))
    check_output_file(input_path, output_path, overwrite)
    check_writable(Path(output_path))
    first = next(iter_table(input_path, 256, naming(ReadOptions(), text_column, pair_column)))
    input_columns(first, text_column, pair_column, str(input_path))


def check_output_file(input_path: str | Path, output_path: str | Path, overwrite: bool = False) -> None:
    """Refuse an output that would destroy data: the input itself (the same path, or another name for the
    same file, such as a hard link), whatever ``overwrite`` says, or any other existing file without it, as
    a model folder is refused."""
    output = Path(output_path)
    if _same_file(Path(input_path), output):
        raise OutputError(f"--output {output} is the --input file: writing the predictions there would replace "
                          "your data; choose another --output")  # fmt: skip
    # resolved too: in a/missing/../x.csv the folder made for the output would lead back to a/x.csv
    if not overwrite and (output.exists() or output.resolve().exists()):
        raise OutputExistsError(f"--output {output} already exists; pass --overwrite to replace it, or choose "
                                "another --output")  # fmt: skip


def _same_file(first: Path, second: Path) -> bool:
    """The same path once links and ``..`` are resolved, or another name (a hard link) for the same inode."""
    try:
        return first.resolve() == second.resolve() or (second.exists() and os.path.samefile(first, second))
    except OSError:  # the input is missing: reading it will say so
        return False


def input_columns(frame: pd.DataFrame, text_column, pair_column, source: str) -> tuple[object, object]:
    """The text column (named or inferred) and the pair column (only if named)."""
    pair = None if pair_column is None else resolve_column(frame, pair_column, "text pair", source)
    return text_column_of(frame, text_column, source), pair


def checked_inputs(frame: pd.DataFrame, column, pair, source: str, first_row: int = 1) -> tuple[list, list | None]:
    """The frame's texts and pair texts; an empty one stops the run, named by row."""
    advice = "; fill them in, or pass --skip-empty to leave their predictions empty"
    texts = checked_texts(frame[column].tolist(), source, column, first_row, advice)
    return texts, None if pair is None else checked_texts(frame[pair].tolist(), source, pair, first_row, advice)


def with_predictions(frame: pd.DataFrame, predictor: Predictor, outputs: np.ndarray,
                     rows: np.ndarray | None = None) -> pd.DataFrame:  # fmt: skip
    """The frame plus the prediction columns; ``rows`` (positions) had predictions, the others stay empty."""
    frame = frame.copy()
    for name, values in predictor.task.prediction_columns(outputs).items():
        if rows is None or len(rows) == len(frame):
            frame[name] = values
            continue
        column = pd.Series([None] * len(frame), index=frame.index, dtype=object if isinstance(values, list) else float)
        column.iloc[rows] = values
        frame[name] = column
    return frame


def suggest_file(model_dir: str | Path, input_path: str | Path, output_path: str | Path, n: int, *,
                 exclude: str | Path | None = None, text_column: str | None = None, overwrite: bool = False) -> int:  # fmt: skip
    """Write the ``n`` rows of ``input_path`` worth labelling next to ``output_path``: the input's columns
    plus ``row`` (its data row in the input), ``uncertainty``, ``guess`` and ``probability``, most uncertain
    first. Rows whose text is in ``exclude`` (already labelled) are never chosen. Returns the rows written."""
    check_files(input_path, output_path, text_column=text_column, overwrite=overwrite)
    frame, column = read_text_file(input_path, text_column)
    eligible = np.arange(len(frame))
    if exclude is not None:
        labelled = _texts_of(exclude)
        eligible = np.asarray([i for i, text in enumerate(frame[column].tolist()) if text_key(text) not in labelled])
    if n > len(eligible):
        left = f" ({len(eligible)} once the texts of {exclude} are left out)" if exclude is not None else ""
        raise DataError(f"{input_path}: --n {n} is more than its {len(frame)} rows{left}")
    predictor = Predictor.load(model_dir, backend="torch")  # the sentence vectors come from the PyTorch encoder
    texts = [str(frame[column].iloc[i]) for i in eligible]
    found = predictor.suggest(texts, n)
    positions = [int(eligible[s.index]) for s in found]
    chosen = frame.iloc[positions].copy()
    chosen.insert(0, "row" if "row" not in chosen.columns else "input_row", [p + 1 for p in positions])
    chosen = chosen.assign(uncertainty=[round(s.uncertainty, 6) for s in found], guess=[s.guess for s in found],
                           probability=[round(s.probability, 6) for s in found])  # fmt: skip
    if Path(output_path).suffix.lower() == ".json":  # Label Studio's import, the guesses as pre-annotations
        _write_label_studio(output_path, chosen, column, found, predictor)
        return len(chosen)
    with TableWriter(output_path) as writer:
        writer.write(chosen)
    return len(chosen)


def _write_label_studio(path, chosen: pd.DataFrame, column, found: list, predictor: Predictor) -> None:
    from bertfit.data.labelstudio import task, write_tasks

    records = chosen.rename(columns=str).to_dict(orient="records")
    tasks = [task(record, predictor.task.choices_of(s.guess), s.probability) for record, s in zip(records, found)]
    write_tasks(Path(path), tasks, predictor.labels.names, predictor.task.multi_label, str(column))


def _texts_of(path: str | Path) -> set[str]:
    frame, column = read_text_file(path, None, ReadOptions())
    return {text_key(text) for text in frame[column].tolist()}


def explain_file(predictor: Predictor, input_path: str | Path, output_path: str | Path, *,
                 text_column: str | None = None, pair_column: str | None = None, label: str | None = None,
                 method: str | None = None, overwrite: bool = False, chunk_rows: int = 256) -> int:  # fmt: skip
    """The input's rows plus ``explanations``: per row, a JSON list of what was explained (label, output,
    baseline) with the word scores in reading order. Returns the row count."""
    check_output_file(input_path, output_path, overwrite)
    predictor.check_pairs(pair_column, give=PAIR_COLUMN_HINT)
    done = 0
    with TableWriter(output_path) as writer:
        for chunk, column, pair in _chunks(input_path, writer, chunk_rows, text_column, pair_column):
            texts, pairs = checked_inputs(chunk, column, pair, str(input_path), first_row=done + 1)
            writer.write(chunk.assign(explanations=explanation_cells(predictor, texts, pairs, label, method)))
            done += len(chunk)
    return done


def explanation_cells(predictor: Predictor, texts: list[str], pairs: list[str] | None, label: str | None = None,
                      method: str | None = None) -> list[str]:  # fmt: skip
    """Per text, its explanations (one per explained label) as a JSON list: a cell of any output format."""
    import json

    from bertfit.inference.explain import by_text

    explained = by_text(predictor.explain(texts, pairs, label, method), len(texts))
    return [json.dumps([e.to_dict() for e in row], ensure_ascii=False) for row in explained]
