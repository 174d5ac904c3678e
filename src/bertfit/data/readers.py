"""Read CSV, TSV, JSONL and Parquet files into DataFrames, with errors that name the file and line."""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bertfit.errors import DataError

log = logging.getLogger(__name__)

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][\w .\-/]{0,63}$")


@dataclass(frozen=True)
class ReadOptions:
    """How to parse a delimited file. ``header=None`` means: decide from the first rows."""

    header: bool | None = None
    quoting: int | None = None  # None: CSV quoting, except TSV rows it would merge (see below)


def file_format(path: Path) -> str:
    """The file's format by suffix; files with no known suffix are sniffed as CSV or TSV."""
    suffix = path.suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    first_line = _read_text(path).split("\n", 1)[0]
    if "\t" in first_line:
        return "tsv"
    if "," in first_line:
        return "csv"
    raise DataError(f"{path}: unknown file type {suffix or '(no suffix)'!r}; use .csv, .tsv, .jsonl or .parquet")


def read_table(path: str | Path, options: ReadOptions = ReadOptions()) -> pd.DataFrame:
    """Read one file. Headerless files get integer column names 0, 1, 2, ..."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    kind = file_format(path)
    if kind == "parquet":
        return _read_parquet(path)
    text = _read_text(path)
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    if kind == "jsonl":
        return _read_jsonl(path, text)
    return _read_delimited(path, text, "\t" if kind == "tsv" else ",", options)


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte-order mark is valid, just noise
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(
            f"{path}, line {line}, character {column}: byte 0x{data[err.start]:02x} is not valid UTF-8; "
            "re-save the file as UTF-8"
        ) from None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow raises many types; all mean "not a readable parquet file"
        raise DataError(f"{path}: cannot read Parquet: {err}") from None


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    records = [json_record(line, number, path) for number, line in enumerate(text.splitlines(), start=1)]
    return pd.DataFrame.from_records([r for r in records if r is not None])


def json_record(line: str, number: int, path: Path) -> dict | None:
    """One JSONL line as a dict (None for a blank line); errors name the file and line."""
    import json

    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
    if not isinstance(record, dict):
        raise DataError(f"{path}, line {number}: expected a JSON object per line, got {type(record).__name__}")
    return record


def _read_delimited(path: Path, text: str, sep: str, options: ReadOptions) -> pd.DataFrame:
    quoting = csv.QUOTE_MINIMAL if options.quoting is None else options.quoting
    frame = _parse_delimited(path, text, sep, quoting)
    if options.quoting is None and sep == "\t" and has_multiline_cell(frame):
        # Raw TSVs (CoLA, the UCI SMS file) use quotes as plain characters; parsing them as
        # CSV quotes silently merges rows. Quoted TSVs (GoEmotions) never span lines.
        log.info("%s: read with quoting off (a quote character would have merged rows)", path.name)
        frame = _parse_delimited(path, text, sep, csv.QUOTE_NONE)
    header = options.header if options.header is not None else looks_like_header(frame)
    if header:
        names = [str(v) for v in frame.iloc[0]]
        frame = frame.iloc[1:].reset_index(drop=True)
        frame.columns = names
        log.info("%s: first row read as a header: %s", path.name, ", ".join(names))
    else:
        log.info("%s: no header row; columns are numbered 0..%d", path.name, frame.shape[1] - 1)
    # Empty cells stay empty strings: the pre-flight check reports them by row.
    return frame


def _parse_delimited(path: Path, text: str, sep: str, quoting: int) -> pd.DataFrame:
    try:
        return pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=None,
            dtype=str,
            keep_default_na=False,
            quoting=quoting,
            skip_blank_lines=True,
        )
    except (pd.errors.ParserError, csv.Error) as err:
        raise DataError(f"{path}: cannot parse as {'TSV' if sep == chr(9) else 'CSV'}: {err}") from None


def has_multiline_cell(frame: pd.DataFrame) -> bool:
    return any(frame[column].str.contains("\n", regex=False).any() for column in frame.columns)


def looks_like_header(frame: pd.DataFrame) -> bool:
    """A first row of short, distinct, identifier-like names and no numbers is a header."""
    if len(frame) < 2:
        return False
    first = [str(v).strip() for v in frame.iloc[0]]
    if any(not v or not _IDENTIFIER.match(v) for v in first) or len(set(first)) != len(first):
        return False
    if any(_is_number(v) for v in first):
        return False
    # A column of numbers under a word is the clearest sign; identifier-like words alone also count.
    return True


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
