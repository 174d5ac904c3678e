"""The routes standard clients speak: TEI's /predict body, the Inference API's POST / (called with
huggingface_hub's InferenceClient), the Open Inference Protocol v2 (called with tritonclient), and
Prometheus /metrics; each answers what bertfit's own /predict does."""

import pytest

from conftest import live_server

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

LIMITS = {"max_texts": 4, "max_chars": 200}
TEXTS = ["a lovely day", "a dreadful evening"]


@pytest.fixture(scope="module")
def client(small_model_dir):
    from fastapi.testclient import TestClient

    from bertfit.serving.app import ServeLimits, create_app

    with TestClient(create_app(small_model_dir, limits=ServeLimits(**LIMITS))) as test_client:
        yield test_client


def own(client, texts):
    return client.post("/predict", json={"texts": texts}).json()["predictions"]


def test_tei_predict_body_gets_every_label_most_probable_first(client):
    ours = own(client, TEXTS)
    one = client.post("/predict", json={"inputs": TEXTS[0]})
    assert one.status_code == 200
    scores = one.json()
    assert [s["label"] for s in scores][0] == ours[0]["label"]
    assert {s["label"]: s["score"] for s in scores} == pytest.approx(ours[0]["probabilities"], abs=1e-6)
    batch = client.post("/predict", json={"inputs": TEXTS}).json()
    assert len(batch) == 2 and all(len(row) == 2 for row in batch)
    assert [row[0]["label"] for row in batch] == [p["label"] for p in ours]
    raw = client.post("/predict", json={"inputs": TEXTS[0], "raw_scores": True}).json()
    assert {s["label"] for s in raw} == {"neg", "pos"}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"inputs": []}, 422, "no texts given"),
        ({"inputs": ["a"] * 5}, 413, "5 texts in one request; the limit is 4"),
        ({"inputs": "a", "colour": "red"}, 422, "colour"),
        ({"inputs": 3}, 422, "inputs"),
    ],
)
def test_tei_bad_bodies_get_the_same_json_errors(client, body, status, message):
    answer = client.post("/predict", json=body)
    assert answer.status_code == status and message in answer.json()["error"]


def test_inference_client_gets_text_classification(small_model_dir, monkeypatch):
    from huggingface_hub import InferenceClient, constants

    # The suite runs with HF_HUB_OFFLINE=1, which makes the client refuse every URL, loopback included.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    from bertfit.serving.app import ServeLimits, create_app

    with live_server(create_app(small_model_dir, limits=ServeLimits(**LIMITS))) as base:
        import httpx

        ours = httpx.post(f"{base}/predict", json={"text": TEXTS[0]}).json()["predictions"][0]
        result = InferenceClient(model=base).text_classification(TEXTS[0])
        assert result[0].label == ours["label"]
        assert {r.label: r.score for r in result} == pytest.approx(ours["probabilities"], abs=1e-6)


def test_v2_routes_answer_tritonclient(small_model_dir):
    import numpy as np

    tritonhttp = pytest.importorskip("tritonclient.http")

    from bertfit.serving.app import ServeLimits, create_app

    name = small_model_dir.name
    with live_server(create_app(small_model_dir, limits=ServeLimits(**LIMITS))) as base:
        client = tritonhttp.InferenceServerClient(base.removeprefix("http://"))
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(name)
        metadata = client.get_model_metadata(name)
        assert [i["name"] for i in metadata["inputs"]] == ["text"] and metadata["outputs"][1]["shape"] == [-1, 2]
        text = tritonhttp.InferInput("text", [len(TEXTS)], "BYTES")
        text.set_data_from_numpy(np.array(TEXTS, dtype=object), binary_data=False)
        wanted = [tritonhttp.InferRequestedOutput(n, binary_data=False) for n in ("label", "scores")]
        result = client.infer(name, [text], outputs=wanted)
        labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")]
        scores = result.as_numpy("scores")
        import httpx

        ours = httpx.post(f"{base}/predict", json={"texts": TEXTS}).json()["predictions"]
        assert labels == [p["label"] for p in ours]
        np.testing.assert_allclose(scores[:, 1], [p["probabilities"]["pos"] for p in ours], atol=1e-6)
        unknown = httpx.post(f"{base}/v2/models/other/infer", json={"inputs": []})
        assert unknown.status_code == 404 and "unknown model 'other'" in unknown.json()["error"]
        bad = httpx.post(f"{base}/v2/models/{name}/infer", json={"inputs": "not tensors"})
        assert bad.status_code == 422 and bad.json()["error"].startswith("invalid request: inputs")


def test_metrics_count_requests_and_model_calls(client):
    own(client, TEXTS)
    client.post("/predict", json={"texts": []})
    page = client.get("/metrics")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    text = page.text
    assert 'bertfit_requests_total{route="/predict",status="200"}' in text
    assert 'bertfit_requests_total{route="/predict",status="422"}' in text
    assert "bertfit_request_seconds_bucket" in text and "bertfit_model_call_texts_count" in text
    assert "bertfit_waiting_texts 0.0" in text


def test_a_full_queue_is_answered_503_on_every_route(small_model_dir):
    from fastapi.testclient import TestClient

    from bertfit.serving.app import ServeLimits, create_app
    from bertfit.serving.batching import BatchLimits

    app = create_app(small_model_dir, limits=ServeLimits(**LIMITS), batching=BatchLimits(max_queue=1))
    infer = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": TEXTS}]}
    with TestClient(app) as client:
        for route, body in (("/predict", {"texts": TEXTS}), ("/predict", {"inputs": TEXTS}), ("/", {"inputs": TEXTS}),
                            (f"/v2/models/{small_model_dir.name}/infer", infer)):  # fmt: skip
            answer = client.post(route, json=body)
            assert answer.status_code == 503 and answer.headers["Retry-After"] == "1", route
            assert answer.json() == {"error": "the server is busy; retry shortly"}
