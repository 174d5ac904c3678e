"""Prediction: ``Predictor.load(folder).predict(texts)``, the same code that scored the model in training."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bertfit.data.labels import LabelSet
from bertfit.errors import ModelError
from bertfit.modeling import (
    HEAD_FILE,
    HEADS,
    POOLED_CLASSIFIER,
    SEQUENCE_CLASSIFIER,
    PooledClassifier,
    load_encoder,
    load_errors,
    load_tokenizer,
    logits_of,
)
from bertfit.training.batching import encode_texts, inference_batches, iterate_batches
from bertfit.training.precision import autocast, default_device, resolve_precision

log = logging.getLogger(__name__)

MANIFEST = "bertfit.json"


@torch.inference_mode()
def run_batched(
    forward: Callable[..., torch.Tensor],
    ids: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int,
    precision: str,
    device: torch.device,
) -> np.ndarray:
    """``forward(input_ids=..., attention_mask=...)`` over length-sorted batches, rows back in input order."""
    out: np.ndarray | None = None
    batches = inference_batches([len(x) for x in ids], batch_size)
    for indices, batch in iterate_batches(ids, batches, pad_id):
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast(precision, device):
            values = forward(**batch).float().cpu().numpy()
        if out is None:
            out = np.zeros((len(ids), values.shape[1]), dtype=np.float32)
        out[indices] = values
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def predict_probabilities(
    model: nn.Module,
    ids: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int,
    precision: str,
    device: torch.device,
) -> np.ndarray:
    """Class probabilities in input order, the model in eval mode for the call."""
    was_training = model.training
    model.eval()
    try:
        return run_batched(
            lambda **batch: torch.softmax(logits_of(model(**batch)).float(), dim=-1),
            ids, pad_id, batch_size, precision, device,
        )  # fmt: skip
    finally:
        model.train(was_training)


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float
    probabilities: dict[str, float]


class Predictor:
    """A fine-tuned classifier with its tokenizer, labels and max length."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        labels: LabelSet,
        max_length: int,
        precision: str = "auto",
        device: torch.device | None = None,
        batch_size: int = 64,
    ):
        self.device = device or default_device()
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.labels = labels
        self.max_length = max_length
        self.precision = resolve_precision(precision, self.device)
        self.batch_size = batch_size

    @classmethod
    def load(cls, folder: str | Path, precision: str | None = None, device: str | None = None) -> Predictor:
        """Rebuild a saved model folder; weights load from safetensors only, no code runs from it."""
        folder = Path(folder)
        manifest = read_manifest(folder)
        labels = LabelSet(tuple(manifest["labels"]))
        model = _load_model(folder, manifest, labels)
        return cls(
            model,
            load_tokenizer(str(folder)),
            labels,
            int(manifest["max_length"]),
            precision or manifest.get("precision", "auto"),
            torch.device(device) if device else None,
            int(manifest.get("eval_batch_size", 64)),
        )

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return encode_texts(self.tokenizer, texts, self.max_length)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, one row per text and one column per label (in ``labels.names`` order)."""
        if isinstance(texts, str):
            raise TypeError("predict_proba takes a list of texts, not one string")
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self.proba_of_ids(self.encode(texts))

    def proba_of_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        pad_id = self.tokenizer.pad_token_id or 0
        return predict_probabilities(self.model, ids, pad_id, self.batch_size, self.precision, self.device)

    def predict(self, texts: Sequence[str] | str) -> list[Prediction]:
        if isinstance(texts, str):
            texts = [texts]
        probabilities = self.predict_proba(texts)
        return [self._prediction(row) for row in probabilities]

    def _prediction(self, row: np.ndarray) -> Prediction:
        best = int(row.argmax())
        return Prediction(
            self.labels.names[best],
            float(row[best]),
            {name: float(p) for name, p in zip(self.labels.names, row)},
        )


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise ModelError(f"{folder}: not a bertfit model folder (no {MANIFEST})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ModelError(f"{path}: unreadable ({err.msg})") from None


def _load_model(folder: Path, manifest: dict, labels: LabelSet) -> nn.Module:
    from transformers import AutoModelForSequenceClassification

    architecture = manifest.get("architecture", SEQUENCE_CLASSIFIER)
    try:
        if architecture == SEQUENCE_CLASSIFIER:
            return AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True)
        if architecture == POOLED_CLASSIFIER:
            from safetensors.torch import load_file

            encoder = load_encoder(str(folder), use_safetensors=True)
            head = HEADS[manifest["head"]](encoder.config.hidden_size, len(labels))
            head.load_state_dict(load_file(folder / HEAD_FILE))
            return PooledClassifier(encoder, head, manifest["pooling"], manifest["head"], manifest["frozen_encoder"])
    except load_errors() as err:
        raise ModelError(f"{folder}: cannot load the model: {str(err).splitlines()[0]}") from None
    raise ModelError(f"{folder}: unknown architecture {architecture!r} in {MANIFEST}")


def predict_file(
    predictor: Predictor,
    input_path: str | Path,
    output_path: str | Path,
    text_column: str | None = None,
) -> int:
    """Add ``predicted_label`` and one ``prob_<label>`` column per class to the input's columns.

    The output format follows the output file's suffix (CSV, TSV, JSONL or Parquet). Returns the row count.
    """
    from bertfit.data.load import read_text_file
    from bertfit.data.readers import file_format

    frame, column = read_text_file(input_path, text_column)
    probabilities = predictor.predict_proba([str(t) for t in frame[column]])
    frame = frame.copy()
    frame["predicted_label"] = [predictor.labels.names[i] for i in probabilities.argmax(axis=1)]
    for i, name in enumerate(predictor.labels.names):
        frame[f"prob_{name}"] = probabilities[:, i]
    output_path = Path(output_path)
    _write_frame(frame, output_path, file_format(output_path) if output_path.suffix else "csv")
    return len(frame)


def _write_frame(frame, path: Path, kind: str) -> None:
    """Write to a temp file beside ``path`` and move it into place, so a crash leaves no half file."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        if kind == "parquet":
            frame.to_parquet(temp, index=False)
        elif kind == "jsonl":
            frame.to_json(temp, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_csv(temp, index=False, sep="\t" if kind == "tsv" else ",")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
