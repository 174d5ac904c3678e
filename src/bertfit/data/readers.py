"""Read CSV, TSV, JSONL, Parquet and Excel files into DataFrames, with errors that name the file and line.

A file's format comes from its suffix, or is sniffed (``formats.format_of``); how text is parsed
(compression, UTF-8, delimiter, quoting, header, a pandas index column) is ``parsing``'s.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bertfit.data.formats import FORMATS, file_format, format_of, output_format
from bertfit.data.parsing import QUOTING, ReadOptions, data_suffix, open_binary
from bertfit.errors import DataError

__all__ = ["QUOTING", "ReadOptions", "data_suffix", "existing_file", "file_format", "open_binary", "output_format",
           "read_table"]  # fmt: skip


def existing_file(path: Path) -> Path:
    """``path``, if it is a file; else a ``DataError`` saying what it is instead."""
    if path.is_dir():
        suffixes = ", ".join(f.suffixes[0] for f in FORMATS.values())
        raise DataError(f"{path}: is a folder; pass a file ({suffixes}, ...)")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def read_table(path: str | Path, options: ReadOptions = ReadOptions()) -> pd.DataFrame:
    """Read one file. Headerless files get integer column names 0, 1, 2, ..."""
    path = existing_file(Path(path))
    return format_of(path).read(path, options)
