"""The library's exceptions. The CLI turns each into one line and an exit code."""


class BertfitError(Exception):
    """Base of every error bertfit raises on purpose; ``exit_code`` is what the CLI returns."""

    exit_code = 1


class ConfigError(BertfitError):
    """Options that cannot work together, or values out of range."""

    exit_code = 2


class DataError(BertfitError):
    """Input data that cannot be used: the message names file, row and column."""

    exit_code = 3


class DatasetUnavailableError(DataError):
    """A registry data set is neither on disk nor downloadable."""


class ModelError(BertfitError):
    """A model (or model folder) that cannot be loaded."""

    exit_code = 4


class OutputError(BertfitError):
    """An output path that cannot be written: checked before any work starts."""

    exit_code = 5


class OutputExistsError(OutputError):
    """The output folder exists and ``--overwrite`` was not given."""


MAX_LISTED_ROWS = 10


def describe_rows(rows: list[int]) -> str:
    """'row 3' or 'rows 3, 9 and 12 more': row numbers for error messages, the list kept short."""
    shown = ", ".join(str(r) for r in rows[:MAX_LISTED_ROWS])
    more = f" and {len(rows) - MAX_LISTED_ROWS} more" if len(rows) > MAX_LISTED_ROWS else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"
