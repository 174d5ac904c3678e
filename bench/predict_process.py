"""Prediction as a user runs it: a whole ``bertfit predict --input F --output O`` process (start-up, model
load, reading, tokenizing, scoring, writing) against a whole process that runs
``transformers.pipeline("text-classification")`` with its defaults over the same file and writes the
same columns. Each contender runs ``--runs`` times in turn; medians, and ratios within this one run.

    python -m bench.predict_process [--model-dir runs/sms_spam] [--rows 5000] [--runs 3]

Without ``--model-dir`` a frozen-encoder SMS spam model is trained first (about half a minute). Where the
folder holds an ONNX export, a copy of it gets both graphs and their parity check, so that each graph has
a row; ``auto`` there runs the int8 graph where its check held (what it does after ``bertfit export
--quantize int8``), and ``--backend onnx`` is what ``train``'s own export gives ``auto``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import ROOT, prepare_environment, publish, table
from bench.predict import add_model_options, model_folder, synthetic_file

# The peer, as its documentation shows it: the folder's own modeling file, truncation on, batch size 1.
PIPELINE_SCRIPT = """
import sys
import pandas as pd
import torch
from transformers import pipeline

frame = pd.read_csv(sys.argv[2], dtype=str, keep_default_na=False)
classify = pipeline("text-classification", model=sys.argv[1], device=torch.device("cpu"), trust_remote_code=True)
scored = classify(frame["text"].tolist(), truncation=True)
frame["predicted"] = [row["label"] for row in scored]
frame["score"] = [row["score"] for row in scored]
frame.to_csv(sys.argv[3], index=False)
"""


def contenders(model_dir: Path, source: Path, output: Path) -> dict[str, list[str]]:
    """The commands timed; the ONNX rows only where the folder holds the graph (without an export, auto
    runs the PyTorch model and one row says it)."""
    bertfit = [str(Path(sys.executable).with_name("bertfit")), "predict", str(model_dir), "--input", str(source),
               "--output", str(output), "--overwrite", "-q"]  # fmt: skip
    onnx = model_dir / "onnx"
    return {
        "bertfit predict --backend auto": bertfit,
        **(
            {"bertfit predict --backend onnx": [*bertfit, "--backend", "onnx"]}
            if (onnx / "model.onnx").is_file()
            else {}
        ),
        **({"bertfit predict --backend torch": [*bertfit, "--backend", "torch"]} if onnx.is_dir() else {}),
        "pipeline (defaults)": [sys.executable, "-c", PIPELINE_SCRIPT, str(model_dir), str(source), str(output)],
    }


def with_both_graphs(folder: Path, scratch: Path) -> Path:
    """A copy of ``folder`` holding the fp32 and int8 graphs and their parity check, so the fp32 graph
    gets a row too; ``auto`` picks from the same check as on the folder ``train`` wrote."""
    from bertfit.export import export_onnx

    copy = Path(shutil.copytree(folder, scratch / "both-graphs"))
    export_onnx(copy, quantize="int8")
    return copy


def timed(command: list[str]) -> dict:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=os.environ.copy())
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed:\n{done.stderr[-3000:]}")
    return {"wall_s": seconds}


def graph_run(name: str, parity: dict) -> str:
    from bertfit.folder import ONNX_FILES
    from bertfit.inference.backends import fastest_graph

    if name.endswith("auto"):
        chosen = fastest_graph(parity) if parity else None
        return ONNX_FILES[chosen] if chosen else "PyTorch fp32"
    return "model.onnx" if name.endswith("onnx") else "PyTorch fp32"


COLUMNS = [("wall_s", "wall s", ".2f"), ("rows_per_s", "rows/s", ".0f"), ("graph", "graph run", "")]


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(parser)
    parser.add_argument("--rows", type=int, default=5000, help="SMS-like rows in the input file")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    prepare_environment()
    with tempfile.TemporaryDirectory() as scratch:
        folder = model_folder(args, Path(scratch))
        if (folder / "onnx").is_dir():
            folder = with_both_graphs(folder, Path(scratch))
        source = synthetic_file(Path(scratch) / "input.csv", args.rows)
        commands = contenders(folder, source, Path(scratch) / "scored.csv")
        runs: dict[str, list[dict]] = {name: [] for name in commands}
        for _ in range(args.runs):  # interleaved, so a slow spell of the machine hits every contender
            for name, command in commands.items():
                runs[name].append(timed(command))
                print(f"{name}: {runs[name][-1]['wall_s']:.2f} s", file=sys.stderr, flush=True)
        parity = json.loads((folder / "onnx" / "parity.json").read_text()) if (folder / "onnx").is_dir() else {}
    rows = {}
    for name, results in runs.items():
        wall = statistics.median(r["wall_s"] for r in results)
        rows[name] = {"wall_s": wall, "rows_per_s": args.rows / wall, "graph": graph_run(name, parity)}
    summary = (f"{args.rows} SMS-like rows from a CSV file to a CSV file, whole processes, medians of {args.runs} "
               "interleaved runs; speed-up = the contender's time / bertfit's auto row.")  # fmt: skip
    body = table(rows, COLUMNS, reference="bertfit predict --backend auto")
    if parity:
        body += "\n\nThe folder's parity check (validation split): " + json.dumps(
            {k: v for k, v in parity.items() if k != "data"}
        )
    return publish("Prediction, whole processes", "bench.predict_process", argv, summary, body, not args.no_append)


if __name__ == "__main__":
    main(sys.argv[1:])
