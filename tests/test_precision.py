"""`--precision auto` on a CPU: bf16 only where it is native and a timed probe finds it faster than fp32."""

import logging

import pytest
import torch

from bertfit.encoding import precision

CPU = torch.device("cpu")


@pytest.fixture
def cpu_like(monkeypatch):
    """Pretend bf16 is native and the probe measured ``speedup``; the cached decision is cleared around it."""

    def pretend(speedup: float, native: bool = True) -> None:
        monkeypatch.setattr(precision, "bf16_supported", lambda device: native)
        monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: speedup)
        precision._cpu_bf16_faster.cache_clear()

    yield pretend
    precision._cpu_bf16_faster.cache_clear()


def test_auto_trains_in_fp32_where_native_bf16_is_measured_slower_and_says_why(cpu_like, caplog):
    cpu_like(0.6)
    with caplog.at_level(logging.INFO, logger="bertfit.encoding.precision"):
        assert precision.resolve_precision("auto", CPU) == "fp32"
    assert "ran 1.7x the time of fp32" in caplog.text and "--precision bf16" in caplog.text
    assert precision.resolve_precision("bf16", CPU) == "bf16"  # asked for: used, no probe in the way


def test_auto_trains_in_bf16_where_it_is_native_and_faster(cpu_like):
    cpu_like(1.8)
    assert precision.resolve_precision("auto", CPU) == "bf16"
    cpu_like(1.8, native=False)  # emulated bf16 is never chosen, whatever a probe would say
    assert precision.resolve_precision("auto", CPU) == "fp32"


def test_the_probe_times_both_precisions_on_this_cpu():
    assert precision.cpu_bf16_speedup(repeats=2) > 0
