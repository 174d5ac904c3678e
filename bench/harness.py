"""Run contenders in fresh processes (clean peak RSS, same thread settings), tabulate, append to RESULTS.md.

A contender is a function ``bench.<module>.<name>(**options) -> dict`` returning at least ``wall_s``;
``python -m bench.harness MODULE:FUNCTION JSON`` runs one and prints its result as the last line.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
SHARED_DATA = ROOT.parent / "shared" / "data"


def prepare_environment() -> None:
    """Point bertfit's registry at the shared data and keep the hub offline, for this process and its children."""
    os.environ.setdefault("BERTFIT_DATA_DIR", str(SHARED_DATA))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_contender(target: str, options: dict, timeout: float | None = None) -> dict:
    """``target`` (``module:function``) in a child process; its result plus ``peak_rss_mb``.

    ``BERTFIT_BENCH_IN_PROCESS=1`` calls it in this process instead: the smoke tests use it to check
    that every contender runs, in seconds; its numbers are then not comparable.
    """
    prepare_environment()
    if os.environ.get("BERTFIT_BENCH_IN_PROCESS") == "1":
        return _call(target, options)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "bench.harness", target, json.dumps(options)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{target} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {target} {json.dumps(options.get('seed', ''))}: {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


def median_of(results: list[dict]) -> dict:
    """Per-key medians of numeric fields (the other fields from the first run)."""
    merged = dict(results[0])
    for key, value in results[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            merged[key] = statistics.median(r[key] for r in results)
    merged["runs"] = len(results)
    return merged


def points(change: float) -> str:
    """A change in points with its sign, one decimal; a change that rounds to nothing reads 0.0, never -0.0."""
    shown = f"{change:+.1f}"
    return "0.0" if float(shown) == 0 else shown


def table(rows: dict[str, dict], columns: list[tuple[str, str, str]], reference: str = "bertfit") -> str:
    """Markdown table; ``columns`` are (key, header, format). ``speedup`` = peer wall time / reference's."""
    head = ["contender", *(h for _, h, _ in columns), f"{reference} speed-up"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = rows[reference]["wall_s"]
    for name, row in rows.items():
        cells = [name] + [
            format(row[k], f) if isinstance(row.get(k), (int, float)) else str(row.get(k, "")) for k, _, f in columns
        ]
        cells.append("—" if name == reference else f"{row['wall_s'] / base:.2f}×")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return (f"{cpu}, {os.cpu_count()} cores, CPU flags: {cpu_flags()}{isa_limits()}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads)")  # fmt: skip


# Environment variables that cap the instruction sets torch's kernels use (ATen's own, oneDNN's and
# MKL's). All three at AVX2 make a CPU with AVX-512 and AMX compute as an AVX2-only one does, bf16
# included (torch then reports bf16 as not native), on the same cores: the way to measure the AVX2 kind
# of machine where only the other kind is at hand. Its clock and caches stay this CPU's.
ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def bf16_native() -> bool:
    """Whether this CPU does bf16 natively: the bench runs bf16 contenders and timings only then, since
    elsewhere bf16 is emulated, far slower than fp32, and no one would train or predict in it."""
    import torch

    from bertfit.encoding.precision import bf16_supported

    return bf16_supported(torch.device("cpu"))


def isa_limits() -> str:
    """``""``, or the instruction-set caps in force, said beside the flags so no table hides them."""
    caps = [f"{name}={os.environ[name]}" for name in ISA_LIMITS if os.environ.get(name)]
    return f" (kernels capped: {' '.join(caps)})" if caps else ""


SPEED_FLAGS = ("avx512_bf16", "amx_bf16", "avx512f", "avx2")  # what decides bf16 vs fp32 speed on a CPU


def cpu_flags() -> str:
    """Which of ``SPEED_FLAGS`` the CPU has: timings from CPUs with different ones do not compare."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    present = set(text.split())
    return " ".join(flag for flag in SPEED_FLAGS if flag in present) or "none of " + ", ".join(SPEED_FLAGS)


def publish(title: str, module: str, argv, summary: str, body: str, append: bool) -> str:
    """Print the command, what it measured and the tables; append them to RESULTS.md unless told not to."""
    text = f"`{shlex.join(['python', '-m', module, *(argv or [])])}` — {summary}\n\n{body}"
    print(text)
    if append:
        append_results(title, text)
    return text


def append_results(title: str, body: str, path: Path = RESULTS) -> None:
    text = (
        path.read_text(encoding="utf-8")
        if path.exists()
        else "# Benchmark results\n\nAppended by the scripts in `bench/`; newest last.\n"
    )
    text += f"\n## {title} — {date.today().isoformat()}\n\nMachine: {machine()}\n\n{body}\n"
    path.write_text(text, encoding="utf-8")


def peak_rss_mb() -> float:
    """This process's own high-water mark. (``ru_maxrss`` is not: Linux carries the parent's peak
    over ``fork``+``exec``, so every child would report at least its parent's.)"""
    return _status_mb("VmHWM:") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Resident memory now."""
    return _status_mb("VmRSS:") or 0.0


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


def _call(target: str, options: dict) -> dict:
    module, function = target.split(":")
    result = getattr(importlib.import_module(module), function)(**options)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


def _child(target: str, options: str) -> None:
    print(json.dumps(_call(target, json.loads(options))))


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
