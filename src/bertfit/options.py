"""Typed options of every command but ``train`` (whose options are ``TrainConfig``/``DataConfig``).

As with the training options, each field's ``help`` becomes the command's ``--help`` text and
``problems()`` lists every bad value at once, so the CLI only parses, calls and renders. Nothing
here imports torch: a mistyped option is reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from bertfit.config import PRECISIONS, option, raise_problems
from bertfit.folder import AUTO_BACKEND, BACKEND_CHOICES

BACKEND_HELP = (
    "auto (the int8 export on a CPU where its parity check held, else torch), torch (the saved "
    "model), or an ONNX export: onnx, onnx-int8 (see `bertfit export`)"
)
ENGINES = ("local", "ray")


def _model_dir() -> str:
    return option(None, "the model folder (`bertfit train` writes one)", positional=True)


def _backend() -> str:
    return option(AUTO_BACKEND, BACKEND_HELP, choices=BACKEND_CHOICES)


def _precision() -> str:
    return option("fp32", "the torch backend's precision: fp32 (what every other tool computes from the folder), "
                  "or bf16/fp16/auto (faster where native, probabilities within ~1e-2)", choices=PRECISIONS)  # fmt: skip


class _Checked:
    def problems(self) -> list[str]:
        return []

    def validate(self):
        raise_problems(self.problems())
        return self


@dataclass
class EvaluateOptions(_Checked):
    model_dir: str = _model_dir()
    data: str | None = option(None, "labelled file (CSV, TSV, JSONL or Parquet)", required=True)
    text_column: str | None = option(None, "text column (inferred when unambiguous)")
    label_column: str | None = option(None, "label column (inferred when unambiguous)")
    label_columns: str | None = option(None, "multi-label models: the 0/1 label columns, one per label (names a,b,c, "
                                       "a range anger:fear or 2:5, or a glob emo_*; found by themselves if left out)")  # fmt: skip
    text_pair_column: str | None = option(None, "second-text column, for models trained on pairs")
    json: bool = option(False, "print the metrics as JSON")
    backend: str = _backend()
    arrow: bool = option(
        False, "read --data through memory-mapped Arrow and score it in pieces (files larger than memory)"
    )


def _texts_or_file_problems(options, what: str) -> list[str]:
    """``--text`` (with one ``--text-pair`` each) or ``--input FILE --output FILE``, for commands taking either."""
    found = []
    if bool(options.text) == bool(options.input):
        found.append("give --text (one or more) or --input FILE --output FILE")
    if options.input and not options.output:
        found.append(f"--input needs --output FILE for the {what}")
    if options.text_pair and len(options.text_pair) != len(options.text or []):
        found.append("give one --text-pair per --text")
    return found


@dataclass
class PredictOptions(_Checked):
    model_dir: str = _model_dir()
    text: list[str] | None = option(None, "a text to classify (repeatable)", action="append")
    text_pair: list[str] | None = option(None, "the second text of each --text, for pair models", action="append")
    input: str | None = option(None, "file of texts (CSV, TSV, JSONL or Parquet), or a folder or glob of such shards")
    output: str | None = option(None, "where to write the input's rows plus predictions (a folder for shards)")
    engine: str = option(
        "local",
        "local (this process) or ray (Ray Data: an actor pool on the cluster at RAY_ADDRESS, or a local one)",
        choices=ENGINES,
    )
    workers: int = option(2, "Ray actors, each holding the model")
    text_column: str | None = option(None, "text column of --input (inferred when unambiguous)")
    text_pair_column: str | None = option(None, "second-text column of --input, for pair models")
    json: bool = option(False, "print predictions as JSON lines")
    skip_empty: bool = option(False, "rows of --input with an empty text get an empty prediction (default: refused, "
                              "naming the rows)")  # fmt: skip
    overwrite: bool = option(False, "replace an existing --output file (never the --input file itself)")
    explain: bool = option(False, "add which words drove each prediction (see `bertfit explain`; slower: the "
                           "PyTorch model's gradients)")  # fmt: skip
    backend: str = _backend()
    precision: str = _precision()

    def problems(self) -> list[str]:
        found = []
        if self.explain and self.engine == "ray":
            found.append("--explain runs in this process: drop --engine ray")
        found += _texts_or_file_problems(self, "predictions")
        if self.engine == "ray" and not self.input:
            found.append("--engine ray predicts files: give --input FILES --output FOLDER")
        if self.workers < 1:
            found.append("--workers must be at least 1")
        return found


@dataclass
class ExportOptions(_Checked):
    model_dir: str = _model_dir()
    onnx: bool = option(False, "write onnx/model.onnx (the only format so far)", required=True)
    quantize: str | None = option(None, "also write onnx/model_quantized.onnx (dynamic int8)", choices=("int8",))
    data: str | None = option(None, "labelled file for the parity check (default: the model's validation split)")
    text_column: str | None = option(None, "text column of --data")
    label_column: str | None = option(None, "label column of --data")
    text_pair_column: str | None = option(None, "second-text column of --data, for pair models")

    def problems(self) -> list[str]:
        return [] if self.onnx else ["give --onnx: ONNX is the only export format so far"]


@dataclass
class EmbedOptions(_Checked):
    model_dir: str = _model_dir()
    input: str | None = option(None, "file of texts (CSV, TSV, JSONL or Parquet)", required=True)
    output: str | None = option(
        None, ".npy (a rows x dims matrix), or .parquet/.jsonl (the input's columns plus an embedding column)",
        required=True,
    )  # fmt: skip
    text_column: str | None = option(None, "text column of --input (inferred when unambiguous)")
    overwrite: bool = option(False, "replace an existing --output file (never the --input file itself)")


@dataclass
class SearchOptions(_Checked):
    """``bertfit tune``'s own options; the rest are the training options it starts from."""

    trials: int = option(10, "trials to run")
    timeout: float | None = option(None, "stop starting trials after this many seconds")

    def problems(self) -> list[str]:
        found = [] if self.trials >= 1 else ["--trials must be at least 1"]
        if self.timeout is not None and not self.timeout > 0:
            found.append("--timeout must be a positive number of seconds")
        return found


@dataclass
class ServeOptions(_Checked):
    model_dir: str = _model_dir()
    host: str = option("127.0.0.1", "address to bind (default: loopback only)")
    port: int = option(8000, "port")
    backend: str = _backend()
    precision: str = _precision()
    max_texts: int = option(256, "texts per request")
    max_chars: int = option(20_000, "characters per text")
    max_batch: int = option(64, "texts per model call when requests are micro-batched; 1 answers one request at a time")
    max_wait_ms: float = option(
        0.0, "how long a request waits for others to share its model call; 0 still batches what queued during the "
        "previous call",
    )  # fmt: skip
    max_queue: int = option(2048, "texts waiting beyond which requests get 503")

    def problems(self) -> list[str]:
        found = []
        if min(self.max_texts, self.max_chars, self.max_batch, self.max_queue) < 1 or self.max_wait_ms < 0:
            found.append(
                "--max-texts, --max-chars, --max-batch and --max-queue must be at least 1; --max-wait-ms 0 or more"
            )
        if not 1 <= self.port <= 65535:
            found.append(f"--port must be between 1 and 65535, got {self.port}")
        return found


@dataclass
class ReportOptions(_Checked):
    model_dir: str = _model_dir()
    output: str | None = option(None, "where to write it (default: MODEL_DIR/report.html)")


AUDIT_RECIPES = ("frozen", "full")
AUDIT_FOLDS = 5
# The full recipe's epochs per fold when none are given. Measured at 2 (bench/audit.py, SMS spam with 5% of
# labels flipped: precision 0.908, recall 0.865, against 0.814 and 0.821 for the frozen recipe); train's 6
# would triple the time and was not measured. A model fits the clean rows before it memorises the wrong ones,
# so the early epochs are the ones whose disagreements point at the wrong labels.
AUDIT_FULL_EPOCHS = 2
# Two texts this close (cosine of the encoder's sentence vectors) read as the same text to a person.
NEAR_DUPLICATE = 0.95


def audit_epochs(recipe: str, epochs: int | None) -> int | None:
    """An audit's training epochs per fold: ``epochs`` where given, else ``AUDIT_FULL_EPOCHS`` for the full recipe
    (the frozen one trains none)."""
    return epochs or (AUDIT_FULL_EPOCHS if recipe == "full" else None)


@dataclass
class AuditOptions(_Checked):
    """``bertfit audit``'s own options; the data options are ``DataConfig``'s, as for ``train``."""

    output: str | None = option(None, "where to write the rows to check, worst first: CSV, TSV, JSONL or Parquet, "
                                "or .json for Label Studio tasks (the suggested label pre-annotated)", required=True)  # fmt: skip
    folds: int = option(AUDIT_FOLDS, "out-of-fold probabilities from K stratified folds (every row scored by a model that never "
                        "saw it)")  # fmt: skip
    recipe: str = option("frozen", "frozen: encode the texts once and fit a linear head per fold; "
                         "full: fine-tune a model per fold (K trainings)", choices=AUDIT_RECIPES)  # fmt: skip
    epochs: int | None = option(None, f"--recipe full: training epochs per fold (default {AUDIT_FULL_EPOCHS})")
    model: str | None = option(None, "encoder (default: the packaged one, as for train)")
    near_duplicate: float = option(
        NEAR_DUPLICATE, "cosine of sentence vectors from which two texts count as near-duplicates"
    )
    seed: int = option(42, "seed of the folds and of the full recipe's training")
    overwrite: bool = option(False, "replace an existing --output file")

    def problems(self) -> list[str]:
        found = [] if self.folds >= 2 else [f"--folds must be at least 2, got {self.folds}"]
        if not 0 < self.near_duplicate <= 1:
            found.append(f"--near-duplicate must be in (0, 1], got {self.near_duplicate}")
        if self.epochs is not None and self.recipe != "full":
            found.append(
                "--epochs sets the full recipe's training; the frozen recipe trains no epochs (add --recipe full)"
            )
        return found


@dataclass
class SuggestOptions(_Checked):
    model_dir: str = _model_dir()
    input: str | None = option(None, "unlabelled rows (CSV, TSV, JSONL or Parquet)", required=True)
    output: str | None = option(None, "where to write the chosen rows, most uncertain first: the input's columns "
                                "plus the model's guess and the uncertainty; .json: Label Studio tasks (the guess "
                                "pre-annotated) and their labelling config", required=True)  # fmt: skip
    n: int = option(100, "rows to choose")
    exclude: str | None = option(None, "a file of rows already labelled: texts found there are never chosen")
    text_column: str | None = option(None, "text column of --input (inferred when unambiguous)")
    overwrite: bool = option(False, "replace an existing --output file (never the --input file itself)")

    def problems(self) -> list[str]:
        return [] if self.n >= 1 else [f"--n must be at least 1, got {self.n}"]


@dataclass
class ExplainOptions(_Checked):
    model_dir: str = _model_dir()
    text: list[str] | None = option(None, "a text to explain (repeatable)", action="append")
    text_pair: list[str] | None = option(None, "the second text of each --text, for pair models", action="append")
    input: str | None = option(None, "file of texts (CSV, TSV, JSONL or Parquet)")
    output: str | None = option(None, "where to write the input's rows plus the explained label and the word scores")
    text_column: str | None = option(None, "text column of --input (inferred when unambiguous)")
    text_pair_column: str | None = option(None, "second-text column of --input, for pair models")
    label: str | None = option(None, "explain this label instead of the predicted one")
    method: str = option("occlusion", "occlusion: each word's score is how far the output falls without it; "
                         "integrated-gradients: the scores add up to the output's distance from the all-padding "
                         "text", choices=("occlusion", "integrated-gradients"))  # fmt: skip
    json: bool = option(False, "print the explanations as JSON lines")
    overwrite: bool = option(False, "replace an existing --output file (never the --input file itself)")

    def problems(self) -> list[str]:
        return _texts_or_file_problems(self, "explanations")
