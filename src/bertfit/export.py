"""Export a model folder to ONNX (optionally int8-quantized) and prove it predicts what PyTorch does.

The graph takes ``input_ids``, ``attention_mask`` (and ``token_type_ids`` where the model has them),
any batch size and length, and returns the logits; the ``Predictor`` applies the saved task rules
(windows, temperature, softmax/sigmoid, thresholds) after either backend. The parity check runs both
on the validation split and stores decision agreement and the metric difference in ``onnx/parity.json``.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bertfit.config import TrainConfig
from bertfit.data.load import load_data
from bertfit.data.table import read_labelled_file
from bertfit.errors import BertfitError, ConfigError, DataError
from bertfit.evaluation.scoring import gold_of_split
from bertfit.folder import ONNX_DIR, ONNX_FILES, PAIR_COLUMN_HINT, PARITY_FILE, Manifest, atomic_folder, read_manifest
from bertfit.inference.backends import FP32_MAX_DIFFERENCE, OnnxBackend, fastest_graph, require_onnxruntime
from bertfit.inference.predictor import Predictor
from bertfit.modeling import encoder_config, logits_of

log = logging.getLogger(__name__)

OPSET = 17


class _Logits(nn.Module):
    """The model with plain tensor inputs and a float32 logits output: what the exported graph computes."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *types: torch.Tensor) -> torch.Tensor:
        extra = {"token_type_ids": types[0]} if types else {}
        return logits_of(self.model(input_ids=input_ids, attention_mask=attention_mask, **extra)).float()


@dataclass(frozen=True)
class ParitySplit:
    source: str
    texts: list[str]
    pairs: list[str] | None
    gold: np.ndarray


def export_onnx(model_dir: str | Path, *, quantize: str | None = None, data: str | None = None,
                text_column: str | None = None, label_column: str | None = None,
                pair_column: str | None = None) -> dict:  # fmt: skip
    """Write ``onnx/`` into the folder in Optimum's layout (``config.json``, the tokenizer, ``model.onnx``
    and, with ``quantize="int8"``, ``model_quantized.onnx``), then check each graph against PyTorch on
    the validation split (or on ``data``). Returns the report."""
    if quantize not in (None, "int8"):
        raise ConfigError(f"quantize {quantize!r}: only int8 is supported")
    require_onnxruntime()
    folder = Path(model_dir)
    predictor = Predictor.load(folder, precision="fp32", device="cpu", backend="torch")
    split = _parity_split(folder, predictor, data, text_column, label_column, pair_column)  # fail before exporting
    return _export_checked(folder, predictor, split, quantize)


def export_for_prediction(model_dir: str | Path, validation) -> dict | None:
    """What ``train`` leaves for prediction: ``onnx/model.onnx``, the fp32 graph, where its outputs on
    ``validation`` (a split of the run, labels in the task's form: its validation split, or some training rows
    where it has none) stay within ``FP32_MAX_DIFFERENCE`` of
    PyTorch's, so the folder still predicts what it was scored with, faster (``--backend auto`` runs it:
    docs/performance.md has the measurements). The int8 graph stays ``bertfit export --quantize int8``'s,
    a choice of its user, since it moves outputs by more. None, with the PyTorch model predicting, where
    there is no validation split to check against, the graph did not hold, or the export failed (logged:
    the trained folder is complete either way)."""
    if validation is None:
        log.info("no validation split to check an ONNX export against: predict runs the PyTorch model")
        return None
    folder = Path(model_dir)
    try:
        predictor = Predictor.load(folder, precision="fp32", device="cpu", backend="torch")
        gold = predictor.task.gold_of(validation.labels, {}, validation.source, validation.rows)
        split = ParitySplit(validation.source, list(validation.texts), _pairs_of(validation), gold)
        return _export_checked(folder, predictor, split, None, keep_only_if_held=True)
    except _GraphDidNotHold as held:
        log.warning("the ONNX export's outputs moved %.1e from PyTorch's on validation (over %.0e): not kept; "
                    "predict runs the PyTorch model", held.difference, FP32_MAX_DIFFERENCE)  # fmt: skip
    except BertfitError as err:
        log.warning("no ONNX export (%s); predict runs the PyTorch model", err)
    except Exception as err:  # the tracer and ONNX Runtime raise many types; the trained folder stands regardless
        log.warning("no ONNX export (%s: %s); predict runs the PyTorch model", type(err).__name__,
                    str(err).splitlines()[0] if str(err) else "")  # fmt: skip
    return None


class _GraphDidNotHold(Exception):
    def __init__(self, difference: float):
        super().__init__(difference)
        self.difference = difference


def _pairs_of(split) -> list[str] | None:
    return None if split.pairs is None else list(split.pairs)


def _export_checked(folder: Path, predictor: Predictor, split: ParitySplit, quantize: str | None,
                    keep_only_if_held: bool = False) -> dict:  # fmt: skip
    """Export, quantize, check parity and publish ``onnx/`` whole; ``keep_only_if_held``: publish nothing
    (``_GraphDidNotHold``) unless the fp32 graph matched PyTorch."""
    with atomic_folder(folder / ONNX_DIR) as staging:
        _export_graph(predictor, staging / ONNX_FILES["onnx"])
        if quantize == "int8":
            _quantize_int8(staging / ONNX_FILES["onnx"], staging / ONNX_FILES["onnx-int8"])
        _write_config_and_tokenizer(predictor, staging)
        report = _parity(predictor, staging, split)
        if keep_only_if_held and fastest_graph(report) != "onnx":
            raise _GraphDidNotHold(float(report["onnx"]["max_output_difference"]))
        (staging / PARITY_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _export_graph(predictor: Predictor, path: Path) -> None:
    wrapped = _Logits(predictor.model).eval()
    # Two rows of different lengths, so the traced graph really uses the attention mask.
    sample = predictor.tokenizer(["an example sentence to trace the graph with", "short"],
                                 ["and its pair", "a pair"], padding=True, return_tensors="pt")  # fmt: skip
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if predictor.token_types else [])
    dynamic = {0: "batch", 1: "sequence"}
    log.info("exporting %s", path.name)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter warns about tracing details that do not apply here
        torch.onnx.export(
            wrapped,
            tuple(sample[name] for name in names),
            str(path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={**{name: dynamic for name in names}, "logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: seconds, not minutes, and ORT fuses its attention
        )


def _write_config_and_tokenizer(predictor: Predictor, folder: Path) -> None:
    """What ``ORTModelForSequenceClassification.from_pretrained(folder)`` and its pipeline read beside the
    graph: the labels and the task's problem type (softmax or sigmoid), and the tokenizer."""
    config = copy.deepcopy(encoder_config(predictor.model))  # a pooled model's: its encoder's
    config.problem_type = predictor.task.problem_type
    config.save_pretrained(folder)
    predictor.tokenizer.save_pretrained(folder)


def _quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8: weights stored as int8, activations quantized per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    log.info("quantizing to int8")
    # The quantizer advises pre-processing on the root logger; the parity check, not that advice, decides
    # whether the graph is used, so it would only be noise at the end of every training run.
    root = logging.getLogger()
    root.addFilter(_no_preprocessing_advice)
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.removeFilter(_no_preprocessing_advice)


def _no_preprocessing_advice(record: logging.LogRecord) -> bool:
    return "pre-processing before quantization" not in record.getMessage()


def _parity_split(folder: Path, predictor: Predictor, data: str | None, text_column, label_column,
                  pair_column) -> ParitySplit:  # fmt: skip
    manifest = read_manifest(folder)
    if data:
        manifest.check_pairs(pair_column, give=PAIR_COLUMN_HINT, model=str(folder))
        split = read_labelled_file(data, text_column, label_column, name="parity", pair_column=pair_column)
    else:
        split = _validation_split(manifest, folder)
    return ParitySplit(split.source, split.texts, split.pairs, gold_of_split(predictor.task, manifest, split))


def _validation_split(manifest: Manifest, folder: Path):
    try:
        loaded = load_data(TrainConfig.from_dict(manifest.config).data)
    except DataError as err:
        raise DataError(f"{folder}: cannot reload its validation split for the parity check ({err}); "
                        "pass --data FILE with labelled texts") from None  # fmt: skip
    split = loaded.get("validation") or loaded.get("test")
    if split is None:
        raise DataError(f"{folder}: its training had no validation split; pass --data FILE for the parity check")
    return split


def _parity(predictor: Predictor, staging: Path, split: ParitySplit) -> dict:
    """Torch fp32 against each exported graph: same decisions, same metric, how far outputs move."""
    task = predictor.task
    metric = task.parity_metric
    encoded = predictor.encode(split.texts, split.pairs)
    reference = predictor.outputs_of(encoded)
    decided = task.decide(reference)
    score = task.metrics(split.gold, reference)[metric]
    report = {"data": split.source, "rows": len(split.texts), "metric": metric, "torch_fp32": score}
    for backend, name in ONNX_FILES.items():
        if not (staging / name).is_file():
            continue
        exported = Predictor(OnnxBackend(staging / name, backend), predictor.tokenizer, task, predictor.policy,
                             predictor.batch_size, predictor.token_types).outputs_of(encoded)  # fmt: skip
        agree = task.same_decisions(task.decide(exported), decided)
        exported_score = task.metrics(split.gold, exported)[metric]
        report[backend] = {
            "file": f"{ONNX_DIR}/{name}",
            "agreement": float(agree.mean()),
            metric: exported_score,
            "difference": exported_score - score,
            "max_output_difference": float(np.abs(exported - reference).max()),
            "size_mb": round((staging / name).stat().st_size / 2**20, 1),
        }
    return report


def format_parity(report: dict) -> str:
    metric = report["metric"]
    lines = [f"parity on {report['data']} ({report['rows']} rows): torch fp32 {metric} {report['torch_fp32']:.4f}"]
    for backend in ONNX_FILES:
        if backend in report:
            row = report[backend]
            lines.append(
                f"  {backend:<9}  agreement {row['agreement']:.4f}  {metric} {row[metric]:.4f} "
                f"({row['difference']:+.4f})  max |d output| {row['max_output_difference']:.2e}  "
                f"{row['size_mb']} MB  {row['file']}"
            )
    return "\n".join(lines)
