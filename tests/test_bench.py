"""The benchmarks run end to end on a tiny model and a few rows, so they cannot rot."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True)
def in_process(monkeypatch):
    """Contenders run in the test process: the same code paths, without a torch import per child."""
    monkeypatch.setenv("BERTFIT_BENCH_IN_PROCESS", "1")


def _rows(body: str, header: str) -> list[str]:
    lines = body.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    return [line for line in lines[start + 2 :] if line.startswith("|")]


def test_training_benchmark_prints_its_table(tiny_bert):
    from bench import train_cola

    body = train_cola.main(["--model", str(tiny_bert), "--train-rows", "40", "--eval-rows", "16", "--epochs", "1",
                            "--runs", "1", "--no-append"])  # fmt: skip
    rows = _rows(body, "| contender | wall s")
    assert [r.split("|")[1].strip() for r in rows] == list(train_cola.CONTENDERS)
    assert all(r.rstrip(" |").endswith("×") for r in rows[1:])
    assert "Training MFU" in body and "matmul peak (" in body
    assert "The step's matrix products alone" in body and "of that bound" in body
    assert "trainable weights (" in body and "fused AdamW, timed alone" in body and "% MFU." in body


def test_frozen_benchmark_prints_its_table(tiny_bert):
    from bench import frozen_sms

    body = frozen_sms.main(["--model", str(tiny_bert), "--rows", "40", "--epochs", "2", "--runs", "1", "--no-append"])
    assert [r.split("|")[1].strip() for r in _rows(body, "| contender")] == ["bertfit", "every-epoch loop"]


def test_prediction_benchmark_prints_its_tables(tiny_bert):
    from bench import harness, predict

    body = predict.main(["--model", str(tiny_bert), "--limit", "40", "--rows", "200", "--runs", "1", "--no-append"])
    names = [r.split("|")[1].strip() for r in _rows(body, "| contender")]
    native = ["bertfit torch bf16"] if harness.bf16_native() else []  # emulated bf16 is no contender
    assert names[: 1 + len(native)] == ["bertfit torch", *native] and "pipeline (batch_size 32)" in names
    assert "agreement" in body
    assert [r.split("|")[1].strip() for r in _rows(body, "| rows |")] == ["20", "200"]


@pytest.fixture
def own_model_dir(small_model_dir, tmp_path) -> Path:
    """A copy of the shared model folder: the serving bench exports into the folder it is given."""
    import shutil

    return Path(shutil.copytree(small_model_dir, tmp_path / "model"))


def test_serving_benchmark_prints_its_table(own_model_dir):
    pytest.importorskip("fastapi")
    from bench import serve_load

    body = serve_load.main(["--model-dir", str(own_model_dir), "--requests", "60", "--clients", "4", "--idle", "5",
                            "--no-append"])  # fmt: skip
    rows = _rows(body, "| server |")
    assert [r.split("|")[1].strip() for r in rows] == list(serve_load.MODES)
    assert all(
        r.split("|")[2].strip() == "60" and r.split("|")[3].strip() == "0" for r in rows
    )  # all answered, no errors
    assert rows[-1].rstrip(" |").endswith("1.00×")


def test_ray_prediction_benchmark_prints_its_table(small_model_dir):
    pytest.importorskip("ray")
    from bench import ray_predict

    # One Ray run (2 actors) of the two the benchmark makes: tests/test_ray.py checks the engine's answers.
    body = ray_predict.main(["--model-dir", str(small_model_dir), "--rows", "200", "--shards", "2", "--actors", "2",
                             "--no-append"])  # fmt: skip
    rows = _rows(body, "| engine |")
    assert [r.split("|")[1].strip() for r in rows] == ["local engine (this process)", "Ray Data, 2 actors"]
    assert all(r.split("|")[2].strip() == "200" for r in rows)


def test_attention_benchmark_prints_its_table(tiny_bert):
    from bench import cpu_attention, harness

    body = cpu_attention.main(["--model", str(tiny_bert), "--rounds", "1", "--steps", "1", "--no-append"])
    rows = [line for line in body.splitlines() if line.startswith("| 0.0 |") or line.startswith("| 0.1 |")]
    assert len(rows) == (4 if harness.bf16_native() else 2) and all(row.rstrip(" |").endswith("×") for row in rows)


def test_machine_line_says_when_kernels_are_capped(monkeypatch):
    """A run under ATEN_CPU_CAPABILITY and friends computes as a lesser CPU does; its table must say so."""
    from bench import harness

    for name in harness.ISA_LIMITS:
        monkeypatch.delenv(name, raising=False)
    assert "kernels capped" not in harness.machine()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert "(kernels capped: ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2)" in harness.machine()


def test_training_benchmark_runs_bertfit_with_frozen_layers(tiny_bert):
    from bench import train_cola

    body = train_cola.main(["--model", str(tiny_bert), "--train-rows", "40", "--eval-rows", "16", "--epochs", "1",
                            "--runs", "1", "--freeze", "1", "--only", "tutorial loop (pad 64, fp32)", "--no-append"])  # fmt: skip
    assert [r.split("|")[1].strip() for r in _rows(body, "| contender | wall s")] == [
        "bertfit",
        "tutorial loop (pad 64, fp32)",
    ]
    assert "bertfit dropout 0.1 (the peers'), --freeze 1" in body and "MFU is not computed" in body


def test_padding_counts_less_padding_in_buckets_than_in_shuffled_batches(tiny_bert):
    from bench import padding

    from bertfit.modeling import load_tokenizer

    row = padding.count("cola", load_tokenizer(str(tiny_bert)), batch_size=32)
    assert row["rows"] == 8551 and 5 < row["mean_tokens"] < 20
    assert row["shuffled"] < row["bucketed"] <= 1.0


def test_step_benchmark_times_eager_and_compiled(tiny_bert):
    from bench import cpu_step

    body = cpu_step.main(["--model", str(tiny_bert), "--rounds", "1", "--steps", "1", "--no-append"])
    row = _rows(body, "| precision |")[0]
    assert row.split("|")[5].strip().endswith("×")


def test_whole_process_prediction_benchmark_runs_bertfit_and_the_pipeline(small_model_dir):
    from bench import predict_process

    body = predict_process.main(["--model-dir", str(small_model_dir), "--rows", "30", "--runs", "1", "--no-append"])
    rows = _rows(body, "| contender |")
    assert [r.split("|")[1].strip() for r in rows] == ["bertfit predict --backend auto", "pipeline (defaults)"]
    assert all(r.rstrip(" |").endswith("×") for r in rows[1:])


def test_few_shot_benchmark_draws_seeded_rows_runs_bertfit_and_tabulates(tiny_sentence_encoder, tmp_path):
    """SetFit itself runs only in its own environment (bench/setfit_peer.py), too slow for the suite; the
    draws, bertfit's contender and the table are checked here."""
    from bench import fewshot

    pool = [(f"text {i}", label) for i, label in enumerate(["a", "b", "c"] * 20)]
    first, again = fewshot.draw(pool, 4, seed=1), fewshot.draw(pool, 4, seed=1)
    assert first == again and sorted(label for _, label in first) == ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    assert fewshot.draw(pool, 4, seed=2) != first

    rows = [(f"good {w}", "pos") if i % 2 else (f"bad {w}", "neg") for i, w in enumerate(["day", "film", "song"] * 6)]
    files = {name: fewshot.write_rows(tmp_path / f"{name}.csv", rows) for name in ("train", "selection", "test")}
    result = fewshot.run_bertfit("auto", files, tmp_path, seed=0, model=str(tiny_sentence_encoder))
    assert result["recipe"] == "few-shot" and 0 <= result["test"] <= 1 and result["train_s"] > 0
    runs = [{"dataset": "toy", "per_class": 8, "draw": d, "method": "auto", **result} for d in range(2)]
    table = fewshot.tables(runs, ["auto", "setfit"])
    assert "| 8 | " in table and "n=2" in table and "setfit" not in table  # a method with no runs gets no column


def test_label_audit_benchmark_flips_a_share_of_each_class_and_tabulates():
    from bench import audit

    rows = [(f"text {i}", label) for i, label in enumerate(["a"] * 40 + ["b"] * 20 + ["c"] * 20)]
    noisy, flipped = audit.flip(rows, 0.05)
    assert (noisy, flipped) == audit.flip(rows, 0.05)  # seeded
    assert len(flipped) == 4  # 2 of a, 1 of b, 1 of c
    assert all(noisy[i - 1][1] != rows[i - 1][1] for i in flipped)
    assert all(noisy[i][1] == rows[i][1] for i in range(len(rows)) if i + 1 not in flipped)
    assert audit.flip(rows, 0.05, seed=2)[1] != flipped  # --flip-seed: other rows, to check a finding on
    flags = {"dataset": "toy", "noise": 0.05, "rows": 80, "flipped": 4, "flagged": 5, "precision": 0.8, "recall": 1.0,
             "audit_s": 3.0}  # fmt: skip
    runs = [{"part": "retrain", **flags, "test_clean": 0.9, "test_noisy": 0.8, "test_dropped": 0.86},  # seed 42
            {"part": "retrain", **flags, "seed": 43, "test_clean": 0.9, "test_noisy": 0.7, "test_dropped": 0.8,
             "test_relabelled": 0.8},  # fmt: skip
            {"part": "retrain", **flags, "train_recipe": "frozen", "test_clean": 0.8, "test_noisy": 0.6,
             "test_dropped": 0.7},  # the same flags retrained with another recipe: a row of its own
            {"part": "flags", **flags, "recipe": "full", "epochs": 2, "precision": 0.9, "audit_s": 30.0},
            {"part": "retrain", **flags, "flip_seed": 2, "precision": 0.7, "test_clean": 0.9, "test_noisy": 0.8,
             "test_dropped": 0.9}]  # other flipped rows: rows of their own in both tables  # fmt: skip
    table = audit.tables(runs)
    assert "| toy (5% flipped) | frozen | 80 | 4 | 5 | 0.800 | 1.000 | 3 s |" in table
    assert "| toy (5% flipped) | full, 2 epochs | 80 | 4 | 5 | 0.900 | 1.000 | 30 s |" in table
    # means over the seeds; an arm not run in every seed is left out rather than averaged over some
    assert (
        "| toy (frozen; auto) | 42, 43 | 0.9000 ± 0.0000 | 0.7500 ± 0.0707 | 0.8300 ± 0.0424 | — | 0.53 / — |" in table
    )
    assert "| toy (frozen; frozen) | 42 | 0.8000 | 0.6000 | 0.7000 | — | 0.50 / — |" in table
    assert "| toy (5% flipped, flip seed 2) | frozen | 80 | 4 | 5 | 0.700 | 1.000 | 3 s |" in table
    assert "| toy (frozen; auto, flip seed 2) | 42 | 0.9000 | 0.8000 | 0.9000 | — | 1.00 / — |" in table


def test_what_to_label_next_benchmark_says_where_suggest_reaches_randoms_last_score():
    from bench import suggest

    runs = [{"seed": s, "strategy": strategy, "labels": n, "test": score}
            for s in range(2) for strategy, scores in (("suggest", (0.6, 0.8, 0.85)), ("random", (0.6, 0.7, 0.8)))
            for n, score in zip((100, 200, 300), scores)]  # fmt: skip
    table = suggest.tables(runs)
    assert "| 200 | 0.800 ± 0.000 (n=2) | 0.700 ± 0.000 (n=2) |" in table
    assert "`suggest` reaches it at 200 labels (67% of them)" in table


def test_deletion_benchmark_measures_the_top_words_against_random_ones(small_model_dir):
    from bench import explain

    from bertfit import Predictor

    curves = {"method": {1: 0.2, 3: 0.4, 5: 0.5}, "random": {1: 0.1, 3: 0.2, 5: 0.3}}
    assert explain.area_between(curves) == pytest.approx(0.1 * 1 / 2 + (0.1 + 0.2) * 2 / 2 + (0.2 + 0.2) * 2 / 2)
    predictor = Predictor.load(small_model_dir, backend="torch")
    texts = ["a truly wonderful film with a great cast", "the service was awful and slow"]
    found = explain.deletion_curves(predictor, texts, "gradient-x-input")
    assert found["rows"] == {1: 2, 3: 2, 5: 2} and set(found["method"]) == {1, 3, 5}


def test_few_shot_selection_scores_a_candidate_on_selection_rows_and_restores_the_settings(tiny_sentence_encoder):
    from bench import fewshot_select

    import bertfit.training.fewshot as recipe

    rows = [(f"good {w}", "pos") if i % 2 else (f"bad {w}", "neg") for i, w in enumerate(["day", "film", "song"] * 4)]
    shipped = recipe.MIN_CONTRASTIVE_STEPS
    result = fewshot_select.score_candidate("steps80", rows, rows[:6], 0, str(tiny_sentence_encoder))
    assert recipe.MIN_CONTRASTIVE_STEPS == shipped and 0 <= result["selection"] <= 1 and result["s"] > 0
    runs = [{"variant": v, "dataset": "toy", "size": 8, "draw": d, "selection": score}
            for v, d, score in [("base", 0, 0.5), ("base", 1, 0.7), ("steps80", 0, 0.6), ("steps80", 1, 0.8)]]  # fmt: skip
    table = fewshot_select.table(runs, ["base", "steps80", "lr1e-4"])
    assert "| toy, 8 | 0.600, n=2 | 0.700 (+10.0), n=2 | — |" in table


def test_end_to_end_candidate_fits_the_shipped_head_then_trains_the_whole_classifier(tiny_sentence_encoder,
                                                                                     monkeypatch):  # fmt: skip
    from bench import fewshot_select

    import bertfit.training.fewshot as recipe
    from bertfit.training import loop

    heads, trained, shipped_fit = [], [], loop.fit
    shipped_head = recipe.fit_head

    def head(*args):
        heads.append(len(trained))
        shipped_head(*args)

    def fit(model, *args, **kwargs):
        trained.append("vector" if isinstance(model, recipe.SentenceVector) else "classifier")
        yield from shipped_fit(model, *args, **kwargs)

    monkeypatch.setattr(recipe, "fit_head", head)
    monkeypatch.setattr(loop, "fit", fit)
    rows = [(f"good {w}", "pos") if i % 2 else (f"bad {w}", "neg") for i, w in enumerate(["day", "film", "song"] * 4)]
    result = fewshot_select.score_candidate("end2end", rows, rows[:6], 0, str(tiny_sentence_encoder))
    assert trained == ["vector", "classifier"] and heads == [1]
    assert recipe.fit_head is head and 0 <= result["selection"] <= 1


def test_supervised_contrastive_candidate_matches_the_formula_row_by_row():
    import math

    import torch
    from bench.fewshot_select import supervised_contrastive_loss

    vectors, targets = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 2.0], [-1.0, 0.0]]), torch.tensor([0, 0, 1, 1])
    unit = torch.nn.functional.normalize(vectors, dim=1)
    per_row = []
    for i in range(4):
        others = [j for j in range(4) if j != i]
        below = sum(math.exp(float(unit[i] @ unit[j]) / 0.07) for j in others)
        alike = [j for j in others if targets[j] == targets[i]]
        per_row.append(-sum(float(unit[i] @ unit[j]) / 0.07 - math.log(below) for j in alike) / len(alike))
    assert math.isclose(float(supervised_contrastive_loss(vectors, targets)), sum(per_row) / 4, rel_tol=1e-5)
    apart = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert float(supervised_contrastive_loss(apart, targets)) < 1e-5  # each row sits on its own class


def test_few_shot_heads_benchmark_refits_the_shipped_head_exactly_and_tabulates(tiny_sentence_encoder):
    from bench import fewshot_heads

    rows = [(f"good {w}", "pos") if i % 2 else (f"bad {w}", "neg") for i, w in enumerate(["day", "film", "song"] * 4)]
    result = fewshot_heads.score_heads(rows, rows[:6], 0, str(tiny_sentence_encoder))
    assert result["raw"] == pytest.approx(result["shipped"])  # the refit is the folder's own head
    assert all(0 <= result[head] <= 1 for head in fewshot_heads.HEADS) and result["norm_cv"] >= 0
    runs = [{"dataset": "toy", "size": 8, "draw": d, "raw": raw, "normalised": unit, "centroid": 0.5}
            for d, raw, unit in [(0, 0.5, 0.6), (1, 0.7, 0.7)]]  # fmt: skip
    assert "| toy, 8 | 2 | 0.600 | 0.650 (+5.0) | 0.500 (-10.0) |" in fewshot_heads.table(runs)


def test_frozen_epoch_rule_benchmark_pairs_the_rules_by_seed():
    from bench import frozen_epochs

    runs = [{"dataset": "toy", "arm": "clean", "rule": rule, "seed": seed, "selection": score, "kept_epoch": kept}
            for rule, seed, score, kept in (("last", 42, 0.98, 10), ("patience2", 42, 0.97, 2),
                                            ("last", 43, 0.96, 10), ("patience2", 43, 0.96, 5),
                                            ("last", 44, 0.99, 10))]  # seed 44 has no pair: left out  # fmt: skip
    assert "| toy, clean | 0.9700 | 0.9650 | +0.5 (+1.0, 0.0) | 2, 5 |" in frozen_epochs.tables(runs)
