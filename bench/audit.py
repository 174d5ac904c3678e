"""Label audit: does ``bertfit audit`` find labels known to be wrong, how fast, and does fixing them pay?

    python -m bench.audit [--datasets sms_spam,ag_news] [--noise 0.05] [--parts flags,retrain,scale,examples]
                          [--recipe frozen|full] [--epochs N] [--model NAME] [--seeds 42,43,44]
                          [--arms clean,noisy,dropped,relabelled] [--train-recipe auto|frozen|...] [--flip-seed 1]
                          [--rerun]

- flags: 1,000 rows of each data set are set aside as the test rows; of the rest, ``--noise`` of each
  class's labels are flipped to another class (seeded by ``--flip-seed``, so a finding can be checked on other
  flipped rows), and ``bertfit audit --train noisy.csv`` runs as a
  user runs it (5 folds; the default frozen recipe, or ``--recipe full`` with ``--epochs``). Precision and
  recall of the "likely wrong label" rows against the flipped ones, and the wall time.
- retrain: ``bertfit train`` (defaults, or ``--recipe`` from ``--train-recipe``; once per ``--seeds`` training
  seed) on the clean rows, the noisy rows, the noisy rows without the flagged ones, and the noisy rows with the
  flagged ones relabelled as suggested; test accuracy of each, and the share of the accuracy lost to the
  noise that comes back.
- scale: ``bertfit audit`` on 10,000 GoEmotions training rows (multi-label), wall time.
- examples: the top 20 rows ``bertfit audit`` flags in the unmodified SMS spam and CoLA training sets,
  written to docs/label-audit-examples.md for a reader to judge.
- unflipped (not in the default parts): the rows the audit flags in AG News with 5% flipped that were not
  flipped, by label pair, with precision and recall under label-quality cut-offs and 30 of them to read,
  written to docs/label-audit-ag-news.md.

Every run is one line of bench/audit-runs.jsonl, so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench.fewshot import add_runs_options, keep_run, runs_then_tables, write_rows
from bench.harness import ROOT, SHARED_DATA, publish
from bertfit.config import RECIPES
from bertfit.options import AUDIT_RECIPES, audit_epochs

RUNS = ROOT / "bench" / "audit-runs.jsonl"
EXAMPLES = ROOT / "docs" / "label-audit-examples.md"
UNFLIPPED = ROOT / "docs" / "label-audit-ag-news.md"
UNFLIPPED_SHOWN = 30
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


def test_accuracy(train: Path, test: Path, work: Path, seed: int, recipe: str = "auto") -> float:
    output = work / f"model-{train.stem}-{seed}"
    bertfit("train", "--train", str(train), "--test", str(test), "--output", str(output), "--overwrite",
            "--seed", str(seed), "--recipe", recipe, "--no-progress", "--no-export-onnx")  # fmt: skip
    return json.loads((output / "metrics.json").read_text(encoding="utf-8"))["test"]["accuracy"]


# -- parts ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Audited:
    """One audit of one noisy training set: the files, the flipped and the flagged rows, the flags record."""

    files: dict[str, Path]
    train: Rows
    noisy: Rows
    flipped: set[int]  # 1-based rows
    issues: list[dict]  # the audit's output rows
    flagged: dict[int, str]  # 1-based row -> suggested label
    record: dict


def flags(name: str, noise: float, work: Path, recipe: str = "frozen", epochs: int | None = None,
          model: str | None = None, flip_seed: int = 1) -> Audited:  # fmt: skip
    """``bertfit audit`` on ``name``'s training rows with ``noise`` of each class flipped (``epochs``: the full
    recipe's, resolved by the caller)."""
    train, test = train_and_test(name)
    noisy, flipped = flip(train, noise, flip_seed)
    files = {"noisy": write_rows(work / "noisy.csv", noisy), "test": write_rows(work / "test.csv", test)}
    extra = ["--recipe", recipe, *(["--epochs", str(epochs)] if epochs else []), *(["--model", model] if model else [])]
    issues, wall = run_audit(files["noisy"], work / "issues.csv", *extra)
    flagged = {int(r["row"]): r["suggested_label"] for r in issues if r["issue"] == LIKELY_WRONG}
    listed = {int(r["row"]) for r in issues}
    found = len(flipped & set(flagged))
    record = {"part": "flags", "dataset": name, "noise": noise, "recipe": recipe, "epochs": epochs, "model": model,
              "flip_seed": flip_seed, "rows": len(train),
              "flipped": len(flipped), "flagged": len(flagged), "precision": round(found / max(len(flagged), 1), 4),
              "recall": round(found / len(flipped), 4), "listed_any": len(listed),
              "recall_any": round(len(flipped & listed) / len(flipped), 4), "audit_s": round(wall, 1)}  # fmt: skip
    return Audited(files, train, noisy, flipped, issues, flagged, record)


def retrain(audited: Audited, seed: int, arms: tuple[str, ...], work: Path, recipe: str = "auto") -> dict:
    """Test accuracy after ``bertfit train --seed SEED --recipe RECIPE`` on each arm, and the share of the lost
    accuracy that dropping or relabelling the flagged rows wins back."""
    flagged, noisy = audited.flagged, audited.noisy
    dropped = [row for i, row in enumerate(noisy, 1) if i not in flagged]
    relabelled = [(text, flagged.get(i, label)) for i, (text, label) in enumerate(noisy, 1)]
    files = audited.files | {"clean": write_rows(work / "clean.csv", audited.train),
                             "dropped": write_rows(work / "dropped.csv", dropped),
                             "relabelled": write_rows(work / "relabelled.csv", relabelled)}  # fmt: skip
    scores = {arm: test_accuracy(files[arm], files["test"], work, seed, recipe) for arm in arms}
    result = audited.record | {
        "part": "retrain",
        "seed": seed,
        "train_recipe": recipe,
        **{f"test_{arm}": round(v, 4) for arm, v in scores.items()},
    }
    if {"clean", "noisy"} <= set(scores):
        lost = scores["clean"] - scores["noisy"]
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


def unflipped(work: Path) -> str:
    """What the default audit flags in AG News beyond the flipped rows, as markdown: which label pairs, how
    precision and recall move with a label-quality cut-off, and 30 of those rows drawn at random to read."""
    audited = flags("ag_news", 0.05, work)
    flipped = audited.flipped
    flagged = [r for r in audited.issues if r["issue"] == LIKELY_WRONG]
    extra = [r for r in flagged if int(r["row"]) not in flipped]
    pairs = defaultdict(int)
    for r in extra:
        pairs[(r["given_label"], r["suggested_label"])] += 1
    parts = ["# AG News: the rows `bertfit audit` flags that were not flipped", "",
             f"Written by `python -m bench.audit --parts unflipped`: AG News with 5% of each class's labels flipped "
             f"(as in [results](results.md#label-audit)), audited with the defaults. It flags {len(flagged)} rows; "
             f"{len(flagged) - len(extra)} of them were flipped, {len(extra)} were not, and those keep the label the "
             "public data set gives. Given label → the audit's suggestion, for those rows:", "",
             "| given | suggested | rows |", "|---|---|---|"]  # fmt: skip
    parts += [f"| {given} | {suggested} | {count} |" for (given, suggested), count in
              sorted(pairs.items(), key=lambda kv: -kv[1])]  # fmt: skip
    parts += ["", "Only the flagged rows under a label-quality cut-off (the out-of-fold probability of the given label):",
              "", "| quality under | rows | precision | recall |", "|---|---|---|---|"]  # fmt: skip
    for cut in (0.01, 0.02, 0.05, 0.1, 0.2, 1.0):
        kept = [r for r in flagged if float(r["quality"]) < cut]
        hits = sum(int(r["row"]) in flipped for r in kept)
        parts.append(f"| {cut:g} | {len(kept)} | {hits / max(len(kept), 1):.3f} | {hits / len(flipped):.3f} |")
    random.Random(0).shuffle(extra)
    parts += ["", f"{UNFLIPPED_SHOWN} of the {len(extra)} drawn at random (seeded); judge for yourself which given "
              "labels are wrong:", "", "| row | text | given | suggested | label quality |", "|---|---|---|---|---|"]  # fmt: skip
    parts += [f"| {r['row']} | {_cell(r['text'])} | {r['given_label']} | {r['suggested_label']} | "
              f"{float(r['quality']):.3f} |" for r in extra[:UNFLIPPED_SHOWN]]  # fmt: skip
    return "\n".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# -- the benchmark ----------------------------------------------------------------------------------
def recipe_of(record: dict) -> str:
    """The audit recipe a record measured (records written before ``--recipe`` existed are frozen ones)."""
    recipe = record.get("recipe", "frozen")
    recipe += f", {record['epochs']} epochs" if record.get("epochs") else ""
    return recipe + (f", {record['model']}" if record.get("model") else "")


def flags_key(record: dict) -> tuple:
    return record["dataset"], record["noise"], recipe_of(record), record.get("flip_seed", 1)  # 1: before the option


def noisy_set(record: dict) -> str:
    """The data set and its flips, as the flags table names them."""
    return f"{record['dataset']} ({100 * record['noise']:.0f}% flipped{flip_seed_note(record.get('flip_seed', 1))})"


def flip_seed_note(seed: int) -> str:
    """The flips' seed as the tables name it: only where it is not the first one (1, the seed before the option)."""
    return "" if seed == 1 else f", flip seed {seed}"


def retrain_key(record: dict) -> tuple:
    return *trained_key(record), record.get("seed", 42)  # 42: bertfit's default seed, before --seeds existed


def trained_key(record: dict) -> tuple:
    """The audit a retrain's flags came from and the recipe it retrained with (auto: before the option)."""
    return *flags_key(record), record.get("train_recipe", "auto")


def latest(runs: list[dict], key) -> dict[tuple, dict]:
    """The last record per key: a re-run replaces the one before it."""
    return {key(r): r for r in runs}


def tables(runs: list[dict]) -> str:
    lines = ["| data set | audit recipe | rows | flipped | flagged | precision | recall | audit wall time |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in latest([r for r in runs if r["part"] in ("flags", "retrain")], flags_key).values():
        lines.append(f"| {noisy_set(r)} | {recipe_of(r)} | {r['rows']} | "
                     f"{r['flipped']} | {r['flagged']} | {r['precision']:.3f} | {r['recall']:.3f} | "
                     f"{r['audit_s']:.0f} s |")  # fmt: skip
    retrained = defaultdict(list)
    for r in latest([r for r in runs if r["part"] == "retrain"], retrain_key).values():
        retrained[trained_key(r)].append(r)
    if retrained:
        lines += ["", "| data set (flags from; retrained with) | seeds | test acc: clean | noisy | flagged dropped | flagged relabelled "
                  "| lost accuracy recovered (dropped / relabelled) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for (name, _, recipe, flip_seed, train_recipe), group in retrained.items():
            means = {arm: _mean(group, f"test_{arm}") for arm in ARMS}
            cells = [_mean_std(group, f"test_{arm}") for arm in ARMS]
            seeds = ", ".join(str(r.get("seed", 42)) for r in group)
            lines.append(f"| {name} ({recipe}; {train_recipe}{flip_seed_note(flip_seed)}) | {seeds} | " + " | ".join(cells)
                         + f" | {_recovered(means)} |")  # fmt: skip
    for r in (r for r in runs if r["part"] == "scale"):
        lines += ["", f"`bertfit audit` on {r['rows']:,} {r['dataset']} rows (multi-label): {r['audit_s']:.0f} s "
                  f"wall, {r['listed']} rows listed."]  # fmt: skip
    return "\n".join(lines)


def _mean(group: list[dict], name: str) -> float | None:
    values = [r[name] for r in group if name in r]
    return statistics.mean(values) if len(values) == len(group) else None


def _mean_std(group: list[dict], name: str) -> str:
    mean = _mean(group, name)
    if mean is None:
        return "—"
    spread = statistics.stdev(r[name] for r in group) if len(group) > 1 else 0.0
    return f"{mean:.4f}" + (f" ± {spread:.4f}" if len(group) > 1 else "")


def _recovered(means: dict[str, float | None]) -> str:
    """The share of the accuracy the noise cost (mean over seeds) that dropping / relabelling wins back."""
    if means["clean"] is None or means["noisy"] is None:
        return "—"
    lost = means["clean"] - means["noisy"]
    if lost <= 0:
        return "— (the noise cost nothing)"
    return " / ".join("—" if means[arm] is None else f"{(means[arm] - means['noisy']) / lost:.2f}"
                      for arm in ("dropped", "relabelled"))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="sms_spam,ag_news")
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--parts", default="flags,retrain,scale,examples")
    parser.add_argument("--recipe", default="frozen", choices=AUDIT_RECIPES, help="the audit's recipe")
    parser.add_argument(
        "--epochs", type=int, default=None, help="--recipe full: training epochs per fold (default: audit's)"
    )
    parser.add_argument("--model", default=None, help="the audit's encoder (default: bertfit's default)")
    parser.add_argument("--seeds", default="42", help="retrain: bertfit train's --seed, one training per seed and arm")
    parser.add_argument("--arms", default=",".join(ARMS), help="what retrain trains on: " + ", ".join(ARMS))
    parser.add_argument("--train-recipe", default="auto", choices=RECIPES, help="retrain: bertfit train's --recipe")
    parser.add_argument("--flip-seed", type=int, default=1, help="the seed that picks the flipped rows and labels")
    parser.add_argument("--rerun", action="store_true",
                        help="run again what the runs file has (after a change to bertfit); the tables show the latest")  # fmt: skip
    add_runs_options(parser, RUNS.name)
    args = parser.parse_args(argv)
    runs = runs_then_tables(args, lambda runs, runs_file: run_parts(args, runs, runs_file))
    summary = ("precision and recall of the rows `bertfit audit` calls likely wrong against labels flipped on purpose "
               "(5 folds), its wall time, and test accuracy after retraining, mean ± std over training seeds")  # fmt: skip
    publish("Label audit", "bench.audit", argv if argv is not None else sys.argv[1:], summary, tables(runs),
            append=not args.no_append)  # fmt: skip


def run_parts(args: argparse.Namespace, runs: list[dict], runs_file: Path) -> None:
    parts, arms = set(args.parts.split(",")), tuple(args.arms.split(","))
    seeds = [int(seed) for seed in args.seeds.split(",")]
    epochs = audit_epochs(args.recipe, args.epochs)
    probe = {"noise": args.noise, "recipe": args.recipe, "epochs": epochs, "model": args.model,
             "train_recipe": args.train_recipe, "flip_seed": args.flip_seed}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="audit-") as scratch:
        work = Path(scratch)
        for name in args.datasets.split(",") if parts & {"flags", "retrain"} else []:
            earlier = [] if args.rerun else runs
            have_flags = set(latest([r for r in earlier if r["part"] in ("flags", "retrain")], flags_key))
            have_arms = {key: set(ARMS) & {k[5:] for k in r if k.startswith("test_")}
                         for key, r in latest([r for r in earlier if r["part"] == "retrain"], retrain_key).items()}  # fmt: skip
            needs_flags = "flags" in parts and flags_key({"dataset": name, **probe}) not in have_flags
            todo = [seed for seed in seeds if "retrain" in parts
                    and not set(arms) <= have_arms.get(retrain_key({"dataset": name, "seed": seed, **probe}), set())]  # fmt: skip
            if not (needs_flags or todo):
                continue
            audited = flags(name, args.noise, work, args.recipe, epochs, args.model, args.flip_seed)
            if needs_flags:
                keep_run(audited.record, runs, runs_file)
            for seed in todo:
                keep_run(retrain(audited, seed, arms, work, args.train_recipe), runs, runs_file)
        if "scale" in parts and not any(r["part"] == "scale" for r in runs):
            keep_run(scale(work), runs, runs_file)
        if "examples" in parts:
            EXAMPLES.write_text(examples(work) + "\n", encoding="utf-8")
            print(f"wrote {EXAMPLES}", file=sys.stderr)
        if "unflipped" in parts:
            UNFLIPPED.write_text(unflipped(work) + "\n", encoding="utf-8")
            print(f"wrote {UNFLIPPED}", file=sys.stderr)


if __name__ == "__main__":
    main()
