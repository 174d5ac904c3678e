"""The few-shot head's input: the tuned sentence vectors as they come, or each scaled to length 1 (what
SetFit's logistic regression reads, since its sentence-transformers encoders end in a Normalize module)?

    python -m bench.fewshot_heads [--datasets ag_news,emotions,sms_spam] [--sizes 8,16] [--draws 100,101,102]
                                  [--runs FILE] [--tables-only] [--no-append]

Per draw (numbered apart from bench/fewshot.py's, as in bench/fewshot_select.py) ``bertfit train --recipe
few-shot`` runs once; then, on the same tuned encoder, the head is fitted three ways on the training rows'
vectors and scored on the selection rows (the test rows are not read): ``raw`` (the shipped head, which must
reproduce the folder's own selection accuracy, ``shipped``), ``normalised`` (the same L2-penalised logistic
regression on unit-length vectors) and ``centroid`` (nearest class centroid by cosine). ``norm_cv``: how much
the training vectors' lengths vary (std / mean) after the contrastive stage, whose cosine loss leaves them free.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.fewshot import default_model, draw, keep_run, load_dataset, runs_then_tables, write_rows
from bench.fewshot_select import add_selection_draw_options, sizes_and_draws
from bench.harness import points, publish

HEADS = ("raw", "normalised", "centroid")


def score_heads(rows: list, selection: list, seed: int, model: str) -> dict:
    import torch

    from bertfit.cli import main
    from bertfit.inference.predictor import Predictor
    from bertfit.training.frozen import logistic_regression

    with tempfile.TemporaryDirectory(prefix="fewshot-heads-") as scratch:
        train, folder = write_rows(Path(scratch) / "train.csv", rows), Path(scratch) / "model"
        started = time.perf_counter()
        code = main(["train", "--train", str(train), "--output", str(folder), "--no-progress", "-q", "--seed", str(seed),
                     "--model", model, "--recipe", "few-shot", "--no-export-onnx"])  # fmt: skip
        seconds = time.perf_counter() - started
        if code != 0:
            raise RuntimeError(f"bertfit train exited with {code}")
        predictor = Predictor.load(folder, backend="torch")
        names = list(predictor.labels.names)
        train_x = torch.from_numpy(predictor.sentence_vectors([text for text, _ in rows])).double()
        selection_x = torch.from_numpy(predictor.sentence_vectors([text for text, _ in selection])).double()
        train_y = torch.tensor([names.index(label) for _, label in rows])
        selection_y = np.array([names.index(label) for _, label in selection])
        shipped = float(np.mean(predictor.predict_proba([text for text, _ in selection]).argmax(1) == selection_y))
    result = {"train_s": round(seconds, 1), "shipped": shipped}

    def unit(vectors):
        return vectors / vectors.norm(dim=1, keepdim=True)

    for head, (fit_on, scored) in {
        "raw": (train_x, selection_x),
        "normalised": (unit(train_x), unit(selection_x)),
    }.items():
        weight, bias = logistic_regression(fit_on.float(), train_y, torch.nn.CrossEntropyLoss(), len(names))
        result[head] = float(np.mean((scored.float() @ weight.T + bias).argmax(1).numpy() == selection_y))
    centroids = unit(torch.stack([unit(train_x)[train_y == c].mean(0) for c in range(len(names))]))
    result["centroid"] = float(np.mean((unit(selection_x) @ centroids.T).argmax(1).numpy() == selection_y))
    lengths = train_x.norm(dim=1)
    result["norm_cv"] = round(float(lengths.std() / lengths.mean()), 3)
    return result


def run_all(datasets: list[str], sizes: list[int], draws: list[int], runs: list[dict], runs_file: Path) -> None:
    have = {(r["dataset"], r["size"], r["draw"]) for r in runs}
    model = default_model()
    for name in datasets:
        pool, selection, _ = load_dataset(name)
        for size in sizes:
            for number in draws:
                if (name, size, number) not in have:
                    result = score_heads(draw(pool, size, number), selection, number, model)
                    keep_run({"dataset": name, "size": size, "draw": number, **result}, runs, runs_file)


def table(runs: list[dict]) -> str:
    """Per data set and size: mean selection accuracy of each head, and the paired change from ``raw`` in points."""
    cells = defaultdict(list)
    for run in runs:
        cells[(run["dataset"], run["size"])].append(run)
    lines = ["| data set, rows per class | draws | " + " | ".join(HEADS) + " |", "|---|---|" + "---|" * len(HEADS)]
    for (name, size), found in sorted(cells.items()):
        row = [f"{name}, {size}", str(len(found))]
        for head in HEADS:
            mean = statistics.mean(r[head] for r in found)
            gain = statistics.mean(r[head] - r["raw"] for r in found)
            row.append(f"{mean:.3f}" + ("" if head == "raw" else f" ({points(100 * gain)})"))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_selection_draw_options(parser, "fewshot-heads-runs.jsonl", draws="100,101,102")
    args = parser.parse_args(argv)
    sizes, draws = sizes_and_draws(args)
    runs = runs_then_tables(
        args, lambda runs, runs_file: run_all(args.datasets.split(","), sizes, draws, runs, runs_file)
    )
    summary = ("selection accuracy of three few-shot heads on the same tuned encoder, mean over the draws (in brackets: "
               "the mean paired difference from the shipped `raw` head, in points); the test rows are not read")  # fmt: skip
    publish("Few labels: the few-shot head's input", "bench.fewshot_heads", argv if argv is not None else sys.argv[1:],
            summary, table(runs), append=not args.no_append)  # fmt: skip


if __name__ == "__main__":
    main()
