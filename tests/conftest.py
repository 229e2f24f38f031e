"""Shared fixtures. Every test writes only under pytest's tmp_path."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import configuration as hypothesis_configuration
from hypothesis import settings as hypothesis_settings

from chatbot import readers as readers_mod
from chatbot.config import Settings, apply_runtime_env
from chatbot.pipeline import Pipeline
from chatbot.readers import Document
from tests.fakes import FakeEmbedder, FakeGenerator

apply_runtime_env()  # as the CLI and the UI do at start-up: offline, no telemetry

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
EVAL_FILE = REPO / "eval" / "questions.jsonl"

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Files that Gradio caches and the exports a test downloads go to a folder removed at exit,
# not to the shared /tmp.
_TEMP = tempfile.mkdtemp(prefix="glossary-tests-")
atexit.register(shutil.rmtree, _TEMP, ignore_errors=True)
os.environ.setdefault("GRADIO_TEMP_DIR", os.path.join(_TEMP, "gradio"))
tempfile.tempdir = _TEMP

# Hypothesis would write .hypothesis/ into the checkout: keep its files in a temp dir, and keep
# no example database, so a run never depends on what an earlier run found.
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="hypothesis-")
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)
hypothesis_configuration.set_hypothesis_home_dir(_HYPOTHESIS_HOME)
hypothesis_settings.register_profile("glossary", database=None, deadline=None)
hypothesis_settings.load_profile("glossary")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "slow" not in item.keywords:
            item.add_marker(pytest.mark.unit)


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A private copy of the real corpus that a test may edit."""
    dst = tmp_path / "corpus"
    shutil.copytree(CORPUS, dst)
    return dst


@pytest.fixture
def settings(tmp_path: Path, corpus_dir: Path) -> Settings:
    return Settings(
        corpus_dir=corpus_dir,
        index_dir=tmp_path / "index",
        cache_dir=tmp_path / "cache",
        relevance_threshold=0.2,
        faq_match_threshold=0.95,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def make_pipeline(settings: Settings, fake_embedder: FakeEmbedder):  # type: ignore[no-untyped-def]
    def make(reply: object = "", **overrides: object) -> Pipeline:
        s = settings.model_copy(update=overrides) if overrides else settings
        gen = FakeGenerator(reply) if reply is not None else None  # type: ignore[arg-type]
        return Pipeline(s, embedder=fake_embedder, generator_factory=lambda: gen)

    return make


@pytest.fixture
def record_parsing(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[str]]:
    """Call it to start recording the names of the corpus files parsed, in order (the real
    reader still runs); it returns the list that fills."""

    def start() -> list[str]:
        parsed: list[str] = []
        real = readers_mod.read_corpus_file

        def recording(path: Path) -> list[Document]:
            parsed.append(path.name)
            return real(path)

        monkeypatch.setattr(readers_mod, "read_corpus_file", recording)
        return parsed

    return start
