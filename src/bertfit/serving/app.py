"""``bertfit serve MODEL_DIR``: the model behind a small HTTP API, with a page to try it.

- ``POST /predict``: ``{"text": "..."}`` or ``{"texts": [...]}`` (with ``text_pair``/``text_pairs``
  for pair models) -> one prediction per text, in order. Concurrent requests are micro-batched.
- ``GET /health``, ``GET /model`` (labels, task, max length, metrics, training config), ``GET /``
  (the page), ``GET /docs`` (OpenAPI).
Errors are JSON ``{"error": "..."}``: 413 past the size limits, 422 for bodies that do not fit the
schema (malformed JSON, wrong content type, an empty list), 503 with ``Retry-After`` when the queue is full.
"""

# No `from __future__ import annotations` here: FastAPI reads the route annotations at run time, and
# the body model is imported inside create_app (the serve extra may be missing).
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bertfit.errors import ConfigError

PAGE = Path(__file__).with_name("page.html")


@dataclass(frozen=True)
class ServeLimits:
    max_texts: int = 256  # texts per request
    max_chars: int = 20_000  # characters per text


def require_fastapi():
    try:
        import fastapi
        import uvicorn
    except ImportError:
        raise ConfigError("serving needs its extra: pip install 'bertfit[serve]'") from None
    return fastapi, uvicorn


def create_app(model_dir: str | Path, backend: str = "torch", limits: ServeLimits = ServeLimits(), batching=None):
    """The FastAPI app serving the model folder ``model_dir``."""
    require_fastapi()
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse

    from bertfit.folder import read_manifest
    from bertfit.inference import Predictor
    from bertfit.serving.batching import BatchLimits, MicroBatcher, Overloaded
    from bertfit.serving.schema import PredictRequest, PredictResponse

    folder = Path(model_dir)
    manifest = read_manifest(folder)
    predictor = Predictor.load(folder, backend=backend)
    batcher = MicroBatcher(predictor, batching or BatchLimits())
    info = _model_info(folder, manifest, predictor, limits)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="bertfit", description=f"Text classifier {folder.name}", lifespan=lifespan)
    app.state.batcher = batcher

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, err: RequestValidationError):
        problems = "; ".join(_describe(e) for e in err.errors())
        return JSONResponse({"error": f"invalid request: {problems}"}, status_code=422)

    @app.post("/predict", response_model=PredictResponse, response_model_exclude_none=True)
    async def predict(body: PredictRequest):
        texts, pairs = body.inputs()
        problem = _check(texts, pairs, manifest.text_pairs, limits)
        if problem:
            return JSONResponse({"error": problem[1]}, status_code=problem[0])
        try:
            outputs = await batcher.predict(texts, pairs)
        except Overloaded:
            return JSONResponse({"error": "the server is busy; retry shortly"}, status_code=503,
                                headers={"Retry-After": "1"})  # fmt: skip
        return {"predictions": [p.to_dict() for p in predictor.predictions(outputs)]}

    @app.get("/health")
    async def health():
        return {"status": "ok", "waiting_texts": batcher.waiting}

    @app.get("/model")
    async def model():
        return info

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return PAGE.read_text(encoding="utf-8")

    @app.get("/report", response_class=HTMLResponse)
    def report():  # a plain def: FastAPI runs it in a worker thread, since drawing the plots blocks
        return _report_page(folder)

    return app


def _report_page(folder: Path) -> str:
    """The folder's report.html, or one drawn now for folders saved without it."""
    from bertfit.evaluation.report import build_report
    from bertfit.folder import REPORT_FILE

    saved = folder / REPORT_FILE
    return saved.read_text(encoding="utf-8") if saved.is_file() else build_report(folder)


def _check(texts: list, pairs: list | None, pair_model: bool, limits: ServeLimits) -> tuple | None:
    """(status, message) for a request the model cannot take, else None."""
    if not texts:
        return 422, 'no texts given: send {"text": "..."} or a non-empty {"texts": [...]}'
    if len(texts) > limits.max_texts:
        return 413, f"{len(texts)} texts in one request; the limit is {limits.max_texts}"
    longest = max(range(len(texts)), key=lambda i: len(texts[i]))
    if len(texts[longest]) > limits.max_chars:
        return 413, f"text {longest} has {len(texts[longest])} characters; the limit is {limits.max_chars}"
    if any(not t.strip() for t in texts):
        return 422, "empty text: every text needs some characters"
    if pair_model and pairs is None:
        return 422, "this model takes text pairs: send text_pair / text_pairs too"
    if not pair_model and pairs is not None:
        return 422, "this model takes single texts: drop text_pair / text_pairs"
    if pairs is not None and len(pairs) != len(texts):
        return 422, f"{len(texts)} texts but {len(pairs)} text pairs"
    return None


def _describe(error: dict) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
    return f"{where}: {error.get('msg')}" if where else str(error.get("msg"))


def _model_info(folder: Path, manifest, predictor, limits: ServeLimits) -> dict:
    from bertfit.folder import METRICS_FILE, read_json

    metrics = read_json(folder / METRICS_FILE)
    headline = {split: {k: v for k, v in values.items() if isinstance(v, (int, float))}
                for split, values in metrics.items() if split in ("validation", "test")}  # fmt: skip
    return {
        "name": folder.name,
        "task": predictor.task.name,
        "labels": list(predictor.labels.names),
        "text_pairs": bool(manifest.text_pairs),
        "max_length": predictor.max_length,
        "backend": predictor.backend.name,
        "base_model": manifest.base_model,
        "metrics": headline,
        "limits": {"max_texts": limits.max_texts, "max_chars": limits.max_chars},
        "config": manifest.config,
    }
