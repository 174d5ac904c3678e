"""Does a model folder predict the same outside bertfit? Plain transformers' ``pipeline`` (with the
model card's lines for tuned thresholds) against ``bertfit predict`` on every row of a file.

    python -m bench.folder_parity runs/sms_spam                 # its saved test split
    python -m bench.folder_parity runs/cola --data dev.tsv --text-column sentence

Prints the share of equal labels and the largest probability difference, bertfit in fp32 (its
default) and in bf16 (where the CPU has it natively).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench.harness import machine


def plain_transformers(folder: Path, texts: list[str]) -> tuple[list[str], np.ndarray]:
    """Labels and per-label probabilities (``id2label`` order) as a plain-transformers user gets them."""
    from transformers import pipeline

    config = json.loads((folder / "config.json").read_text())
    settings = config["bertfit"]
    classify = pipeline("text-classification", model=str(folder), trust_remote_code="auto_map" in config)
    names = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    sigmoid = settings["task"] == "multi-label"
    rows = classify(texts, truncation=True, max_length=settings["max_length"], top_k=None, batch_size=32,
                    **({"function_to_apply": "sigmoid"} if sigmoid else {}))  # fmt: skip
    scores = np.array([[next(s["score"] for s in row if s["label"] == name) for name in names] for row in rows])
    thresholds = settings["thresholds"]
    if sigmoid:
        limits = np.asarray(thresholds or [0.5] * len(names))
        labels = [settings["label_sep"].join(n for n, on in zip(names, row >= limits) if on) for row in scores]
    elif thresholds and settings["positive_label"]:
        positive = names.index(settings["positive_label"])
        other = names[1 - positive]
        labels = [names[positive] if row[positive] >= thresholds[0] else other for row in scores]
    else:
        labels = [names[i] for i in scores.argmax(axis=1)]
    return labels, scores


def bertfit_side(folder: Path, texts: list[str], precision: str) -> tuple[list[str], np.ndarray]:
    from bertfit import Predictor

    predictor = Predictor.load(folder, precision=precision)
    outputs = predictor.predict_proba(texts)
    return predictor.task.decision_names(predictor.task.decide(outputs)), outputs


def main() -> None:
    import pandas as pd

    from bertfit.encoding.precision import bf16_supported

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--data", type=Path, help="default: the folder's predictions_test.csv")
    parser.add_argument("--text-column", default="text")
    args = parser.parse_args()
    data = args.data or args.folder / "predictions_test.csv"
    frame = pd.read_csv(data, sep="\t" if data.suffix == ".tsv" else ",", keep_default_na=False)
    texts = frame[args.text_column].astype(str).tolist()
    print(machine())
    labels, scores = plain_transformers(args.folder, texts)
    import torch

    precisions = ["fp32"] + (["bf16"] if bf16_supported(torch.device("cpu")) else [])
    for precision in precisions:
        ours, outputs = bertfit_side(args.folder, texts, precision)
        same = sum(a == b for a, b in zip(labels, ours))
        diff = np.abs(outputs.reshape(scores.shape) - scores).max()
        print(f"{args.folder} on {data} ({len(texts)} rows), bertfit {precision}: labels {same}/{len(texts)} equal, "
              f"largest probability difference {diff:.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
