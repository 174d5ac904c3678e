"""Are the explanations faithful? Delete the words an attribution method ranks highest, and as many random
words, and see how far the predicted class's probability falls.

    python -m bench.explain [--datasets sms_spam,cola] [--rows 200] [--methods integrated-gradients,occlusion,gradient-x-input]

For each data set a model is trained with bertfit's defaults (``bertfit train --dataset NAME``; kept in
``runs/bench-explain/NAME`` and reused) and ``--rows`` of its test rows are drawn (seeded). For each row and
method: the predicted class's probability p; the probability after deleting the method's top-k words (the
highest scores for that class), and after deleting k random words (the mean of three draws), for k = 1, 3
and 5 (rows with at most k words are left out at that k). Reported: the mean drop in probability, and the
area between the method's curve and random deletion's over k = 0..5 (larger: the top words matter more
than random ones). Also the time ``Predictor.explain`` takes per text of about 50 words.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.harness import ROOT, prepare_environment, publish

KS = (1, 3, 5)
RANDOM_DRAWS = 3
MODELS = ROOT / "runs" / "bench-explain"


def model_for(name: str) -> Path:
    folder = MODELS / name
    if not (folder / "bertfit.json").is_file():
        done = subprocess.run([sys.executable, "-m", "bertfit", "train", "--dataset", name, "--output", str(folder),
                               "--overwrite", "--no-progress", "-q"], capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"bertfit train --dataset {name} failed:\n{done.stderr[-3000:]}")
    return folder


def test_texts(name: str, rows: int) -> list[str]:
    from bertfit.config import DataConfig
    from bertfit.data.load import load_data

    test = load_data(DataConfig(dataset=name)).splits["test"]
    texts = [t for t in test.texts if len(t.split()) >= 2]
    return random.Random(0).sample(texts, min(rows, len(texts)))


def without(words: list[str], drop: set[int]) -> str:
    return " ".join(w for i, w in enumerate(words) if i not in drop)


def deletion_curves(predictor, texts: list[str], method: str) -> dict:
    """Mean probability drops per k, for the method's top words and for random words."""
    names = list(predictor.labels.names)
    explanations = predictor.explain(texts, method=method)
    rng = random.Random(1)
    drops: dict[str, dict[int, list[float]]] = {"method": {k: [] for k in KS}, "random": {k: [] for k in KS}}
    for found in explanations:
        words = [w for w, _ in found.words]
        column = names.index(found.label)
        for k in KS:
            if len(words) <= k:
                continue
            top = set(np.argsort([-s for _, s in found.words], kind="stable")[:k].tolist())
            draws = [set(rng.sample(range(len(words)), k)) for _ in range(RANDOM_DRAWS)]
            edited = [without(words, top)] + [without(words, d) for d in draws]
            after = predictor.predict_proba(edited)[:, column]
            drops["method"][k].append(found.output - float(after[0]))
            drops["random"][k].append(found.output - float(np.mean(after[1:])))
    curves = {side: {k: statistics.mean(v) if v else float("nan") for k, v in per_k.items()}
              for side, per_k in drops.items()}  # fmt: skip
    return {**curves, "rows": {k: len(drops["method"][k]) for k in KS}, "area": area_between(curves)}


def area_between(curves: dict) -> float:
    """Trapezoid area between the method's drop curve and random's over k = 0 (no drop) .. 5."""
    ks = [0, *KS]
    gap = [0.0, *(curves["method"][k] - curves["random"][k] for k in KS)]
    return float(sum((ks[i + 1] - ks[i]) * (gap[i] + gap[i + 1]) / 2 for i in range(len(KS))))


def seconds_per_text(predictor, method: str, texts: list[str]) -> float:
    """Wall time of ``Predictor.explain`` per text, texts of about 50 words, one at a time as the page asks."""
    long = [t for t in texts if 40 <= len(t.split()) <= 60][:5] or texts[:5]
    predictor.explain(long[:1], method=method)  # warm up
    started = time.perf_counter()
    for text in long:
        predictor.explain([text], method=method)
    return (time.perf_counter() - started) / len(long)


def fifty_word_texts() -> list[str]:
    """AG News descriptions run 30 to 60 words: the page's typical paste."""
    import csv

    from bench.harness import SHARED_DATA

    with open(SHARED_DATA / "ag_news" / "test.csv", encoding="utf-8", newline="") as handle:
        return [f"{title} {body}".replace("\\", " ") for _, title, body in csv.reader(handle)][:400]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="sms_spam,cola")
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--methods", default="integrated-gradients,occlusion,gradient-x-input")
    parser.add_argument("--no-append", action="store_true", help="print the tables without adding them to RESULTS.md")
    args = parser.parse_args(argv)
    prepare_environment()
    from bertfit import Predictor

    methods = args.methods.split(",")
    lines = ["| data set | method | rows (k=1) | drop k=1: top / random | k=3 | k=5 | area between the curves | "
             "seconds per 50-word text |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    results = []
    for name in args.datasets.split(","):
        predictor = Predictor.load(model_for(name), backend="torch")
        texts = test_texts(name, args.rows)
        for method in methods:
            curves = deletion_curves(predictor, texts, method)
            seconds = seconds_per_text(predictor, method, fifty_word_texts())
            results.append({"dataset": name, "method": method, **curves, "seconds_per_text": seconds})
            cells = [f"{curves['method'][k]:.3f} / {curves['random'][k]:.3f}" for k in KS]
            lines.append(f"| {name} | {method} | {curves['rows'][1]} | " + " | ".join(cells)
                         + f" | {curves['area']:.3f} | {seconds:.2f} |")  # fmt: skip
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    summary = ("mean drop in the predicted class's probability after deleting the k words each method ranks highest, "
               "against k random words, on test rows of models trained with bertfit's defaults")  # fmt: skip
    publish("Explanations: the deletion test", "bench.explain", argv if argv is not None else sys.argv[1:], summary,
            "\n".join(lines), append=not args.no_append)  # fmt: skip


if __name__ == "__main__":
    main()
