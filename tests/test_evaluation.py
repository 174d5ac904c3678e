import numpy as np
import pytest

from bertfit.evaluation.metrics import format_metrics
from bertfit.tasks import LabelSet, MultiLabelTask, RegressionTask, SingleLabelTask
from bertfit.tasks.single_label import classification_metrics


def test_metrics_over_the_whole_split():
    labels = LabelSet(("neg", "pos"))
    gold = [0, 0, 0, 1, 1, 1, 1, 0]
    predicted = [0, 0, 1, 1, 1, 0, 1, 0]
    probabilities = np.eye(2)[predicted] * 0.8 + 0.1
    m = classification_metrics(gold, probabilities, labels)
    assert m["accuracy"] == pytest.approx(6 / 8)
    # tp=3 tn=3 fp=1 fn=1 -> MCC = (9 - 1) / sqrt(4*4*4*4)
    assert m["mcc"] == pytest.approx(0.5)
    assert m["per_class"]["pos"] == {"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4}
    assert m["confusion_matrix"] == [[3, 1], [1, 3]]
    assert m["f1_macro"] == pytest.approx(0.75)
    assert m["loss"] == pytest.approx(-(6 * np.log(0.9) + 2 * np.log(0.1)) / 8)


def test_absent_class_gets_zero_not_an_error():
    labels = LabelSet(("a", "b", "c"))
    m = classification_metrics([0, 1, 0], np.eye(3)[[0, 1, 1]], labels)
    assert m["per_class"]["c"]["support"] == 0
    assert len(m["confusion_matrix"]) == 3


def test_primary_metric():
    assert SingleLabelTask(LabelSet(("a", "b"))).primary_metric == "mcc"
    assert SingleLabelTask(LabelSet(("a", "b", "c", "d"))).primary_metric == "f1_macro"
    assert MultiLabelTask(LabelSet(("a", "b"))).primary_metric == "f1_macro"
    assert RegressionTask(LabelSet(("value",))).primary_metric == "pearson"


def test_table_lists_every_class():
    labels = LabelSet(("ham", "spam"))
    table = format_metrics(classification_metrics([0, 1], np.eye(2), labels), "test")
    assert table.startswith("test: 2 rows  accuracy 1.0000  MCC 1.0000")
    assert "  spam" in table and "confusion matrix" in table
