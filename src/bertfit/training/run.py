"""``train(config)``: the whole job in named phases — check, load data, build model, fit, score, save."""

from __future__ import annotations

import dataclasses
import logging
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bertfit.config import TrainConfig, choose_recipe
from bertfit.data.load import LoadedData, load_data
from bertfit.data.table import TextSplit
from bertfit.encoders import defaults_for, parameter_count
from bertfit.encoding.batching import (
    Encoded,
    TextPolicy,
    encode_texts,
    token_lengths,
)
from bertfit.encoding.policy import text_policy
from bertfit.encoding.precision import PREDICTION_PRECISION, default_device, resolve_precision
from bertfit.errors import ConfigError, OutputExistsError
from bertfit.export import export_for_prediction
from bertfit.folder import Manifest, check_writable
from bertfit.inference import Predictor
from bertfit.modeling import (
    PooledClassifier,
    build_model,
    check_encoder,
    encoder_config,
    fold_logit_scale,
    load_tokenizer,
    resolve_model_source,
    trained_pooling,
    uses_token_types,
)
from bertfit.tasks import CalibrationOptions, LabelSet, Task
from bertfit.tasks.calibration import MIN_ROWS as CALIBRATION_MIN_ROWS
from bertfit.training import distributed
from bertfit.training.checkpoint import Checkpoint, Checkpointer, checkpoint_dir, read_checkpoint
from bertfit.training.fewshot import fit_few_shot
from bertfit.training.frozen import frozen_plan
from bertfit.training.full import full_plan
from bertfit.training.loop import (
    Callbacks,
    EpochResult,
    StepRecipe,
    build_optimizer,
    build_scheduler,
    fit,
    optimizer_steps,
)
from bertfit.training.plan import Placement, TrainingInputs
from bertfit.training.repeats import fit_repeated, joined
from bertfit.training.save import check_output_free, write_model_folder
from bertfit.training.stopping import Stopping
from bertfit.training.tracking import RUN_ID_FILE, reporting

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict[str, dict]
    history: list[EpochResult]
    best_epoch: int
    predictor: Predictor
    data: LoadedData
    source: str = ""
    precision: str = "fp32"
    truncated: float = 0.0
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # validation/test outputs, for the folder
    summary: dict | None = None  # mean and std over seeds or folds
    manifest: Manifest | None = None  # of the folder written
    token_lengths: np.ndarray | None = None  # of the training texts, for the data profile
    stop_reason: str = ""  # why training ended: all epochs, early stopping, the time budget

    @property
    def task(self) -> Task:
        return self.predictor.task

    @property
    def labels(self) -> LabelSet:
        return self.predictor.labels

    @property
    def max_length(self) -> int:
        return self.predictor.max_length


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(config: TrainConfig, callbacks: Callbacks = Callbacks(), checkpoint: Checkpoint | None = None) -> TrainResult:
    """Fine-tune, keep the best epoch by the validation primary metric, score, and save the folder.

    With ``seeds`` > 1 or ``folds`` the run repeats and the folder holds the best run's model and
    every run's metrics with their mean and standard deviation. ``checkpoint`` continues a killed
    run (see ``resume``)."""
    config.validate()
    ranks = distributed.from_environment()
    distributed.quiet_other_ranks(ranks)
    _check_distributed(config, ranks)
    check_output_free(config.output_dir, config.overwrite)
    check_writable(config.output_dir)
    source = resolve_model_source(config.model)
    parameters = parameter_count(check_encoder(source, config.trust_remote_code))
    load_tokenizer(source, config.trust_remote_code)  # a broken tokenizer is refused here, not mid-run
    if checkpoint is None and ranks.is_main:
        _clear_stale_checkpoints(config)
    if not ranks.is_main:
        callbacks = Callbacks()  # one progress bar, from rank 0
    data = load_data(config.data)  # every data problem surfaces before a model is loaded
    _check_positive_label(config, data)
    config = with_size_defaults(with_recipe(config, data, source), parameters)
    data = without_idle_holdout(config, data)
    _check_distributed(config, ranks)
    if ranks.is_main:  # only rank 0 reports; the options are resolved, so the tracker records what ran
        callbacks, tracked = reporting(config, callbacks, checkpoint_dir(config.output_dir), checkpoint is not None)
    else:
        tracked = None
    distributed.start(ranks)
    try:
        if config.seeds > 1 or config.folds:
            result = fit_repeated(config, data, fit_once, callbacks)
        else:
            result = fit_once(config, data, callbacks, checkpoint)
        if ranks.is_main:
            if chance := result.task.chance_warning(result.metrics.get("validation")):
                log.warning("%s", chance)  # the report and the model card say it too
            result.manifest = write_model_folder(config, result)
            shutil.rmtree(checkpoint_dir(config.output_dir), ignore_errors=True)  # the folder is whole
            if config.export_onnx:
                export_for_prediction(config.output_dir, _parity_rows(result.data))
            if tracked is not None:
                tracked.finish(result, config.register_model)
    except BaseException as err:
        if tracked is not None:  # a kill (KeyboardInterrupt) leaves the run to --resume
            tracked.end("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
        raise
    finally:
        distributed.stop(ranks)
    return result


# The ONNX graph's check is numeric (its outputs against PyTorch's on the same texts): without validation
# rows, this many training rows serve as well.
PARITY_TRAINING_ROWS = 512


def _parity_rows(data: LoadedData):
    validation = data.get("validation")
    if validation is not None:
        return validation
    return data.train.subset(range(min(len(data.train), PARITY_TRAINING_ROWS)))


def with_recipe(config: TrainConfig, data: LoadedData, source: str) -> TrainConfig:
    """``config`` with the recipe the data calls for (``--recipe auto``: by rows per class and whether the
    encoder at ``source`` is a sentence-transformers model) filled in and logged, so the saved
    ``bertfit.json`` says which recipe ran."""
    rows = data.task.rows_per_class(data.train.labels)
    sentence_encoder = trained_pooling(source) is not None
    choice = choose_recipe(config.recipe_setting, rows, sentence_encoder)
    log.info("recipe %s: %s", choice.name, choice.reason)
    if choice.name == "few-shot" and config.save_every:
        log.warning("--save-every: the few-shot recipe writes no checkpoints (it trains for minutes at most); a "
                    "killed run starts again")  # fmt: skip
    return dataclasses.replace(config, recipe=choice.name)


def without_idle_holdout(config: TrainConfig, data: LoadedData) -> LoadedData:
    """Under the few-shot recipe, ``data`` with rows held out of --train for validation given back to
    training where they are too few to calibrate on: the recipe chooses no epoch, so such a holdout would
    decide nothing and only take labelled rows away (at 16 rows of each of six classes, 10 of 96)."""
    validation, own = data.get("validation"), config.data
    from_train = not (own.validation or own.split or own.dataset)
    in_memory = isinstance(data.train, TextSplit)  # --arrow rows stay where they are
    if not (config.few_shot and from_train and in_memory and validation is not None
            and len(validation) < CALIBRATION_MIN_ROWS):  # fmt: skip
        return data
    log.info("few-shot: the %d held-out rows go back into training: the recipe chooses no epoch, and under %d rows "
             "nothing is calibrated on them", len(validation), CALIBRATION_MIN_ROWS)  # fmt: skip
    train = dataclasses.replace(joined(data.train, validation), source=data.train.source)
    return dataclasses.replace(data, splits={name: split for name, split in {**data.splits, "train": train}.items()
                                             if name != "validation"})  # fmt: skip


def with_size_defaults(config: TrainConfig, parameters: int) -> TrainConfig:
    """``config`` with the learning rate training uses on an encoder of ``parameters`` parameters filled in
    (``TrainConfig.learning_rate_for`` decides it), so the optimizer, the checkpoints and the saved
    ``bertfit.json`` all read the same number."""
    defaults = defaults_for(parameters)
    if config.learning_rate is None and config.recipe == "full":
        log.info("%s: %.0f M parameters, %s-size defaults: learning rate %g (--learning-rate to choose)",
                 config.model, parameters / 1e6, defaults.name, defaults.learning_rate)  # fmt: skip
    return dataclasses.replace(config, learning_rate=config.learning_rate_for(defaults.learning_rate))


def _check_positive_label(config: TrainConfig, data: LoadedData) -> None:
    if config.positive_label is None:
        return
    names = data.labels.names
    if config.positive_label not in names:
        raise ConfigError(f"--positive-label {config.positive_label!r} is not a label of the training data: "
                          f"{', '.join(names)}")  # fmt: skip
    if len(names) != 2 or not data.task.problem_type.startswith("single"):
        raise ConfigError(f"--positive-label is for binary classification; this data is {data.task.name} with "
                          f"{len(names)} labels")  # fmt: skip


def _check_distributed(config: TrainConfig, ranks: distributed.Distributed) -> None:
    if ranks.active and (config.seeds > 1 or config.folds or config.save_every or config.few_shot):
        raise ConfigError("--seeds, --folds, --save-every and the few-shot recipe run in a single process; launch "
                          "without torchrun")  # fmt: skip


def resume(output_dir: str | Path, callbacks: Callbacks = Callbacks()) -> TrainResult:
    """Continue a run trained with ``save_every`` from its newest checkpoint, with its own options."""
    checkpoint = read_checkpoint(Path(output_dir))
    config = TrainConfig.from_dict(checkpoint.config)
    log.info("resuming %s at epoch %d, step %d", config.output_dir, checkpoint.position.epoch, checkpoint.position.step)
    return train(config, callbacks, checkpoint)


def _clear_stale_checkpoints(config: TrainConfig) -> None:
    stale = checkpoint_dir(config.output_dir)
    if not stale.exists():
        return
    if {path.name for path in stale.iterdir()} == {RUN_ID_FILE}:  # killed before its first checkpoint
        shutil.rmtree(stale)
        return
    if not config.overwrite:
        raise OutputExistsError(f"{stale} holds an unfinished run: continue it with `bertfit train --resume "
                                f"{config.output_dir}`, or pass --overwrite to start over")  # fmt: skip
    shutil.rmtree(stale)


def fit_once(config: TrainConfig, data: LoadedData, callbacks: Callbacks = Callbacks(),
             checkpoint: Checkpoint | None = None) -> TrainResult:  # fmt: skip
    """One training run on loaded data: fit, calibrate on validation, score validation and test."""
    set_seed(config.seed)
    source = resolve_model_source(config.model)
    tokenizer = load_tokenizer(source, config.trust_remote_code)
    task = data.task(labels=data.labels, label_sep=data.label_sep)
    gold = {name: np.concatenate([task.gold(piece.labels) for piece in split.pieces()])
            for name, split in data.splits.items()}  # fmt: skip
    task = task.fitted_to_train(gold["train"])
    model = build_model(config, source, task)
    encoder = encoder_config(model)
    config = with_size_defaults(config, parameter_count(encoder.to_dict()))  # as train() did, for other callers
    lengths = np.concatenate([token_lengths(tokenizer, p.texts, p.pairs) for p in data.train.pieces()])
    policy, truncated = text_policy(config.max_length, config.long_text, config.stride, config.window_aggregate,
                                    tokenizer, encoder, lengths)  # fmt: skip
    ranks = distributed.from_environment()
    device = ranks.device() or default_device()
    precision = resolve_precision(config.precision, device)
    model.to(device)
    log.info("model %s on %s, %s, max length %d", config.model, device, precision, policy.max_length)

    types = uses_token_types(encoder)
    encoded = {name: _encode_split(tokenizer, split, policy, types, config.progress and ranks.is_main)
               for name, split in data.splits.items()}  # fmt: skip
    pad_id = tokenizer.pad_token_id or 0
    targets = task.targets(gold["train"])
    inputs = TrainingInputs(encoded, gold, _row_targets(targets, encoded["train"]), pad_id)
    where = Placement(precision, device, ranks)
    history, best_epoch, stop = _fit(config, model, task, inputs, where, callbacks, checkpoint)

    # Scored in the precision the saved folder predicts in, so metrics.json is what `bertfit predict` and
    # plain transformers give.
    predictor = Predictor.from_model(model, tokenizer, task, policy, PREDICTION_PRECISION, device,
                                     config.eval_batch_size)  # fmt: skip
    logits = {name: distributed.gather_rows(ranks, encoded[name].texts,
                                            lambda rows, split=encoded[name]: predictor.logits_of(split.select(rows)))
              for name in ("validation", "test") if data.get(name)}  # fmt: skip
    fitted, outputs, metrics = _calibrate_and_score(config, task, logits, gold)
    fold_logit_scale(model, *fitted.logit_scale())
    predictor.task = fitted.with_scale_in_weights()
    return TrainResult(config.output_dir, metrics, history, best_epoch, predictor, data, source, precision,
                       truncated, outputs, token_lengths=lengths, stop_reason=stop)  # fmt: skip


def _encode_split(tokenizer, split, policy: TextPolicy, token_types: bool, progress: bool) -> Encoded:
    on_disk = split.tokenized(tokenizer, policy.max_length, token_types, progress)  # data.table.Split
    if on_disk is not None:  # an ArrowSplit: token ids stay in a memory-mapped file
        ids, types = on_disk
        return Encoded(ids, len(split), types)
    return encode_texts(tokenizer, split.texts, policy, split.pairs, token_types)


def _calibrate_and_score(config: TrainConfig, task: Task, logits: dict, gold: dict) -> tuple[Task, dict, dict]:
    """Fit temperature and thresholds on validation, then score validation and test with them."""
    fitted = task
    if "validation" in logits:
        options = CalibrationOptions(config.calibrate, config.threshold, config.target_recall, config.positive_label)
        fitted = task.calibrated(logits["validation"], gold["validation"], options)
    outputs = {name: fitted.outputs(values) for name, values in logits.items()}
    metrics = {name: fitted.metrics(gold[name], outputs[name]) for name in outputs}
    if "ece" in metrics.get("validation", {}):
        plain = task.outputs(logits["validation"])
        metrics["validation"]["ece_uncalibrated"] = task.metrics(gold["validation"], plain)["ece"]
    return fitted, outputs, metrics


def _fit(config: TrainConfig, model: nn.Module, task: Task, inputs: TrainingInputs, where: Placement,
         callbacks: Callbacks, checkpoint: Checkpoint | None = None) -> tuple[list[EpochResult], int, str]:  # fmt: skip
    """Run the loop, score validation after each epoch, and leave the best epoch's weights in ``model`` (the
    last epoch's where ``stopping.keep_last``); stop early as ``stopping.Stopping`` says (patience) or when
    the time budget runs out.
    Returns the history, the kept epoch and why training stopped."""
    loss_fn = task.loss(inputs.gold["train"], config.class_weights)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(where.device)
    if config.few_shot:
        return fit_few_shot(config, model, loss_fn, inputs, where, callbacks)
    recipe = frozen_plan if isinstance(model, PooledClassifier) and model.config.frozen_encoder else full_plan
    plan = recipe(config, model, inputs, where)
    epochs = config.resolved_epochs
    optimizer = build_optimizer(plan.trainable, config.learning_rate, config.weight_decay, config.adam_epsilon)
    total_steps = optimizer_steps(plan.batches.per_epoch, config.grad_accum) * epochs
    scheduler = build_scheduler(optimizer, total_steps, config.warmup_ratio)
    key = task.primary_metric
    history: list[EpochResult] = []
    stopping = Stopping(epochs, key, config.resolved_patience, config.time_budget, keep_last=config.keeps_last_epoch)
    start = None
    if checkpoint is not None:
        stopping.best = checkpoint.restore(plan.trainable, optimizer, scheduler)
        history = [EpochResult(**record) for record in checkpoint.history]
        start = checkpoint.position
    saver = Checkpointer(checkpoint_dir(config.output_dir), config.save_every, config.to_dict(), plan.trainable,
                         optimizer, scheduler)  # fmt: skip

    def save_if_due(global_step: int, position) -> None:
        if saver.due(global_step):
            saver.save(global_step, position, history, stopping.best)

    steps = StepRecipe(optimizer, scheduler, loss_fn, config.max_grad_norm, where.precision, where.device,
                       config.grad_accum)  # fmt: skip
    trained = distributed.wrap(plan.trainable, where.ranks)
    epochs_run = fit(trained, plan.batches, epochs, steps, callbacks, start, save_if_due, config.time_budget_seconds)
    for record in epochs_run:
        logits = plan.validation_logits()
        if logits is not None:
            record.validation = task.metrics(inputs.gold["validation"], task.outputs(logits))
            stopping.offer(record, plan.trainable)
        history.append(record)
        _log_epoch(record, epochs, key)
        callbacks.on_epoch_end(record, key)
        if stopping.out_of_patience(history):
            epochs_run.close()
            callbacks.on_train_end()
            break
    stop = stopping.reason(history)
    log.info("training stopped: %s", stop)
    best = stopping.best
    if best.state is None:
        if not (stopping.keep_last and history):
            return history, epochs, stop
        log.info("kept the last epoch, %d (the frozen recipe's rule; --patience N keeps the best)", history[-1].epoch)
        return history, history[-1].epoch, stop
    plan.trainable.load_state_dict(best.state)
    log.info("kept epoch %d (validation %s %.4f)", best.epoch, key, best.score)
    return history, best.epoch, stop


def _log_epoch(record: EpochResult, epochs: int, key: str) -> None:
    line = f"epoch {record.epoch}/{epochs}: train loss {record.train_loss:.4f} ({record.seconds:.1f}s)"
    line += " (cut short by the time budget)" if record.partial else ""
    if record.validation:
        line += f", validation loss {record.validation['loss']:.4f}, {key} {record.validation[key]:.4f}"
    log.info(line)


def _row_targets(targets: torch.Tensor, encoded: Encoded) -> torch.Tensor:
    """One target per training row: a text's windows all carry its label."""
    return targets if encoded.owner is None else targets[torch.from_numpy(encoded.owner)]
