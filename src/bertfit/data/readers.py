"""Read CSV, TSV, JSONL, Parquet and Excel files into DataFrames, with errors that name the file and line.

Delimited and JSONL files may be compressed (``.gz``, ``.bz2``, ``.xz``, ``.zip`` of one file): the format
is the suffix before the compression's. A CSV's delimiter is detected among ``, ; | tab`` unless ``--sep``
names it; the first row is a header when it looks like one (``--header`` decides otherwise), and a header
that repeats a name, or a file with no rows under its header, is refused.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import logging
import lzma
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import pandas as pd

from bertfit.data.columns import LABEL_NAMES, TEXT_NAMES
from bertfit.errors import DataError

log = logging.getLogger(__name__)
T = TypeVar("T")

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
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zip")
SPREADSHEETS = (".xlsx", ".xlsm")
DELIMITERS = (",", ";", "|", "\t")
QUOTING = {"csv": csv.QUOTE_MINIMAL, "none": csv.QUOTE_NONE}
KNOWN_TYPES = ".csv, .tsv, .jsonl, .parquet or .xlsx (compressed: .csv.gz and the like)"
_IDENTIFIER = re.compile(r"^[A-Za-z_][\w .\-/]{0,63}$")


@dataclass(frozen=True)
class ReadOptions:
    """How to parse a delimited file. ``None`` means: decide from the file."""

    header: bool | None = None
    quoting: int | None = None  # None: CSV quoting, except TSV rows it would merge (see below)
    sep: str | None = None  # None: the suffix's, or the one the first lines use (``delimiter``)


def data_suffix(path: Path) -> tuple[str, str | None]:
    """(the format's suffix, the compression's or None): ``a.csv.gz`` -> ``(".csv", ".gz")``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        return (suffixes[-2] if len(suffixes) > 1 else ""), suffixes[-1]
    return (suffixes[-1] if suffixes else ""), None


def open_binary(path: Path) -> BinaryIO:
    """The file's bytes, decompressed by suffix."""
    compression = data_suffix(path)[1]
    try:
        if compression == ".zip":
            archive = zipfile.ZipFile(path)
            members = [m for m in archive.namelist() if not m.endswith("/")]
            if len(members) != 1:
                raise DataError(f"{path}: a .zip of {len(members)} files; bertfit reads a .zip holding one file")
            return archive.open(members[0])
        opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(compression, open)
        handle = opener(path, "rb")
        handle.peek(1) if hasattr(handle, "peek") else None  # a corrupt archive fails here, not mid-read
        return handle
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: cannot decompress it as {compression}: {err}") from None


def file_format(path: Path) -> str:
    """The file's format by suffix; files with no known suffix are sniffed as CSV or TSV."""
    suffix, _ = data_suffix(path)
    if suffix in SPREADSHEETS:
        return "excel"
    if suffix in FORMATS:
        return FORMATS[suffix]
    if suffix in (".xls", ".ods", ".numbers"):
        raise DataError(f"{path}: a {suffix} spreadsheet; save it as CSV (or .xlsx) and pass that")
    first_line = _read_text(path).split("\n", 1)[0]
    if "\t" in first_line:
        return "tsv"
    if "," in first_line:
        return "csv"
    raise DataError(f"{path}: unknown file type {suffix or '(no suffix)'!r}; use {KNOWN_TYPES}")


def output_format(path: Path) -> str:
    """The format an output file will be written in, from its suffix alone (it need not exist yet)."""
    suffix = path.suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    raise DataError(f"{path}: cannot tell the output format from {suffix or '(no suffix)'!r}; "
                    "end the name in .csv, .tsv, .jsonl or .parquet")  # fmt: skip


def read_table(path: str | Path, options: ReadOptions = ReadOptions()) -> pd.DataFrame:
    """Read one file. Headerless files get integer column names 0, 1, 2, ..."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    kind = file_format(path)
    if kind == "parquet":
        return no_empty(_read_parquet(path), path)
    if kind == "excel":
        return with_header(read_excel(path), path, options)
    text = _read_text(path)
    if not text.strip():
        raise DataError(f"{path}: the file is empty (no rows)")
    if kind == "jsonl":
        return no_empty(_read_jsonl(path, text), path)
    return _read_delimited(path, text, delimiter(path, text, kind, options), options)


def no_empty(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    if frame.empty:
        raise DataError(f"{path}: no rows")
    return frame


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


def delimiter(path: Path, text: str, kind: str, options: ReadOptions) -> str:
    """``--sep`` if given; else the suffix's delimiter, unless the first line lacks it and another of
    ``, ; | tab`` splits the first lines into the same number of fields (a semicolon CSV)."""
    if options.sep:
        return options.sep
    default = "\t" if kind == "tsv" else ","
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    if not lines or default in lines[0]:
        return default
    for candidate in DELIMITERS:
        count = lines[0].count(candidate)
        if candidate != default and count and sum(line.count(candidate) == count for line in lines) >= 0.8 * len(lines):
            log.info("%s: fields are separated by %r (pass --sep to choose)", path.name, candidate)
            return candidate
    return default


def _read_text(path: Path) -> str:
    with open_binary(path) as handle:
        data = handle.read()
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


def parsed_with_quoting(parse: Callable[[int], T], path: Path, sep: str, options: ReadOptions) -> tuple[T, int]:
    """``parse(quoting)`` with ``--quoting`` (default CSV quoting), and with quoting off for a TSV that
    CSV quoting cannot parse (an unmatched quote in a raw TSV); returns the result and the quoting used."""
    quoting = csv.QUOTE_MINIMAL if options.quoting is None else options.quoting
    try:
        return parse(quoting), quoting
    except DataError:
        if options.quoting is not None or sep != "\t":
            raise
        log.info("%s: read with quoting off (a quote character is unmatched)", path.name)
        return parse(csv.QUOTE_NONE), csv.QUOTE_NONE


def _read_delimited(path: Path, text: str, sep: str, options: ReadOptions) -> pd.DataFrame:
    frame, _ = parsed_with_quoting(lambda quoting: _parse_delimited(path, text, sep, quoting), path, sep, options)
    if options.quoting is None and sep == "\t" and has_multiline_cell(frame):
        # Raw TSVs (CoLA, the UCI SMS file) use quotes as plain characters; parsing them as
        # CSV quotes silently merges rows. Quoted TSVs (GoEmotions) never span lines.
        log.info("%s: read with quoting off (a quote character would have merged rows)", path.name)
        frame = _parse_delimited(path, text, sep, csv.QUOTE_NONE)
    return with_header(frame, path, options)


def with_header(frame: pd.DataFrame, path: Path, options: ReadOptions) -> pd.DataFrame:
    """The frame with its first row as column names where it is a header (``has_header``)."""
    if has_header(frame, path, options):
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
        raise parse_error(path, sep, err) from None


def parse_error(path: Path, sep: str, err: Exception) -> DataError:
    kind = "TSV" if sep == "\t" else f"fields separated by {sep!r}"
    advice = "; if quotes are plain characters in this file, pass --quoting none" if "EOF" in str(err) else (
        "; pass --sep if another character separates the fields")  # fmt: skip
    return DataError(f"{path}: cannot parse as {kind}: {str(err).strip()}{advice}")


def has_multiline_cell(frame: pd.DataFrame) -> bool:
    return any(frame[column].str.contains("\n", regex=False).any() for column in frame.columns)


def has_header(frame: pd.DataFrame, path: Path, options: ReadOptions) -> bool:
    """Whether the first row names the columns (``--header``, else ``looks_like_header``). A header
    that repeats a name, or one with no rows under it, stops the run."""
    first = [str(v).strip() for v in frame.iloc[0]] if len(frame) else []
    names_like = bool(first) and all(v and _IDENTIFIER.match(v) and not _is_number(v) for v in first)
    known = any(v.lower() in TEXT_NAMES + LABEL_NAMES for v in first)
    header = options.header if options.header is not None else looks_like_header(frame) or (names_like and known)
    if not header:
        return False
    repeated = sorted({v for v in first if first.count(v) > 1})
    if repeated:
        raise DataError(f"{path}: the header names {', '.join(map(repr, repeated))} more than once; "
                        "give each column its own name")  # fmt: skip
    if len(frame) < 2:
        raise DataError(f"{path}: no rows, only a header ({', '.join(first)})")
    return True


def looks_like_header(frame: pd.DataFrame) -> bool:
    """A first row of short, distinct, identifier-like names and no numbers is a header (a repeated
    known name, such as ``text,label,text``, is one too: ``has_header`` refuses it)."""
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
