"""Choosing the few-shot recipe's settings: candidates scored on bench/fewshot.py's selection rows only.

    python -m bench.fewshot_select [--candidates base,steps80,lr1e-4,dropout0.1] [--datasets ag_news,emotions,sms_spam]
                                   [--sizes 8,16] [--draws 100,101] [--runs FILE] [--tables-only] [--no-append]

Each candidate is ``bertfit train --recipe few-shot`` on a draw (in this process, without the ONNX export,
which decides nothing here), then the trained folder predicts bench/fewshot.py's selection rows. The draws
are numbered apart from the benchmark's (100 and up), so what is chosen here is not chosen on the draws the
benchmark reports. Candidates:
- base: the shipped settings;
- steps80: twice the contrastive stage's minimum number of optimizer steps (``MIN_CONTRASTIVE_STEPS``);
- epochs10: at least ten passes of the contrastive stage over the rows instead of five (``CONTRASTIVE_EPOCHS``;
  it changes training sets of five batches or more), so the tuning grows with the rows as SetFit's pairs do;
- lr1e-4: the contrastive stage at twice the default learning rate (``--learning-rate 1e-4``);
- supcon: the contrastive stage's loss replaced by a supervised contrastive batch loss
  (``supervised_contrastive_loss``), the issue's other candidate for SetFit's pair loss;
- end2end: after the head is fitted, the encoder and the head fine-tuned together on the task's own loss for
  ``END_TO_END_STEPS`` steps at a low learning rate (``then_end_to_end``): the issue's "differentiable head trained
  end to end after the contrastive stage", started from the fitted head as in linear probing then fine-tuning;
- dropout0.1: the encoder's dropout at 0.1 while tuning (``--dropout 0.1``; bertfit's default was 0, chosen for
  full fine-tuning on CoLA, while SetFit trains with the encoder's own 0.1). Chosen here, it has been the
  few-shot recipe's default since, so it now runs what ``base`` runs; the runs before it are in
  bench/fewshot-select-runs.jsonl, those after in bench/fewshot-select-dropout-runs.jsonl.
One JSON line per run in ``--runs``; a stopped run continues where it stopped.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench.fewshot import (
    add_runs_options,
    default_model,
    draw,
    keep_run,
    known_names,
    load_dataset,
    runs_then_tables,
    write_rows,
)
from bench.harness import points, publish


def supervised_contrastive_loss(vectors, targets, temperature: float = 0.07):
    """Khosla et al.'s supervised contrastive loss over a batch (setfit's ``SupConLoss``, its temperature): each
    row's same-label rows against all the others, by softmax over cosine similarities. Single-label rows only."""
    import torch

    unit = torch.nn.functional.normalize(vectors.float(), dim=1)
    logits = unit @ unit.T / temperature
    itself = torch.eye(len(unit), dtype=torch.bool, device=unit.device)
    log_share = logits.masked_fill(itself, float("-inf")).log_softmax(dim=1).masked_fill(itself, 0.0)
    alike = (targets[:, None] == targets[None, :]) & ~itself
    anchors = alike.any(1)
    per_anchor = -(log_share * alike).sum(1)[anchors] / alike.sum(1)[anchors]
    return per_anchor.mean()


END_TO_END_STEPS, END_TO_END_LEARNING_RATE, END_TO_END_BATCH = 20, 2e-5, 32


class Around:
    """A candidate's replacement for a function of bertfit.training.fewshot, built around the shipped one."""

    def __init__(self, make):
        self.make = make


def then_end_to_end(fit_head):
    """``fit_head``, then ``END_TO_END_STEPS`` optimizer steps of the whole classifier on the task's loss (AdamW,
    linear warm-up and decay, the training rows in seeded batches of ``END_TO_END_BATCH``). Weight decay, epsilon,
    clipping and warm-up are ``bertfit train``'s defaults."""

    def fit(model, loss_fn, inputs, batch_size, where):
        import math

        from bertfit.training import fewshot, loop

        fit_head(model, loss_fn, inputs, batch_size, where)
        batches = fewshot.contrastive_batches(inputs, END_TO_END_BATCH, seed=0)
        epochs = math.ceil(END_TO_END_STEPS / batches.per_epoch)
        optimizer = loop.build_optimizer(model, END_TO_END_LEARNING_RATE, 0.01, 1e-8)
        scheduler = loop.build_scheduler(optimizer, batches.per_epoch * epochs, 0.1)
        for _ in loop.fit(model, batches, epochs, loop.StepRecipe(optimizer, scheduler, loss_fn, 1.0, where.precision,
                                                                  where.device)):  # fmt: skip
            pass

    return fit


# name: (module attributes of bertfit.training.fewshot to set, each a value or an ``Around`` the shipped one,
#        extra `bertfit train` arguments)
CANDIDATES = {
    "base": ({}, []),
    "steps80": ({"MIN_CONTRASTIVE_STEPS": 80}, []),
    "epochs10": ({"CONTRASTIVE_EPOCHS": 10}, []),
    "lr1e-4": ({}, ["--learning-rate", "1e-4"]),
    "dropout0.1": ({}, ["--dropout", "0.1"]),
    "supcon": ({"all_pairs_cosine_loss": supervised_contrastive_loss}, []),
    "end2end": ({"fit_head": Around(then_end_to_end)}, []),
}


def score_candidate(name: str, rows: list, selection: list, seed: int, model: str) -> dict:
    import bertfit.training.fewshot as fewshot
    from bertfit.cli import main
    from bertfit.inference.predictor import Predictor

    constants, arguments = CANDIDATES[name]
    saved = {key: getattr(fewshot, key) for key in constants}
    with tempfile.TemporaryDirectory(prefix="fewshot-select-") as scratch:
        train, output = write_rows(Path(scratch) / "train.csv", rows), Path(scratch) / "model"
        for key, value in constants.items():
            setattr(fewshot, key, value.make(saved[key]) if isinstance(value, Around) else value)
        started = time.perf_counter()
        try:
            code = main(["train", "--train", str(train), "--output", str(output), "--no-progress", "-q", "--seed",
                         str(seed), "--model", model, "--recipe", "few-shot", "--no-export-onnx", *arguments])  # fmt: skip
        finally:
            for key, value in saved.items():
                setattr(fewshot, key, value)
        seconds = time.perf_counter() - started
        if code != 0:
            raise RuntimeError(f"bertfit train ({name}) exited with {code}")
        guesses = [p.label for p in Predictor.load(output).predict([text for text, _ in selection])]
    right = sum(guess == label for guess, (_, label) in zip(guesses, selection))
    return {"selection": round(right / len(selection), 4), "s": round(seconds, 1)}


def run_all(candidates: list[str], datasets: list[str], sizes: list[int], draws: list[int], runs: list[dict],
            runs_file: Path) -> None:  # fmt: skip
    have = {(r["variant"], r["dataset"], r["size"], r["draw"]) for r in runs}
    model = default_model()
    for candidate in candidates:
        for name in datasets:
            pool, selection, _ = load_dataset(name)
            for size in sizes:
                for number in draws:
                    if (candidate, name, size, number) in have:
                        continue
                    result = score_candidate(candidate, draw(pool, size, number), selection, number, model)
                    record = {"variant": candidate, "dataset": name, "size": size, "draw": number, **result}
                    keep_run(record, runs, runs_file)


def table(runs: list[dict], candidates: list[str]) -> str:
    """A row per data set and size; per candidate the mean selection accuracy over the draws and, beside it,
    the mean paired difference from ``base`` in points."""
    score = {(r["variant"], r["dataset"], r["size"], r["draw"]): r["selection"] for r in runs}
    cells = defaultdict(set)
    for _, name, size, number in score:
        cells[(name, size)].add(number)
    head = ["data set, rows per class", *candidates]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, size in sorted(cells):
        row = [f"{name}, {size}"]
        for candidate in candidates:
            found = [n for n in sorted(cells[(name, size)]) if (candidate, name, size, n) in score]
            if not found:
                row.append("—")
                continue
            mean = statistics.mean(score[(candidate, name, size, n)] for n in found)
            paired = [score[(candidate, name, size, n)] - score[("base", name, size, n)]
                      for n in found if ("base", name, size, n) in score]  # fmt: skip
            gain = f" ({points(100 * statistics.mean(paired))})" if paired and candidate != "base" else ""
            row.append(f"{mean:.3f}{gain}, n={len(found)}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def add_selection_draw_options(parser: argparse.ArgumentParser, runs_file: str, draws: str) -> None:
    """The options of a benchmark scored on selection rows of draws numbered apart from bench/fewshot.py's."""
    parser.add_argument("--datasets", default="ag_news,emotions,sms_spam")
    parser.add_argument("--sizes", default="8,16")
    parser.add_argument("--draws", default=draws)
    add_runs_options(parser, runs_file)


def sizes_and_draws(args: argparse.Namespace) -> tuple[list[int], list[int]]:
    """``add_selection_draw_options``' ``--sizes`` and ``--draws`` as numbers."""
    return [int(s) for s in args.sizes.split(",")], [int(d) for d in args.draws.split(",")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    add_selection_draw_options(parser, "fewshot-select-runs.jsonl", draws="100,101")
    args = parser.parse_args(argv)
    candidates = known_names(args.candidates, CANDIDATES, "candidates")
    sizes, draws = sizes_and_draws(args)
    runs = runs_then_tables(
        args, lambda runs, runs_file: run_all(candidates, args.datasets.split(","), sizes, draws, runs, runs_file)
    )
    summary = ("selection accuracy of the few-shot recipe's candidate settings, mean over the draws (in brackets: "
               "the mean paired difference from `base`, in points); the test rows are not read")  # fmt: skip
    publish("Few labels: choosing the few-shot settings", "bench.fewshot_select",
            argv if argv is not None else sys.argv[1:], summary, table(runs, candidates), append=not args.no_append)  # fmt: skip


if __name__ == "__main__":
    main()
