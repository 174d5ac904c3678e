"""The data set registry: local lookup, verified download (from file:// addresses here), offline errors."""

import dataclasses
import hashlib
import zipfile

import pytest

from bertfit.config import DataConfig
from bertfit.data import registry
from bertfit.data.registry import DatasetSpec, RemoteFile, dataset_files
from bertfit.errors import DataError, DatasetUnavailableError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_shared_files_match_the_pinned_hashes():
    for name in ("cola", "sms_spam"):
        paths = dataset_files(registry.get_dataset(name), download=False)
        assert all(p.is_file() for p in paths.values())


def test_download_plain_file_and_check_sha(tmp_path, monkeypatch):
    payload = b"text,label\nhello,1\n"
    source = tmp_path / "remote.csv"
    source.write_bytes(payload)
    monkeypatch.setenv("BERTFIT_DATA_DIR", str(tmp_path / "cache"))
    spec = DatasetSpec(
        "toy", "toy", {"train": RemoteFile("toy.csv", _sha(payload), source.as_uri())}, "text", "label", True
    )
    paths = dataset_files(spec)
    assert paths["train"] == tmp_path / "cache" / "toy" / "toy.csv"
    assert paths["train"].read_bytes() == payload


def test_download_zip_member(tmp_path, monkeypatch):
    member = b"a\t1\t\tA sentence.\n"
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("inner/train.tsv", member)
    monkeypatch.setenv("BERTFIT_DATA_DIR", str(tmp_path / "cache"))
    remote = RemoteFile("train.tsv", _sha(member), archive.as_uri(), "inner/train.tsv", _sha(archive.read_bytes()))
    paths = dataset_files(DatasetSpec("z", "z", {"train": remote}, 3, 1, False))
    assert paths["train"].read_bytes() == member


def test_tampered_download_is_rejected_and_not_kept(tmp_path, monkeypatch):
    source = tmp_path / "remote.csv"
    source.write_bytes(b"text,label\nevil,1\n")
    monkeypatch.setenv("BERTFIT_DATA_DIR", str(tmp_path / "cache"))
    spec = DatasetSpec("toy", "toy", {"train": RemoteFile("toy.csv", "0" * 64, source.as_uri())}, "text", "label", True)
    with pytest.raises(DatasetUnavailableError, match="sha256 mismatch"):
        dataset_files(spec)
    assert not (tmp_path / "cache" / "toy" / "toy.csv").exists()


def test_offline_error_names_files_folder_and_address(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTFIT_DATA_DIR", str(tmp_path / "empty"))
    missing = (tmp_path / "nowhere.zip").as_uri()
    spec = registry.get_dataset("cola")
    offline = DatasetSpec(spec.name, spec.description,
                          {k: RemoteFile(f.name, f.sha256, missing, f.member) for k, f in spec.files.items()},
                          3, 1, False)  # fmt: skip
    with pytest.raises(DatasetUnavailableError) as caught:
        dataset_files(offline)
    message = str(caught.value)
    assert "needs in_domain_train.tsv, in_domain_dev.tsv, out_of_domain_dev.tsv" in message
    assert str(tmp_path / "empty" / "cola") in message
    assert "BERTFIT_DATA_DIR" in message


def test_modified_local_copy_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "sms_spam"
    folder.mkdir(parents=True)
    (folder / "spamdata_v2.csv").write_text("label,text\n0,hi\n1,win\n")
    monkeypatch.setenv("BERTFIT_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataError, match="differs from the official file's 329617b4"):
        dataset_files(registry.get_dataset("sms_spam"))


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(DataError, match="unknown data set 'imdb'; known: ag_news, cola, goemotions, sms_spam"):
        registry.get_dataset("imdb")


def test_dataset_option_help_names_every_registry_data_set():
    help_text = next(f for f in dataclasses.fields(DataConfig) if f.name == "dataset").metadata["help"]
    assert all(name in help_text for name in registry.DATASETS)
