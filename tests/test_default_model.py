"""A few tests with the real default model on small slices of real data (marked slow; CI runs them)."""

import json

import numpy as np
import pytest

from bertfit import DataConfig, Predictor, TrainConfig, train
from bertfit.cli import main
from conftest import SHARED_DATA, write_csv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sms_slice(tmp_path_factory):
    """400 training and 200 test messages of the tutorial's SMS file."""
    import pandas as pd

    frame = pd.read_csv(SHARED_DATA / "sms_spam" / "spamdata_v2.csv")
    folder = tmp_path_factory.mktemp("sms")
    rows = list(zip(frame["text"], frame["label"]))
    return write_csv(folder / "train.csv", rows[:400]), write_csv(folder / "test.csv", rows[4000:4200])


def test_default_model_learns_sms_spam_in_one_epoch(sms_slice, tmp_path):
    train_file, test_file = sms_slice
    config = TrainConfig(data=DataConfig(train=str(train_file), validation=str(test_file), test=str(test_file)),
                         output=str(tmp_path / "m"), epochs=1, progress=False)  # fmt: skip
    result = train(config)
    assert result.metrics["test"]["accuracy"] > 0.9
    spam = ["URGENT! You have won a 1 week FREE membership in our £100,000 Prize Jackpot! Txt CLAIM to 81010"]
    reloaded = Predictor.load(tmp_path / "m")
    assert np.array_equal(reloaded.predict_proba(spam), result.predictor.predict_proba(spam))
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_default_model_frozen_head_via_cli(sms_slice, tmp_path, capsys):
    train_file, test_file = sms_slice
    output = tmp_path / "frozen"
    args = ["train", "--train", str(train_file), "--test", str(test_file), "--validation", str(test_file),
            "--freeze", "all", "--class-weights", "balanced", "--output", str(output), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    metrics = json.loads((output / "metrics.json").read_text())["test"]
    assert metrics["per_class"]["1"]["f1"] > 0.6
    capsys.readouterr()
    assert main(["predict", str(output), "--text", "Free entry! Win cash now, text WIN to 80086", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in ("0", "1")
