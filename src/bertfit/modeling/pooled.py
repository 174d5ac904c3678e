"""The pooled classifier as bertfit builds and loads it: an encoder, the pooling it was trained with,
and a small head.

The class is ``modeling_bertfit.BertfitPooledForSequenceClassification``, the one a model folder ships for
plain transformers, so training, prediction and plain transformers run the same code. Used for
sentence-transformers encoders (the default model was trained with mean pooling, so its BERT pooler
layer is untrained) and for ``--freeze all`` (the SMS spam tutorial's dense head).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from bertfit.errors import ModelError
from bertfit.folder import HEAD_FILE, Manifest
from bertfit.modeling.source import describe_load_error, dropout_settings, load_errors, safe_loading
from bertfit.modeling_bertfit import HEADS, BertfitPooledForSequenceClassification, pool
from bertfit.tasks import LabelSet

PooledClassifier = BertfitPooledForSequenceClassification  # bertfit's name for it

__all__ = ["HEADS", "PooledClassifier", "build_pooled_classifier", "load_encoder", "load_pooled", "pool"]


def load_encoder(source: str, trust_remote_code: bool = False, dropout: float | None = None) -> nn.Module:
    """The encoder at ``source`` without its pooler (bertfit pools itself, and an unused layer would only
    cost time); ``dropout``: every dropout rate of the encoder (None: the model's own)."""
    from transformers import AutoModel

    try:
        options = {**dropout_settings(source, dropout, trust_remote_code), **safe_loading(trust_remote_code)}
        try:
            return AutoModel.from_pretrained(source, add_pooling_layer=False, **options)
        except TypeError:  # encoders without a pooler option (DistilBERT, DeBERTa-v2)
            return AutoModel.from_pretrained(source, **options)
    except load_errors() as err:
        raise ModelError(f"cannot load the encoder {source!r}: {describe_load_error(err)}") from None


def build_pooled_classifier(
    encoder: nn.Module,
    labels: LabelSet,
    pooling: str,
    head_kind: str,
    frozen: bool,
    dropout: float = 0.1,
    problem_type: str | None = None,
) -> PooledClassifier:
    """A fresh ``head_kind`` head over ``encoder``, for ``labels``; the encoder's config takes the labels and
    the problem type, which the folder saves, for softmax or sigmoid outside bertfit."""
    encoder.config.id2label = labels.id2label
    encoder.config.label2id = labels.label2id
    encoder.config.problem_type = problem_type
    head = HEADS[head_kind](encoder.config.hidden_size, len(labels), dropout=dropout)
    return PooledClassifier.from_parts(encoder, head, pooling, head_kind, frozen)


def load_pooled(folder: Path, manifest: Manifest, trust_remote_code: bool = False) -> PooledClassifier:
    """Rebuild a saved pooled classifier with bertfit's own classes, so no code from the folder runs.
    Format 1 kept the encoder's own folder and the head in ``head.safetensors``; ``manifest`` says its
    pooling, head and whether the encoder was frozen."""
    if manifest.format < 2:
        from safetensors.torch import load_file

        encoder = load_encoder(str(folder), trust_remote_code)
        head = HEADS[manifest.head](encoder.config.hidden_size, len(manifest.labels))
        head.load_state_dict(load_file(Path(folder) / HEAD_FILE))
        return PooledClassifier.from_parts(encoder, head, manifest.pooling, manifest.head, manifest.frozen_encoder)
    model = PooledClassifier.from_pretrained(folder, use_safetensors=True)
    model.encoder.requires_grad_(not model.config.frozen_encoder)
    return model
