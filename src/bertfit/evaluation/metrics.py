"""Metrics rendered for people: one summary line per split, per-class tables, and the mean ± std
of repeated runs. Each task shape computes its own metrics (``bertfit.tasks``); this only shows them."""

from __future__ import annotations

from bertfit.tasks import shape_named


def headlines_of(metrics: dict):
    """The (title, key) pairs a metrics dict's task shape puts first."""
    return shape_named(metrics.get("task")).headlines


def summary_line(metrics: dict, title: str) -> str:
    values = "  ".join(f"{name} {metrics[key]:.4f}" for name, key in headlines_of(metrics))
    return f"{title}: {metrics['rows']} rows  {values}"


def format_metrics(metrics: dict, title: str) -> str:
    """A plain-text table: headline metrics, then per-class precision/recall/F1/support."""
    lines = [summary_line(metrics, title)]
    if "threshold" in metrics:
        threshold, plain = metrics["threshold"], metrics["at_argmax"]
        lines.append(f"  decision: {threshold['label']} when its probability >= {threshold['value']:.4f} "
                     f"(at argmax: accuracy {plain['accuracy']:.4f}, MCC {plain['mcc']:.4f})")  # fmt: skip
    per_class = metrics.get("per_class")
    if not per_class:
        return "\n".join(lines)
    width = max(8, *(len(name) for name in per_class))
    lines.append(f"  {'class':<{width}}  precision  recall     f1  support")
    for name, row in per_class.items():
        lines.append(
            f"  {name:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:.4f}  {row['support']:7d}"
        )
    if "confusion_matrix" in metrics:
        names = list(per_class)
        lines.append(f"  confusion matrix (rows gold, columns predicted): {', '.join(names)}")
        for name, row in zip(names, metrics["confusion_matrix"]):
            lines.append(f"  {name:<{width}}  " + " ".join(f"{v:6d}" for v in row))
    return "\n".join(lines)


def format_summary(summary: dict) -> str:
    """Lines like ``test mcc 0.2130 ± 0.0060  (0.2080, 0.2130, 0.2200)`` for the headline metrics."""
    lines = []
    for split in ("validation", "test"):
        if split not in summary:
            continue
        values = summary[split]
        for _, key in headlines_of(summary):
            if key in values:
                row = values[key]
                runs = ", ".join(f"{v:.4f}" for v in row["values"])
                lines.append(f"{split} {key} {row['mean']:.4f} ± {row['std']:.4f}  ({runs})")
    return "\n".join(lines)
