"""The command line: parses arguments, calls the library, renders results. No logic of its own.

Every option of ``train`` comes from the fields of ``TrainConfig``/``DataConfig``, so the
CLI and the Python API always agree.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bertfit.config import DataConfig, TrainConfig, load_config_file
from bertfit.errors import BertfitError, ConfigError
from bertfit.folder import LABEL_ISSUES_FILE, MANIFEST
from bertfit.options import (
    AuditOptions,
    EmbedOptions,
    EvaluateOptions,
    ExplainOptions,
    ExportOptions,
    PredictOptions,
    ReportOptions,
    SearchOptions,
    ServeOptions,
    SuggestOptions,
)

log = logging.getLogger("bertfit")


# -- argument parsing -----------------------------------------------------------------------
def _add_dataclass_options(parser: argparse.ArgumentParser, kind: type, title: str | None = None) -> None:
    """One argument per field of ``kind``; a flag left out keeps the field's default (argparse
    suppresses it), so a config file's values are not overridden by defaults."""
    group = parser.add_argument_group(title) if title else parser
    for item in dataclasses.fields(kind):
        if kind is TrainConfig and item.name == "data":  # DataConfig's fields are added as their own group
            continue
        meta = item.metadata
        help_text = meta.get("help", "")
        if meta.get("positional"):
            group.add_argument(item.name, help=help_text)
            continue
        flag = "--" + item.name.replace("_", "-")
        required = meta.get("required", False)
        if item.type in (bool, "bool"):
            group.add_argument(flag, dest=item.name, action=argparse.BooleanOptionalAction, required=required,
                               default=argparse.SUPPRESS, help=help_text)  # fmt: skip
            continue
        if meta.get("nargs"):
            group.add_argument(flag, dest=item.name, nargs=meta["nargs"], choices=meta.get("choices"),
                               default=argparse.SUPPRESS, help=help_text)  # fmt: skip
            continue
        if meta.get("action") == "append":
            group.add_argument(flag, dest=item.name, action="append", default=argparse.SUPPRESS, help=help_text)
            continue
        convert = {"int | None": int, "int": int, "float | None": float, "float": float}.get(str(item.type), str)
        default = item.default if item.default is not dataclasses.MISSING else None
        shown = f"{help_text} (default: {default})" if default is not None and not required else help_text
        group.add_argument(flag, dest=item.name, type=convert, default=argparse.SUPPRESS, required=required,
                           choices=meta.get("choices"), help=shown)  # fmt: skip


def options_from_args(kind: type, args: argparse.Namespace):
    """The ``kind`` dataclass from the parsed arguments that are its fields, checked."""
    names = {f.name for f in dataclasses.fields(kind)}
    return kind(**{name: value for name, value in vars(args).items() if name in names}).validate()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bertfit", description="Fine-tune BERT-family encoders for text classification, evaluate, predict."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="print only results, warnings and errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", parents=[common], help="fine-tune, evaluate and save a model folder")
    train.add_argument(
        "--config", help="TOML or JSON file of options ([data] table for data options); flags override it"
    )
    train.add_argument("--resume", metavar="OUTPUT_DIR", help="continue a killed run (trained with --save-every) from its "
                       "newest checkpoint, with the options it was started with")  # fmt: skip
    _add_dataclass_options(train, DataConfig, "data")
    _add_dataclass_options(train, TrainConfig, "training")

    for name, kind, help_text in (
        ("evaluate", EvaluateOptions, "score a saved model on a labelled file"),
        ("predict", PredictOptions, "predict labels for texts or a file"),
        ("export", ExportOptions, "export a model folder to ONNX, with a parity check"),
        ("embed", EmbedOptions, "write the fine-tuned sentence vectors of a file's texts"),
        (
            "explain",
            ExplainOptions,
            "show which words drove each prediction (by default, how far each word's deletion moves it)",
        ),
    ):
        _add_dataclass_options(commands.add_parser(name, parents=[common], help=help_text), kind)

    audit = commands.add_parser("audit", parents=[common], help="find the training rows whose label is likely wrong, "
                                "and texts given two labels")  # fmt: skip
    _add_dataclass_options(audit, AuditOptions, "audit")
    _add_dataclass_options(audit, DataConfig, "data")
    suggest = commands.add_parser("suggest", parents=[common], help="choose the unlabelled rows worth labelling next")
    _add_dataclass_options(suggest, SuggestOptions)

    tune = commands.add_parser("tune", parents=[common], help="search learning rate, epochs, batch size, warmup "
                               "and dropout with Optuna on the validation split")  # fmt: skip
    tune.add_argument("--config", help="TOML or JSON file of options; flags override it")
    _add_dataclass_options(tune, SearchOptions, "search")
    _add_dataclass_options(tune, DataConfig, "data")
    _add_dataclass_options(tune, TrainConfig, "training (fixed unless searched)")

    serve = commands.add_parser("serve", parents=[common], help="serve a model folder over HTTP, with a page to try it")
    _add_dataclass_options(serve, ServeOptions)
    report = commands.add_parser("report", parents=[common], help="write report.html: data, training curves, errors")
    _add_dataclass_options(report, ReportOptions)
    commands.add_parser(
        "datasets", parents=[common], help="list the registry's data sets and where their files are looked up"
    )
    commands.add_parser(
        "models", parents=[common], help="list the encoders known by short name, and which are installed"
    )
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values: dict[str, Any] = load_config_file(args.config) if getattr(args, "config", None) else {}
    data_values = dict(values.pop("data", {}) or {})
    data_names = {f.name for f in dataclasses.fields(DataConfig)}
    for name, value in vars(args).items():
        if name in ("command", "config", "quiet", "resume", *(f.name for f in dataclasses.fields(SearchOptions))):
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

    def on_repeat_begin(self, name: str, params: dict) -> None: ...

    def on_repeat_end(self, metrics: dict, status: str = "FINISHED") -> None: ...


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
    # The model-loading report and its progress bar are noise for bertfit's users. The libraries read these
    # variables when they load, so commands that never load a model (report, option mistakes) need not load them.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # already loaded (the library used in-process): tell it directly
        import huggingface_hub
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        huggingface_hub.utils.disable_progress_bars()


# -- commands ----------------------------------------------------------------------------------
def run_train(args: argparse.Namespace) -> int:
    # Options are checked before torch is imported, so a mistyped option is answered at once.
    config = None if args.resume else config_from_args(args).validate()
    if args.resume:
        _refuse_options_with_resume(args)

    from bertfit.evaluation.metrics import format_metrics, format_summary
    from bertfit.training import distributed
    from bertfit.training.run import resume, train

    if config is None:
        result = resume(args.resume, ProgressBar(not args.quiet and sys.stderr.isatty()))
    else:
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
    from bertfit.evaluation.metrics import format_metrics
    from bertfit.evaluation.scoring import evaluate_file

    options = options_from_args(EvaluateOptions, args)
    metrics = evaluate_file(options.model_dir, options.data, text_column=options.text_column,
                            label_column=options.label_column, backend=options.backend,
                            pair_column=options.text_pair_column, arrow=options.arrow,
                            label_columns=options.label_columns)  # fmt: skip
    print(json.dumps(metrics, indent=2) if options.json else format_metrics(metrics, options.data))
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from bertfit.inference import Predictor, predict_file
    from bertfit.inference.explain import by_text, format_explanation
    from bertfit.inference.shards import is_sharded

    options = options_from_args(PredictOptions, args)
    if options.engine == "ray" or (options.input and is_sharded(options.input)):
        if options.explain:
            raise ConfigError("--explain explains one --input file or --text; shards are predicted without it")
        return _predict_shards(options, args.quiet)
    _check_before_loading(options)
    predictor = Predictor.load(options.model_dir, options.precision, backend=options.backend)
    # attributions need the PyTorch model's gradients, whichever backend predicts
    explainer = Predictor.load(options.model_dir, backend="torch") if options.explain else None
    if options.input:
        with RowCounter(not args.quiet and sys.stderr.isatty()) as counter:
            count = predict_file(predictor, options.input, options.output, text_column=options.text_column,
                                 progress=counter.update_to, pair_column=options.text_pair_column,
                                 skip_empty=options.skip_empty, overwrite=options.overwrite, explainer=explainer)  # fmt: skip
        print(f"wrote {count} predictions to {options.output}")
        return 0
    explained = (
        by_text(explainer.explain(options.text, options.text_pair), len(options.text))
        if explainer
        else [[] for _ in options.text]
    )
    for text, prediction, found in zip(options.text, predictor.predict(options.text, options.text_pair), explained):
        if options.json:
            extra = {"explanations": [e.to_dict() for e in found]} if explainer else {}
            print(json.dumps({"text": text, **prediction.to_dict(), **extra}, ensure_ascii=False))
            continue
        if prediction.value is not None:
            print(f"{prediction.value:.4f}\t{text}")
        else:
            print(f"{prediction.label}\t{prediction.probability:.4f}\t{text}")
        for explanation in found:
            print(f"  {format_explanation(explanation)}")
    return 0


def _predict_shards(options: PredictOptions, quiet: bool) -> int:
    """A folder or glob of files in, a folder of scored files out; here or on Ray."""
    from pathlib import Path

    from bertfit.inference import Predictor
    from bertfit.inference.shards import check_output_folder, input_shards, predict_shards_local, predict_shards_ray

    files, output = input_shards(options.input), Path(options.output)
    check_output_folder(output, files)
    _manifest_of(options).check_pairs(options.text_pair_column, give="--text-pair-column", model=options.model_dir)
    if options.engine == "ray":
        rows = predict_shards_ray(options.model_dir, files, output, backend=options.backend,
                                  text_column=options.text_column, pair_column=options.text_pair_column,
                                  workers=options.workers)  # fmt: skip
    else:
        predictor = Predictor.load(options.model_dir, options.precision, backend=options.backend)
        with RowCounter(not quiet and sys.stderr.isatty()) as counter:
            rows = predict_shards_local(predictor, files, output, text_column=options.text_column,
                                        pair_column=options.text_pair_column, progress=counter.update_to)  # fmt: skip
    print(f"wrote {rows} predictions from {len(files)} files to {output}/")
    return 0


def _check_before_loading(options: PredictOptions | ExplainOptions) -> None:
    """The library's checks, run before the model loads so a mistake is answered at once: the files
    (the output neither the input nor, without --overwrite, another existing file), the texts, the pairs."""
    from bertfit.data.texts import as_texts
    from bertfit.inference.files import check_files

    manifest = _manifest_of(options)
    if options.input:
        check_files(options.input, options.output, text_column=options.text_column,
                    pair_column=options.text_pair_column, overwrite=options.overwrite)  # fmt: skip
        manifest.check_pairs(options.text_pair_column, give="--text-pair-column", model=options.model_dir)
        return
    as_texts(options.text, "--text")
    manifest.check_pairs(options.text_pair, give="--text-pair", model=options.model_dir)
    as_texts(options.text_pair or [], "--text-pair")


def _manifest_of(options: PredictOptions):
    from bertfit.folder import read_manifest

    return read_manifest(options.model_dir)


def run_export(args: argparse.Namespace) -> int:
    from bertfit.export import export_onnx, format_parity

    options = options_from_args(ExportOptions, args)
    report = export_onnx(options.model_dir, quantize=options.quantize, data=options.data,
                         text_column=options.text_column, label_column=options.label_column,
                         pair_column=options.text_pair_column)  # fmt: skip
    print(format_parity(report))
    print(f"saved {options.model_dir}/onnx (parity.json holds these numbers)")
    return 0


def run_embed(args: argparse.Namespace) -> int:
    from bertfit.inference.embed import embed_file

    options = options_from_args(EmbedOptions, args)
    with RowCounter(not args.quiet and sys.stderr.isatty()) as counter:
        rows, dims = embed_file(options.model_dir, options.input, options.output, text_column=options.text_column,
                                progress=counter.update_to, overwrite=options.overwrite)  # fmt: skip
    print(f"wrote {rows} vectors of {dims} dimensions to {options.output}")
    return 0


def run_audit(args: argparse.Namespace) -> int:
    options = options_from_args(AuditOptions, args)
    data = DataConfig(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(DataConfig) if hasattr(args, f.name)}
    )
    config = TrainConfig(data=data, recipe=options.recipe, seed=options.seed, epochs=options.epochs, progress=False,
                         **({"model": options.model} if options.model else {})).validate()  # fmt: skip

    from bertfit.training.audit import audit, check_audit_output

    check_audit_output(data.train, options.output, options.overwrite)
    result = audit(config, options.folds, options.near_duplicate)
    result.write(options.output)
    print(result.summary())
    if sharper := result.next_step():
        print(sharper)
    print(f"wrote {len(result.issues)} rows to check to {options.output}, worst first")
    folder = Path(options.output).parent
    if Path(options.output).name == LABEL_ISSUES_FILE and (folder / MANIFEST).is_file():
        from bertfit.evaluation.report import write_report

        print(f"added them to {write_report(folder)}")
    return 0


def run_suggest(args: argparse.Namespace) -> int:
    from bertfit.inference.files import suggest_file

    options = options_from_args(SuggestOptions, args)
    rows = suggest_file(options.model_dir, options.input, options.output, options.n, exclude=options.exclude,
                        text_column=options.text_column, overwrite=options.overwrite)  # fmt: skip
    print(f"wrote the {rows} rows worth labelling next to {options.output}, most uncertain first")
    return 0


def run_explain(args: argparse.Namespace) -> int:
    options = options_from_args(ExplainOptions, args)
    from bertfit.inference import Predictor
    from bertfit.inference.explain import format_explanation
    from bertfit.inference.files import explain_file

    _check_before_loading(options)
    predictor = Predictor.load(options.model_dir, backend="torch")  # attributions need the PyTorch model's gradients
    if options.input:
        rows = explain_file(predictor, options.input, options.output, text_column=options.text_column,
                            pair_column=options.text_pair_column, label=options.label, method=options.method,
                            overwrite=options.overwrite)  # fmt: skip
        print(f"wrote the explanations of {rows} rows to {options.output}")
        return 0
    for found in predictor.explain(options.text, options.text_pair, options.label, options.method):
        print(json.dumps({"text": found.text, **found.to_dict()}, ensure_ascii=False) if options.json
              else f"{found.text}\n  {format_explanation(found)}")  # fmt: skip
    return 0


def run_tune(args: argparse.Namespace) -> int:
    from bertfit.training.tune import format_tune, tune

    search = options_from_args(SearchOptions, args)
    config = config_from_args(args)
    bar = ProgressBar(config.progress and not args.quiet and sys.stderr.isatty())
    print(format_tune(tune(config, search.trials, search.timeout, bar)))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from bertfit.serving.app import ServeLimits, create_app, require_fastapi
    from bertfit.serving.batching import BatchLimits

    options = options_from_args(ServeOptions, args)
    _, uvicorn = require_fastapi()
    batching = BatchLimits(options.max_batch, options.max_wait_ms, options.max_queue)
    limits = ServeLimits(options.max_texts, options.max_chars)
    app = create_app(options.model_dir, options.backend, limits=limits, batching=batching, precision=options.precision)
    log.info("serving %s on http://%s:%d (page at /, API docs at /docs)", options.model_dir, options.host, options.port)
    uvicorn.run(app, host=options.host, port=options.port, log_level="warning")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from bertfit.evaluation.report import write_report

    options = options_from_args(ReportOptions, args)
    print(f"wrote {write_report(options.model_dir, options.output)}")
    return 0


def run_datasets(args: argparse.Namespace) -> int:
    from bertfit.data.registry import DATASETS, data_dir

    for spec in DATASETS.values():
        files = ", ".join(f.name for f in spec.files.values())
        print(f"{spec.name}\t{spec.description}\n\tfiles: {data_dir() / spec.name} ({files})")
    return 0


def run_models(args: argparse.Namespace) -> int:
    from bertfit.encoders import describe_encoders

    for line in describe_encoders():
        print(line)
    return 0


COMMANDS = {
    "train": run_train,
    "evaluate": run_evaluate,
    "predict": run_predict,
    "export": run_export,
    "embed": run_embed,
    "tune": run_tune,
    "audit": run_audit,
    "explain": run_explain,
    "suggest": run_suggest,
    "serve": run_serve,
    "report": run_report,
    "datasets": run_datasets,
    "models": run_models,
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
    except BrokenPipeError:  # the reader left (`bertfit datasets | head -1`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
