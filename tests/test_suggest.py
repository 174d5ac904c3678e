"""``bertfit suggest`` and ``Predictor.suggest``: rows ranked by calibrated uncertainty, spread over the texts'
variety, already-labelled texts skipped, and one clear line for each input it cannot use."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from bertfit.cli import main
from bertfit.errors import ConfigError
from bertfit.inference.suggest import choose, uncertainty
from bertfit.tasks import LabelSet
from bertfit.tasks.multi_label import MultiLabelTask
from bertfit.tasks.regression import RegressionTask
from bertfit.tasks.single_label import SingleLabelTask
from conftest import sentiment_rows, write_csv


def read_rows(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_uncertainty_is_one_minus_the_margin_or_the_least_decided_label():
    single = SingleLabelTask(labels=LabelSet(("a", "b", "c")))
    outputs = np.array([[0.98, 0.01, 0.01], [0.45, 0.45, 0.10], [0.6, 0.3, 0.1]])
    np.testing.assert_allclose(uncertainty(single, outputs), [0.03, 1.0, 0.7])
    multi = MultiLabelTask(labels=LabelSet(("x", "y")))
    # 0.5 is undecided; 0.99 and 0.01 are sure; each row counts its least decided label
    np.testing.assert_allclose(uncertainty(multi, np.array([[0.99, 0.01], [0.99, 0.5], [0.75, 0.01]])),
                               [0.02, 1.0, 0.5], atol=1e-9)  # fmt: skip
    with pytest.raises(ConfigError, match="regression model gives one value"):
        uncertainty(RegressionTask(labels=LabelSet(("value",))), np.zeros((2, 1)))


def test_the_batch_is_spread_over_clusters_instead_of_copies_of_one_confusing_text():
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16) * 10
    vectors = np.concatenate([centres[c] + rng.normal(size=(25, 16)) for c in range(4)])
    scores = rng.uniform(0.1, 0.5, 100)
    scores[:25] += 0.5  # the whole first cluster is more uncertain than anything else
    picked = choose(scores, lambda rows: vectors[rows], n=4)
    assert sorted(set(i // 25 for i in picked)) == [0, 1, 2, 3]  # one per cluster
    assert picked[0] < 25 and list(scores[picked]) == sorted(scores[picked], reverse=True)
    plain = np.argsort(-scores)[:4]
    assert all(i < 25 for i in plain)  # what uncertainty alone would take
    np.testing.assert_array_equal(choose(scores[:3], None, n=5), np.argsort(-scores[:3]))


def test_suggest_writes_the_chosen_rows_with_the_inputs_columns_most_uncertain_first(small_model_dir, tmp_path):
    rows = [(f"id{i}", text) for i, (text, _) in enumerate(sentiment_rows(40, seed=3))]
    source = write_csv(tmp_path / "unlabelled.csv", rows, header=("id", "text"))
    labelled = write_csv(tmp_path / "labelled.csv", [(rows[i][1].upper(), "pos") for i in range(10)])
    output = tmp_path / "next.csv"
    args = ["suggest", str(small_model_dir), "--input", str(source), "--output", str(output), "--n", "5", "-q"]
    assert main([*args, "--exclude", str(labelled)]) == 0
    chosen = read_rows(output)
    assert len(chosen) == 5 and list(chosen[0]) == ["row", "id", "text", "uncertainty", "guess", "probability"]
    assert all(int(r["row"]) > 10 for r in chosen)  # the first ten texts are labelled already
    assert all(rows[int(r["row"]) - 1] == (r["id"], r["text"]) for r in chosen)
    scores = [float(r["uncertainty"]) for r in chosen]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert {r["guess"] for r in chosen} <= {"pos", "neg"}


def test_predictor_suggest_in_python(small_model_dir):
    from bertfit import Predictor

    texts = [text for text, _ in sentiment_rows(30, seed=5)]
    found = Predictor.load(small_model_dir, backend="torch").suggest(texts, 3)
    assert len(found) == 3 and len({s.index for s in found}) == 3
    assert [s.uncertainty for s in found] == sorted((s.uncertainty for s in found), reverse=True)


def test_suggest_works_for_a_multi_label_model(multi_label_model_dir, tmp_path):
    source = write_csv(tmp_path / "texts.csv", [(t,) for t, _ in sentiment_rows(12, seed=9)], header=("text",))
    output = tmp_path / "next.jsonl"
    args = ["suggest", str(multi_label_model_dir), "--input", str(source), "--output", str(output), "--n", "4", "-q"]
    assert main(args) == 0
    assert len(output.read_text().splitlines()) == 4


@pytest.mark.parametrize(
    "make_input, extra, message",
    [
        (lambda d: write_csv(d / "in.csv", [("a b c",), ("d e f",)], header=("text",)), ("--n", "3"),
         "--n 3 is more than its 2 rows"),
        (lambda d: write_csv(d / "in.csv", [("1", "2"), ("3", "4")], header=("x", "y")), (), "text column"),
        (lambda d: write_csv(d / "in.csv", [("a b c",)], header=("text",)), ("--n", "0"), "--n must be at least 1"),
    ],
)  # fmt: skip
def test_what_suggest_cannot_use_is_one_clear_line(make_input, extra, message, small_model_dir, tmp_path, capsys):
    source = make_input(tmp_path)
    args = ["suggest", str(small_model_dir), "--input", str(source), "--output", str(tmp_path / "out.csv"), *extra]
    assert main(args) != 0
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


def test_suggest_refuses_a_regression_model(regression_model_dir, tmp_path, capsys):
    source = write_csv(tmp_path / "texts.csv", [("a b c",), ("d e f",)], header=("text",))
    args = [
        "suggest",
        str(regression_model_dir),
        "--input",
        str(source),
        "--output",
        str(tmp_path / "o.csv"),
        "--n",
        "1",
    ]
    assert main(args) != 0
    assert "regression model gives one value" in capsys.readouterr().err
