"""SetFit 1.2 as its users run it, with the paper's settings: run by bench/fewshot.py inside SetFit's own
environment (``.peers/setfit``), so it imports nothing of bertfit's.

    python bench/setfit_peer.py MODEL_DIR TRAIN_CSV SEED EVAL_CSV [EVAL_CSV ...]

Prints one JSON line: ``train_s`` (model load to trained), and the accuracy on each EVAL_CSV by file name.
"""

from __future__ import annotations

import csv
import json
import sys
import time


def read(path: str) -> tuple[list[str], list[str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row["text"] for row in rows], [row["label"] for row in rows]


def main(model: str, train_csv: str, seed: int, evaluated: list[str]) -> dict:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    texts, labels = read(train_csv)
    started = time.perf_counter()
    classifier = SetFitModel.from_pretrained(model)
    # The SetFit paper's settings: 20 pair iterations, batch 16, one epoch, a logistic-regression head.
    arguments = TrainingArguments(batch_size=16, num_iterations=20, num_epochs=1, seed=seed, report_to="none")
    Trainer(model=classifier, args=arguments, train_dataset=Dataset.from_dict({"text": texts, "label": labels})).train()
    result = {"train_s": round(time.perf_counter() - started, 1)}
    for path in evaluated:
        eval_texts, gold = read(path)
        predicted = [str(label) for label in classifier.predict(eval_texts)]
        result[path.rsplit("/", 1)[-1]] = sum(p == g for p, g in zip(predicted, gold)) / len(gold)
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:])))
