"""Where a model comes from, and the models bertfit refuses before any weights load.

A registry name, the packaged default, a local folder or a Hub name becomes a source to load from
(``resolve_model_source``); a decoder, an encoder-decoder, a type with no sequence classifier or a bertfit
model folder is refused with a line that says what to give instead (``check_encoder``), and so is a
tokenizer that cannot tokenize (``load_tokenizer``). Loading is safetensors only, and runs no code from
a folder unless the user asked for it (``safe_loading``).
"""

from __future__ import annotations

import json
from pathlib import Path

from bertfit.config import DEFAULT_MODEL
from bertfit.encoders import ENCODERS, hub_offline, resolve_encoder
from bertfit.errors import ModelError
from bertfit.folder import MANIFEST
from bertfit.modeling_bertfit import MODEL_TYPE, BertfitPooledConfig


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
        raise ModelError(f"cannot load the tokenizer of {source!r}: {first_line(err)}") from None
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


def safe_loading(trust_remote_code: bool = False) -> dict:
    """Weights from safetensors only (a pickled checkpoint can run code as it loads), and no Python
    code from the model's folder or hub repository unless the user asked for it."""
    return {"use_safetensors": True, "trust_remote_code": trust_remote_code}


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


def describe_load_error(err: Exception) -> str:
    text = first_line(err)
    if "safetensors" in text or "model.safetensors" in str(err):
        return text + " (bertfit loads weights from safetensors files only, never pickled .bin/.pt files)"
    return text


def first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
