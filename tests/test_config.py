"""Settings: CHATBOT_* environment overrides and validation.

Deployments configure the app only through the environment, so each override must really reach
the field (with type conversion), explicit CLI values must win over it, and inconsistent values
must fail at start-up rather than deep inside a request.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from chatbot.config import BUNDLED_MODEL, PROJECT_ROOT, Settings, get_settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CHATBOT_* from the caller's shell, and no .env file from the working directory."""
    for key in list(os.environ):
        if key.startswith("CHATBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def make(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg,arg-type]


def test_defaults_point_into_the_project() -> None:
    s = make()
    assert s.corpus_dir == PROJECT_ROOT / "corpus"
    assert s.index_dir == PROJECT_ROOT / "index"
    assert s.cache_dir == PROJECT_ROOT / ".cache"
    assert (s.host, s.port, s.top_k, s.model) == ("127.0.0.1", 7860, 4, BUNDLED_MODEL)
    assert s.auth_pair() is None
    assert s.feedback_file == s.cache_dir / "feedback.jsonl"


def test_env_overrides_every_deployment_knob(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = {
        "CHATBOT_CORPUS_DIR": str(tmp_path / "c"),
        "CHATBOT_INDEX_DIR": str(tmp_path / "i"),
        "CHATBOT_CACHE_DIR": str(tmp_path / "k"),
        "CHATBOT_HOST": "0.0.0.0",
        "CHATBOT_PORT": "8080",
        "CHATBOT_TOP_K": "7",
        "CHATBOT_MODEL": "/models/other-llm",
        "CHATBOT_RETRIEVAL_MODE": "bm25",
        "CHATBOT_PRELOAD": "false",
        "CHATBOT_AUTH": "ann:s3:cret",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = make()
    assert s.corpus_dir == tmp_path / "c"
    assert s.index_dir == tmp_path / "i"
    assert s.cache_dir == tmp_path / "k"
    assert s.model_cache_dir == tmp_path / "k" / "models"
    assert s.host == "0.0.0.0"
    assert s.port == 8080 and isinstance(s.port, int)
    assert s.top_k == 7
    assert s.model == "/models/other-llm"
    assert s.retrieval_mode == "bm25"
    assert s.preload is False
    assert s.auth_pair() == ("ann", "s3:cret")  # only the first colon separates


def test_env_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("chatbot_top_k", "9")
    assert make().top_k == 9


def test_home_is_expanded_in_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CHATBOT_INDEX_DIR", "~/idx")
    assert make().index_dir == tmp_path / "idx"


def test_explicit_overrides_beat_env_and_none_means_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATBOT_TOP_K", "7")
    monkeypatch.setenv("CHATBOT_PORT", "9000")
    s = get_settings(top_k=3, port=None)
    assert s.top_k == 3  # the CLI flag wins
    assert s.port == 9000  # an unset flag (None) does not clobber the environment


def test_dotenv_file_in_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CHATBOT_TOP_K=11\nCHATBOT_HOST=10.0.0.1\n")
    s = Settings()
    assert (s.top_k, s.host) == (11, "10.0.0.1")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHATBOT_CHUNK_SIZE": "300", "CHATBOT_CHUNK_OVERLAP": "300"}, "chunk_overlap"),
        ({"CHATBOT_CHUNK_SIZE": "300", "CHATBOT_CHUNK_OVERLAP": "400"}, "chunk_overlap"),
        ({"CHATBOT_AUTH": "no-colon"}, "user:password"),
        ({"CHATBOT_BACKEND": "openai"}, "OPENAI_BASE_URL"),
        ({"CHATBOT_BACKEND": "gpt-9000"}, "backend"),
        ({"CHATBOT_TOP_K": "0"}, "top_k"),
        ({"CHATBOT_TOP_K": "many"}, "top_k"),
        ({"CHATBOT_PORT": "70000"}, "port"),
        ({"CHATBOT_RETRIEVAL_MODE": "magic"}, "retrieval_mode"),
        ({"CHATBOT_CHUNK_SIZE": "10"}, "chunk_size"),
        ({"CHATBOT_INDEX_TYPE": "ivf"}, "index_type"),
    ],
)
def test_invalid_settings_fail_at_startup(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=message):
        make()


def test_valid_combinations_of_the_checked_fields() -> None:
    s = make(
        chunk_size=300,
        chunk_overlap=299,
        auth="u:p",
        backend="openai",
        openai_base_url="http://127.0.0.1:1/v1",
    )
    assert s.chunk_overlap == 299 and s.auth_pair() == ("u", "p")


def test_threads_default_to_all_cores() -> None:
    assert make(threads=3).effective_threads() == 3
    assert make(threads=0).effective_threads() >= 1


def test_start_up_forces_offline_hub(tmp_path: Path) -> None:
    """Nothing may try to reach a model hub at run time: the start-up hook (CLI, UI) sets it,
    while a user's explicit choice is kept."""
    env = {k: v for k, v in os.environ.items() if "OFFLINE" not in k}
    code = (
        "import os, chatbot.config; assert 'HF_HUB_OFFLINE' not in os.environ; "
        "chatbot.config.apply_runtime_env(); "
        "print(os.environ['HF_HUB_OFFLINE'], os.environ['TRANSFORMERS_OFFLINE'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["1", "1"]
