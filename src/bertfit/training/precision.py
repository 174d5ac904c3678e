"""Pick the compute precision at run time: bf16 autocast where the hardware does it natively."""

from __future__ import annotations

import contextlib
import logging

import torch

log = logging.getLogger(__name__)


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
    if setting == "bf16" and not bf16_supported(device):
        log.warning("bf16 is not native on this %s; it will run, but slower than fp32", device.type)
    return setting


def autocast(precision: str, device: torch.device):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
