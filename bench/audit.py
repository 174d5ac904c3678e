"""Label audit: does ``bertfit audit`` find labels known to be wrong, how fast, and does fixing them pay?

    python -m bench.audit [--datasets sms_spam,ag_news] [--noise 0.05] [--parts flags,retrain,scale,examples]

- flags: 1,000 rows of each data set are set aside as the test rows; of the rest, ``--noise`` of each
  class's labels are flipped to another class (seeded), and ``bertfit audit --train noisy.csv`` runs as a
  user runs it (default frozen recipe, 5 folds). Precision and recall of the "likely wrong label" rows
  against the flipped ones, and the wall time.
- retrain: ``bertfit train`` (defaults) on the clean rows, the noisy rows, the noisy rows without the
  flagged ones, and the noisy rows with the flagged ones relabelled as suggested; test accuracy of each,
  and the share of the accuracy lost to the noise that comes back.
- scale: ``bertfit audit`` on 10,000 GoEmotions training rows (multi-label), wall time.
- examples: the top 20 rows ``bertfit audit`` flags in the unmodified SMS spam and CoLA training sets,
  written to docs/label-audit-examples.md for a reader to judge.

Every run is one line of bench/audit-runs.jsonl, so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.fewshot import done_runs, write_rows
from bench.harness import ROOT, SHARED_DATA, prepare_environment, publish

RUNS = ROOT / "bench" / "audit-runs.jsonl"
EXAMPLES = ROOT / "docs" / "label-audit-examples.md"
TEST_ROWS = 1000
SCALE_ROWS = 10_000
LIKELY_WRONG = "likely wrong label"
ARMS = ("clean", "noisy", "dropped", "relabelled")  # what is retrained on: the flagged rows dropped, or relabelled

Rows = list[tuple[str, str]]


# -- data -----------------------------------------------------------------------------------------
def train_and_test(name: str) -> tuple[Rows, Rows]:
    """(train, test) rows of a data set: 1,000 test rows set aside, shuffled with a fixed seed."""
    if name == "sms_spam":
        with open(SHARED_DATA / "sms_spam" / "SMSSpamCollection", encoding="utf-8") as handle:
            rows = [tuple(line.rstrip("\n").split("\t", 1)[::-1]) for line in handle if line.strip()]
    elif name == "ag_news":
        topics = (SHARED_DATA / "ag_news" / "classes.txt").read_text(encoding="utf-8").split()
        with open(SHARED_DATA / "ag_news" / "test.csv", encoding="utf-8", newline="") as handle:
            rows = [(f"{title} {body}".replace("\\", " "), topics[int(label) - 1])
                    for label, title, body in csv.reader(handle)]  # fmt: skip
    else:
        raise SystemExit(f"unknown data set {name!r}: sms_spam or ag_news")
    random.Random(0).shuffle(rows)
    return rows[TEST_ROWS:], rows[:TEST_ROWS]


def flip(rows: Rows, share: float, seed: int = 1) -> tuple[Rows, set[int]]:
    """``share`` of each class's rows given another class (chosen at random); the flipped rows' 1-based
    data row numbers."""
    rng = random.Random(seed)
    classes = sorted({label for _, label in rows})
    noisy, flipped = list(rows), set()
    for label in classes:
        members = [i for i, row in enumerate(rows) if row[1] == label]
        for i in rng.sample(members, round(share * len(members))):
            noisy[i] = (rows[i][0], rng.choice([c for c in classes if c != label]))
            flipped.add(i + 1)
    return noisy, flipped


# -- bertfit as a user runs it ----------------------------------------------------------------------
def bertfit(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bertfit", *args, "-q"], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"bertfit {args[0]} failed:\n{done.stderr[-3000:]}")
    return done, wall


def run_audit(train: Path, output: Path, *extra: str) -> tuple[list[dict], float]:
    _, wall = bertfit("audit", "--train", str(train), "--output", str(output), "--overwrite", *extra)
    with open(output, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle)), wall


def test_accuracy(train: Path, test: Path, work: Path) -> float:
    output = work / f"model-{train.stem}"
    bertfit("train", "--train", str(train), "--test", str(test), "--output", str(output), "--overwrite",
            "--no-progress", "--no-export-onnx")  # fmt: skip
    return json.loads((output / "metrics.json").read_text(encoding="utf-8"))["test"]["accuracy"]


# -- parts ------------------------------------------------------------------------------------------
def flags_and_retrain(name: str, noise: float, retrain: bool, work: Path, arms: tuple[str, ...] = ARMS) -> dict:
    train, test = train_and_test(name)
    noisy, flipped = flip(train, noise)
    files = {"noisy": write_rows(work / "noisy.csv", noisy), "test": write_rows(work / "test.csv", test)}
    issues, wall = run_audit(files["noisy"], work / "issues.csv")
    flagged = {int(r["row"]): r["suggested_label"] for r in issues if r["issue"] == LIKELY_WRONG}
    listed = {int(r["row"]) for r in issues}
    found = len(flipped & set(flagged))
    result = {"part": "flags", "dataset": name, "noise": noise, "rows": len(train), "flipped": len(flipped),
              "flagged": len(flagged), "precision": round(found / max(len(flagged), 1), 4),
              "recall": round(found / len(flipped), 4), "listed_any": len(listed),
              "recall_any": round(len(flipped & listed) / len(flipped), 4), "audit_s": round(wall, 1)}  # fmt: skip
    if retrain:
        dropped = [row for i, row in enumerate(noisy, 1) if i not in flagged]
        relabelled = [(text, flagged.get(i, label)) for i, (text, label) in enumerate(noisy, 1)]
        files |= {"clean": write_rows(work / "clean.csv", train), "dropped": write_rows(work / "dropped.csv", dropped),
                  "relabelled": write_rows(work / "relabelled.csv", relabelled)}  # fmt: skip
        scores = {arm: test_accuracy(files[arm], files["test"], work) for arm in arms}
        lost = scores["clean"] - scores["noisy"]
        result |= {"part": "retrain", **{f"test_{arm}": round(v, 4) for arm, v in scores.items()}}
        for arm in set(arms) & {"dropped", "relabelled"}:
            result[f"recovered_{arm}"] = round((scores[arm] - scores["noisy"]) / lost, 3) if lost > 0 else None
    return result


def scale(work: Path) -> dict:
    """``bertfit audit`` on 10,000 multi-label GoEmotions rows (labels joined by commas)."""
    names = (SHARED_DATA / "goemotions" / "emotions.txt").read_text(encoding="utf-8").split()
    with open(SHARED_DATA / "goemotions" / "train.tsv", encoding="utf-8") as handle:
        rows = [(text, ",".join(names[int(i)] for i in ids.split(",")))
                for text, ids, _ in (line.rstrip("\n").split("\t") for line in handle)][:SCALE_ROWS]  # fmt: skip
    train = write_rows(work / "goemotions.csv", rows)
    issues, wall = run_audit(train, work / "goemotions-issues.csv", "--task", "multi-label")
    return {
        "part": "scale",
        "dataset": "goemotions",
        "rows": len(rows),
        "listed": len(issues),
        "audit_s": round(wall, 1),
    }


def examples(work: Path) -> str:
    """The top 20 rows flagged in the unmodified SMS spam and CoLA training splits, as markdown."""
    parts = ["# What `bertfit audit` flags in two public training sets, as they are", "",
             "Written by `python -m bench.audit --parts examples`: the 20 rows of each training split (the ones "
             "`bertfit train --dataset NAME` trains on) that `bertfit audit --dataset NAME` ranks first, with the "
             "label the data set gives and the one the out-of-fold model suggests. Nothing was changed in the data: "
             "judge for yourself which labels are wrong.", ""]  # fmt: skip
    for name in ("sms_spam", "cola"):
        output = work / f"{name}-issues.csv"
        bertfit("audit", "--dataset", name, "--output", str(output), "--overwrite")
        with open(output, encoding="utf-8", newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r["issue"] == LIKELY_WRONG][:20]
        parts += [f"## {name}", "", "| row | text | given | suggested | label quality |", "|---|---|---|---|---|"]
        parts += [f"| {r['row']} | {_cell(r['text'])} | {r['given_label']} | {r['suggested_label']} | "
                  f"{float(r['quality']):.3f} |" for r in rows]  # fmt: skip
        parts.append("")
    return "\n".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# -- the benchmark ----------------------------------------------------------------------------------
def tables(runs: list[dict]) -> str:
    lines = [
        "| data set | rows | flipped | flagged | precision | recall | audit wall time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in runs if r["part"] in ("flags", "retrain")):
        lines.append(f"| {r['dataset']} ({100 * r['noise']:.0f}% flipped) | {r['rows']} | {r['flipped']} | "
                     f"{r['flagged']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['audit_s']:.0f} s |")  # fmt: skip
    retrained = [r for r in runs if r["part"] == "retrain"]
    if retrained:
        lines += ["", "| data set | test acc: clean | noisy | flagged dropped | flagged relabelled | lost accuracy "
                  "recovered (dropped / relabelled) |", "|---|---|---|---|---|---|"]  # fmt: skip
        for r in retrained:
            cells = [f"{r[f'test_{arm}']:.4f}" if f"test_{arm}" in r else "—" for arm in ARMS]
            recovered = " / ".join(str(r.get(f"recovered_{arm}", "—")) for arm in ("dropped", "relabelled"))
            lines.append(f"| {r['dataset']} | " + " | ".join(cells) + f" | {recovered} |")
    for r in (r for r in runs if r["part"] == "scale"):
        lines += ["", f"`bertfit audit` on {r['rows']:,} {r['dataset']} rows (multi-label): {r['audit_s']:.0f} s "
                  f"wall, {r['listed']} rows listed."]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="sms_spam,ag_news")
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--parts", default="flags,retrain,scale,examples")
    parser.add_argument("--arms", default=",".join(ARMS), help="what retrain trains on: " + ", ".join(ARMS))
    parser.add_argument("--runs", default=str(RUNS))
    parser.add_argument("--no-append", action="store_true", help="print the tables without adding them to RESULTS.md")
    args = parser.parse_args(argv)
    prepare_environment()
    parts = set(args.parts.split(","))
    runs_file = Path(args.runs)
    runs = done_runs(runs_file)
    with tempfile.TemporaryDirectory(prefix="audit-") as scratch:
        work = Path(scratch)
        todo = []
        if parts & {"flags", "retrain"}:
            part = "retrain" if "retrain" in parts else "flags"
            todo += [(part, name) for name in args.datasets.split(",")
                     if not any(r["part"] == part and r["dataset"] == name and r["noise"] == args.noise for r in runs)]  # fmt: skip
        if "scale" in parts and not any(r["part"] == "scale" for r in runs):
            todo.append(("scale", None))
        for part, name in todo:
            record = (scale(work) if part == "scale"
                      else flags_and_retrain(name, args.noise, part == "retrain", work, tuple(args.arms.split(","))))  # fmt: skip
            print(json.dumps(record), file=sys.stderr, flush=True)
            runs.append(record)
            with open(runs_file, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        if "examples" in parts:
            EXAMPLES.write_text(examples(work) + "\n", encoding="utf-8")
            print(f"wrote {EXAMPLES}", file=sys.stderr)
    summary = ("precision and recall of the rows `bertfit audit` calls likely wrong against labels flipped on purpose "
               "(default frozen recipe, 5 folds), its wall time, and test accuracy after retraining")  # fmt: skip
    publish("Label audit", "bench.audit", argv if argv is not None else sys.argv[1:], summary, tables(runs),
            append=not args.no_append)  # fmt: skip


if __name__ == "__main__":
    main()
