"""Write the model folder of a finished run: the model and tokenizer, ``bertfit.json``, metrics, the
epoch log, the test predictions, plots, the model card and the report. It is written whole into a
temporary sibling, then moved into place (``folder.atomic_folder``), so a crash never leaves a
half-written folder and an existing one is only replaced once the new one is complete."""

from __future__ import annotations

import csv
import logging
import platform
from pathlib import Path

import numpy as np

from bertfit import __version__
from bertfit.config import DEFAULT_MODEL, TrainConfig
from bertfit.data.profile import data_profile
from bertfit.data.registry import get_dataset
from bertfit.errors import OutputExistsError
from bertfit.evaluation.metrics import format_summary, summary_line
from bertfit.evaluation.report import MOST_WRONG, draw_confusion_matrix, write_report
from bertfit.folder import (
    CARD_FILE,
    CONFUSION_PLOT,
    EXPLANATIONS_FILE,
    LOG_FILE,
    LOSS_PLOT,
    MANIFEST,
    METRICS_FILE,
    PREDICTIONS_FILE,
    SEQUENCE_CLASSIFIER,
    DataSummary,
    Manifest,
    atomic_folder,
    write_json,
)
from bertfit.modeling import describe_architecture
from bertfit.tasks import shape_named

log = logging.getLogger(__name__)


def check_output_free(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass --overwrite to replace it, or choose another --output")
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path} exists and is not a folder")


def write_model_folder(config: TrainConfig, result) -> Manifest:
    """Write everything into a temp folder next to the target, then swap it in."""
    target = result.output_dir
    check_output_free(target, config.overwrite)
    with atomic_folder(target) as staging:
        manifest = _manifest(config, result)
        result.predictor.model.save_pretrained(staging)
        _add_bertfit_settings(staging / "config.json", manifest)
        result.predictor.tokenizer.save_pretrained(staging)
        write_json(staging / MANIFEST, manifest.to_dict())
        write_json(
            staging / METRICS_FILE, {**result.metrics, **({"summary": result.summary} if result.summary else {})}
        )
        _write_history(staging / LOG_FILE, result.history, result.task)
        if "test" in result.outputs:
            _write_predictions(
                staging / PREDICTIONS_FILE, result.data.splits["test"], result.outputs["test"], result.task
            )
            _write_explanations(staging, result)
        _write_plots(staging, result)
        _write_card(staging / CARD_FILE, manifest, result)
        _write_report(staging)
    log.info("saved %s", target)
    return manifest


def _add_bertfit_settings(path: Path, manifest: Manifest) -> None:
    """What the standard classes cannot express, under ``bertfit`` in ``config.json``, for code outside
    bertfit: the task's state as the task writes it (decision thresholds; the temperature and target scale,
    already in the weights where ``scale_in_weights`` says so, for the record: not to apply again) and the
    long-text policy."""
    import json

    config = json.loads(path.read_text(encoding="utf-8"))
    config["bertfit"] = {
        "task": manifest.task.name,
        **manifest.task.state,
        "max_length": manifest.max_length,
        "long_text": manifest.long_text,
        "stride": manifest.stride,
        "window_aggregate": manifest.window_aggregate,
    }
    write_json(path, config)


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


def _manifest(config: TrainConfig, result) -> Manifest:
    data, policy, predictor = result.data, result.predictor.policy, result.predictor
    return Manifest(
        **describe_architecture(predictor.model),
        base_model=config.model,
        base_model_source=result.source if Path(result.source).exists() else None,
        labels=list(result.labels.names),
        label_aliases=_label_aliases(config),
        task=result.task.to_manifest(),
        max_length=policy.max_length,
        long_text=policy.long_text,
        stride=policy.stride,
        window_aggregate=policy.aggregate,
        text_pairs=data.train.pairs is not None,
        train_truncated_share=result.truncated,
        precision=result.precision,
        eval_batch_size=config.eval_batch_size,
        best_epoch=result.best_epoch,
        epochs_run=len(result.history),
        stop_reason=result.stop_reason or None,
        data=DataSummary(
            rows={name: len(split) for name, split in data.splits.items()},
            sources={name: split.source for name, split in data.splits.items()},
            warnings=data.warnings,
            profile=data_profile(data, result.token_lengths, policy.max_length),
        ),
        config=config.to_dict(),
        versions=_versions(),
    )


def _label_aliases(config: TrainConfig) -> dict[str, str]:
    """Raw label values that map to display names (e.g. 0 -> ham), so raw files score too."""
    if not config.data.dataset:
        return {}
    return dict(get_dataset(config.data.dataset).label_names)


def _write_history(path: Path, history, task) -> None:
    """One row per epoch: train loss, and the validation loss and headline metrics of the task."""
    first = next((r.validation for r in history if r.validation), None)
    keys = ["loss", *(key for _, key in task.headlines if key != "loss")] if first else ["loss", task.primary_metric]
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
    predicted = task.decision_names(task.decide(outputs))
    scores = task.score_columns
    pair = ["text_pair"] if split.pairs is not None else []
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "text", *pair, "gold", "predicted", *scores, "misclassified"])
        at = 0  # the piece's first row in the whole split
        for piece in split.pieces():
            for i, (text, label) in enumerate(zip(piece.texts, piece.labels)):
                k = at + i
                gold, values, wrong = task.test_row(label, outputs[k], predicted[k])
                writer.writerow([piece.rows[i], text, *([piece.pairs[i]] if pair else []), gold, predicted[k],
                                 *values, wrong])  # fmt: skip
            at += len(piece)


def _write_plots(folder: Path, result) -> None:
    import matplotlib

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
    fig.savefig(folder / LOSS_PLOT, dpi=100)
    plt.close(fig)

    split = "test" if "test" in result.metrics else "validation" if "validation" in result.metrics else None
    if split is None or "confusion_matrix" not in result.metrics[split]:
        return
    matrix = np.array(result.metrics[split]["confusion_matrix"])
    names = list(result.labels.names)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 3, 1.2 * len(names) + 2))
    draw_confusion_matrix(ax, matrix, names, split)
    fig.tight_layout()
    fig.savefig(folder / CONFUSION_PLOT, dpi=100)
    plt.close(fig)


def _write_explanations(folder: Path, result) -> None:
    """Word attributions of the test rows the report shows as most confidently wrong, so report.html (which
    runs no model) can tint their words. Extra to the model: a failure is logged, the folder stands."""

    if result.data.splits["test"].pairs is not None:
        return  # the report's table shows one text per row
    try:
        with open(folder / PREDICTIONS_FILE, newline="", encoding="utf-8") as handle:
            worst = result.task.worst_examples(list(csv.DictReader(handle)), MOST_WRONG)
        if not worst.rows:
            return
        found = result.predictor.explain([row[1] for row in worst.rows])
        explained = {}
        for explanation in found:
            explained.setdefault(str(worst.rows[explanation.index][0]), explanation.to_dict())
        write_json(folder / EXPLANATIONS_FILE, explained)
    except Exception as err:  # noqa: BLE001 - the model folder is complete without it
        log.warning("could not explain the most wrong test rows (%s); the report shows them plain", err)


def _write_report(folder: Path) -> None:
    """report.html is a view of the files above: a failure to draw it must not cost the trained model."""
    try:
        write_report(folder)
    except Exception as err:  # noqa: BLE001 - the model folder is complete without it
        log.warning("could not write report.html (%s); `bertfit report %s` retries", err, folder)


def _write_card(path: Path, manifest: Manifest, result) -> None:
    """README.md: Hub metadata (``huggingface_hub.ModelCardData``, with the test metrics as its
    model-index) above the text of ``templates/model_card.md.j2``."""
    import jinja2
    from huggingface_hub import ModelCard

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("bertfit.training", "templates"), keep_trailing_newline=True,
        trim_blocks=True, autoescape=False,  # markdown, not HTML
    )  # fmt: skip
    environment.filters["pyrepr"] = repr
    data, state = manifest.config["data"], manifest.task.state
    text = environment.get_template("model_card.md.j2").render(
        card_data=card_data(manifest, result.metrics.get("test"), Path(result.output_dir).name).to_yaml(),
        manifest=manifest,
        task=manifest.task.name,
        state=state,  # what config.json keeps under ``bertfit``, which the card's code reads
        chance_warning=result.task.chance_warning(result.metrics.get("validation")),
        output_dir=result.output_dir,
        pairs=manifest.text_pairs,
        standard_head=manifest.architecture == SEQUENCE_CLASSIFIER,
        other_label=next((n for n in manifest.labels if n != state.get("positive_label")), None),
        data_name=data["dataset"] or data["train"],
        epochs=len(result.history),
        result_lines=[summary_line(m, name) for name, m in result.metrics.items()],
        summary=result.summary,
        summary_lines=format_summary(result.summary).splitlines() if result.summary else [],
    )
    card = ModelCard(text)  # parses the metadata: a card the Hub would reject fails here, not there
    path.write_text(str(card), encoding="utf-8")


UNRANKED = ("loss", "ece")  # diagnostics, not scores a model is ranked by


def card_data(manifest: Manifest, test_metrics: dict | None, model_name: str):
    """The card's Hub metadata: base model, pipeline, data set and the test split's headline metrics."""
    from huggingface_hub import EvalResult, ModelCardData

    dataset = manifest.config["data"].get("dataset")
    hub_data = get_dataset(dataset).hub_id if dataset else None
    task = shape_named(manifest.task.name)
    keys = [key for _, key in task.headlines
            if key not in UNRANKED and test_metrics and isinstance(test_metrics.get(key), float)]  # fmt: skip
    results = [
        EvalResult(task_type="text-classification", dataset_type=hub_data or "custom", dataset_name=dataset or "custom",
                   dataset_split="test", metric_type=key, metric_value=round(test_metrics[key], 4))
        for key in keys
    ]  # fmt: skip
    return ModelCardData(
        model_name=model_name,
        base_model=_hub_name(manifest.base_model),
        library_name="transformers" if manifest.architecture == SEQUENCE_CLASSIFIER else "bertfit",
        pipeline_tag="text-classification",
        tags=["bertfit", "text-classification", task.name],
        datasets=[hub_data] if hub_data else None,
        metrics=keys or None,
        eval_results=results or None,
    )


def _hub_name(model: str | None) -> str | None:
    """The base model's Hub id: a registry encoder's (the packaged default is one), a hub name as given;
    None for a local folder."""
    from bertfit.encoders import ENCODERS

    model = "minilm" if model == DEFAULT_MODEL else model  # the package carries the registry's minilm
    if model in ENCODERS:
        return ENCODERS[model].hub_id
    return None if model is None or Path(model).expanduser().exists() else model
