"""Generators: the OpenAI-compatible client against a real local HTTP server, backend choice,
the bundled GGUF, and (slow) the converted-weights cache of the real SmolLM2.

The OpenAI client is tested over real sockets on 127.0.0.1 rather than with a mocked httpx,
because what matters is the wire behaviour: server-sent events arrive piece by piece, limits
are sent to the server, and every way a server can fail becomes a GenerationError that the
pipeline turns into an extractive answer.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from chatbot import generate
from chatbot.config import Settings
from chatbot.generate import (
    GenerationError,
    OpenAIGenerator,
    bundled_gguf_path,
    create_generator,
)

MESSAGES = [{"role": "user", "content": "What is a base model?"}]


# ------------------------------------------------------------------------ fake OpenAI server
class FakeOpenAIServer:
    """A minimal OpenAI-compatible /v1/chat/completions that streams SSE chunks.

    ``mode``: "stream" (normal), "status" (answers ``status`` with a JSON error), "stall"
    (waits before any byte), "stall_after_first" (sends one chunk, then waits).
    ``gate``: when set up, the server sends the first chunk and waits for the client to
    signal it was received before sending the rest -- proof that the client streams.
    """

    def __init__(self) -> None:
        self.mode = "stream"
        self.status = 500
        self.pieces = ["Base", " models", " complete", " text", " [1]", "."]
        self.requests: list[dict[str, Any]] = []
        self.junk: list[bytes] = []  # extra raw SSE payloads sent before the content
        self.release = threading.Event()  # ends any stall (set at teardown)
        self.gate: threading.Event | None = None
        self.gate_timed_out = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                if server.mode == "status":
                    data = json.dumps({"error": {"message": "model overloaded"}}).encode()
                    self.send_response(server.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if server.mode == "stall":
                    server.release.wait(10)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.event({"choices": [{"delta": {"role": "assistant"}, "index": 0}]})
                self.wfile.write(b": keep-alive comment\n\n")
                self.wfile.write(b"data: not json\n\n")
                for junk in server.junk:
                    self.wfile.write(b"data: " + junk + b"\n\n")
                for i, piece in enumerate(server.pieces):
                    self.event({"choices": [{"delta": {"content": piece}, "index": 0}]})
                    if i == 0 and server.mode == "stall_after_first":
                        server.release.wait(10)
                        return
                    if i == 0 and server.gate is not None:
                        server.gate_timed_out = not server.gate.wait(10)
                self.event({"choices": [{"delta": {}, "finish_reason": "stop", "index": 0}]})
                self.wfile.write(b"data: [DONE]\n\n")
                # anything after [DONE] must be ignored
                self.event({"choices": [{"delta": {"content": " AFTER-DONE"}, "index": 0}]})

            def event(self, payload: dict[str, Any]) -> None:
                self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
                self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeOpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        if self.gate is not None:
            self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------ OpenAI generator
def test_openai_streams_pieces_in_order(server: FakeOpenAIServer) -> None:
    gen = OpenAIGenerator(server.url, "smol", api_key="sk-test", temperature=0.3)
    pieces = list(gen.stream(MESSAGES, 64))
    assert pieces == server.pieces  # role-only deltas, comments, junk and post-[DONE] ignored
    assert "".join(pieces) == "Base models complete text [1]."
    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sk-test"
    body = req["body"]
    assert body["stream"] is True
    assert body["model"] == "smol"
    assert body["messages"] == MESSAGES
    assert body["temperature"] == 0.3
    assert gen.name == "openai:smol"


def test_openai_skips_malformed_events(server: FakeOpenAIServer) -> None:
    """A proxy or a buggy server may send odd JSON; skip it rather than crash the answer
    with an error that is not a GenerationError (the pipeline only falls back on those)."""
    server.junk = [
        b"[1, 2]",
        b'"just a string"',
        b'{"choices": null}',
        b'{"choices": [null]}',
        b'{"choices": ["text"]}',
        b'{"choices": [{"delta": "text"}]}',
        b'{"choices": [{"delta": {"content": 5}}]}',
        b'{"choices": [{"delta": {"content": ["a"]}}]}',
    ]
    pieces = list(OpenAIGenerator(server.url, "m").stream(MESSAGES, 16))
    assert pieces == server.pieces


def test_openai_output_really_streams(server: FakeOpenAIServer) -> None:
    """The first piece reaches the caller while the server still holds back the rest."""
    server.gate = threading.Event()
    gen = OpenAIGenerator(server.url, "smol", timeout_s=30)
    stream = gen.stream(MESSAGES, 16)
    assert next(stream) == "Base"
    server.gate.set()
    assert "".join(stream) == " models complete text [1]."
    assert not server.gate_timed_out, "the client buffered the whole response"


@pytest.mark.parametrize("max_new_tokens", [1, 7, 96])
def test_openai_sends_the_token_cap(server: FakeOpenAIServer, max_new_tokens: int) -> None:
    list(OpenAIGenerator(server.url, "m").stream(MESSAGES, max_new_tokens))
    assert server.requests[-1]["body"]["max_tokens"] == max_new_tokens


def test_openai_pipeline_cap_comes_from_settings(server: FakeOpenAIServer) -> None:
    """Through create_generator, the cap the server sees is the server-side setting."""
    s = Settings(backend="openai", openai_base_url=server.url, max_new_tokens=33, _env_file=None)  # type: ignore[call-arg]
    gen = create_generator(s)
    assert gen is not None
    list(gen.stream(MESSAGES, s.max_new_tokens))
    assert server.requests[-1]["body"]["max_tokens"] == 33


def test_openai_no_auth_header_without_key(server: FakeOpenAIServer) -> None:
    list(OpenAIGenerator(server.url + "/v1/", "").stream(MESSAGES, 4))
    req = server.requests[-1]
    assert req["path"] == "/v1/chat/completions"  # "/v1/" not doubled
    assert "Authorization" not in req["headers"]
    assert req["body"]["model"] == "default"


@pytest.mark.parametrize("status", [400, 401, 500, 503])
def test_openai_http_error_raises_generation_error(server: FakeOpenAIServer, status: int) -> None:
    server.mode, server.status = "status", status
    with pytest.raises(GenerationError, match=str(status)) as info:
        list(OpenAIGenerator(server.url, "m").stream(MESSAGES, 8))
    assert "model overloaded" in str(info.value)  # the server's reason is kept


def test_openai_connection_refused_raises_generation_error() -> None:
    gen = OpenAIGenerator(f"http://127.0.0.1:{free_port()}", "m", timeout_s=5)
    with pytest.raises(GenerationError, match="cannot reach"):
        list(gen.stream(MESSAGES, 8))


def test_openai_timeout_before_first_byte(server: FakeOpenAIServer) -> None:
    server.mode = "stall"
    gen = OpenAIGenerator(server.url, "m", timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(GenerationError):
        list(gen.stream(MESSAGES, 8))
    assert time.monotonic() - started < 8  # liveness only: it gave up instead of hanging


def test_openai_timeout_mid_stream(server: FakeOpenAIServer) -> None:
    """A server that stalls after the first piece: the caller keeps what it got, then errors."""
    server.mode = "stall_after_first"
    gen = OpenAIGenerator(server.url, "m", timeout_s=0.5)
    got: list[str] = []
    with pytest.raises(GenerationError):
        for piece in gen.stream(MESSAGES, 8):
            got.append(piece)
    assert got == ["Base"]


def test_openai_count_tokens_over_estimates() -> None:
    gen = OpenAIGenerator("http://127.0.0.1:9", "m")
    assert gen.count_tokens("") == 1
    assert gen.count_tokens("x" * 400) == 100


# ------------------------------------------------------------------------ backend choice
def make_settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(cache_dir=tmp_path / "cache", _env_file=None, **kw)  # type: ignore[call-arg]


def test_extractive_backend_has_no_generator(tmp_path: Path) -> None:
    assert create_generator(make_settings(tmp_path, backend="extractive")) is None


def test_openai_backend_needs_a_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="OPENAI_BASE_URL"):
        make_settings(tmp_path, backend="openai")


@pytest.mark.parametrize("backend", ["openai", "auto"])
def test_openai_backend_chosen_with_url(tmp_path: Path, backend: str) -> None:
    s = make_settings(
        tmp_path,
        backend=backend,
        openai_base_url="http://127.0.0.1:1234",
        openai_model="served",
        openai_timeout_s=7,
    )
    gen = create_generator(s)
    assert isinstance(gen, OpenAIGenerator)
    assert gen.base_url == "http://127.0.0.1:1234/v1"
    assert gen.model == "served"
    assert gen.client.timeout.read == 7


class Recorder:
    """Stands in for a model class: records how it was constructed, loads nothing."""

    calls: ClassVar[list[tuple[Any, ...]]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Recorder.calls.append(args)
        self.name = "recorder"

    @classmethod
    def from_settings(cls, settings: Settings) -> Recorder:
        cls.calls.append(("from_settings", settings.model))
        return cls.__new__(cls)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> type[Recorder]:
    Recorder.calls = []
    monkeypatch.setattr(generate, "TransformersGenerator", Recorder)
    monkeypatch.setattr(generate, "LlamaCppGenerator", Recorder)
    return Recorder


def test_auto_uses_transformers_without_llama_cpp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: type[Recorder]
) -> None:
    monkeypatch.setattr(generate, "llama_cpp_available", lambda: False)
    create_generator(make_settings(tmp_path))
    assert recorder.calls == [("from_settings", "smollm2")]


def test_auto_prefers_llama_cpp_on_the_bundled_gguf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: type[Recorder]
) -> None:
    monkeypatch.setattr(generate, "llama_cpp_available", lambda: True)
    create_generator(make_settings(tmp_path, context_tokens=1024))
    ((gguf, n_ctx, *_),) = recorder.calls
    assert gguf == bundled_gguf_path()
    assert n_ctx == 1024


def test_explicit_llama_cpp_with_a_custom_gguf(tmp_path: Path, recorder: type[Recorder]) -> None:
    create_generator(make_settings(tmp_path, backend="llama-cpp", model="/models/x.gguf"))
    ((gguf, *_),) = recorder.calls
    assert gguf == Path("/models/x.gguf")


def test_auto_with_a_non_bundled_model_uses_transformers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: type[Recorder]
) -> None:
    monkeypatch.setattr(generate, "llama_cpp_available", lambda: True)
    create_generator(make_settings(tmp_path, model="HuggingFaceTB/SmolLM2-360M-Instruct"))
    assert recorder.calls == [("from_settings", "HuggingFaceTB/SmolLM2-360M-Instruct")]


# ------------------------------------------------------------------------ bundled GGUF
def test_bundled_gguf_is_found() -> None:
    path = bundled_gguf_path()
    assert path.is_file() and path.suffix == ".gguf"
    with path.open("rb") as fh:
        assert fh.read(4) == b"GGUF"


def test_missing_bundled_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generate.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(GenerationError, match="not installed"):
        bundled_gguf_path()


def test_converted_cache_is_keyed_by_gguf_content(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF-one")
    first = generate.converted_cache_dir(gguf, tmp_path / "cache")
    assert first == generate.converted_cache_dir(gguf, tmp_path / "cache")  # stable
    gguf.write_bytes(b"GGUF-two!")  # new content (and size): a different cache folder
    second = generate.converted_cache_dir(gguf, tmp_path / "cache")
    assert second != first and second.name.startswith("m-")


def test_resolve_model_dir_converts_once_and_reconverts_a_damaged_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache logic without the 30 s conversion: a fake converter writes a tiny folder."""
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF fake weights")
    conversions: list[Path] = []

    def fake_convert(src: Path, out: Path) -> None:
        conversions.append(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.safetensors").write_bytes(b"w" * 100)
        (out / "config.json").write_text("{}")
        files = {p.name: p.stat().st_size for p in out.iterdir()}
        marker = {"format": generate.CACHE_FORMAT, "files": files}
        (out / "converted.json").write_text(json.dumps(marker))

    monkeypatch.setattr(generate, "bundled_gguf_path", lambda: gguf)
    monkeypatch.setattr(generate, "convert_gguf", fake_convert)
    s = make_settings(tmp_path)
    folder = generate.resolve_model_dir(s)
    assert conversions == [folder]
    assert Path(folder).parent == s.model_cache_dir
    assert generate.resolve_model_dir(s) == folder and len(conversions) == 1  # cache hit
    weights = Path(folder) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])  # truncated by a crash or a full disk
    assert generate.resolve_model_dir(s) == folder and len(conversions) == 2
    (Path(folder) / "converted.json").unlink()  # interrupted before the marker was written
    generate.resolve_model_dir(s)
    assert len(conversions) == 3


# ------------------------------------------------------------------------ real SmolLM2
@pytest.mark.slow
def test_transformers_generator_caches_the_conversion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real SmolLM2: converted once into the cache, loaded from it next time, streams text;
    a truncated safetensors file is detected and converted again."""
    conversions: list[Path] = []
    real_convert = generate.convert_gguf

    def counting_convert(gguf: Path, out: Path) -> None:
        conversions.append(out)
        real_convert(gguf, out)

    monkeypatch.setattr(generate, "convert_gguf", counting_convert)
    s = make_settings(tmp_path, threads=2, max_new_tokens=12)

    gen = generate.TransformersGenerator.from_settings(s)
    assert len(conversions) == 1
    folder = conversions[0]
    assert folder.parent == s.model_cache_dir
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "converted.json"} <= names
    assert any(n.startswith("tokenizer") for n in names)
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".tmp-")]
    weights = folder / "model.safetensors"
    mtime = weights.stat().st_mtime_ns

    text = "".join(gen.stream(MESSAGES, 12))
    assert text.strip()
    assert gen.count_tokens(text) > 0
    del gen

    again = generate.TransformersGenerator.from_settings(s)
    assert len(conversions) == 1, "the second load must come from the cache"
    assert weights.stat().st_mtime_ns == mtime
    del again

    with weights.open("r+b") as fh:
        fh.truncate(os.path.getsize(weights) // 2)
    repaired = generate.TransformersGenerator.from_settings(s)
    assert len(conversions) == 2, "a truncated cache must be converted again"
    assert weights.stat().st_size > 0 and generate._cache_complete(folder)
    assert "".join(repaired.stream(MESSAGES, 6)).strip()
