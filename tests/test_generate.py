"""Generators: the OpenAI-compatible client against a real local HTTP server, backend choice,
the bundled GGUF, the int4 GGUF-block path (block decoding, the quantized modules, the
all-or-nothing swap, the lean Llama forward and its load-time check, on a tiny in-process
Llama), and (slow) the converted-weights cache and the quantized weights of the real SmolLM2.

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


# ------------------------------------------------------------------------ GGUF int4 blocks
# Hand-written encoders in the GGUF layouts (what llama.cpp's quantizer writes), so the decoding
# side is checked against an independent implementation rather than against itself.
def gguf_permute(w: Any, n_head: int) -> Any:
    """llama.cpp's convert script: reorders q/k rows for its RoPE layout."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def encode_q4_1(w: Any) -> tuple[Any, Any]:
    """Q4_1 blocks of a float matrix: (raw uint8 (rows, cols//32*20), dequantised weights).

    Per 32 weights: fp16 d, fp16 m, then 16 bytes whose low nibbles are weights 0..15 and
    high nibbles weights 16..31; w ~= d*q + m with q in 0..15.
    """
    import numpy as np

    rows, cols = w.shape
    blocks = w.reshape(rows, cols // 32, 32).astype(np.float32)
    lo, hi = blocks.min(-1), blocks.max(-1)
    d16, m16 = ((hi - lo) / 15).astype(np.float16), lo.astype(np.float16)
    d, m = d16.astype(np.float32), m16.astype(np.float32)
    step = np.where(d == 0, 1, d)[..., None]
    q = np.clip(np.rint((blocks - m[..., None]) / step), 0, 15).astype(np.uint8)
    nibbles = q[..., :16] | (q[..., 16:] << 4)
    raw = np.concatenate(
        [d16[..., None].view(np.uint8), m16[..., None].view(np.uint8), nibbles], -1
    )
    dequant = (d[..., None] * q + m[..., None]).reshape(rows, cols)
    return raw.reshape(rows, -1), dequant


def encode_q8_0(w: Any) -> tuple[Any, Any]:
    """Q8_0 blocks: fp16 d then 32 int8 per 32 weights; (raw, dequantised weights)."""
    import numpy as np

    rows, cols = w.shape
    blocks = w.reshape(rows, cols // 32, 32).astype(np.float32)
    d16 = (np.abs(blocks).max(-1) / 127).astype(np.float16)
    d = d16.astype(np.float32)
    q = np.clip(np.rint(blocks / np.where(d == 0, 1, d)[..., None]), -127, 127).astype(np.int8)
    raw = np.concatenate([d16[..., None].view(np.uint8), q.view(np.uint8)], -1)
    return raw.reshape(rows, -1), (d[..., None] * q).reshape(rows, cols)


def tiny_llama(vocab: int = 256, seed: int = 0, heads: int = 4, kv_heads: int = 2) -> Any:
    """A randomly initialised 2-layer Llama, built in-process (no download).

    The init is 10x transformers' default: with near-zero weights attention is almost uniform
    and a broken RoPE would change nothing measurable, so the load-time check could not fail.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        vocab_size=vocab,
        max_position_embeddings=128,
        initializer_range=0.2,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM(config).eval()


def gguf_blocks_of(model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The blocks file ``extract_gguf_blocks`` would write for ``model`` (q/k rows permuted as
    in a GGUF), and the dequantised weight each module should end up computing with.

    Quantisation is row-wise, so the rows of the raw blocks can be permuted after encoding:
    the expected weights need no un-permutation (nothing of the code under test is used).
    """
    config = model.config
    heads = {"q_proj": config.num_attention_heads, "k_proj": config.num_key_value_heads}
    raw: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    for i in range(config.num_hidden_layers):
        for module in generate._GGUF_LINEARS.values():
            name = f"model.layers.{i}.{module}"
            weight = model.get_submodule(name).weight.detach().numpy()
            blocks, expected[name] = encode_q4_1(weight)
            attr = module.rpartition(".")[2]
            raw[name] = gguf_permute(blocks, heads[attr]) if attr in heads else blocks
    raw["lm_head"], expected["lm_head"] = encode_q8_0(model.lm_head.weight.detach().numpy())
    return raw, expected


def write_blocks(path: Path, tensors: dict[str, Any]) -> Path:
    from safetensors.numpy import save_file

    save_file(tensors, str(path), metadata={"format": generate.BLOCKS_FORMAT, "source": "test"})
    return path


def effective_weight(module: Any) -> Any:
    """The (out x in) matrix a linear-like module applies: its output for the identity."""
    import torch

    with torch.inference_mode():
        return module(torch.eye(module.in_features)).T.float().numpy()


def cache_arg(model: Any) -> str:
    """The KV-cache keyword of this transformers release (as TransformersGenerator finds it)."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def int4_ops_exist() -> bool:
    """Whether this torch build has the weight-only kernels at all. Deliberately not
    ``int4_kernel_works()``: that also checks the results, and a module that computes wrong
    must fail these tests, not skip them."""
    import torch

    ops = ("_convert_weight_to_int4pack_for_cpu", "_weight_int4pack_mm_for_cpu")
    return all(hasattr(torch.ops.aten, op) for op in (*ops, "_weight_int8pack_mm"))


needs_int4 = pytest.mark.skipif(
    not int4_ops_exist(), reason="this torch build lacks the int4/int8 CPU kernels"
)


def test_q4_1_parts_decodes_hand_built_blocks() -> None:
    """Two rows x two blocks with known scale, min and codes: low nibbles are weights 0..15,
    high nibbles 16..31, and w = d*q + m."""
    import numpy as np

    codes = np.array(
        [
            [np.arange(32) % 16, (np.arange(32) * 7) % 16],
            [15 - np.arange(32) % 16, np.full(32, 9)],
        ],
        dtype=np.uint8,
    )  # (rows, blocks, 32)
    d = np.array([[0.5, 0.25], [2.0, -1.5]], dtype=np.float16)
    m = np.array([[-1.0, 3.0], [0.125, -8.0]], dtype=np.float16)
    raw = np.zeros((2, 2, 20), dtype=np.uint8)
    raw[..., 0:2] = d[..., None].view(np.uint8)
    raw[..., 2:4] = m[..., None].view(np.uint8)
    for r in range(2):
        for b in range(2):
            for j in range(16):
                raw[r, b, 4 + j] = codes[r, b, j] | (codes[r, b, 16 + j] << 4)
    raw[0, 0, 4] = 0x3C  # weight 0 = 12 (low nibble), weight 16 = 3 (high nibble)
    codes[0, 0, 0], codes[0, 0, 16] = 0xC, 0x3

    q, dd, mm = generate._q4_1_parts(raw.reshape(2, 40), 2, 64)
    assert q.shape == (2, 64)
    np.testing.assert_array_equal(q, codes.reshape(2, 64))
    np.testing.assert_array_equal(dd, d.astype(np.float32))
    np.testing.assert_array_equal(mm, m.astype(np.float32))
    w = (dd[..., None] * q.reshape(2, 2, 32) + mm[..., None]).reshape(2, 64)
    assert w[0, 0] == 0.5 * 12 - 1.0 and w[0, 16] == 0.5 * 3 - 1.0
    assert w[1, 63] == -1.5 * 9 - 8.0
    assert w[1, 1] == 2.0 * 14 + 0.125


def test_q4_1_parts_round_trips_the_encoder() -> None:
    """On random weights the decoded parts rebuild exactly what the encoder quantised to."""
    import numpy as np

    w = np.random.default_rng(1).standard_normal((16, 96)).astype(np.float32)
    raw, dequant = encode_q4_1(w)
    q, d, m = generate._q4_1_parts(raw, 16, 96)
    assert q.min() >= 0 and q.max() <= 15
    rebuilt = (d[..., None] * q.reshape(16, 3, 32) + m[..., None]).reshape(16, 96)
    np.testing.assert_allclose(rebuilt, dequant, rtol=0, atol=1e-6)
    assert np.abs(rebuilt - w).max() <= (d.max() / 2) * 1.01 + 1e-3  # within half a step


def test_q8_0_parts_decodes_hand_built_blocks() -> None:
    import numpy as np

    codes = np.array([[np.arange(-16, 16), -np.arange(-16, 16) * 4]], dtype=np.int8)
    codes[0, 0, 0], codes[0, 1, 31] = -127, 127
    d = np.array([[0.5, 0.001]], dtype=np.float16)
    raw = np.concatenate([d[..., None].view(np.uint8), codes.view(np.uint8)], -1)
    assert raw.shape == (1, 2, 34)

    q, dd = generate._q8_0_parts(raw.reshape(1, 68), 1, 64)
    assert q.dtype == np.int8
    np.testing.assert_array_equal(q, codes.reshape(1, 64))
    np.testing.assert_array_equal(dd, d.astype(np.float32))
    w = (dd[..., None] * q.reshape(1, 2, 32)).reshape(1, 64)
    assert w[0, 0] == -127 * 0.5 and w[0, 1] == -15 * 0.5
    assert w[0, 63] == pytest.approx(127 * float(np.float16(0.001)))


@pytest.mark.parametrize(("n_head", "shape"), [(4, (64, 64)), (2, (32, 64)), (3, (48, 5, 2))])
def test_unpermute_rows_inverts_the_gguf_permutation(n_head: int, shape: tuple[int, ...]) -> None:
    import numpy as np

    w = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    permuted = gguf_permute(w, n_head)
    assert not np.array_equal(permuted, w)  # the permutation really moves rows
    np.testing.assert_array_equal(generate._unpermute_rows(permuted, n_head), w)
    # also undoes it for the per-block scales, which have fewer columns
    scales = w.reshape(shape[0], -1)[:, :2]
    np.testing.assert_array_equal(
        generate._unpermute_rows(gguf_permute(scales, n_head), n_head), scales
    )


@needs_int4
@pytest.mark.parametrize(("rows", "cols"), [(32, 64), (48, 96), (128, 64)])
def test_int4_linear_matches_the_dequantised_matmul(rows: int, cols: int) -> None:
    """Int4Linear computes x @ (d*q + m).T, batch dims kept, up to bf16 rounding."""
    import numpy as np
    import torch

    int4, _ = generate._quant_modules()
    rng = np.random.default_rng(rows + cols)
    q = rng.integers(0, 16, (rows, cols)).astype(np.uint8)
    d = rng.uniform(0.005, 0.05, (rows, cols // 32)).astype(np.float32)
    m = rng.uniform(-0.4, 0.1, (rows, cols // 32)).astype(np.float32)
    w = (q.reshape(rows, -1, 32) * d[..., None] + m[..., None]).reshape(rows, cols)
    x = rng.standard_normal((2, 3, cols)).astype(np.float32)
    module = int4(q, d, m)
    y = module(torch.from_numpy(x))
    assert y.shape == (2, 3, rows) and y.dtype == torch.float32
    ref = x @ w.T
    np.testing.assert_allclose(y.numpy(), ref, rtol=0, atol=0.02 * np.abs(ref).max())
    np.testing.assert_allclose(effective_weight(module), w, rtol=0, atol=0.01 * np.abs(w).max())


@needs_int4
def test_q8_head_matches_the_dequantised_matmul() -> None:
    import numpy as np
    import torch

    _, head = generate._quant_modules()
    rng = np.random.default_rng(3)
    q = rng.integers(-127, 128, (256, 64)).astype(np.int8)
    d = rng.uniform(0.001, 0.01, (256, 2)).astype(np.float32)
    w = (q.reshape(256, 2, 32) * d[..., None]).reshape(256, 64)
    x = rng.standard_normal((5, 64)).astype(np.float32)
    y = head(q, d)(torch.from_numpy(x))
    assert y.shape == (5, 256) and y.dtype == torch.float32
    ref = x @ w.T
    np.testing.assert_allclose(y.numpy(), ref, rtol=0, atol=0.02 * np.abs(ref).max())


@needs_int4
def test_int4_kernel_self_check_passes_and_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """The start-up self-check accepts the real modules and rejects ones that compute wrong
    (a missed +8 offset in the zero point, a wrong head scale) or cannot run at all."""
    assert generate.int4_kernel_works()
    int4, head = generate._quant_modules()

    def no_offset(q: Any, d: Any, m: Any) -> Any:
        return int4(q, d, m - 8 * d)  # computes (q - 8)*d + m

    def negated_head(q: Any, d: Any) -> Any:
        return head(q, -d)

    def missing_op() -> Any:
        raise RuntimeError("no such op on this CPU")

    monkeypatch.setattr(generate, "_quant_modules", lambda: (no_offset, head))
    assert not generate.int4_kernel_works()
    monkeypatch.setattr(generate, "_quant_modules", lambda: (int4, negated_head))
    assert not generate.int4_kernel_works()
    monkeypatch.setattr(generate, "_quant_modules", missing_op)
    assert not generate.int4_kernel_works()


@needs_int4
def test_quantize_from_blocks_swaps_every_linear_and_fuses(tmp_path: Path) -> None:
    """Every module ends up computing with its own GGUF blocks (q/k rows back in transformers'
    order), fused q|k|v and gate|up equal their parts, and the model as a whole computes what
    a float model with the dequantised weights computes."""
    import numpy as np
    import torch

    int4, head = generate._quant_modules()
    model = tiny_llama()
    raw, expected = gguf_blocks_of(model)
    reference = tiny_llama()  # same seed: same weights, then set to the dequantised ones
    with torch.no_grad():
        for name, w in expected.items():
            reference.get_submodule(name).weight.copy_(torch.from_numpy(w))

    swapped = generate.quantize_from_blocks(model, write_blocks(tmp_path / "b.safetensors", raw))

    assert swapped == 2 * 7 + 1 + 2 * 2  # 7 linears per layer, lm_head, 2 fused per layer
    assert isinstance(model.lm_head, head)
    np.testing.assert_allclose(
        effective_weight(model.lm_head), expected["lm_head"], rtol=0, atol=0.01
    )
    for i, layer in enumerate(model.model.layers):
        for module in generate._GGUF_LINEARS.values():
            name = f"model.layers.{i}.{module}"
            got = model.get_submodule(name)
            assert isinstance(got, int4), name
            w = expected[name]
            np.testing.assert_allclose(
                effective_weight(got), w, rtol=0, atol=0.01 * np.abs(w).max(), err_msg=name
            )
        attn, mlp = layer.self_attn, layer.mlp
        qkv = np.concatenate(
            [effective_weight(getattr(attn, p)) for p in ("q_proj", "k_proj", "v_proj")]
        )
        np.testing.assert_array_equal(effective_weight(attn.fused_qkv), qkv)
        gate_up = np.concatenate([effective_weight(mlp.gate_proj), effective_weight(mlp.up_proj)])
        np.testing.assert_array_equal(effective_weight(mlp.fused_gate_up), gate_up)

    ids = torch.tensor([[1, 17, 200, 42, 42, 3, 99]])
    with torch.inference_mode():
        got_logits, ref_logits = model(ids).logits, reference(ids).logits
    scale = float(ref_logits.abs().max())
    assert float((got_logits - ref_logits).abs().max()) < 0.05 * scale


@needs_int4
def test_quantize_from_blocks_leaves_missing_layers_float(tmp_path: Path) -> None:
    """Only the tensors in the file are swapped (a layer of another block type stays float32);
    no fused module is built from an incomplete q|k|v or gate|up set."""
    from torch import nn

    int4, _ = generate._quant_modules()
    model = tiny_llama()
    raw, _ = gguf_blocks_of(model)
    keep = ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj"]
    keep += [f"model.layers.1.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj")]
    path = write_blocks(tmp_path / "b.safetensors", {k: raw[k] for k in keep})

    assert generate.quantize_from_blocks(model, path) == len(keep) + 1  # + layer 1's fused_qkv
    layer0, layer1 = model.model.layers
    assert isinstance(layer0.self_attn.q_proj, int4)
    assert type(layer0.self_attn.v_proj) is nn.Linear
    assert not hasattr(layer0.self_attn, "fused_qkv")
    assert isinstance(layer1.self_attn.fused_qkv, int4)
    assert type(layer1.mlp.up_proj) is nn.Linear and not hasattr(layer1.mlp, "fused_gate_up")
    assert type(model.lm_head) is nn.Linear


@needs_int4
@pytest.mark.parametrize(
    "damage",
    ["lm_head", "model.layers.0.mlp.down_proj", "model.layers.1.self_attn.v_proj", "empty"],
)
def test_quantize_from_blocks_is_all_or_nothing(tmp_path: Path, damage: str) -> None:
    """One tensor of the wrong shape (first, middle or last in file order) or no tensors at
    all: ValueError, and the model is untouched -- no half-quantized model."""
    import torch

    model = tiny_llama()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modules_before = {name: type(mod) for name, mod in model.named_modules()}
    raw, _ = gguf_blocks_of(model)
    if damage == "empty":
        raw = {}
    else:
        raw[damage] = raw[damage][:, :-1]  # one byte short per row
    path = write_blocks(tmp_path / "b.safetensors", raw)
    with pytest.raises(ValueError):
        generate.quantize_from_blocks(model, path)
    assert {name: type(mod) for name, mod in model.named_modules()} == modules_before
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    for layer in model.model.layers:
        assert not hasattr(layer.self_attn, "fused_qkv")
        assert not hasattr(layer.mlp, "fused_gate_up")


@needs_int4
def test_quantize_from_blocks_rejects_blocks_the_model_lacks(tmp_path: Path) -> None:
    """Blocks for a layer the model does not have (another model's file): ValueError, the
    error the loader expects, not an AttributeError from deep inside torch."""
    model = tiny_llama()
    raw, _ = gguf_blocks_of(model)
    raw["model.layers.7.mlp.up_proj"] = raw["model.layers.0.mlp.up_proj"]
    with pytest.raises(ValueError, match=r"layers\.7"):
        generate.quantize_from_blocks(model, write_blocks(tmp_path / "b.safetensors", raw))
    assert type(model.model.layers[0].mlp.up_proj).__name__ == "Linear"


@needs_int4
def test_quantize_from_blocks_rejects_rows_the_kernel_cannot_pack(tmp_path: Path) -> None:
    """8 heads of 8 dims with one KV head: k_proj has 8 output rows, and the int4 kernel packs
    rows by 16. A clear ValueError before anything is built, so the model stays float32."""
    model = tiny_llama(heads=8, kv_heads=1)
    raw, _ = gguf_blocks_of(model)
    with pytest.raises(ValueError, match="multiple of 16"):
        generate.quantize_from_blocks(model, write_blocks(tmp_path / "b.safetensors", raw))
    assert type(model.model.layers[0].self_attn.q_proj).__name__ == "Linear"


@needs_int4
@pytest.mark.parametrize("quantized", [False, True], ids=["float32", "gguf-int4"])
def test_llama_runner_matches_transformers(tmp_path: Path, quantized: bool) -> None:
    model = tiny_llama()
    if quantized:
        raw, _ = gguf_blocks_of(model)
        generate.quantize_from_blocks(model, write_blocks(tmp_path / "b.safetensors", raw))
    assert generate.LlamaRunner(model).matches(cache_arg(model))


@needs_int4
@pytest.mark.parametrize("quantized", [False, True], ids=["float32", "gguf-int4"])
@pytest.mark.parametrize("breakage", ["no-rope-in-step", "layers-swapped", "step-off-by-one"])
def test_llama_runner_check_catches_a_wrong_forward(
    tmp_path: Path, quantized: bool, breakage: str
) -> None:
    """The load-time check can fail: a runner that gets RoPE, layer order or positions wrong
    is rejected (then TransformersGenerator keeps the transformers forward)."""
    import torch

    model = tiny_llama()
    if quantized:
        raw, _ = gguf_blocks_of(model)
        generate.quantize_from_blocks(model, write_blocks(tmp_path / "b.safetensors", raw))
    runner = generate.LlamaRunner(model)
    if breakage == "no-rope-in-step":
        runner._rotation = lambda pos: torch.eye(runner.head_dim)  # type: ignore[method-assign]
    elif breakage == "layers-swapped":
        runner.layers = runner.layers[::-1]
    else:
        real_step = runner.step
        # one position early: overwrites the prompt's last key and rotates by the wrong angle
        runner.step = lambda token, pos: real_step(token, pos - 1)  # type: ignore[method-assign]
    assert not runner.matches(cache_arg(model))


# ------------------------------------------------------------------------ generator on blocks
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


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


def tiny_generator(folder: Path, blocks: Path | None) -> generate.TransformersGenerator:
    return generate.TransformersGenerator(folder, name="tiny", blocks_file=blocks)


@needs_int4
def test_transformers_generator_runs_on_the_blocks(tiny_model_dir: Path) -> None:
    """A good blocks file: int4 weights, the lean runner accepted, the file kept, and the
    runner decodes exactly what the transformers forward decodes."""
    from transformers import AutoModelForCausalLM

    int4, _ = generate._quant_modules()
    raw, _ = gguf_blocks_of(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)))
    blocks = write_blocks(tiny_model_dir / generate.BLOCKS_FILE, raw)

    gen = tiny_generator(tiny_model_dir, blocks)
    assert gen.weights == "gguf-int4"
    assert isinstance(gen.model.model.layers[0].self_attn.q_proj, int4)
    assert gen.runner is not None
    assert blocks.exists()
    lean = "".join(gen.stream(MESSAGES, 10))
    gen.runner = None
    assert "".join(gen.stream(MESSAGES, 10)) == lean


@needs_int4
@pytest.mark.parametrize("damage", ["random-bytes", "wrong-shape", "foreign-names"])
def test_transformers_generator_falls_back_to_float32(
    tiny_model_dir: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged or foreign blocks file never stops the model from loading: float32 weights,
    nothing half-swapped, and the file is deleted so the next start extracts it again."""
    import numpy as np
    from torch import nn
    from transformers import AutoModelForCausalLM

    blocks = tiny_model_dir / generate.BLOCKS_FILE
    if damage == "random-bytes":
        blocks.write_bytes(np.random.default_rng(4).bytes(5000))
    else:
        raw, _ = gguf_blocks_of(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)))
        if damage == "wrong-shape":
            raw["model.layers.1.mlp.up_proj"] = raw["model.layers.1.mlp.up_proj"][:-16]
        else:
            raw["model.layers.7.mlp.up_proj"] = raw.pop("model.layers.1.mlp.up_proj")
        write_blocks(blocks, raw)

    gen = tiny_generator(tiny_model_dir, blocks)
    assert gen.weights == "float32"
    assert not blocks.exists()
    assert "using float32 weights" in caplog.text
    assert all(
        type(m) is nn.Linear
        for name, m in gen.model.named_modules()
        if name.endswith(("_proj", "lm_head"))
    )
    assert gen.runner is not None  # the float model still gets the lean forward
    assert isinstance("".join(gen.stream(MESSAGES, 4)), str)  # and still answers


# ------------------------------------------------------------------------ real SmolLM2 on blocks
@pytest.fixture(scope="module")
def smol_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache dir whose ``models`` folder is the session-wide one the live-server tests use,
    so the ~30 s conversion happens at most once per session (and never in the checkout)."""
    shared = tmp_path_factory.getbasetemp() / "shared-model-cache"
    shared.mkdir(parents=True, exist_ok=True)
    cache = tmp_path_factory.mktemp("smol-cache")
    (cache / "models").symlink_to(shared, target_is_directory=True)
    return cache


@pytest.mark.slow
@needs_int4
def test_real_smollm2_runs_on_its_gguf_blocks(smol_cache: Path) -> None:
    """The bundled model with quantized weights (the default): the blocks are extracted next to
    the converted weights, every linear runs on int4, the lean runner passes its check
    against transformers, and greedy decoding answers."""
    int4, head = generate._quant_modules()
    s = Settings(cache_dir=smol_cache, threads=2, _env_file=None)  # type: ignore[call-arg]
    assert s.quantized_weights is True  # the default

    gen = generate.TransformersGenerator.from_settings(s)
    assert gen.weights == "gguf-int4"
    assert gen.runner is not None
    blocks = Path(generate.resolve_model_dir(s)) / generate.BLOCKS_FILE
    assert blocks.is_file()
    layers = gen.model.model.layers
    assert all(isinstance(layer.mlp.down_proj, int4) for layer in layers)
    assert all(hasattr(layer.self_attn, "fused_qkv") for layer in layers)
    assert isinstance(gen.model.lm_head, head)
    text = "".join(gen.stream(MESSAGES, 12))
    assert text.strip()


@pytest.mark.slow
def test_real_smollm2_quantized_weights_can_be_switched_off(
    smol_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CHATBOT_QUANTIZED_WEIGHTS=0 keeps the float32 weights (no blocks file is needed)."""
    from torch import nn

    monkeypatch.setenv("CHATBOT_QUANTIZED_WEIGHTS", "0")
    s = Settings(cache_dir=smol_cache, threads=2, _env_file=None)  # type: ignore[call-arg]
    assert s.quantized_weights is False
    gen = generate.TransformersGenerator.from_settings(s)
    assert gen.weights == "float32"
    assert type(gen.model.model.layers[0].self_attn.q_proj) is nn.Linear
    assert type(gen.model.lm_head) is nn.Linear
    assert gen.runner is not None
    assert "".join(gen.stream(MESSAGES, 6)).strip()


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
    gen = object.__new__(generate.LlamaCppGenerator)
    gen.llm = FailingLlama(pieces)
    gen.temperature, gen.repetition_penalty = 0.0, 1.15
    gen._lock = threading.Lock()
    got: list[str] = []
    with pytest.raises(GenerationError, match="context window"):
        for piece in gen.stream(MESSAGES, 32):
            got.append(piece)
    assert got == pieces
    assert not gen._lock.locked()
