"""Scenario 2: the SMS spam frozen-encoder recipe (tutorial 003), 10 epochs.

bertfit computes the frozen encoder's features once and trains the head on them; the peer is the
tutorial's loop, which runs the frozen encoder on every batch of every epoch (fixed padding, fp32).
Both use the same split, max length, pooling, head, class weights, optimizer and seeds.

    python -m bench.frozen_sms [--runs 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench import peers
from bench.harness import Timer, median_of, prepare_environment, publish, run_contender, table

MAX_LENGTH = 64  # both contenders; bertfit's auto choice for this split covers 99% of texts at 64 or less


def _sms_splits(rows: int | None):
    from bertfit import DataConfig
    from bertfit.data.load import load_data

    data = load_data(DataConfig(dataset="sms_spam"))
    cut = {name: (split.texts[:rows], data.labels.encode(split.labels)[:rows]) if rows else
           (split.texts, data.labels.encode(split.labels)) for name, split in data.splits.items()}  # fmt: skip
    return cut, data.labels.names


def bertfit_frozen(model: str, rows: int | None, epochs: int, seed: int) -> dict:
    from bertfit import DataConfig, TrainConfig
    from bertfit.training.run import train

    splits, names = _sms_splits(rows)
    with tempfile.TemporaryDirectory() as scratch, Timer() as timer:
        files = {}
        for split, (texts, gold) in splits.items():
            files[split] = str(Path(scratch) / f"{split}.jsonl")
            _write_jsonl(files[split], texts, [names[g] for g in gold])
        config = TrainConfig(
            data=DataConfig(train=files["train"], validation=files["validation"], test=files["test"]),
            model=model, output=str(Path(scratch) / "model"), freeze="all", class_weights="balanced",
            epochs=epochs, seed=seed, max_length=str(MAX_LENGTH), progress=False,  # the default: all epochs, the last kept
        )  # fmt: skip
        result = train(config)
    return {"wall_s": timer.seconds, "spam_f1": result.metrics["test"]["per_class"]["spam"]["f1"],
            "accuracy": result.metrics["test"]["accuracy"]}  # fmt: skip


def _write_jsonl(path: str, texts, labels) -> None:
    import json

    with open(path, "w", encoding="utf-8") as handle:
        for text, label in zip(texts, labels):
            handle.write(json.dumps({"text": text, "label": label}) + "\n")


def every_epoch_loop(model: str, rows: int | None, epochs: int, seed: int) -> dict:
    """Tutorial 003's loop: frozen encoder in every forward pass, dense 512 head, weighted NLL, fp32."""
    import numpy as np
    import torch
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.utils.class_weight import compute_class_weight
    from torch import nn
    from torch.utils.data import DataLoader, RandomSampler, TensorDataset
    from transformers import AutoModel, AutoTokenizer

    peers.seed_everything(seed)
    splits, names = _sms_splits(rows)
    with Timer() as timer:
        tokenizer = AutoTokenizer.from_pretrained(model)
        encoder = AutoModel.from_pretrained(model).requires_grad_(False)

        def tensors(split):
            texts, gold = splits[split]
            enc = tokenizer(texts, truncation=True, max_length=MAX_LENGTH, padding="max_length", return_tensors="pt")
            return enc["input_ids"], enc["attention_mask"], torch.tensor(gold)

        class Arch(nn.Module):  # the tutorial's BERT_Arch, on the encoder's mean-pooled output
            def __init__(self):
                super().__init__()
                self.encoder = encoder
                self.fc1, self.fc2 = nn.Linear(encoder.config.hidden_size, 512), nn.Linear(512, 2)
                self.dropout = nn.Dropout(0.1)

            def forward(self, ids, mask):
                hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
                m = mask.unsqueeze(-1).float()
                pooled = (hidden * m).sum(1) / m.sum(1)
                return torch.log_softmax(self.fc2(self.dropout(torch.relu(self.fc1(pooled)))), dim=1)

        net = Arch()
        train_ids, train_mask, train_y = tensors("train")
        weights = compute_class_weight("balanced", classes=np.unique(train_y.numpy()), y=train_y.numpy())
        loss_fn = nn.NLLLoss(weight=torch.tensor(weights, dtype=torch.float))
        optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-3)
        data = TensorDataset(train_ids, train_mask, train_y)
        loader = DataLoader(data, sampler=RandomSampler(data), batch_size=32)
        val_ids, val_mask, val_y = tensors("validation")
        best_loss, best_state = float("inf"), None
        for _ in range(epochs):
            net.train()
            for ids, mask, gold in loader:
                loss = loss_fn(net(ids, mask), gold)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
            net.eval()
            with torch.no_grad():
                val_loss = float(loss_fn(net(val_ids, val_mask), val_y))
            if val_loss < best_loss:  # the tutorial keeps the weights with the best validation loss
                best_loss, best_state = val_loss, {k: v.clone() for k, v in net.state_dict().items()}
        net.load_state_dict(best_state)
        test_ids, test_mask, test_y = tensors("test")
        with torch.no_grad():
            predicted = net(test_ids, test_mask).argmax(1).numpy()
    spam = names.index("spam")
    return {"wall_s": timer.seconds, "spam_f1": float(f1_score(test_y.numpy(), predicted, pos_label=spam)),
            "accuracy": float(accuracy_score(test_y.numpy(), predicted))}  # fmt: skip


COLUMNS = [("wall_s", "wall s", ".1f"), ("peak_rss_mb", "peak RSS MB", ".0f"), ("spam_f1", "spam F1", ".3f"),
           ("accuracy", "accuracy", ".4f")]  # fmt: skip


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the packaged default model)")
    parser.add_argument("--rows", type=int, help="first N rows of each split (default: all)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--peer-runs", type=int, help="runs of the every-epoch loop (default: --runs; it takes minutes each)"
    )
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    prepare_environment()
    options = {"model": args.model or peers.default_model(), "rows": args.rows, "epochs": args.epochs}
    rows = {}
    peer_runs = args.peer_runs or args.runs
    for name, target, runs in (("bertfit", "bench.frozen_sms:bertfit_frozen", args.runs),
                               ("every-epoch loop", "bench.frozen_sms:every_epoch_loop", peer_runs)):  # fmt: skip
        rows[name] = median_of([run_contender(target, {**options, "seed": s}) for s in range(1, runs + 1)])
        print(f"{name}: {rows[name]['wall_s']:.1f} s, spam F1 {rows[name]['spam_f1']:.3f}", flush=True)
    summary = (f"{args.rows or 'all'} rows per split, {args.epochs} epochs, max length {MAX_LENGTH}, medians of "
               f"{args.runs} bertfit runs and {peer_runs} of the loop (seeds from 1); "
               "wall = load + tokenize + train + score the test split.")  # fmt: skip
    return publish("Scenario 2: SMS spam, frozen encoder", "bench.frozen_sms", argv, summary, table(rows, COLUMNS),
                   not args.no_append)  # fmt: skip


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
