"""Distributed batch prediction with Ray Data gives exactly the predictions of the local engine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bertfit.cli import main
from conftest import sentiment_rows

ray = pytest.importorskip("ray", reason="Ray is not installed (the ray extra has it)")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def scored(folder) -> pd.DataFrame:
    frames = [pd.read_parquet(path) for path in sorted(folder.glob("*.parquet"))]
    return pd.concat(frames).sort_values("id").reset_index(drop=True)


def test_ray_predicts_shards_like_the_local_engine(local_ray, small_model_dir, tmp_path, capsys):
    shards = tmp_path / "in"
    shards.mkdir()
    rows = sentiment_rows(300, seed=5)
    for part in range(3):
        chunk = rows[part * 100 : (part + 1) * 100]
        frame = pd.DataFrame({"id": range(part * 100, part * 100 + len(chunk)), "text": [t for t, _ in chunk]})
        frame.to_parquet(shards / f"part-{part}.parquet")

    assert main(["predict", str(small_model_dir), "--input", str(shards), "--output", str(tmp_path / "local")]) == 0
    assert "wrote 300 predictions from 3 files" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "local").iterdir()) == [
        "part-0.parquet",
        "part-1.parquet",
        "part-2.parquet",
    ]
    args = ["predict", str(small_model_dir), "--input", str(shards / "*.parquet"), "--output", str(tmp_path / "ray"),
            "--engine", "ray", "--workers", "2", "--text-column", "text"]  # fmt: skip
    assert main(args) == 0
    assert "wrote 300 predictions" in capsys.readouterr().out

    local, distributed = scored(tmp_path / "local"), scored(tmp_path / "ray")
    assert list(distributed.columns) == list(local.columns) == ["id", "text", "predicted_label", "prob_neg", "prob_pos"]
    assert distributed["id"].tolist() == list(range(300))
    assert distributed["predicted_label"].tolist() == local["predicted_label"].tolist()
    np.testing.assert_allclose(distributed[["prob_neg", "prob_pos"]], local[["prob_neg", "prob_pos"]], atol=1e-3)


def test_a_bad_shard_is_named_through_ray(local_ray, small_model_dir, tmp_path, capsys):
    shards = tmp_path / "in"
    shards.mkdir()
    pd.DataFrame({"text": ["fine text", " "]}).to_parquet(shards / "part-0.parquet")
    args = ["predict", str(small_model_dir), "--input", str(shards), "--output", str(tmp_path / "out"),
            "--engine", "ray"]  # fmt: skip
    assert main(args) != 0
    error = capsys.readouterr().err
    assert "part-0.parquet (a Ray batch), row 2, column 'text': empty or missing text" in error
