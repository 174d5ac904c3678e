"""Turn the data options into checked train/validation/test splits, before any model is loaded."""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from bertfit.config import DataConfig
from bertfit.data.arrow import read_arrow_split
from bertfit.data.readers import QUOTING, ReadOptions, read_table
from bertfit.data.registry import dataset_files, get_dataset
from bertfit.data.splits import stratified_split
from bertfit.data.table import Split, read_labelled_file
from bertfit.errors import DataError, describe_rows
from bertfit.tasks import LabelSet, Task, detect_task

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


@dataclass
class LoadedData:
    splits: dict[str, Split]
    labels: LabelSet
    task: type[Task]  # the shape of the labels
    label_sep: str = ","
    warnings: list[str] = field(default_factory=list)

    @property
    def train(self) -> Split:
        return self.splits["train"]

    def get(self, name: str) -> Split | None:
        split = self.splits.get(name)
        return split if split is not None and len(split) else None


# -- all splits ------------------------------------------------------------------------------
def load_data(config: DataConfig, for_training: bool = True) -> LoadedData:
    """Read, split and check the data the options describe (``for_training``: say what a run without
    validation or test data will not do; ``bertfit audit`` reads the training rows alone)."""
    header = {"auto": None, "yes": True, "no": False}[config.header]
    display: dict[str, str] = {}
    label_sep = config.label_sep
    if config.dataset:
        spec = get_dataset(config.dataset)
        paths = dataset_files(spec)
        options = ReadOptions(header=spec.header, quoting=spec.quoting)
        text_col, label_col, pair_col = spec.text_column, spec.label_column, spec.text_pair_column
        label_cols = None
        display = spec.label_names
        files = {split: paths.get(split) for split in SPLITS}
        fractions, seed = spec.split, spec.split_seed
        label_sep = label_sep or spec.label_sep
    else:
        quoting = QUOTING[config.quoting] if config.quoting else None
        options = ReadOptions(header=header, quoting=quoting, sep=config.field_sep)
        text_col, label_col, pair_col = config.text_column, config.label_column, config.text_pair_column
        label_cols = config.label_columns
        files = {split: getattr(config, split) for split in SPLITS}
        fractions, seed = config.split_fractions(), config.split_seed

    if files["train"] and not config.arrow:
        _suggest_arrow(Path(files["train"]))
    splits: dict[str, Split] = {}
    read = partial(read_arrow_split if config.arrow else read_labelled_file, label_columns=label_cols)
    for split in SPLITS:
        if files[split]:
            splits[split] = read(files[split], text_col, label_col, options=options, name=split, pair_column=pair_col)
    renames = label_renames(config)
    if renames is not None:
        splits = {name: split.relabelled(renames) for name, split in splits.items()}
    train = splits["train"]
    distinct = list(dict.fromkeys(label for piece in train.pieces() for label in piece.labels))
    task, label_sep = detect_task(distinct, config.task, label_sep, train.source)
    splits = {name: split.with_task(task, label_sep) for name, split in splits.items()}
    confusable = [f"{train.source}: {line}" for line in
                  task.confusable_names(n for p in splits["train"].pieces() for n in task.names_in(p.labels))]  # fmt: skip
    if fractions is not None:
        splits.update(_split_one(splits["train"], fractions, seed, task))
    elif "validation" not in splits and config.validation_split > 0:
        splits.update(_held_out_validation(splits, config.validation_split, seed, task))
    return check_splits(splits, config.on_duplicates, display, task, label_sep, confusable, for_training)


def label_renames(config: DataConfig):
    """``--label-map`` and ``--lowercase-labels`` as one function from a raw label name to the name
    trained on, or None when neither is given."""
    if not config.label_map and not config.lowercase_labels:
        return None
    mapping = read_label_map(Path(config.label_map)) if config.label_map else {}
    lower = config.lowercase_labels

    def rename(name: str) -> str:
        name = mapping.get(name, name)
        return name.lower() if lower else name

    return rename


def read_label_map(path: Path) -> dict[str, str]:
    """A JSON object of from -> to names, or a two-column CSV/TSV of from,to rows (a header is allowed)."""
    import json

    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
        if not isinstance(values, dict):
            raise DataError(f'{path}: expected a JSON object of label renames, e.g. {{"Spam": "spam"}}')
        return {str(k).strip(): str(v).strip() for k, v in values.items()}
    frame = read_table(path, ReadOptions(header=False))
    if frame.shape[1] != 2:
        raise DataError(f"{path}: expected two columns (from, to), found {frame.shape[1]}")
    rows = [(str(a).strip(), str(b).strip()) for a, b in frame.itertuples(index=False)]
    if rows and rows[0] in (("from", "to"), ("label", "new_label")):
        rows = rows[1:]
    return dict(rows)


LARGE_FILE_BYTES = 256 * 2**20


def _suggest_arrow(path: Path) -> None:
    # Measured (bench/train_memory.py): short texts read into memory cost about 7 kB a row once tokenized,
    # tens of times their size on disk.
    size = path.stat().st_size
    if size > LARGE_FILE_BYTES:
        log.warning("%s is %d MB; read into memory it can take tens of times that, and --arrow keeps it on disk",
                    path, size // 2**20)  # fmt: skip


# Under this many held-out rows, the kept epoch would be chosen on a handful of texts (16 binary rows
# at 10% hold out 2), and the rows would teach more in training than they tell in validation.
MIN_HELD_OUT_ROWS = 8
# A class with fewer training rows than this is warned about by name: few-shot work starts around here.
FEW_ROWS_PER_CLASS = 8


def _held_out_validation(splits: dict[str, Split], share: float, seed: int, task: type[Task]) -> dict:
    """Train and a stratified, seeded validation share of it, so the best epoch, early stopping and
    calibration have something to go on."""
    train = splits["train"]
    expected = max(math.ceil(share * len(train)), len(set(task.strata(train.labels))))
    if expected < MIN_HELD_OUT_ROWS:
        log.info("%d training rows: a %.0f%% validation split would hold %d rows, too few to choose an epoch or "
                 "calibrate on (under %d); training on all of them", len(train), 100 * share, expected,
                 MIN_HELD_OUT_ROWS)  # fmt: skip
        return {}
    parts = _split_one(train, (1 - share, share, 0.0), seed, task)
    log.info("no validation file: held out %d of %d training rows (%.0f%%, stratified, seed %d) as validation; "
             "--validation-split 0 trains without", len(parts.get("validation", ())), len(train), 100 * share, seed)  # fmt: skip
    return parts


def _split_one(whole: Split, fractions, seed: int, task: type[Task]) -> dict[str, Split]:
    # an --arrow split's labels are read from disk once, here
    train, validation, test = stratified_split(task.strata(whole.labels), fractions, seed, whole.source)
    parts = {"train": train, "validation": validation, "test": test}
    # a zero share (``--split 0.9,0.1,0``) means no such split, not an empty one
    return {name: replace(whole.subset(rows), name=name) for name, rows in parts.items() if rows}


def check_splits(splits: dict[str, Split], on_duplicates: str, display: dict[str, str],
                 task: type[Task], label_sep: str = ",", warnings: list[str] | None = None,
                 for_training: bool = True) -> LoadedData:  # fmt: skip
    """Cross-split checks: enough classes, unseen labels, texts shared between splits (``warnings``:
    found earlier, logged with these)."""
    warnings = list(warnings or [])
    train = splits["train"]
    train_classes = Counter(task.names_in(train.labels))
    if len(train_classes) < 2:
        only = next(iter(train_classes), "none")
        raise DataError(
            f"{train.source}: the training data has {len(train_classes)} {task.distinct_word} ({only!r}); "
            f"{task.name} needs at least two"
        )
    warnings += _few_rows(train, train_classes, task)
    for name in ("validation", "test"):
        split = splits.get(name)
        if split is None:
            continue
        unseen = task.unseen(set(train_classes), split.labels)
        if unseen:
            warnings.append(
                f"{split.source}: {name} label(s) {', '.join(map(repr, unseen))} never occur in training; "
                "the model cannot learn them"
            )
        splits[name] = _check_duplicates(train, split, on_duplicates, warnings)
    label_set = task.label_set((n for s in splits.values() for n in task.names_in(s.labels)), display)
    if display:
        for split in splits.values():
            split.labels = [_display(v, display) for v in split.labels]
    warnings += _missing_splits(splits) if for_training else []
    for message in warnings:
        log.warning(message)
    return LoadedData(splits=splits, labels=label_set, task=task, label_sep=label_sep, warnings=warnings)


def _few_rows(train: Split, counts: Counter, task: type[Task]) -> list[str]:
    """A warning naming the classes with fewer than ``FEW_ROWS_PER_CLASS`` training rows (none for a
    shape without classes)."""
    if task.no_classes_reason is not None:
        return []
    few = sorted((n, name) for name, n in counts.items() if n < FEW_ROWS_PER_CLASS)
    if not few:
        return []
    named = ", ".join(f"{name!r} ({n} row{'s' if n > 1 else ''})" for n, name in few)
    return [f"{train.source}: few training rows for {named}: a class learnt from under {FEW_ROWS_PER_CLASS} rows "
            "is a guess more often than not; label more of it if you can"]  # fmt: skip


def _missing_splits(splits: dict[str, Split]) -> list[str]:
    """What a run without validation or test data will not do, said before it starts."""
    lost = {
        "validation": "no validation data: the last epoch is kept, with no early stopping, calibration or tuned "
        "threshold (give --validation, or a --validation-split above 0)",
        "test": "no test data: nothing is scored on held-out data (give --test, or --split)",
    }
    return [lost[name] for name in ("validation", "test") if not splits.get(name)]


def _display(value, display: dict[str, str]):
    if isinstance(value, tuple):
        return tuple(display.get(v, v) for v in value)
    return display.get(value, value) if isinstance(value, str) else value


def _check_duplicates(train: Split, split: Split, policy: str, warnings: list[str]) -> Split:
    # The held-out split is the small one: keep its texts in a set and stream the training texts past it.
    held_out = set(split.inputs())
    seen = {text for text in train.inputs() if text in held_out}
    shared = [i for i, text in enumerate(split.inputs()) if text in seen]
    if not shared:
        return split
    rows = [split.rows[i] for i in shared]
    message = (
        f"{split.source}: {len(shared)} of {len(split)} {split.name} texts also occur in the training data "
        f"({describe_rows(rows)}), which inflates {split.name} scores"
    )
    if policy == "error":
        raise DataError(message + "; remove them, or pass --on-duplicates warn or drop")
    if policy == "drop":
        warnings.append(message + f"; dropped from {split.name}")
        drop = set(shared)
        return split.subset([i for i in range(len(split)) if i not in drop])
    warnings.append(message + "; --on-duplicates drop removes them")
    return split
