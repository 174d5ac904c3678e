"""Pick the compute precision at run time: bf16 autocast where the hardware does it natively and faster than
fp32; fp16 with loss scaling on CUDA GPUs that lack bf16."""

from __future__ import annotations

import contextlib
import functools
import logging
import time

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


# Native is not always faster. On a 2-core Xeon with avx512_bf16 and avx512_fp16 but no AMX exposed, a
# MiniLM training step (32 texts of 64 tokens) took 1.8 s under bf16 autocast against 0.9 s in fp32, and a
# 1024x384 by 384x1536 matmul 9 ms against 5.5 ms; on AMD EPYC CPUs with avx512_bf16 bf16 trained faster. So
# `auto` times that matmul both ways, once per process (about 0.2 s), and picks bf16 on a CPU only where it
# is at least this much faster.
BF16_MIN_SPEEDUP = 1.1


@functools.lru_cache(maxsize=1)
def cpu_bf16_speedup(repeats: int = 5) -> float:
    """fp32 time over bf16-autocast time of an encoder-sized matmul on this CPU (best of ``repeats`` each)."""
    generator = torch.Generator().manual_seed(0)
    inputs, weight = torch.randn(1024, 384, generator=generator), torch.randn(1536, 384, generator=generator)
    best = {}
    for precision in ("fp32", "bf16"):
        with torch.no_grad(), autocast(precision, torch.device("cpu")):
            torch.nn.functional.linear(inputs, weight)  # the first call picks and primes the kernel
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                torch.nn.functional.linear(inputs, weight)
                times.append(time.perf_counter() - started)
        best[precision] = min(times)
    return best["fp32"] / max(best["bf16"], 1e-9)


def bf16_faster(device: torch.device) -> bool:
    """Whether training in bf16 beats fp32 here: native bf16 on a GPU; on a CPU, native and measured faster."""
    return bf16_supported(device) and (device.type != "cpu" or _cpu_bf16_faster())


@functools.lru_cache(maxsize=1)
def _cpu_bf16_faster() -> bool:
    speedup = cpu_bf16_speedup()
    if speedup < BF16_MIN_SPEEDUP:
        log.info("bf16 is native on this CPU but ran %.1fx the time of fp32 in a matmul probe: using fp32 "
                 "(--precision bf16 to use it anyway)", 1 / speedup)  # fmt: skip
    return speedup >= BF16_MIN_SPEEDUP


def resolve_precision(setting: str, device: torch.device) -> str:
    if setting == "auto":
        return "bf16" if bf16_faster(device) else "fp32"
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
