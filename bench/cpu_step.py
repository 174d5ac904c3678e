"""Scenario 6: one CoLA-sized fine-tuning step on the CPU, eager against ``torch.compile``, in the
precision bertfit trains in on this CPU (bf16 where native, else fp32), in one process.

    python -m bench.cpu_step [--model NAME] [--rounds 5] [--steps 20]
    OMP_PROC_BIND=close OMP_PLACES=cores python -m bench.cpu_step   # with threads pinned to cores

The compiled step's first calls (compiling) are left out of its time and reported apart: what a
run would pay once.
"""

from __future__ import annotations

import os
import statistics
import time

from bench.cpu_attention import BATCH, step_arguments, step_inputs, step_model, step_ms
from bench.harness import publish


def main(argv: list[str] | None = None) -> str:
    import torch

    from bertfit.encoding.precision import resolve_precision

    args = step_arguments(__doc__, argv)
    source, batch = step_inputs(args.model)
    precision = resolve_precision("auto", torch.device("cpu"))
    eager, labels, optimizer = step_model(args.model, source)
    compiled = torch.compile(eager)  # shares eager's weights, so one optimizer steps both
    start = time.perf_counter()
    step_ms(compiled, batch, labels, optimizer, precision, False, 3)  # compiles forward and backward
    compile_s = time.perf_counter() - start
    step_ms(eager, batch, labels, optimizer, precision, False, 3)
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(args.rounds):  # alternated, so drifts in the machine's speed hit both alike
        times["eager"].append(step_ms(eager, batch, labels, optimizer, precision, False, args.steps))
        times["compiled"].append(step_ms(compiled, batch, labels, optimizer, precision, False, args.steps))
    mine, theirs = statistics.median(times["eager"]), statistics.median(times["compiled"])
    pinned = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_PROC_BIND", "OMP_PLACES") if k in os.environ)
    lines = [
        "| precision | threads | eager ms/step | compiled ms/step | eager / compiled | first compiled steps s |",
        "|---|---|---|---|---|---|",
        f"| {precision} | {torch.get_num_threads()}{' ' + pinned if pinned else ''} | {mine:.1f} | {theirs:.1f} | "
        f"{mine / theirs:.2f}× | {compile_s:.0f} |",
    ]
    summary = (f"{BATCH} texts of {batch['input_ids'].shape[1]} tokens, no dropout (bertfit's default), medians "
               f"of {args.rounds} rounds of {args.steps} steps, {args.model}")  # fmt: skip
    return publish("CPU training step, eager vs torch.compile", "bench.cpu_step", argv, summary, "\n".join(lines),
                   not args.no_append)  # fmt: skip


if __name__ == "__main__":
    main()
