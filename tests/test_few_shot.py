"""The few-shot recipe (contrastive tuning of the sentence vector, then a fitted head) inside bertfit's one
training path, for every classification shape, and ``--recipe auto``'s choice with its log line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bertfit.cli import main
from bertfit.config import FEW_SHOT_BELOW, choose_recipe
from bertfit.errors import ConfigError
from bertfit.training.fewshot import all_pairs_cosine_loss, shares_a_label
from bertfit.training.frozen import logistic_regression
from conftest import sentiment_rows, train_args, write_csv
from test_few_rows import TOPICS, topic_rows


def test_the_pair_loss_is_sentence_transformers_cosine_similarity_loss_with_both_kinds_of_pair_weighed_alike():
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    torch.manual_seed(0)
    vectors, labels = torch.randn(6, 8), torch.tensor([0, 1, 0, 2, 1, 0])
    pairs = [(i, j) for i in range(6) for j in range(i + 1, 6)]
    reference = CosineSimilarityLoss(model=None)

    def loss_over(alike: bool) -> torch.Tensor:
        first, second = (
            torch.tensor(side) for side in zip(*[p for p in pairs if (labels[p[0]] == labels[p[1]]) == alike])
        )
        target = (labels[first] == labels[second]).float()
        return reference.compute_loss_from_embeddings([vectors[first], vectors[second]], target)

    expected = (loss_over(True) + loss_over(False)) / 2
    assert torch.allclose(all_pairs_cosine_loss(vectors, labels), expected)
    one_class = torch.zeros(6, dtype=torch.long)  # no unlike pair: the alike pairs alone
    assert torch.isfinite(all_pairs_cosine_loss(vectors, one_class))


def test_multi_label_rows_are_alike_when_they_share_a_label_or_both_have_none():
    rows = torch.tensor([[1, 0, 1], [0, 0, 1], [0, 1, 0], [0, 0, 0], [0, 0, 0]], dtype=torch.float32)
    expected = torch.tensor(
        [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 1, 1]], dtype=torch.float32
    )
    assert torch.equal(shares_a_label(rows), expected)


def test_the_head_is_scikit_learns_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 5)) + np.repeat(np.eye(3, 5) * 2, 20, axis=0)
    labels = np.repeat(np.arange(3), 20)
    scale = np.linalg.norm(features, axis=1).mean()  # the strength is set on vectors of mean length 1
    reference = LogisticRegression(C=1.0, max_iter=5000, tol=1e-8).fit(features / scale, labels)
    weight, bias = logistic_regression(torch.tensor(features, dtype=torch.float32), torch.tensor(labels),
                                       torch.nn.CrossEntropyLoss(), 3)  # fmt: skip
    ours = torch.softmax(torch.tensor(features, dtype=torch.float32) @ weight.T + bias, dim=1).numpy()
    np.testing.assert_allclose(ours, reference.predict_proba(features / scale), atol=2e-3)


@pytest.mark.parametrize(
    ("setting", "rows", "sentence_encoder", "recipe", "said"),
    [
        ("auto", 8.0, True, "few-shot", f"8 labelled rows per class (median), under the {FEW_SHOT_BELOW}"),
        ("auto", float(FEW_SHOT_BELOW), True, "full", "at least the"),
        ("auto", 8.0, False, "full", "measured on sentence-transformers encoders only"),
        ("auto", None, True, "full", "numeric targets"),
        ("few-shot", 500.0, False, "few-shot", "as asked"),
        ("frozen", 8.0, True, "frozen", "as asked"),
    ],
)
def test_the_recipe_follows_the_rows_per_class_and_the_encoder(setting, rows, sentence_encoder, recipe, said):
    choice = choose_recipe(setting, rows, sentence_encoder)
    assert choice.name == recipe and said in choice.reason


def test_few_shot_needs_classes():
    with pytest.raises(ConfigError, match="needs classes"):
        choose_recipe("few-shot", None, True)


def _multi_label_rows(count: int) -> list[tuple]:
    """text, then 0/1 columns pos, neg, question; every fifth row carries no label at all."""
    rows = []
    for i, (text, label) in enumerate(sentiment_rows(count)):
        question = int(i % 3 == 0)
        kept = i % 5 != 0
        rows.append((text + (" why" if question else ""), int(kept and label == "pos"), int(kept and label == "neg"),
                     question))  # fmt: skip
    return rows


SHAPES = {
    "binary": lambda: sentiment_rows(32),
    "multi-class": lambda: topic_rows(6),
    "multi-label": lambda: _multi_label_rows(40),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_auto_trains_few_rows_few_shot_into_an_ordinary_folder(shape, tiny_sentence_encoder, tmp_path, capsys):
    import pandas as pd

    from bertfit import Predictor

    header = ("text", "pos", "neg", "question") if shape == "multi-label" else ("text", "label")
    data = write_csv(tmp_path / "few.csv", SHAPES[shape](), header=header)
    assert main(train_args(data, tiny_sentence_encoder, tmp_path / "m", split="0.5,0.25,0.25")) == 0
    err = capsys.readouterr().err
    assert "recipe few-shot: " in err and "(median), under the" in err
    assert "few-shot: head fitted on the" in err
    folder = tmp_path / "m"
    manifest = json.loads((folder / "bertfit.json").read_text())
    assert manifest["config"]["recipe"] == "few-shot" and manifest["architecture"] == "pooled-classifier"
    assert "recipe: few-shot;" in (folder / "README.md").read_text()  # the model card
    # The folder predicts what training scored: its reloaded model gives the test split's saved probabilities.
    scored = pd.read_csv(folder / "predictions_test.csv", keep_default_na=False)
    predictor = Predictor.load(folder, backend="torch")
    reloaded = predictor.predict_proba(scored["text"].tolist())
    saved = scored[[f"prob_{name}" for name in predictor.labels.names]].to_numpy()
    np.testing.assert_allclose(reloaded, saved, atol=1e-4)


def test_the_contrastive_stage_lowers_the_pair_loss(tiny_sentence_encoder, tmp_path, capsys):
    data = write_csv(tmp_path / "topics.csv", topic_rows(8))
    args = train_args(
        data, tiny_sentence_encoder, tmp_path / "m", "--recipe", "few-shot", "--learning-rate", "1e-3", split=None
    )
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "48 rows, 2 batches an epoch, 20 epochs" in err  # 48 rows at batch 32: two batches of 24
    assert "learning rate 0.001, dropout 0.1" in err  # SetFit's dropout, not fine-tuning's 0
    losses = [float(line.split("pair loss ")[1].split()[0]) for line in err.splitlines() if "pair loss" in line]
    assert len(losses) == 20 and losses[-1] < losses[0] * 0.7  # dropout keeps some noise in the last epochs


def test_dropout_defaults_follow_the_recipe_and_an_explicit_rate_wins():
    from bertfit.config import FEW_SHOT_DROPOUT, DataConfig, TrainConfig

    def rate(**options):
        return TrainConfig(data=DataConfig(dataset="sms_spam"), **options).resolved_dropout

    assert rate(recipe="few-shot") == FEW_SHOT_DROPOUT == 0.1
    assert rate(recipe="full") == 0.0 and rate(recipe="frozen") == 0.1
    assert rate(recipe="few-shot", dropout=0.0) == 0.0


def test_a_plain_encoder_trains_full_and_says_why(tiny_bert, tmp_path, capsys):
    data = write_csv(tmp_path / "few.csv", topic_rows(8))
    assert main(train_args(data, tiny_bert, tmp_path / "m", "--epochs", "1", split=None)) == 0
    said = "recipe full: --recipe auto: 8 labelled rows per class (median), but few-shot was measured"
    assert said in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["--recipe", "few-shot", "--freeze", "all"], "--freeze all is the frozen recipe"),
        (["--recipe", "few-shot", "--pooling", "pooler"], "trains its own head on a sentence vector"),
        (["--recipe", "few-shot", "--reinit-layers", "1"], "--reinit-layers with --recipe few-shot"),
    ],
)
def test_recipe_options_that_cannot_go_together_are_one_line_each(options, problem, tiny_bert, tmp_path, capsys):
    data = write_csv(tmp_path / "few.csv", topic_rows(3))
    assert main(train_args(data, tiny_bert, tmp_path / "m", *options, split=None)) != 0
    err = capsys.readouterr().err
    assert problem in err and "Traceback" not in err


def test_the_frozen_recipe_is_freeze_all(tiny_bert, tmp_path):
    data = write_csv(tmp_path / "few.csv", topic_rows(4))
    assert main(train_args(data, tiny_bert, tmp_path / "m", "--recipe", "frozen", "--epochs", "1", split=None)) == 0
    manifest = json.loads((tmp_path / "m" / "bertfit.json").read_text())
    assert manifest["frozen_encoder"] is True and manifest["head"] == "dense"
    assert len(TOPICS) == len(manifest["labels"])


def test_a_few_shot_folder_loads_in_plain_transformers_with_the_same_logits(tiny_sentence_encoder, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from test_plain_transformers import _bertfit_logits, _plain_logits

    data = write_csv(tmp_path / "few.csv", sentiment_rows(24))
    assert main(train_args(data, tiny_sentence_encoder, tmp_path / "m", "--recipe", "few-shot", "-q", split=None)) == 0
    folder = tmp_path / "m"
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    np.testing.assert_allclose(_plain_logits(model, tokenizer), _bertfit_logits(folder), atol=1e-4)


@pytest.mark.exports_onnx
def test_few_shot_gives_a_small_holdout_back_to_training_and_still_exports(tiny_sentence_encoder, tmp_path, capsys):
    data = write_csv(tmp_path / "topics.csv", topic_rows(16))  # 96 rows: 10 would be held out, too few to calibrate
    assert main(train_args(data, tiny_sentence_encoder, tmp_path / "m", split=None)) == 0
    err = capsys.readouterr().err
    assert "held out 10 of 96 training rows" in err
    assert "few-shot: the 10 held-out rows go back into training" in err
    assert "few-shot: head fitted on the 96 tuned sentence vectors" in err
    folder = tmp_path / "m"
    assert "validation" not in json.loads((folder / "metrics.json").read_text())
    parity = json.loads((folder / "onnx" / "parity.json").read_text())  # checked on training rows instead
    assert parity and (folder / "onnx" / "model.onnx").is_file()


def test_a_given_validation_file_stays_validation_under_few_shot(tiny_sentence_encoder, tmp_path, capsys):
    train = write_csv(tmp_path / "train.csv", topic_rows(8))
    validation = write_csv(tmp_path / "dev.csv", topic_rows(2, seed=1))
    args = train_args(train, tiny_sentence_encoder, tmp_path / "m", "--validation", validation, split=None)
    assert main(args) == 0
    assert "go back into training" not in capsys.readouterr().err
    assert "validation" in json.loads((tmp_path / "m" / "metrics.json").read_text())
