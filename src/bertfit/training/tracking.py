"""``--report-to``: a training run reported to the trackers a team already runs, besides its folder.

MLflow (the ``mlflow`` extra) gets one run per ``bertfit train`` or ``bertfit tune``: the resolved options as
params; per epoch the training loss, learning rate and validation metrics at their optimizer step; the final
validation and test metrics; ``report.html``, the plots and ``metrics.json`` as artifacts; tags for the task
shape, the encoder, the recipe and bertfit's version; and the folder as an MLflow model
(``inference/mlflow_model.py``), registered where ``--register-model`` names it. ``--seeds``, ``--folds`` and
``tune``'s trials are nested runs under that one. MLflow's own variables choose where it goes
(``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME``, ``MLFLOW_RUN_ID``); ``--resume`` continues the run the
checkpoint names. TensorBoard is ``training/tensorboard.py``.

A tracker that fails (a server down, a store not writable) never costs the training: a failure to start the
run stops the command before any work, in one line; one during training is a warning and training goes on;
one at the end comes after the folder is written, and the command fails in one line that says the folder is
whole."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bertfit.config import TrainConfig
from bertfit.errors import BertfitError, ConfigError, OutputError
from bertfit.folder import write_json_atomically
from bertfit.modeling.source import first_line
from bertfit.training.loop import Callbacks, EpochResult

log = logging.getLogger(__name__)

RUN_ID_FILE = "mlflow_run.json"  # in the checkpoint folder, so --resume reports into the same run
ARTIFACTS = ("report.html", "metrics.json", "*.png")
PARAMS_PER_CALL = 100  # MLflow's limit on one batch of params


def require_mlflow():
    try:
        import mlflow
    except ImportError:
        raise ConfigError("--report-to mlflow needs MLflow: pip install 'bertfit[mlflow]'") from None
    return mlflow


def reporting(config: TrainConfig, callbacks: Callbacks, checkpoint_folder: Path | None = None,
              resuming: bool = False) -> tuple[Callbacks, MlflowRun | None]:  # fmt: skip
    """``callbacks`` with the loggers --report-to asks for added, and the MLflow run (started) if asked.
    ``checkpoint_folder`` keeps the MLflow run's id for --resume (``resuming``: continue that run)."""
    from bertfit.training.tensorboard import CallbackList, TensorBoardLogger, tensorboard_dir

    loggers = [callbacks]
    if "tensorboard" in config.reporters:
        loggers.append(TensorBoardLogger(tensorboard_dir(config.output_dir)))
    run = None
    if "mlflow" in config.reporters:
        with tracker_errors("starting the run"):
            run = MlflowRun.start(config, checkpoint_folder, resuming)
        loggers.append(run)
    return (callbacks if len(loggers) == 1 else CallbackList(*loggers)), run


@contextmanager
def tracker_errors(doing: str, after: str = "") -> Iterator[None]:
    """MLflow's own failures while ``doing`` something as one line naming the tracking URI (``after``: what
    the user still has), rather than a traceback from inside its HTTP client."""
    try:
        yield
    except BertfitError:
        raise
    except Exception as err:
        raise OutputError(f"MLflow at {_tracking_uri()}: {doing} failed: {first_line(err)}{after}") from err


class MlflowRun(Callbacks):
    """The MLflow run of one training command; as callbacks, it logs each epoch at its optimizer step and
    opens a nested run per repeat (seed, fold or trial). Logging during training that fails is a warning
    (once): the training goes on, and the run misses those numbers."""

    def __init__(self, mlflow, run_id: str):
        self.mlflow, self.run_id, self.step = mlflow, run_id, 0
        self.failed_while_training = False
        self.in_nested_run = False

    def _during_training(self, log_them, *args, **kwargs) -> bool:
        """``log_them(...)``; False, with a warning the first time, where it failed."""
        try:
            log_them(*args, **kwargs)
            return True
        except Exception as err:
            if not self.failed_while_training:
                log.warning("MLflow at %s: logging failed (%s); training goes on, and the run misses what "
                            "fails to log", _tracking_uri(), first_line(err))  # fmt: skip
            self.failed_while_training = True
            return False

    @classmethod
    def start(cls, config: TrainConfig, checkpoint_folder: Path | None, resuming: bool) -> MlflowRun:
        mlflow = require_mlflow()
        saved = _saved_run_id(checkpoint_folder) if resuming else None
        nested = mlflow.active_run() is not None  # a caller's own run holds bertfit's as a child
        run = mlflow.start_run(run_id=saved, run_name=None if saved else config.output_dir.name, nested=nested)
        if checkpoint_folder is not None and config.save_every:
            checkpoint_folder.mkdir(parents=True, exist_ok=True)
            write_json_atomically(checkpoint_folder / RUN_ID_FILE, {"run_id": run.info.run_id})
        tracked = cls(mlflow, run.info.run_id)
        tracked.log_params(flat_params(config.to_dict()))
        mlflow.set_tags({"bertfit.version": _version(), "bertfit.encoder": config.model,
                         "bertfit.recipe": config.recipe, "bertfit.command": "train"})  # fmt: skip
        log.info("MLflow: run %s %s in %s", run.info.run_id, "continued" if saved else "started",
                 mlflow.get_tracking_uri())  # fmt: skip
        return tracked

    def log_params(self, params: dict) -> None:
        items = list(params.items())
        for start in range(0, len(items), PARAMS_PER_CALL):
            self.mlflow.log_params(dict(items[start : start + PARAMS_PER_CALL]))

    def log_split_metrics(self, metrics: dict) -> None:
        """Per split (``validation``, ``test``), its numbers as ``<split>_<metric>`` at the current step."""
        for split, values in metrics.items():
            if isinstance(values, dict):
                self.mlflow.log_metrics(scalars(values, f"{split}_"), step=self.step)

    # -- per epoch, per repeat -----------------------------------------------------------------
    def on_train_begin(self, total_steps: int, done: int = 0) -> None:
        self.step = done

    def on_step(self, loss: float) -> None:
        self.step += 1

    def on_epoch_end(self, record: EpochResult, key: str) -> None:
        values = {"train_loss": record.train_loss, "learning_rate": record.learning_rate, "epoch": record.epoch}
        values.update(scalars(record.validation or {}, "validation_"))
        self._during_training(self.mlflow.log_metrics, values, step=self.step)

    def on_repeat_begin(self, name: str, params: dict) -> None:
        self.step = 0
        self.in_nested_run = self._during_training(self.mlflow.start_run, run_name=name, nested=True)
        if self.in_nested_run:
            self._during_training(self.log_params, params)

    def on_repeat_end(self, metrics: dict, status: str = "FINISHED") -> None:
        if self.in_nested_run:  # else the numbers would land in the parent run
            self._during_training(self.log_split_metrics, metrics)
            self.in_nested_run = not self._during_training(self.mlflow.end_run, status)

    # -- the end -------------------------------------------------------------------------------
    def finish(self, result, register_model: str | None = None) -> None:
        """Log ``result``'s final metrics, the folder's report files and the folder as an MLflow model."""
        saved = f" (the model folder {result.output_dir} is saved and whole)"
        with tracker_errors("logging the results and the model", saved):
            self._log_results(result, register_model)

    def _log_results(self, result, register_model: str | None) -> None:
        from bertfit.inference.mlflow_model import log_folder

        self.mlflow.set_tag("bertfit.task", result.task.name)
        self.log_split_metrics(result.metrics)
        for split, values in (result.summary or {}).items():
            if isinstance(values, dict):
                self.mlflow.log_metrics({f"{split}_{k}_{stat}": v[stat] for k, v in values.items()
                                         for stat in ("mean", "std")})  # fmt: skip
        folder = Path(result.output_dir)
        for pattern in ARTIFACTS:
            for path in sorted(folder.glob(pattern)):
                self.mlflow.log_artifact(str(path), artifact_path="report")
        train = result.data.train
        first = next(iter(train.subset(list(range(min(3, len(train))))).pieces()))  # the input example
        info = log_folder(folder, list(first.texts), None if first.pairs is None else list(first.pairs), register_model)
        log.info("MLflow: model logged as %s%s", info.model_uri,
                 f", registered as {register_model}" if register_model else "")  # fmt: skip
        self.end()

    def finish_search(self, metric: str, best_value: float, best_params: dict, folder: Path) -> None:
        """A search's end: the best trial's score and options, and its two files as artifacts."""
        with tracker_errors("logging the search's result", f" (the search's files in {folder} are saved)"):
            self._log_search(metric, best_value, best_params, folder)

    def _log_search(self, metric: str, best_value: float, best_params: dict, folder: Path) -> None:
        self.mlflow.set_tag("bertfit.command", "tune")
        self.mlflow.log_metric("best_" + metric.replace(" ", "_"), best_value)
        self.log_params({f"best.{key}": str(value) for key, value in best_params.items()})
        for path in sorted(Path(folder).glob("*.json")):
            self.mlflow.log_artifact(str(path))
        self.end()

    def end(self, status: str = "FINISHED") -> None:
        while self.mlflow.active_run() is not None:
            run = self.mlflow.active_run()
            try:
                self.mlflow.end_run(status)
            except Exception as err:  # the server is gone: a failure is being reported already
                log.warning("MLflow at %s: could not mark the run %s: %s", _tracking_uri(), status, first_line(err))
                return
            if run.info.run_id == self.run_id:
                return


def scalars(values: dict, prefix: str) -> dict[str, float]:
    """The numbers of a metrics dict as MLflow metrics (``validation_accuracy``); lists and tables left out."""
    return {f"{prefix}{key}": float(value) for key, value in values.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}  # fmt: skip


def flat_params(options: dict, prefix: str = "") -> dict[str, str]:
    """Nested options as MLflow params: ``data.train``, ``learning_rate``; lists as their JSON."""
    flat = {}
    for key, value in options.items():
        if isinstance(value, dict):
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return flat


def _saved_run_id(checkpoint_folder: Path | None) -> str | None:
    path = None if checkpoint_folder is None else checkpoint_folder / RUN_ID_FILE
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))["run_id"]


def _tracking_uri() -> str:
    import mlflow

    return mlflow.get_tracking_uri()


def _version() -> str:
    from importlib.metadata import version

    return version("bertfit")
