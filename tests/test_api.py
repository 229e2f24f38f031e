"""The OpenAI-compatible API (chatbot/api.py): shapes, streaming, errors, auth, limits.

Unit tests drive the routes with FastAPI's TestClient over a pipeline built with the fakes. The
slow tests start two real app processes on 127.0.0.1 (free ports, corpus/index/cache under
tmp): ``api_server`` answers extractively behind an API key *and* Gradio's login, and is
queried with the official ``openai`` client; ``chained`` uses ``backend=openai`` with
``api_server`` as its language model, through the project's own ``OpenAIGenerator``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from chatbot.api import ChatAPI, api_routes, create_router, model_id
from chatbot.config import Settings
from chatbot.errors import IndexMissing
from chatbot.pipeline import REFUSAL, Answer, Partial, Pipeline
from tests.fakes import FakeEmbedder, FakeGenerator
from tests.test_pipeline import grounded_two

FAQ_QUESTION = "Can you use a base model directly for a chatbot?"
OFF_TOPIC = "What is the weather in Paris tomorrow?"
GENERAL = "How is a foundation model trained?"  # relevant, not an FAQ or a lookup: the model
URL = "https://glossary.example/zorblax"
ZORBLAX = f"""---
title: Zorblax Embedding
source: test
url: {URL}
---
# Zorblax Embedding

A zorblax embedding packs every glossary page into exactly seventeen purple dimensions.
"""
KEY = "test-key-123"


# ------------------------------------------------------------------------------- helpers
def build(settings: Settings, gen: FakeGenerator | None = None, **overrides: object) -> Pipeline:
    s = settings.model_copy(update=overrides) if overrides else settings
    return Pipeline(s, embedder=FakeEmbedder(), generator_factory=lambda: gen)


def client_for(pipe: Pipeline) -> TestClient:
    app = FastAPI()
    app.include_router(create_router(pipe))
    return TestClient(app)


def ask(question: str, **extra: Any) -> dict[str, Any]:
    return {"model": "anything", "messages": [{"role": "user", "content": question}], **extra}


def sse(text: str) -> list[str]:
    """The data payloads of a server-sent event stream, in order."""
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


def chunks_of(text: str) -> tuple[list[dict[str, Any]], str]:
    payloads = sse(text)
    return [json.loads(p) for p in payloads[:-1]], payloads[-1]


def content_of(chunks: list[dict[str, Any]]) -> list[str]:
    return [
        c["choices"][0]["delta"]["content"]
        for c in chunks
        if c.get("choices") and c["choices"][0]["delta"].get("content")
    ]


def check_error(resp: Any, status: int) -> dict[str, Any]:
    """OpenAI's error shape, exactly, and never a traceback."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"] and "Traceback" not in resp.text
    return dict(body["error"])


# ------------------------------------------------------------------------------- models
def test_models_lists_one_model_named_after_the_corpus(settings: Settings) -> None:
    body = client_for(build(settings)).get("/v1/models").json()
    assert body["object"] == "list" and len(body["data"]) == 1
    card = body["data"][0]
    assert card["id"] == "corpus" and card["object"] == "model"  # the corpus folder's name
    assert isinstance(card["created"], int) and card["owned_by"]
    titled = settings.model_copy(update={"title": "ACME Glossary: Terms & Words!"})
    assert model_id(titled) == "acme-glossary-terms-words"
    api = client_for(build(titled))
    assert api.get("/v1/models/acme-glossary-terms-words").json()["id"] == model_id(titled)
    check_error(api.get("/v1/models/gpt-4"), 404)


# ------------------------------------------------------------------------------- answers
def test_answer_keeps_its_markers_and_carries_citations(settings: Settings) -> None:
    pipe = build(settings, FakeGenerator("This must never be shown [1]."))
    resp = client_for(pipe).post("/v1/chat/completions", json=ask(FAQ_QUESTION))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "corpus" and isinstance(body["created"], int)
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "stop" and choice["index"] == 0
    message = choice["message"]
    assert message["role"] == "assistant"
    expected = pipe.ask(FAQ_QUESTION)
    assert message["content"] == expected.answer and "[1]" in message["content"]
    assert [c["n"] for c in message["citations"]] == [c.n for c in expected.citations]
    for got, want in zip(message["citations"], expected.citations, strict=True):
        assert set(got) == {"n", "doc", "title", "heading", "text", "url"}
        assert (got["doc"], got["title"], got["heading"], got["text"]) == (
            want.doc,
            want.title,
            want.heading,
            want.text,
        )
        assert got["url"] is None  # the bundled pages name no url
    assert body["glossary"]["mode"] == "faq" and body["glossary"]["refused"] is False


def test_citations_carry_the_entry_url_when_the_corpus_has_one(
    settings: Settings, corpus_dir: Path
) -> None:
    (corpus_dir / "zorblax-embedding.md").write_text(ZORBLAX, encoding="utf-8")
    resp = client_for(build(settings)).post(
        "/v1/chat/completions", json=ask("What is a zorblax embedding?")
    )
    message = resp.json()["choices"][0]["message"]
    assert "seventeen purple dimensions" in message["content"]
    assert message["citations"][0]["doc"].startswith("zorblax-embedding")
    assert message["citations"][0]["url"] == URL


def test_refusal_is_an_ordinary_answer(settings: Settings) -> None:
    gen = FakeGenerator("This must never be shown [1].")
    resp = client_for(build(settings, gen)).post("/v1/chat/completions", json=ask(OFF_TOPIC))
    assert resp.status_code == 200
    body = resp.json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == REFUSAL and choice["message"]["citations"] == []
    assert body["glossary"]["refused"] is True and len(body["glossary"]["suggestions"]) == 3
    assert gen.calls == []


def test_stream_reassembles_to_the_answer_and_ends_with_done(settings: Settings) -> None:
    pipe = build(settings, FakeGenerator(grounded_two()))
    client = client_for(pipe)
    plain = client.post("/v1/chat/completions", json=ask(GENERAL)).json()
    with client.stream("POST", "/v1/chat/completions", json=ask(GENERAL, stream=True)) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        text = resp.read().decode()
    chunks, last = chunks_of(text)
    assert last == "[DONE]"
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    pieces = content_of(chunks)
    assert len(pieces) >= 2, "the verified first sentence streams before the second"
    assert "".join(pieces) == plain["choices"][0]["message"]["content"]
    assert plain["glossary"]["mode"] == "generated"
    final = chunks[-1]["choices"][0]
    assert final["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert final["delta"]["citations"] == plain["choices"][0]["message"]["citations"]
    assert chunks[-1]["glossary"] == plain["glossary"]


def test_stream_sends_only_verified_text(settings: Settings) -> None:
    pipe = build(settings, FakeGenerator(grounded_two(" [9]")))  # an invented citation
    with client_for(pipe).stream(
        "POST", "/v1/chat/completions", json=ask(GENERAL, stream=True)
    ) as resp:
        chunks, _ = chunks_of(resp.read().decode())
    pieces = content_of(chunks)
    assert pieces and not any("[9]" in p for p in pieces)
    assert "".join(pieces) == pipe.ask(GENERAL).answer


def test_stream_of_a_refusal_ends_with_stop(settings: Settings) -> None:
    resp = client_for(build(settings)).post(
        "/v1/chat/completions", json=ask(OFF_TOPIC, stream=True)
    )
    chunks, last = chunks_of(resp.text)
    assert "".join(content_of(chunks)) == REFUSAL and last == "[DONE]"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"][0]["delta"]["citations"] == []


def test_earlier_user_turns_are_the_history(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe = build(settings)
    seen: list[tuple[str, list[str]]] = []
    real = pipe.stream

    def spy(question: str, history: Any = (), **kwargs: Any) -> Iterator[Partial | Answer]:
        seen.append((question, list(history)))
        return real(question, history, **kwargs)

    monkeypatch.setattr(pipe, "stream", spy)
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "What is a foundation model?"},
        {"role": "assistant", "content": "A large pre-trained model [1]."},
        {"role": "user", "content": [{"type": "text", "text": "And a base model?"}]},
        {"role": "assistant", "content": None},
        {"role": "user", "content": [{"type": "text", "text": "what about its limitations?"}]},
    ]
    client = client_for(pipe)
    for stream in (False, True):
        resp = client.post("/v1/chat/completions", json={"messages": messages, "stream": stream})
        assert resp.status_code == 200
    expected = ("what about its limitations?", ["What is a foundation model?", "And a base model?"])
    assert seen == [expected, expected]
    # an answer that names its entry first lends it to the question it answered
    named = [
        {"role": "user", "content": "What do you call a model used as a yardstick?"},
        {"role": "assistant", "content": "Baseline: A reference model used to benchmark [1]."},
        {"role": "user", "content": "why does it matter?"},
    ]
    seen.clear()
    assert client.post("/v1/chat/completions", json={"messages": named}).status_code == 200
    assert seen == [
        ("why does it matter?", ["What do you call a model used as a yardstick? (Baseline)"])
    ]


# ------------------------------------------------------------------------------- errors
def test_bad_requests_are_400_in_openai_shape(settings: Settings) -> None:
    client = client_for(build(settings, max_question_chars=100))
    url = "/v1/chat/completions"
    bad_json = client.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert check_error(bad_json, 400)["type"] == "invalid_request_error"
    check_error(client.post(url, content=b"[1, 2]"), 400)  # JSON, but not an object
    no_user = {"messages": [{"role": "system", "content": "Be brief."}]}
    assert check_error(client.post(url, json=no_user), 400)["param"] == "messages"
    check_error(client.post(url, json={"messages": []}), 400)
    assert "type a question" in check_error(client.post(url, json=ask("   ")), 400)["message"]
    long = check_error(client.post(url, json=ask("Why? " * 50, stream=True)), 400)
    assert "too long" in long["message"] and long["code"] == "invalid_question"


def test_schema_errors_are_422_in_openai_shape(settings: Settings) -> None:
    client = client_for(build(settings))
    url = "/v1/chat/completions"
    assert check_error(client.post(url, json={"model": "x"}), 422)["param"] == "messages"
    wrong_role = {"messages": [{"role": "robot", "content": "hi"}]}
    assert check_error(client.post(url, json=wrong_role), 422)["param"] == "messages.0.role"
    check_error(client.post(url, json={**ask("Hi?"), "stream": "sometimes"}), 422)


def test_sampling_fields_are_tolerated(settings: Settings) -> None:
    body = ask(FAQ_QUESTION, temperature=0.7, max_tokens=5, top_p=0.1, n=1, stop=["\n"])
    body["stream_options"] = {"include_usage": True}
    resp = client_for(build(settings)).post("/v1/chat/completions", json=body)
    assert resp.status_code == 200 and "[1]" in resp.json()["choices"][0]["message"]["content"]


def test_api_key_is_required_when_set(settings: Settings) -> None:
    client = client_for(build(settings, api_key=KEY))
    url = "/v1/chat/completions"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        error = check_error(client.post(url, json=ask(FAQ_QUESTION), headers=headers), 401)
        assert error["code"] == "invalid_api_key"
        check_error(client.get("/v1/models", headers=headers), 401)
    # the key is checked before the body is read: a bad body without a key is still a 401
    check_error(client.post(url, content=b"{oops"), 401)
    good = {"Authorization": f"Bearer {KEY}"}
    assert client.post(url, json=ask(FAQ_QUESTION), headers=good).status_code == 200
    assert client.get("/v1/models", headers=good).status_code == 200


def test_failures_while_answering_never_show_a_traceback(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe = build(settings)
    client = client_for(pipe)
    url = "/v1/chat/completions"

    def broken(question: str, history: Any = (), **kwargs: Any) -> Iterator[Partial | Answer]:
        yield Partial("A verified first sentence [1].")
        raise RuntimeError("secret /internal/path exploded")

    def missing(question: str, history: Any = (), **kwargs: Any) -> Any:
        raise IndexMissing("no index has been built")

    monkeypatch.setattr(pipe, "stream", broken)
    error = check_error(client.post(url, json=ask(GENERAL)), 500)
    assert "secret" not in error["message"] and error["type"] == "server_error"
    chunks, last = chunks_of(client.post(url, json=ask(GENERAL, stream=True)).text)
    assert last == "[DONE]" and "secret" not in json.dumps(chunks)
    assert content_of(chunks) == ["A verified first sentence [1]."]
    assert chunks[-1]["error"]["type"] == "server_error"
    monkeypatch.setattr(pipe, "stream", missing)
    error = check_error(client.post(url, json=ask(GENERAL)), 503)
    assert "no index" in error["message"] and "chatbot index" in error["message"]


class GatedGenerator(FakeGenerator):
    """Waits for ``gate`` before writing: an answer that stays in progress until released."""

    def __init__(self, reply: Any) -> None:
        super().__init__(reply)
        self.gate = threading.Event()
        self.started = threading.Event()

    def stream(self, messages: list[dict[str, str]], max_new_tokens: int) -> Iterator[str]:
        self.started.set()
        self.gate.wait(timeout=60)
        yield from super().stream(messages, max_new_tokens)


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_beyond_concurrency_and_queue_the_answer_is_a_429(settings: Settings) -> None:
    gen = GatedGenerator(grounded_two())
    pipe = build(settings, gen, concurrency=1, queue_size=1)
    pipe.ensure_index()
    api = ChatAPI(pipe)
    app = FastAPI()
    app.include_router(api.router())
    results: list[int] = []
    with TestClient(app) as client:

        def post() -> None:
            results.append(client.post("/v1/chat/completions", json=ask(GENERAL)).status_code)

        running = threading.Thread(target=post)
        running.start()
        wait_for(gen.started.is_set, "the first answer to start")
        waiting = threading.Thread(target=post)
        waiting.start()
        wait_for(lambda: api.slots.waiting == 1, "the second answer to wait")
        busy = client.post("/v1/chat/completions", json=ask(GENERAL, stream=True))
        error = check_error(busy, 429)
        assert error["type"] == "rate_limit_error"
        gen.gate.set()
        running.join(timeout=60)
        waiting.join(timeout=60)
    assert results == [200, 200]


# ------------------------------------------------------------------------------- serving
def test_routes_are_off_with_api_disabled(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATBOT_API", "0")
    monkeypatch.setenv("CHATBOT_API_KEY", KEY)
    from_env = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_env.api is False and from_env.api_key == KEY
    pipe = build(settings)
    assert api_routes(pipe, settings.model_copy(update={"api": False})) == []
    assert {getattr(r, "path", "") for r in api_routes(pipe)} == {
        "/v1/models",
        "/v1/models/{model}",
        "/v1/chat/completions",
    }


def test_served_by_gradios_app_and_not_behind_its_login(settings: Settings) -> None:
    """What launch() does: the routes handed to Gradio's FastAPI app (``app_kwargs``), with
    Gradio's login on: the UI's config needs it, the API does not (its own key does)."""
    from gradio.routes import App

    from chatbot.ui import create_app

    pipe = build(settings, api_key=KEY)
    demo = create_app(pipe.settings, pipe)
    demo.auth, demo.auth_message = [("user", "pass")], None  # what launch(auth=...) sets
    app = App.create_app(demo, app_kwargs={"routes": api_routes(pipe)})
    with TestClient(app) as client:
        assert client.get("/config").status_code == 401  # Gradio's login still guards the UI
        check_error(client.get("/v1/models"), 401)  # the API wants its key, not the login
        headers = {"Authorization": f"Bearer {KEY}"}
        assert client.get("/v1/models", headers=headers).json()["data"][0]["id"] == "corpus"
        resp = client.post("/v1/chat/completions", json=ask(FAQ_QUESTION), headers=headers)
        assert resp.status_code == 200 and "[1]" in resp.json()["choices"][0]["message"]["content"]
        check_error(client.post("/v1/chat/completions", json={}, headers=headers), 422)


# ------------------------------------------------------------------------------- live servers
@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """(api_server, chained): two real processes; ``chained`` asks ``api_server`` as its LLM."""
    from tests.test_app_live import start_server, stop_server, wait_ready

    started = []
    try:
        started.append(
            start_server(
                tmp_path_factory.mktemp("api"),
                None,
                CHATBOT_BACKEND="extractive",
                CHATBOT_API_KEY=KEY,
                CHATBOT_AUTH="tester:s3cret-pass",
                CHATBOT_MAX_QUESTION_CHARS="20000",  # a whole prompt is one question to it
                CHATBOT_TITLE="Test Glossary",
                CHATBOT_QUEUE_SIZE="64",
            )
        )
        started.append(
            start_server(
                tmp_path_factory.mktemp("chained"),
                None,
                CHATBOT_BACKEND="openai",
                CHATBOT_OPENAI_BASE_URL=started[0].url,
                CHATBOT_OPENAI_MODEL="test-glossary",
                CHATBOT_OPENAI_API_KEY=KEY,
                CHATBOT_PRELOAD="0",
            )
        )
        for server in started:
            wait_ready(server, timeout_s=300)
        yield started[0], started[1]
    finally:
        for server in started:
            stop_server(server)


def openai_client(server: Any, key: str = KEY) -> Any:
    import openai

    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, timeout=120, max_retries=0)


@pytest.mark.slow
def test_live_openai_client_lists_the_model_and_answers(live: tuple[Any, Any]) -> None:
    api_server, _ = live
    client = openai_client(api_server)
    assert [m.id for m in client.models.list()] == ["test-glossary"]
    completion = client.chat.completions.create(
        model="test-glossary", messages=[{"role": "user", "content": FAQ_QUESTION}]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and "[1]" in (choice.message.content or "")
    citations = (choice.message.model_extra or {})["citations"]
    assert citations and citations[0]["n"] == 1 and citations[0]["text"]
    stream = client.chat.completions.create(
        model="test-glossary",
        messages=[{"role": "user", "content": FAQ_QUESTION}],
        stream=True,
        temperature=0.3,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert (chunks[-1].choices[0].delta.model_extra or {})["citations"] == citations


@pytest.mark.slow
def test_live_wrong_key_is_401(live: tuple[Any, Any]) -> None:
    import httpx
    import openai

    api_server, _ = live
    with pytest.raises(openai.AuthenticationError) as info:
        openai_client(api_server, key="wrong").models.list()
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"
    # Gradio's own login (CHATBOT_AUTH) still guards the UI and is no way into the API
    assert httpx.get(f"{api_server.url}/config", timeout=30).status_code == 401
    resp = httpx.get(f"{api_server.url}/v1/models", auth=("tester", "s3cret-pass"), timeout=30)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.slow
def test_live_project_openai_generator_streams_from_the_api(live: tuple[Any, Any]) -> None:
    from chatbot.generate import OpenAIGenerator

    api_server, _ = live
    gen = OpenAIGenerator(api_server.url, "test-glossary", api_key=KEY, timeout_s=120)
    messages = [{"role": "user", "content": FAQ_QUESTION}]
    streamed = "".join(gen.stream(messages, max_new_tokens=64))
    plain = openai_client(api_server).chat.completions.create(
        model="test-glossary", messages=messages
    )
    assert streamed and streamed == plain.choices[0].message.content


@pytest.mark.slow
def test_live_second_instance_answers_through_the_first_as_its_model(
    live: tuple[Any, Any],
) -> None:
    """``chained`` (backend=openai) sends its prompt to ``api_server``'s /v1 and verifies the
    reply against its own passages, as it would a real model's."""
    _, chained = live
    question = "How do open-weight models differ from proprietary models?"
    completion = openai_client(chained, key="no-key-set").chat.completions.create(
        model="anything", messages=[{"role": "user", "content": question}]
    )
    glossary = (completion.model_extra or {})["glossary"]
    content = completion.choices[0].message.content or ""
    assert "[1]" in content or "[2]" in content, content
    # the model was reached and answered (no "unavailable" / "failed" fallback): its reply was
    # kept as verified, or at worst judged against the passages and replaced by their words
    assert "failed" not in glossary["note"] and "unavailable" not in glossary["note"], glossary
    assert glossary["mode"] == "generated" or "did not match" in glossary["note"], glossary
