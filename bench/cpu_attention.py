"""Scenario 5: one fine-tuning step on CPU, the model's own attention (PyTorch's SDPA) against
bertfit's training attention (``bertfit.training.attention``), with dropout off and on, in fp32 and
bf16, in one process.

bertfit swaps its attention in only where this measures it faster; run it on each CPU kind (the
machine line says which flags it has).

    python -m bench.cpu_attention [--model NAME] [--rounds 5] [--steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.harness import bf16_native, publish

TEXT = "The book was written by her on a rainy day ."  # a CoLA-length sentence
BATCH = 32


def step_ms(model, batch, labels, optimizer, precision: str, ours: bool, steps: int) -> float:
    """Mean milliseconds of ``steps`` full training steps (forward, backward, AdamW)."""
    from contextlib import nullcontext

    import torch

    from bertfit.encoding.precision import autocast
    from bertfit.modeling import logits_of
    from bertfit.training.attention import training_attention

    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    with training_attention(model) if ours else nullcontext():
        start = time.perf_counter()
        for _ in range(steps):
            with autocast(precision, torch.device("cpu")):
                logits = logits_of(model(**batch))
            loss_fn(logits.float(), labels).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / steps * 1000


def step_arguments(description: str, argv: list[str] | None) -> argparse.Namespace:
    from bertfit.config import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no-append", action="store_true", help="print only; do not add to bench/RESULTS.md")
    return parser.parse_args(argv)


def step_inputs(model: str) -> tuple[str, dict]:
    """The model's source and a batch of ``BATCH`` copies of a CoLA-length sentence."""
    from bertfit.modeling import load_tokenizer, resolve_model_source

    source = resolve_model_source(model)
    return source, dict(load_tokenizer(source)([TEXT] * BATCH, padding=True, return_tensors="pt"))


def step_model(model: str, source: str, dropout: float | None = None):
    """A CoLA classifier as bertfit builds it, random labels and its AdamW, seeded."""
    import torch

    from bertfit.config import DataConfig, TrainConfig
    from bertfit.modeling import build_model
    from bertfit.tasks import LabelSet, SingleLabelTask
    from bertfit.training.loop import build_optimizer

    torch.manual_seed(0)
    config = TrainConfig(data=DataConfig(dataset="cola"), model=model, dropout=dropout)
    built = build_model(config, source, SingleLabelTask(LabelSet(("unacceptable", "acceptable"))))
    return built, torch.randint(0, 2, (BATCH,)), build_optimizer(built, 1e-5, 0.01, 1e-8)


def main(argv: list[str] | None = None) -> str:
    args = step_arguments(__doc__, argv)
    source, batch = step_inputs(args.model)
    lines = [
        "| dropout | precision | SDPA ms/step | bertfit attention ms/step | SDPA / bertfit |",
        "|---|---|---|---|---|",
    ]
    precisions = ("fp32", "bf16") if bf16_native() else ("fp32",)
    for dropout in (0.0, 0.1):
        model, labels, optimizer = step_model(args.model, source, dropout)
        for precision in precisions:
            for ours in (False, True):  # warm-up
                step_ms(model, batch, labels, optimizer, precision, ours, 2)
            times: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.rounds):
                for ours in (False, True):  # alternated, so drifts in the machine's speed hit both alike
                    times[ours].append(step_ms(model, batch, labels, optimizer, precision, ours, args.steps))
            sdpa, mine = statistics.median(times[False]), statistics.median(times[True])
            lines.append(f"| {dropout} | {precision} | {sdpa:.1f} | {mine:.1f} | {sdpa / mine:.2f}× |")
    summary = (f"{BATCH} texts of {batch['input_ids'].shape[1]} tokens, medians of {args.rounds} rounds of "
               f"{args.steps} steps, {args.model}")  # fmt: skip
    return publish("CPU training attention", "bench.cpu_attention", argv, summary, "\n".join(lines), not args.no_append)


if __name__ == "__main__":
    main()
