import pytest

from bertfit.config import DataConfig, TrainConfig
from bertfit.errors import ConfigError


def test_all_problems_are_reported_at_once(tmp_path):
    config = TrainConfig(
        data=DataConfig(dataset="cola", train="x.csv", split="0.5,0.5"),
        batch_size=0,
        warmup_ratio=1.5,
        freeze="some",
        max_length="long",
        dropout=1.0,
    )
    with pytest.raises(ConfigError) as caught:
        config.validate()
    message = str(caught.value)
    for fragment in (
        "--dataset cannot be combined",
        "--split must be three numbers",
        "--train file not found: x.csv",
        "--batch-size must be at least 1",
        "--warmup-ratio must be in [0, 1)",
        "--freeze must be none, all, or a number of layers",
        "--max-length must be 'auto' or an integer",
        "--dropout must be in [0, 1)",
    ):
        assert fragment in message


def test_strategy_defaults():
    assert TrainConfig().resolved_epochs == 6
    assert TrainConfig(freeze="all").resolved_epochs == 10
    assert TrainConfig(freeze="all").learning_rate_for(5e-5) == 1e-3
    assert TrainConfig(freeze="2").frozen_layers == 2
    assert TrainConfig().resolved_dropout == 0.0 and TrainConfig(freeze="all").resolved_dropout == 0.1
    assert TrainConfig(dropout=0.2, freeze="all").resolved_dropout == 0.2


def test_the_learning_rate_training_uses_is_decided_in_one_place():
    """--learning-rate where given; the head alone (--freeze all) 1e-3; else the encoder size's rate."""
    assert TrainConfig().learning_rate_for(5e-5) == 5e-5
    assert TrainConfig().learning_rate_for(1e-4) == 1e-4
    assert TrainConfig(freeze="all").learning_rate_for(5e-5) == 1e-3
    assert TrainConfig(learning_rate=3e-5, freeze="all").learning_rate_for(5e-5) == 3e-5
    assert TrainConfig(learning_rate=3e-5, freeze="2").learning_rate_for(1e-4) == 3e-5


def test_round_trips_through_dict():
    config = TrainConfig(data=DataConfig(dataset="sms_spam"), epochs=2, seed=7)
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_unknown_option_in_config_file_is_named():
    with pytest.raises(ConfigError, match="unknown option\\(s\\) in config: learning_rat"):
        TrainConfig.from_dict({"learning_rat": 1e-4})
