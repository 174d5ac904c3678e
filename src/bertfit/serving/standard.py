"""The routes standard clients speak, beside bertfit's own ``POST /predict``:

- Text Embeddings Inference's ``POST /predict`` body (``{"inputs": "t" | [...], "raw_scores": false}``
  -> every label with its score, most probable first; one list per text for a list) and the Inference
  API's ``POST /`` (what ``huggingface_hub.InferenceClient(model=URL).text_classification`` sends;
  always one list per text);
- the Open Inference Protocol (KServe v2): ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``,
  ``/v2/models/{name}``, ``/v2/models/{name}/ready`` and ``POST /v2/models/{name}/infer`` with a
  BYTES tensor ``text`` (and ``text_pair`` for pair models) in its JSON form; the answer holds a
  BYTES tensor ``label`` (the decisions) and an FP32 tensor ``scores`` (per label, or the value).

Every route runs the same limits and checks as ``/predict``, through the same micro-batcher, and
answers errors as ``{"error": "..."}`` (a bad body and a full queue through the app's handlers).
"""

# No `from __future__ import annotations` here: FastAPI reads the route annotations at run time, and
# the body models are imported inside add_standard_routes (the serve extra may be missing).
import asyncio

from bertfit import __version__
from bertfit.folder import Manifest
from bertfit.serving.limits import ServeLimits, check_inputs

V2_VERSION = "1"


def error(status: int, message: str, headers: dict | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def scored(batcher, predictor, texts: list[str], pairs: list[str] | None, raw_scores: bool):
    """Calibrated outputs through the micro-batcher, or the raw logits (computed apart: a rare request)."""
    if not raw_scores:
        return await batcher.predict(texts, pairs)
    return await asyncio.get_running_loop().run_in_executor(
        None, lambda: predictor.logits_of(predictor.encode(texts, pairs))
    )


def add_standard_routes(app, predictor, batcher, limits: ServeLimits, name: str, manifest: Manifest):
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from pydantic import ValidationError

    from bertfit.serving.schema import InferRequest, TeiRequest

    task = predictor.task

    async def tei_answer(body: TeiRequest, one_list_per_text: bool):
        texts = body.texts()
        # TEI's body has no second texts: a pair model is told to use bertfit's own.
        problem = check_inputs(texts, None, manifest, limits, names=("inputs", "text_pairs"),
                               give='text_pairs, in bertfit\'s body {"texts": [...], "text_pairs": [...]}')  # fmt: skip
        if problem:
            return error(*problem)
        outputs = await scored(batcher, predictor, texts, None, body.raw_scores)
        top_k = (body.parameters or {}).get("top_k")
        answers = [[{"label": label, "score": score} for label, score in row[:top_k]]
                   for row in task.scored_labels(outputs)]  # fmt: skip
        from fastapi.responses import JSONResponse

        return JSONResponse(answers[0] if isinstance(body.inputs, str) and not one_list_per_text else answers)

    app.state.tei_answer = tei_answer  # ``POST /predict`` hands TEI-shaped bodies here

    @app.post("/", summary="Inference API text classification (huggingface_hub.InferenceClient)")
    async def inference_api(body: TeiRequest):
        return await tei_answer(body, one_list_per_text=True)

    @app.get("/v2", summary="Open Inference Protocol: server metadata")
    async def v2_server():
        return {"name": "bertfit", "version": __version__, "extensions": []}

    @app.get("/v2/health/live")
    async def v2_live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def v2_ready():
        return {"ready": True}

    def known(model: str):
        return None if model == name else error(404, f"unknown model {model!r}; this server serves {name!r}")

    @app.get("/v2/models/{model}", summary="Open Inference Protocol: model metadata")
    async def v2_model(model: str):
        unknown = known(model)
        if unknown:
            return unknown
        inputs = [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        inputs += [{"name": "text_pair", "datatype": "BYTES", "shape": [-1]}] if manifest.text_pairs else []
        width = task.empty_outputs().shape[1:] or (1,)
        return {
            "name": name,
            "versions": [V2_VERSION],
            "platform": f"bertfit-{predictor.backend.name}",
            "inputs": inputs,
            "outputs": [
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "scores", "datatype": "FP32", "shape": [-1, *width]},
            ],
        }

    @app.get("/v2/models/{model}/ready")
    async def v2_model_ready(model: str):
        return known(model) or {"name": name, "ready": True}

    @app.post("/v2/models/{model}/infer", summary="Open Inference Protocol: predict",
              openapi_extra={"requestBody": {"content": {"application/json": {"schema": InferRequest.model_json_schema()}}}})  # fmt: skip
    async def v2_infer(model: str, request: Request):
        unknown = known(model)
        if unknown:
            return unknown
        # Clients such as tritonclient send JSON without a JSON content type, and a binary part after a
        # JSON header when asked to; only the JSON form is read.
        if request.headers.get("inference-header-content-length"):
            return error(400, "binary tensor data is not read: send BYTES data as JSON (binary_data=False)")
        try:
            body = InferRequest.model_validate_json(await request.body())
        except ValidationError as err:  # answered by the app's one handler, as every bad body is
            raise RequestValidationError(err.errors()) from None
        tensors = {tensor.name: tensor for tensor in body.inputs}
        if "text" not in tensors or tensors["text"].datatype != "BYTES":
            return error(400, "send the texts as a BYTES input tensor named 'text' (in JSON, not binary, form)")
        texts = [str(t) for t in tensors["text"].data]
        pairs = [str(t) for t in tensors["text_pair"].data] if "text_pair" in tensors else None
        problem = check_inputs(texts, pairs, manifest, limits, names=("text", "text_pair"), give="a text_pair tensor")
        if problem:
            return error(*problem)
        outputs = await batcher.predict(texts, pairs)
        labels = task.decision_names(task.decide(outputs))
        scores = outputs.reshape(len(texts), -1)
        return {
            "model_name": name,
            "model_version": V2_VERSION,
            **({"id": body.id} if body.id else {}),
            "outputs": [
                {"name": "label", "datatype": "BYTES", "shape": [len(labels)], "data": labels},
                {"name": "scores", "datatype": "FP32", "shape": list(scores.shape), "data": scores.ravel().tolist()},
            ],
        }
