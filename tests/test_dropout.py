"""The CPU training dropout: Bernoulli masks drawn 16 bits an element, behaving as nn.Dropout does."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bertfit.training.dropout import FastDropout, fast_dropout, use_fast_dropout


def test_drops_each_element_with_probability_p_and_rescales_the_rest():
    torch.manual_seed(0)
    features = torch.ones(1_000_003)  # not a multiple of four: the last 64-bit draw is cut short
    out = fast_dropout(features, 0.1)
    dropped = out == 0
    assert dropped.float().mean().item() == pytest.approx(0.1, abs=1e-3)
    # Each of the four 16-bit lanes of a draw is its own coin: a lane stuck on one value shows here.
    lanes = dropped[:1_000_000].view(-1, 4).float().mean(0)
    assert torch.allclose(lanes, torch.full((4,), 0.1), atol=2e-3), lanes
    assert torch.allclose(out[~dropped], torch.tensor(1 / 0.9), rtol=1e-4)
    assert out.mean().item() == pytest.approx(1.0, abs=2e-3)  # expectation preserved


def test_gradient_flows_through_the_kept_elements_only():
    torch.manual_seed(1)
    features = torch.randn(64, 48, requires_grad=True)
    out = fast_dropout(features, 0.25)
    out.sum().backward()
    kept = out != 0
    assert torch.equal(features.grad != 0, kept)
    assert torch.allclose(features.grad[kept], torch.tensor(1 / 0.75))


def test_seeded_and_shape_and_dtype_preserving():
    features = torch.randn(3, 5, 7, dtype=torch.bfloat16)
    torch.manual_seed(2)
    first = fast_dropout(features, 0.1)
    torch.manual_seed(2)
    assert torch.equal(first, fast_dropout(features, 0.1))
    assert first.shape == features.shape and first.dtype == torch.bfloat16


def test_module_acts_like_nn_dropout_outside_training_and_at_the_ends():
    features = torch.randn(10, 10)
    layer = FastDropout(0.5).eval()
    assert layer(features) is features
    assert FastDropout(0.0).train()(features) is features
    assert torch.count_nonzero(FastDropout(1.0).train()(features)) == 0


def test_swap_replaces_every_dropout_and_keeps_the_weights(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    plain = [m.p for m in model.modules() if type(m) is nn.Dropout]
    assert use_fast_dropout(model) == len(plain) > 0
    assert [m.p for m in model.modules() if isinstance(m, FastDropout)] == plain
    assert not any(type(m) is nn.Dropout for m in model.modules())
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    inputs = {"input_ids": torch.tensor([[2, 5, 6, 3]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, model(**inputs).logits)  # eval: no dropout
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(**inputs).logits, model(**inputs).logits)  # training: fresh masks each call
