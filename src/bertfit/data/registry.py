"""Named public data sets: where their files live, how to read them, and how to fetch them.

Files are looked up under ``$BERTFIT_DATA_DIR/<name>/`` (default: the user cache dir). A missing
file is downloaded from its official address and checked by sha256; offline, the error says which
files to put where.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from bertfit.errors import DataError, DatasetUnavailableError
from bertfit.folder import atomic_file, sha256_of

log = logging.getLogger(__name__)

DATA_DIR_ENV = "BERTFIT_DATA_DIR"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set; ``member`` names it inside a zip archive at ``url``."""

    name: str
    sha256: str
    url: str
    member: str | None = None
    archive_sha256: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    files: dict[str, RemoteFile]  # split name -> file
    text_column: str | int
    label_column: str | int
    header: bool
    text_pair_column: str | int | None = None
    label_sep: str | None = None  # multi-label ids joined in one cell
    quoting: int = csv.QUOTE_MINIMAL
    label_names: dict[str, str] = field(default_factory=dict)
    # A single file split by (train, validation, test) fractions with this seed.
    split: tuple[float, float, float] | None = None
    split_seed: int = 0
    hub_id: str | None = None  # the same data on the Hugging Face Hub, named in model cards


_COLA_ZIP = "https://nyu-mll.github.io/CoLA/cola_public_1.1.zip"
_COLA_ZIP_SHA = "2cf856f46df11c143d38e0cf2f9f34ff2fdb088c521cd859f5c4b9581683278b"
_AG_NEWS_URL = "https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/test.csv"
_GOEMOTIONS_URL = "https://raw.githubusercontent.com/google-research/google-research/master/goemotions/data/"
GOEMOTIONS_LABELS = (
    "admiration amusement anger annoyance approval caring confusion curiosity desire disappointment disapproval "
    "disgust embarrassment excitement fear gratitude grief joy love nervousness optimism pride realization relief "
    "remorse sadness surprise neutral"
).split()
_SPAM_URL = "https://raw.githubusercontent.com/sylphsang/NLP/4f8085db55b40aa68ccc4819378f326aa6338138/spamdata_v2.csv"

DATASETS: dict[str, DatasetSpec] = {
    "cola": DatasetSpec(
        name="cola",
        hub_id="nyu-mll/glue",
        description="CoLA 1.1: grammatical acceptability; test = out-of-domain dev",
        files={
            "train": RemoteFile(
                "in_domain_train.tsv",
                "f320a10f92d3bce6b29152fde322a362eac39238e50d8de0c8815457fdf4fc12",
                _COLA_ZIP,
                "cola_public/raw/in_domain_train.tsv",
                _COLA_ZIP_SHA,
            ),
            "validation": RemoteFile(
                "in_domain_dev.tsv",
                "77176f6a03faa5a1c4f23c69971fc1bff565931112fb65af47b2d6e24b7f42f7",
                _COLA_ZIP,
                "cola_public/raw/in_domain_dev.tsv",
                _COLA_ZIP_SHA,
            ),
            "test": RemoteFile(
                "out_of_domain_dev.tsv",
                "201b9c57b2a20f1282242eec0ed8995729e3be19c29a46c047b3727338836c05",
                _COLA_ZIP,
                "cola_public/raw/out_of_domain_dev.tsv",
                _COLA_ZIP_SHA,
            ),
        },
        # Columns: source, label, author's judgement mark, sentence. Quotes are literal text.
        text_column=3,
        label_column=1,
        header=False,
        quoting=csv.QUOTE_NONE,
        label_names={"0": "unacceptable", "1": "acceptable"},
    ),
    "sms_spam": DatasetSpec(
        name="sms_spam",
        hub_id="ucirvine/sms_spam",
        description="SMS spam (the tutorial's spamdata_v2.csv), stratified 70/15/15 with seed 2018",
        files={
            "train": RemoteFile(
                "spamdata_v2.csv", "329617b477cf1a81734c4cbf8f78a11347382425efd20c41c0981f525ca32a22", _SPAM_URL
            )
        },
        text_column="text",
        label_column="label",
        header=True,
        label_names={"0": "ham", "1": "spam"},
        split=(0.70, 0.15, 0.15),
        split_seed=2018,
    ),
    "ag_news": DatasetSpec(
        name="ag_news",
        hub_id="fancyzhx/ag_news",
        description="AG News topics (4 classes), title + description as a text pair; only the official test "
        "split is public offline, so it is split 80/10/10 with seed 42",
        files={
            "train": RemoteFile(
                "test.csv", "521465c2428ed7f02f8d6db6ffdd4b5447c1c701962353eb2c40d548c3c85699", _AG_NEWS_URL
            )
        },
        # Columns: class index 1-4, title, description.
        text_column=1,
        text_pair_column=2,
        label_column=0,
        header=False,
        label_names={"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"},
        split=(0.8, 0.1, 0.1),
        split_seed=42,
    ),
    "goemotions": DatasetSpec(
        name="goemotions",
        hub_id="google-research-datasets/go_emotions",
        description="GoEmotions: Reddit comments, multi-label over 27 emotions + neutral (official splits)",
        files={
            "train": RemoteFile(
                "train.tsv",
                "1c254a142be5c00e80d819b9ae1bbd36d94b2eeb8f4b1271846508d57e57d9c5",
                _GOEMOTIONS_URL + "train.tsv",
            ),
            "validation": RemoteFile(
                "dev.tsv",
                "575489c079c9de1097062a01738f998590d6b7ead66dd1c9fd1d2ba01fd8bc62",
                _GOEMOTIONS_URL + "dev.tsv",
            ),
            "test": RemoteFile(
                "test.tsv",
                "0587b2dd8b27b97352adbfc3fb083d46005c8946657fdc2b1ca8b1cc7f1f8be4",
                _GOEMOTIONS_URL + "test.tsv",
            ),
        },  # fmt: skip
        # Columns: comment, comma-separated label ids (0-based into emotions.txt), comment id.
        text_column=0,
        label_column=1,
        header=False,
        label_sep=",",
        label_names={str(i): name for i, name in enumerate(GOEMOTIONS_LABELS)},
    ),
}


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}") from None


def data_dir() -> Path:
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("bertfit")) / "datasets"


def dataset_files(spec: DatasetSpec, download: bool = True) -> dict[str, Path]:
    """Local paths of every file of ``spec``, fetching and verifying missing ones."""
    folder = data_dir() / spec.name
    paths = {split: folder / remote.name for split, remote in spec.files.items()}
    missing = {split: spec.files[split] for split, path in paths.items() if not path.is_file()}
    if missing:
        if not download:
            raise _unavailable(spec, folder, missing.values(), "downloads are off")
        try:
            _download(folder, list(missing.values()))
        except (OSError, urllib.error.URLError, ValueError) as err:
            raise _unavailable(spec, folder, missing.values(), str(err)) from None
    for split, path in paths.items():
        _verify(path, spec.files[split].sha256)
    return paths


def _verify(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise DataError(
            f"{path}: sha256 {actual} differs from the official file's {expected}; "
            "delete it to download it again, or use --train/--validation/--test for your own copy"
        )


def _unavailable(spec: DatasetSpec, folder: Path, files, reason: str) -> DatasetUnavailableError:
    wanted = ", ".join(f.name for f in files)
    sources = ", ".join(sorted({f.url for f in files}))
    return DatasetUnavailableError(
        f"data set {spec.name!r} needs {wanted} in {folder} and the download failed ({reason}). "
        f"Download {sources} by hand and put the files there, or set {DATA_DIR_ENV} to a folder holding {spec.name}/."
    )


def _download(folder: Path, files: list[RemoteFile]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fetched: dict[str, bytes] = {}
    for remote in files:
        if remote.url not in fetched:
            log.info("downloading %s", remote.url)
            with urllib.request.urlopen(remote.url, timeout=60) as response:
                fetched[remote.url] = response.read()
        payload = fetched[remote.url]
        if remote.member:
            _check_digest(payload, remote.archive_sha256, remote.url)
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                payload = archive.read(remote.member)
        _check_digest(payload, remote.sha256, f"{remote.url} ({remote.name})")
        _write_atomically(folder / remote.name, payload)


def _check_digest(payload: bytes, expected: str | None, what: str) -> None:
    if expected and hashlib.sha256(payload).hexdigest() != expected:
        raise ValueError(f"{what}: sha256 mismatch, the download is not the official file")


def _write_atomically(path: Path, payload: bytes) -> None:
    with atomic_file(path) as temp:
        temp.write_bytes(payload)
