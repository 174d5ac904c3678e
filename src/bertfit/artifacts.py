"""The model folder: written whole into a temporary sibling, then moved into place, so a crash
never leaves a half-written folder and an existing one is only replaced once the new one is complete."""

from __future__ import annotations

import csv
import ctypes
import json
import logging
import os
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np

from bertfit import __version__
from bertfit.config import TrainConfig
from bertfit.data.stream import atomic_output, current_umask
from bertfit.errors import OutputExistsError
from bertfit.inference import MANIFEST
from bertfit.modeling import HEAD_FILE, PooledClassifier

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
LOG_FILE = "training_log.csv"
PREDICTIONS_FILE = "predictions_test.csv"


def check_output_free(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass --overwrite to replace it, or choose another --output")
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path} exists and is not a folder")


def write_model_folder(config: TrainConfig, result) -> dict:
    """Write everything into a temp folder next to the target, then swap it in."""
    target = result.output_dir
    check_output_free(target, config.overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        manifest = _manifest(config, result)
        _save_model(result.predictor, staging)
        _write_json(staging / MANIFEST, manifest)
        _write_json(staging / METRICS_FILE, {**result.metrics, **({"summary": result.summary} if result.summary else {})})
        _write_history(staging / LOG_FILE, result.history, result.task.primary_metric)
        if "test" in result.outputs:
            _write_predictions(staging / PREDICTIONS_FILE, result.data.splits["test"], result.outputs["test"], result.task)
        _write_plots(staging, result)
        _write_card(staging / "README.md", manifest, result)
        _write_report(staging)
        _use_umask_permissions(staging)
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("saved %s", target)
    return manifest


def _remove_leftovers(target: Path) -> None:
    """A process killed while saving leaves its temporary sibling behind; the next save clears it."""
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _use_umask_permissions(folder: Path) -> None:
    """Temp folders and files are private (0700/0600); the finished folder gets normal permissions."""
    umask = current_umask()
    os.chmod(folder, 0o777 & ~umask)
    for path in folder.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def _swap_into_place(staging: Path, target: Path) -> None:
    if not target.exists():
        os.replace(staging, target)
        return
    if _exchange(staging, target):  # staging now holds the old folder
        shutil.rmtree(staging, ignore_errors=True)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, retired / target.name)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE), so no moment exists where the
    target is missing; False where the system or file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0


def _save_model(predictor, folder: Path) -> None:
    model = predictor.model
    if isinstance(model, PooledClassifier):
        from safetensors.torch import save_file

        model.encoder.save_pretrained(folder)
        save_file({k: v.contiguous() for k, v in model.head.state_dict().items()}, folder / HEAD_FILE)
    else:
        model.save_pretrained(folder)
    predictor.tokenizer.save_pretrained(folder)


def _versions() -> dict[str, str]:
    import sklearn
    import tokenizers
    import torch
    import transformers

    return {
        "bertfit": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "scikit-learn": sklearn.__version__,
    }


def _manifest(config: TrainConfig, result) -> dict:
    from bertfit.data.profile import data_profile
    from bertfit.modeling import describe_architecture

    data, policy, predictor = result.data, result.predictor.policy, result.predictor
    return {
        "format": 1,
        **describe_architecture(predictor.model),
        "base_model": config.model,
        "base_model_source": result.source if Path(result.source).exists() else None,
        "labels": list(result.labels.names),
        "label_aliases": _label_aliases(config),
        **result.task.to_manifest(),
        "max_length": policy.max_length,
        "long_text": policy.long_text,
        "stride": policy.stride,
        "window_aggregate": policy.aggregate,
        "text_pairs": data.train.pairs is not None,
        "train_truncated_share": result.truncated,
        "precision": result.precision,
        "eval_batch_size": config.eval_batch_size,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "data": {
            "rows": {name: len(split) for name, split in data.splits.items()},
            "sources": {name: split.source for name, split in data.splits.items()},
            "warnings": data.warnings,
            "profile": data_profile(data, result.token_lengths, policy.max_length),
        },
        "config": config.to_dict(),
        "versions": _versions(),
    }


def _label_aliases(config: TrainConfig) -> dict[str, str]:
    """Raw label values that map to display names (e.g. 0 -> ham), so raw files score too."""
    if not config.data.dataset:
        return {}
    from bertfit.data.registry import get_dataset

    return dict(get_dataset(config.data.dataset).label_names)


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_json_atomically(path: Path, value) -> None:
    """A JSON file that is either the old one or the complete new one, never half of either."""
    with atomic_output(path) as temp:
        _write_json(temp, value)


def _write_history(path: Path, history, primary: str) -> None:
    """One row per epoch: train loss, and the validation loss and headline metrics of the task."""
    from bertfit.evaluation.metrics import HEADLINES

    first = next((r.validation for r in history if r.validation), None)
    keys = ["loss", *(key for _, key in HEADLINES[first["task"]] if key != "loss")] if first else ["loss", primary]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "train_loss", *(f"validation_{k}" for k in keys), "learning_rate", "seconds"])
        for record in history:
            val = record.validation or {}
            writer.writerow([record.epoch, f"{record.train_loss:.6f}", *(_num(val.get(k)) for k in keys),
                             f"{record.learning_rate:.3e}", f"{record.seconds:.2f}"])  # fmt: skip


def _num(value) -> str:
    return "" if value is None else f"{value:.6f}"


def _write_predictions(path: Path, split, outputs: np.ndarray, task) -> None:
    """The test split with gold and predicted labels (as the CLI would write them) and the scores,
    a piece of the split at a time (an ``--arrow`` split stays on disk)."""
    from bertfit.tasks import MULTI_LABEL, REGRESSION

    predicted = task.label_names(task.decide(outputs))
    scores = ["error"] if task.kind == REGRESSION else [f"prob_{n}" for n in task.labels.names]
    pair = ["text_pair"] if split.pairs is not None else []
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "text", *pair, "gold", "predicted", *scores, "misclassified"])
        at = 0  # the piece's first row in the whole split
        for piece in split.pieces():
            for i, (text, label) in enumerate(zip(piece.texts, piece.labels)):
                k = at + i
                if task.kind == REGRESSION:
                    gold, values, wrong = f"{label:.6g}", [f"{outputs[k] - label:.6g}"], ""
                else:
                    gold = task.label_sep.join(sorted(label, key=task.labels.label2id.get)) if task.kind == MULTI_LABEL else label
                    values, wrong = [f"{p:.6f}" for p in outputs[k]], int(predicted[k] != gold)
                writer.writerow([piece.rows[i], text, *([piece.pairs[i]] if pair else []), gold, predicted[k],
                                 *values, wrong])  # fmt: skip
            at += len(piece)


def _write_plots(folder: Path, result) -> None:
    import matplotlib

    from bertfit.evaluation.report import draw_confusion_matrix

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r.epoch for r in result.history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [r.train_loss for r in result.history], marker="o", label="train")
    if all(r.validation for r in result.history):
        ax.plot(epochs, [r.validation["loss"] for r in result.history], marker="o", label="validation")
    ax.axvline(result.best_epoch, color="grey", linestyle="--", label=f"kept epoch {result.best_epoch}")
    ax.set(xlabel="epoch", ylabel="loss", title="Loss per epoch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "loss_curve.png", dpi=100)
    plt.close(fig)

    split = "test" if "test" in result.metrics else "validation" if "validation" in result.metrics else None
    if split is None or "confusion_matrix" not in result.metrics[split]:
        return
    matrix = np.array(result.metrics[split]["confusion_matrix"])
    names = list(result.labels.names)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 3, 1.2 * len(names) + 2))
    draw_confusion_matrix(ax, matrix, names, split)
    fig.tight_layout()
    fig.savefig(folder / "confusion_matrix.png", dpi=100)
    plt.close(fig)


def _write_report(folder: Path) -> None:
    """report.html is a view of the files above: a failure to draw it must not cost the trained model."""
    from bertfit.evaluation.report import write_report

    try:
        write_report(folder)
    except Exception as err:  # noqa: BLE001 - the model folder is complete without it
        log.warning("could not write report.html (%s); `bertfit report %s` retries", err, folder)


def _write_card(path: Path, manifest: dict, result) -> None:
    from bertfit.evaluation.metrics import summary_line
    from bertfit.training.repeats import format_summary

    config = manifest["config"]
    data_name = config["data"]["dataset"] or config["data"]["train"]
    pairs = manifest["text_pairs"]
    lines = [
        f"# Text classifier fine-tuned from {manifest['base_model']}",
        "",
        f"Made with bertfit {manifest['versions']['bertfit']}. Labels: {', '.join(manifest['labels'])}.",
        "",
        "## Use",
        "```",
        f"bertfit predict {result.output_dir} --text \"your text\"" + (" --text-pair \"its pair\"" if pairs else ""),
        "```",
        "```python",
        "from bertfit import Predictor",
        f"Predictor.load({str(result.output_dir)!r}).predict([\"your text\"]" + (", [\"its pair\"])" if pairs else ")"),
        "```",
        "",
        "## Training",
        f"- data: {data_name} (rows: {manifest['data']['rows']})",
        f"- task: {manifest['task']}; architecture: {manifest['architecture']}, max length {manifest['max_length']} tokens "
        f"({100 * manifest['train_truncated_share']:.2f}% of training texts truncated), precision {manifest['precision']}",
        f"- epochs {len(result.history)}, kept epoch {manifest['best_epoch']}, seed {config['seed']}",
        "",
        "## Results",
        "```",
        *(summary_line(m, name) for name, m in result.metrics.items()),
        "```",
    ]
    if result.summary:
        lines += ["", f"Over {len(result.summary['runs'])} runs ({result.summary['by']}), mean ± std:", "```",
                  *format_summary(result.summary).splitlines(), "```"]  # fmt: skip
    if manifest["data"]["warnings"]:
        lines += ["", "## Data warnings", *[f"- {w}" for w in manifest["data"]["warnings"]]]
    lines += ["", "Files: `report.html` (data, training curves, errors), `metrics.json`, `training_log.csv`, "
              "`predictions_test.csv`, `loss_curve.png`, "
              "`confusion_matrix.png`, `bertfit.json` (the full training config)."]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
