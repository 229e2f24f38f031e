"""Generators: the OpenAI-compatible client against a real local HTTP server, the one backend
choice, the model cache (keyed by the GGUF's hash, published atomically, incomplete folders
built again), the streaming machinery, onnxruntime-genai on a fake ``og`` module, transformers
on a tiny in-process Llama, and (slow) the real SmolLM2 on onnxruntime-genai and transformers.

The OpenAI client is tested over real sockets on 127.0.0.1 rather than with a mocked httpx,
because what matters is the wire behaviour: server-sent events arrive piece by piece, limits
are sent to the server, and every way a server can fail becomes a GenerationError that the
pipeline turns into an extractive answer.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from chatbot.compose import compose_messages
from chatbot.config import Settings
from chatbot.errors import GenerationError
from chatbot.generate import (
    LlamaCppGenerator,
    OnnxGenaiGenerator,
    OpenAIGenerator,
    TransformersGenerator,
    base,
    bundled_gguf_path,
    cache_complete,
    choose,
    choose_backend,
    converted_cache_dir,
    create_generator,
    expected_cache_dir,
    model_cache,
    onnx_cache_dir,
    onnx_genai,
    resolve_model_dir,
)
from chatbot.generate.base import (
    GenerationOptions,
    IncrementalText,
    mean_logprob,
    threaded_stream,
)
from chatbot.generate.onnx_genai import resolve_onnx_dir
from chatbot.grounded import ClauseGrammar
from chatbot.prompt import Templates

MESSAGES = [{"role": "user", "content": "What is a base model?"}]
REPO = Path(__file__).resolve().parent.parent


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


# ------------------------------------------------------------------------ backend choice
@pytest.fixture
def available(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """Which optional backends "import" here, as ``choose`` sees them (all off by default)."""
    found = {"onnx-genai": False, "llama-cpp": False}
    monkeypatch.setattr(choose, "onnx_genai_available", lambda: found["onnx-genai"])
    monkeypatch.setattr(choose, "llama_cpp_available", lambda: found["llama-cpp"])
    return found


@pytest.mark.parametrize(
    ("settings", "installed", "expected"),
    [
        ({}, {"onnx-genai", "llama-cpp"}, "onnx-genai"),
        ({}, {"llama-cpp"}, "llama-cpp"),
        ({}, set(), "transformers"),
        ({"model": "HuggingFaceTB/SmolLM2-360M-Instruct"}, {"onnx-genai"}, "transformers"),
        ({"openai_base_url": "http://127.0.0.1:1"}, {"onnx-genai"}, "openai"),
        ({"backend": "extractive", "openai_base_url": "http://x"}, {"onnx-genai"}, "extractive"),
        ({"backend": "transformers"}, {"onnx-genai", "llama-cpp"}, "transformers"),
        ({"backend": "onnx-genai"}, set(), "onnx-genai"),  # explicit: doctor says what is missing
        ({"backend": "llama-cpp"}, set(), "llama-cpp"),
        ({"backend": "openai", "openai_base_url": "http://x"}, set(), "openai"),
    ],
)
def test_choose_backend(
    tmp_path: Path,
    available: dict[str, bool],
    settings: dict[str, Any],
    installed: set[str],
    expected: str,
) -> None:
    for name in installed:
        available[name] = True
    assert choose_backend(make_settings(tmp_path, **settings)) == expected


class Recorder:
    """Stands in for a model class: records how it was constructed, loads nothing."""

    calls: ClassVar[list[tuple[Any, ...]]] = []
    fail_from_settings: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Recorder.calls.append((*args, *kwargs.values()))
        self.name = "recorder"

    @classmethod
    def from_settings(cls, settings: Settings) -> Recorder:
        cls.calls.append(("from_settings", settings.model))
        return cls.__new__(cls)


class FailingOnnx:
    @classmethod
    def from_settings(cls, settings: Settings) -> FailingOnnx:
        raise GenerationError("the ONNX model build failed")


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch, available: dict[str, bool]) -> type[Recorder]:
    Recorder.calls = []
    for name in ("TransformersGenerator", "LlamaCppGenerator", "OnnxGenaiGenerator"):
        monkeypatch.setattr(choose, name, type(name, (Recorder,), {}))
    return Recorder


def test_create_generator_builds_the_chosen_backend(
    tmp_path: Path, available: dict[str, bool], recorder: type[Recorder]
) -> None:
    available["onnx-genai"] = True
    gen = create_generator(make_settings(tmp_path))
    assert type(gen).__name__ == "OnnxGenaiGenerator"
    assert recorder.calls == [("from_settings", "smollm2")]
    available["onnx-genai"] = False
    assert type(create_generator(make_settings(tmp_path))).__name__ == "TransformersGenerator"


def test_auto_prefers_llama_cpp_over_transformers_on_the_bundled_gguf(
    tmp_path: Path, available: dict[str, bool], recorder: type[Recorder]
) -> None:
    available["llama-cpp"] = True
    create_generator(make_settings(tmp_path, context_tokens=1024))
    ((gguf, options, n_ctx),) = recorder.calls
    assert gguf == bundled_gguf_path()
    assert n_ctx == 1024 and options.threads >= 1


def test_explicit_llama_cpp_with_a_custom_gguf(tmp_path: Path, recorder: type[Recorder]) -> None:
    create_generator(make_settings(tmp_path, backend="llama-cpp", model="/models/x.gguf"))
    ((gguf, *_),) = recorder.calls
    assert gguf == Path("/models/x.gguf")


def test_auto_falls_back_to_transformers_when_onnx_fails(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    available: dict[str, bool],
    recorder: type[Recorder],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failed ONNX build must not cost the user the model; an explicit choice still fails."""
    available["onnx-genai"] = True
    monkeypatch.setattr(choose, "OnnxGenaiGenerator", FailingOnnx)
    gen = create_generator(make_settings(tmp_path))
    assert type(gen).__name__ == "TransformersGenerator"
    assert "using transformers" in caplog.text
    with pytest.raises(GenerationError, match="build failed"):
        create_generator(make_settings(tmp_path, backend="onnx-genai"))


# ------------------------------------------------------------------------ bundled GGUF, cache
def test_bundled_gguf_is_found() -> None:
    path = bundled_gguf_path()
    assert path.is_file() and path.suffix == ".gguf"
    with path.open("rb") as fh:
        assert fh.read(4) == b"GGUF"


def test_missing_bundled_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_cache, "wheel_dir", lambda package: None)
    with pytest.raises(GenerationError, match="not installed"):
        bundled_gguf_path()


def test_converted_cache_is_keyed_by_gguf_content(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF-one")
    root = tmp_path / "cache"
    assert expected_cache_dir(gguf, root) == converted_cache_dir(gguf, root)
    first = converted_cache_dir(gguf, root)
    assert first == converted_cache_dir(gguf, root)  # stable
    assert onnx_cache_dir(first) == root / f"{first.name}-onnx-int4"
    gguf.write_bytes(b"GGUF-two!")  # new content (and size): a different cache folder
    assert expected_cache_dir(gguf, root) != first
    second = converted_cache_dir(gguf, root)
    assert second != first and second.name.startswith("m-")
    assert onnx_cache_dir(second) != onnx_cache_dir(first)


def test_expected_cache_dir_writes_nothing(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    expected = expected_cache_dir(gguf, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    assert converted_cache_dir(gguf, tmp_path / "cache") == expected


@pytest.fixture
def fake_gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF fake weights")
    monkeypatch.setattr(model_cache, "bundled_gguf_path", lambda: gguf)
    monkeypatch.setattr(onnx_genai, "bundled_gguf_path", lambda: gguf)
    return gguf


def fake_build(calls: list[Path], files: dict[str, bytes]) -> Any:
    """A converter/builder that writes ``files`` into the folder it is given and records it."""

    def build(source: Path, folder: Path, **options: str) -> None:
        assert folder.name.startswith(".tmp-"), "a build writes under a temporary name"
        calls.append(folder)
        for name, data in files.items():
            (folder / name).write_bytes(data)

    return build


def leftovers(root: Path) -> list[str]:
    return [p.name for p in root.iterdir() if p.name.startswith(".tmp")]


def test_resolve_model_dir_converts_once_and_reconverts_a_damaged_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_gguf: Path
) -> None:
    """The cache logic without the 30 s conversion: a fake converter writes a tiny folder."""
    conversions: list[Path] = []
    files = {"model.safetensors": b"w" * 100, "config.json": b"{}"}
    monkeypatch.setattr(model_cache, "convert_gguf", fake_build(conversions, files))
    s = make_settings(tmp_path)
    folder = Path(resolve_model_dir(s))
    assert len(conversions) == 1 and folder.parent == s.model_cache_dir
    assert cache_complete(folder) and leftovers(s.model_cache_dir) == []
    marker = json.loads((folder / "converted.json").read_text())
    assert marker["files"] == {"config.json": 2, "model.safetensors": 100}
    assert resolve_model_dir(s) == folder and len(conversions) == 1  # cache hit
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])  # truncated by a crash or a full disk
    assert not cache_complete(folder)
    assert resolve_model_dir(s) == folder and len(conversions) == 2
    assert weights.stat().st_size == 100
    (folder / "converted.json").unlink()  # interrupted before the marker was written
    resolve_model_dir(s)
    assert len(conversions) == 3 and cache_complete(folder)


def test_a_failed_build_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_gguf: Path
) -> None:
    def crash(gguf: Path, folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"half")
        raise OSError("No space left on device")

    monkeypatch.setattr(model_cache, "convert_gguf", crash)
    s = make_settings(tmp_path)
    with pytest.raises(OSError, match="No space"):
        resolve_model_dir(s)
    assert [p.name for p in s.model_cache_dir.iterdir()] == ["gguf-hashes.json"]


def test_publish_keeps_a_folder_another_process_published(tmp_path: Path) -> None:
    """Two processes building the same folder: the first complete one stays, the other's
    build is discarded (never half-replaced while someone may be loading it)."""
    out = tmp_path / "models" / "m-0123"

    def build(folder: Path) -> None:
        (folder / "model.onnx").write_bytes(b"mine")
        model_cache.publish_folder(out, lambda f: (f / "model.onnx").write_bytes(b"theirs"), "x")

    model_cache.publish_folder(out, build, "x")
    assert (out / "model.onnx").read_bytes() == b"theirs" and cache_complete(out)
    assert leftovers(out.parent) == []


def test_onnx_cache_built_once_from_the_converted_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_gguf: Path
) -> None:
    """Built from the float32 folder, keyed by the GGUF hash, reused, built again when damaged;
    once built, the float32 folder is not needed (nor touched) to start."""
    conversions: list[Path] = []
    builds: list[Path] = []
    monkeypatch.setattr(
        model_cache, "convert_gguf", fake_build(conversions, {"model.safetensors": b"w"})
    )
    monkeypatch.setattr(
        onnx_genai,
        "build_onnx",
        fake_build(builds, {"genai_config.json": b"{}", "model.onnx.data": b"x" * 64}),
    )
    s = make_settings(tmp_path)
    folder = resolve_onnx_dir(s)
    converted = converted_cache_dir(fake_gguf, s.model_cache_dir)
    assert folder == onnx_cache_dir(converted) and cache_complete(folder)
    assert (len(conversions), len(builds)) == (1, 1)
    assert resolve_onnx_dir(s) == folder and len(builds) == 1  # warm start: nothing built
    import shutil

    shutil.rmtree(converted)
    assert resolve_onnx_dir(s) == folder and len(conversions) == 1  # not reconverted
    with (folder / "model.onnx.data").open("r+b") as fh:
        fh.truncate(10)
    assert resolve_onnx_dir(s) == folder
    assert (len(conversions), len(builds)) == (2, 2)  # damaged: converted and built again
    assert (folder / "model.onnx.data").stat().st_size == 64
    assert leftovers(s.model_cache_dir) == []


def test_onnx_precision_selects_its_own_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_gguf: Path
) -> None:
    precisions: list[str] = []

    def build(hf_dir: Path, folder: Path, precision: str = "int4") -> None:
        precisions.append(precision)
        (folder / "genai_config.json").write_text("{}")

    monkeypatch.setattr(model_cache, "convert_gguf", fake_build([], {"model.safetensors": b"w"}))
    monkeypatch.setattr(onnx_genai, "build_onnx", build)
    int4 = resolve_onnx_dir(make_settings(tmp_path))
    int8 = resolve_onnx_dir(make_settings(tmp_path, onnx_precision="int8"))
    assert precisions == ["int4", "int8"]
    assert int4.name.endswith("-onnx-int4") and int8.name.endswith("-onnx-int8")
    assert int4.parent == int8.parent and cache_complete(int4) and cache_complete(int8)


def test_onnx_backend_with_a_foreign_model(tmp_path: Path) -> None:
    """A folder with a genai_config.json is loaded as given; anything else is a clear error."""
    ready = tmp_path / "phi-onnx"
    ready.mkdir()
    (ready / "genai_config.json").write_text("{}")
    assert resolve_onnx_dir(make_settings(tmp_path, model=str(ready))) == ready
    with pytest.raises(GenerationError, match=r"genai_config\.json"):
        resolve_onnx_dir(make_settings(tmp_path, model="HuggingFaceTB/SmolLM2-360M-Instruct"))


def test_build_onnx_runs_the_builder_offline_in_a_scratch_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The int4 CPU build, in a subprocess of this interpreter, offline, scratch files beside the
    target (never in the cwd); a failing build becomes a GenerationError with its output."""
    runs: list[dict[str, Any]] = []

    def fake_run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        runs.append({"cmd": cmd, **kw})
        folder = Path(cmd[cmd.index("-o") + 1])
        if len(runs) <= 2:
            (folder / "genai_config.json").write_text("{}")
            return subprocess.CompletedProcess(cmd, 0, "", "")
        return subprocess.CompletedProcess(cmd, 1, "", "Traceback ... KeyError: 'llama'")

    monkeypatch.setattr(onnx_genai.subprocess, "run", fake_run)
    out = tmp_path / "models" / ".tmp-x"
    out.mkdir(parents=True)
    onnx_genai.build_onnx(tmp_path / "hf", out)
    onnx_genai.build_onnx(tmp_path / "hf", out, precision="int8")
    assert runs[1]["cmd"][runs[1]["cmd"].index("-p") + 1] == "int8"
    cmd = runs[0]["cmd"]
    assert cmd[:3] == [sys.executable, "-m", "onnxruntime_genai.models.builder"]
    assert cmd[cmd.index("-p") + 1] == "int4" and cmd[cmd.index("-e") + 1] == "cpu"
    assert cmd[cmd.index("-i") + 1] == str(tmp_path / "hf")
    assert Path(runs[0]["cwd"]).parent == out.parent
    assert Path(cmd[cmd.index("-c") + 1]).is_relative_to(runs[0]["cwd"])
    assert runs[0]["env"]["HF_HUB_OFFLINE"] == "1"
    assert leftovers(out.parent) == [".tmp-x"]  # the scratch folder is gone
    with pytest.raises(GenerationError, match="KeyError: 'llama'"):
        onnx_genai.build_onnx(tmp_path / "hf", out)


# ------------------------------------------------------------------------ streaming machinery
def slow_pieces(produced: list[str], n: int = 1000, delay: float = 0.005) -> base.Produce:
    def produce(stop: threading.Event) -> Iterator[str]:
        for i in range(n):
            if stop.is_set():
                return
            time.sleep(delay)
            produced.append(f"p{i}")
            yield f"p{i} "

    return produce


def test_threaded_stream_stops_when_the_consumer_stops() -> None:
    produced: list[str] = []
    lock = threading.Lock()
    stream = threaded_stream(slow_pieces(produced), lock)
    assert next(stream) == "p0 "
    started = time.monotonic()
    stream.close()  # the client went away
    assert time.monotonic() - started < 1.0
    assert not lock.locked()
    count = len(produced)
    time.sleep(0.05)
    assert len(produced) == count < 50  # nothing more is decoded
    assert "".join(threaded_stream(slow_pieces([], n=3, delay=0), lock)) == "p0 p1 p2 "


def test_threaded_stream_errors_and_stalls_become_generation_errors() -> None:
    def broken(stop: threading.Event) -> Iterator[str]:
        yield "A"
        raise RuntimeError("decoder exploded")

    got: list[str] = []
    lock = threading.Lock()
    with pytest.raises(GenerationError, match="decoder exploded"):
        got.extend(threaded_stream(broken, lock))
    assert got == ["A"] and not lock.locked()
    with pytest.raises(GenerationError, match="stalled"):
        list(threaded_stream(slow_pieces([], n=2, delay=1.0), lock, stall_s=0.1))


def test_incremental_text_waits_for_whole_characters() -> None:
    data = "añ!".encode()  # ñ is two bytes: one "token" each

    def decode(tokens: list[int]) -> str:
        return bytes(tokens).decode("utf-8", errors="replace")

    text = IncrementalText(decode)
    assert [text.add(b) for b in data] == ["a", "", "ñ", "!"]
    assert text.flush() == ""
    cut = IncrementalText(decode)
    assert [cut.add(b) for b in data[:2]] == ["a", ""]
    assert cut.flush() == "\ufffd"  # the end of the stream: what is there is shown


def test_mean_logprob_matches_a_direct_computation() -> None:
    import numpy as np

    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [1000.0, 0.0, 999.0]], np.float32)
    got = mean_logprob(logits, [0, 2, 2])
    probs = [np.exp(2) / (np.exp(2) + 1 + np.exp(-1)), 1 / 3, np.exp(-1) / (1 + np.exp(-1))]
    assert got == pytest.approx(float(np.mean(np.log(probs))), rel=1e-6)


# ------------------------------------------------------------------------ onnx-genai, fake og
class FakeOg(types.ModuleType):
    """A stand-in ``onnxruntime_genai`` module: one-character tokens (ord), a scripted reply,
    and a record of configs, search options and how many tokens were generated."""

    def __init__(self, reply: str) -> None:
        super().__init__("onnxruntime_genai")
        self.overlays: list[dict[str, Any]] = []
        self.searches: list[dict[str, Any]] = []
        self.generated = 0
        fake = self

        class Config:
            def __init__(self, path: str) -> None:
                self.path = path

            def overlay(self, text: str) -> None:
                fake.overlays.append(json.loads(text))

        class Model:
            def __init__(self, config: Config) -> None:
                self.config = config

        class Stream:
            def decode(self, token: int) -> str:
                return "" if token == 2 else chr(token)

        class Tokenizer:
            eos_token_ids = (2,)
            bos_token_id = 1

            def __init__(self, model: Model) -> None:
                pass

            def encode(self, text: str) -> list[int]:
                return [ord(c) for c in text]

            def apply_chat_template(self, messages: str, add_generation_prompt: bool) -> str:
                return "".join(f"<{m['role']}>{m['content']}" for m in json.loads(messages)) + ">"

            def create_stream(self) -> Stream:
                return Stream()

        class GeneratorParams:
            def __init__(self, model: Model) -> None:
                pass

            def set_search_options(self, **options: Any) -> None:
                fake.searches.append(options)

        class Generator:
            def __init__(self, model: Model, params: GeneratorParams) -> None:
                self.script = [ord(c) for c in reply] + [2]
                self.step = -1

            def append_tokens(self, ids: Any) -> None:
                self.prompt = list(ids)

            def is_done(self) -> bool:
                return self.step >= len(self.script) - 1

            def generate_next_token(self) -> None:
                self.step += 1
                fake.generated += 1

            def get_next_tokens(self) -> list[int]:
                return [self.script[self.step]]

        self.Config, self.Model, self.Tokenizer = Config, Model, Tokenizer
        self.GeneratorParams, self.Generator = GeneratorParams, Generator


def fake_onnx(monkeypatch: pytest.MonkeyPatch, reply: str, **kw: Any) -> tuple[Any, FakeOg]:
    og = FakeOg(reply)
    monkeypatch.setitem(sys.modules, "onnxruntime_genai", og)
    return OnnxGenaiGenerator(Path("/models/x"), GenerationOptions(**kw)), og


def test_onnx_generator_streams_the_reply_and_stops_at_eos(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gen, og = fake_onnx(monkeypatch, "Base models.", threads=2, repetition_penalty=1.2)
    assert "".join(gen.stream(MESSAGES, 50)) == "Base models."
    prompt = len("<user>What is a base model?>")
    assert og.searches == [
        {"max_length": prompt + 50, "do_sample": False, "repetition_penalty": 1.2}
    ]
    assert gen.count_tokens("abc") == 3 and gen.count_tokens("") == 0
    assert og.generated == len("Base models.") + 1  # the EOS step, never shown


def test_onnx_generator_sets_threads_once_for_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    gen, og = fake_onnx(monkeypatch, "ok", threads=2)
    for _ in range(3):
        list(gen.stream(MESSAGES, 8))
    options = {"intra_op_num_threads": 2, "inter_op_num_threads": 1}
    assert og.overlays == [{"model": {"decoder": {"session_options": options}}}]
    _, og_default = fake_onnx(monkeypatch, "ok", threads=0)
    assert og_default.overlays == []  # 0: onnxruntime's own default


def test_onnx_generator_honours_the_token_cap_and_sampling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gen, og = fake_onnx(monkeypatch, "a long answer", temperature=0.7)
    assert "".join(gen.stream(MESSAGES, 4)) == "a lo"
    assert og.searches[-1]["do_sample"] is True
    assert og.searches[-1]["temperature"] == 0.7 and og.searches[-1]["top_p"] == 0.9


def test_onnx_generator_stops_when_the_consumer_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    gen, og = fake_onnx(monkeypatch, "x" * 100_000)
    stream = gen.stream(MESSAGES, 100_000)
    assert next(stream) == "x"
    stream.close()
    assert not gen._lock.locked()
    count = og.generated
    assert count < 100_000
    time.sleep(0.05)
    assert og.generated == count


def test_onnx_load_errors_are_generation_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    og = FakeOg("")

    def broken(config: Any) -> None:
        raise RuntimeError("Load model from model.onnx failed: Protobuf parsing failed")

    og.Model = broken  # type: ignore[assignment]
    monkeypatch.setitem(sys.modules, "onnxruntime_genai", og)
    with pytest.raises(GenerationError, match="Protobuf"):
        OnnxGenaiGenerator(Path("/models/x"))


# ------------------------------------------------------------------------ tiny transformers model
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\\n{{ m['content'] }}<|im_end|>\\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\\n{% endif %}"
)


def tiny_llama(vocab: int = 256, seed: int = 0) -> Any:
    """A randomly initialised 2-layer Llama, built in-process (no download); the init is 10x
    transformers' default, so its greedy output is not one repeated token."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=vocab,
        max_position_embeddings=128,
        initializer_range=0.2,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture
def tiny_model_dir(tmp_path: Path) -> Path:
    """A tiny Llama saved as a transformers folder, with a byte-level tokenizer built offline
    (256 byte tokens + 2 chat specials, hence a 258-token vocabulary)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab |= {"<|im_start|>": 256, "<|im_end|>": 257}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        chat_template=CHAT_TEMPLATE,
    )
    folder = tmp_path / "tiny-llama"
    model = tiny_llama(vocab=258)
    model.generation_config.eos_token_id = 257
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def test_transformers_decoding_equals_model_generate(tiny_model_dir: Path) -> None:
    """The own decoding loop (prefill, cache, repetition penalty over prompt and answer, EOS)
    produces exactly what transformers' greedy ``generate`` produces."""
    import torch

    gen = TransformersGenerator(
        tiny_model_dir, GenerationOptions(repetition_penalty=1.3), name="tiny"
    )
    ids = gen.tokenizer(gen.render(MESSAGES), return_tensors="pt").input_ids
    with torch.inference_mode():
        out = gen.model.generate(
            ids, max_new_tokens=12, do_sample=False, repetition_penalty=1.3, pad_token_id=257
        )
    expected = gen.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert expected.strip()
    assert "".join(gen.stream(MESSAGES, 12)) == expected


def test_transformers_stream_stops_when_the_consumer_stops(tiny_model_dir: Path) -> None:
    gen = TransformersGenerator(tiny_model_dir, name="tiny")
    calls = 0
    real = gen._next_logits

    def counting(x: Any, cache: Any) -> Any:
        nonlocal calls
        calls += 1
        time.sleep(0.005)
        return real(x, cache)

    gen._next_logits = counting  # type: ignore[method-assign]
    stream = gen.stream(MESSAGES, 1000)
    assert next(stream)
    stream.close()
    assert not gen._lock.locked()
    done = calls
    time.sleep(0.05)
    assert calls == done < 100


def test_transformers_score_prefers_the_prefix_the_model_continues(tiny_model_dir: Path) -> None:
    """score() is the mean log-probability the model gives the continuation: checked against
    the model's own greedy continuation, which must score highest."""
    import torch

    gen = TransformersGenerator(tiny_model_dir, name="tiny")
    prefix = "abc"
    ids = gen.tokenizer(prefix, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.inference_mode():
        out = gen.model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=257)
    greedy = gen.tokenizer.decode(out[0, ids.shape[1] :])
    scores = gen.score([prefix, "zzzz"], greedy)
    assert scores[0] > scores[1] and all(s < 0 for s in scores)
    assert gen.score([], greedy) == []


EVIDENCE = [
    "A base model is the raw pre-trained version of a language model, trained only on "
    "next-token prediction.",
    "Instruct models are created by fine-tuning base models with instruction data.",
]


def composed(gen: Any, evidence: list[str], max_new_tokens: int = 60) -> str:
    """The composition of ``evidence`` for "What is a base model?", as the compose stage asks."""
    grammar = ClauseGrammar(evidence)
    messages = compose_messages(Templates.load(), MESSAGES[0]["content"], evidence)
    text = "".join(gen.grounded(messages, grammar, max_new_tokens))
    assert text and grammar.advance(grammar.start(), text), text  # whole clauses only
    return text


def test_transformers_composes_only_whole_evidence_clauses(tiny_model_dir: Path) -> None:
    """A random tiny model prefers random tokens: the grammar still admits only the
    evidence's clauses, and the decoding is greedy (the same text twice)."""
    gen = TransformersGenerator(tiny_model_dir, name="tiny")
    text = composed(gen, EVIDENCE)
    assert text == composed(gen, EVIDENCE)
    assert not gen._lock.locked()


# ------------------------------------------------------------------------ real SmolLM2
@pytest.fixture(scope="module")
def smol_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tmp cache dir whose ``models`` holds only the float32 conversion, linked file by file
    (only read): the checkout's when it is complete, else the session-wide one the live-server
    tests share (converted there first if needed), so the ~30 s conversion happens at most once
    per session while the ONNX build below always starts from an empty folder of its own."""
    cache = tmp_path_factory.mktemp("smol-cache")
    gguf = bundled_gguf_path()
    source = expected_cache_dir(gguf, REPO / ".cache" / "models")
    if not cache_complete(source):
        root = tmp_path_factory.getbasetemp() / "shared-cache-root"
        shared = tmp_path_factory.getbasetemp() / "shared-model-cache"
        shared.mkdir(parents=True, exist_ok=True)
        if not (root / "models").exists():
            root.mkdir(exist_ok=True)
            (root / "models").symlink_to(shared, target_is_directory=True)
        source = Path(resolve_model_dir(Settings(cache_dir=root, _env_file=None)))  # type: ignore[call-arg]
    local = converted_cache_dir(gguf, cache / "models")
    local.mkdir()
    for item in source.iterdir():
        (local / item.name).symlink_to(item)
    return cache


@pytest.fixture(scope="module")
def smol_onnx(smol_cache: Path) -> tuple[Settings, list[Path], Any]:
    """The real ONNX build (~15 s, once per module), with every build it took recorded."""
    builds: list[Path] = []
    real = onnx_genai.build_onnx
    s = Settings(cache_dir=smol_cache, threads=2, _env_file=None)  # type: ignore[call-arg]

    def counting(hf_dir: Path, folder: Path, precision: str = "int4") -> None:
        builds.append(folder)
        real(hf_dir, folder, precision)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(onnx_genai, "build_onnx", counting)
        gen = OnnxGenaiGenerator.from_settings(s)
        assert len(builds) == 1
        again = OnnxGenaiGenerator.from_settings(s)
    assert again.load_seconds < 5  # measured ~0.3 s; generous for a loaded 2-core machine
    return s, builds, gen


@pytest.mark.slow
def test_real_onnx_composition_reuses_its_prefix_exactly(
    smol_onnx: tuple[Settings, list[Path], Any],
) -> None:
    """The kept, rewound prompt prefix gives the composition a fresh prefill gives."""
    _, _, gen = smol_onnx
    gen._prefix = None
    first = composed(gen, EVIDENCE)
    other = composed(gen, EVIDENCE[1:])  # same prefix, another question: rewound
    assert gen._prefix is not None
    assert composed(gen, EVIDENCE) == first != other
    gen._prefix = None  # a fresh generator, no reuse
    assert composed(gen, EVIDENCE) == first
    assert first.lower().startswith(("a base model", "the raw", "raw"))


@pytest.mark.slow
def test_real_onnx_build_is_cached_by_gguf_hash(
    smol_onnx: tuple[Settings, list[Path], Any],
) -> None:
    s, builds, gen = smol_onnx
    assert len(builds) == 1, "the second load must come from the cache"
    folder = resolve_onnx_dir(s)
    converted = converted_cache_dir(bundled_gguf_path(), s.model_cache_dir)
    assert folder == onnx_cache_dir(converted) and cache_complete(folder)
    names = {p.name for p in folder.iterdir()}
    assert {"genai_config.json", "model.onnx", "model.onnx.data", "tokenizer.json"} <= names
    assert leftovers(s.model_cache_dir) == []
    assert gen.weights == "onnx-int4" and gen.name == "SmolLM2-135M-Instruct"


@pytest.mark.slow
def test_real_onnx_streams_a_deterministic_answer(
    smol_onnx: tuple[Settings, list[Path], Any],
) -> None:
    _, _, gen = smol_onnx
    pieces = list(gen.stream(MESSAGES, 24))
    text = "".join(pieces)
    assert len(pieces) > 5  # streamed piece by piece, not in one block
    assert "model" in text.lower() and "<|im" not in text
    assert "What is a base model?" not in text  # the reply, not the prompt echoed
    assert 5 <= gen.count_tokens(text) <= 24
    assert "".join(gen.stream(MESSAGES, 24)) == text  # greedy: the same answer every time


@pytest.mark.slow
def test_real_onnx_stops_early_when_the_consumer_stops(
    smol_onnx: tuple[Settings, list[Path], Any],
) -> None:
    _, _, gen = smol_onnx
    stream = gen.stream(MESSAGES, 400)
    assert next(stream)
    started = time.monotonic()
    stream.close()
    assert time.monotonic() - started < 1.0
    assert not gen._lock.locked()
    assert "".join(gen.stream(MESSAGES, 3)).strip()  # the model is free for the next question


@pytest.mark.slow
def test_real_onnx_counts_tokens_like_the_hf_tokenizer(
    smol_onnx: tuple[Settings, list[Path], Any],
) -> None:
    from transformers import AutoTokenizer

    s, _, gen = smol_onnx
    hf = AutoTokenizer.from_pretrained(str(resolve_model_dir(s)))
    for text in ["", "hello world", "Base models [1] predict the next token.", "héllo 日本 ☃"]:
        assert gen.count_tokens(text) == len(hf.encode(text, add_special_tokens=False)), text
    conversation = [{"role": "system", "content": "Cite [1]."}, *MESSAGES]
    assert gen.render(conversation) == hf.apply_chat_template(
        conversation, tokenize=False, add_generation_prompt=True
    )


@pytest.mark.slow
def test_real_onnx_score_ranks_the_matching_passage_first(
    smol_onnx: tuple[Settings, list[Path], Any],
) -> None:
    _, _, gen = smol_onnx
    prefixes = [
        "Passage (Pizza): Pizza is an Italian dish of dough, tomato and cheese.\nQuestion:",
        "Passage (Base model): A base model is a language model trained on raw text to predict "
        "the next token, before any instruction tuning.\nQuestion:",
    ]
    scores = gen.score(prefixes, " What is a base model?")
    assert scores[1] > scores[0] + 1.0 and all(-20 < x < 0 for x in scores)
    assert gen.score([], " x") == []


@pytest.mark.slow
def test_transformers_generator_caches_the_conversion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real SmolLM2 on transformers: converted once into the cache, loaded from it next time,
    answers; a truncated safetensors file is detected and converted again."""
    conversions: list[Path] = []
    real_convert = model_cache.convert_gguf

    def counting_convert(gguf: Path, out: Path) -> None:
        conversions.append(out)
        real_convert(gguf, out)

    monkeypatch.setattr(model_cache, "convert_gguf", counting_convert)
    s = make_settings(tmp_path, threads=2, max_new_tokens=12, backend="transformers")

    gen = create_generator(s)
    assert isinstance(gen, TransformersGenerator) and len(conversions) == 1
    folder = Path(resolve_model_dir(s))
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "converted.json"} <= names
    assert any(n.startswith("tokenizer") for n in names)
    assert leftovers(folder.parent) == []
    weights = folder / "model.safetensors"
    mtime = weights.stat().st_mtime_ns

    text = "".join(gen.stream(MESSAGES, 12))
    assert "model" in text.lower() and 3 <= gen.count_tokens(text) <= 12
    del gen

    again = TransformersGenerator.from_settings(s)
    assert len(conversions) == 1, "the second load must come from the cache"
    assert weights.stat().st_mtime_ns == mtime
    del again

    with weights.open("r+b") as fh:
        fh.truncate(os.path.getsize(weights) // 2)
    repaired = TransformersGenerator.from_settings(s)
    assert len(conversions) == 2, "a truncated cache must be converted again"
    assert cache_complete(folder)
    assert "".join(repaired.stream(MESSAGES, 6)).strip()


# ------------------------------------------------------------------------ llama.cpp errors
class FailingLlama:
    """Stands in for ``llama_cpp.Llama``: streams ``pieces`` of a chat completion, then raises
    what llama.cpp raises when the prompt overflows its context."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    def create_chat_completion(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for piece in self.pieces:
            yield {"choices": [{"delta": {"content": piece}}]}
        raise ValueError("Requested tokens (2100) exceed context window of 2048")


@pytest.mark.parametrize("pieces", [[], ["Base", " models"]], ids=["at-once", "mid-stream"])
def test_llama_cpp_errors_become_generation_errors(pieces: list[str]) -> None:
    """The pipeline falls back to an extractive answer on GenerationError only; a raw
    ValueError from llama.cpp would reach the user as a failed request."""
    gen = object.__new__(LlamaCppGenerator)
    gen.llm = FailingLlama(pieces)
    gen.temperature, gen.repetition_penalty = 0.0, 1.15
    gen._lock = threading.Lock()
    got: list[str] = []
    with pytest.raises(GenerationError, match="context window"):
        for piece in gen.stream(MESSAGES, 32):
            got.append(piece)
    assert got == pieces
    assert not gen._lock.locked()
