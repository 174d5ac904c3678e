"""The frozen recipe's epoch rule: keep the last of its epochs, or the best one on validation (patience 2)?

    python -m bench.frozen_epochs [--datasets sms_spam,ag_news] [--seeds 42,43,44] [--rules last,patience2]
                                  [--runs FILE] [--tables-only] [--no-append]

Scored on selection rows only: bench/audit.py's training rows of each data set (its 1,000 test rows stay
unread), of which 1,000 are set aside as selection rows with their true labels, and the rest train. Arms, as
the label audit's retrain meets them: the clean rows; 5% of each class's labels flipped (bench.audit.flip, flip
seeds 1 and 2); and the flip-seed-2 rows without the ones `bertfit audit` (defaults) flags in them. Each run is
``bertfit train --recipe frozen --seed S`` (10 epochs), then the selection rows' accuracy; rules:
- last: the recipe's default, every epoch runs and the last is kept;
- patience2: ``--patience 2``, the best epoch by validation MCC with patience 2 (the default before).
One JSON line per run in ``--runs``; a stopped run continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from bench import audit
from bench.fewshot import add_runs_options, keep_run, runs_then_tables, write_rows
from bench.harness import ROOT, points, publish

RUNS = ROOT / "bench" / "frozen-epochs-runs.jsonl"
SELECTION_ROWS = 1000
NOISE = 0.05  # of each class's labels flipped, as bench.audit's default
RULES = {"last": [], "patience2": ["--patience", "2"]}
ARMS = ("clean", "flipped1", "flipped2", "flipped2-dropped")


def arms(name: str, work: Path) -> tuple[dict[str, Path], Path]:
    """The arms' training files and the selection file of data set ``name``."""
    train, _ = audit.train_and_test(name)
    order = list(range(len(train)))
    random.Random(7).shuffle(order)
    selection, kept = sorted(order[:SELECTION_ROWS]), sorted(order[SELECTION_ROWS:])
    rows = {"clean": [train[i] for i in kept]}
    for flip_seed in (1, 2):
        noisy, _ = audit.flip(train, NOISE, flip_seed)
        rows[f"flipped{flip_seed}"] = [noisy[i] for i in kept]
    files = {arm: write_rows(work / f"{arm}.csv", arm_rows) for arm, arm_rows in rows.items()}
    issues, _ = audit.run_audit(files["flipped2"], work / "issues.csv")
    flagged = {int(r["row"]) for r in issues if r["issue"] == audit.LIKELY_WRONG}
    dropped = [row for i, row in enumerate(rows["flipped2"], 1) if i not in flagged]
    files["flipped2-dropped"] = write_rows(work / "flipped2-dropped.csv", dropped)
    return files, write_rows(work / "selection.csv", [train[i] for i in selection])


def selection_accuracy(train: Path, selection: Path, work: Path, seed: int, rule: str) -> dict:
    output = work / f"model-{train.stem}-{rule}-{seed}"
    _, wall = audit.bertfit("train", "--train", str(train), "--test", str(selection), "--output", str(output),
                            "--overwrite", "--seed", str(seed), "--recipe", "frozen", "--no-progress",
                            "--no-export-onnx", *RULES[rule])  # fmt: skip
    manifest = json.loads((output / "bertfit.json").read_text(encoding="utf-8"))
    metrics = json.loads((output / "metrics.json").read_text(encoding="utf-8"))
    return {"selection": metrics["test"]["accuracy"], "kept_epoch": manifest["best_epoch"],
            "epochs_run": manifest["epochs_run"], "wall_s": round(wall, 1)}  # fmt: skip


def tables(runs: list[dict]) -> str:
    """Mean selection accuracy per data set and arm for each rule, and the paired differences."""
    cells = defaultdict(dict)
    for r in runs:
        cells[(r["dataset"], r["arm"])][(r["rule"], r["seed"])] = r
    lines = ["| data set, arm | last epoch (default) | patience 2 (before) | last − patience 2, per seed (points) "
             "| epochs kept under patience 2 |", "|---|---|---|---|---|"]  # fmt: skip
    for (name, arm), by_run in cells.items():
        seeds = sorted({seed for _, seed in by_run})
        paired = [s for s in seeds if ("last", s) in by_run and ("patience2", s) in by_run]
        if not paired:
            continue
        means = {rule: statistics.mean(by_run[(rule, s)]["selection"] for s in paired) for rule in RULES}
        gaps = [100 * (by_run[("last", s)]["selection"] - by_run[("patience2", s)]["selection"]) for s in paired]
        kept = ", ".join(str(by_run[("patience2", s)]["kept_epoch"]) for s in paired)
        lines.append(f"| {name}, {arm} | {means['last']:.4f} | {means['patience2']:.4f} | "
                     f"{points(statistics.mean(gaps))} ({', '.join(points(g) for g in gaps)}) | {kept} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="sms_spam,ag_news")
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--rules", default=",".join(RULES))
    add_runs_options(parser, RUNS.name)
    args = parser.parse_args(argv)
    runs = runs_then_tables(args, lambda runs, runs_file: run_all(args, runs, runs_file))
    summary = ("selection accuracy of `bertfit train --recipe frozen` keeping its last epoch against the best by "
               "validation MCC under patience 2, on 1,000 rows set aside from the training split, mean over seeds")  # fmt: skip
    publish("Frozen recipe: which epoch to keep", "bench.frozen_epochs", argv if argv is not None else sys.argv[1:],
            summary, tables(runs), append=not args.no_append)  # fmt: skip


def run_all(args: argparse.Namespace, runs: list[dict], runs_file: Path) -> None:
    seeds, rules = [int(s) for s in args.seeds.split(",")], args.rules.split(",")
    done = {(r["dataset"], r["arm"], r["rule"], r["seed"]) for r in runs}
    for name in args.datasets.split(","):
        todo = [(arm, rule, seed) for seed in seeds for arm in ARMS for rule in rules
                if (name, arm, rule, seed) not in done]  # fmt: skip
        if not todo:
            continue
        with tempfile.TemporaryDirectory(prefix="frozen-epochs-") as scratch:
            work = Path(scratch)
            files, selection = arms(name, work)
            for arm, rule, seed in todo:
                record = {"dataset": name, "arm": arm, "rule": rule, "seed": seed}
                keep_run(record | selection_accuracy(files[arm], selection, work, seed, rule), runs, runs_file)


if __name__ == "__main__":
    main()
