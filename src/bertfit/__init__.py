"""bertfit: fine-tune BERT-family encoders for text classification, evaluate honestly, predict fast.

    from bertfit import TrainConfig, DataConfig, train, Predictor
    result = train(TrainConfig(data=DataConfig(dataset="sms_spam")))
    Predictor.load(result.output_dir).predict(["WIN a free prize now!"])

Heavy modules (torch, transformers) load on first use, so ``import bertfit`` stays fast.
"""

from bertfit.config import DataConfig, TrainConfig
from bertfit.errors import BertfitError, ConfigError, DataError, ModelError, OutputExistsError

__version__ = "0.1.0"

__all__ = [
    "BertfitError",
    "ConfigError",
    "DataConfig",
    "DataError",
    "ModelError",
    "OutputExistsError",
    "Predictor",
    "audit",
    "TrainConfig",
    "evaluate_file",
    "predict_file",
    "train",
]


def __getattr__(name: str):
    if name == "audit":
        from bertfit.training.audit import audit

        return audit
    if name == "train":
        from bertfit.training.run import train

        return train
    if name in ("Predictor", "predict_file"):
        from bertfit import inference

        return getattr(inference, name)
    if name == "evaluate_file":
        from bertfit.evaluation.scoring import evaluate_file

        return evaluate_file
    raise AttributeError(f"module 'bertfit' has no attribute {name!r}")
