"""Prediction over many files: a folder or glob of shards in, a folder of scored shards out.

``local`` streams each shard through ``predict_file`` in this process, keeping its file name.
``ray`` hands the shards to Ray Data: ``map_batches`` over a pool of actors, each of which loads the
model once, then Ray writes the scored rows as shards of its own naming. Both add the same columns
(``predicted_label`` and ``prob_<label>``, or ``predicted_value``) to the input's.
"""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path

from bertfit.data.formats import FORMATS
from bertfit.data.readers import file_format
from bertfit.errors import BertfitError, ConfigError, DataError, OutputError

log = logging.getLogger(__name__)

PATH_COLUMN = "__bertfit_source_file"  # added while reading, so errors can name a row's file


def input_shards(spec: str) -> list[Path]:
    """A folder's data files, a glob's matches, or one file; sorted, so runs see the same order."""
    path = Path(spec)
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith((".", "_"))]
    elif any(char in spec for char in "*?["):
        files = [Path(p) for p in sorted(glob.glob(spec)) if Path(p).is_file()]
    else:
        files = [path] if path.is_file() else []
    if not files:
        raise DataError(f"{spec}: no input files (give a file, a folder of files, or a glob such as 'data/*.parquet')")
    kinds = {file_format(p) for p in files}
    if len(kinds) > 1:
        raise DataError(f"{spec}: shards of one input must share a format, found {', '.join(sorted(kinds))}")
    return files


def is_sharded(spec: str) -> bool:
    return Path(spec).is_dir() or any(char in spec for char in "*?[")


def check_output_folder(output_dir: Path, files: list[Path]) -> None:
    """Before any model loads: the output folder is new or empty (scored shards written among other files
    would mix with them, and the input folder itself is never empty), and no two shards share a name
    (the second would replace the first's output)."""
    output_dir = Path(output_dir)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise OutputError(f"{output_dir}: the output folder must be new or empty")
    names = [file.name for file in files]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise DataError(f"input shards share the file name {', '.join(twice)}, and their outputs would too: "
                        "give shards with distinct names")  # fmt: skip


def predict_shards_local(predictor, files: list[Path], output_dir: Path, *, text_column: str | None = None,
                         pair_column: str | None = None, progress=None) -> int:  # fmt: skip
    from bertfit.inference.files import predict_file

    check_output_folder(output_dir, files)
    output_dir.mkdir(parents=True, exist_ok=True)
    done = 0
    for file in files:
        done += predict_file(predictor, file, output_dir / file.name, text_column=text_column, pair_column=pair_column,
                             progress=None if progress is None else (lambda rows, base=done: progress(base + rows)))  # fmt: skip
    return done


class _Scorer:
    """One Ray actor: loads the model once and scores every batch it is handed."""

    def __init__(self, model_dir: str, backend: str, text_column: str | None, pair_column: str | None):
        from bertfit.inference.predictor import Predictor

        self.predictor = Predictor.load(model_dir, backend=backend)
        self.text_column, self.pair_column = text_column, pair_column

    def __call__(self, frame):
        from bertfit.inference.files import checked_inputs, input_columns, with_predictions

        # Ray's batches span files and do not keep file row numbers: errors name the batch's files,
        # and their row numbers count within the batch.
        files = ", ".join(sorted(set(frame.pop(PATH_COLUMN)))) if PATH_COLUMN in frame else "input"
        source = f"{files} (a Ray batch)"
        texts, pairs = checked_inputs(frame, *input_columns(frame, self.text_column, self.pair_column, source), source)
        return with_predictions(frame, self.predictor, self.predictor.predict_proba(texts, pairs))


def predict_shards_ray(model_dir: str, files: list[Path], output_dir: Path, *, backend: str = "torch",
                       text_column: str | None = None, pair_column: str | None = None, workers: int = 2,
                       batch_size: int = 1024, cpus_per_worker: float | None = None) -> int:  # fmt: skip
    """Score the shards with Ray Data on the cluster at ``RAY_ADDRESS``, or a local one started here."""
    from bertfit.folder import PAIR_COLUMN_HINT, read_manifest

    check_output_folder(output_dir, files)
    read_manifest(model_dir).check_pairs(pair_column, give=PAIR_COLUMN_HINT, model=model_dir)
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False)
    kind = file_format(files[0])
    # At least two blocks per actor, so every actor has work: Ray merges small files into one block
    # otherwise, and one actor then scores everything.
    dataset = _read(ray.data, [str(f) for f in files], kind).repartition(max(len(files), 2 * workers))
    if cpus_per_worker is None:
        # The read and write tasks need a whole CPU slot, and a pool holding every slot starves
        # them (the job then waits forever): the actors share what is left after one.
        cpus_per_worker = max(0.1, min(1.0, (ray.cluster_resources().get("CPU", 2) - 1) / workers))
    scored = dataset.map_batches(
        _Scorer,
        fn_constructor_args=(str(Path(model_dir).resolve()), backend, text_column, pair_column),
        batch_format="pandas",
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus_per_worker,
    )
    try:
        _write(scored, str(output_dir), kind)
    except Exception as err:  # Ray wraps an actor's exception in its own; show ours as ours
        cause = _bertfit_cause(err)
        if cause is not None:
            raise cause from None
        raise
    return sum(_rows_in(output_dir, kind))


def _bertfit_cause(err: BaseException) -> BertfitError | None:
    """bertfit's own error inside Ray's wrapper. Ray passes the actor's exception on as the text of
    its traceback only, so the error is rebuilt from its last ``bertfit.errors.<Kind>: message`` line."""
    import re

    from bertfit import errors

    found = re.findall(r"bertfit\.errors\.(\w+): (.+)", str(err))
    if not found:
        return None
    kind = getattr(errors, found[-1][0], None)
    return kind(found[-1][1].strip()) if isinstance(kind, type) and issubclass(kind, BertfitError) else None


def _read(data, paths: list[str], kind: str):
    read = FORMATS[kind].ray_read
    if read is None:
        raise DataError(f"{paths[0]}: --engine ray does not read {kind} files; save them as CSV or Parquet")
    return read(data, paths).rename_columns({"path": PATH_COLUMN})


def _write(dataset, folder: str, kind: str) -> None:
    write = FORMATS[kind].ray_write
    if write is None:
        raise DataError(f"{folder}: --engine ray does not write {kind} files")
    write(dataset, folder)


def _rows_in(folder: Path, kind: str):
    from bertfit.data.stream import iter_table

    for file in sorted(Path(folder).iterdir()):
        if file.is_file() and not file.name.startswith((".", "_")):
            yield sum(len(chunk) for chunk in iter_table(file))


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError("--engine ray needs Ray Data: pip install 'bertfit[ray]'") from None
    return ray
