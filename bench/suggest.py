"""What to label next, by simulation: rows chosen by ``bertfit suggest`` against rows chosen at random.

    python -m bench.suggest [--seeds 3] [--rounds 6] [--start 100] [--step 100] [--pool 3000]

AG News (4 topics): 1,000 rows are the test rows; of the others, ``--pool`` (drawn per seed) are the
unlabelled pool whose labels are hidden until a row is chosen. Each seed starts from ``--start`` rows drawn
at random from the pool, then adds ``--step`` rows per round for ``--rounds`` rounds, chosen by
``bertfit suggest MODEL --input unlabelled.csv --n STEP`` (the model trained on the rows labelled so far)
or at random. Every round trains with bertfit's defaults (``bertfit train --train labelled.csv --test
test.csv``) and records test accuracy. Runs go to bench/suggest-runs.jsonl, one line each, so an
interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from bench.audit import bertfit, train_and_test
from bench.fewshot import add_runs_options, keep_run, runs_then_tables, write_rows
from bench.harness import publish

STRATEGIES = ("suggest", "random")


def accuracy_of(labelled: list[tuple[str, str]], test: Path, work: Path, seed: int) -> tuple[float, Path]:
    train = write_rows(work / "labelled.csv", labelled)
    model = work / "model"
    bertfit("train", "--train", str(train), "--test", str(test), "--output", str(model), "--overwrite",
            "--no-progress", "--no-export-onnx", "--seed", str(seed))  # fmt: skip
    return json.loads((model / "metrics.json").read_text(encoding="utf-8"))["test"]["accuracy"], model


def suggested(model: Path, unlabelled: list[int], pool: list[tuple[str, str]], n: int, work: Path) -> list[int]:
    """Pool positions ``bertfit suggest`` picks among ``unlabelled``; the file it reads holds texts and ids only."""
    source, output = work / "unlabelled.csv", work / "next.csv"
    with open(source, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows((i, pool[i][0]) for i in unlabelled)
    bertfit("suggest", str(model), "--input", str(source), "--output", str(output), "--n", str(n), "--overwrite",
            "--text-column", "text")  # fmt: skip
    with open(output, encoding="utf-8", newline="") as handle:
        return [int(row["id"]) for row in csv.DictReader(handle)]


def simulate(seed: int, strategy: str, args, test: Path, pool_rows, work: Path, runs: list, runs_file: Path) -> None:
    rng = random.Random(seed)
    pool = rng.sample(pool_rows, args.pool)
    labelled = rng.sample(range(len(pool)), args.start)
    chooser = random.Random(seed * 1000 + 1)
    for round_number in range(args.rounds + 1):
        key = {"seed": seed, "strategy": strategy, "labels": len(labelled)}
        have = [r for r in runs if all(r.get(k) == v for k, v in key.items())]
        accuracy, model = accuracy_of([pool[i] for i in labelled], test, work, seed)
        if not have:
            keep_run({**key, "round": round_number, "test": accuracy}, runs, runs_file)
        if round_number == args.rounds:
            break
        unlabelled = sorted(set(range(len(pool))) - set(labelled))
        if strategy == "suggest":
            labelled += suggested(model, unlabelled, pool, args.step, work)
        else:
            labelled += chooser.sample(unlabelled, args.step)


def run_all(args: argparse.Namespace, runs: list[dict], runs_file: Path) -> None:
    """Every seed and strategy whose rounds the runs file does not hold yet, simulated from its start."""
    pool_rows, test_rows = train_and_test("ag_news")
    with tempfile.TemporaryDirectory(prefix="suggest-") as scratch:
        work = Path(scratch)
        test = write_rows(work / "test.csv", test_rows)
        for seed in range(args.seeds):
            for strategy in STRATEGIES:
                done = {r["labels"] for r in runs if r["seed"] == seed and r["strategy"] == strategy}
                if len(done) < args.rounds + 1:
                    simulate(seed, strategy, args, test, pool_rows, work, runs, runs_file)


def tables(runs: list[dict]) -> str:
    by = defaultdict(list)
    for r in runs:
        by[(r["strategy"], r["labels"])].append(r["test"])
    sizes = sorted({r["labels"] for r in runs})
    lines = ["| labelled rows | " + " | ".join(f"{s}: test acc (seeds)" for s in STRATEGIES) + " |", "|---|---|---|"]
    for size in sizes:
        cells = []
        for strategy in STRATEGIES:
            found = by.get((strategy, size), [])
            spread = f" ± {statistics.stdev(found):.3f}" if len(found) > 1 else ""
            cells.append(f"{statistics.mean(found):.3f}{spread} (n={len(found)})" if found else "—")
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    final = max(sizes) if sizes else None
    if final and by.get(("random", final)):
        target = statistics.mean(by[("random", final)])
        reached = next((size for size in sizes if by.get(("suggest", size))
                        and statistics.mean(by[("suggest", size)]) >= target), None)  # fmt: skip
        lines += ["", f"random choice's accuracy at {final} labels: {target:.3f}; `suggest` reaches it at "
                  + (f"{reached} labels ({100 * reached / final:.0f}% of them)" if reached else "no size measured")]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--start", type=int, default=100)
    parser.add_argument("--step", type=int, default=100)
    parser.add_argument("--pool", type=int, default=3000)
    add_runs_options(parser, "suggest-runs.jsonl")
    args = parser.parse_args(argv)
    runs = runs_then_tables(args, lambda runs, runs_file: run_all(args, runs, runs_file))
    summary = ("AG News test accuracy per number of labelled rows, rows added by `bertfit suggest` or at random "
               "(bertfit's defaults each round), mean ± std over seeds")  # fmt: skip
    publish("What to label next", "bench.suggest", argv if argv is not None else sys.argv[1:], summary, tables(runs),
            append=not args.no_append)  # fmt: skip


if __name__ == "__main__":
    main()
