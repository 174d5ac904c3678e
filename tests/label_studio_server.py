"""A real Label Studio (``label-studio`` from PyPI, in its own environment ``.peers/labelstudio``, made by
``make labelstudio``) for the round-trip test: SQLite, loopback, an admin whose API token the test knows.

Its first start runs some forty seconds of database migrations; ``make labelstudio`` runs them once into
``.peers/labelstudio/template`` (``python tests/label_studio_server.py``), and each test run starts on a copy of
that folder in seconds. Standard library only: it runs under any Python."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ENVIRONMENT = Path(__file__).resolve().parent.parent / ".peers" / "labelstudio"
TEMPLATE = ENVIRONMENT / "template"
TOKEN = "b3f1e7c0a9d2486f5e1c7b0a3d9f2e4c6a8b0d1e"  # the admin's legacy API token, set at the first start
STARTUP_SECONDS = 180


def installed() -> bool:
    return (ENVIRONMENT / "bin" / "label-studio").is_file()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(data_dir: Path, port: int) -> subprocess.Popen:
    """Label Studio on ``127.0.0.1:port`` with its database in ``data_dir``, answering ``/health``."""
    command = [str(ENVIRONMENT / "bin" / "label-studio"), "start", "--no-browser", "--host", "127.0.0.1", "--port",
               str(port), "--data-dir", str(data_dir), "--username", "admin@example.com", "--password",
               "bertfit-tests", "--user-token", TOKEN, "--enable-legacy-api-token"]  # fmt: skip
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir)}
    log = open(data_dir.parent / f"{data_dir.name}.log", "w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=data_dir.parent, env=env)
    deadline = time.time() + STARTUP_SECONDS
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"label-studio exited with {server.returncode}: see {log.name}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return server
        except OSError:
            time.sleep(0.5)
    stop(server)
    raise RuntimeError(f"label-studio did not answer within {STARTUP_SECONDS} s: see {log.name}")


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


def prepare() -> None:
    """The migrated database with its admin, once, as ``TEMPLATE``."""
    if TEMPLATE.is_dir():
        return
    staging = TEMPLATE.with_name(TEMPLATE.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    stop(start(staging, free_port()))
    staging.rename(TEMPLATE)


def fresh_copy(target: Path) -> Path:
    """A data folder of its own for one test run, copied from the template (made here if missing)."""
    prepare()
    shutil.copytree(TEMPLATE, target)
    return target


if __name__ == "__main__":
    prepare()
