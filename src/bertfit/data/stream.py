"""Read and write tables in chunks, so prediction over a large file runs in constant memory.

Chunks are parsed the way ``read_table`` parses a whole file (header guess, quoting, UTF-8),
decided on the first chunk and kept for the rest.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from bertfit.data.readers import (
    ReadOptions,
    delimiter,
    file_format,
    has_header,
    has_multiline_cell,
    json_record,
    open_binary,
    output_format,
    parse_error,
    parsed_with_quoting,
    read_excel,
    with_header,
)
from bertfit.errors import DataError
from bertfit.folder import atomic_file

CHUNK_ROWS = 8192


def iter_table(
    path: str | Path, chunk_rows: int = CHUNK_ROWS, options: ReadOptions = ReadOptions()
) -> Iterator[pd.DataFrame]:
    """The file's rows in frames of at most ``chunk_rows``; headerless files get columns 0, 1, 2, ...

    Blank lines of a delimited file are rows (of empty cells), so every input line has its output row;
    blank lines at the very end are not."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    kind = file_format(path)
    if kind == "parquet":
        chunks = _parquet_chunks(path, chunk_rows)
    elif kind == "jsonl":
        chunks = _jsonl_chunks(path, chunk_rows)
    elif kind == "excel":
        chunks = iter([with_header(read_excel(path), path, options)])
    else:
        with open_binary(path) as handle:
            head = handle.read(1 << 16).decode("utf-8", errors="replace")
        chunks = _delimited_chunks(path, delimiter(path, head, kind, options), chunk_rows, options)
    yielded = False
    for chunk in chunks:
        yielded = yielded or len(chunk) > 0
        yield chunk
    if not yielded:
        raise DataError(f"{path}: no rows")


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises many types; all mean "not a readable parquet file"
        raise DataError(f"{path}: cannot read Parquet: {err}") from None
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        yield batch.to_pandas()


def _jsonl_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    records: list[dict] = []
    with open_binary(path) as handle:
        for number, line in enumerate(_utf8_lines(handle, path), start=1):
            record = json_record(line, number, path)
            if record is None:
                continue
            records.append(record)
            if len(records) == chunk_rows:
                yield pd.DataFrame.from_records(records)
                records = []
    if records:
        yield pd.DataFrame.from_records(records)


def _delimited_chunks(path: Path, sep: str, chunk_rows: int, options: ReadOptions) -> Iterator[pd.DataFrame]:
    first, quoting = parsed_with_quoting(lambda q: _first_chunk(path, sep, q, chunk_rows), path, sep, options)
    if first.empty:
        raise DataError(f"{path}: the file is empty (no rows)")
    if options.quoting is None and sep == "\t" and has_multiline_cell(first):
        quoting = csv.QUOTE_NONE  # raw TSV: quotes are plain characters (see readers.read_table)
    header = has_header(first, path, options)
    names = [str(v) for v in first.iloc[0]] if header else None
    chunks = _parse_chunks(path, sep, quoting, chunk_rows, skip=1 if header else 0)
    chunk = next(chunks, None)
    while chunk is not None:
        following = next(chunks, None)
        if following is None:
            chunk = _without_trailing_blanks(chunk)
        if names is not None:
            chunk.columns = names
        yield chunk
        chunk = following


def _first_chunk(path: Path, sep: str, quoting: int, chunk_rows: int) -> pd.DataFrame:
    """The first rows, to decide quoting and the header; the file is read again from the start after."""
    probe = _parse_chunks(path, sep, quoting, chunk_rows)
    try:
        first = next(probe, None)
    finally:
        probe.close()
    return pd.DataFrame() if first is None else _without_trailing_blanks(first)


def _without_trailing_blanks(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame without the all-empty rows that blank lines at the end of a file make."""
    filled = (frame != "").any(axis=1).to_numpy()
    last = len(filled) - filled[::-1].argmax() if filled.any() else 0
    return frame.iloc[:last]


def _parse_chunks(path: Path, sep: str, quoting: int, chunk_rows: int, skip: int = 0) -> Iterator[pd.DataFrame]:
    try:
        reader = pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False, quoting=quoting,
                             skip_blank_lines=False, chunksize=chunk_rows, encoding="utf-8-sig",
                             skiprows=skip, compression="infer")  # fmt: skip
        with reader:
            yield from reader
    except pd.errors.EmptyDataError:  # a 0-byte file: no rows (the caller says so)
        return
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: byte 0x{err.object[err.start]:02x} is not valid UTF-8; re-save the file as UTF-8"
        ) from None
    except (pd.errors.ParserError, csv.Error) as err:
        raise parse_error(path, sep, err) from None


def _utf8_lines(handle, path: Path) -> Iterator[str]:
    """Decode line by line (not in buffered blocks) so an error names its true line."""
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a UTF-8 byte-order mark is valid, just noise
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(
                f"{path}, line {number}, character {err.start + 1}: byte 0x{raw[err.start]:02x} is not valid UTF-8; "
                "re-save the file as UTF-8"
            ) from None


class TableWriter:
    """Append frames to a CSV, TSV, JSONL or Parquet file written beside its target and moved into
    place on success, so a crash or an error leaves no half-written output."""

    def __init__(self, path: str | Path, kind: str | None = None):
        self.path = Path(path)
        self.kind = kind or output_format(self.path)
        self._temp: Path | None = None
        self._handle = None
        self._parquet = None

    def __enter__(self) -> TableWriter:
        self._swap = contextlib.ExitStack()
        self._temp = self._swap.enter_context(atomic_file(self.path))
        if self.kind != "parquet":
            self._handle = open(self._temp, "w", encoding="utf-8", newline="")
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if self.kind == "parquet":
            self._write_parquet(frame)
        elif self.kind == "jsonl":
            if len(frame):
                lines = frame.to_json(orient="records", lines=True, force_ascii=False)
                self._handle.write(lines if lines.endswith("\n") else lines + "\n")
        else:
            first = self._handle.tell() == 0
            frame.to_csv(self._handle, index=False, header=first, sep="\t" if self.kind == "tsv" else ",")

    def _write_parquet(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._temp, table.schema)
        self._parquet.write_table(table.cast(self._parquet.schema))

    def __exit__(self, kind, error, traceback) -> None:
        if self._handle is not None:
            self._handle.close()
        if self._parquet is not None:
            self._parquet.close()
        self._swap.__exit__(kind, error, traceback)
