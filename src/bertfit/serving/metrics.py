"""``GET /metrics`` in Prometheus' text format (``prometheus_client``): requests by route and status,
their latency, the texts per model call, and the texts waiting.

Each app has its own registry, so several apps in one process (tests, or a process serving two
folders) keep separate counts.
"""

from __future__ import annotations

import time


class ServerMetrics:
    def __init__(self, waiting):
        """``waiting()``: the texts queued and not yet answered, read at each scrape."""
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("bertfit_requests", "HTTP requests answered", ["route", "status"],
                                registry=self.registry)  # fmt: skip
        self.latency = Histogram("bertfit_request_seconds", "time to answer a request", ["route"],
                                 registry=self.registry)  # fmt: skip
        self.batch_texts = Histogram("bertfit_model_call_texts", "texts per model call (micro-batch size)",
                                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=self.registry)  # fmt: skip
        queue = Gauge("bertfit_waiting_texts", "texts queued and not yet answered", registry=self.registry)
        queue.set_function(waiting)

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def add_metrics(app, batcher) -> ServerMetrics:
    """Count every request of ``app`` and serve ``GET /metrics``; the batcher reports its model calls."""
    from fastapi import Request
    from fastapi.responses import Response

    metrics = ServerMetrics(lambda: batcher.waiting)
    batcher.on_batch = metrics.batch_texts.observe

    @app.middleware("http")
    async def count(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")  # the route's template: few label values
        metrics.observe(route, response.status_code, time.perf_counter() - started)
        return response

    @app.get("/metrics", include_in_schema=False)
    async def scrape():
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return metrics
