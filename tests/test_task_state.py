"""A task writes and reads its own fitted state: ``bertfit.json`` holds ``task: {name, state}`` as the
shape wrote it, and folders of the earlier layout (the state spread beside the manifest's fields) still load."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bertfit.folder import FORMAT_VERSION, Manifest, SavedTask
from bertfit.tasks import LabelSet, MultiLabelTask, RegressionTask, SingleLabelTask, task_from_manifest

TASKS = [
    SingleLabelTask(LabelSet(("ham", "spam")), temperature=2.5, scale_in_weights=True, positive=0, thresholds=(0.3,)),
    SingleLabelTask(LabelSet(("a", "b", "c"))),
    MultiLabelTask(LabelSet(("a", "b", "c")), label_sep=";", temperature=1.5, thresholds=(0.5, 0.2, 0.9)),
    RegressionTask(LabelSet(("value",)), target_mean=2.5, target_std=0.75, scale_in_weights=True),
]


@pytest.mark.parametrize("task", TASKS, ids=lambda task: task.name)
def test_every_shape_round_trips_its_state_through_the_manifest(task):
    written = Manifest(list(task.labels.names), 32, task=task.to_manifest()).to_dict()
    assert written["format"] == FORMAT_VERSION
    assert written["task"] == {"name": task.name, "state": task.to_dict()}
    again = task_from_manifest(Manifest.from_dict(json.loads(json.dumps(written))))
    assert again == task and type(again) is type(task)


def test_state_keys_a_folder_lacks_keep_their_defaults_and_unknown_ones_are_ignored():
    labels = LabelSet(("value",))
    task = RegressionTask.from_dict({"target_mean": 3.0, "some_later_field": [1, 2]}, labels)
    assert task == RegressionTask(labels, target_mean=3.0)


# What bertfit wrote before format 3: the shape's name under "task", its state among the manifest's fields.
OLD_LAYOUT = {
    "format": 2,
    "labels": ["ham", "spam"],
    "max_length": 64,
    "task": "classification",
    "label_sep": ",",
    "target_mean": 0.0,
    "target_std": 1.0,
    "temperature": 1.7,
    "scale_in_weights": True,
    "positive_label": "spam",
    "thresholds": [0.35],
    "long_text": "truncate",
}


def test_an_old_layout_manifest_still_loads_with_its_fitted_rules():
    manifest = Manifest.from_dict(OLD_LAYOUT)
    assert manifest.task.name == "classification" and manifest.max_length == 64
    task = task_from_manifest(manifest)
    expected = SingleLabelTask(LabelSet(("ham", "spam")), temperature=1.7, scale_in_weights=True, positive=1,
                               thresholds=(0.35,))  # fmt: skip
    assert task == expected
    assert task.decide(np.array([[0.6, 0.4], [0.7, 0.3]])).tolist() == [1, 0]


def test_a_manifest_from_before_task_names_is_single_label():
    manifest = Manifest.from_dict({"format": 1, "labels": ["a", "b"], "max_length": 8, "temperature": 2.0})
    assert manifest.task == SavedTask(None, {"temperature": 2.0})
    assert task_from_manifest(manifest) == SingleLabelTask(LabelSet(("a", "b")), temperature=2.0)


def test_a_folder_of_the_old_layout_predicts_exactly_what_it_did(small_model_dir, tmp_path):
    from bertfit import Predictor

    old = tmp_path / "old"
    shutil.copytree(small_model_dir, old)
    manifest = json.loads((old / "bertfit.json").read_text())
    task = manifest.pop("task")
    (old / "bertfit.json").write_text(json.dumps({**manifest, **task["state"], "task": task["name"], "format": 2}))
    texts = ["a lovely day", "an awful evening", "the table"]
    current, reloaded = (Predictor.load(folder, precision="fp32", backend="torch") for folder in (small_model_dir, old))
    assert reloaded.task == current.task
    assert (reloaded.predict_proba(texts) == current.predict_proba(texts)).all()


def test_config_json_carries_the_state_as_the_task_writes_it(small_model_dir):
    manifest = json.loads((small_model_dir / "bertfit.json").read_text())
    settings = json.loads((small_model_dir / "config.json").read_text())["bertfit"]
    assert settings["task"] == manifest["task"]["name"]
    assert {key: settings[key] for key in manifest["task"]["state"]} == manifest["task"]["state"]
