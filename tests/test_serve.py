"""`bertfit serve`: every endpoint and its error answers, micro-batching, and a real server on loopback."""

import asyncio

import numpy as np
import pytest

from conftest import live_server

pytest.importorskip("fastapi")
pytest.importorskip("httpx")


LIMITS = {"max_texts": 4, "max_chars": 200}


@pytest.fixture(scope="module")
def client(small_model_dir):
    from fastapi.testclient import TestClient

    from bertfit.serving.app import ServeLimits, create_app

    with TestClient(create_app(small_model_dir, "torch", limits=ServeLimits(**LIMITS))) as test_client:
        yield test_client


def test_health_model_and_page(client):
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/model").json()
    assert info["labels"] == ["neg", "pos"] and info["task"] == "classification"
    assert "accuracy" in info["metrics"]["test"] and info["config"]["epochs"] == 1
    page = client.get("/")
    assert page.status_code == 200 and "<textarea" in page.text
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()  # Swagger UI works offline
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200


def test_unknown_routes_and_methods_answer_the_same_json_error(client):
    missing = client.get("/nope")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    wrong = client.get("/predict")
    assert wrong.status_code == 405 and wrong.json() == {"error": "Method Not Allowed"}


def test_predict_one_text_and_a_batch_in_order(client):
    one = client.post("/predict", json={"text": "a lovely day"})
    assert one.status_code == 200
    [prediction] = one.json()["predictions"]
    assert prediction["label"] in ("neg", "pos") and set(prediction["probabilities"]) == {"neg", "pos"}
    assert "value" not in prediction
    texts = ["a lovely day", "an awful day", "quite a day 😀", "café déjà vu — 東京"]
    batch = client.post("/predict", json={"texts": texts}).json()["predictions"]
    assert len(batch) == 4
    assert batch[0]["probabilities"] == pytest.approx(prediction["probabilities"], abs=1e-5)


BAD_REQUESTS = [
    ({"content": b'{"texts": ["a",', "headers": {"Content-Type": "application/json"}}, 422, "invalid request"),
    ({"json": {"texts": []}}, 422, "no texts given"),
    ({"json": {"texts": ["a"] * 5}}, 413, "5 texts in one request; the limit is 4"),
    ({"json": {"text": "x" * 201}}, 413, "text 0 has 201 characters; the limit is 200"),
    ({"content": b"a lovely day", "headers": {"Content-Type": "text/plain"}}, 422, "invalid request"),
    ({"json": {"text": "a", "texts": ["b"]}}, 422, "give exactly one of text or texts"),
    ({"json": {"text": "a", "text_pair": "b"}}, 422, "this model was trained on single texts: drop text_pair"),
    ({"json": {"text": "   "}}, 422, "texts[0]: empty text"),
    ({"json": {"texts": ["a", ""]}}, 422, "texts[1]: empty text"),
    ({"json": {"text": "a", "colour": "red"}}, 422, "colour"),
]  # fmt: skip


@pytest.mark.parametrize("send, status, message", BAD_REQUESTS)
def test_bad_requests_get_clear_json_errors(client, send, status, message):
    answer = client.post("/predict", **send)
    assert answer.status_code == status
    assert message in answer.json()["error"]


class _CountingPredictor:
    """Stands in for a Predictor: records each call's size."""

    def __init__(self):
        self.calls = []

    def predict_proba(self, texts, pairs=None):
        self.calls.append(len(texts))
        return np.array([[len(t), 0.0] for t in texts])


def test_concurrent_requests_share_model_calls():
    from bertfit.serving.batching import BatchLimits, MicroBatcher

    async def scenario():
        predictor = _CountingPredictor()
        batcher = MicroBatcher(predictor, BatchLimits(max_batch=64, max_wait_ms=50))
        batcher.start()
        texts = [["x" * (i + 1)] for i in range(10)]
        answers = await asyncio.gather(*(batcher.predict(t) for t in texts))
        await batcher.stop()
        return predictor.calls, answers

    calls, answers = asyncio.run(scenario())
    assert sum(calls) == 10 and len(calls) < 10
    assert [int(a[0, 0]) for a in answers] == list(range(1, 11))  # each request got its own rows


def test_a_full_queue_refuses_at_once():
    from bertfit.serving.batching import BatchLimits, MicroBatcher, Overloaded

    async def scenario():
        batcher = MicroBatcher(_CountingPredictor(), BatchLimits(max_queue=3))
        with pytest.raises(Overloaded):
            await batcher.predict(["a", "b", "c", "d"])

    asyncio.run(scenario())


def test_real_server_on_a_free_loopback_port(small_model_dir):
    import httpx

    from bertfit.serving.app import ServeLimits, create_app

    with live_server(create_app(small_model_dir, limits=ServeLimits(**LIMITS))) as base:
        assert httpx.get(f"{base}/health").json()["status"] == "ok"
        assert httpx.get(f"{base}/model").json()["labels"] == ["neg", "pos"]
        for page, marker in (("/", "<textarea"), ("/docs", "swagger"), ("/report", 'id="wrong"')):
            answer = httpx.get(base + page)
            assert answer.status_code == 200 and marker in answer.text, page
        answer = httpx.post(f"{base}/predict", json={"texts": ["a lovely day", "ünïcödé 🎉", "東京"]})
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 3
        for send, status, message in BAD_REQUESTS:
            answer = httpx.post(f"{base}/predict", **send)
            assert answer.status_code == status and message in answer.json()["error"], send


def test_predict_explains_when_asked_as_the_library_does(client, small_model_dir):
    from bertfit import Predictor

    texts = ["a lovely day", "an awful film"]
    plain = client.post("/predict", json={"texts": texts}).json()["predictions"]
    assert all("explanations" not in p for p in plain)
    answered = client.post("/predict", json={"texts": texts, "explain": True}).json()["predictions"]
    expected = Predictor.load(small_model_dir, backend="torch").explain(texts)
    for prediction, explanation in zip(answered, expected):
        (given,) = prediction["explanations"]
        assert given["label"] == prediction["label"] == explanation.label
        assert [w["word"] for w in given["words"]] == [w for w, _ in explanation.words]
        assert [w["score"] for w in given["words"]] == pytest.approx([s for _, s in explanation.words], abs=1e-6)
