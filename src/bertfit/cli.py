"""The command line: parses arguments, calls the library, renders results. No logic of its own.

Every option of ``train`` comes from the fields of ``TrainConfig``/``DataConfig``, so the
CLI and the Python API always agree.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from bertfit.config import DataConfig, TrainConfig, load_config_file
from bertfit.errors import BertfitError, ConfigError

log = logging.getLogger("bertfit")

# Kept here (not imported from bertfit.inference) so `bertfit --help` does not load torch.
BACKENDS = ("torch", "onnx", "onnx-int8")
BACKEND_HELP = "torch (the saved model) or an ONNX export: onnx, onnx-int8 (see `bertfit export`)"


# -- argument parsing -----------------------------------------------------------------------
def _add_dataclass_options(parser: argparse.ArgumentParser, kind: type, title: str) -> None:
    group = parser.add_argument_group(title)
    for item in dataclasses.fields(kind):
        if item.name == "data":
            continue
        flag = "--" + item.name.replace("_", "-")
        help_text = item.metadata.get("help", "")
        if item.type in (bool, "bool"):
            group.add_argument(flag, dest=item.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)  # fmt: skip
            continue
        convert = {"int | None": int, "int": int, "float | None": float, "float": float}.get(str(item.type), str)
        default = item.default if item.default is not dataclasses.MISSING else None
        group.add_argument(flag, dest=item.name, type=convert, default=argparse.SUPPRESS,
                           choices=item.metadata.get("choices"),
                           help=f"{help_text} (default: {default})" if default is not None else help_text)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bertfit", description="Fine-tune BERT-family encoders for text classification, evaluate, predict."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="print only results, warnings and errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", parents=[common], help="fine-tune, evaluate and save a model folder")
    train.add_argument("--config", help="TOML or JSON file of options ([data] table for data options); flags override it")
    train.add_argument("--resume", metavar="OUTPUT_DIR", help="continue a killed run (trained with --save-every) from its "
                       "newest checkpoint, with the options it was started with")  # fmt: skip
    _add_dataclass_options(train, DataConfig, "data")
    _add_dataclass_options(train, TrainConfig, "training")

    evaluate = commands.add_parser("evaluate", parents=[common], help="score a saved model on a labelled file")
    evaluate.add_argument("model_dir")
    evaluate.add_argument("--data", required=True, help="labelled file (CSV, TSV, JSONL or Parquet)")
    evaluate.add_argument("--text-column")
    evaluate.add_argument("--label-column")
    evaluate.add_argument("--text-pair-column", help="second-text column, for models trained on pairs")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument("--backend", default="torch", choices=BACKENDS, help=BACKEND_HELP)
    evaluate.add_argument("--arrow", action="store_true",
                          help="read --data through memory-mapped Arrow and score it in pieces (files larger than memory)")  # fmt: skip

    predict = commands.add_parser("predict", parents=[common], help="predict labels for texts or a file")
    predict.add_argument("model_dir")
    predict.add_argument("--text", action="append", help="a text to classify (repeatable)")
    predict.add_argument("--text-pair", action="append", help="the second text of each --text, for pair models")
    predict.add_argument("--input", help="file of texts (CSV, TSV, JSONL or Parquet), or a folder or glob of such "
                         "shards")  # fmt: skip
    predict.add_argument("--output", help="where to write the input's rows plus predictions (a folder for shards)")
    predict.add_argument("--engine", default="local", choices=["local", "ray"], help="local (this process) or ray "
                         "(Ray Data: an actor pool on the cluster at RAY_ADDRESS, or a local one) (default: local)")  # fmt: skip
    predict.add_argument("--workers", type=int, default=2, help="Ray actors, each holding the model (default: 2)")
    predict.add_argument("--text-column", help="text column of --input (inferred when unambiguous)")
    predict.add_argument("--text-pair-column", help="second-text column of --input, for pair models")
    predict.add_argument("--json", action="store_true", help="print predictions as JSON lines")
    predict.add_argument("--backend", default="torch", choices=BACKENDS, help=BACKEND_HELP)

    export = commands.add_parser("export", parents=[common], help="export a model folder to ONNX, with a parity check")
    export.add_argument("model_dir")
    export.add_argument("--onnx", action="store_true", required=True, help="write onnx/model.onnx (the only format so far)")
    export.add_argument("--quantize", choices=["int8"], help="also write onnx/model.int8.onnx (dynamic int8)")
    export.add_argument("--data", help="labelled file for the parity check (default: the model's validation split)")
    export.add_argument("--text-column")
    export.add_argument("--label-column")
    export.add_argument("--text-pair-column")

    embed = commands.add_parser("embed", parents=[common], help="write the fine-tuned sentence vectors of a file's texts")
    embed.add_argument("model_dir")
    embed.add_argument("--input", required=True, help="file of texts (CSV, TSV, JSONL or Parquet)")
    embed.add_argument("--output", required=True, help=".npy (a rows x dims matrix), or .parquet/.jsonl (the input's "
                       "columns plus an embedding column)")  # fmt: skip
    embed.add_argument("--text-column", help="text column of --input (inferred when unambiguous)")

    tune = commands.add_parser("tune", parents=[common], help="search learning rate, epochs, batch size and warmup "
                               "with Optuna on the validation split")  # fmt: skip
    tune.add_argument("--config", help="TOML or JSON file of options; flags override it")
    tune.add_argument("--trials", type=int, default=10, help="trials to run (default: 10)")
    tune.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    _add_dataclass_options(tune, DataConfig, "data")
    _add_dataclass_options(tune, TrainConfig, "training (fixed unless searched)")

    serve = commands.add_parser("serve", parents=[common], help="serve a model folder over HTTP, with a page to try it")
    serve.add_argument("model_dir")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument("--backend", default="torch", choices=BACKENDS, help=BACKEND_HELP)
    serve.add_argument("--max-texts", type=int, default=256, help="texts per request (default: 256)")
    serve.add_argument("--max-chars", type=int, default=20_000, help="characters per text (default: 20000)")
    serve.add_argument("--max-batch", type=int, default=64, help="texts per model call when requests are "
                       "micro-batched; 1 answers one request at a time (default: 64)")  # fmt: skip
    serve.add_argument("--max-wait-ms", type=float, default=0.0, help="how long a request waits for others to "
                       "share its model call; 0 still batches what queued during the previous call (default: 0)")  # fmt: skip
    serve.add_argument("--max-queue", type=int, default=2048, help="texts waiting beyond which requests get 503 "
                       "(default: 2048)")  # fmt: skip

    report = commands.add_parser("report", parents=[common], help="write report.html: data, training curves, errors")
    report.add_argument("model_dir")
    report.add_argument("--output", help="where to write it (default: MODEL_DIR/report.html)")

    commands.add_parser("datasets", parents=[common], help="list the registry's data sets and where their files are looked up")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values: dict[str, Any] = load_config_file(args.config) if getattr(args, "config", None) else {}
    data_values = dict(values.pop("data", {}) or {})
    data_names = {f.name for f in dataclasses.fields(DataConfig)}
    for name, value in vars(args).items():
        if name in ("command", "config", "quiet", "trials", "timeout", "resume"):
            continue
        (data_values if name in data_names else values)[name] = value
    values["data"] = data_values
    return TrainConfig.from_dict(values)


# -- rendering --------------------------------------------------------------------------------
class ProgressBar:
    """Renders training steps with tqdm: elapsed time, rate and the running loss."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def on_train_begin(self, total_steps: int, done: int = 0) -> None:
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=done, desc="training", unit="step", dynamic_ncols=True,
                            leave=False)  # fmt: skip

    def on_step(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def on_train_end(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def on_epoch_end(self, record, key: str) -> None: ...


class RowCounter:
    """Counts rows predicted from a file (a bar without a total: the file is streamed)."""

    def __init__(self, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(desc="predicting", unit=" rows", unit_scale=True, leave=False)

    def update_to(self, rows: int) -> None:
        if self.bar is not None:
            self.bar.update(rows - self.bar.n)

    def __enter__(self) -> RowCounter:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


class _BarSafeHandler(logging.StreamHandler):
    """Writes log lines above an active progress bar instead of onto it."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging must never raise
            self.handleError(record)


def _setup_logging(quiet: bool) -> None:
    handler = _BarSafeHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s" if quiet else "%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    try:  # the model-loading report and its progress bar are noise for bertfit's users
        import huggingface_hub
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        huggingface_hub.utils.disable_progress_bars()
    except ImportError:
        pass


# -- commands ----------------------------------------------------------------------------------
def run_train(args: argparse.Namespace) -> int:
    from bertfit.evaluation import format_metrics
    from bertfit.training import distributed
    from bertfit.training.repeats import format_summary
    from bertfit.training.run import resume, train

    if args.resume:
        _refuse_options_with_resume(args)
        result = resume(args.resume, ProgressBar(not args.quiet and sys.stderr.isatty()))
    else:
        config = config_from_args(args)
        result = train(config, ProgressBar(config.progress and not args.quiet and sys.stderr.isatty()))
    if not distributed.from_environment().is_main:
        return 0  # under torchrun, rank 0 prints the (gathered, identical) results
    for name, metrics in result.metrics.items():
        print(format_metrics(metrics, name))
    if result.summary:
        print(f"over {len(result.summary['runs'])} runs ({result.summary['by']}s), mean ± std:")
        print(format_summary(result.summary))
        print(f"kept {result.summary['kept']}")
    print(f"saved {result.output_dir} (kept epoch {result.best_epoch} of {len(result.history)})")
    return 0


def _refuse_options_with_resume(args: argparse.Namespace) -> None:
    given = sorted(name for name in vars(args) if name not in ("command", "config", "quiet", "resume"))
    given += ["config"] if args.config else []
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ConfigError(f"--resume continues the run with the options it was started with; drop {flags}")


def run_evaluate(args: argparse.Namespace) -> int:
    from bertfit.evaluation import evaluate_file, format_metrics

    metrics = evaluate_file(args.model_dir, args.data, args.text_column, args.label_column, args.backend,
                            args.text_pair_column, args.arrow)  # fmt: skip
    print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics, args.data))
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from bertfit.inference import Predictor, predict_file
    from bertfit.inference.shards import is_sharded

    if bool(args.text) == bool(args.input):
        raise ConfigError("give --text (one or more) or --input FILE --output FILE")
    if args.input and not args.output:
        raise ConfigError("--input needs --output FILE for the predictions")
    if args.text_pair and len(args.text_pair) != len(args.text or []):
        raise ConfigError("give one --text-pair per --text")
    if args.engine == "ray" or (args.input and is_sharded(args.input)):
        return _predict_shards(args)
    predictor = Predictor.load(args.model_dir, backend=args.backend)
    if _needs_pairs(args.model_dir) and not (args.text_pair or args.text_pair_column):
        raise ConfigError(f"{args.model_dir} was trained on text pairs: give --text-pair (or --text-pair-column)")
    if args.input:
        with RowCounter(not args.quiet and sys.stderr.isatty()) as counter:
            count = predict_file(predictor, args.input, args.output, args.text_column, progress=counter.update_to,
                                 pair_column=args.text_pair_column)  # fmt: skip
        print(f"wrote {count} predictions to {args.output}")
        return 0
    for text, prediction in zip(args.text, predictor.predict(args.text, args.text_pair)):
        if args.json:
            print(json.dumps({"text": text, **prediction.to_dict()}, ensure_ascii=False))
        elif prediction.value is not None:
            print(f"{prediction.value:.4f}\t{text}")
        else:
            print(f"{prediction.label}\t{prediction.probability:.4f}\t{text}")
    return 0


def _predict_shards(args: argparse.Namespace) -> int:
    """A folder or glob of files in, a folder of scored files out; here or on Ray."""
    from pathlib import Path

    from bertfit.inference import Predictor
    from bertfit.inference.shards import input_shards, predict_shards_local, predict_shards_ray

    if not args.input:
        raise ConfigError("--engine ray predicts files: give --input FILES --output FOLDER")
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    files, output = input_shards(args.input), Path(args.output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ConfigError(f"{output}: the output folder must be new or empty")
    if args.engine == "ray":
        rows = predict_shards_ray(args.model_dir, files, output, args.backend, args.text_column, args.text_pair_column,
                                  args.workers)  # fmt: skip
    else:
        predictor = Predictor.load(args.model_dir, backend=args.backend)
        with RowCounter(not args.quiet and sys.stderr.isatty()) as counter:
            rows = predict_shards_local(predictor, files, output, args.text_column, args.text_pair_column,
                                        counter.update_to)  # fmt: skip
    print(f"wrote {rows} predictions from {len(files)} files to {output}/")
    return 0


def _needs_pairs(model_dir: str) -> bool:
    from pathlib import Path

    from bertfit.inference import read_manifest

    return bool(read_manifest(Path(model_dir)).get("text_pairs"))


def run_export(args: argparse.Namespace) -> int:
    from bertfit.export import export_onnx, format_parity

    report = export_onnx(args.model_dir, args.quantize, args.data, args.text_column, args.label_column,
                         args.text_pair_column)  # fmt: skip
    print(format_parity(report))
    print(f"saved {args.model_dir}/onnx (parity.json holds these numbers)")
    return 0


def run_embed(args: argparse.Namespace) -> int:
    from bertfit.inference.embed import embed_file

    with RowCounter(not args.quiet and sys.stderr.isatty()) as counter:
        rows, dims = embed_file(args.model_dir, args.input, args.output, args.text_column, progress=counter.update_to)
    print(f"wrote {rows} vectors of {dims} dimensions to {args.output}")
    return 0


def run_tune(args: argparse.Namespace) -> int:
    from bertfit.training.tune import format_tune, tune

    if args.trials < 1:
        raise ConfigError("--trials must be at least 1")
    config = config_from_args(args)
    if config.output is None:
        config.output = str(config.output_dir.with_name(config.output_dir.name + "-tune"))
    result = tune(config, args.trials, args.timeout, ProgressBar(config.progress and not args.quiet and sys.stderr.isatty()))
    print(format_tune(result))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from bertfit.serving.app import ServeLimits, create_app, require_fastapi
    from bertfit.serving.batching import BatchLimits

    _, uvicorn = require_fastapi()
    if min(args.max_texts, args.max_chars, args.max_batch, args.max_queue) < 1 or args.max_wait_ms < 0:
        raise ConfigError("--max-texts, --max-chars, --max-batch and --max-queue must be at least 1; --max-wait-ms 0 or more")
    batching = BatchLimits(args.max_batch, args.max_wait_ms, args.max_queue)
    app = create_app(args.model_dir, args.backend, ServeLimits(args.max_texts, args.max_chars), batching)
    log.info("serving %s on http://%s:%d (page at /, API docs at /docs)", args.model_dir, args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from bertfit.evaluation.report import write_report

    print(f"wrote {write_report(args.model_dir, args.output)}")
    return 0


def run_datasets(args: argparse.Namespace) -> int:
    from bertfit.data.registry import DATASETS, data_dir

    for spec in DATASETS.values():
        files = ", ".join(f.name for f in spec.files.values())
        print(f"{spec.name}\t{spec.description}\n\tfiles: {data_dir() / spec.name} ({files})")
    return 0


COMMANDS = {
    "train": run_train,
    "evaluate": run_evaluate,
    "predict": run_predict,
    "export": run_export,
    "embed": run_embed,
    "tune": run_tune,
    "serve": run_serve,
    "report": run_report,
    "datasets": run_datasets,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.quiet)
    try:
        return COMMANDS[args.command](args)
    except BertfitError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
