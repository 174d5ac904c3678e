"""The model folder's layout: its file names, its typed manifest (``bertfit.json``), and how files and
folders are written so that a crash never leaves half of one.

This module sits at the bottom of the house and imports nothing heavy: reading a folder's manifest,
metrics or report needs no torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertfit.errors import ConfigError, ModelError, OutputError

# -- file names --------------------------------------------------------------------------------
MANIFEST = "bertfit.json"
HEAD_FILE = "head.safetensors"  # bertfit's own head over a pooled encoder (format 1)
METRICS_FILE = "metrics.json"
LOG_FILE = "training_log.csv"
PREDICTIONS_FILE = "predictions_test.csv"
REPORT_FILE = "report.html"
EXPLANATIONS_FILE = "explanations_test.json"  # word attributions of the report's most wrong test rows
LABEL_ISSUES_FILE = "label_issues.csv"  # `bertfit audit --output` here: its report lists them
CARD_FILE = "README.md"
LOSS_PLOT = "loss_curve.png"
CONFUSION_PLOT = "confusion_matrix.png"
ONNX_DIR = "onnx"
# By prediction backend; the names Optimum's ORTModel and its quantizer use, beside a config.json and the tokenizer.
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model_quantized.onnx"}
LEGACY_ONNX_FILES = {"onnx-int8": "model.int8.onnx"}  # what exports before the Optimum layout called them
BACKENDS = ("torch", *ONNX_FILES)  # what computes a folder's logits: its PyTorch model, or an ONNX export
AUTO_BACKEND = "auto"  # the int8 export where its parity check held, else the PyTorch model
BACKEND_CHOICES = (AUTO_BACKEND, *BACKENDS)  # what --backend and Predictor.load take
PARITY_FILE = "parity.json"

# Architectures a folder can hold (see ``bertfit.modeling``).
SEQUENCE_CLASSIFIER = "sequence-classifier"
POOLED_CLASSIFIER = "pooled-classifier"

# Bumped when the layout changes. 3: ``bertfit.json`` holds the task as ``{name, state}``, the state as
# the shape writes it; 2 and 1 kept its name under ``task`` and its state beside the manifest's own fields
# (still read). 2: a pooled classifier is saved as a ``bertfit-pooled`` transformers model (config.json,
# model.safetensors, modeling_bertfit.py); 1 kept the encoder's config and head.safetensors.
FORMAT_VERSION = 3


# -- the manifest ------------------------------------------------------------------------------
@dataclass
class DataSummary:
    """What the folder records of its training data: rows and files per split, warnings, profile."""

    rows: dict[str, int] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    profile: dict | None = None  # label counts per split and the token-length histogram


@dataclass
class SavedTask:
    """The task shape (``bertfit.tasks``) and its fitted state as the shape writes and reads it
    (``Task.to_dict``/``from_dict``): temperature, thresholds, target scale, ... This module holds the
    state without knowing its fields, so a new shape changes nothing here."""

    name: str | None = None  # None: single-label classification (written before shapes had names)
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class Manifest:
    """``bertfit.json``: everything needed to rebuild the model and read its outputs, and how it was made.

    Defaults are what a folder that lacks a field meant when it was written."""

    labels: list[str]
    max_length: int
    format: int = FORMAT_VERSION
    # the model
    architecture: str = SEQUENCE_CLASSIFIER
    pooling: str = "pooler"
    head: str | None = None  # linear or dense, for a pooled classifier
    frozen_encoder: bool = False
    base_model: str | None = None
    base_model_source: str | None = None
    # the task (``bertfit.tasks``): its shape and fitted decision rule
    label_aliases: dict[str, str] = field(default_factory=dict)  # raw label values -> names, e.g. 0 -> ham
    task: SavedTask = field(default_factory=SavedTask)
    # how texts become inputs
    long_text: str = "truncate"
    stride: int = 64
    window_aggregate: str = "mean"
    text_pairs: bool = False
    train_truncated_share: float = 0.0
    precision: str = "auto"
    eval_batch_size: int = 64
    # how training went
    best_epoch: int | None = None
    epochs_run: int | None = None
    stop_reason: str | None = None  # all epochs ran, early stopping, or the time budget
    data: DataSummary = field(default_factory=DataSummary)
    config: dict[str, Any] = field(default_factory=dict)  # the TrainConfig, as ``TrainConfig.to_dict``
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        return {"format": values.pop("format"), **values}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = MANIFEST) -> Manifest:
        """Checked once, here: the format version, the required fields, the nested data summary."""
        version = values.get("format")
        if not isinstance(version, int) or version < 1:
            raise ModelError(f"{source}: no format version; the folder was written by a bertfit before 0.1: "
                             "train it again")  # fmt: skip
        if version > FORMAT_VERSION:
            raise ModelError(f"{source}: format {version} is newer than this bertfit reads ({FORMAT_VERSION}); "
                             "upgrade bertfit")  # fmt: skip
        missing = [name for name in ("labels", "max_length") if name not in values]
        if missing:
            raise ModelError(f"{source}: missing {', '.join(missing)}; the folder is incomplete")
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in values.items() if k in known}
        data = fields.get("data") or {}
        summary_fields = {f.name for f in dataclasses.fields(DataSummary)}
        fields["data"] = DataSummary(**{k: v for k, v in data.items() if k in summary_fields})
        fields["task"] = _saved_task(values, known)
        return cls(**fields)

    def check_pairs(self, pairs, *, give: str = "pairs", model: str = "the model") -> None:
        """The one rule on second texts, whoever is asked to predict: a model trained on text pairs needs
        the second text of each (given one text, it would score half of each input), and a model trained
        on single texts takes none. ``pairs``: what the caller was given (None: nothing); ``give`` names
        it in the caller's terms (``--text-pair``, ``text_pairs``)."""
        if self.text_pairs and pairs is None:
            raise ConfigError(f"{model} was trained on text pairs: give {give} too, the second text of each")
        if not self.text_pairs and pairs is not None:
            raise ConfigError(f"{model} was trained on single texts: drop {give}")


# How a file's second texts are named where a pair-rule message speaks to a file's user (predict, evaluate,
# export, shards): one wording, so the messages agree.
PAIR_COLUMN_HINT = "a text pair column (--text-pair-column)"


def _saved_task(values: dict[str, Any], known: set[str]) -> SavedTask:
    """The task in either layout: ``{name, state}`` (format 3), or the shape's name under ``task`` with its
    state spread beside the manifest's fields (formats 1 and 2: the state is what no field claims). The
    layout is told by the value rather than the version, so a hand-edited version cannot mislead it."""
    task = values.get("task")
    if isinstance(task, dict):
        return SavedTask(task.get("name"), dict(task.get("state") or {}))
    return SavedTask(task, {key: value for key, value in values.items() if key not in known})


def read_manifest(folder: str | Path) -> Manifest:
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ModelError(f"{folder}: not a bertfit model folder (no {MANIFEST})")
    values = read_folder_json(path)
    if not isinstance(values, dict):
        raise ModelError(f"{path}: unreadable (not a JSON object); {DAMAGED}")
    return Manifest.from_dict(values, str(path))


DAMAGED = "the folder is damaged: copy it again from where it came from, or train it again"


def read_folder_json(path: Path):
    """A JSON file of a model folder; an empty, cut-off or garbled one is refused in one line naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:  # garbage bytes: the JSON it held was overwritten
        raise ModelError(f"{path}: not UTF-8 text, so not the JSON it should be; {DAMAGED}") from None
    if not text.strip():
        raise ModelError(f"{path}: empty; {DAMAGED}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelError(f"{path}: not valid JSON ({err.msg}, line {err.lineno}); {DAMAGED}") from None


def read_json(path: Path) -> dict:
    """A JSON file of the folder that prediction does not need (metrics), or {} where it is missing or
    damaged, said in one line: a server still serves a folder whose metrics file was lost."""
    if not path.is_file():
        return {}
    try:
        value = read_folder_json(path)
    except ModelError as err:
        logging.getLogger(__name__).warning("%s", err)
        return {}
    return value if isinstance(value, dict) else {}


# -- writing without half-written results ------------------------------------------------------
def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_json_atomically(path: Path, value) -> None:
    """A JSON file that is either the old one or the complete new one, never half of either."""
    with atomic_file(path) as temp:
        write_json(temp, value)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``: moved onto it with the umask's permissions when the block
    ends cleanly, removed when it raises. Readers see the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(descriptor)
    temp = Path(name)
    try:
        yield temp
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    os.chmod(temp, 0o666 & ~current_umask())
    os.replace(temp, path)


def sha256_of(path: Path) -> str:
    """The file's sha256, read in 4 MiB blocks (data sets and model weights are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def check_writable(target: Path, flag: str = "--output") -> None:
    """Fail before any work if nothing can be written beside ``target``: the staging sibling that
    ``atomic_file``/``atomic_folder`` will use is created and removed, and so are folders made to hold it."""
    target = Path(target)
    made: list[Path] = []
    try:
        parent = target.parent
        missing = [p for p in [parent, *parent.parents] if not p.exists()]
        for folder in reversed(missing):
            folder.mkdir()
            made.append(folder)
        probe = Path(tempfile.mkdtemp(prefix=f".{target.name}.probe-", dir=parent))
        probe.rmdir()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        blocker = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            reason = f"{blocker} is a file, not a folder"
        raise OutputError(f"cannot write {flag} {target}: {reason}; choose another path") from None
    finally:
        for folder in reversed(made):
            folder.rmdir()


@contextlib.contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target``, filled in the block and then swapped into place whole:
    a crash leaves the old folder (or none) and a hidden sibling the next write clears."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield staging
        _use_umask_permissions(staging)
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def current_umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _use_umask_permissions(folder: Path) -> None:
    """Temp folders and files are private (0700/0600); the finished folder gets normal permissions."""
    umask = current_umask()
    os.chmod(folder, 0o777 & ~umask)
    for path in folder.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def _swap_into_place(staging: Path, target: Path) -> None:
    if not target.exists():
        os.replace(staging, target)
        return
    if _exchange(staging, target):  # staging now holds the old folder
        shutil.rmtree(staging, ignore_errors=True)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, retired / target.name)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE), so no moment exists where the
    target is missing; False where the system or file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0
