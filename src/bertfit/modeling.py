"""Load encoders and build the classifier to fine-tune.

Two shapes, chosen by the encoder and the strategy:
- a Hugging Face ``AutoModelForSequenceClassification`` (its pooler + linear layer), for encoders
  pre-trained with a [CLS] pooler, such as BERT;
- a ``PooledClassifier``: the encoder, the pooling it was trained with, and a small head. Used for
  sentence-transformers encoders (the default model was trained with mean pooling, so its BERT
  pooler layer is untrained) and for ``--freeze all`` (the SMS spam tutorial's dense head).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch
from torch import nn

from bertfit.config import DEFAULT_MODEL, TrainConfig
from bertfit.encoders import ENCODERS, hub_offline, resolve_encoder
from bertfit.errors import ModelError
from bertfit.folder import HEAD_FILE, MANIFEST, POOLED_CLASSIFIER, SEQUENCE_CLASSIFIER, Manifest
from bertfit.modeling_bertfit import (
    HEADS,
    MODEL_TYPE,
    BertfitPooledConfig,
    BertfitPooledForSequenceClassification,
    pool,
)
from bertfit.tasks import LabelSet, Task

log = logging.getLogger(__name__)

REMOTE_MODULE = "modeling_bertfit"  # the file a pooled folder carries for plain transformers


def load_errors() -> tuple[type[Exception], ...]:
    """What a missing, unreachable or corrupt model folder raises while loading."""
    from safetensors import SafetensorError

    return (OSError, ValueError, RuntimeError, SafetensorError)


def resolve_model_source(name: str) -> str:
    """A local folder for registry names (``encoders``), the packaged default and paths; anything else
    is a hub name."""
    if name == DEFAULT_MODEL:
        name = "minilm"
    if name in ENCODERS:
        return resolve_encoder(ENCODERS[name])
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"{path}: a file, not a model folder")
        if not (path / "config.json").is_file():
            raise ModelError(f"{path}: not a model folder (no config.json)")
        return str(path)
    if looks_like_path(name):
        raise ModelError(f"{name}: no such folder (a Hub name is organisation/model, e.g. bert-base-uncased)")
    if hub_offline() and not _in_hub_cache(name):
        raise ModelError(f"{name}: no such folder, and not a Hub model downloaded before (the Hub is offline: "
                         "HF_HUB_OFFLINE=1); give a model folder, or a name from `bertfit models`")  # fmt: skip
    return name


def _in_hub_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def looks_like_path(name: str) -> bool:
    """Whether ``name`` can only be a local path: Hub ids are ``model`` or ``organisation/model``."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith("/") or "\\" in name


# Files a transformers tokenizer is built from; a folder with none of them cannot hold a real tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spm.model", "sentencepiece.bpe.model",
                   "tokenizer.model", "spiece.model")  # fmt: skip
PROBE_SENTENCE = "The quick brown fox jumps over the lazy dog."


def load_tokenizer(source: str, trust_remote_code: bool = False):
    """The folder's (or Hub model's) tokenizer, refused when it cannot tokenize: no tokenizer files in a
    local folder, or every word of a probe sentence mapped to the unknown token (an empty vocabulary)."""
    from transformers import AutoTokenizer

    folder = Path(source)
    if folder.is_dir() and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(f"{source}: no tokenizer files (tokenizer.json, or vocab.txt and the like); copy "
                         "tokenizer.json from the original model folder")  # fmt: skip
    # A bertfit-pooled folder's config.json points at its own code; the tokenizer is the encoder's.
    config = pooled_config(source)
    extra = {"config": config.encoder_config()} if config is not None else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, **extra)
    except load_errors() as err:
        raise ModelError(f"cannot load the tokenizer of {source!r}: {_first_line(err)}") from None
    ids = tokenizer(PROBE_SENTENCE, add_special_tokens=False)["input_ids"]
    if not ids or all(i == tokenizer.unk_token_id for i in ids):
        raise ModelError(f"{source}: the tokenizer maps every word to the unknown token (an empty or wrong "
                         "vocabulary); copy tokenizer.json from the original model folder")  # fmt: skip
    return tokenizer


def check_encoder(source: str, trust_remote_code: bool = False) -> dict:
    """Refuse, before any weights load, a model bertfit cannot fine-tune: a decoder (GPT-2), an
    encoder-decoder (T5), a type transformers has no sequence classifier for, or a bertfit model folder.
    Returns the encoder's config values."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    )

    if pooled_config(source) is not None or (Path(source) / MANIFEST).is_file():
        raise ModelError(f"{source} is a bertfit model folder, not an encoder to start from; give --model the "
                         "encoder it was trained from (its bertfit.json names it)")  # fmt: skip
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except load_errors() as err:
        raise ModelError(f"cannot load the model config of {source!r}: {describe_load_error(err)}") from None
    kind = config.model_type
    advice = "bertfit fine-tunes encoders such as BERT, RoBERTa, DeBERTa or MPNet"
    if getattr(config, "is_encoder_decoder", False):
        raise ModelError(f"{source}: an encoder-decoder model ({kind}); {advice}")
    if kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        raise ModelError(f"{source}: a decoder (text generation) model ({kind}); {advice}")
    if kind not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES and not trust_remote_code:
        raise ModelError(f"{source}: transformers has no sequence classifier for model type {kind!r}; {advice}")
    return config.to_dict()


def pooled_config(source: str) -> BertfitPooledConfig | None:
    """The config of a folder bertfit saved as a ``bertfit-pooled`` model, else None."""
    path = Path(source) / "config.json"
    if not path.is_file():
        return None
    values = json.loads(path.read_text(encoding="utf-8"))
    return BertfitPooledConfig.from_dict(values) if values.get("model_type") == MODEL_TYPE else None


def trained_pooling(source: str) -> str | None:
    """The pooling a sentence-transformers encoder was trained with (its folder says), else None."""
    config = Path(source) / "1_Pooling" / "config.json"
    if not config.is_file():
        return None
    modes = json.loads(config.read_text(encoding="utf-8"))
    return "cls" if modes.get("pooling_mode_cls_token") else "mean"


# -- full and partial fine-tuning ----------------------------------------------------------
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


def dropout_settings(source: str, rate: float | None, trust_remote_code: bool = False) -> dict[str, float]:
    """Every dropout rate in the model's config set to ``rate`` (none when ``rate`` is None), as keyword
    arguments for ``from_pretrained``: the layers are built with it, and the saved config says how the
    model was trained. The names differ by architecture (BERT's ``hidden_dropout_prob`` and
    ``attention_probs_dropout_prob``, DistilBERT's ``dropout`` and ``attention_dropout``, ...)."""
    if rate is None:
        return {}
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    return {name: rate for name, value in config.to_dict().items() if "dropout" in name and isinstance(value, float)}


def safe_loading(trust_remote_code: bool = False) -> dict:
    """Weights from safetensors only (a pickled checkpoint can run code as it loads), and no Python
    code from the model's folder or hub repository unless the user asked for it."""
    return {"use_safetensors": True, "trust_remote_code": trust_remote_code}


def describe_load_error(err: Exception) -> str:
    text = _first_line(err)
    if "safetensors" in text or "model.safetensors" in str(err):
        return text + " (bertfit loads weights from safetensors files only, never pickled .bin/.pt files)"
    return text


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


# -- encoder + pooling + head ---------------------------------------------------------------
class PooledClassifier(nn.Module):
    """An encoder whose pooled output feeds a head; the encoder may be frozen.

    With a frozen encoder, training computes the pooled features once and trains only the head
    on them (see ``training.run``); prediction runs both.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, pooling: str, head_kind: str, frozen: bool = False):
        super().__init__()
        self.encoder = encoder.requires_grad_(not frozen)
        self.head = head
        self.pooling = pooling
        self.head_kind = head_kind
        self.frozen = frozen

    @property
    def config(self):
        return self.encoder.config

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        return pool(hidden, attention_mask, self.pooling)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(input_ids, attention_mask, **extra).float())

    def save_pretrained(self, folder: Path) -> None:
        """As a transformers model of type ``bertfit-pooled``: ``config.json`` (the encoder's config inside,
        and an ``auto_map`` to ``modeling_bertfit.py``, copied beside it), and every weight in
        ``model.safetensors``. Plain transformers then refuses the folder unless told to trust that file."""
        from safetensors.torch import save_model

        folder = Path(folder)
        encoder_config = self.encoder.config
        config = BertfitPooledConfig(
            encoder=encoder_config.to_dict(), pooling=self.pooling, head=self.head_kind, frozen_encoder=self.frozen,
            id2label=encoder_config.id2label, label2id=encoder_config.label2id,
            problem_type=encoder_config.problem_type, architectures=[BertfitPooledForSequenceClassification.__name__],
            auto_map={"AutoConfig": f"{REMOTE_MODULE}.{BertfitPooledConfig.__name__}",
                      "AutoModelForSequenceClassification": f"{REMOTE_MODULE}.{BertfitPooledForSequenceClassification.__name__}"},
        )  # fmt: skip
        config.save_pretrained(folder)
        save_model(self, str(folder / "model.safetensors"), metadata={"format": "pt"})
        shutil.copyfile(Path(__file__).with_name(f"{REMOTE_MODULE}.py"), folder / f"{REMOTE_MODULE}.py")

    @classmethod
    def from_pretrained(cls, folder: Path, manifest: Manifest, trust_remote_code: bool = False) -> PooledClassifier:
        """Rebuild a saved pooled classifier; ``manifest`` says its pooling, head and whether it was frozen.
        The classes are bertfit's own, so no code from the folder runs."""
        if manifest.format < 2:  # the encoder's own folder, and the head in head.safetensors
            from safetensors.torch import load_file

            encoder = load_encoder(str(folder), trust_remote_code)
            head = HEADS[manifest.head](encoder.config.hidden_size, len(manifest.labels))
            head.load_state_dict(load_file(Path(folder) / HEAD_FILE))
            return cls(encoder, head, manifest.pooling, manifest.head, manifest.frozen_encoder)
        saved = BertfitPooledForSequenceClassification.from_pretrained(folder, use_safetensors=True)
        return cls(saved.encoder, saved.head, manifest.pooling, manifest.head, manifest.frozen_encoder)


def load_encoder(source: str, trust_remote_code: bool = False, dropout: float | None = None) -> nn.Module:
    """``dropout``: every dropout rate of the encoder (None: the model's own)."""
    from transformers import AutoModel

    try:
        options = {**dropout_settings(source, dropout, trust_remote_code), **safe_loading(trust_remote_code)}
        try:
            # No pooler: bertfit pools itself, and an unused layer would only cost time.
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
    encoder.config.id2label = labels.id2label
    encoder.config.label2id = labels.label2id
    encoder.config.problem_type = problem_type  # saved with the folder, for softmax or sigmoid outside bertfit
    head = HEADS[head_kind](encoder.config.hidden_size, len(labels), dropout=dropout)
    return PooledClassifier(encoder, head, pooling, head_kind, frozen)


def load_model(folder: Path, manifest: Manifest, trust_remote_code: bool = False) -> nn.Module:
    """The model a folder holds, as its manifest describes it; weights from safetensors only."""
    from transformers import AutoModelForSequenceClassification

    try:
        if manifest.architecture == SEQUENCE_CLASSIFIER:
            return AutoModelForSequenceClassification.from_pretrained(folder, **safe_loading(trust_remote_code))
        if manifest.architecture == POOLED_CLASSIFIER:
            return PooledClassifier.from_pretrained(folder, manifest, trust_remote_code)
    except load_errors() as err:
        raise ModelError(f"{folder}: cannot load the model: {describe_load_error(err)}") from None
    raise ModelError(f"{folder}: unknown architecture {manifest.architecture!r} in {MANIFEST}")


def describe_architecture(model: nn.Module) -> dict:
    """What ``bertfit.json`` records to rebuild ``model`` from its folder."""
    if isinstance(model, PooledClassifier):
        return {"architecture": POOLED_CLASSIFIER, "pooling": model.pooling, "head": model.head_kind,
                "frozen_encoder": model.frozen}  # fmt: skip
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
    """Whether the encoder has a token type (segment) embedding to tell the texts of a pair apart."""
    return int(getattr(config, "type_vocab_size", 0) or 0) > 1


def logits_of(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.logits


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# -- the model a training run starts from -------------------------------------------------------
def resolve_pooling(setting: str, source: str, freeze_all: bool) -> str:
    """'auto': the pooling a sentence-transformers encoder was trained with; otherwise the model's
    own pooler, or mean pooling for a frozen encoder (whose head is ours)."""
    if setting != "auto":
        return setting
    return trained_pooling(source) or ("mean" if freeze_all else "pooler")


def build_model(config: TrainConfig, source: str, task: Task) -> nn.Module:
    """The classifier ``config`` asks for over the encoder at ``source``: pooling, head, dropout,
    re-initialised, frozen and fixed parts."""
    pooling = resolve_pooling(config.pooling, source, config.freeze_all)
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
