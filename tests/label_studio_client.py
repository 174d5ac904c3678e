"""The annotator's side of the round trip, through ``label-studio-sdk`` (run with the Label Studio environment's
Python): create a project from bertfit's label config, import bertfit's tasks, answer each task as
``answers.json`` says (a label, several labels, or ``null`` to skip it), and export the project as JSON.

    python label_studio_client.py URL TOKEN TASKS.json CONFIG.xml ANSWERS.json EXPORT.json
"""

import json
import sys

from label_studio_sdk import LabelStudio


def main(url, token, tasks_path, config_path, answers_path, export_path):
    client = LabelStudio(base_url=url, api_key=token)
    with open(config_path, encoding="utf-8") as handle:
        project = client.projects.create(title="bertfit round trip", label_config=handle.read())
    with open(tasks_path, encoding="utf-8") as handle:
        tasks = json.load(handle)
    imported = client.projects.import_tasks(id=project.id, request=tasks, return_task_ids=True)
    with open(answers_path, encoding="utf-8") as handle:
        answers = json.load(handle)
    control = next(iter(t["predictions"][0]["result"][0]["from_name"] for t in tasks))
    for task in client.tasks.list(project=project.id):
        answer = answers[task.data["text"]]
        if answer is None:
            client.annotations.create(id=task.id, result=[], was_cancelled=True)
            continue
        choices = answer if isinstance(answer, list) else [answer]
        result = [{"from_name": control, "to_name": "text", "type": "choices", "value": {"choices": choices}}]
        client.annotations.create(id=task.id, result=result)
    exported = b"".join(
        client.projects.exports.download_sync(id=project.id, export_type="JSON", download_all_tasks=True)
    )
    with open(export_path, "wb") as handle:
        handle.write(exported)
    print(
        json.dumps({"project": project.id, "imported": imported.task_count, "predictions": imported.prediction_count})
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
