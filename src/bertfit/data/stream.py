"""Read and write tables in chunks, so prediction over a large file runs in constant memory.

Chunks are parsed the way ``read_table`` parses a whole file (header guess, quoting, UTF-8),
decided on the first chunk and kept for the rest; each format's chunk reader and writer is its
``formats.Format`` entry's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from bertfit.data.formats import FORMATS, format_of, output_format
from bertfit.data.parsing import ReadOptions
from bertfit.data.readers import existing_file
from bertfit.errors import DataError
from bertfit.folder import atomic_file

CHUNK_ROWS = 8192


def iter_table(
    path: str | Path, chunk_rows: int = CHUNK_ROWS, options: ReadOptions = ReadOptions()
) -> Iterator[pd.DataFrame]:
    """The file's rows in frames of at most ``chunk_rows``; headerless files get columns 0, 1, 2, ...

    Blank lines of a delimited file are rows (of empty cells), so every input line has its output row;
    blank lines at the very end are not."""
    path = existing_file(Path(path))
    yielded = False
    for chunk in format_of(path).chunks(path, chunk_rows, options):
        yielded = yielded or len(chunk) > 0
        yield chunk
    if not yielded:
        raise DataError(f"{path}: no rows")


class TableWriter:
    """Append frames to a CSV, TSV, JSONL or Parquet file written beside its target and moved into
    place on success, so a crash or an error leaves no half-written output."""

    def __init__(self, path: str | Path, kind: str | None = None):
        self.path = Path(path)
        self.kind = kind or output_format(self.path)
        self._sink = None

    @property
    def typed(self) -> bool:
        """Whether the output format stores numbers as numbers (JSON Lines, Parquet)."""
        return FORMATS[self.kind].typed

    def __enter__(self) -> TableWriter:
        self._swap = contextlib.ExitStack()
        temp = self._swap.enter_context(atomic_file(self.path))
        self._sink = FORMATS[self.kind].sink(temp)
        return self

    def write(self, frame: pd.DataFrame) -> None:
        self._sink.write(frame)

    def __exit__(self, kind, error, traceback) -> None:
        if self._sink is not None:
            self._sink.close()
        self._swap.__exit__(kind, error, traceback)
