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

from bertfit.data.readers import ReadOptions, file_format, has_multiline_cell, json_record, looks_like_header
from bertfit.errors import DataError
from bertfit.folder import atomic_file

CHUNK_ROWS = 8192


def iter_table(
    path: str | Path, chunk_rows: int = CHUNK_ROWS, options: ReadOptions = ReadOptions()
) -> Iterator[pd.DataFrame]:
    """The file's rows in frames of at most ``chunk_rows``; headerless files get columns 0, 1, 2, ..."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    kind = file_format(path)
    if kind == "parquet":
        yield from _parquet_chunks(path, chunk_rows)
    elif kind == "jsonl":
        yield from _jsonl_chunks(path, chunk_rows)
    else:
        yield from _delimited_chunks(path, "\t" if kind == "tsv" else ",", chunk_rows, options)


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
    with open(path, "rb") as handle:
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
    quoting = csv.QUOTE_MINIMAL if options.quoting is None else options.quoting
    probe = _parse_chunks(path, sep, quoting, chunk_rows)
    first = next(probe, None)
    probe.close()  # closes the file; the rows are read again below with the settings decided here
    if first is None:
        raise DataError(f"{path}: the file is empty")
    if options.quoting is None and sep == "\t" and has_multiline_cell(first):
        quoting = csv.QUOTE_NONE  # raw TSV: quotes are plain characters (see readers.read_table)
    header = options.header if options.header is not None else looks_like_header(first)
    names = [str(v) for v in first.iloc[0]] if header else None
    for chunk in _parse_chunks(path, sep, quoting, chunk_rows, skip=1 if header else 0):
        if names is not None:
            chunk.columns = names
        yield chunk


def _parse_chunks(path: Path, sep: str, quoting: int, chunk_rows: int, skip: int = 0) -> Iterator[pd.DataFrame]:
    try:
        reader = pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False, quoting=quoting,
                             skip_blank_lines=True, chunksize=chunk_rows, encoding="utf-8-sig",
                             skiprows=skip)  # fmt: skip
        with reader:
            yield from reader
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: byte 0x{err.object[err.start]:02x} is not valid UTF-8; re-save the file as UTF-8"
        ) from None
    except (pd.errors.ParserError, csv.Error) as err:
        raise DataError(f"{path}: cannot parse as {'TSV' if sep == chr(9) else 'CSV'}: {err}") from None


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
        self.kind = kind or (file_format(self.path) if self.path.suffix else "csv")
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
