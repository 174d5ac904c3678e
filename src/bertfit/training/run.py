"""``train(config)``: the whole job in named phases — check, load data, build model, fit, score, save."""

from __future__ import annotations

import logging
import random
import shutil
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bertfit.config import TrainConfig
from bertfit.data.labels import LabelSet
from bertfit.data.load import LoadedData, load_data
from bertfit.errors import ConfigError, OutputExistsError
from bertfit.evaluation import task_metrics
from bertfit.evaluation.calibration import calibrate
from bertfit.inference import Predictor, predict_logits, run_batched
from bertfit.modeling import (
    PooledClassifier,
    build_pooled_classifier,
    freeze_bottom_layers,
    freeze_word_embeddings,
    load_encoder,
    load_sequence_classifier,
    load_tokenizer,
    model_max_length,
    reinit_top_layers,
    resolve_model_source,
    trained_pooling,
    uses_token_types,
)
from bertfit.tasks import REGRESSION, Task
from bertfit.training import distributed
from bertfit.training.attention import training_attention
from bertfit.training.batching import (
    Encoded,
    TextPolicy,
    aggregate_windows,
    choose_max_length,
    encode_texts,
    iterate_batches,
    token_lengths,
    training_batches,
)
from bertfit.training.checkpoint import Checkpoint, Checkpointer, checkpoint_dir, read_checkpoint
from bertfit.training.dropout import use_fast_dropout
from bertfit.training.loop import Callbacks, EpochResult, build_optimizer, build_scheduler, fit, optimizer_steps
from bertfit.training.precision import default_device, resolve_precision

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
    manifest: dict = field(default_factory=dict)
    token_lengths: np.ndarray | None = None  # of the training texts, for the data profile

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
    from bertfit.artifacts import check_output_free, write_model_folder
    from bertfit.training.repeats import fit_repeated

    config.validate()
    ranks = distributed.from_environment()
    distributed.quiet_other_ranks(ranks)
    _check_distributed(config, ranks)
    check_output_free(config.output_dir, config.overwrite)
    if checkpoint is None and ranks.is_main:
        _clear_stale_checkpoints(config)
    if config.tensorboard and ranks.is_main:
        from bertfit.training.tensorboard import CallbackList, TensorBoardLogger, tensorboard_dir

        callbacks = CallbackList(callbacks, TensorBoardLogger(tensorboard_dir(config.output_dir)))
    if not ranks.is_main:
        callbacks = Callbacks()  # one progress bar, from rank 0
    data = load_data(config.data)  # every data problem surfaces before a model is loaded
    distributed.start(ranks)
    try:
        if config.seeds > 1 or config.folds:
            result = fit_repeated(config, data, callbacks)
        else:
            result = fit_once(config, data, callbacks, checkpoint)
        if ranks.is_main:
            result.manifest = write_model_folder(config, result)
            shutil.rmtree(checkpoint_dir(config.output_dir), ignore_errors=True)  # the folder is whole
    finally:
        distributed.stop(ranks)
    return result


def _check_distributed(config: TrainConfig, ranks: distributed.Distributed) -> None:
    if ranks.active and (config.seeds > 1 or config.folds or config.save_every):
        raise ConfigError("--seeds, --folds and --save-every run in a single process; launch without torchrun")


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
    task = Task(data.task, data.labels, label_sep=data.label_sep)
    gold = {name: np.concatenate([task.gold(piece.labels) for piece in split.pieces()])
            for name, split in data.splits.items()}  # fmt: skip
    if task.kind == REGRESSION:
        task = task.with_target_scale(gold["train"])
    model = _build_model(config, source, task)
    lengths = np.concatenate([token_lengths(tokenizer, p.texts, p.pairs) for p in data.train.pieces()])
    policy, truncated = _text_policy(config, tokenizer, model.config, lengths)
    ranks = distributed.from_environment()
    device = ranks.device() or default_device()
    precision = resolve_precision(config.precision, device)
    model.to(device)
    log.info("model %s on %s, %s, max length %d", config.model, device, precision, policy.max_length)

    types = uses_token_types(model.config)
    encoded = {name: _encode_split(tokenizer, split, policy, types, config.progress and ranks.is_main)
               for name, split in data.splits.items()}  # fmt: skip
    pad_id = tokenizer.pad_token_id or 0
    targets = task.targets(gold["train"])
    history, best_epoch = _fit(config, model, task, encoded, gold, targets, pad_id, precision, device, callbacks,
                               checkpoint, ranks)  # fmt: skip

    predictor = Predictor.from_model(model, tokenizer, task, policy, precision, device, config.eval_batch_size)
    logits = {name: distributed.gather_rows(ranks, encoded[name].texts,
                                            lambda rows, inputs=encoded[name]: predictor.logits_of(inputs.select(rows)))
              for name in ("validation", "test") if data.get(name)}  # fmt: skip
    predictor.task, outputs, metrics = _calibrate_and_score(config, task, logits, gold)
    return TrainResult(config.output_dir, metrics, history, best_epoch, predictor, data, source, precision,
                       truncated, outputs, token_lengths=lengths)  # fmt: skip


def _encode_split(tokenizer, split, policy: TextPolicy, token_types: bool, progress: bool) -> Encoded:
    if hasattr(split, "tokenized"):  # an ArrowSplit: token ids stay in a memory-mapped file
        ids, types = split.tokenized(tokenizer, policy.max_length, token_types, progress)
        return Encoded(ids, len(split), types)
    return encode_texts(tokenizer, split.texts, policy, split.pairs, token_types)


def _calibrate_and_score(config: TrainConfig, task: Task, logits: dict, gold: dict) -> tuple[Task, dict, dict]:
    """Fit temperature and thresholds on validation, then score validation and test with them."""
    fitted = task
    if "validation" in logits:
        fitted = calibrate(task, logits["validation"], gold["validation"], temperature=config.calibrate,
                           threshold=config.threshold, target_recall=config.target_recall,
                           positive_label=config.positive_label)  # fmt: skip
    outputs = {name: fitted.outputs(values) for name, values in logits.items()}
    metrics = {name: task_metrics(fitted, gold[name], outputs[name]) for name in outputs}
    if "ece" in metrics.get("validation", {}):
        plain = task.outputs(logits["validation"])
        metrics["validation"]["ece_uncalibrated"] = task_metrics(task, gold["validation"], plain)["ece"]
    return fitted, outputs, metrics


def resolve_pooling(setting: str, source: str, freeze_all: bool) -> str:
    """'auto': the pooling a sentence-transformers encoder was trained with; otherwise the model's
    own pooler, or mean pooling for a frozen encoder (whose head is ours)."""
    if setting != "auto":
        return setting
    return trained_pooling(source) or ("mean" if freeze_all else "pooler")


def _build_model(config: TrainConfig, source: str, task: Task) -> nn.Module:
    pooling = resolve_pooling(config.pooling, source, config.freeze_all)
    dropout = config.resolved_dropout
    if config.freeze_all:  # the encoder only runs in eval mode: the rate is the head's
        return build_pooled_classifier(load_encoder(source, config.trust_remote_code), task.labels, pooling, "dense",
                                       frozen=True, dropout=dropout)  # fmt: skip
    if pooling == "pooler":
        model = load_sequence_classifier(source, task.labels, task.kind, config.trust_remote_code, dropout)
    else:
        encoder = load_encoder(source, config.trust_remote_code, dropout)
        model = build_pooled_classifier(encoder, task.labels, pooling, "linear", frozen=False, dropout=dropout)
    if config.gradient_checkpointing:
        encoder = model.encoder if isinstance(model, PooledClassifier) else model
        encoder.activation_checkpointing_enable({"use_reentrant": False})  # was gradient_checkpointing_enable
    if config.reinit_layers:
        reinit_top_layers(model, config.reinit_layers)
    if config.frozen_layers:
        freeze_bottom_layers(model, config.frozen_layers)
    if not config.train_word_embeddings:
        freeze_word_embeddings(model)
    return model


def _text_policy(config: TrainConfig, tokenizer, model_config, lengths: np.ndarray) -> tuple[TextPolicy, float]:
    max_length, longer = _pick_max_length(config, tokenizer, model_config, lengths)
    policy = TextPolicy(max_length, config.long_text, config.stride, config.window_aggregate)
    if config.long_text == "window" and longer:
        log.info("long texts are cut into windows of %d tokens overlapping by %d; window logits combine by %s",
                 max_length, min(config.stride, max_length // 2), config.window_aggregate)  # fmt: skip
    return policy, longer


def _pick_max_length(config: TrainConfig, tokenizer, model_config, lengths: np.ndarray) -> tuple[int, float]:
    cap = model_max_length(tokenizer, model_config)
    if config.max_length == "auto":
        max_length = choose_max_length(lengths, cap)
    else:
        max_length = min(int(config.max_length), cap)
        if int(config.max_length) > cap:
            log.warning("--max-length %s is above the model's limit; using %d", config.max_length, cap)
    truncated = float((lengths > max_length).mean()) if len(lengths) else 0.0
    log.info(
        "max length %d tokens (longest training text %d); %.2f%% of training texts %s",
        max_length,
        int(lengths.max()) if len(lengths) else 0,
        100 * truncated,
        "are longer (windowed)" if config.long_text == "window" else "truncated",
    )
    return max_length, truncated


def _fit(config, model, task: Task, encoded, gold, targets, pad_id, precision, device, callbacks,
         checkpoint: Checkpoint | None = None,
         ranks: distributed.Distributed = distributed.Distributed()) -> tuple[list[EpochResult], int]:  # fmt: skip
    """Run the loop, score validation after each epoch, and leave the best epoch's weights in ``model``."""
    loss_fn = task.loss(gold["train"], config.class_weights)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(device)
    setup = _frozen_setup if isinstance(model, PooledClassifier) and model.frozen else _full_setup
    targets = _row_targets(targets, encoded["train"])
    trainable, epoch_batches, batches, validation_logits = setup(config, model, targets, encoded, pad_id, precision,
                                                                 device, ranks)  # fmt: skip
    epochs = config.resolved_epochs
    optimizer = build_optimizer(trainable, config.resolved_learning_rate, config.weight_decay, config.adam_epsilon)
    scheduler = build_scheduler(optimizer, optimizer_steps(batches, config.grad_accum) * epochs, config.warmup_ratio)
    key = task.primary_metric
    history: list[EpochResult] = []
    best_score, best_epoch, best_state = -np.inf, epochs, None
    start = None
    if checkpoint is not None:
        best_state = checkpoint.restore(trainable, optimizer, scheduler)
        history = [EpochResult(**record) for record in checkpoint.history]
        if best_state is not None:
            best_score, best_epoch = checkpoint.best_score, checkpoint.best_epoch
        start = checkpoint.position
    saver = Checkpointer(checkpoint_dir(config.output_dir), config.save_every, config.to_dict())

    def save_if_due(global_step: int, position) -> None:
        if saver.due(global_step):
            saver.save(global_step, position, trainable, optimizer, scheduler, history, best_score, best_epoch,
                       best_state)  # fmt: skip

    for record in fit(distributed.wrap(trainable, ranks), epoch_batches, batches, epochs, optimizer, scheduler,
                      loss_fn, config.max_grad_norm, precision, device, callbacks, start, save_if_due,
                      config.grad_accum):  # fmt: skip
        logits = validation_logits()
        if logits is not None:
            record.validation = task_metrics(task, gold["validation"], task.outputs(logits))
            if record.validation[key] > best_score:
                best_score, best_epoch = record.validation[key], record.epoch
                best_state = {k: v.detach().clone() for k, v in trainable.state_dict().items()}
        history.append(record)
        _log_epoch(record, epochs, key)
        callbacks.on_epoch_end(record, key)
    if best_state is not None:
        trainable.load_state_dict(best_state)
        log.info("kept epoch %d (validation %s %.4f)", best_epoch, key, best_score)
    return history, best_epoch


def _log_epoch(record: EpochResult, epochs: int, key: str) -> None:
    line = f"epoch {record.epoch}/{epochs}: train loss {record.train_loss:.4f} ({record.seconds:.1f}s)"
    if record.validation:
        line += f", validation loss {record.validation['loss']:.4f}, {key} {record.validation[key]:.4f}"
    log.info(line)


def _row_targets(targets: torch.Tensor, encoded: Encoded) -> torch.Tensor:
    """One target per training row: a text's windows all carry its label."""
    return targets if encoded.owner is None else targets[torch.from_numpy(encoded.owner)]


def _full_setup(config, model, targets, encoded, pad_id, precision, device, ranks):
    on_cpu = device.type == "cpu"
    if on_cpu:  # PyTorch's per-element CPU dropout masks cost about a tenth of each step
        use_fast_dropout(model)
    train = encoded["train"]
    lengths = train.lengths()

    def rank_batches(epoch: int) -> list[np.ndarray]:
        """This rank's slice of each global batch (all of it in a single process)."""
        order = training_batches(lengths, config.batch_size, seed=config.seed * 1000 + epoch)
        # Under DDP every rank needs a share of every batch: a last batch smaller than the world is left out.
        return [ranks.slice(batch) for batch in order if len(batch) >= ranks.world_size]

    def epoch_batches(epoch: int) -> Iterable:
        # Training steps only: validation between epochs scores with the model's own attention.
        with training_attention(model) if on_cpu else nullcontext():
            for indices, batch in iterate_batches(train, rank_batches(epoch), pad_id):
                yield batch, targets[indices]

    validation = encoded.get("validation")

    def validation_logits():
        if not validation:
            return None

        def score(rows: list[int]) -> np.ndarray:
            inputs = validation.select(rows)
            logits = predict_logits(model, inputs, pad_id, config.eval_batch_size, precision, device)
            return aggregate_windows(logits, inputs, config.window_aggregate)

        return distributed.gather_rows(ranks, validation.texts, score)

    return model, epoch_batches, len(rank_batches(1)), validation_logits


def _frozen_setup(config, model, targets, encoded, pad_id, precision, device, ranks):
    """The encoder never changes, so its pooled output is computed once and the head trains on it."""
    features = {
        name: _encode_features(model, encoded[name], pad_id, config.eval_batch_size, precision, device)
        for name in ("train", "validation")
        if encoded.get(name)
    }

    def epoch_batches(epoch: int) -> Iterable:
        generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        order = torch.randperm(len(targets), generator=generator)
        for start in range(0, len(order) - ranks.world_size + 1, config.batch_size):
            rows = order[start : start + config.batch_size][ranks.rank :: ranks.world_size]
            yield {"features": features["train"][rows]}, targets[rows]

    @torch.inference_mode()
    def validation_logits():
        if "validation" not in features:
            return None
        model.head.eval()
        logits = model.head(features["validation"].to(device)).float().cpu().numpy()
        model.head.train()
        return aggregate_windows(logits, encoded["validation"], config.window_aggregate)

    batches = len(range(0, len(targets) - ranks.world_size + 1, config.batch_size))
    return model.head, epoch_batches, batches, validation_logits


def _encode_features(model: PooledClassifier, encoded, pad_id, batch_size, precision, device) -> torch.Tensor:
    model.eval()
    return torch.from_numpy(run_batched(model.features, encoded, pad_id, batch_size, precision, device))
