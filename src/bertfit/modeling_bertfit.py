"""An encoder, the pooling it was trained with, and a small head, as a transformers model.

This file is copied into every model folder whose classifier has no standard transformers class (an
encoder read through mean or CLS pooling, such as the default sentence-transformers model, and
``--freeze all``'s dense head). Its ``config.json`` names the model type ``bertfit-pooled`` with an
``auto_map`` to the classes below, so plain transformers refuses the folder rather than building a
new, random head on it, and with ``trust_remote_code=True`` loads this file and predicts what
bertfit's model computes (the logits; bertfit's calibration and thresholds are in ``config.json``
under ``bertfit``):

    from transformers import pipeline
    pipeline("text-classification", model=FOLDER, trust_remote_code=True)

It imports only torch and transformers, so it runs wherever they do; bertfit itself uses the same
heads and pooling when it trains.
"""

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

MODEL_TYPE = "bertfit-pooled"


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """The sentence vector: the first token's state (``cls``), or the mean over real tokens."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


class LinearHead(nn.Module):
    """Dropout then one linear layer: the usual fine-tuning head."""

    def __init__(self, input_size: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(input_size, num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.output(self.dropout(features))


class DenseHead(nn.Module):
    """Dense 512 -> ReLU -> dropout -> dense: the head of the SMS spam tutorial."""

    def __init__(self, input_size: int, num_labels: int, hidden_size: int = 512, dropout: float = 0.1):
        super().__init__()
        self.hidden = nn.Linear(input_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.output(self.dropout(torch.relu(self.hidden(features))))


HEADS = {"linear": LinearHead, "dense": DenseHead}


class BertfitPooledConfig(PretrainedConfig):
    """``encoder``: the encoder's own config, as a dict; ``pooling``: mean or cls; ``head``: linear or dense."""

    model_type = MODEL_TYPE

    def __init__(self, encoder: dict | None = None, pooling: str = "mean", head: str = "linear",
                 frozen_encoder: bool = False, **kwargs):  # fmt: skip
        self.encoder = encoder or {}
        self.pooling = pooling
        self.head = head
        self.frozen_encoder = frozen_encoder
        super().__init__(**kwargs)

    def encoder_config(self) -> PretrainedConfig:
        values = dict(self.encoder)
        return AutoConfig.for_model(values.pop("model_type"), **values)


class BertfitPooledForSequenceClassification(PreTrainedModel):
    config_class = BertfitPooledConfig
    base_model_prefix = "encoder"

    def __init__(self, config: BertfitPooledConfig):
        super().__init__(config)
        encoder_config = config.encoder_config()
        try:  # no pooler layer: the pooling here replaces it
            self.encoder = AutoModel.from_config(encoder_config, add_pooling_layer=False)
        except TypeError:  # encoders without a pooler option (DistilBERT, DeBERTa-v2)
            self.encoder = AutoModel.from_config(encoder_config)
        self.head = HEADS[config.head](encoder_config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **kwargs):
        """The logits, for prediction; bertfit trains this model itself, so no loss is computed here."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        return SequenceClassifierOutput(logits=self.head(pool(hidden, attention_mask, self.config.pooling).float()))
