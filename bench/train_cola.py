"""Scenario 1 (and 4): CoLA full fine-tuning, bertfit vs the tutorial loop and HF Trainer, plus training MFU.

    python -m bench.train_cola                      # the full scenario: 4 epochs, all rows, 3 runs
    python -m bench.train_cola --train-rows 2000 --epochs 1 --runs 3   # a quicker speed-only reading
    python -m bench.train_cola --runs 1 --first-seed 2 --only "HF Trainer default (pad 128, fp32)"   # one seed

Every contender gets the same model, rows, epochs, batch size, learning rate, warmup and weight decay.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from functools import partial
from pathlib import Path

from bench import peers
from bench.harness import (
    SHARED_DATA,
    Timer,
    median_of,
    prepare_environment,
    publish,
    run_contender,
    table,
)


def bertfit_cola(model: str, train_rows: int | None, eval_rows: int | None, epochs: int, batch_size: int,
                 learning_rate: float, warmup_ratio: float, weight_decay: float, seed: int,
                 dropout: float | None = None, freeze: str = "none") -> dict:  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch, Timer() as timer:
        # Every contender's wall time includes importing transformers (bertfit imports it itself).
        from bertfit import DataConfig, TrainConfig
        from bertfit.training.run import train

        files = _cola_files(Path(scratch), train_rows, eval_rows)
        config = TrainConfig(
            data=DataConfig(train=files["train"], validation=files["validation"], test=files["test"],
                            text_column="3", label_column="1"),
            model=model, output=str(Path(scratch) / "model"), epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate, warmup_ratio=warmup_ratio, weight_decay=weight_decay, seed=seed,
            dropout=dropout, freeze=freeze, progress=False, patience=0,  # every epoch runs, as the peers' do
        )  # fmt: skip
        result = train(config)
    from bertfit.modeling import encoder_config, load_tokenizer

    fit_s = sum(epoch.seconds for epoch in result.history)
    texts, _ = peers.cola_split("train", train_rows)
    tokenizer = load_tokenizer(model)
    tokens = sum(len(x) for x in tokenizer(texts, truncation=True, max_length=result.max_length)["input_ids"]) * epochs
    test = result.metrics["test"]
    steps = math.ceil(len(texts) / batch_size) * epochs
    shape = encoder_config(result.predictor.model)
    return {"wall_s": timer.seconds, "fit_s": fit_s, "tokens_per_s": tokens / fit_s, "mcc": test["mcc"],
            "f1_pos": test["per_class"]["1"]["f1"], "non_embedding_params": _non_embedding_params(result.predictor.model),
            "tokens_per_step": tokens / steps, "hidden_size": shape.hidden_size,
            "intermediate_size": shape.intermediate_size, "precision": result.manifest.precision}  # fmt: skip


def _cola_files(folder: Path, train_rows: int | None, eval_rows: int | None) -> dict[str, str]:
    """The CoLA files, cut to the first rows when asked (same rows the peers read)."""
    names = {"train": ("in_domain_train.tsv", train_rows), "validation": ("in_domain_dev.tsv", eval_rows),
             "test": ("out_of_domain_dev.tsv", eval_rows)}  # fmt: skip
    files = {}
    for split, (name, rows) in names.items():
        source = SHARED_DATA / "cola" / name
        if not rows:
            files[split] = str(source)
            continue
        with open(source, encoding="utf-8", newline="") as handle:
            lines = handle.readlines()[:rows]
        target = folder / name
        target.write_text("".join(lines), encoding="utf-8")
        files[split] = str(target)
    return files


def _non_embedding_params(model) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name and "pooler" not in name)


def matmul_peak(sizes: tuple[int, ...] = (1024, 2048, 4096), seconds: float = 3.0,
                precisions: tuple[str, ...] = ("fp32", "bf16")) -> dict:  # fmt: skip
    """This machine's dense matmul rate (TFLOP/s) in each of ``precisions``, all threads: the best of
    square products of a few sizes, ``seconds`` in all per precision (no one size is fastest on every
    machine). bf16 is worth timing only where it is native: elsewhere it is emulated, hundreds of times
    slower, and no contender trains in it."""
    import torch

    rates = {}
    for name in precisions:
        dtype = _dtype(name)
        best = 0.0
        for size in sizes:
            a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
            best = max(best, 2 * size**3 / _seconds_per_call(partial(torch.matmul, a, b), seconds / len(sizes)) / 1e12)
        rates[f"{name}_tflops"] = best
    return {"wall_s": 0.0, **rates}


def _dtype(precision: str):
    import torch

    from bertfit.encoding.precision import HALF

    return HALF.get(precision, torch.float32)


def step_matmul_rate(rows: int, hidden_size: int, intermediate_size: int, seconds: float = 0.5,
                     precision: str = "bf16") -> dict:  # fmt: skip
    """The rate of one layer's training-step matrix products alone, at a batch of ``rows`` tokens, in
    ``precision``.

    A BERT layer has four hidden × hidden linears (query, key, value, output) and the feed-forward
    pair hidden × intermediate and back; a training step runs each as three products (forward, input
    gradient, weight gradient), 6 × rows × weights FLOPs in all. Timed with nothing else in the step,
    this rate is the most the step could reach, so rate / peak bounds its MFU."""
    import torch

    shapes = [(hidden_size, hidden_size)] * 4 + [(hidden_size, intermediate_size), (intermediate_size, hidden_size)]
    elapsed = weights = 0
    for fan_in, fan_out in shapes:
        x = torch.randn(rows, fan_in, dtype=_dtype(precision))
        w = torch.randn(fan_out, fan_in, dtype=_dtype(precision))
        dy = torch.randn(rows, fan_out, dtype=_dtype(precision))
        for a, b in ((x, w.t()), (dy, w), (dy.t(), x)):  # forward, input gradient, weight gradient
            elapsed += _seconds_per_call(partial(torch.matmul, a, b), seconds)
        weights += fan_in * fan_out
    return {"wall_s": 0.0, "rows": rows, "tflops": 6 * rows * weights / elapsed / 1e12}


def step_parameter_work(model: str, seconds: float = 2.0, precision: str = "bf16") -> dict:
    """Seconds a training step spends on work that grows with the weights, not the tokens.

    In bf16, autocast casts each weight matrix to bf16 for the forward pass and its bf16 gradient back
    to fp32 in the backward pass (fp32 steps have no casts); then bertfit takes the gradients' global
    norm (for clipping) and runs fused AdamW over every trainable parameter. This times those passes
    alone, on the encoder's own parameters trained as bertfit trains them (word embeddings fixed), at
    whatever batch size."""
    import torch

    from bertfit.modeling import freeze_word_embeddings, load_encoder
    from bertfit.training.loop import build_optimizer, clip_gradients

    encoder = load_encoder(model)
    freeze_word_embeddings(encoder)
    params = [p for p in encoder.parameters() if p.requires_grad]
    matrices = [p for p in params if p.ndim >= 2]
    for param in params:
        param.grad = torch.randn_like(param) * 1e-3
    optimizer = build_optimizer(encoder, 1e-4, 0.01, 1e-8)

    def step() -> None:
        if precision == "bf16":
            weights = [w.to(torch.bfloat16) for w in matrices]  # forward: autocast's weight casts
            for matrix, half in zip(matrices, weights):  # backward: bf16 weight gradients back to fp32
                matrix.grad = half.float()
        clip_gradients(optimizer, params, 1.0, fold=True)
        optimizer.step()

    return {"wall_s": 0.0, "seconds_per_step": _seconds_per_call(step, seconds),
            "trainable_params": sum(p.numel() for p in params)}  # fmt: skip


def _seconds_per_call(call, seconds: float, warm_ups: int = 3) -> float:
    """Mean seconds of ``call()``, repeated for ``seconds`` after a few untimed calls."""
    for _ in range(warm_ups):
        call()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        count += 1
    return (time.perf_counter() - start) / count


CONTENDERS = {
    # The peers train with the model's own dropout (0.1); bertfit does too unless --dropout says
    # otherwise, so that the times compare the same recipe (bertfit's default is no dropout).
    "bertfit": ("bench.train_cola:bertfit_cola", {}),
    "tutorial loop (pad 64, fp32)": ("bench.peers:tutorial_loop", {}),
    "HF Trainer default (pad 128, fp32)": ("bench.peers:hf_trainer", {"expert": False}),
    "HF Trainer expert (dynamic, grouped, bf16 where native)": ("bench.peers:hf_trainer", {"expert": True}),
}
COLUMNS = [("wall_s", "wall s", ".1f"), ("fit_s", "train s", ".1f"), ("tokens_per_s", "tokens/s", ".0f"),
           ("peak_rss_mb", "peak RSS MB", ".0f"), ("mcc", "test MCC", ".3f")]  # fmt: skip


_WEIGHT_WORK = {
    "bf16": "autocast's weight and gradient casts, the gradient norm and fused AdamW",
    "fp32": "the gradient norm and fused AdamW",
}


def _step_budget(ours: dict, products_tflops: float, peak_tflops: float, model: str, quick: bool) -> str:
    """Where bertfit's mean step goes: the matrix products at their measured rate, the work that grows
    with the weights (timed alone), and the rest; and the MFU a step would reach with the rest at zero."""
    step_s = ours["tokens_per_step"] / ours["tokens_per_s"]
    products_s = 6 * ours["non_embedding_params"] * ours["tokens_per_step"] / (products_tflops * 1e12)
    work = run_contender("bench.train_cola:step_parameter_work",
                         {"model": model, "seconds": 0.2 if quick else 2.0, "precision": ours["precision"]})  # fmt: skip
    weights_s = work["seconds_per_step"]
    reach = products_tflops * products_s / (products_s + weights_s) / peak_tflops
    return (f"bertfit's mean step takes {1e3 * step_s:.0f} ms: {1e3 * products_s:.0f} ms for the matrix products at "
            f"that rate, {1e3 * weights_s:.0f} ms for the work that grows with the {work['trainable_params'] / 1e6:.1f} M "
            f"trainable weights ({_WEIGHT_WORK[ours['precision']]}, timed "
            f"alone), and {1e3 * (step_s - products_s - weights_s):.0f} ms for the rest (attention, element-wise "
            f"kernels, dispatch). With the rest at zero, a step of this size would reach {100 * reach:.1f}% MFU.")  # fmt: skip


def _mfu(ours: dict, model: str, quick: bool) -> str:
    """bertfit's training MFU against this machine's matmul peak in the precision it trained in (bf16
    where native, else fp32), the bound a step of its size reaches, and where the step's time goes."""
    precision = ours["precision"]
    precisions = ("fp32",) if precision == "fp32" else ("fp32", precision)
    timing = {"sizes": [512], "seconds": 0.5} if quick else {}
    peak = run_contender("bench.train_cola:matmul_peak", {**timing, "precisions": precisions})
    top = peak[f"{precision}_tflops"]
    flops = 6 * ours["non_embedding_params"] * ours["tokens_per_s"]
    others = "".join(f"; {name} peak {peak[f'{name}_tflops']:.2f} TFLOP/s" for name in precisions if name != precision)
    text = (f"Training MFU (bertfit, {precision}, 6 × {ours['non_embedding_params'] / 1e6:.1f} M non-embedding params "
            f"× {ours['tokens_per_s']:.0f} tokens/s = {flops / 1e12:.3f} TFLOP/s): {100 * flops / 1e12 / top:.1f}% of "
            f"the measured {precision} matmul peak ({top:.2f} TFLOP/s{others}).")  # fmt: skip
    shape = {"rows": round(ours["tokens_per_step"]), "hidden_size": ours["hidden_size"],
             "intermediate_size": ours["intermediate_size"], "seconds": 0.02 if quick else 0.5,
             "precision": precision}  # fmt: skip
    bound = run_contender("bench.train_cola:step_matmul_rate", shape)["tflops"]
    text += (f" The step's matrix products alone, timed at the mean batch ({shape['rows']} real tokens a step), "
             f"run at {bound:.3f} TFLOP/s: {100 * bound / top:.1f}% of that peak is the most MFU a step of this "
             f"size reaches here, and bertfit's training runs at {100 * flops / 1e12 / bound:.1f}% of that bound.")  # fmt: skip
    return text + " " + _step_budget(ours, bound, top, model, quick)


def _bertfit_recipe(args: argparse.Namespace, frozen: bool) -> str:
    recipe = f"bertfit dropout {args.dropout}" + (" (the peers')" if args.dropout == 0.1 else "")
    return recipe + (f", --freeze {args.freeze}" if frozen else "")


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder or registry name such as mpnet-base (default: the "
                        "packaged default model)")  # fmt: skip
    parser.add_argument("--train-rows", type=int, help="first N training rows (default: all 8551)")
    parser.add_argument("--eval-rows", type=int, help="first N validation and test rows (default: all)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--first-seed",
        type=int,
        default=1,
        help="seeds first-seed .. first-seed + runs - 1: a peer that takes most of an hour a run "
        "can be run one seed at a time and its runs' ratios collected",
    )
    parser.add_argument("--only", action="append", choices=list(CONTENDERS), help="run only these (repeatable)")
    parser.add_argument("--freeze", default="none", help="bertfit only: --freeze N keeps the embeddings and the "
                        "bottom N layers fixed (a speed candidate; the peers still train every layer)")  # fmt: skip
    parser.add_argument("--dropout", type=float, default=0.1, help="bertfit only (default 0.1, the peers' dropout; "
                        "0 is bertfit's own default)")  # fmt: skip
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to bench/RESULTS.md")
    args = parser.parse_args(argv)
    prepare_environment()
    from bertfit.modeling import resolve_model_source

    model = resolve_model_source(args.model) if args.model else peers.default_model()
    options = {"model": model, "train_rows": args.train_rows, "eval_rows": args.eval_rows,
               "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
               "warmup_ratio": 0.1, "weight_decay": 0.01}  # fmt: skip
    seeds = range(args.first_seed, args.first_seed + args.runs)
    frozen = args.freeze.lower() != "none"
    rows = {}
    for name, (target, extra) in CONTENDERS.items():
        if name == "bertfit" or not args.only or name in args.only:
            ours = {"dropout": args.dropout, "freeze": args.freeze} if name == "bertfit" else {}
            runs = [run_contender(target, {**options, **extra, **ours, "seed": seed}) for seed in seeds]
            rows[name] = median_of(runs)
            print(f"{name}: {rows[name]['wall_s']:.1f} s, MCC {rows[name]['mcc']:.3f}", flush=True)
    quick = bool(args.train_rows and args.train_rows < 500)  # a smoke run: time the products briefly
    # A frozen layer runs forward only, so 6 FLOPs a weight a token no longer holds: no MFU then.
    if frozen:
        mfu = f"bertfit ran with --freeze {args.freeze}; MFU is not computed."
    else:
        mfu = _mfu(rows["bertfit"], options["model"], quick)
    rows_desc = f"{args.train_rows or 'all'} training rows, {args.eval_rows or 'all'} validation/test rows"
    summary = (f"{rows_desc}, {args.epochs} epochs, batch {args.batch_size}, lr {args.learning_rate}, warmup 10%, "
               f"weight decay 0.01; {_bertfit_recipe(args, frozen)}; medians of {args.runs} runs (seeds {seeds[0]}..{seeds[-1]}); wall = import transformers + load + "
               "tokenize + train + score the test split; tokens/s counts real (non-padding) tokens.")  # fmt: skip
    return publish("Scenario 1: CoLA full fine-tuning", "bench.train_cola", argv, summary,
                   table(rows, COLUMNS) + "\n\n" + mfu, not args.no_append)  # fmt: skip


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
