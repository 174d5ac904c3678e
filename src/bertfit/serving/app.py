"""``bertfit serve MODEL_DIR``: the model behind a small HTTP API, with a page to try it.

- ``POST /predict``: ``{"text": "..."}`` or ``{"texts": [...]}`` (with ``text_pair``/``text_pairs``
  for pair models) -> one prediction per text, in order. Concurrent requests are micro-batched.
- ``GET /health``, ``GET /model`` (labels, task, max length, metrics, training config), ``GET /``
  (the page), ``GET /docs`` (OpenAPI, served offline). ``"explain": true`` adds per-word attributions.
Errors are JSON ``{"error": "..."}``, 404 and 405 too: 413 past the size limits, 422 for bodies that do not fit the
schema (malformed JSON, wrong content type, an empty list), 503 with ``Retry-After`` when the queue is full.
"""

# No `from __future__ import annotations` here: FastAPI reads the route annotations at run time, and
# the body model is imported inside create_app (the serve extra may be missing).
import logging
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from bertfit.errors import ConfigError
from bertfit.folder import AUTO_BACKEND
from bertfit.serving.limits import ServeLimits, check_inputs

PAGE = Path(__file__).with_name("page.html")
log = logging.getLogger(__name__)


def require_fastapi():
    try:
        import fastapi
        import uvicorn
    except ImportError:
        raise ConfigError("serving needs its extra: pip install 'bertfit[serve]'") from None
    return fastapi, uvicorn


def create_app(model_dir: str | Path, backend: str = AUTO_BACKEND, *, limits: ServeLimits = ServeLimits(),
               batching=None, precision: str | None = None):  # fmt: skip
    """The FastAPI app serving the model folder ``model_dir`` (``precision``: the torch backend's, default fp32)."""
    require_fastapi()
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from bertfit.folder import read_manifest
    from bertfit.inference import Predictor
    from bertfit.serving.batching import BatchLimits, MicroBatcher, Overloaded
    from bertfit.serving.metrics import add_metrics
    from bertfit.serving.schema import PredictRequest, PredictResponse, TeiRequest
    from bertfit.serving.standard import add_standard_routes, error

    folder = Path(model_dir)
    manifest = read_manifest(folder)
    predictor = Predictor.load(folder, precision, backend=backend)
    batcher = MicroBatcher(predictor, batching or BatchLimits())
    explainer = Explainer(folder)
    info = _model_info(folder, manifest, predictor, limits)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await batcher.stop()

    # /docs is served from the swagger-ui-bundle package, not a CDN, so it works offline
    app = FastAPI(title="bertfit", description=f"Text classifier {folder.name}", lifespan=lifespan, docs_url=None)
    app.state.batcher = batcher
    add_offline_docs(app)

    @app.exception_handler(StarletteHTTPException)  # 404, 405 and the like: the same body as every error
    async def http_error(request: Request, err: StarletteHTTPException):
        return error(err.status_code, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, err: RequestValidationError):
        problems = "; ".join(_describe(e) for e in err.errors())
        return JSONResponse({"error": f"invalid request: {problems}"}, status_code=422)

    @app.exception_handler(Overloaded)  # from the micro-batcher, on any route that uses it
    async def busy(request: Request, err: Overloaded):
        return error(503, "the server is busy; retry shortly", {"Retry-After": "1"})

    add_standard_routes(app, predictor, batcher, limits, folder.name, manifest)
    add_metrics(app, batcher)

    @app.post("/predict", response_model=PredictResponse, response_model_exclude_none=True,
              openapi_extra=_either_body(PredictRequest, TeiRequest))  # fmt: skip
    async def predict(request: Request):
        """bertfit's body (``text``/``texts``, with pairs) or TEI's (``inputs``): see ``serving.standard``."""
        body = await _json_body(request)
        if isinstance(body, dict) and "inputs" in body:
            return await app.state.tei_answer(_validated(TeiRequest, body), one_list_per_text=False)
        asked = _validated(PredictRequest, body)
        texts, pairs = asked.inputs()
        problem = check_inputs(texts, pairs, manifest, limits, give="text_pair / text_pairs")
        if problem:
            return error(*problem)
        outputs = await batcher.predict(texts, pairs)
        predictions = [p.to_dict() for p in predictor.predictions(outputs)]
        if asked.explain:
            for prediction, found in zip(predictions, await run_in_threadpool(explainer.explain, texts, pairs)):
                prediction["explanations"] = found
        return {"predictions": predictions}

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


def add_offline_docs(app) -> None:
    """Swagger UI at /docs with its script and style from the installed ``swagger-ui-bundle``."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        log.warning("/docs is off: pip install swagger-ui-bundle (in the serve extra) to serve it offline")
        return
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")  # fmt: skip


def _report_page(folder: Path) -> str:
    """The folder's report.html, or one drawn now for folders saved without it."""
    from bertfit.evaluation.report import build_report
    from bertfit.folder import REPORT_FILE

    saved = folder / REPORT_FILE
    return saved.read_text(encoding="utf-8") if saved.is_file() else build_report(folder)


async def _json_body(request):
    """The request's JSON body; a body that is not JSON gets the same 422 as a body that misses the schema."""
    import json

    from fastapi.exceptions import RequestValidationError

    if "json" not in request.headers.get("content-type", ""):
        raise RequestValidationError([{"loc": ("body",), "msg": "send JSON (Content-Type: application/json)"}])
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as err:
        raise RequestValidationError([{"loc": ("body",), "msg": f"JSON decode error: {err}"}]) from None


def _validated(schema, body):
    from fastapi.exceptions import RequestValidationError
    from pydantic import ValidationError

    try:
        return schema.model_validate(body)
    except ValidationError as err:
        raise RequestValidationError(err.errors()) from None


def _either_body(*schemas) -> dict:
    """The OpenAPI request body of a route that takes any of ``schemas``."""
    one_of = [schema.model_json_schema() for schema in schemas]
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": one_of}}}}}


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


class Explainer:
    """The server's explanations: a PyTorch copy of the model of its own, loaded on the first request that
    asks (attributions need gradients, and Captum's hooks on the embedding layer must not touch the model
    that answers predictions), one request at a time."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.predictor = None
        self.lock = threading.Lock()

    def explain(self, texts: list[str], pairs: list[str] | None) -> list[list[dict]]:
        from bertfit.inference import Predictor
        from bertfit.inference.explain import by_text

        with self.lock:
            if self.predictor is None:
                self.predictor = Predictor.load(self.folder, backend="torch")
            explained = by_text(self.predictor.explain(texts, pairs), len(texts))
            return [[explanation.to_dict() for explanation in row] for row in explained]
