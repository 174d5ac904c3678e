"""Label Studio's JSON both ways: an export trains (latest annotation per task; skipped and unannotated tasks
left out and counted), and ``suggest``/``audit`` write tasks with bertfit's guess as a pre-annotation, with the
project's labelling config beside them. The round trip: tasks out, annotations in, a model trained from them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bertfit.cli import main
from conftest import sentiment_rows, write_csv


def annotation(choices: list[str], updated: str, cancelled: bool = False, control: str = "label") -> dict:
    """One annotation as Label Studio's JSON export writes it."""
    result = [] if cancelled else [{"id": "r1", "from_name": control, "to_name": "text", "type": "choices",
                                    "value": {"choices": choices}, "origin": "manual"}]  # fmt: skip
    return {"id": abs(hash(updated)) % 1000, "completed_by": 1, "result": result, "was_cancelled": cancelled,
            "ground_truth": False, "created_at": updated, "updated_at": updated, "lead_time": 2.5}  # fmt: skip


def export(rows: list[tuple[str, str]], extra: list[dict] = ()) -> list[dict]:
    tasks = [{"id": i, "data": {"text": text}, "annotations": [annotation([label], "2026-01-02T10:00:00Z")],
              "predictions": [], "meta": {}} for i, (text, label) in enumerate(rows, 1)]  # fmt: skip
    return tasks + list(extra)


def test_an_export_trains_with_the_latest_answer_per_task(tiny_bert, tmp_path, capsys):
    rows = sentiment_rows(40)
    changed_mind = {"id": 900, "data": {"text": "a changed mind"}, "annotations": [
        annotation(["neg"], "2026-01-01T09:00:00Z"), annotation(["pos"], "2026-01-03T09:00:00Z")]}  # fmt: skip
    skipped = {"id": 901, "data": {"text": "skipped"}, "annotations": [annotation([], "2026-01-01", cancelled=True)]}
    untouched = {"id": 902, "data": {"text": "nobody looked"}, "annotations": []}
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export(rows, [changed_mind, skipped, untouched]), indent=2))
    from bertfit.config import DataConfig
    from bertfit.data.load import load_data

    data = load_data(DataConfig(train=str(path), validation_split=0.0), for_training=False)
    texts = dict(zip(data.train.texts, data.train.labels))
    assert len(texts) == 41 and texts["a changed mind"] == "pos" and "skipped" not in texts
    args = ["train", "--train", str(path), "--model", str(tiny_bert), "--output", str(tmp_path / "m"), "--epochs",
            "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert "1 skipped or cancelled and 1 without an answer left out" in capsys.readouterr().err


def test_a_multi_choice_project_reads_as_multi_label(tmp_path):
    from bertfit.config import DataConfig
    from bertfit.data.load import load_data

    tasks = [{"data": {"text": f"text {i}"}, "annotations": [annotation(["a", "b"] if i % 2 else ["a"], "2026")]}
             for i in range(12)]  # fmt: skip
    path = tmp_path / "tags.json"
    path.write_text(json.dumps(tasks))
    data = load_data(DataConfig(train=str(path), validation_split=0.0), for_training=False)
    assert data.task.problem_type.startswith("multi") and set(data.labels.names) == {"a", "b"}


def test_suggest_writes_tasks_and_the_config_and_the_answers_come_back_to_train(small_model_dir, tiny_bert, tmp_path):
    rows = [(text,) for text, _ in sentiment_rows(30, seed=4)]
    source = write_csv(tmp_path / "unlabelled.csv", rows, header=("text",))
    tasks_path = tmp_path / "next.json"
    args = ["suggest", str(small_model_dir), "--input", str(source), "--output", str(tasks_path), "--n", "12", "-q"]
    assert main(args) == 0
    tasks = json.loads(tasks_path.read_text())
    assert len(tasks) == 12 and {t["data"]["text"] for t in tasks} <= {r[0] for r in rows}
    (guess,) = tasks[0]["predictions"]
    assert guess["model_version"] == "bertfit" and 0 <= guess["score"] <= 1
    assert guess["result"][0]["value"]["choices"][0] in ("neg", "pos")
    config = ET.fromstring((tmp_path / "next.label_config.xml").read_text())
    assert config.find("Text").get("value") == "$text"
    choices = config.find("Choices")
    assert choices.get("choice") == "single" and [c.get("value") for c in choices] == ["neg", "pos"]
    # Annotators confirm the guess of every other task and correct the rest; Label Studio exports them.
    for i, item in enumerate(tasks):
        picked = item["predictions"][0]["result"][0]["value"]["choices"]
        answer = picked if i % 2 else ["pos" if picked == ["neg"] else "neg"]
        item["annotations"] = [annotation(answer, "2026-02-01T12:00:00Z")]
    exported = tmp_path / "export.json"
    exported.write_text(json.dumps(tasks))
    train = ["train", "--train", str(exported), "--model", str(tiny_bert), "--output", str(tmp_path / "m"), "--epochs",
             "1", "--validation-split", "0", "--no-progress", "-q"]  # fmt: skip
    assert main(train) == 0
    assert main(["predict", str(tmp_path / "m"), "--text", "a lovely day", "-q"]) == 0


def test_audit_writes_tasks_with_the_suggested_label(tiny_bert, tmp_path):
    rows = sentiment_rows(30)
    rows[6] = (rows[1][0], "neg" if rows[1][1] == "pos" else "pos")
    train = write_csv(tmp_path / "data.csv", rows)
    output = tmp_path / "issues.json"
    assert main(["audit", "--train", str(train), "--model", str(tiny_bert), "--output", str(output), "-q"]) == 0
    tasks = json.loads(output.read_text())
    duplicate = next(t for t in tasks if t["data"]["issue"].startswith("duplicate"))
    assert duplicate["data"]["row"] == 7 and duplicate["data"]["given_label"] == rows[6][1]
    assert duplicate["predictions"][0]["result"][0]["value"]["choices"][0] in ("neg", "pos")
    assert (tmp_path / "issues.label_config.xml").is_file()


@pytest.mark.parametrize(
    "content, message",
    [
        ("[1, 2]", "item 1 of the JSON list is not an object"),
        ('[{"data": {"text": "a"}, "annotations": []}]', "a Label Studio export with no annotated task"),
        ('[{"text": "a",', "not valid JSON"),
    ],
)
def test_a_json_list_that_cannot_be_read_is_one_clear_line(content, message, tiny_bert, tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(content)
    args = ["train", "--train", str(path), "--model", str(tiny_bert), "--output", str(tmp_path / "m")]
    assert main(args) != 0
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """A real Label Studio on a free loopback port (``tests/label_studio_server.py``); its base URL."""
    import label_studio_server as server

    if not server.installed():
        pytest.skip(f"no Label Studio environment at {server.ENVIRONMENT}: `make labelstudio` installs it")
    port = server.free_port()
    process = server.start(server.fresh_copy(tmp_path_factory.mktemp("label-studio") / "data"), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop(process)


def test_round_trip_through_a_real_label_studio(small_model_dir, tiny_bert, tmp_path, label_studio, capsys):
    """suggest's tasks and label config go into a Label Studio project through its SDK; annotators answer
    (one task skipped); the project's JSON export trains a folder that predicts."""
    import subprocess

    import label_studio_server as server

    rows = sentiment_rows(30, seed=5)
    source = write_csv(tmp_path / "unlabelled.csv", [(text,) for text, _ in rows], header=("text",))
    tasks_path = tmp_path / "next.json"
    assert main(["suggest", str(small_model_dir), "--input", str(source), "--output", str(tasks_path), "--n",
                 "12", "-q"]) == 0  # fmt: skip
    gold = dict(rows)
    chosen = [task["data"]["text"] for task in json.loads(tasks_path.read_text())]
    answers = {text: gold[text] for text in chosen} | {chosen[0]: None}  # the first task is skipped
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    exported = tmp_path / "export.json"
    client = [str(server.ENVIRONMENT / "bin" / "python"), str(Path(__file__).with_name("label_studio_client.py")),
              label_studio, server.TOKEN, str(tasks_path), str(tmp_path / "next.label_config.xml"),
              str(tmp_path / "answers.json"), str(exported)]  # fmt: skip
    done = subprocess.run(client, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["predictions"] == 12  # the guesses came in as pre-annotations

    tasks = json.loads(exported.read_text())
    assert len(tasks) == 12 and sum(a["was_cancelled"] for t in tasks for a in t["annotations"]) == 1
    train = ["train", "--train", str(exported), "--model", str(tiny_bert), "--output", str(tmp_path / "m"),
             "--epochs", "1", "--validation-split", "0", "--no-progress"]  # fmt: skip
    assert main(train) == 0
    assert "12 tasks: 1 skipped or cancelled" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "m" / "bertfit.json").read_text())
    assert manifest["data"]["rows"] == {"train": 11}
    assert main(["predict", str(tmp_path / "m"), "--text", "a lovely day", "-q"]) == 0
