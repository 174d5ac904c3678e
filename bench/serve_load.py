"""Serving under load: `bertfit serve` with micro-batching vs the same server answering one request
at a time (``--max-batch 1``), each started as its own process on loopback.

    python -m bench.serve_load [--model-dir runs/sms_spam] [--requests 10000] [--clients 64]

For each server: the idle latency of one short text (sequential requests, one connection), then
``--requests`` requests of one SMS text each from ``--clients`` concurrent keep-alive connections:
errors, p50/p99 latency, throughput, and the server's resident memory sampled through the run.
Bounded: every phase stops at ``--time-limit`` seconds, and only 127.0.0.1 is ever contacted.

The load generator is a few lines of asyncio over raw HTTP/1.1 rather than an HTTP library: on a
2-core machine the client shares the CPU with the server, and a heavier client would measure itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import prepare_environment, publish
from bench.predict import add_model_options, model_folder, sms_test

IDLE_TEXT = "see you at lunch"
HOST = "127.0.0.1"


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads the status and body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection(HOST, port))

    async def post(self, path: str, payload: dict) -> tuple[int, bytes]:
        body = json.dumps(payload).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")  # fmt: skip
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def start_server(model_dir: str, port: int, backend: str, max_batch: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "bertfit", "serve", model_dir, "--host", HOST, "--port", str(port),
               "--backend", backend, "--max-batch", str(max_batch), "--max-queue", "100000", "-q"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


async def wait_until_up(server: subprocess.Popen, port: int, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {server.stderr.read()[-2000:]}")
        try:
            connection = await Connection.open(port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        status, _ = await connection.post("/predict", {"text": IDLE_TEXT})
        connection.close()
        if status == 200:
            return
    raise RuntimeError(f"the server did not answer within {seconds:.0f} s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def idle_latency(port: int, count: int, time_limit: float) -> list[float]:
    """One short text at a time over one connection: the server never has company for it."""
    connection, latencies = await Connection.open(port), []
    deadline = time.monotonic() + time_limit
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        status, _ = await connection.post("/predict", {"text": IDLE_TEXT})
        latencies.append(time.perf_counter() - started)
        assert status == 200, status
    connection.close()
    return latencies


async def load(port: int, pid: int, texts: list[str], requests: int, clients: int, time_limit: float) -> dict:
    latencies, failures, memory = [], [], []
    next_request = iter(range(requests))
    deadline = time.monotonic() + time_limit

    async def client() -> None:
        connection = await Connection.open(port)
        try:
            for index in next_request:
                if time.monotonic() > deadline:
                    break
                started = time.perf_counter()
                try:
                    status, body = await connection.post("/predict", {"text": texts[index % len(texts)]})
                except (OSError, asyncio.IncompleteReadError) as err:
                    failures.append(repr(err))
                    connection = await Connection.open(port)
                    continue
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    failures.append(f"{status}: {body[:200]!r}")
        finally:
            connection.close()

    async def sample_memory() -> None:
        while True:
            memory.append(rss_mb(pid))
            await asyncio.sleep(0.25)

    sampler = asyncio.get_running_loop().create_task(sample_memory())
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    seconds = time.perf_counter() - started
    sampler.cancel()
    memory.append(rss_mb(pid))
    half = max(len(memory) // 2, 1)
    return {"requests": len(latencies), "errors": len(failures), "first_error": failures[0] if failures else "",
            "seconds": seconds, "throughput": len(latencies) / seconds,
            "p50_ms": 1000 * float(np.percentile(latencies, 50)), "p99_ms": 1000 * float(np.percentile(latencies, 99)),
            "rss_first_half_mb": max(memory[:half]), "rss_second_half_mb": max(memory[half:] or memory),
            "rss_end_mb": memory[-1]}  # fmt: skip


async def measure(model_dir: str, backend: str, max_batch: int, texts: list[str], args) -> dict:
    port = free_port()
    server = start_server(model_dir, port, backend, max_batch)
    try:
        await wait_until_up(server, port)
        await load(port, server.pid, texts, min(200, args.requests), args.clients, args.time_limit)  # warm-up
        idle = await idle_latency(port, args.idle, args.time_limit)
        result = await load(port, server.pid, texts, args.requests, args.clients, args.time_limit)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        **result,
        "idle_p50_ms": 1000 * float(np.median(idle)),
        "idle_p99_ms": 1000 * float(np.percentile(idle, 99)),
    }


def sms_texts(limit: int = 836) -> list[str]:
    texts, _ = sms_test()
    return random.Random(0).sample(texts, min(limit, len(texts)))


# name: (backend, texts per model call). The last is the reference the speed-ups divide by.
MODES = {
    "micro-batching (bertfit serve)": ("torch", 64),
    "micro-batching, ONNX int8 (--backend onnx-int8)": ("onnx-int8", 64),
    "one at a time (--max-batch 1)": ("torch", 1),
}


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(parser)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--idle", type=int, default=300, help="sequential requests for the idle latency")
    parser.add_argument("--time-limit", type=float, default=300, help="seconds at most per phase")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    prepare_environment()
    texts = sms_texts()
    with tempfile.TemporaryDirectory() as scratch:
        folder = str(model_folder(args, Path(scratch)))
        if not Path(folder, "onnx", "model_quantized.onnx").is_file():
            from bertfit.export import export_onnx

            export_onnx(folder, quantize="int8")
        rows = {}
        for name, (backend, max_batch) in MODES.items():
            rows[name] = asyncio.run(measure(folder, backend, max_batch, texts, args))
            print(f"{name}: {rows[name]['throughput']:.0f} req/s, p50 {rows[name]['p50_ms']:.1f} ms, "
                  f"idle p50 {rows[name]['idle_p50_ms']:.1f} ms, errors {rows[name]['errors']}", flush=True)  # fmt: skip
    return publish("Serving under load", "bench.serve_load", argv, _summary(args), _body(rows), not args.no_append)


def _summary(args) -> str:
    return (f"{args.requests} requests of one SMS text each from {args.clients} concurrent connections, per server; "
            f"idle latency over {args.idle} sequential requests of {IDLE_TEXT!r}; client and server share "
            f"{os.cpu_count()} cores.")  # fmt: skip


def _body(rows: dict[str, dict]) -> str:
    lines = ["| server | requests | errors | req/s | p50 ms | p99 ms | idle p50 ms | idle p99 ms | RSS 1st half MB | "
             "RSS 2nd half MB | speed-up |", "|---" * 11 + "|"]  # fmt: skip
    base = rows[next(reversed(rows))]["throughput"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['requests']} | {r['errors']} | {r['throughput']:.0f} | {r['p50_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['idle_p50_ms']:.1f} | {r['idle_p99_ms']:.1f} | "
                     f"{r['rss_first_half_mb']:.0f} | {r['rss_second_half_mb']:.0f} | {r['throughput'] / base:.2f}× |")  # fmt: skip
    errors = [f"{name}: first error {r['first_error']}" for name, r in rows.items() if r["errors"]]
    return "\n".join(lines + errors)


if __name__ == "__main__":
    main(sys.argv[1:])
