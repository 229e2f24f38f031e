"""`chatbot doctor`: every problem a user can run into gives a FAIL/warn line with the fix.

All tests use temp folders and the FakeEmbedder; the real models are only looked at (their files
hashed), never loaded.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chatbot import doctor
from chatbot.cli import app
from chatbot.config import Settings
from chatbot.doctor import FAIL, OK, WARN, Check, collect_checks, run_checks
from chatbot.embedding import SentenceTransformerEmbedder
from chatbot.generate import bundled_gguf_path, choose, converted_cache_dir, onnx_cache_dir
from chatbot.pipeline import Pipeline
from tests.fakes import FakeEmbedder

MakePipeline = Callable[..., Pipeline]


def run(settings: Settings, embedder: object | None = None) -> tuple[bool, list[str]]:
    lines: list[str] = []
    ok = run_checks(settings, lines.append, embedder=embedder)
    return ok, lines


def lines_with(lines: list[str], status: str, *words: str) -> list[str]:
    return [
        line for line in lines if line.split(" ", 1)[0] == status and all(w in line for w in words)
    ]


def build_index(make_pipeline: MakePipeline) -> None:
    make_pipeline().ensure_index()


def test_check_line_format() -> None:
    assert Check(FAIL, "no index", "run `chatbot index`").line() == (
        "FAIL  no index  — run `chatbot index`"
    )
    assert Check(OK, "corpus fine").line() == "ok    corpus fine"


def test_missing_index_fails_with_the_command_to_run(
    settings: Settings, fake_embedder: FakeEmbedder
) -> None:
    ok, lines = run(settings, fake_embedder)
    assert ok is False
    hit = lines_with(lines, FAIL, "no index", "`chatbot index`")
    assert hit, lines
    assert lines[-1].startswith("1 failed")


def test_fresh_index_is_ok(
    settings: Settings, fake_embedder: FakeEmbedder, make_pipeline: MakePipeline
) -> None:
    build_index(make_pipeline)
    ok, lines = run(settings, fake_embedder)
    assert not lines_with(lines, FAIL), lines
    assert ok is True
    assert lines_with(lines, OK, "index", "loads", "checksums match")
    assert lines_with(lines, OK, "index is fresh")
    assert lines_with(lines, OK, "corpus", "5 of 5 files usable")


def test_edited_corpus_makes_the_index_stale(
    settings: Settings, corpus_dir: Path, fake_embedder: FakeEmbedder, make_pipeline: MakePipeline
) -> None:
    build_index(make_pipeline)
    edited = corpus_dir / "base-model-envisioning.md"
    edited.write_text(edited.read_text() + "\nOne more sentence about base models.\n")
    (corpus_dir / "brand-new.md").write_text("# Brand new\n\nA page added after the build.\n")
    (corpus_dir / "foundation-model-wikiwalls.md").unlink()
    ok, lines = run(settings, fake_embedder)
    stale = lines_with(lines, WARN, "index is stale", "`chatbot index`")
    assert stale, lines
    assert "base-model-envisioning.md is changed" in stale[0]
    assert "brand-new.md is new" in stale[0]
    assert "foundation-model-wikiwalls.md is removed" in stale[0]
    assert not lines_with(lines, OK, "index is fresh")
    assert ok is True  # stale is a warning: the app refreshes the index when it starts


def test_corrupted_manifest_fails(
    settings: Settings, fake_embedder: FakeEmbedder, make_pipeline: MakePipeline
) -> None:
    build_index(make_pipeline)
    build = settings.index_dir / "builds" / (settings.index_dir / "CURRENT").read_text().strip()
    (build / "manifest.json").write_text("{not json")
    ok, lines = run(settings, fake_embedder)
    assert ok is False
    assert lines_with(lines, FAIL, "index", "corrupted", "`chatbot index --full`"), lines


def test_corrupted_vectors_fail_on_checksum(
    settings: Settings, fake_embedder: FakeEmbedder, make_pipeline: MakePipeline
) -> None:
    build_index(make_pipeline)
    build = settings.index_dir / "builds" / (settings.index_dir / "CURRENT").read_text().strip()
    vectors = build / "vectors.npy"
    data = bytearray(vectors.read_bytes())
    data[-1] ^= 0xFF
    vectors.write_bytes(bytes(data))
    ok, lines = run(settings, fake_embedder)
    assert ok is False
    assert lines_with(lines, FAIL, "vectors.npy", "checksum", "--full"), lines


def test_index_from_another_embedding_model_fails(
    settings: Settings, make_pipeline: MakePipeline
) -> None:
    build_index(make_pipeline)
    ok, lines = run(settings, FakeEmbedder(tag="v2"))
    assert ok is False
    assert lines_with(lines, FAIL, "different embedding model", "`chatbot index --full`"), lines


def test_missing_current_pointer_target_fails(
    settings: Settings, fake_embedder: FakeEmbedder, make_pipeline: MakePipeline
) -> None:
    build_index(make_pipeline)
    (settings.index_dir / "CURRENT").write_text("../../etc")
    ok, lines = run(settings, fake_embedder)
    assert ok is False
    assert lines_with(lines, FAIL, "index", "--full"), lines


def test_missing_corpus_directory_fails(settings: Settings, fake_embedder: FakeEmbedder) -> None:
    s = settings.model_copy(update={"corpus_dir": settings.corpus_dir.parent / "nope"})
    ok, lines = run(s, fake_embedder)
    assert ok is False
    assert lines_with(lines, FAIL, "corpus directory not found", "CHATBOT_CORPUS_DIR"), lines


def test_corpus_without_usable_files_fails(
    tmp_path: Path, settings: Settings, fake_embedder: FakeEmbedder
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "diagram.xyz").write_text("not a glossary format")
    ok, lines = run(settings.model_copy(update={"corpus_dir": empty}), fake_embedder)
    assert ok is False
    assert lines_with(lines, FAIL, "none of 1 files is usable"), lines
    assert any("unsupported format" in line for line in lines), lines


def test_broken_corpus_files_are_listed_with_reasons(
    settings: Settings, corpus_dir: Path, fake_embedder: FakeEmbedder
) -> None:
    (corpus_dir / "broken-yaml.md").write_text("---\ntitle: [unclosed\n---\n# X\n\nBody.\n")
    (corpus_dir / "empty.md").write_text("   \n")
    (corpus_dir / "binary.md").write_bytes(b"# B\x00\x01")
    _, lines = run(settings, fake_embedder)
    assert lines_with(lines, WARN, "broken-yaml.md", "broken YAML front matter")
    assert lines_with(lines, WARN, "empty.md", "empty file")
    assert lines_with(lines, WARN, "binary.md", "binary file")
    assert lines_with(lines, OK, "corpus", "5 of 8 files usable"), lines


def test_missing_embedding_model_fails(settings: Settings, fake_embedder: FakeEmbedder) -> None:
    s = settings.model_copy(update={"embedding_model": str(settings.cache_dir / "no-model")})
    ok, lines = run(s, fake_embedder)
    assert ok is False
    assert lines_with(lines, FAIL, "embedding model folder not found", "CHATBOT_EMBEDDING_MODEL")


def test_embedding_folder_without_weights_fails(
    tmp_path: Path, settings: Settings, fake_embedder: FakeEmbedder
) -> None:
    folder = tmp_path / "emb"
    folder.mkdir()
    (folder / "modules.json").write_text("[]")
    ok, lines = run(settings.model_copy(update={"embedding_model": str(folder)}), fake_embedder)
    assert ok is False
    assert lines_with(lines, FAIL, "no weight files"), lines


def test_bundled_embedding_model_is_found(settings: Settings) -> None:
    checks = doctor.check_embedding(settings)
    assert [c.status for c in checks] == [OK], checks


@pytest.fixture
def gguf() -> Path:
    try:
        return bundled_gguf_path()
    except Exception as exc:  # pragma: no cover - only without `make setup`
        pytest.skip(f"bundled GGUF not installed: {exc}")


@pytest.fixture
def transformers_settings(settings: Settings) -> Settings:
    """The transformers backend: the one that needs the converted cache."""
    return settings.model_copy(update={"backend": "transformers"})


def test_missing_converted_cache_is_a_warning(transformers_settings: Settings, gguf: Path) -> None:
    checks = doctor.check_instruct_model(transformers_settings)
    assert checks[0].status == OK and gguf.name in checks[0].what
    warn = [c for c in checks if c.status == WARN]
    assert warn and "converted model cache missing" in warn[0].what
    assert "~30 s" in warn[0].fix


def test_doctor_computes_the_same_cache_folder_as_the_generator(
    settings: Settings, gguf: Path
) -> None:
    expected = doctor.expected_cache_dir(gguf, settings.model_cache_dir)
    assert not settings.model_cache_dir.exists()  # computing it wrote nothing
    assert converted_cache_dir(gguf, settings.model_cache_dir) == expected


def _fake_conversion(folder: Path, sizes: dict[str, int], actual: dict[str, bytes]) -> None:
    folder.mkdir(parents=True)
    for name, data in actual.items():
        (folder / name).write_bytes(data)
    (folder / "converted.json").write_text(
        json.dumps({"format": 1, "source": "x.gguf", "files": sizes})
    )


def test_corrupted_converted_cache_fails_with_fix(
    transformers_settings: Settings, gguf: Path
) -> None:
    folder = converted_cache_dir(gguf, transformers_settings.model_cache_dir)
    _fake_conversion(folder, {"model.safetensors": 1000}, {"model.safetensors": b"trunc"})
    checks = doctor.check_instruct_model(transformers_settings)
    bad = [c for c in checks if c.status == FAIL]
    assert bad and "corrupted" in bad[0].what
    assert f"rm -rf {folder}" in bad[0].fix


def test_complete_converted_cache_is_ok(transformers_settings: Settings, gguf: Path) -> None:
    folder = converted_cache_dir(gguf, transformers_settings.model_cache_dir)
    _fake_conversion(folder, {"model.safetensors": 5}, {"model.safetensors": b"12345"})
    checks = doctor.check_instruct_model(transformers_settings)
    assert [c.status for c in checks] == [OK, OK], checks
    assert "complete" in checks[1].what


@pytest.fixture
def available(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """Which optional backends import, for the backend choice and the doctor's own checks."""
    found = {"onnx-genai": False, "llama-cpp": False}
    for module in (choose, doctor):
        monkeypatch.setattr(module, "onnx_genai_available", lambda: found["onnx-genai"])
        monkeypatch.setattr(module, "llama_cpp_available", lambda: found["llama-cpp"])
    return found


def test_auto_backend_with_llama_cpp_needs_no_converted_cache(
    settings: Settings, gguf: Path, available: dict[str, bool]
) -> None:
    available["llama-cpp"] = True
    checks = doctor.check_instruct_model(settings)  # backend=auto, cache folder missing
    assert [c.status for c in checks] == [OK, OK], checks
    assert "llama-cpp-python installed" in checks[1].what


def test_llama_cpp_backend_without_the_package_fails(
    settings: Settings, gguf: Path, available: dict[str, bool]
) -> None:
    checks = doctor.check_instruct_model(settings.model_copy(update={"backend": "llama-cpp"}))
    assert [c.status for c in checks] == [OK, FAIL], checks
    assert "llama-cpp" in checks[1].fix


def test_auto_backend_without_onnx_or_llama_cpp_checks_the_converted_cache(
    settings: Settings, gguf: Path, available: dict[str, bool]
) -> None:
    checks = doctor.check_instruct_model(settings)
    assert [c.status for c in checks] == [OK, WARN], checks
    assert "backend transformers" in checks[0].what


def test_auto_backend_checks_the_onnx_build_it_will_use(
    settings: Settings, gguf: Path, available: dict[str, bool]
) -> None:
    """auto picks onnxruntime-genai when it imports: both caches missing are warnings (the
    first answer builds them); a complete ONNX build is all a start needs."""
    available["onnx-genai"] = True
    checks = doctor.check_instruct_model(settings)
    assert [c.status for c in checks] == [OK, WARN, WARN], checks
    assert "backend onnx-genai" in checks[0].what
    assert "converted model cache missing" in checks[1].what
    assert "ONNX model cache missing" in checks[2].what and "~15 s" in checks[2].fix

    converted = converted_cache_dir(gguf, settings.model_cache_dir)
    onnx = onnx_cache_dir(converted)
    _fake_conversion(onnx, {"model.onnx": 4}, {"model.onnx": b"full"})
    checks = doctor.check_instruct_model(settings)
    assert [c.status for c in checks] == [OK, OK], checks
    assert "ONNX model cache complete" in checks[1].what


def test_corrupted_onnx_build_fails_with_fix(
    settings: Settings, gguf: Path, available: dict[str, bool]
) -> None:
    available["onnx-genai"] = True
    converted = converted_cache_dir(gguf, settings.model_cache_dir)
    _fake_conversion(converted, {"model.safetensors": 5}, {"model.safetensors": b"12345"})
    onnx = onnx_cache_dir(converted)
    _fake_conversion(onnx, {"model.onnx.data": 1000}, {"model.onnx.data": b"trunc"})
    checks = doctor.check_instruct_model(settings)
    assert [c.status for c in checks] == [OK, OK, FAIL], checks
    assert "ONNX model cache is incomplete or corrupted" in checks[2].what
    assert f"rm -rf {onnx}" in checks[2].fix


def test_onnx_backend_without_the_package_fails(
    settings: Settings, gguf: Path, available: dict[str, bool]
) -> None:
    checks = doctor.check_instruct_model(settings.model_copy(update={"backend": "onnx-genai"}))
    assert [c.status for c in checks] == [OK, FAIL], checks
    assert "onnxruntime-genai" in checks[1].what and "CHATBOT_BACKEND=auto" in checks[1].fix


def test_extractive_backend_needs_no_model(settings: Settings) -> None:
    checks = doctor.check_instruct_model(settings.model_copy(update={"backend": "extractive"}))
    assert [c.status for c in checks] == [OK]
    assert "extractive" in checks[0].what


def test_missing_local_model_path_fails(settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(update={"model": str(tmp_path / "nowhere")})
    checks = doctor.check_instruct_model(s)
    assert [c.status for c in checks] == [FAIL]
    assert "CHATBOT_MODEL" in checks[0].fix


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    seen: list[str] = []  # noqa: RUF012 - shared by the test server's handler instances

    def do_GET(self) -> None:
        self.seen.append(f"{self.path} {self.headers.get('Authorization', '')}")
        body = json.dumps({"data": [{"id": "m"}]}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def model_server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"status": 200, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_configured_openai_endpoint_reachable(
    settings: Settings, model_server: tuple[str, type[_Handler]]
) -> None:
    url, handler = model_server
    s = settings.model_copy(
        update={"backend": "openai", "openai_base_url": url, "openai_api_key": "k"}
    )
    checks = doctor.check_openai(s)
    assert [c.status for c in checks] == [OK], checks
    assert handler.seen == ["/v1/models Bearer k"]
    assert doctor.check_instruct_model(s) == []  # no local model needed for this backend


def test_openai_endpoint_refusing_the_key_fails(
    settings: Settings, model_server: tuple[str, type[_Handler]]
) -> None:
    url, handler = model_server
    handler.status = 401
    s = settings.model_copy(update={"backend": "openai", "openai_base_url": url + "/v1"})
    checks = doctor.check_openai(s)
    assert [c.status for c in checks] == [FAIL]
    assert "CHATBOT_OPENAI_API_KEY" in checks[0].fix


def test_unreachable_openai_endpoint_fails(settings: Settings) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = settings.model_copy(
        update={"backend": "openai", "openai_base_url": f"http://127.0.0.1:{port}"}
    )
    checks = doctor.check_openai(s, timeout_s=2)
    assert [c.status for c in checks] == [FAIL]
    assert "unreachable" in checks[0].what


def test_openai_not_configured_is_not_checked(settings: Settings) -> None:
    assert doctor.check_openai(settings) == []


def test_a_crashing_check_is_reported_not_raised(
    settings: Settings, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(_: Settings) -> list[Check]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(doctor, "check_corpus", boom)
    checks = collect_checks(settings, fake_embedder)
    assert any(c.status == FAIL and "disk on fire" in c.what for c in checks)


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    }


def test_doctor_writes_nothing(
    tmp_path: Path, settings: Settings, fake_embedder: FakeEmbedder, make_pipeline: MakePipeline
) -> None:
    build_index(make_pipeline)
    before = _tree(tmp_path)
    run(settings, fake_embedder)
    assert _tree(tmp_path) == before


def test_real_embedder_fingerprint_without_loading_the_model(
    settings: Settings, make_pipeline: MakePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an injected embedder the doctor hashes the weights; loading them is an error."""

    def no_loading(self: SentenceTransformerEmbedder) -> None:
        raise AssertionError("doctor must not load the embedding model")

    monkeypatch.setattr(SentenceTransformerEmbedder, "model", property(no_loading))
    # built with the FakeEmbedder: the real model's weights hash differs
    build_index(make_pipeline)
    checks = doctor.check_index(settings)
    assert [c.status for c in checks] == [FAIL], checks
    assert "different embedding model" in checks[0].what
    assert "all-MiniLM-L6-v2:" in checks[0].what


def test_cli_doctor_exit_code(
    tmp_path: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATBOT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # no stray .env
    result = CliRunner().invoke(
        app, ["doctor", "--corpus", str(corpus_dir), "--index", str(tmp_path / "idx")]
    )
    assert result.exit_code == 1, result.output
    assert "FAIL  no index" in result.output
    assert "run `chatbot index`" in result.output
    assert not (tmp_path / "idx").exists()
