"""Distributed batch prediction: Ray Data with 1 and 2 actors vs the local engine, over the same
folder of synthetic SMS-like Parquet shards.

    python -m bench.ray_predict [--model-dir runs/sms_spam] [--rows 20000] [--shards 8]

Ray starts locally with as many CPUs as the machine has; each run is timed from submitting the
job to the last shard written (actor start-up and model loading included, as a user would see).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

from bench.harness import Timer, prepare_environment, publish
from bench.predict import add_model_options, model_folder, synthetic_file


def write_shards(folder: Path, rows: int, shards: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    table = pd.read_csv(synthetic_file(folder / "all.csv", rows))
    (folder / "all.csv").unlink()
    paths = []
    for index in range(shards):
        path = folder / f"part-{index:03d}.parquet"
        table.iloc[index::shards].to_parquet(path, index=False)
        paths.append(path)
    return paths


def run_local(model_dir: str, files: list[Path], output: Path) -> dict:
    from bertfit import Predictor
    from bertfit.inference.shards import predict_shards_local

    with Timer() as timer:
        rows = predict_shards_local(Predictor.load(model_dir), files, output, text_column="text")
    return {"wall_s": timer.seconds, "rows": rows, "rows_per_s": rows / timer.seconds}


def run_ray(model_dir: str, files: list[Path], output: Path, workers: int) -> dict:
    from bertfit.inference.shards import predict_shards_ray

    with Timer() as timer:
        rows = predict_shards_ray(model_dir, files, output, text_column="text", workers=workers)
    return {"wall_s": timer.seconds, "rows": rows, "rows_per_s": rows / timer.seconds}


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(parser)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--actors", default="1,2", help="the Ray Data runs: actors per run, comma-separated")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    prepare_environment()
    import ray

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        folder = str(model_folder(args, scratch))
        files = write_shards(scratch / "in", args.rows, args.shards)
        rows = {"local engine (this process)": run_local(folder, files, scratch / "local")}
        ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
        try:
            for workers in (int(n) for n in args.actors.split(",")):
                rows[f"Ray Data, {workers} actor{'s' if workers > 1 else ''}"] = run_ray(
                    folder, files, scratch / f"ray{workers}", workers
                )
        finally:
            ray.shutdown()
    for name, row in rows.items():
        print(f"{name}: {row['rows_per_s']:.0f} rows/s", flush=True)
    return publish("Distributed prediction with Ray Data", "bench.ray_predict", argv, _summary(args), _body(rows),
                   not args.no_append)  # fmt: skip


def _summary(args) -> str:
    return (f"{args.rows} synthetic SMS-like rows in {args.shards} Parquet shards, torch backend, "
            f"{os.cpu_count()} cores; wall time includes Ray actors starting and loading the model.")  # fmt: skip


def _body(rows: dict[str, dict]) -> str:
    """The runs against the first Ray run (1 actor, by default)."""
    reference = next(name for name in rows if name.startswith("Ray Data"))
    one = rows[reference]["rows_per_s"]
    lines = [
        f"| engine | rows | wall s | rows/s | vs {reference.removeprefix('Ray Data, ')} |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['rows']} | {r['wall_s']:.1f} | {r['rows_per_s']:.0f} | {r['rows_per_s'] / one:.2f}× |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
