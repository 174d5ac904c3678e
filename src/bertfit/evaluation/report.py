"""``report.html``: one self-contained page about a model folder — the data it saw, how training
went, and where it errs. Everything comes from files the folder already holds (``bertfit.json``,
``metrics.json``, ``training_log.csv``, ``predictions_test.csv``); plots are PNGs inlined as data
URIs, so the page can be mailed or opened offline."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

import numpy as np

from bertfit.evaluation.metrics import HEADLINES
from bertfit.inference import read_manifest
from bertfit.tasks import MULTI_LABEL, REGRESSION, Task

REPORT_FILE = "report.html"
MOST_WRONG = 15
MAX_CURVES = 12  # more classes than this make an unreadable PR plot: the best supported are drawn
SECTIONS = ("profile", "training", "confusion", "per-class", "pr-curve", "wrong")


def write_report(model_dir: str | Path, output: str | Path | None = None) -> Path:
    from bertfit.data.stream import atomic_output

    folder = Path(model_dir)
    target = Path(output) if output else folder / REPORT_FILE
    page = build_report(folder)
    with atomic_output(target) as temp:
        temp.write_text(page, encoding="utf-8")
    return target


def build_report(folder: Path) -> str:
    manifest = read_manifest(folder)
    metrics = _read_json(folder / "metrics.json")
    history = _read_csv(folder / "training_log.csv")
    predictions = _read_csv(folder / "predictions_test.csv")
    sections = [
        ("profile", "Data", _profile_section(manifest)),
        ("training", "Training", _training_section(history, manifest)),
        ("confusion", "Confusion matrix", _confusion_section(metrics, manifest)),
        ("per-class", "Per-class precision, recall and F1", _per_class_section(metrics)),
        ("pr-curve", "Precision-recall", _pr_section(predictions, manifest)),
        ("wrong", "Most confidently wrong test examples", _wrong_section(predictions, manifest)),
    ]
    return _page(manifest, metrics, sections)


# -- reading ---------------------------------------------------------------------------------
def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# -- page ------------------------------------------------------------------------------------
STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:980px;margin:2rem auto;padding:0 1rem;color:#1d232a}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2.2rem;border-bottom:1px solid #dde3ea;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.6rem 0}td,th{padding:.25rem .6rem;border-bottom:1px solid #eef1f4;text-align:right}
th{background:#f5f7f9}td:first-child,th:first-child{text-align:left}.text{text-align:left;max-width:520px}
img{max-width:100%}.muted{color:#66717d}nav a{margin-right:.8rem}code{background:#f2f4f6;padding:0 .25rem}
"""


def _page(manifest: dict, metrics: dict, sections: list[tuple[str, str, str]]) -> str:
    title = f"bertfit report: {manifest.get('base_model', 'model')} ({manifest.get('task', 'classification')})"
    nav = "".join(f'<a href="#{key}">{html.escape(name)}</a>' for key, name, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{html.escape(name)}</h2>{content}</section>'
                   for key, name, content in sections)  # fmt: skip
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{_summary(manifest, metrics)}"
            f"<nav>{nav}</nav>{body}</body></html>")  # fmt: skip


def _summary(manifest: dict, metrics: dict) -> str:
    config = manifest.get("config", {})
    data = config.get("data", {})
    facts = [
        ("labels", ", ".join(manifest.get("labels", []))),
        ("data", data.get("dataset") or data.get("train") or "?"),
        ("rows", ", ".join(f"{k} {v}" for k, v in manifest.get("data", {}).get("rows", {}).items())),
        ("max length", f"{manifest.get('max_length')} tokens ({manifest.get('long_text', 'truncate')})"),
        ("epochs", f"{manifest.get('epochs_run')} run, kept {manifest.get('best_epoch')}"),
        ("precision", manifest.get("precision")),
        ("calibration temperature", f"{manifest.get('temperature', 1.0):.3g}"),
    ]
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td class=text>{html.escape(str(v))}</td></tr>" for k, v in facts)
    return f"<table>{rows}</table>{_headline_table(metrics, manifest.get('task', 'classification'))}"


def _headline_table(metrics: dict, task: str) -> str:
    splits = [name for name in ("validation", "test") if name in metrics]
    if not splits:
        return "<p class=muted>no validation or test metrics in this folder</p>"
    headlines = [(title, key) for title, key in HEADLINES[task] if any(key in metrics[s] for s in splits)]
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
def _profile_section(manifest: dict) -> str:
    profile = manifest.get("data", {}).get("profile")
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


def _training_section(history: list[dict], manifest: dict) -> str:
    if not history:
        return _missing("no training_log.csv in this folder")
    epochs = [int(r["epoch"]) for r in history]
    key = next((k for k in history[0] if k.startswith("validation_") and k != "validation_loss"), None)
    metric = Task.from_manifest(manifest).primary_metric
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
    best = manifest.get("best_epoch")
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


def _confusion_section(metrics: dict, manifest: dict) -> str:
    split, scores = _test_metrics(metrics)
    if not scores or "confusion_matrix" not in scores:
        return _missing("no confusion matrix: " + ("not a single-label task" if scores else "no scored split"))
    matrix = np.array(scores["confusion_matrix"])
    names = manifest.get("labels", [str(i) for i in range(len(matrix))])
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
def _scores(predictions: list[dict], names: list[str]) -> np.ndarray:
    return np.array([[float(row[f"prob_{name}"]) for name in names] for row in predictions])


def _label_matrix(predictions: list[dict], names: list[str], manifest: dict, column: str = "gold") -> np.ndarray:
    """One column per label: 1 where the row's label in ``column`` (gold or predicted) is, or includes, it."""
    sep = manifest.get("label_sep") or ","
    if manifest.get("task") == MULTI_LABEL:
        sets = [set(filter(None, row[column].split(sep))) for row in predictions]
    else:
        sets = [{row[column]} for row in predictions]
    return np.array([[name in gold for name in names] for gold in sets], dtype=int)


def _pr_section(predictions: list[dict], manifest: dict) -> str:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    names = manifest.get("labels", [])
    if manifest.get("task") == REGRESSION or not predictions:
        return _missing("not applicable: " + ("a regression model has no classes" if predictions else "no test predictions"))
    scores, gold = _scores(predictions, names), _label_matrix(predictions, names, manifest)
    decided = _label_matrix(predictions, names, manifest, "predicted")
    shown = _curve_labels(names, gold, manifest)
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
    note = _threshold_note(names, manifest, len(shown) < len(names) and len(shown) > 1)
    return _image(fig, "precision-recall curve") + note


def _curve_labels(names: list[str], gold: np.ndarray, manifest: dict) -> list[int]:
    if len(names) == 2 and manifest.get("task") != MULTI_LABEL:
        positive = manifest.get("positive_label") or names[1]
        return [names.index(positive)]
    by_support = np.argsort(-gold.sum(axis=0), kind="stable")
    return sorted(by_support[:MAX_CURVES].tolist())


def _operating_point(gold: np.ndarray, decided: np.ndarray) -> tuple[float, float]:
    """(recall, precision) of the decisions the saved rule made, whatever the rule is."""
    hits = int((decided & gold).sum())
    return hits / max(int(gold.sum()), 1), hits / max(int(decided.sum()), 1)


def _threshold_note(names: list[str], manifest: dict, truncated: bool) -> str:
    thresholds = manifest.get("thresholds")
    if manifest.get("task") == MULTI_LABEL:
        rule = "one threshold per label, tuned for F1 on validation" if thresholds else "a threshold of 0.5 per label"
    elif manifest.get("positive_label") and thresholds:
        rule = f"{manifest['positive_label']} when its probability is at least {thresholds[0]:.3f} (fitted on validation)"
    elif len(names) == 2:
        rule = "the more probable class (a threshold of 0.5)"
    else:
        rule = "the most probable class (argmax; curves are one-vs-rest)"
    more = f" The {MAX_CURVES} best-supported labels are drawn." if truncated else ""
    return f"<p>Dots mark the saved decision rule: {html.escape(rule)}.{more}</p>"


def _wrong_section(predictions: list[dict], manifest: dict) -> str:
    if not predictions:
        return _missing("no predictions_test.csv (the model was trained without a test split)")
    names = manifest.get("labels", [])
    if manifest.get("task") == REGRESSION:
        ranked = sorted(predictions, key=lambda row: -abs(float(row["error"])))[:MOST_WRONG]
        rows = [[row["row"], row["text"], row["gold"], row["predicted"], float(row["error"])] for row in ranked]
        return "<p>Largest absolute errors.</p>" + _text_table(["row", "text", "gold", "predicted", "error"], rows)
    wrong = [row for row in predictions if row.get("misclassified") == "1"]
    if not wrong:
        return "<p>No test example is misclassified.</p>"
    confidence = _wrong_confidence(wrong, names, manifest)
    order = np.argsort(-confidence, kind="stable")[:MOST_WRONG]
    rows = [[wrong[i]["row"], wrong[i]["text"], wrong[i]["gold"], wrong[i]["predicted"], float(confidence[i])]
            for i in order]  # fmt: skip
    what = ("the probability behind the most confident wrong label decision" if manifest.get("task") == MULTI_LABEL
            else "the probability the model gave its (wrong) prediction")  # fmt: skip
    return (f"<p>{len(wrong)} of {len(predictions)} test examples are wrong; the {len(rows)} most confident "
            f"(confidence = {what}) — often mislabelled data.</p>"
            + _text_table(["row", "text", "gold", "predicted", "confidence"], rows))  # fmt: skip


def _wrong_confidence(wrong: list[dict], names: list[str], manifest: dict) -> np.ndarray:
    scores = _scores(wrong, names)
    if manifest.get("task") == MULTI_LABEL:
        gold = _label_matrix(wrong, names, manifest)
        thresholds = np.asarray(manifest.get("thresholds") or [0.5] * len(names))
        said = scores >= thresholds
        # A wrong "yes" is as confident as its probability; a wrong "no" as one minus it.
        certainty = np.where(said, scores, 1 - scores)
        return np.where(said != gold.astype(bool), certainty, 0).max(axis=1)
    index = {name: i for i, name in enumerate(names)}
    return np.array([scores[i, index[row["predicted"]]] for i, row in enumerate(wrong)])


def _text_table(header: list[str], rows: list[list]) -> str:
    """A table whose second column is free text, left-aligned and wrapped."""
    head = "".join(f"<th class=text>{html.escape(h)}</th>" if i == 1 else f"<th>{html.escape(h)}</th>"
                   for i, h in enumerate(header))  # fmt: skip
    cells = []
    for row in rows:
        tds = "".join(f"<td class=text>{html.escape(str(v))}</td>" if i == 1 else f"<td>{_fmt(v)}</td>"
                      for i, v in enumerate(row))  # fmt: skip
        cells.append(f"<tr>{tds}</tr>")
    return f"<table><tr>{head}</tr>{''.join(cells)}</table>"
