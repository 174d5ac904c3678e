"""Data larger than memory (``--arrow``).

Each data file is read in chunks (the same parsing and checks as a file read whole) into an Arrow
file in the cache, then tokenized into another with Hugging Face ``datasets``. Both are
memory-mapped: the process owns a batch at a time, and the rows it has touched are file pages the
kernel may drop and read again. Training and scoring read token ids straight from the mapped file,
so a million rows cost a few bytes each in the process (lengths, labels, outputs, the sampler's
order), not a Python list of every text.

The cache lives under ``$BERTFIT_CACHE_DIR/arrow`` (default: the user cache dir), keyed by the
file's path, size and modification time and the read options, so a re-run skips the reading and
``datasets`` skips the tokenizing.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bertfit.data.columns import IndicatorColumns
from bertfit.data.readers import ReadOptions
from bertfit.data.stream import iter_table
from bertfit.data.table import TextSplit, checked_rows, naming, resolve_columns
from bertfit.errors import ConfigError, DataError
from bertfit.folder import atomic_file
from bertfit.tasks import Task

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "BERTFIT_CACHE_DIR"
READ_CHUNK_ROWS = 65536  # rows parsed and checked at a time
PIECE_ROWS = 16384  # rows handed to label checks, counting and tokenizing at a time
FORMAT = 2  # bump when the layout of the cached rows file changes (2: labels of 0/1 columns as lists)


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).expanduser() / "arrow"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("bertfit")) / "arrow"


class ColumnView:
    """One column of an ``ArrowSplit``: it has a length, and it is read piece by piece when iterated."""

    def __init__(self, split: ArrowSplit, column: str):
        self._split, self._column = split, column

    def __len__(self) -> int:
        return len(self._split)

    def __iter__(self) -> Iterator:
        for piece in self._split.pieces():
            yield from getattr(piece, self._column)


@dataclass
class ArrowSplit:
    """A split whose rows stay on disk; it is a ``Split`` like ``TextSplit`` (``texts``, ``labels`` and
    ``rows`` iterate lazily) and ``pieces()`` gives it as in-memory ``TextSplit`` pieces."""

    name: str
    source: str
    table: object  # datasets.Dataset with columns text, label and maybe pair, memory-mapped
    task: type[Task] | None = None  # the shape labels are read in, once checked (see ``with_task``)
    label_sep: str = ","
    row_numbers: np.ndarray | None = None  # 1-based data rows of ``source`` after ``subset`` (None: all, in order)
    rename: Callable[[str], str] | None = None  # applied to raw label names as they are read (``relabelled``)

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def texts(self) -> ColumnView:
        return ColumnView(self, "texts")

    @property
    def labels(self) -> ColumnView:
        return ColumnView(self, "labels")

    @property
    def pairs(self) -> ColumnView | None:
        return ColumnView(self, "pairs") if "pair" in self.table.column_names else None

    @property
    def rows(self) -> Sequence[int]:
        return range(1, len(self) + 1) if self.row_numbers is None else self.row_numbers

    def inputs(self) -> Iterator:
        for piece in self.pieces():
            yield from piece.inputs()

    def pieces(self) -> Iterator[TextSplit]:
        """The rows as in-memory splits of at most ``PIECE_ROWS`` rows, labels in the task's form."""
        rows = self.rows
        for first in range(0, len(self), PIECE_ROWS):
            batch = self.table[first : first + PIECE_ROWS]
            labels = [tuple(v) if isinstance(v, list) else v for v in batch["label"]]  # 0/1 columns' names
            piece = TextSplit(self.name, self.source, batch["text"], labels,
                              rows[first : first + len(batch["text"])], batch.get("pair"))  # fmt: skip
            piece = piece if self.rename is None else piece.relabelled(self.rename)
            yield piece if self.task is None else piece.with_task(self.task, self.label_sep)

    def with_task(self, task: type[Task], label_sep: str) -> ArrowSplit:
        """The split with labels read in ``task``'s form; checks every row now, so a bad cell stops
        the run before a model loads, naming its row."""
        shaped = replace(self, task=task, label_sep=label_sep)
        for _ in shaped.pieces():
            pass
        return shaped

    def relabelled(self, rename: Callable[[str], str]) -> ArrowSplit:
        """The split with label names renamed as pieces are read; the file stays as it is."""
        before = self.rename
        return replace(self, rename=rename if before is None else (lambda name: rename(before(name))))

    def subset(self, keep: Sequence[int]) -> ArrowSplit:
        """The chosen rows, in the order given; the file stays as it is (``datasets`` keeps an index)."""
        keep = np.asarray(keep, dtype=np.int64)
        return replace(self, table=self.table.select(keep), row_numbers=np.asarray(self.rows)[keep])

    def tokenized(self, tokenizer, max_length: int, token_types: bool,
                  progress: bool = True) -> tuple[TokenColumn, TokenColumn | None]:  # fmt: skip
        """Token ids (and token type ids of pairs), truncated as ``encode_texts`` truncates, from an
        Arrow file ``datasets`` writes beside the rows and reuses while the tokenizer and length stay."""
        import datasets

        pairs = "pair" in self.table.column_names
        wanted = ["input_ids"] + (["token_type_ids"] if pairs and token_types else [])
        columns = {name: datasets.List(datasets.Value("int32")) for name in wanted}

        def tokenize(batch: dict) -> dict:
            if pairs:
                out = tokenizer(batch["text"], batch["pair"], truncation="longest_first", max_length=max_length,
                                return_token_type_ids=True)  # fmt: skip
            else:
                out = tokenizer(batch["text"], truncation=True, max_length=max_length)
            return {name: out[name] for name in wanted}

        from filelock import FileLock

        # As with the rows: one process tokenizes, the others then find its cached result.
        shown = datasets.is_progress_bar_enabled()
        if not progress:
            datasets.disable_progress_bars()
        try:
            with FileLock(f"{self.table.cache_files[0]['filename']}.tokenize.lock"):
                mapped = self.table.map(tokenize, batched=True, batch_size=1000, remove_columns=self.table.column_names,
                                        features=datasets.Features(columns), desc="tokenizing")  # fmt: skip
        finally:
            if shown:
                datasets.enable_progress_bars()
        table = mapped.data.table
        types = TokenColumn(table.column("token_type_ids")) if "token_type_ids" in wanted else None
        return TokenColumn(table.column("input_ids")), types


class TokenColumn:
    """Rows of token ids read straight from a memory-mapped Arrow list column: each row is a numpy
    view of the mapped file, nothing is copied until a batch is padded."""

    def __init__(self, column):
        chunks = [chunk for chunk in column.chunks if len(chunk)]
        self._offsets = [chunk.offsets.to_numpy() for chunk in chunks]
        self._values = [chunk.values.to_numpy() for chunk in chunks]
        self._starts = np.cumsum([0] + [len(chunk) for chunk in chunks])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, row: int) -> np.ndarray:
        chunk = int(np.searchsorted(self._starts, row, side="right")) - 1
        offsets, at = self._offsets[chunk], row - self._starts[chunk]
        return self._values[chunk][offsets[at] : offsets[at + 1]]

    def lengths(self) -> np.ndarray:
        return np.concatenate([np.diff(offsets) for offsets in self._offsets]).astype(np.int32)


def read_arrow_split(path: str | Path, text_column=None, label_column=None, *, options: ReadOptions = ReadOptions(),
                     name: str = "train", pair_column=None, label_columns: str | None = None) -> ArrowSplit:  # fmt: skip
    """Read a labelled file into a memory-mapped Arrow split, checking every row as it passes."""
    try:
        import datasets
    except ImportError:
        raise ConfigError("--arrow needs Hugging Face datasets: pip install 'bertfit[arrow]'") from None
    from filelock import FileLock  # a dependency of datasets

    path = Path(path)
    options = naming(options, text_column, label_column, pair_column, label_columns=label_columns)
    columns = (text_column, label_column, pair_column, label_columns)
    target = cache_dir() / f"{path.stem}-{_fingerprint(path, *columns, options)}.arrow"
    target.parent.mkdir(parents=True, exist_ok=True)
    # Under torchrun every process reads the file; the first writes the copy, the others wait and reuse it.
    with FileLock(f"{target}.lock"):
        if target.is_file():
            log.info("%s: reusing its Arrow copy %s", path, target)
        else:
            _write_rows(path, target, columns, options)
    table = datasets.Dataset.from_file(str(target))
    log.info("%s: %d rows memory-mapped from %s", path, table.num_rows, target)
    return ArrowSplit(name, str(path), table)


def _fingerprint(path: Path, *how) -> str:
    stat = path.stat()
    key = json.dumps([FORMAT, str(path.resolve()), stat.st_size, stat.st_mtime_ns, [repr(v) for v in how]])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _write_rows(path: Path, target: Path, given: tuple, options: ReadOptions) -> None:
    """The file's checked rows as an Arrow stream of text, label and maybe pair; the columns are chosen on
    the first chunk and kept for the rest."""
    import pyarrow as pa

    source = str(path)
    chunks = iter_table(path, READ_CHUNK_ROWS, options)
    first = next(chunks)  # iter_table raises for a file without rows
    text_column, label_column, pair_column, label_columns = given
    columns = resolve_columns(first, text_column, label_column, pair_column, source, label_columns)
    schema = _schema(columns)
    first_row = 1
    with atomic_file(target) as temp, pa.OSFile(str(temp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for frame in itertools.chain([first], chunks):
            values = [v for v in checked_rows(frame, columns, source, first_row) if v is not None]
            nested = [first_row + i for i, label in enumerate(values[1]) if isinstance(label, tuple)]
            if nested and not isinstance(columns[1], IndicatorColumns):
                raise DataError(f"{source}, row {nested[0]}, column {columns[1]!r}: list-valued labels are read in "
                                "memory; join them into one string (--label-sep) or drop --arrow")  # fmt: skip
            writer.write_batch(pa.record_batch([pa.array(v, t) for v, t in zip(values, schema.types)], schema=schema))
            first_row += len(frame)


def _schema(columns: tuple):
    """Strings; the label a list of names where 0/1 columns hold it."""
    import pyarrow as pa

    label = pa.list_(pa.string()) if isinstance(columns[1], IndicatorColumns) else pa.string()
    fields = [("text", pa.string()), ("label", label)] + ([("pair", pa.string())] if columns[2] is not None else [])
    return pa.schema(fields)
