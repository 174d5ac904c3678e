"""``train(config)``: the whole job in named phases — check, load data, build model, fit, score, save."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bertfit.config import TrainConfig
from bertfit.data.labels import LabelSet
from bertfit.data.load import LoadedData, load_data
from bertfit.evaluation import classification_metrics, primary_metric
from bertfit.inference import Predictor, predict_probabilities, run_batched
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
)
from bertfit.training.batching import (
    choose_max_length,
    encode_texts,
    iterate_batches,
    token_lengths,
    training_batches,
)
from bertfit.training.loop import Callbacks, EpochResult, build_optimizer, build_scheduler, fit
from bertfit.training.precision import default_device, resolve_precision

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict[str, dict]
    history: list[EpochResult]
    best_epoch: int
    labels: LabelSet
    max_length: int
    predictor: Predictor
    data: LoadedData
    manifest: dict = field(default_factory=dict)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(config: TrainConfig, callbacks: Callbacks = Callbacks()) -> TrainResult:
    """Fine-tune, keep the best epoch by the validation primary metric, score, and save the folder."""
    from bertfit.artifacts import check_output_free, write_model_folder

    config.validate()
    output_dir = config.output_dir
    check_output_free(output_dir, config.overwrite)
    data = load_data(config.data)  # every data problem surfaces before a model is loaded
    set_seed(config.seed)

    source = resolve_model_source(config.model)
    tokenizer = load_tokenizer(source)
    model = _build_model(config, source, data.labels)
    max_length, truncated = _pick_max_length(config, tokenizer, model.config, data.train.texts)
    device = default_device()
    precision = resolve_precision(config.precision, device)
    model.to(device)
    log.info("model %s on %s, %s, max length %d", config.model, device, precision, max_length)

    ids = {name: encode_texts(tokenizer, split.texts, max_length) for name, split in data.splits.items()}
    gold = {name: data.labels.encode(split.labels) for name, split in data.splits.items()}
    pad_id = tokenizer.pad_token_id or 0
    history, best_epoch = _fit(config, model, ids, gold, data.labels, pad_id, precision, device, callbacks)

    predictor = Predictor.from_model(model, tokenizer, data.labels, max_length, precision, device, config.eval_batch_size)
    probabilities = {name: predictor.proba_of_ids(ids[name]) for name in ("validation", "test") if data.get(name)}
    metrics = {name: classification_metrics(gold[name], p, data.labels) for name, p in probabilities.items()}

    result = TrainResult(output_dir, metrics, history, best_epoch, data.labels, max_length, predictor, data)
    result.manifest = write_model_folder(config, result, probabilities, source, precision, truncated)
    return result


def resolve_pooling(setting: str, source: str, freeze_all: bool) -> str:
    """'auto': the pooling a sentence-transformers encoder was trained with; otherwise the model's
    own pooler, or mean pooling for a frozen encoder (whose head is ours)."""
    if setting != "auto":
        return setting
    return trained_pooling(source) or ("mean" if freeze_all else "pooler")


def _build_model(config: TrainConfig, source: str, labels: LabelSet) -> nn.Module:
    pooling = resolve_pooling(config.pooling, source, config.freeze_all)
    if config.freeze_all:
        return build_pooled_classifier(load_encoder(source), labels, pooling, "dense", frozen=True)
    if pooling == "pooler":
        model = load_sequence_classifier(source, labels)
    else:
        model = build_pooled_classifier(load_encoder(source), labels, pooling, "linear", frozen=False)
    if config.reinit_layers:
        reinit_top_layers(model, config.reinit_layers)
    if config.frozen_layers:
        freeze_bottom_layers(model, config.frozen_layers)
    if not config.train_word_embeddings:
        freeze_word_embeddings(model)
    return model


def _pick_max_length(config: TrainConfig, tokenizer, model_config, texts: list[str]) -> tuple[int, float]:
    cap = model_max_length(tokenizer, model_config)
    lengths = token_lengths(tokenizer, texts)
    if config.max_length == "auto":
        max_length = choose_max_length(lengths, cap)
    else:
        max_length = min(int(config.max_length), cap)
        if int(config.max_length) > cap:
            log.warning("--max-length %s is above the model's limit; using %d", config.max_length, cap)
    truncated = float((lengths > max_length).mean()) if len(lengths) else 0.0
    log.info(
        "max length %d tokens (longest training text %d); %.2f%% of training texts truncated",
        max_length,
        int(lengths.max()) if len(lengths) else 0,
        100 * truncated,
    )
    return max_length, truncated


def class_weights(gold: list[int], num_labels: int) -> torch.Tensor:
    """'balanced' weights n / (k * count), as scikit-learn computes them; unseen classes weigh 1."""
    counts = np.bincount(gold, minlength=num_labels).astype(np.float64)
    weights = np.where(counts > 0, len(gold) / (num_labels * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


def _fit(config, model, ids, gold, labels, pad_id, precision, device, callbacks) -> tuple[list[EpochResult], int]:
    """Run the loop, score validation after each epoch, and leave the best epoch's weights in ``model``."""
    weights = class_weights(gold["train"], len(labels)).to(device) if config.class_weights == "balanced" else None
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    if isinstance(model, PooledClassifier) and model.frozen:
        trainable, epoch_batches, steps, score = _frozen_setup(config, model, ids, gold, pad_id, precision, device)
    else:
        trainable, epoch_batches, steps, score = _full_setup(config, model, ids, gold, pad_id, precision, device)
    epochs = config.resolved_epochs
    optimizer = build_optimizer(trainable, config.resolved_learning_rate, config.weight_decay, config.adam_epsilon)
    scheduler = build_scheduler(optimizer, steps * epochs, config.warmup_ratio)
    key = primary_metric(len(labels))
    history: list[EpochResult] = []
    best_score, best_epoch, best_state = -np.inf, epochs, None
    for record in fit(trainable, epoch_batches, steps, epochs, optimizer, scheduler, loss_fn,
                      config.max_grad_norm, precision, device, callbacks):  # fmt: skip
        probabilities = score()
        if probabilities is not None:
            record.validation = classification_metrics(gold["validation"], probabilities, labels)
            if record.validation[key] > best_score:
                best_score, best_epoch = record.validation[key], record.epoch
                best_state = {k: v.detach().clone() for k, v in trainable.state_dict().items()}
        history.append(record)
        _log_epoch(record, epochs, key)
    if best_state is not None:
        trainable.load_state_dict(best_state)
        log.info("kept epoch %d (validation %s %.4f)", best_epoch, key, best_score)
    return history, best_epoch


def _log_epoch(record: EpochResult, epochs: int, key: str) -> None:
    line = f"epoch {record.epoch}/{epochs}: train loss {record.train_loss:.4f} ({record.seconds:.1f}s)"
    if record.validation:
        line += f", validation loss {record.validation['loss']:.4f}, {key} {record.validation[key]:.4f}"
    log.info(line)


def _full_setup(config, model, ids, gold, pad_id, precision, device):
    lengths = [len(x) for x in ids["train"]]
    labels = torch.tensor(gold["train"])

    def epoch_batches(epoch: int) -> Iterable:
        order = training_batches(lengths, config.batch_size, seed=config.seed * 1000 + epoch)
        for indices, batch in iterate_batches(ids["train"], order, pad_id):
            yield batch, labels[indices]

    def score():
        if not ids.get("validation"):
            return None
        return predict_probabilities(model, ids["validation"], pad_id, config.eval_batch_size, precision, device)

    steps = -(-len(lengths) // config.batch_size)
    return model, epoch_batches, steps, score


def _frozen_setup(config, model, ids, gold, pad_id, precision, device):
    """The encoder never changes, so its pooled output is computed once and the head trains on it."""
    features = {
        name: _encode_features(model, ids[name], pad_id, config.eval_batch_size, precision, device)
        for name in ("train", "validation")
        if ids.get(name)
    }
    labels = torch.tensor(gold["train"])

    def epoch_batches(epoch: int) -> Iterable:
        generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            yield {"features": features["train"][rows]}, labels[rows]

    @torch.inference_mode()
    def score():
        if "validation" not in features:
            return None
        model.head.eval()
        probabilities = torch.softmax(model.head(features["validation"].to(device)), dim=-1).cpu().numpy()
        model.head.train()
        return probabilities

    steps = -(-len(labels) // config.batch_size)
    return model.head, epoch_batches, steps, score


def _encode_features(model: PooledClassifier, ids, pad_id, batch_size, precision, device) -> torch.Tensor:
    model.eval()
    return torch.from_numpy(run_batched(model.features, ids, pad_id, batch_size, precision, device))
