"""A bertfit folder outside bertfit: plain transformers loads what it can represent and refuses the
rest, never building a silent random head. A pooled classifier (the default model's shape) loads only
with ``trust_remote_code=True``, through the ``modeling_bertfit.py`` it carries, and then computes
bertfit's logits; a folder with the encoder's own head loads as it is."""

import json

import numpy as np
import pytest
import torch

from bertfit.cli import main
from conftest import sentiment_rows, train_tiny, write_csv

FAMILIES = ("bert", "distilbert", "roberta", "deberta-v2", "mpnet")
TEXTS = [t for t, _ in sentiment_rows(12, seed=5)] + ["short", "a much longer text about a lovely day " * 3]


def _train(tiny_models, kind, tmp_path, *extra) -> "Path":  # noqa: F821
    return train_tiny(tmp_path, tiny_models[kind], "--epochs", "1", *extra)


def _bertfit_logits(folder) -> np.ndarray:
    from bertfit import Predictor

    predictor = Predictor.load(folder)  # fp32 by default, as plain transformers computes
    return predictor.logits_of(predictor.encode(TEXTS))


def _bertfit_outputs(folder) -> np.ndarray:
    from bertfit import Predictor

    return Predictor.load(folder).predict_proba(TEXTS)


def _pipeline_probabilities(classify, **extra) -> np.ndarray:
    """Each text's score per label, in ``id2label`` order, from ``pipeline(..., top_k=None)``."""
    names = list(classify.model.config.id2label.values())
    rows = classify(TEXTS, truncation=True, max_length=classify.model.config.bertfit["max_length"], top_k=None, **extra)
    return np.array([[next(s["score"] for s in row if s["label"] == name) for name in names] for row in rows])


def _plain_logits(model, tokenizer) -> np.ndarray:
    """Logits as plain transformers computes them, cut at the folder's max length (``config.bertfit``)."""
    max_length = model.config.bertfit["max_length"]
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**batch).logits.float().numpy()


@pytest.mark.parametrize("kind", FAMILIES)
def test_a_pooled_folder_is_refused_without_remote_code_and_exact_with_it(tiny_models, kind, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    folder = _train(tiny_models, kind, tmp_path, "--pooling", "mean")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "bertfit-pooled" and (folder / "modeling_bertfit.py").is_file()
    assert config["bertfit"]["task"] == "classification" and "temperature" in config["bertfit"]
    with pytest.raises(ValueError, match="trust_remote_code"):
        AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=False)
    with pytest.raises(ValueError, match="trust_remote_code"):
        pipeline("text-classification", model=str(folder), trust_remote_code=False)

    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    np.testing.assert_allclose(_plain_logits(model, tokenizer), _bertfit_logits(folder), atol=1e-4)
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer)
    np.testing.assert_allclose(_pipeline_probabilities(classify), _bertfit_outputs(folder), atol=1e-4)


def test_the_frozen_dense_head_travels_the_same_way(tiny_models, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = _train(tiny_models, "bert", tmp_path, "--freeze", "all")
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    assert model.config.head == "dense"
    np.testing.assert_allclose(_plain_logits(model, tokenizer), _bertfit_logits(folder), atol=1e-4)


def test_a_folder_with_the_encoders_own_head_loads_as_it_is(tiny_models, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    folder = _train(tiny_models, "bert", tmp_path, "--pooling", "pooler")
    # What Text Embeddings Inference needs of a classifier: a *ForSequenceClassification architecture,
    # the label names both ways, and a fast tokenizer's tokenizer.json.
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"][0].endswith("ForSequenceClassification") and config["model_type"] == "bert"
    assert config["id2label"] == {"0": "neg", "1": "pos"} and config["label2id"] == {"neg": 0, "pos": 1}
    assert (folder / "tokenizer.json").is_file()
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    assert type(model).__name__ == "BertForSequenceClassification"
    np.testing.assert_allclose(_plain_logits(model, AutoTokenizer.from_pretrained(folder)), _bertfit_logits(folder),
                               atol=1e-4)  # fmt: skip
    classify = pipeline("text-classification", model=str(folder))
    np.testing.assert_allclose(_pipeline_probabilities(classify), _bertfit_outputs(folder), atol=1e-4)


def test_the_calibration_temperature_is_in_the_weights(tiny_models, tmp_path):
    """W/T and b/T: plain transformers' softmax is bertfit's calibrated probability, with no step of its own."""
    from transformers import AutoModelForSequenceClassification

    from bertfit.folder import read_manifest

    folder = _train(tiny_models, "bert", tmp_path, "--pooling", "pooler")
    manifest = read_manifest(folder)
    assert manifest.task.state["scale_in_weights"]
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    assert model.config.bertfit["scale_in_weights"] is True
    logits = _bertfit_logits(folder)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, _bertfit_outputs(folder), atol=1e-6)


@pytest.mark.parametrize("kind", FAMILIES)
def test_folding_scales_the_logits_of_every_familys_head(tiny_models, kind):
    """``fold_logit_scale(a, b)``: the model itself then emits ``a * logits + b``, for the families'
    own heads and for bertfit's pooled one."""
    from transformers import AutoModelForSequenceClassification

    from bertfit.modeling import build_pooled_classifier, fold_logit_scale, load_encoder, logits_of
    from bertfit.tasks import LabelSet

    batch = {"input_ids": torch.tensor([[101, 7, 8, 9, 102]]), "attention_mask": torch.ones(1, 5, dtype=torch.long)}
    models = [AutoModelForSequenceClassification.from_pretrained(tiny_models[kind], num_labels=3),
              build_pooled_classifier(load_encoder(str(tiny_models[kind])), LabelSet(("a", "b", "c")), "mean",
                                      "linear", frozen=False)]  # fmt: skip
    for model in models:
        model.eval()
        with torch.no_grad():
            before = logits_of(model(**batch))
            fold_logit_scale(model, 1 / 1.7, 0.25)
            after = logits_of(model(**batch))
        torch.testing.assert_close(after, before / 1.7 + 0.25, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", ["multi-label", "regression"])
def test_other_task_shapes_travel_with_their_problem_type(tiny_models, shape, tmp_path):
    """Multi-label folders tell transformers to use a sigmoid; regression folders carry the target scale
    in their weights, so the raw output is bertfit's value."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bertfit import Predictor
    from test_tasks import multi_label_rows, regression_rows

    rows = multi_label_rows(60) if shape == "multi-label" else regression_rows(60)
    data = write_csv(tmp_path / "data.csv", rows)
    folder = tmp_path / "m"
    args = ["train", "--train", str(data), "--split", "0.6,0.2,0.2", "--model", str(tiny_models["bert"]),
            "--output", str(folder), "--epochs", "1", "--pooling", "mean", "--task", shape, "--no-progress", "-q"]  # fmt: skip
    assert main(args) == 0
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    expected = {"multi-label": "multi_label_classification", "regression": "regression"}[shape]
    assert model.config.problem_type == expected
    logits = _plain_logits(model, AutoTokenizer.from_pretrained(folder, trust_remote_code=True))
    np.testing.assert_allclose(logits, _bertfit_logits(folder), atol=1e-4)
    outputs = Predictor.load(folder).predict_proba(TEXTS)
    if shape == "regression":
        assert model.config.bertfit["target_std"] != 1.0
        np.testing.assert_allclose(logits[:, 0], outputs, atol=1e-4)
    else:
        np.testing.assert_allclose(1 / (1 + np.exp(-logits)), outputs, atol=1e-4)
