"""Scenario 3: prediction throughput and memory. bertfit (torch, ONNX, ONNX int8) vs
``transformers.pipeline("text-classification")`` with its defaults and with batch_size 32.

    python -m bench.predict [--model-dir runs/sms_spam] [--rows 100000]

Without ``--model-dir`` a frozen-encoder SMS spam model is trained first (about half a minute).
The pipeline loads the same encoder as ``AutoModelForSequenceClassification``; with bertfit's own
head absent there, only its speed is comparable, not its accuracy.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from bench import peers
from bench.harness import Timer, bf16_native, median_of, prepare_environment, publish, rss_mb, run_contender, table


def sms_test() -> tuple[list[str], list[str]]:
    from bertfit import DataConfig
    from bertfit.data.load import load_data

    split = load_data(DataConfig(dataset="sms_spam")).splits["test"]
    return split.texts, split.labels


def synthetic_file(path: Path, rows: int, seed: int = 0, labelled: bool = False) -> Path:
    """``rows`` SMS-like messages: words of real messages, reshuffled, so lengths match real traffic;
    ``labelled`` adds each message's label (spam words stay spam). Written row by row, never held."""
    import csv

    texts, labels = sms_test()
    words = [t.split() for t in texts]
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label"] if labelled else ["id", "text"])
        for i in range(rows):
            pick = rng.randrange(len(words))
            text = " ".join(rng.sample(words[pick], len(words[pick])))
            writer.writerow([i, text, labels[pick]] if labelled else [i, text])
    return path


def bertfit_predict(model_dir: str, backend: str, limit: int | None = None, precision: str | None = None) -> dict:
    from bertfit import Predictor

    texts, labels = sms_test()
    texts, labels = texts[:limit], labels[:limit]
    predictor = Predictor.load(model_dir, precision=precision, backend=backend)
    predictor.predict_proba(texts[:64])  # warm-up: first-call allocations are not throughput
    with Timer() as timer:
        probabilities = predictor.predict_proba(texts)
    predicted = [predictor.labels.names[i] for i in probabilities.argmax(1)]
    return {"wall_s": timer.seconds, "rows_per_s": len(texts) / timer.seconds,
            "accuracy": sum(p == g for p, g in zip(predicted, labels)) / len(labels)}  # fmt: skip


def bertfit_stream(model_dir: str, input_file: str, backend: str = "torch") -> dict:
    from bertfit import Predictor
    from bertfit.inference import predict_file

    predictor = Predictor.load(model_dir, backend=backend)
    resident = []  # RSS after each chunk: flat if memory does not grow with the rows read
    with tempfile.TemporaryDirectory() as scratch, Timer() as timer:
        rows = predict_file(
            predictor, input_file, Path(scratch) / "out.csv", progress=lambda _: resident.append(rss_mb())
        )
    return {"wall_s": timer.seconds, "rows": rows, "rows_per_s": rows / timer.seconds,
            "rss_first_chunk_mb": resident[0], "rss_last_chunk_mb": resident[-1]}  # fmt: skip


def pipeline_predict(model_dir: str, batch_size: int | None, limit: int | None = None) -> dict:
    import torch
    from transformers import pipeline

    texts, _ = sms_test()
    texts = texts[:limit]
    # A pooled bertfit folder runs through the modeling_bertfit.py it carries: the same model bertfit runs.
    classify = pipeline("text-classification", model=model_dir, device=torch.device("cpu"), trust_remote_code=True)
    options = {"batch_size": batch_size} if batch_size else {}
    classify(texts[:8], truncation=True, **options)  # warm-up
    with Timer() as timer:
        classify(texts, truncation=True, **options)
    return {"wall_s": timer.seconds, "rows_per_s": len(texts) / timer.seconds, "accuracy": "—"}


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The options of the benches that score a trained model: a folder, or the base model to train one."""
    parser.add_argument("--model-dir", help="a bertfit model folder (default: train a frozen SMS spam model)")
    parser.add_argument("--model", default=None, help="base model when training one (default: the packaged model)")


def model_folder(args: argparse.Namespace, scratch: Path) -> Path:
    """``--model-dir``, or a frozen-encoder SMS spam model trained into ``scratch`` (about half a minute)."""
    if args.model_dir:
        return Path(args.model_dir)
    return train_model(scratch / "model", args.model or peers.default_model())


def train_model(folder: Path, model: str) -> Path:
    from bertfit import DataConfig, TrainConfig
    from bertfit.training.run import train

    train(TrainConfig(data=DataConfig(dataset="sms_spam"), model=model, output=str(folder), freeze="all",
                      class_weights="balanced", progress=False, overwrite=True))  # fmt: skip
    return folder


COLUMNS = [("wall_s", "wall s", ".2f"), ("rows_per_s", "rows/s", ".0f"), ("peak_rss_mb", "peak RSS MB", ".0f"),
           ("accuracy", "accuracy", ".4f")]  # fmt: skip


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(parser)
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic rows for the streaming run")
    parser.add_argument("--limit", type=int, help="first N test texts only (smoke runs)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stream-only", action="store_true", help="only the streaming runs")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    prepare_environment()
    from bertfit.export import export_onnx, format_parity

    with tempfile.TemporaryDirectory() as scratch:
        folder = model_folder(args, Path(scratch))
        parity = export_onnx(folder, quantize="int8")
        print(format_parity(parity))
        contenders = {
            "bertfit torch": ("bench.predict:bertfit_predict", {"backend": "torch"}),  # fp32, the default
            **(
                {"bertfit torch bf16": ("bench.predict:bertfit_predict", {"backend": "torch", "precision": "bf16"})}
                if bf16_native()
                else {}
            ),
            "bertfit ONNX": ("bench.predict:bertfit_predict", {"backend": "onnx"}),
            "bertfit ONNX int8": ("bench.predict:bertfit_predict", {"backend": "onnx-int8"}),
            "pipeline (defaults)": ("bench.predict:pipeline_predict", {"batch_size": None}),
            "pipeline (batch_size 32)": ("bench.predict:pipeline_predict", {"batch_size": 32}),
        }
        rows = {}
        for name, (target, extra) in ({} if args.stream_only else contenders).items():
            rows[name] = median_of([run_contender(target, {"model_dir": str(folder), "limit": args.limit, **extra})
                                    for _ in range(args.runs)])  # fmt: skip
            print(f"{name}: {rows[name]['rows_per_s']:.0f} rows/s", flush=True)
        stream = {}
        for count in (args.rows // 10, args.rows):
            source = synthetic_file(Path(scratch) / f"rows{count}.csv", count)
            stream[count] = run_contender(
                "bench.predict:bertfit_stream", {"model_dir": str(folder), "input_file": str(source)}
            )
            print(
                f"stream {count}: {stream[count]['rows_per_s']:.0f} rows/s, peak RSS {stream[count]['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    texts_note = f"the SMS spam test split ({args.limit or 836} texts)"
    stream_lines = "\n".join(f"| {count} | {r['wall_s']:.1f} | {r['rows_per_s']:.0f} | {r['rss_first_chunk_mb']:.0f} | "
                             f"{r['rss_last_chunk_mb']:.0f} | {r['peak_rss_mb']:.0f} |" for count, r in stream.items())  # fmt: skip
    summary = ("streaming runs only" if args.stream_only else
               f"{texts_note}, medians of {args.runs} runs; speed-up = contender's time / bertfit torch's.")  # fmt: skip
    throughput = "" if args.stream_only else table(rows, COLUMNS, reference="bertfit torch") + "\n\n"
    body = (throughput + format_parity(parity) + "\n\n"
            "Streaming `predict_file` (CSV in, CSV out, torch backend) over synthetic rows, in chunks of 8192; "
            "RSS after the first and the last chunk, and the process's peak:\n\n"
            "| rows | wall s | rows/s | RSS first chunk MB | RSS last chunk MB | peak RSS MB |\n|---|---|---|---|---|---|\n"
            + stream_lines)  # fmt: skip
    return publish("Scenario 3: prediction", "bench.predict", argv, summary, body, not args.no_append)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
