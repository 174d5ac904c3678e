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

It imports only torch and transformers (and safetensors, which transformers installs), so it runs
wherever they do. bertfit trains, saves and predicts with this same class (``bertfit.modeling.pooled``
builds it from a loaded encoder and a fresh head), so the logits here are bertfit's by construction.
"""

import shutil
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

MODEL_TYPE = "bertfit-pooled"
REMOTE_MODULE = "modeling_bertfit"  # this file's name in a model folder, which config.json's auto_map names


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

    @classmethod
    def for_encoder(cls, encoder_config: PretrainedConfig, pooling: str, head: str, frozen: bool):
        """The config of a pooled classifier over an encoder with ``encoder_config``, as it is now (its labels
        and problem type are the classifier's), naming this file's classes for plain transformers."""
        model = BertfitPooledForSequenceClassification.__name__
        return cls(
            encoder=encoder_config.to_dict(), pooling=pooling, head=head, frozen_encoder=frozen,
            id2label=encoder_config.id2label, label2id=encoder_config.label2id, problem_type=encoder_config.problem_type,
            architectures=[model], auto_map={"AutoConfig": f"{REMOTE_MODULE}.{cls.__name__}",
                                             "AutoModelForSequenceClassification": f"{REMOTE_MODULE}.{model}"},
        )  # fmt: skip


class BertfitPooledForSequenceClassification(PreTrainedModel):
    """An encoder whose pooled output feeds a head; with ``config.frozen_encoder`` only the head trained
    (bertfit then computes the pooled features once and trains the head on them)."""

    config_class = BertfitPooledConfig
    base_model_prefix = "encoder"

    def __init__(self, config: BertfitPooledConfig, encoder: nn.Module | None = None, head: nn.Module | None = None):
        """From ``config`` alone (how transformers loads a folder) a random encoder and head are built for
        the saved weights to fill; ``from_parts`` passes trained ones, which are kept as they are."""
        super().__init__(config)
        if encoder is None:
            encoder_config = config.encoder_config()
            try:  # no pooler layer: the pooling here replaces it
                encoder = AutoModel.from_config(encoder_config, add_pooling_layer=False)
            except TypeError:  # encoders without a pooler option (DistilBERT, DeBERTa-v2)
                encoder = AutoModel.from_config(encoder_config)
        self.encoder = encoder
        self.head = head if head is not None else HEADS[config.head](encoder.config.hidden_size, config.num_labels)
        self.post_init()

    @classmethod
    def from_parts(cls, encoder: nn.Module, head: nn.Module, pooling: str, head_kind: str, frozen: bool = False):
        """The classifier over a loaded ``encoder`` (its config holds the label names and problem type) and
        a ``head`` of kind ``head_kind``; their weights stay as they are, and the encoder trains unless ``frozen``."""
        for module in (*encoder.modules(), *head.modules()):
            module._is_hf_initialized = True  # so post_init leaves the weights as given
        model = cls(BertfitPooledConfig.for_encoder(encoder.config, pooling, head_kind, frozen), encoder, head)
        encoder.requires_grad_(not frozen)
        return model

    def features(self, input_ids, attention_mask, token_type_ids=None, **kwargs) -> torch.Tensor:
        """The pooled sentence vector the head reads."""
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        return pool(hidden, attention_mask, self.config.pooling)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **kwargs):
        """The logits; bertfit computes the loss itself, so none is computed here."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return SequenceClassifierOutput(
            logits=self.head(self.features(input_ids, attention_mask, token_type_ids).float())
        )

    def save_pretrained(self, save_directory, **kwargs) -> None:
        """As a transformers model of type ``bertfit-pooled``: ``config.json`` (the encoder's config inside, as
        it is now, and an ``auto_map`` to this file, copied beside it), and every weight in ``model.safetensors``.
        Plain transformers then refuses the folder unless told to trust that file."""
        from safetensors.torch import save_model

        folder = Path(save_directory)
        config = self.config
        BertfitPooledConfig.for_encoder(self.encoder.config, config.pooling, config.head, config.frozen_encoder
                                        ).save_pretrained(folder)  # fmt: skip
        save_model(self, str(folder / "model.safetensors"), metadata={"format": "pt"})
        shutil.copyfile(Path(__file__), folder / f"{REMOTE_MODULE}.py")
