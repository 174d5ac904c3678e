"""Micro-batching: requests that arrive within a few milliseconds of each other share one model call.

One worker task takes the first waiting request and every request queued behind it (up to
``max_batch`` texts), optionally waits ``max_wait_ms`` for more, runs the predictor once in a thread
(the event loop stays free to accept requests), and hands each request its own rows. That thread is
always the same one: PyTorch's OpenMP threads belong to the thread that calls the model, so calls
hopping across a thread pool would start a new team of busy-waiting threads each time. With no wait
(the default) an idle server answers at once, and under load batches still form: requests queue up
while the model runs, and the next call takes them all. The queue is bounded by texts waiting:
past ``max_queue`` new requests are refused at once (the server answers 503), never left to pile up.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np


class Overloaded(Exception):
    """Too many texts are already waiting."""


@dataclass(frozen=True)
class BatchLimits:
    max_batch: int = 64  # texts per model call
    max_wait_ms: float = 0.0  # how long the first request of a batch waits for company
    max_queue: int = 2048  # texts waiting, beyond which requests are refused


@dataclass
class _Request:
    texts: list[str]
    pairs: list[str] | None
    future: asyncio.Future


class MicroBatcher:
    def __init__(self, predictor, limits: BatchLimits = BatchLimits()):
        self.predictor = predictor
        self.limits = limits
        self.waiting = 0  # texts queued and not yet answered
        self.batch_sizes: list[int] = []  # texts per model call, for tests and /health
        self.on_batch = None  # called with each model call's text count (the /metrics histogram)
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._worker: asyncio.Task | None = None
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bertfit-model")

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._model_thread.shutdown(wait=False)

    async def predict(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        """The predictor's outputs for ``texts``, computed together with other waiting requests."""
        if self.waiting + len(texts) > self.limits.max_queue:
            raise Overloaded(f"{self.waiting} texts are waiting")
        request = _Request(texts, pairs, asyncio.get_running_loop().create_future())
        self.waiting += len(texts)
        self._queue.put_nowait(request)
        try:
            return await request.future
        finally:
            self.waiting -= len(texts)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0].texts)
            deadline = time.perf_counter() + self.limits.max_wait_ms / 1000
            while size < self.limits.max_batch:
                if not self._queue.empty():
                    request = self._queue.get_nowait()
                else:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    try:
                        request = await asyncio.wait_for(self._queue.get(), remaining)
                    except asyncio.TimeoutError:  # noqa: UP041 - on Python 3.10 it is not the builtin TimeoutError
                        break
                batch.append(request)
                size += len(request.texts)
            await self._answer(batch)

    async def _answer(self, batch: list[_Request]) -> None:
        texts = [t for r in batch for t in r.texts]
        pairs = [p for r in batch for p in r.pairs] if batch[0].pairs is not None else None
        self.batch_sizes.append(len(texts))
        if self.on_batch is not None:
            self.on_batch(len(texts))
        try:
            call = self.predictor.predict_proba
            outputs = await asyncio.get_running_loop().run_in_executor(self._model_thread, call, texts, pairs)
        except Exception as err:  # one bad batch must not stop the worker: each request gets the error
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(err)
            return
        start = 0
        for request in batch:
            if not request.future.done():  # a client that went away leaves a cancelled future
                request.future.set_result(outputs[start : start + len(request.texts)])
            start += len(request.texts)
