"""CPU training shortcuts that must change speed only: gradient clipping folded into the fused AdamW step,
and the training attention with the cheaper dropout mask."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from bertfit.training.attention import NAME, attention, training_attention
from bertfit.training.loop import build_optimizer, clip_gradients


def _stepped(fold: bool, max_norm: float) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 3))
    optimizer = build_optimizer(model, 1e-2, 0.01, 1e-8)
    for _ in range(3):
        loss = model(torch.randn(32, 8) * 50).pow(2).mean()  # gradient norms far above max_norm
        loss.backward()
        clip_gradients(optimizer, list(model.parameters()), max_norm, fold=fold)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return model, optimizer


@pytest.mark.parametrize("max_norm", [1.0, 1e6])  # clipping, and a norm that never clips
def test_folded_clipping_steps_like_clip_grad_norm(max_norm):
    folded, optimizer = _stepped(True, max_norm)
    assert optimizer.defaults["fused"] and isinstance(optimizer.grad_scale, torch.Tensor)  # the fold was taken
    plain, _ = _stepped(False, max_norm)
    for (name, a), b in zip(folded.state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_folded_clipping_leaves_the_gradients_and_unfused_optimizers_alone():
    torch.manual_seed(4)
    layer = nn.Linear(4, 4)
    (layer(torch.randn(8, 4)) * 100).sum().backward()
    before = layer.weight.grad.clone()
    fused = build_optimizer(layer, 1e-3, 0.0, 1e-8)
    clip_gradients(fused, list(layer.parameters()), 1.0, fold=True)
    assert torch.equal(layer.weight.grad, before)  # the fused kernel applies the scale as it reads them
    plain = torch.optim.AdamW(layer.parameters(), lr=1e-3)  # no grad_scale hook: clipped in place
    clip_gradients(plain, list(layer.parameters()), 1.0, fold=True)
    assert not hasattr(plain, "grad_scale")
    assert torch.nn.utils.get_total_norm([p.grad for p in layer.parameters()]) == pytest.approx(1.0, rel=1e-4)


def _tiny(tiny_bert):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny_bert)
    inputs = {"input_ids": torch.tensor([[2, 5, 6, 7, 3], [2, 8, 3, 0, 0]]),
              "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])}  # fmt: skip
    return model, inputs


def test_training_attention_computes_what_sdpa_does_and_is_switched_back(tiny_bert):
    model, inputs = _tiny(tiny_bert)
    model.eval()
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        expected = model(**inputs).last_hidden_state
        with training_attention(model):
            assert model.config._attn_implementation == NAME
            got = model(**inputs).last_hidden_state
            unpadded = model(input_ids=inputs["input_ids"][:1]).last_hidden_state  # no mask at all
    assert model.config._attn_implementation == "sdpa"
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(unpadded, expected[:1], rtol=1e-5, atol=1e-5)


def test_training_attention_drops_weights_with_the_fast_mask_in_training_only():
    module = nn.Module()
    query = key = value = torch.randn(64, 4, 16, 8)
    mask = torch.ones(64, 1, 16, 16, dtype=torch.bool)
    module.eval()
    plain, _ = attention(module, query, key, value, mask, dropout=0.5)
    module.train()
    torch.manual_seed(5)
    dropped, _ = attention(module, query, key, value, mask, dropout=0.5)
    expected = torch.nn.functional.scaled_dot_product_attention(query, key, value)
    torch.testing.assert_close(plain.transpose(1, 2), expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(dropped, plain)
    # Inverted dropout keeps the expectation: over many heads and rows the mean output stays close.
    assert (dropped.mean() - plain.mean()).abs() < 0.02


def test_training_attention_leaves_other_implementations_alone(tiny_models):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny_models["bert"], attn_implementation="eager")
    with training_attention(model):
        assert model.config._attn_implementation == "eager"


def test_training_steps_use_it_and_the_folder_records_the_models_own(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    from bertfit.cli import main
    from bertfit.training import attention as module

    calls = []
    monkeypatch.setattr(module, "attention", lambda *args, **kwargs: calls.append(1) or attention(*args, **kwargs))
    output = tmp_path / "model"
    # bf16 asked for: `auto` picks it only where it is timed faster, and bertfit's attention serves bf16 steps only.
    assert main(["train", "--train", str(sentiment_csv), "--split", "0.6,0.2,0.2", "--model", str(tiny_bert),
                 "--output", str(output), "--epochs", "1", "--no-progress", "--precision", "bf16"]) == 0  # fmt: skip
    assert calls  # 2 layers a step
    config = json.loads((output / "config.json").read_text())
    assert NAME not in json.dumps(config)


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta", "deberta-v2", "mpnet"])
def test_training_attention_gives_each_familys_own_outputs(tiny_models, kind):
    """Where bertfit's attention replaces SDPA the outputs match it; families on their own attention
    (MPNet's relative position bias, DeBERTa's disentangled attention) keep it untouched."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny_models[kind]).eval()
    own = model.config._attn_implementation
    inputs = {"input_ids": torch.tensor([[101, 5, 6, 7, 102], [101, 8, 102, 0, 0]]),
              "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])}  # fmt: skip
    with torch.no_grad():
        expected = model(**inputs).last_hidden_state
        with training_attention(model):
            swapped = model.config._attn_implementation
            got = model(**inputs).last_hidden_state
    assert swapped == (NAME if own == "sdpa" else own)
    assert model.config._attn_implementation == own
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
