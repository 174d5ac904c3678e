"""Label Studio's JSON, both ways: its export read as labelled rows (``train``, ``evaluate``, ``audit`` take it
as ``--train export.json``), and rows written as its tasks with bertfit's guess as a pre-annotation
(``suggest``/``audit --output next.json``), with the labelling config for the project beside them.

An export is a JSON list of tasks, each ``{"data": {...}, "annotations": [{"result": [...], ...}]}``. A task's
row is its ``data`` plus, per ``choices`` control, the choices of its latest annotation (by update time)
under the control's name (``label`` in the config written here); several choices are joined by commas (the
label separator), so a multi-label project reads as multi-label. Tasks whose annotations were all skipped
(``was_cancelled``), and tasks nobody annotated, are left out and counted in the log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

from bertfit.errors import DataError
from bertfit.folder import atomic_file

log = logging.getLogger(__name__)

ANNOTATIONS = ("annotations", "completions")  # "completions": exports of Label Studio before 1.0
LABEL_CONTROL = "label"  # the Choices control's name in the config bertfit writes
MODEL_VERSION = "bertfit"


def is_task_list(records: list) -> bool:
    """Whether a JSON array is Label Studio tasks (objects with ``data`` and annotations)."""
    return (
        bool(records)
        and all(isinstance(r, dict) and isinstance(r.get("data"), dict) for r in records)
        and any(any(key in r for key in ANNOTATIONS) for r in records)
    )


def rows_from_export(tasks: list[dict], path: Path) -> list[dict]:
    """One row per annotated task: its data and its latest annotation's choices; the rest counted in the log."""
    rows, cancelled, unannotated = [], 0, 0
    for number, task in enumerate(tasks, start=1):
        annotations = [a for key in ANNOTATIONS for a in task.get(key) or [] if isinstance(a, dict)]
        kept = [a for a in annotations if not a.get("was_cancelled")]
        if not kept:
            cancelled += bool(annotations)
            unannotated += not annotations
            continue
        latest = max(kept, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0))
        choices = _choices(latest.get("result") or [], path, number)
        if not choices:
            unannotated += 1
            continue
        rows.append({**task["data"], **choices})
    if cancelled or unannotated:
        log.info("%s: Label Studio export of %d tasks: %d skipped or cancelled and %d without an answer left out",
                 path, len(tasks), cancelled, unannotated)  # fmt: skip
    if not rows:
        raise DataError(f"{path}: a Label Studio export with no annotated task ({len(tasks)} tasks)")
    return rows


def _choices(result: list, path: Path, task: int) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in result:
        if not isinstance(item, dict) or item.get("type") != "choices":
            continue
        picked = (item.get("value") or {}).get("choices") or []
        if not isinstance(picked, list) or not all(isinstance(c, str) for c in picked):
            raise DataError(f"{path}, task {task}: the choices of {item.get('from_name')!r} are not a list of texts")
        found[str(item.get("from_name") or LABEL_CONTROL)] = ",".join(picked)
    return found


def label_config(labels: Sequence[str], multi_label: bool, text_key: str = "text") -> str:
    """The project's labelling config: the text, and one choice per label (several for multi-label)."""
    choice = "multiple" if multi_label else "single"
    options = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in labels)
    return (f'<View>\n  <Text name="text" value={quoteattr("$" + text_key)}/>\n'
            f'  <Choices name="{LABEL_CONTROL}" toName="text" choice="{choice}" showInline="true">\n'
            f"{options}\n  </Choices>\n</View>\n")  # fmt: skip


def task(data: dict, guess: Sequence[str], score: float) -> dict:
    """One task: its data, with bertfit's guess as a pre-annotation for annotators to confirm or correct."""
    result = [{"from_name": LABEL_CONTROL, "to_name": "text", "type": "choices", "value": {"choices": list(guess)}}]
    return {"data": data, "predictions": [{"model_version": MODEL_VERSION, "score": score, "result": result}]}


def config_path(tasks_path: Path) -> Path:
    """Where the labelling config goes: beside the tasks, ``next.json`` -> ``next.label_config.xml``."""
    return tasks_path.with_name(tasks_path.stem + ".label_config.xml")


def write_tasks(path: Path, tasks: list[dict], labels: Sequence[str], multi_label: bool, text_key: str) -> Path:
    """The tasks as one JSON list (Label Studio's import), and the labelling config beside them."""
    with atomic_file(path) as temp:
        temp.write_text(json.dumps(tasks, ensure_ascii=False, indent=1, default=_plain), encoding="utf-8")
    with atomic_file(config_path(path)) as temp:
        temp.write_text(label_config(labels, multi_label, text_key), encoding="utf-8")
    return path


def _plain(value):
    """NumPy numbers (pandas cells) as Python's."""
    return value.item() if hasattr(value, "item") else str(value)
