"""A damaged model folder is refused in one line that names the file, before anything loads from it.

A copy cut short, a file emptied by a full disk or overwritten by something else would otherwise surface
as a transformers or JSON traceback about some other file, or none. What prediction reads, by backend:

- every backend: ``bertfit.json`` (``folder.read_manifest``), the tokenizer's files, and ``config.json``
  (the tokenizer is told its model from it; every folder bertfit writes has one);
- ``torch``: the safetensors weights (``head.safetensors`` too, in format-1 pooled folders);
- ``onnx``/``onnx-int8``: the graph, which ONNX Runtime checks as it opens it (``OnnxBackend``).

The metrics, plots, report, model card and the export's copies of the config and tokenizer are never read
to predict: damage there changes nothing.
"""

from __future__ import annotations

from pathlib import Path

from bertfit.errors import ModelError
from bertfit.folder import DAMAGED, HEAD_FILE, POOLED_CLASSIFIER, Manifest, read_folder_json

MODEL_CONFIG = "config.json"
WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"  # weights saved in shards (large models)
TOKENIZER_CONFIG = "tokenizer_config.json"  # every tokenizer ``save_pretrained`` writes one
# JSON files a tokenizer is built from, where the folder has them (vocabularies in other formats are
# checked by the tokenizer as it loads).
TOKENIZER_JSON = ("tokenizer.json", "special_tokens_map.json", "added_tokens.json")


def check_common_files(folder: Path) -> None:
    """What every backend reads besides the manifest: config.json and the tokenizer's JSON files."""
    for name in (MODEL_CONFIG, TOKENIZER_CONFIG):
        require(folder / name)
    for name in (MODEL_CONFIG, TOKENIZER_CONFIG, *TOKENIZER_JSON):
        if (folder / name).exists():
            read_folder_json(folder / name)


def check_weight_files(folder: Path, manifest: Manifest) -> None:
    """What the PyTorch model is built from besides ``check_common_files``: weights whose header is whole."""
    if (folder / WEIGHTS_INDEX).is_file():  # sharded: the index is checked, each shard as it loads
        read_folder_json(folder / WEIGHTS_INDEX)
        return
    check_safetensors(require(folder / WEIGHTS, "bertfit loads weights from safetensors files only"))
    if manifest.format < 2 and manifest.architecture == POOLED_CLASSIFIER:
        check_safetensors(require(folder / HEAD_FILE))


def require(path: Path, note: str = "") -> Path:
    if not path.is_file():
        reason = f" ({note})" if note else ""
        raise ModelError(f"{path}: missing{reason}; the folder is incomplete: copy the whole folder again, or "
                         "train it again")  # fmt: skip
    return path


def check_safetensors(path: Path) -> None:
    """The file's header read and its tensors' offsets checked against its size (no weights are read):
    an empty, cut-off or overwritten file fails here."""
    from safetensors import SafetensorError, safe_open

    if path.stat().st_size == 0:
        raise ModelError(f"{path}: empty; {DAMAGED}")
    try:
        with safe_open(str(path), framework="numpy") as weights:
            weights.keys()
    except (OSError, SafetensorError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"{path}: not a readable safetensors file ({reason}); {DAMAGED}") from None
