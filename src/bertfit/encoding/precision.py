"""Pick the compute precision at run time: bf16 autocast where the hardware does it natively; fp16 with
loss scaling on CUDA GPUs that lack bf16."""

from __future__ import annotations

import contextlib
import logging

import torch

log = logging.getLogger(__name__)

HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}

# Saved models predict in fp32 unless asked otherwise: that is what plain transformers, Optimum and TEI
# compute from the same folder, so bertfit's probabilities match theirs (within 1e-7 on the SMS test
# split); bf16 autocast differs from them by up to ~1e-2 in probability (3.3e-3 on SMS). Training
# still runs in the fastest native precision.
PREDICTION_PRECISION = "fp32"


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # True on CPUs with AVX512-BF16 or AMX; elsewhere bf16 is emulated and slower than fp32.
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(check and check())
    return False


def resolve_precision(setting: str, device: torch.device) -> str:
    if setting == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    if setting == "fp16" and device.type != "cuda":
        fallback = resolve_precision("auto", device)
        log.warning("fp16 is for CUDA GPUs; on this %s using %s", device.type, fallback)
        return fallback
    if setting == "bf16" and not bf16_supported(device):
        log.warning("bf16 is not native on this %s; it will run, but slower than fp32", device.type)
    return setting


def autocast(precision: str, device: torch.device):
    if precision in HALF:
        return torch.autocast(device.type, dtype=HALF[precision])
    return contextlib.nullcontext()


def loss_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """fp16 gradients underflow unless the loss is scaled up first; bf16 has fp32's range and needs no scaling
    (the scaler is then a pass-through)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
