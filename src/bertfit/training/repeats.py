"""Repeated training, to show how much a score owes to chance: one run per seed (``--seeds N``) or
per fold of a stratified K-fold over train + validation (``--folds K``). Every metric is reported
as mean ± standard deviation; the run with the best validation score is the one kept."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from bertfit.config import TrainConfig
from bertfit.data.load import LoadedData
from bertfit.data.table import TextSplit
from bertfit.training.loop import Callbacks

log = logging.getLogger(__name__)


def fit_repeated(config: TrainConfig, data: LoadedData, fit_once: Callable, callbacks: Callbacks = Callbacks()):
    """Run every seed or fold with ``fit_once(config, data, callbacks)``; return the best run's result
    with ``summary`` over all of them."""
    if config.folds:
        by, runs = "fold", [(f"fold {i}", replace(config, folds=0), part)
                            for i, part in enumerate(fold_splits(data, config.folds, config.data.split_seed), 1)]  # fmt: skip
    else:
        by, runs = "seed", [(f"seed {config.seed + i}", replace(config, seed=config.seed + i, seeds=1), data)
                            for i in range(config.seeds)]  # fmt: skip
    names, metrics, best, best_name = [], [], None, None
    for name, run_config, run_data in runs:
        log.info("== %s (%d of %d) ==", name, len(names) + 1, len(runs))
        callbacks.on_repeat_begin(name, {by: name.split()[-1], "seed": run_config.seed})
        result = fit_once(run_config, run_data, callbacks)
        callbacks.on_repeat_end(result.metrics)
        names.append(name)
        metrics.append(result.metrics)
        # Only the best model stays in memory; the others leave their metrics behind.
        if best is None or _score(result) > _score(best):
            best, best_name = result, name
    best.summary = {"by": by, "runs": names, "kept": best_name, **summarise(metrics)}
    log.info("kept %s (best validation %s)", best_name, best.task.primary_metric)
    return best


def _score(result) -> float:
    validation = result.metrics.get("validation")
    return validation[result.task.primary_metric] if validation else -np.inf


def fold_splits(data: LoadedData, folds: int, seed: int) -> list[LoadedData]:
    """K (train, validation) partitions of train + validation, stratified; the test split is shared."""
    pool = joined(data.splits["train"], data.get("validation"))
    found = []
    for train_rows, held_out in stratified_folds(data.task.strata(pool.labels), folds, seed):
        splits = {"train": replace(pool.subset(list(train_rows)), name="train"),
                  "validation": replace(pool.subset(list(held_out)), name="validation")}  # fmt: skip
        if data.get("test"):
            splits["test"] = data.splits["test"]
        found.append(replace(data, splits=splits))
    return found


def stratified_folds(strata: list[str], folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kept, held out) row positions of each of ``folds`` stratified, seeded folds."""
    from sklearn.model_selection import StratifiedKFold

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes rarer than K: sklearn warns and still splits
        return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(strata)), strata))


def joined(train: TextSplit, validation: TextSplit | None) -> TextSplit:
    """``train`` with ``validation``'s rows after its own (each keeping its row number)."""
    if validation is None:
        return train
    pairs = None if train.pairs is None else train.pairs + (validation.pairs or [])
    return replace(train, source=f"{train.source} + {validation.source}", texts=train.texts + validation.texts,
                   labels=train.labels + validation.labels, rows=train.rows + validation.rows, pairs=pairs)  # fmt: skip


def summarise(runs: list[dict]) -> dict:
    """Per split and scalar metric: mean, sample standard deviation, and every run's value."""
    first = runs[0].get("test") or runs[0].get("validation") or {}
    summary: dict = {"task": first.get("task")}
    for split in ("validation", "test"):
        present = [m[split] for m in runs if split in m]
        if not present:
            continue
        keys = [k for k, v in present[0].items() if isinstance(v, (int, float)) and k != "rows"]
        summary[split] = {}
        for key in keys:
            values = np.array([m[key] for m in present], dtype=np.float64)
            std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            summary[split][key] = {"mean": float(values.mean()), "std": std, "values": values.tolist()}
    return summary
