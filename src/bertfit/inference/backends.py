"""What computes logits from token ids: the PyTorch model, or its ONNX export.

Both run the same length-sorted batches (little padding) and return rows in input order, so a
``Predictor`` gives the same answers whichever backend it holds, up to float rounding. What the
logits mean (softmax, sigmoid, a value) is the ``Task``'s business, applied after.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bertfit.encoding.batching import Encoded, inference_batches, iterate_batches
from bertfit.encoding.precision import PREDICTION_PRECISION, autocast, default_device, resolve_precision
from bertfit.errors import ConfigError, ModelError
from bertfit.folder import (
    AUTO_BACKEND,
    BACKEND_CHOICES,
    LEGACY_ONNX_FILES,
    ONNX_DIR,
    ONNX_FILES,
    PARITY_FILE,
    Manifest,
)
from bertfit.inference.integrity import check_weight_files
from bertfit.modeling import load_model, logits_of, uses_token_types

log = logging.getLogger(__name__)

CPU_BATCH_TOKENS = 1024  # padded tokens per CPU batch (see inference_batches)
# How far the int8 export's parity metric (accuracy for single-label tasks) may fall below PyTorch
# fp32's on the validation split for ``auto`` to run it: half a point.
INT8_MAX_DROP = 0.005
# How far the fp32 export's outputs (probabilities, or values) may move from PyTorch fp32's on the
# validation split for ``auto`` to run it: the folder's promise of the same numbers as plain transformers.
FP32_MAX_DIFFERENCE = 1e-4


def batched_rows(
    encoded: Encoded,
    pad_id: int,
    batch_size: int,
    score_batch: Callable[[dict[str, torch.Tensor]], np.ndarray],
    max_tokens: int | None = CPU_BATCH_TOKENS,
) -> np.ndarray:
    """``score_batch`` over length-sorted batches, its rows put back in input order."""
    out: np.ndarray | None = None
    batches = inference_batches(encoded.lengths(), batch_size, max_tokens)
    for indices, batch in iterate_batches(encoded, batches, pad_id):
        values = score_batch(batch)
        if out is None:
            out = np.zeros((len(encoded), values.shape[1]), dtype=np.float32)
        out[indices] = values
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


@torch.inference_mode()
def run_batched(
    forward: Callable[..., torch.Tensor],
    encoded: Encoded,
    pad_id: int,
    batch_size: int,
    precision: str,
    device: torch.device,
) -> np.ndarray:
    """``forward(input_ids=..., attention_mask=...)`` on ``device`` under the chosen precision."""

    def score_batch(batch: dict[str, torch.Tensor]) -> np.ndarray:
        with autocast(precision, device):
            return forward(**{k: v.to(device) for k, v in batch.items()}).float().cpu().numpy()

    # A GPU wants the biggest batches it can hold; the token cap is for CPUs.
    return batched_rows(encoded, pad_id, batch_size, score_batch, CPU_BATCH_TOKENS if device.type == "cpu" else None)


def predict_logits(
    model: nn.Module,
    encoded: Encoded,
    pad_id: int,
    batch_size: int,
    precision: str,
    device: torch.device,
) -> np.ndarray:
    """Logits in input order (one row per model input), the model in eval mode for the call."""
    was_training = model.training
    model.eval()
    try:
        return run_batched(lambda **batch: logits_of(model(**batch)), encoded, pad_id, batch_size, precision, device)
    finally:
        model.train(was_training)


def choose_backend(folder: Path, precision: str | None, where: torch.device) -> str:
    """What ``auto`` runs: on a CPU at fp32, the ONNX graph that ``fastest_graph`` picks from the folder's
    parity check (``onnx/parity.json``, written by ``train`` or ``bertfit export``); else the saved
    PyTorch model. A precision other than fp32, or a GPU, asks for the PyTorch model."""
    if precision not in (None, PREDICTION_PRECISION) or where.type != "cpu":
        return "torch"
    parity = folder / ONNX_DIR / PARITY_FILE
    if not parity.is_file():
        return "torch"
    try:
        report = json.loads(parity.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report = None
    if not isinstance(report, dict):
        log.warning("%s: unreadable; predicting with the PyTorch model", parity)
        return "torch"
    graph = fastest_graph(report, folder / ONNX_DIR)
    if graph is None:
        return "torch"
    row = report[graph]  # fastest_graph read its numbers
    log.info("predicting with the ONNX export %s/%s (parity: %s %+.2f points, outputs within %.1e of PyTorch fp32; "
             "--backend torch for the saved model)", ONNX_DIR, ONNX_FILES[graph], report.get("metric", "metric"),
             100 * float(row.get("difference", 0.0)), float(row["max_output_difference"]))  # fmt: skip
    return graph


def fastest_graph(report: dict, folder: Path | None = None) -> str | None:
    """The fastest ONNX graph whose parity check held, or None: the int8 one where its parity metric
    fell at most ``INT8_MAX_DROP`` below PyTorch fp32's (the faster of the two: docs/performance.md),
    else the fp32 one where its outputs stayed within ``FP32_MAX_DIFFERENCE`` of PyTorch's. ``folder``: count only graphs present there."""
    for backend, holds in (("onnx-int8", _int8_holds), ("onnx", _fp32_holds)):
        row = report.get(backend)
        if not isinstance(row, dict) or (folder is not None and not (folder / ONNX_FILES[backend]).is_file()):
            continue
        try:
            if holds(row):
                return backend
        except (KeyError, TypeError, ValueError):
            log.warning("parity report: its %s entry is unreadable; not using that graph", backend)
    return None


def _int8_holds(row: dict) -> bool:
    float(row["max_output_difference"])  # read by the log line that names the chosen graph
    drop = -float(row["difference"])
    if drop > INT8_MAX_DROP:
        log.info("the int8 export lost %.2f points in its parity check; not using it", 100 * drop)
    return drop <= INT8_MAX_DROP


def _fp32_holds(row: dict) -> bool:
    return float(row["max_output_difference"]) <= FP32_MAX_DIFFERENCE


@dataclass(frozen=True)
class OpenRequest:
    """What an opener in ``OPENERS`` is given: the folder, and how to run it."""

    name: str
    folder: Path
    manifest: Manifest
    precision: str | None
    device: torch.device
    trust_remote_code: bool = False


def open_backend(name: str, folder: Path, manifest: Manifest, *, precision: str | None = None,
                 device: str | None = None, trust_remote_code: bool = False) -> TorchBackend | OnnxBackend:  # fmt: skip
    """The backend ``name`` (``auto`` or one of ``folder.BACKENDS``) over a saved model folder: its
    PyTorch model, in ``precision`` (default fp32, what other tools compute from the folder) on
    ``device``, or an ONNX export; ``auto`` picks one with ``choose_backend``."""
    where = torch.device(device) if device else default_device()
    if name == AUTO_BACKEND:
        name = choose_backend(folder, precision, where)
    if name not in OPENERS:
        raise ConfigError(f"backend {name!r}: choose one of {', '.join(BACKEND_CHOICES)}")
    return OPENERS[name](OpenRequest(name, Path(folder), manifest, precision, where, trust_remote_code))


class TorchBackend:
    name = "torch"

    def __init__(self, model: nn.Module, precision: str, device: torch.device):
        self.model = model.to(device).eval()
        self.precision = precision
        self.device = device

    @property
    def token_types(self) -> bool:
        """Whether inputs carry token type ids (the encoder has a segment embedding)."""
        return uses_token_types(self.model.config)

    def logits(self, encoded: Encoded, pad_id: int, batch_size: int) -> np.ndarray:
        return predict_logits(self.model, encoded, pad_id, batch_size, self.precision, self.device)


class OnnxBackend:
    """An exported graph (``bertfit export --onnx``) run by ONNX Runtime; its output is the logits."""

    def __init__(self, path: Path, name: str = "onnx", threads: int | None = None):
        ort = require_onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ORT raises its own exception types for unreadable graphs
            raise ModelError(f"{path}: cannot load the ONNX model: {str(err).splitlines()[0]}") from None
        self.name = name
        self.precision = "int8" if name == "onnx-int8" else "fp32"
        self.inputs = {i.name for i in self.session.get_inputs()}

    @property
    def token_types(self) -> bool:
        return "token_type_ids" in self.inputs

    def logits(self, encoded: Encoded, pad_id: int, batch_size: int) -> np.ndarray:
        def score_batch(batch: dict[str, torch.Tensor]) -> np.ndarray:
            feed = {k: v.numpy() for k, v in batch.items() if k in self.inputs}
            if "token_type_ids" in self.inputs and "token_type_ids" not in feed:  # single texts: all segment 0
                feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
            return self.session.run(None, feed)[0]

        return batched_rows(encoded, pad_id, batch_size, score_batch)  # CPU execution: token-capped batches


def _open_torch(request: OpenRequest) -> TorchBackend:
    check_weight_files(request.folder, request.manifest)  # a damaged file named, not a loader's traceback
    model = load_model(request.folder, request.manifest, request.trust_remote_code)
    return TorchBackend(model, resolve_precision(request.precision or PREDICTION_PRECISION, request.device),
                        request.device)  # fmt: skip


def _open_onnx(request: OpenRequest) -> OnnxBackend:
    return OnnxBackend(onnx_path(request.folder, request.name), request.name)


# One opener per name in ``folder.BACKENDS`` (the names live there, so option checks know them without
# torch; tests/test_folder_damage.py checks the two agree). A new backend is a class with ``logits()``
# and ``token_types``, its name in ``folder.BACKENDS`` and its opener here.
OPENERS: dict[str, Callable[[OpenRequest], TorchBackend | OnnxBackend]] = {
    "torch": _open_torch,
    "onnx": _open_onnx,
    "onnx-int8": _open_onnx,
}


def onnx_path(folder: Path, backend: str) -> Path:
    path = folder / ONNX_DIR / ONNX_FILES[backend]
    legacy = folder / ONNX_DIR / LEGACY_ONNX_FILES.get(backend, ONNX_FILES[backend])
    if not path.is_file() and legacy.is_file():
        return legacy
    if not path.is_file():
        hint = " --quantize int8" if backend == "onnx-int8" else ""
        raise ModelError(f"{folder}: no {ONNX_DIR}/{ONNX_FILES[backend]}; run: bertfit export {folder} --onnx{hint}")
    return path


def require_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ModelError("ONNX support needs its extra: pip install 'bertfit[onnx]'") from None
    return onnxruntime
