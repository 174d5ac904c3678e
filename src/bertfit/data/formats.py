"""The file formats bertfit reads and writes: one ``Format`` entry each, holding its suffixes and how a
file of it is read whole, read in chunks, written, and read and written by Ray Data.

Adding a format is one entry in ``FORMATS``. A file whose suffix no entry claims (``.txt``, ``.dat``,
none) is sniffed: text whose first line holds a tab is read as TSV, one holding a comma, semicolon or
pipe as CSV (``parsing.delimiter`` then picks the delimiter).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from bertfit.data.parsing import (
    DELIMITERS,
    ReadOptions,
    choose_quoting,
    data_suffix,
    delimiter,
    has_multiline_cell,
    head_bytes,
    header_layout,
    json_record,
    laid_out,
    open_binary,
    parse_delimited,
    parse_error,
    parsed_with_quoting,
    quoted_from,
    read_text,
    utf8_lines,
    whole_lines,
    with_header,
    without_index,
)
from bertfit.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Format:
    """One file format. Readers give headerless files integer column names 0, 1, 2, ..."""

    name: str
    suffixes: tuple[str, ...]  # the first is the one messages show
    read: Callable[[Path, ReadOptions], pd.DataFrame]  # the whole file
    chunks: Callable[[Path, int, ReadOptions], Iterator[pd.DataFrame]]  # the same rows, at most n a frame
    sink: Callable[[Path], FrameSink] | None = None  # appends frames to a new file; None: not an output format
    ray_read: Callable | None = None  # (ray.data, paths) -> a Ray Dataset with a "path" column
    ray_write: Callable | None = None  # (Ray Dataset, folder) -> None
    typed: bool = False  # stores numbers as numbers (a text format writes every cell as text)


class FrameSink:
    """Where ``TableWriter`` appends frames: ``write`` each, then ``close`` once."""

    def write(self, frame: pd.DataFrame) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


# -- delimited text ----------------------------------------------------------------------------
def _read_delimited(path: Path, options: ReadOptions, sep: str) -> pd.DataFrame:
    text = read_text(path)
    if not text.strip():
        raise DataError(f"{path}: the file is empty (no rows)")
    sep = delimiter(path, text, sep, options)
    chosen = choose_quoting(path, text, sep, options)
    frame, quoting = parsed_with_quoting(lambda q: parse_delimited(path, text, sep, q), path, sep, options, chosen)
    if options.quoting is None and quoting != csv.QUOTE_NONE and sep == "\t" and has_multiline_cell(frame):
        # Raw TSVs (CoLA, the UCI SMS file) use quotes as plain characters; parsing them as
        # CSV quotes silently merges rows. Quoted TSVs (GoEmotions) never span lines.
        log.info("%s: read with quoting off (a quote character would have merged rows)", path.name)
        frame, quoting = parse_delimited(path, text, sep, csv.QUOTE_NONE), csv.QUOTE_NONE
    layout = header_layout(frame, path, options)
    frame = laid_out(frame, path, *layout)
    frame.attrs.update(quoted_from(text, quoting, layout[0]))
    return frame


def _delimited_chunks(path: Path, chunk_rows: int, options: ReadOptions, sep: str) -> Iterator[pd.DataFrame]:
    """Chunks parsed as a whole file is (``_read_delimited``): the delimiter and quoting are chosen on
    the first 64 KB, the header and index on the first chunk, and kept for the rest."""
    head = whole_lines(head_bytes(path))
    sep = delimiter(path, head, sep, options)
    chosen = choose_quoting(path, head, sep, options)
    first, quoting = parsed_with_quoting(lambda q: _first_chunk(path, sep, q, chunk_rows, head), path, sep, options,
                                         chosen)  # fmt: skip
    if first.empty:
        raise DataError(f"{path}: the file is empty (no rows)")
    if options.quoting is None and quoting != csv.QUOTE_NONE and sep == "\t" and has_multiline_cell(first):
        quoting = csv.QUOTE_NONE  # raw TSV: quotes are plain characters (see _read_delimited)
    header, index = header_layout(first, path, options)
    names = [str(v) for v in first.iloc[0]] if header else None
    quoted = quoted_from(head, quoting, header)
    chunks = _parse_chunks(path, sep, quoting, chunk_rows, head, skip=1 if header else 0)
    first_row, chunk = 1, next(chunks, None)
    while chunk is not None:
        following = next(chunks, None)
        if following is None:
            chunk = _without_trailing_blanks(chunk)
        if names is not None:
            chunk.columns = names
            chunk = without_index(chunk, index, path) if first_row == 1 else chunk.iloc[:, index:]
        if quoting != csv.QUOTE_NONE and sep == "\t" and options.quoting is None and has_multiline_cell(chunk):
            raise _joined_lines(path, chunk, first_row)
        chunk.attrs.update(quoted)
        yield chunk
        first_row, chunk = first_row + len(chunk), following


def _joined_lines(path: Path, chunk: pd.DataFrame, first_row: int) -> DataError:
    """A TSV row past the first chunk that CSV quoting joined to the next line (quoting was chosen on
    the first lines, which had no such quote)."""
    joined = chunk.apply(lambda column: column.astype(str).str.contains("\n", regex=False)).any(axis=1)
    row = first_row + int(joined.to_numpy().argmax())
    return DataError(f"{path}, row {row}: a quote character there was read as CSV quoting, which joined it to the "
                     "next line; if quotes are plain characters in this file, pass --quoting none")  # fmt: skip


def _first_chunk(path: Path, sep: str, quoting: int, chunk_rows: int, head: str) -> pd.DataFrame:
    """The first rows, to decide quoting and the header; the file is read again from the start after."""
    probe = _parse_chunks(path, sep, quoting, chunk_rows, head)
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


def _parse_chunks(path: Path, sep: str, quoting: int, chunk_rows: int, head: str,
                  skip: int = 0) -> Iterator[pd.DataFrame]:  # fmt: skip
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
        raise parse_error(path, sep, err, head if quoting != csv.QUOTE_NONE else None) from None


class _DelimitedSink(FrameSink):
    def __init__(self, path: Path, sep: str):
        self._handle, self._sep = open(path, "w", encoding="utf-8", newline=""), sep

    def write(self, frame: pd.DataFrame) -> None:
        first = self._handle.tell() == 0
        frame.to_csv(self._handle, index=False, header=first, sep=self._sep)

    def close(self) -> None:
        self._handle.close()


def _ray_read_delimited(data, paths: list[str], sep: str):
    import pyarrow.csv

    return data.read_csv(paths, parse_options=pyarrow.csv.ParseOptions(delimiter=sep), include_paths=True)


def _ray_write_delimited(dataset, folder: str, sep: str) -> None:
    import pyarrow.csv

    dataset.write_csv(folder, arrow_csv_args_fn=lambda: {"write_options": pyarrow.csv.WriteOptions(delimiter=sep)})


def _delimited(name: str, suffixes: tuple[str, ...], sep: str) -> Format:
    return Format(name, suffixes, partial(_read_delimited, sep=sep), partial(_delimited_chunks, sep=sep),
                  partial(_DelimitedSink, sep=sep), partial(_ray_read_delimited, sep=sep),
                  partial(_ray_write_delimited, sep=sep))  # fmt: skip


# -- JSON Lines --------------------------------------------------------------------------------
def _read_jsonl(path: Path, options: ReadOptions) -> pd.DataFrame:
    text = read_text(path)
    if not text.strip():
        raise DataError(f"{path}: the file is empty (no rows)")
    if _json_list(path, text.encode("utf-8")[:64]):
        return _no_empty(pd.DataFrame.from_records(_json_array(path, text)), path)
    records = [json_record(line, number, path) for number, line in enumerate(text.splitlines(), start=1)]
    return _no_empty(pd.DataFrame.from_records([r for r in records if r is not None]), path)


def _json_list(path: Path, head: bytes) -> bool:
    """A ``.json`` file holding one JSON list (``.jsonl``/``.ndjson`` are JSON lines, one object each)."""
    return data_suffix(path)[0] == ".json" and head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"[")


def _json_array(path: Path, text: str) -> list[dict]:
    """A JSON list of objects (pandas' ``to_json(orient="records")``), or Label Studio's export, as rows."""
    import json

    from bertfit.data.labelstudio import is_task_list, rows_from_export

    try:
        records = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}, line {err.lineno}: not valid JSON ({err.msg})") from None
    if is_task_list(records):
        return rows_from_export(records, path)
    bad = next((i for i, r in enumerate(records, start=1) if not isinstance(r, dict)), None)
    if bad is not None:
        raise DataError(f"{path}: item {bad} of the JSON list is not an object (one per row)")
    return records


def _jsonl_chunks(path: Path, chunk_rows: int, options: ReadOptions) -> Iterator[pd.DataFrame]:
    if _json_list(path, head_bytes(path)):  # a JSON list is read whole
        rows = _json_array(path, read_text(path))
        for start in range(0, len(rows), chunk_rows):
            yield pd.DataFrame.from_records(rows[start : start + chunk_rows])
        return
    records: list[dict] = []
    with open_binary(path) as handle:
        for number, line in enumerate(utf8_lines(handle, path), start=1):
            record = json_record(line, number, path)
            if record is None:
                continue
            records.append(record)
            if len(records) == chunk_rows:
                yield pd.DataFrame.from_records(records)
                records = []
    if records:
        yield pd.DataFrame.from_records(records)


class _JsonlSink(FrameSink):
    def __init__(self, path: Path):
        self._handle = open(path, "w", encoding="utf-8", newline="")

    def write(self, frame: pd.DataFrame) -> None:
        if len(frame):
            lines = frame.to_json(orient="records", lines=True, force_ascii=False)
            self._handle.write(lines if lines.endswith("\n") else lines + "\n")

    def close(self) -> None:
        self._handle.close()


# -- Parquet -----------------------------------------------------------------------------------
def _read_parquet(path: Path, options: ReadOptions) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises many types; all mean "not a readable parquet file"
        raise DataError(f"{path}: cannot read Parquet: {err}") from None
    return _no_empty(frame, path)


def _parquet_chunks(path: Path, chunk_rows: int, options: ReadOptions) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises many types; all mean "not a readable parquet file"
        raise DataError(f"{path}: cannot read Parquet: {err}") from None
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        yield batch.to_pandas()


class _ParquetSink(FrameSink):
    def __init__(self, path: Path):
        self._path, self._writer = path, None

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:  # the schema is the first frame's
            self._writer = pq.ParquetWriter(self._path, table.schema)
        self._writer.write_table(table.cast(self._writer.schema))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


# -- Excel -------------------------------------------------------------------------------------
def read_excel(path: Path) -> pd.DataFrame:
    """The first sheet, every cell a string; needs openpyxl (the ``excel`` extra)."""
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        raise DataError(
            f"{path}: an Excel workbook; save it as CSV, or pip install 'bertfit[excel]' to read it"
        ) from None
    try:
        frame = pd.read_excel(path, header=None, dtype=str, keep_default_na=False)
    except Exception as err:  # openpyxl raises many types; all mean "not a readable workbook"
        raise DataError(f"{path}: cannot read the workbook: {err}") from None
    if frame.empty:
        raise DataError(f"{path}: the first sheet is empty (no rows)")
    return frame


def _read_workbook(path: Path, options: ReadOptions) -> pd.DataFrame:
    return with_header(read_excel(path), path, options)


def _workbook_chunks(path: Path, chunk_rows: int, options: ReadOptions) -> Iterator[pd.DataFrame]:
    yield _read_workbook(path, options)  # a workbook is read whole: openpyxl reads no part of a sheet


def _no_empty(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    if frame.empty:
        raise DataError(f"{path}: no rows")
    return frame


# -- the registry ------------------------------------------------------------------------------
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        _delimited("csv", (".csv",), ","),
        _delimited("tsv", (".tsv", ".tab"), "\t"),
        Format(
            "jsonl",
            (".jsonl", ".ndjson", ".json"),
            _read_jsonl,
            _jsonl_chunks,
            _JsonlSink,
            lambda data, paths: data.read_json(paths, lines=True, include_paths=True),
            lambda dataset, folder: dataset.write_json(folder),
            typed=True,
        ),  # fmt: skip
        Format(
            "parquet",
            (".parquet", ".pq"),
            _read_parquet,
            _parquet_chunks,
            _ParquetSink,
            lambda data, paths: data.read_parquet(paths, include_paths=True),
            lambda dataset, folder: dataset.write_parquet(folder),
            typed=True,
        ),  # fmt: skip
        Format("excel", (".xlsx", ".xlsm"), _read_workbook, _workbook_chunks),
    )
}
BY_SUFFIX = {suffix: f for f in FORMATS.values() for suffix in f.suffixes}
OTHER_SPREADSHEETS = (".xls", ".ods", ".numbers")
KNOWN_TYPES = f"{', '.join(f.suffixes[0] for f in FORMATS.values())} (compressed: .csv.gz and the like)"


def format_of(path: Path) -> Format:
    """The file's format by suffix; a file with another suffix, or none, is sniffed (``sniffed``)."""
    suffix, _ = data_suffix(path)
    if suffix in BY_SUFFIX:
        return BY_SUFFIX[suffix]
    if suffix in OTHER_SPREADSHEETS:
        raise DataError(f"{path}: a {suffix} spreadsheet; save it as CSV (or .xlsx) and pass that")
    return sniffed(path, suffix)


def sniffed(path: Path, suffix: str) -> Format:
    """TSV for text whose first line holds a tab, CSV for one holding a comma, semicolon or pipe."""
    head = head_bytes(path) if path.is_file() else b""
    first_line = "" if b"\x00" in head else whole_lines(head + b"\n").split("\n", 1)[0]
    if "\t" in first_line:
        return FORMATS["tsv"]
    if any(sep in first_line for sep in DELIMITERS):
        return FORMATS["csv"]
    raise DataError(f"{path}: unknown file type {suffix or '(no suffix)'!r}; use {KNOWN_TYPES}, or text "
                    "whose fields are separated by tabs, commas, semicolons or pipes")  # fmt: skip


def file_format(path: Path) -> str:
    """The name of the file's format (``format_of``)."""
    return format_of(path).name


def output_format(path: Path) -> str:
    """The format an output file will be written in, from its suffix alone (it need not exist yet)."""
    found = BY_SUFFIX.get(path.suffix.lower())
    if found is not None and found.sink is not None:
        return found.name
    raise DataError(f"{path}: cannot tell the output format from {path.suffix.lower() or '(no suffix)'!r}; "
                    "end the name in .csv, .tsv, .jsonl or .parquet")  # fmt: skip
