"""A model folder as an MLflow model (the ``pyfunc`` flavour), so ``mlflow.pyfunc.load_model(uri).predict(...)``,
``mlflow models serve`` and the model registry serve it with the columns ``bertfit predict --input`` writes.

The folder travels whole as the model's one artifact and is loaded with ``Predictor.load``, so MLflow's
predictions are bertfit's: the same backend (ONNX where it matched), calibration and thresholds.
Imported only where MLflow is used (the ``mlflow`` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bertfit.errors import ConfigError

try:
    import mlflow
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover - the extra's hint, raised where MLflow is first asked for
    raise ConfigError("MLflow is not installed: pip install 'bertfit[mlflow]'") from None

FOLDER = "bertfit_model"  # the artifact's name inside the MLflow model
TEXT, TEXT_PAIR = "text", "text_pair"  # the columns a DataFrame input names (as the server's JSON does)


class BertfitModel(PythonModel):
    """``predict`` takes a list of texts, one text, or a DataFrame with a ``text`` column (and ``text_pair``
    for pair models); it returns a DataFrame with ``predicted_label`` and one ``prob_<label>`` column per
    label (regression: ``predicted_value``), a row per text, in input order."""

    def load_context(self, context) -> None:
        from bertfit.inference.predictor import Predictor

        self.predictor = Predictor.load(context.artifacts[FOLDER])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        texts, pairs = model_texts(model_input)
        outputs = self.predictor.predict_proba(texts, pairs)
        return pd.DataFrame(self.predictor.task.prediction_columns(outputs))


def model_texts(model_input) -> tuple[list[str], list[str] | None]:
    """(texts, pair texts or None) from what MLflow hands ``predict``: a DataFrame (a ``text`` column, or its
    only column), a Series, a list, or one string."""
    if isinstance(model_input, str):
        return [model_input], None
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if isinstance(model_input, pd.Series):
        return model_input.astype(str).tolist(), None
    if isinstance(model_input, pd.DataFrame):
        if TEXT in model_input.columns:
            column = TEXT
        elif len(model_input.columns) == 1:
            column = model_input.columns[0]
        else:
            raise ConfigError(f"the input has no '{TEXT}' column (it has {', '.join(map(str, model_input.columns))})")
        pairs = model_input[TEXT_PAIR].astype(str).tolist() if TEXT_PAIR in model_input.columns else None
        return model_input[column].astype(str).tolist(), pairs
    if isinstance(model_input, Sequence):
        return [str(text) for text in model_input], None
    raise ConfigError(f"predict takes texts, a list of texts or a DataFrame, not {type(model_input).__name__}")


def log_folder(folder: Path, examples: list[str], pairs: list[str] | None = None,
               registered_name: str | None = None):  # fmt: skip
    """Log ``folder`` as an MLflow model named ``model`` in the active run (and register it as
    ``registered_name``); ``examples`` (a few texts) become its input example, from which the signature is
    read. Returns MLflow's ``ModelInfo``."""
    from importlib.metadata import version

    from bertfit.inference.predictor import Predictor

    # Single texts: one unnamed string column, so a list of texts and a one-column DataFrame both pass MLflow's
    # schema check; pairs: the two named columns.
    example = examples if pairs is None else pd.DataFrame({TEXT: examples, TEXT_PAIR: pairs})
    predictor = Predictor.load(folder)
    output = pd.DataFrame(predictor.task.prediction_columns(predictor.predict_proba(*model_texts(example))))
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=__file__,  # models from code: MLflow runs this file (set_model below), nothing is pickled
        artifacts={FOLDER: str(folder)},
        signature=mlflow.models.infer_signature(example, output),
        input_example=example,
        registered_model_name=registered_name,
        # Written out rather than inferred: inferring loads the model in a second process, and bertfit's own
        # requirements bring torch, transformers and onnxruntime.
        pip_requirements=[f"bertfit=={version('bertfit')}"],
    )


mlflow.models.set_model(BertfitModel())
