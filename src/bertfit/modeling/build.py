"""The classifier a training run starts from, and what is done to it: its head, dropout, re-initialised
top layers, frozen parts; the model a saved folder holds; the logit scale folded into its weights.

Two shapes, chosen by the encoder and the strategy:
- a Hugging Face ``AutoModelForSequenceClassification`` (its pooler + linear layer), for encoders
  pre-trained with a [CLS] pooler, such as BERT;
- a ``PooledClassifier`` (``modeling.pooled``): the encoder, the pooling it was trained with, and a
  small head, for sentence-transformers encoders and ``--freeze all``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from bertfit.config import TrainConfig
from bertfit.errors import ModelError
from bertfit.folder import MANIFEST, POOLED_CLASSIFIER, SEQUENCE_CLASSIFIER, Manifest
from bertfit.modeling.pooled import PooledClassifier, build_pooled_classifier, load_encoder, load_pooled
from bertfit.modeling.source import describe_load_error, dropout_settings, load_errors, safe_loading, trained_pooling
from bertfit.modeling_bertfit import BertfitPooledConfig
from bertfit.tasks import LabelSet, Task

log = logging.getLogger(__name__)


# -- the model a training run starts from -------------------------------------------------------
def resolve_pooling(setting: str, source: str, own_head: bool) -> str:
    """'auto': the pooling a sentence-transformers encoder was trained with; otherwise the model's
    own pooler, or mean pooling where the head is ours (``own_head``: a frozen encoder, the few-shot recipe)."""
    if setting != "auto":
        return setting
    return trained_pooling(source) or ("mean" if own_head else "pooler")


def build_model(config: TrainConfig, source: str, task: Task) -> nn.Module:
    """The classifier ``config`` asks for over the encoder at ``source``: pooling, head, dropout,
    re-initialised, frozen and fixed parts."""
    # The frozen and few-shot recipes train a head of their own on a sentence vector: never the model's pooler.
    pooling = resolve_pooling(config.pooling, source, config.freeze_all or config.few_shot)
    dropout = config.resolved_dropout
    if config.freeze_all:  # the encoder only runs in eval mode: the rate is the head's
        return build_pooled_classifier(load_encoder(source, config.trust_remote_code), task.labels, pooling, "dense",
                                       frozen=True, dropout=dropout, problem_type=task.problem_type)  # fmt: skip
    if pooling == "pooler":
        model = load_sequence_classifier(source, task.labels, task.problem_type, config.trust_remote_code, dropout)
    else:
        encoder = load_encoder(source, config.trust_remote_code, dropout)
        model = build_pooled_classifier(encoder, task.labels, pooling, "linear", frozen=False, dropout=dropout,
                                        problem_type=task.problem_type)  # fmt: skip
    if config.gradient_checkpointing:
        wrapped = model.encoder if isinstance(model, PooledClassifier) else model
        wrapped.activation_checkpointing_enable({"use_reentrant": False})  # was gradient_checkpointing_enable
    if config.reinit_layers:
        reinit_top_layers(model, config.reinit_layers)
    if config.frozen_layers:
        freeze_bottom_layers(model, config.frozen_layers)
    if not config.train_word_embeddings:
        freeze_word_embeddings(model)
    return model


def load_sequence_classifier(source: str, labels: LabelSet, problem_type: str = "single_label_classification",
                             trust_remote_code: bool = False, dropout: float | None = None) -> nn.Module:  # fmt: skip
    """``problem_type``: transformers' name of the task shape (``Task.problem_type``); ``dropout``:
    every dropout rate of the model and its head (None: the model's own)."""
    from transformers import AutoModelForSequenceClassification

    try:
        return AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=len(labels),
            id2label=labels.id2label,
            label2id=labels.label2id,
            problem_type=problem_type,
            **dropout_settings(source, dropout, trust_remote_code),
            **safe_loading(trust_remote_code),
        )
    except load_errors() as err:
        raise ModelError(f"cannot load {source!r} as a sequence classifier: {describe_load_error(err)}") from None


# -- surgery: re-initialised and frozen parts -------------------------------------------------------
def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks, found by shape so any BERT-family layout works."""
    config = encoder.config
    count = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers", None)
    for module in encoder.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ModelError(f"cannot find the {count} encoder layers of {type(encoder).__name__} to freeze")


def _encoder_of(model: nn.Module) -> nn.Module:
    return model.encoder if isinstance(model, PooledClassifier) else model.base_model


def encoder_config(model: nn.Module):
    """The encoder's own config (its type, maximum length, token types, sizes), with the labels: a
    sequence classifier's config is one, a pooled classifier's holds one for its encoder."""
    return model.encoder.config if isinstance(model, PooledClassifier) else model.config


def reinit_top_layers(model: nn.Module, count: int) -> None:
    """Give the top ``count`` encoder blocks fresh weights, drawn as the model initialises them."""
    encoder = _encoder_of(model)
    layers = encoder_layers(encoder)
    if count > len(layers):
        raise ModelError(f"--reinit-layers {count}: the model has only {len(layers)} layers")
    std = getattr(encoder.config, "initializer_range", 0.02)
    for layer in layers[len(layers) - count :]:
        # Done by hand: transformers skips modules it has marked as already initialised.
        for module in layer.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=std)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
    log.info("re-initialised the top %d of %d layers", count, len(layers))


def freeze_word_embeddings(model: nn.Module) -> None:
    """Keep the token embedding table fixed; position and type embeddings still train."""
    _encoder_of(model).get_input_embeddings().requires_grad_(False)


def freeze_bottom_layers(model: nn.Module, count: int) -> None:
    """Freeze the embeddings and the first ``count`` encoder blocks."""
    encoder = _encoder_of(model)
    layers = encoder_layers(encoder)
    if count > len(layers):
        raise ModelError(f"--freeze {count}: the model has only {len(layers)} layers")
    embeddings = getattr(encoder, "embeddings", None)
    for module in [embeddings, *layers[:count]]:
        if module is not None:
            module.requires_grad_(False)
    log.info("froze the embeddings and %d of %d layers", count, len(layers))


# -- the model a folder holds ---------------------------------------------------------------------
def load_model(folder: Path, manifest: Manifest, trust_remote_code: bool = False) -> nn.Module:
    """The model a folder holds, as its manifest describes it; weights from safetensors only."""
    from transformers import AutoModelForSequenceClassification

    try:
        if manifest.architecture == SEQUENCE_CLASSIFIER:
            return AutoModelForSequenceClassification.from_pretrained(folder, **safe_loading(trust_remote_code))
        if manifest.architecture == POOLED_CLASSIFIER:
            return load_pooled(folder, manifest, trust_remote_code)
    except load_errors() as err:
        raise ModelError(f"{folder}: cannot load the model: {describe_load_error(err)}") from None
    raise ModelError(f"{folder}: unknown architecture {manifest.architecture!r} in {MANIFEST}")


def describe_architecture(model: nn.Module) -> dict:
    """What ``bertfit.json`` records to rebuild ``model`` from its folder."""
    if isinstance(model, PooledClassifier):
        config = model.config
        return {"architecture": POOLED_CLASSIFIER, "pooling": config.pooling, "head": config.head,
                "frozen_encoder": config.frozen_encoder}  # fmt: skip
    return {"architecture": SEQUENCE_CLASSIFIER, "pooling": "pooler", "head": None, "frozen_encoder": False}


def output_layer(model: nn.Module) -> nn.Linear:
    """The linear layer that produces the logits: every classifier bertfit builds (the families'
    ``*ForSequenceClassification`` heads and ``PooledClassifier``) registers its head after the encoder,
    and the head ends in a layer with one output per label."""
    labels = model.config.num_labels if hasattr(model, "config") else None
    layers = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == (labels or m.out_features)]
    if not layers:
        raise ModelError(f"{type(model).__name__}: no linear output layer to fold the logit scale into")
    return layers[-1]


@torch.no_grad()
def fold_logit_scale(model: nn.Module, scale: float, shift: float) -> None:
    """Make the model emit ``scale * logits + shift`` itself (W·a, b·a + b0): the calibration temperature
    or the regression target scale travels in the weights, so any tool that loads the folder gets
    bertfit's numbers with no extra step."""
    layer = output_layer(model)
    layer.weight.mul_(scale)
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros(layer.out_features, dtype=layer.weight.dtype, device=layer.weight.device))
    layer.bias.mul_(scale).add_(shift)


def uses_token_types(config) -> bool:
    """Whether the encoder has a token type (segment) embedding to tell the texts of a pair apart;
    ``config``: a model's (a pooled classifier's holds its encoder's values)."""
    if isinstance(config, BertfitPooledConfig):
        return int(config.encoder.get("type_vocab_size", 0) or 0) > 1
    return int(getattr(config, "type_vocab_size", 0) or 0) > 1


def logits_of(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.logits
