"""Parsing text tables: compression, UTF-8, the delimiter, quoting, the header row and a pandas index
column, with errors that name the file and line.

Delimited and JSONL files may be compressed (``.gz``, ``.bz2``, ``.xz``, ``.zip`` of one file): the format
is the suffix before the compression's. A CSV's delimiter is detected among ``, ; | tab`` unless ``--sep``
names it. Quoting is the one under which every line has the same number of fields unless ``--quoting``
names it (``choose_quoting``). The first row is a header when it looks like one or holds a column name
the user gave (``--header`` decides otherwise); a header that repeats a name, or a file with no rows
under its header, is refused. Leading columns that pandas' ``to_csv()`` writes for its index (no name,
or ``Unnamed: 0``, over distinct integers) are dropped.
"""

from __future__ import annotations

import bz2
import csv
import fnmatch
import gzip
import io
import logging
import lzma
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import pandas as pd

from bertfit.data.columns import LABEL_NAMES, TEXT_NAMES
from bertfit.errors import DataError

log = logging.getLogger(__name__)
T = TypeVar("T")

COMPRESSIONS = (".gz", ".bz2", ".xz", ".zip")
DELIMITERS = (",", ";", "|", "\t")
QUOTING = {"csv": csv.QUOTE_MINIMAL, "none": csv.QUOTE_NONE}
QUOTE = '"'
QUOTED_FROM = "bertfit_quoted_from_row"  # frame.attrs key: the first data row at or after a CSV-quoted quote
_IDENTIFIER = re.compile(r"^[A-Za-z_][\w .\-/]{0,63}$")
_INDEX_NAME = re.compile(r"^(Unnamed: \d+)?$")  # what pandas' to_csv() writes over an unnamed index
_ERROR_LINE = re.compile(r"\b(?:line|row) (\d+)")


@dataclass(frozen=True)
class ReadOptions:
    """How to parse a delimited file. ``None`` means: decide from the file."""

    header: bool | None = None
    quoting: int | None = None  # None: the quoting under which every line has the same number of fields
    sep: str | None = None  # None: the suffix's, or the one the first lines use (``delimiter``)
    names: tuple[str, ...] = ()  # column names the user gave: one found in the first row proves a header


# -- bytes and text ----------------------------------------------------------------------------
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


def read_text(path: Path) -> str:
    """The whole file as text; a byte that is not UTF-8 stops the run, naming its line and character."""
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


def head_bytes(path: Path, size: int = 1 << 16) -> bytes:
    """The first ``size`` bytes of the (decompressed) file, for sniffing and for choices made up front."""
    with open_binary(path) as handle:
        return handle.read(size)


def whole_lines(head: bytes) -> str:
    """The head as text, up to its last complete line (a cut multi-byte character is replaced, not fatal)."""
    text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    cut = text.rfind("\n")
    return text[: cut + 1] if cut >= 0 else text


def utf8_lines(handle, path: Path) -> Iterator[str]:
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


# -- delimiter and quoting ---------------------------------------------------------------------
def delimiter(path: Path, text: str, default: str, options: ReadOptions) -> str:
    """``--sep`` if given; else ``default``, the format's delimiter, unless the first line lacks it and
    another of ``, ; | tab`` splits the first lines into the same number of fields (a semicolon CSV)."""
    if options.sep:
        return options.sep
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    if not lines or default in lines[0]:
        return default
    for candidate in DELIMITERS:
        count = lines[0].count(candidate)
        if candidate != default and count and sum(line.count(candidate) == count for line in lines) >= 0.8 * len(lines):
            log.info("%s: fields are separated by %r (pass --sep to choose)", path.name, candidate)
            return candidate
    return default


def choose_quoting(path: Path, text: str, sep: str, options: ReadOptions) -> int:
    """``--quoting`` if given; else CSV quoting, unless under it a record spans lines or records differ in
    their number of fields while every line has the same number of fields with quoting off. That is a raw
    TSV such as GLUE's, where a text may start with a quote: CSV quoting would swallow its tab and the
    next line. ``text`` is the whole file, or its first lines for a file read in chunks."""
    if options.quoting is not None:
        return options.quoting
    if QUOTE not in text or _even_under_csv(text, sep) or not _even_without_quoting(text, sep):
        return csv.QUOTE_MINIMAL
    log.info("%s: read with quoting off: quote characters would join lines, and without quoting every line "
             "has the same number of fields (pass --quoting csv to choose)", path.name)  # fmt: skip
    return csv.QUOTE_NONE


def _even_under_csv(text: str, sep: str) -> bool:
    """Every record on a line of its own, all with one number of fields."""
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    records, widths = 0, set()
    try:
        for row in reader:
            records += 1
            if row:
                widths.add(len(row))
    except csv.Error:
        return False
    return len(widths) <= 1 and records == reader.line_num


def _even_without_quoting(text: str, sep: str) -> bool:
    return len({line.count(sep) for line in text.splitlines() if line.strip()}) == 1


def parsed_with_quoting(parse: Callable[[int], T], path: Path, sep: str, options: ReadOptions,
                        quoting: int = csv.QUOTE_MINIMAL) -> tuple[T, int]:  # fmt: skip
    """``parse(quoting)``, and with quoting off for a TSV that CSV quoting cannot parse (an unmatched
    quote in a raw TSV) unless ``--quoting`` chose; returns the result and the quoting used."""
    try:
        return parse(quoting), quoting
    except DataError:
        if options.quoting is not None or sep != "\t" or quoting == csv.QUOTE_NONE:
            raise
        log.info("%s: read with quoting off (a quote character is unmatched)", path.name)
        return parse(csv.QUOTE_NONE), csv.QUOTE_NONE


def has_multiline_cell(frame: pd.DataFrame) -> bool:
    return any(frame[column].astype(str).str.contains("\n", regex=False).any() for column in frame.columns)


def first_quote_line(text: str) -> int | None:
    """The 1-based line of the first quote character, or None."""
    at = text.find(QUOTE)
    return None if at < 0 else text.count("\n", 0, at) + 1


def parse_error(path: Path, sep: str, err: Exception, text: str | None = None) -> DataError:
    """A parser's error as one line; when the failing line follows a quote character, it says so and
    names ``--quoting none``."""
    kind = "TSV" if sep == "\t" else f"fields separated by {sep!r}"
    message = str(err).strip()
    failing = _ERROR_LINE.search(message)
    quote = first_quote_line(text) if text else None
    if quote is not None and ("EOF" in message or failing is None or quote <= int(failing.group(1))):
        advice = (f"; a quote character on line {quote} was read as opening a quoted field: if quotes are plain "
                  "characters in this file, pass --quoting none")  # fmt: skip
    elif "EOF" in message:
        advice = "; if quotes are plain characters in this file, pass --quoting none"
    else:
        advice = "; pass --sep if another character separates the fields"
    return DataError(f"{path}: cannot parse as {kind}: {message}{advice}")


def parse_delimited(path: Path, text: str, sep: str, quoting: int) -> pd.DataFrame:
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
        raise parse_error(path, sep, err, text if quoting != csv.QUOTE_NONE else None) from None


def quoted_from(text: str, quoting: int, header: bool) -> dict:
    """``frame.attrs`` noting the first data row at or after a quote character read as CSV quoting, so
    that a later error on such a row can suggest ``--quoting none`` (``quote_advice``); empty if none."""
    line = first_quote_line(text) if quoting != csv.QUOTE_NONE else None
    return {} if line is None else {QUOTED_FROM: max(1, line - int(header))}


def quote_advice(start: int | None, rows: list[int]) -> str:
    """The end of a message about ``rows`` when a quote read as CSV quoting from row ``start`` on may explain
    it (``quoted_from``)."""
    if start is None or not rows or max(rows) < start:
        return ""
    return (f"; a quote character (from row {start} on) was read as CSV quoting, which can join a line to the next: "
            "if quotes are plain characters in this file, pass --quoting none")  # fmt: skip


# -- header and index --------------------------------------------------------------------------
def with_header(frame: pd.DataFrame, path: Path, options: ReadOptions) -> pd.DataFrame:
    """The frame with its first row as column names where it is a header, less the leading columns of
    a pandas index (``header_layout``)."""
    return laid_out(frame, path, *header_layout(frame, path, options))


def laid_out(frame: pd.DataFrame, path: Path, header: bool, index: int) -> pd.DataFrame:
    """The frame with the layout ``header_layout`` found: first row as names, index columns dropped."""
    if header:
        names = [str(v) for v in frame.iloc[0]]
        frame = frame.iloc[1:].reset_index(drop=True)
        frame.columns = names
        frame = without_index(frame, index, path)
        log.info("%s: first row read as a header: %s", path.name, ", ".join(map(str, frame.columns)))
    else:
        log.info("%s: no header row; columns are numbered 0..%d", path.name, frame.shape[1] - 1)
    # Empty cells stay empty strings: the pre-flight check reports them by row.
    return frame


def without_index(frame: pd.DataFrame, index: int, path: Path) -> pd.DataFrame:
    """The frame less its first ``index`` columns (a pandas index: named columns follow it)."""
    if not index:
        return frame
    dropped = list(frame.columns[:index])
    log.info("%s: dropped %s %s: a pandas index (no column name, distinct integers)", path.name,
             "column" if index == 1 else "columns", ", ".join(repr(c) for c in dropped))  # fmt: skip
    return frame.iloc[:, index:]


def header_layout(frame: pd.DataFrame, path: Path, options: ReadOptions) -> tuple[bool, int]:
    """(whether the first row names the columns, how many leading columns are a pandas index). The
    header is ``--header``, else ``looks_like_header``, else a first row of known names, else a first row
    holding a column name the user gave. A header that repeats a name, or one with no rows under it,
    stops the run."""
    index = index_columns(frame)
    first = [str(v).strip() for v in frame.iloc[0, index:]] if len(frame) else []
    if options.header is None:
        header = looks_like_header(frame.iloc[:, index:]) or _known_names(first) or names_a_column(first, options.names)
    else:
        header = options.header
    if not header:
        return False, 0
    repeated = sorted({v for v in first if first.count(v) > 1})
    if repeated:
        raise DataError(f"{path}: the header names {', '.join(map(repr, repeated))} more than once; "
                        "give each column its own name")  # fmt: skip
    if len(frame) < 2:
        raise DataError(f"{path}: no rows, only a header ({', '.join(first)})")
    return True, index


def _known_names(first: list[str]) -> bool:
    names_like = bool(first) and all(v and _IDENTIFIER.match(v) and not _is_number(v) for v in first)
    return names_like and any(v.lower() in TEXT_NAMES + LABEL_NAMES for v in first)


def names_a_column(first: list[str], names: tuple[str, ...]) -> bool:
    """Whether a first-row cell is a column name the user gave (case-insensitive; globs such as
    ``emo_*`` match): proof that the row is a header."""
    cells = [cell.lower() for cell in first]
    return any(fnmatch.fnmatchcase(cell, name.lower()) for name in names for cell in cells)


def index_columns(frame: pd.DataFrame) -> int:
    """How many leading columns are a pandas index written by ``to_csv()``: an empty or ``Unnamed: N``
    first-row cell over distinct non-negative integers (0..n-1 as written, any order after a shuffle)."""
    count = 0
    while count < frame.shape[1] - 1 and len(frame) >= 2 and _is_index(frame.iloc[:, count]):
        count += 1
    return count


def _is_index(column: pd.Series) -> bool:
    if not _INDEX_NAME.match(str(column.iloc[0]).strip()):
        return False
    values = column.iloc[1:].astype(str).str.strip()
    return bool(values.str.fullmatch(r"\d+").all()) and values.nunique() == len(values)


def looks_like_header(frame: pd.DataFrame) -> bool:
    """A first row of short, distinct, identifier-like names and no numbers is a header (a repeated
    known name, such as ``text,label,text``, is one too: ``header_layout`` refuses it)."""
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
