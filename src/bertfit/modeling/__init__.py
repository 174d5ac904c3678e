"""Encoders and the classifiers built on them, in three rooms:

- ``source``: where a model comes from, and the models (and tokenizers) bertfit refuses before loading;
- ``pooled``: the pooled classifier (encoder, pooling, small head), whose class is the one
  ``modeling_bertfit.py`` ships in a model folder;
- ``build``: the classifier a run starts from (head, dropout, re-initialised and frozen parts), the model
  a folder holds, and the logit scale folded into its weights.

The names below are re-exported, so ``from bertfit.modeling import build_model`` works as before.
"""

from bertfit.modeling.build import (
    build_model,
    describe_architecture,
    encoder_config,
    encoder_layers,
    fold_logit_scale,
    freeze_bottom_layers,
    freeze_word_embeddings,
    load_model,
    load_sequence_classifier,
    logits_of,
    output_layer,
    reinit_top_layers,
    resolve_pooling,
    uses_token_types,
)
from bertfit.modeling.pooled import HEADS, PooledClassifier, build_pooled_classifier, load_encoder, load_pooled, pool
from bertfit.modeling.source import (
    check_encoder,
    describe_load_error,
    dropout_settings,
    load_errors,
    load_tokenizer,
    looks_like_path,
    pooled_config,
    resolve_model_source,
    safe_loading,
    trained_pooling,
)

__all__ = [
    "HEADS",
    "PooledClassifier",
    "build_model",
    "build_pooled_classifier",
    "check_encoder",
    "describe_architecture",
    "describe_load_error",
    "dropout_settings",
    "encoder_config",
    "encoder_layers",
    "fold_logit_scale",
    "freeze_bottom_layers",
    "freeze_word_embeddings",
    "load_encoder",
    "load_errors",
    "load_model",
    "load_pooled",
    "load_sequence_classifier",
    "load_tokenizer",
    "logits_of",
    "looks_like_path",
    "output_layer",
    "pool",
    "pooled_config",
    "reinit_top_layers",
    "resolve_model_source",
    "resolve_pooling",
    "safe_loading",
    "trained_pooling",
    "uses_token_types",
]
