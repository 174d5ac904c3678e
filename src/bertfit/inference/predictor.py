"""``Predictor.load(folder).predict(texts)``: the same code that scored the model in training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bertfit.data.texts import as_texts
from bertfit.encoding.batching import Encoded, TextPolicy, aggregate_windows, encode_texts
from bertfit.encoding.precision import default_device, resolve_precision
from bertfit.errors import ConfigError, ModelError
from bertfit.folder import AUTO_BACKEND, BACKEND_CHOICES, Manifest, read_manifest
from bertfit.inference.backends import OnnxBackend, TorchBackend, open_backend, run_batched
from bertfit.inference.integrity import check_common_files
from bertfit.modeling import PooledClassifier, load_tokenizer, pool
from bertfit.tasks import LabelSet, Prediction, Task, task_from_manifest


class Predictor:
    """A fine-tuned model with its tokenizer, task (labels, calibration, decision rule) and text policy.

    ``backend`` computes logits from token ids: ``TorchBackend`` or ``OnnxBackend``; everything after
    the logits (window aggregation, temperature, softmax/sigmoid, thresholds) is the same for both.
    ``manifest``: the folder's, for a predictor loaded from one (its rules, such as text pairs, hold);
    None for a model in memory.
    """

    def __init__(self, backend: TorchBackend | OnnxBackend, tokenizer, task: Task, policy: TextPolicy,
                 batch_size: int = 64, token_types: bool = True, manifest: Manifest | None = None):  # fmt: skip
        self.backend = backend
        self.tokenizer = tokenizer
        self.task = task
        self.policy = policy
        self.batch_size = batch_size
        self.token_types = token_types
        self.manifest = manifest

    @classmethod
    def from_model(cls, model: nn.Module, tokenizer, task: Task, policy: TextPolicy | int,
                   precision: str = "auto", device: torch.device | None = None, batch_size: int = 64) -> Predictor:  # fmt: skip
        """A predictor over an in-memory model; an int ``policy`` is the max length, truncating."""
        policy = TextPolicy(policy) if isinstance(policy, int) else policy
        device = device or default_device()
        backend = TorchBackend(model, resolve_precision(precision, device), device)
        return cls(backend, tokenizer, task, policy, batch_size, backend.token_types)

    @classmethod
    def load(cls, folder: str | Path, precision: str | None = None, device: str | None = None,
             backend: str = AUTO_BACKEND, trust_remote_code: bool = False) -> Predictor:  # fmt: skip
        """Rebuild a saved model folder; weights load from safetensors only, and no code runs from it
        unless ``trust_remote_code`` (for models whose architecture ships as code).

        ``backend``: ``torch`` (the saved model), ``onnx`` or ``onnx-int8`` (after ``bertfit export``),
        or ``auto``: the int8 export on a CPU where its parity check held, else ``torch``.
        """
        if backend not in BACKEND_CHOICES:
            raise ConfigError(f"backend {backend!r}: choose one of {', '.join(BACKEND_CHOICES)}")
        folder = Path(folder)
        manifest = read_manifest(folder)
        task = task_from_manifest(manifest)
        check_common_files(folder)
        tokenizer = load_tokenizer(str(folder), trust_remote_code)
        policy = policy_of(manifest)
        opened = open_backend(backend, folder, manifest, precision=precision, device=device,
                              trust_remote_code=trust_remote_code)  # fmt: skip
        return cls(opened, tokenizer, task, policy, manifest.eval_batch_size, opened.token_types, manifest)

    @property
    def labels(self) -> LabelSet:
        return self.task.labels

    @property
    def max_length(self) -> int:
        return self.policy.max_length

    @property
    def model(self) -> nn.Module:
        if not isinstance(self.backend, TorchBackend):
            raise ModelError(f"this predictor runs the {self.backend.name} export, not a PyTorch model")
        return self.backend.model

    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Encoded:
        return encode_texts(self.tokenizer, texts, self.policy, pairs, self.token_types)

    def logits_of(self, encoded: Encoded) -> np.ndarray:
        """One row of logits per text (windows of a long text aggregated)."""
        logits = self.backend.logits(encoded, self.tokenizer.pad_token_id or 0, self.batch_size)
        return aggregate_windows(logits, encoded, self.policy.aggregate)

    def outputs_of(self, encoded: Encoded) -> np.ndarray:
        return self.task.outputs(self.logits_of(encoded))

    def check_pairs(self, pairs, give: str = "pairs") -> None:
        """The folder's rule on second texts (``Manifest.check_pairs``); a model in memory has no folder."""
        if self.manifest is not None:
            self.manifest.check_pairs(pairs, give=give)

    def predict_proba(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray:
        """Per text: one probability per label (``labels.names`` order), or the value (regression).
        An empty or whitespace-only text is refused, naming its position (``data.texts.as_texts``)."""
        if isinstance(texts, str):
            raise TypeError("predict_proba takes a list of texts, not one string")
        self.check_pairs(pairs)
        texts = as_texts(texts, "texts")
        pairs = None if pairs is None else as_texts(pairs, "pairs")
        if pairs is not None and len(pairs) != len(texts):
            raise ConfigError(f"{len(texts)} texts but {len(pairs)} pair texts")
        if not texts:
            return self.task.empty_outputs()
        return self.outputs_of(self.encode(texts, pairs))

    def predict(self, texts: Sequence[str] | str, pairs: Sequence[str] | str | None = None) -> list[Prediction]:
        if isinstance(texts, str):
            texts = [texts]
            pairs = [pairs] if isinstance(pairs, str) else pairs
        return self.predictions(self.predict_proba(texts, pairs))

    def sentence_vectors(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray:
        """One float32 vector per text, in input order: what the head reads (a pooled classifier's pooled
        vector; a Hugging Face sequence classifier's mean last hidden state), windows of a long text averaged.
        Needs the PyTorch model (``backend="torch"``)."""
        model = self.model
        if isinstance(model, PooledClassifier):
            forward = model.features
        else:
            encoder = model.base_model

            def forward(input_ids, attention_mask, **extra):
                hidden = encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
                return pool(hidden, attention_mask, "mean")

        encoded = self.encode(texts, pairs)
        model.eval()
        vectors = run_batched(forward, encoded, self.tokenizer.pad_token_id or 0, self.batch_size,
                              self.backend.precision, self.backend.device)  # fmt: skip
        return aggregate_windows(vectors, encoded, "mean")

    def explain(
        self,
        texts: Sequence[str] | str,
        pairs: Sequence[str] | str | None = None,
        label: str | None = None,
        method: str | None = None,
    ) -> list:
        """Per-word attributions of each text's prediction, or of ``label`` (``inference.explain``): a list of
        ``Explanation``, one per text (multi-label: per label the model chose). Needs the PyTorch model.
        ``method``: ``"occlusion"`` (the default: each word's score is how far the output falls without it),
        ``"integrated-gradients"`` (scores that add up to the output's distance from the all-padding text);
        ``"gradient-x-input"`` only reruns the benchmark's comparison."""
        from bertfit.inference.explain import DEFAULT_METHOD, explain

        if isinstance(texts, str):
            texts = [texts]
            pairs = [pairs] if isinstance(pairs, str) else pairs
        self.check_pairs(pairs)
        texts = as_texts(texts, "texts")
        pairs = None if pairs is None else as_texts(pairs, "pairs")
        return explain(self, texts, pairs, label, method or DEFAULT_METHOD)

    def suggest(self, texts: Sequence[str], n: int, pairs: Sequence[str] | None = None) -> list:
        """The ``n`` texts worth labelling next, most uncertain first, spread over the texts' variety
        (``inference.suggest``): a list of ``Suggestion`` (position in ``texts``, uncertainty, guess)."""
        from bertfit.inference.suggest import suggest

        return suggest(self, list(texts), n, None if pairs is None else list(pairs))

    def predictions(self, outputs: np.ndarray) -> list[Prediction]:
        """``Prediction`` objects from ``predict_proba``'s outputs, with the saved decision rule."""
        return self.task.predictions(outputs)


def policy_of(manifest: Manifest) -> TextPolicy:
    return TextPolicy(int(manifest.max_length), manifest.long_text, int(manifest.stride), manifest.window_aggregate)
