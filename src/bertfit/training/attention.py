"""Self-attention for fine-tuning on CPUs.

With dropout on, PyTorch's ``scaled_dot_product_attention`` cannot use its fused CPU kernel and runs
its unfused path: scores, softmax, a dropout mask drawn one element at a time, and the product with
the values. This is that same computation with bertfit's cheaper dropout mask (``training.dropout``),
which made a layer's attention (forward and backward) about a quarter faster on short texts. With
dropout off (bertfit's default) the fused kernel does apply, but on CoLA-sized batches in bf16 a
whole training step took twice as long with it as with this; in fp32 the two are level
(``bench/cpu_attention.py``), so the full recipe uses this for bf16 steps on CPUs only. It is
registered with transformers' attention interface and used only while training steps run; scoring
keeps the model's own attention.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from bertfit.training.dropout import fast_dropout

NAME = "bertfit_cpu_train"
_REPLACES = "sdpa"  # the implementation whose masks (booleans, or none when nothing is padded) this one reads


def attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
              attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
              **kwargs) -> tuple[torch.Tensor, None]:  # fmt: skip
    """Softmax attention over ``(batch, heads, length, head size)`` inputs, as transformers calls it."""
    scale = query.size(-1) ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(2, 3)) * scale
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:  # True where a position may be attended to
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    weights = torch.softmax(scores, dim=-1)
    if dropout > 0 and module.training:
        weights = fast_dropout(weights, dropout)
    output = torch.matmul(weights.to(value.dtype), value)
    return output.transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    AttentionInterface.register(NAME, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, ALL_MASK_ATTENTION_FUNCTIONS[_REPLACES])


def _configs(model: nn.Module) -> list:
    """The configs whose attention setting the model's layers read (a wrapped encoder has its own), once each."""
    found = {
        id(m.config): m.config for m in model.modules() if hasattr(getattr(m, "config", None), "_attn_implementation")
    }
    return list(found.values())


@contextmanager
def training_attention(model: nn.Module):
    """Run ``model``'s attention through ``attention`` inside the block, where it used PyTorch's
    ``scaled_dot_product_attention`` before; other attention implementations are left alone."""
    configs = [c for c in _configs(model) if c._attn_implementation == _REPLACES]
    if not configs:
        yield
        return
    _register()
    for config in configs:
        config._attn_implementation = NAME
    try:
        yield
    finally:
        for config in configs:
            config._attn_implementation = _REPLACES
