"""``report.html``: one self-contained page about a model folder — the data it saw, how training
went, and where it errs. Everything comes from files the folder already holds (``bertfit.json``,
``metrics.json``, ``training_log.csv``, ``predictions_test.csv``); plots are PNGs inlined as data
URIs, so the page can be mailed or opened offline."""

from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path

import numpy as np

from bertfit.folder import (
    EXPLANATIONS_FILE,
    LABEL_ISSUES_FILE,
    LOG_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    REPORT_FILE,
    Manifest,
    atomic_file,
    read_folder_json,
    read_manifest,
)
from bertfit.tasks import Task, task_from_manifest
from bertfit.tasks.base import saved_scores

MOST_WRONG = 15
LABEL_ISSUES_SHOWN = 30
# How each attribution method's scores read, for the note above the tinted words (``inference.explain``).
METHOD_NOTES = {"occlusion": "occlusion: how far the prediction falls without the word",
                "integrated-gradients": "integrated gradients"}  # fmt: skip
MAX_CURVES = 12  # more classes than this make an unreadable PR plot: the best supported are drawn


def write_report(model_dir: str | Path, output: str | Path | None = None) -> Path:
    folder = Path(model_dir)
    target = Path(output) if output else folder / REPORT_FILE
    page = build_report(folder)
    with atomic_file(target) as temp:
        temp.write_text(page, encoding="utf-8")
    return target


def build_report(folder: Path) -> str:
    manifest = read_manifest(folder)
    task = task_from_manifest(manifest)
    metrics = read_folder_json(folder / METRICS_FILE) if (folder / METRICS_FILE).is_file() else {}
    history = _read_csv(folder / LOG_FILE)
    predictions = _read_csv(folder / PREDICTIONS_FILE)
    sections = [
        ("profile", "Data", _profile_section(manifest)),
        ("training", "Training", _training_section(history, manifest, task)),
        ("confusion", "Confusion matrix", _confusion_section(metrics, manifest)),
        ("per-class", "Per-class precision, recall and F1", _per_class_section(metrics)),
        ("pr-curve", "Precision-recall", _pr_section(predictions, task)),
        ("wrong", "Most confidently wrong test examples", _wrong_section(predictions, task, _explanations(folder))),
    ]
    if (folder / LABEL_ISSUES_FILE).is_file():
        issues = _read_csv(folder / LABEL_ISSUES_FILE)
        sections.append(("label-issues", "Training rows whose label is likely wrong", _label_issues_section(issues)))
    return _page(manifest, task, metrics, sections)


# -- reading ---------------------------------------------------------------------------------
def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# -- page ------------------------------------------------------------------------------------
def _page(manifest: Manifest, task: Task, metrics: dict, sections: list[tuple[str, str, str]]) -> str:
    """The page, from ``templates/report.html.j2``; ``sections`` are (id, title, HTML) triples."""
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("bertfit.evaluation", "templates"), autoescape=True)
    data = manifest.config.get("data", {})
    facts = [
        ("labels", ", ".join(manifest.labels)),
        ("data", data.get("dataset") or data.get("train") or "?"),
        ("rows", ", ".join(f"{k} {v}" for k, v in manifest.data.rows.items())),
        ("max length", f"{manifest.max_length} tokens ({manifest.long_text})"),
        ("epochs", f"{manifest.epochs_run} run, kept {manifest.best_epoch}"),
        ("training precision", manifest.precision),
        ("calibration temperature", f"{task.temperature:.3g}"),
    ]
    return environment.get_template("report.html.j2").render(
        title=f"bertfit report: {manifest.base_model or 'model'} ({task.name})",
        warning=task.chance_warning(metrics.get("validation")),
        facts=facts,
        headlines=_headline_table(metrics, task),
        sections=sections,
    )


def _headline_table(metrics: dict, task: Task) -> str:
    splits = [name for name in ("validation", "test") if name in metrics]
    if not splits:
        return "<p class=muted>no validation or test metrics in this folder</p>"
    headlines = [(title, key) for title, key in task.headlines if any(key in metrics[s] for s in splits)]
    head = "".join(f"<th>{html.escape(title)}</th>" for title, _ in headlines)
    rows = "".join(f"<tr><td>{name}</td>" + "".join(f"<td>{_fmt(metrics[name].get(key))}</td>" for _, key in headlines)
                   + "</tr>" for name in splits)  # fmt: skip
    return f"<table><tr><th>split</th>{head}</tr>{rows}</table>"


def _fmt(value) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _missing(what: str) -> str:
    return f"<p class=muted>{html.escape(what)}</p>"


# -- plots -----------------------------------------------------------------------------------
def _figure(width: float = 6.5, height: float = 3.6, columns: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, columns, figsize=(width, height))


def _image(fig, alt: str) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=96)
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


# -- sections --------------------------------------------------------------------------------
def _profile_section(manifest: Manifest) -> str:
    profile = manifest.data.profile
    if not profile:
        return _missing("no data profile in bertfit.json (the folder was saved by an older bertfit)")
    return _label_balance(profile["labels"]) + _length_histogram(profile.get("token_lengths"))


def _label_balance(per_split: dict) -> str:
    if any("histogram" in counts for counts in per_split.values()):
        fig, ax = _figure()
        for split, counts in per_split.items():
            edges, values = counts["histogram"]["edges"], counts["histogram"]["counts"]
            if values:
                ax.stairs(values, edges, label=split)
        ax.set(xlabel="target value", ylabel="rows", title="Target values per split")
        ax.legend()
        return _image(fig, "target value histogram")
    names = list(dict.fromkeys(name for counts in per_split.values() for name in counts))
    rows = [[name, *(per_split[s].get(name, 0) for s in per_split)] for name in names]
    share = [[f"{100 * c / max(sum(per_split[s].values()), 1):.1f}%" for s, c in zip(per_split, row[1:])]
             for row in rows]  # fmt: skip
    table = _table(["label", *per_split, *(f"{s} share" for s in per_split)], [r + s for r, s in zip(rows, share)])
    fig, ax = _figure(6.5, max(2.5, 0.28 * len(names) + 1))
    train = per_split.get("train", next(iter(per_split.values())))
    ax.barh(names[::-1], [train.get(n, 0) for n in names[::-1]], color="#4c78a8")
    ax.set(xlabel="training rows", title="Class balance (train)")
    return "<h3>Class balance</h3>" + table + _image(fig, "class balance")


def _length_histogram(lengths: dict | None) -> str:
    if not lengths:
        return _missing("no token lengths recorded")
    fig, ax = _figure()
    ax.stairs(lengths["counts"], lengths["edges"], fill=True, color="#72b7b2")
    ax.axvline(lengths["max_length"], color="#e45756", linestyle="--", label=f"max length {lengths['max_length']}")
    ax.set(xlabel="tokens per training text", ylabel="texts", title="Token lengths (train)")
    ax.legend()
    percentiles = ", ".join(f"p{p} {v:.0f}" for p, v in lengths["percentiles"].items())
    note = (f"<p>{percentiles} tokens; {100 * lengths['longer_than_max']:.2f}% of training texts are longer than "
            f"the max length.</p>")  # fmt: skip
    return "<h3>Token lengths</h3>" + _image(fig, "token length histogram") + note


def _training_section(history: list[dict], manifest: Manifest, task: Task) -> str:
    if not history:
        return _missing("no training_log.csv in this folder")
    epochs = [int(r["epoch"]) for r in history]
    key = next((k for k in history[0] if k.startswith("validation_") and k != "validation_loss"), None)
    metric = task.primary_metric
    key = f"validation_{metric}" if f"validation_{metric}" in history[0] else key
    fig, (loss_ax, metric_ax) = _figure(9, 3.4, columns=2)
    loss_ax.plot(epochs, [float(r["train_loss"]) for r in history], marker="o", label="train")
    if all(r.get("validation_loss") for r in history):
        loss_ax.plot(epochs, [float(r["validation_loss"]) for r in history], marker="o", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss per epoch")
    loss_ax.legend()
    if key and all(r.get(key) for r in history):
        metric_ax.plot(epochs, [float(r[key]) for r in history], marker="o", color="#f58518")
        metric_ax.set(title=f"Validation {key.removeprefix('validation_')} per epoch")
    metric_ax.set(xlabel="epoch")
    best = manifest.best_epoch
    for ax in (loss_ax, metric_ax):
        ax.xaxis.get_major_locator().set_params(integer=True)
        if best:
            ax.axvline(best, color="grey", linestyle="--")
    note = f"<p>The dashed line marks the kept epoch ({best}), chosen by validation {metric}.</p>"
    return _image(fig, "training curves") + note


def _test_metrics(metrics: dict) -> tuple[str, dict] | tuple[None, None]:
    for split in ("test", "validation"):
        if split in metrics:
            return split, metrics[split]
    return None, None


def _confusion_section(metrics: dict, manifest: Manifest) -> str:
    split, scores = _test_metrics(metrics)
    if not scores or "confusion_matrix" not in scores:
        return _missing("no confusion matrix: " + ("not a single-label task" if scores else "no scored split"))
    matrix = np.array(scores["confusion_matrix"])
    names = manifest.labels
    size = 1.0 * len(names) + 2.5
    fig, ax = _figure(min(size + 1, 12), min(size, 11))
    draw_confusion_matrix(ax, matrix, names, split)
    return _image(fig, "confusion matrix")


def draw_confusion_matrix(ax, matrix: np.ndarray, names: list[str], split: str) -> None:
    """Counts in cells shaded by size, gold labels down, predicted across."""
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > matrix.max() / 2 else "black")
    ax.set(xlabel="predicted", ylabel="gold", title=f"Confusion matrix ({split})")


def _per_class_section(metrics: dict) -> str:
    split, scores = _test_metrics(metrics)
    per_class = (scores or {}).get("per_class") or (scores or {}).get("per_label")
    if not per_class:
        return _missing("no per-class scores (regression, or no scored split)")
    rows = [[name, v["precision"], v["recall"], v["f1"], v["support"]] for name, v in per_class.items()]
    return f"<p>On the {split} split.</p>" + _table(["label", "precision", "recall", "F1", "support"], rows)


# -- precision-recall and errors, from the saved test predictions ---------------------------------
def _pr_section(predictions: list[dict], task: Task) -> str:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    if task.no_classes_reason or not predictions:
        return _missing("not applicable: " + (task.no_classes_reason if predictions else "no test predictions"))
    names = list(task.labels.names)
    scores = saved_scores(predictions, names)
    gold = task.label_matrix([row["gold"] for row in predictions])
    decided = task.label_matrix([row["predicted"] for row in predictions])
    shown = task.curve_labels(gold, MAX_CURVES)
    fig, ax = _figure(6.5, 4.5)
    for index in shown:
        if gold[:, index].sum() == 0:
            continue
        precision, recall, _ = precision_recall_curve(gold[:, index], scores[:, index])
        ap = average_precision_score(gold[:, index], scores[:, index])
        line = ax.plot(recall, precision, label=f"{names[index]} (AP {ap:.3f})")[0]
        point = _operating_point(gold[:, index], decided[:, index])
        ax.plot(*point, marker="o", markersize=8, color=line.get_color())
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02), title="Precision-recall (test)")
    ax.legend(fontsize=8, loc="lower left")
    more = f" The {MAX_CURVES} best-supported labels are drawn." if 1 < len(shown) < len(names) else ""
    note = f"<p>Dots mark the saved decision rule: {html.escape(task.decision_rule())}.{more}</p>"
    return _image(fig, "precision-recall curve") + note


def _operating_point(gold: np.ndarray, decided: np.ndarray) -> tuple[float, float]:
    """(recall, precision) of the decisions the saved rule made, whatever the rule is."""
    hits = int((decided & gold).sum())
    return hits / max(int(gold.sum()), 1), hits / max(int(decided.sum()), 1)


def _explanations(folder: Path) -> dict:
    path = folder / EXPLANATIONS_FILE
    return read_folder_json(path) if path.is_file() else {}


def _wrong_section(predictions: list[dict], task: Task, explanations: dict | None = None) -> str:
    if not predictions:
        return _missing("no predictions_test.csv (the model was trained without a test split)")
    worst = task.worst_examples(predictions, MOST_WRONG)
    note = f"<p>{html.escape(worst.note)}</p>"
    if explanations:
        method = next(iter(explanations.values())).get("method", "integrated-gradients")
        how = METHOD_NOTES.get(method, method)
        note += (f"<p>Words tinted by their attribution to the wrong prediction ({how}): red pushed towards it, "
                 "blue away.</p>")  # fmt: skip
    texts = {i: _highlighted(explanations[str(row[0])]) for i, row in enumerate(worst.rows)
             if explanations and str(row[0]) in explanations}  # fmt: skip
    return note + _text_table(worst.header, worst.rows, texts) if worst.rows else note


def _highlighted(explanation: dict) -> str:
    """The explained text's words as spans, red for, blue against, as strong as the score."""
    most = max((abs(w["score"]) for w in explanation["words"]), default=0.0) or 1e-9
    spans = []
    for w in explanation["words"]:
        colour = "214,39,40" if w["score"] >= 0 else "31,119,180"
        spans.append(f'<span class=word title="{w["score"]:.4f}" style="background:rgba({colour},'
                     f'{abs(w["score"]) / most:.2f})">{html.escape(w["word"])}</span>')  # fmt: skip
    return " ".join(spans)


def _text_table(header: list[str], rows: list[list], texts: dict[int, str] | None = None) -> str:
    """A table whose second column is free text, left-aligned and wrapped (``texts``: that cell as HTML already,
    by row position)."""
    head = "".join(f"<th class=text>{html.escape(h)}</th>" if i == 1 else f"<th>{html.escape(h)}</th>"
                   for i, h in enumerate(header))  # fmt: skip
    cells = []
    for position, row in enumerate(rows):
        text = (texts or {}).get(position)
        tds = "".join(f"<td class=text>{text or html.escape(str(v))}</td>" if i == 1 else f"<td>{_fmt(v)}</td>"
                      for i, v in enumerate(row))  # fmt: skip
        cells.append(f"<tr>{tds}</tr>")
    return f"<table><tr>{head}</tr>{''.join(cells)}</table>"


def _label_issues_section(issues: list[dict]) -> str:
    """The worst rows of the folder's ``label_issues.csv`` (``bertfit audit``), worst first."""
    if not issues:
        return _missing("bertfit audit found no row whose label looks wrong")
    counts = {}
    for issue in issues:
        counts[issue["issue"]] = counts.get(issue["issue"], 0) + 1
    found = "; ".join(f"{count} {kind}" for kind, count in counts.items())
    rows = [[r["row"], r["text"], r["given_label"], r["suggested_label"], float(r["quality"]),
             r["other_row"] or ""] for r in issues[:LABEL_ISSUES_SHOWN]]  # fmt: skip
    note = (f"<p>{html.escape(found)} (out-of-fold, <code>bertfit audit</code>; the whole list is in "
            f"{LABEL_ISSUES_FILE}). Label quality is the probability a model that never saw the row gives its "
            "label: low is suspect.</p>")  # fmt: skip
    return note + _table(["row", "text", "given", "suggested", "label quality", "same text as row"], rows)
