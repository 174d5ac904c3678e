"""Hyper-parameter search with Optuna, scored on the validation split only (the test split is never
read), with bad trials stopped early by a median pruner on the per-epoch validation score.

Searched: learning rate (log scale), epochs, batch size, warmup share and dropout (0 or 0.1). The result is a config file
that ``bertfit train --config`` takes as it is.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bertfit.config import TrainConfig
from bertfit.errors import ConfigError, DataError
from bertfit.folder import check_writable
from bertfit.training.loop import Callbacks, EpochResult
from bertfit.training.tracking import reporting

log = logging.getLogger(__name__)

TRIALS_FILE = "trials.json"
BEST_CONFIG_FILE = "best_config.json"


@dataclass
class TuneResult:
    output_dir: Path
    metric: str
    best_value: float
    best_params: dict
    trials: list[dict]


class _PruneOnValidation(Callbacks):
    """Reports each epoch's validation score to the trial and stops it when the pruner says so."""

    def __init__(self, trial, inner: Callbacks):
        self.trial, self.inner = trial, inner

    def on_train_begin(self, total_steps: int, done: int = 0) -> None:
        self.inner.on_train_begin(total_steps, done)

    def on_step(self, loss: float) -> None:
        self.inner.on_step(loss)

    def on_train_end(self) -> None:
        self.inner.on_train_end()

    def on_epoch_end(self, record: EpochResult, key: str) -> None:
        import optuna

        self.inner.on_epoch_end(record, key)
        if record.validation is None:
            return
        self.trial.report(record.validation[key], record.epoch)
        if self.trial.should_prune():
            self.inner.on_train_end()
            raise optuna.TrialPruned(f"epoch {record.epoch}: validation {key} {record.validation[key]:.4f}")


def suggest(trial, config: TrainConfig) -> dict:
    """One point of the search space; a frozen encoder's head wants larger learning rates."""
    low, high = (1e-4, 1e-2) if config.freeze_all else (1e-5, 3e-4)
    return {
        "learning_rate": trial.suggest_float("learning_rate", low, high, log=True),
        "epochs": trial.suggest_int("epochs", 2, 8),
        "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64]),
        "warmup_ratio": trial.suggest_float("warmup_ratio", 0.0, 0.2),
        "dropout": trial.suggest_categorical("dropout", [0.0, 0.1]),
    }


def tune(config: TrainConfig, trials: int = 10, timeout: float | None = None,
         callbacks: Callbacks = Callbacks()) -> TuneResult:  # fmt: skip
    """Run ``trials`` trials (or until ``timeout`` seconds), write the trials and the best config into
    ``tune_output_dir(config)``, refused before any work where it exists (unless ``overwrite``)."""
    from bertfit.data.load import load_data
    from bertfit.training.run import fit_once
    from bertfit.training.save import check_output_free

    optuna = require_optuna()
    config = replace(config.validate(), output=str(tune_output_dir(config)))
    output = config.output_dir
    check_output_free(output, config.overwrite)
    check_writable(output)
    data = load_data(config.data)
    if not data.get("validation"):
        raise DataError("tuning scores trials on a validation split: give --validation FILE or --split")
    data = replace(data, splits={k: v for k, v in data.splits.items() if k != "test"})
    callbacks, tracked = reporting(config, callbacks)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    metric = "validation score"

    def objective(trial) -> float:
        nonlocal metric
        params = suggest(trial, config)
        started = time.perf_counter()
        callbacks.on_repeat_begin(f"trial {trial.number}", params)
        try:
            result = fit_once(replace(config, **params, seeds=1, folds=0, calibrate=False), data,
                              _PruneOnValidation(trial, callbacks))  # fmt: skip
        except BaseException:
            callbacks.on_repeat_end({}, "KILLED")  # pruned (or stopped): the trial's run ends with it
            raise
        callbacks.on_repeat_end(result.metrics)
        key = result.task.primary_metric
        metric = f"validation {key}"
        best = max(r.validation[key] for r in result.history)
        log.info("trial %d: %s -> %s %.4f (%.0fs)", trial.number, _short(params), metric, best,
                 time.perf_counter() - started)  # fmt: skip
        return best

    try:
        study.optimize(objective, n_trials=trials, timeout=timeout)
    except BaseException:
        if tracked is not None:
            tracked.end("FAILED")
        raise
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not finished:
        raise ConfigError("no trial finished; allow more --trials or a longer --timeout")
    records = [{"number": t.number, "state": t.state.name.lower(), "params": t.params, "value": t.value,
                "epochs_reported": len(t.intermediate_values)} for t in study.trials]  # fmt: skip
    result = TuneResult(output, metric, study.best_value, study.best_params, records)
    _write(result, config)
    if tracked is not None:
        tracked.finish_search(result.metric, result.best_value, result.best_params, output)
    return result


def tune_output_dir(config: TrainConfig) -> Path:
    """Where a search writes its trials and best config: ``--output``, else the training folder's name with
    ``-tune`` (``runs/sms_spam-tune``), so a search never fills the folder its best run will train into."""
    if config.output:
        return Path(config.output)
    return config.output_dir.with_name(config.output_dir.name + "-tune")


def _short(params: dict) -> str:
    return ", ".join(f"{k} {v:.2e}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items())


def _write(result: TuneResult, config: TrainConfig) -> None:
    """``trials.json`` (every trial) and ``best_config.json`` (the run's options with the best values)."""
    from bertfit.folder import write_json_atomically

    result.output_dir.mkdir(parents=True, exist_ok=True)
    best = {**config.to_dict(), **result.best_params, "output": None, "overwrite": False}
    write_json_atomically(result.output_dir / BEST_CONFIG_FILE, best)
    write_json_atomically(result.output_dir / TRIALS_FILE, {"metric": result.metric, "best_value": result.best_value,
                                                            "best_params": result.best_params,
                                                            "trials": result.trials})  # fmt: skip


def require_optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("hyper-parameter search needs its extra: pip install 'bertfit[tune]'") from None
    return optuna


def format_tune(result: TuneResult) -> str:
    pruned = sum(t["state"] == "pruned" for t in result.trials)
    lines = [f"{len(result.trials)} trials ({pruned} pruned); best {result.metric} {result.best_value:.4f} with "
             f"{_short(result.best_params)}"]  # fmt: skip
    lines.append(f"train with it: bertfit train --config {result.output_dir / BEST_CONFIG_FILE}")
    return "\n".join(lines)
