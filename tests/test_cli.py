"""The command line: stable JSON for scripts, one-line errors for users.

Fast tests run the real Typer app in-process with CliRunner; the only substitution is the
embedder (``cli._pipeline`` is the seam that builds the Pipeline) and the extractive backend
(through the ordinary CHATBOT_BACKEND setting), so no model is loaded. One slow test runs the
installed ``chatbot`` script end to end with the real models.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chatbot import cli
from chatbot.config import Settings
from chatbot.pipeline import Pipeline
from tests.conftest import CORPUS, REPO
from tests.fakes import FakeEmbedder

HIT_KEYS = {"doc", "title", "heading", "text", "score", "chunk_id"}
ANSWER_KEYS = {"question", "answer", "refused", "citations", "sources", "timings"}
FAQ_QUESTION = "Can you use a base model directly for a chatbot?"


@pytest.fixture
def env(tmp_path: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """CHATBOT_* settings pointing at temp copies, and a Pipeline with the fake embedder."""
    paths = {"corpus": corpus_dir, "index": tmp_path / "index", "cache": tmp_path / "cache"}
    monkeypatch.chdir(tmp_path)  # no stray .env from the working directory
    monkeypatch.setenv("CHATBOT_CORPUS_DIR", str(paths["corpus"]))
    monkeypatch.setenv("CHATBOT_INDEX_DIR", str(paths["index"]))
    monkeypatch.setenv("CHATBOT_CACHE_DIR", str(paths["cache"]))
    monkeypatch.setenv("CHATBOT_BACKEND", "extractive")
    monkeypatch.setenv("CHATBOT_RELEVANCE_THRESHOLD", "0.2")
    monkeypatch.setenv("CHATBOT_FAQ_MATCH_THRESHOLD", "0.95")
    built: list[Settings] = []

    def fake_pipeline(settings: Settings) -> Pipeline:
        built.append(settings)
        return Pipeline(settings, embedder=FakeEmbedder())

    monkeypatch.setattr(cli, "_pipeline", fake_pipeline)
    return paths


def run(*args: str) -> Any:
    result = CliRunner().invoke(cli.app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a bug: surface it as the test failure
    return result


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_one_line_error(result: Any, fragment: str) -> None:
    assert result.exit_code != 0
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: ")
    assert fragment in result.stderr
    assert "Traceback" not in result.output


# ------------------------------------------------------------------------------- index
def test_index_builds_then_reports_up_to_date(env: dict[str, Path]) -> None:
    first = run("index")
    assert first.exit_code == 0, first.output
    n_files = len(list(CORPUS.glob("*.md")))
    assert f"{n_files} added" in first.stdout and "chunks" in first.stdout
    assert (env["index"] / "CURRENT").exists()
    second = run("index", "--json")
    assert second.exit_code == 0
    summary = json.loads(second.stdout)
    assert summary["added"] == [] and summary["chunks"] > 0
    assert len(summary["unchanged"]) == n_files


def test_index_with_missing_corpus_fails_clearly(env: dict[str, Path], tmp_path: Path) -> None:
    result = run("index", "--corpus", str(tmp_path / "nowhere"))
    assert_one_line_error(result, "corpus directory not found")


# ------------------------------------------------------------------------------- search
def test_search_json_schema(env: dict[str, Path]) -> None:
    result = run("search", "--json", "What is a base model?")
    assert result.exit_code == 0, result.output
    (data,) = json_lines(result.stdout)
    assert {"question", "hits", "relevant", "timings"} <= set(data)
    assert data["question"] == "What is a base model?"
    assert isinstance(data["relevant"], bool) and data["relevant"]
    assert isinstance(data["timings"], dict)
    assert 1 <= len(data["hits"]) <= Settings(_env_file=None).top_k  # type: ignore[call-arg]
    for hit in data["hits"]:
        assert set(hit) >= HIT_KEYS
        assert isinstance(hit["score"], float)
        assert hit["chunk_id"].startswith(hit["doc"] + "#")
        assert (env["corpus"] / f"{hit['doc']}.md").exists()
    scores = [h["score"] for h in data["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_search_top_k_option(env: dict[str, Path]) -> None:
    (data,) = json_lines(run("search", "--json", "-k", "2", "foundation model").stdout)
    assert len(data["hits"]) == 2


def test_search_file_answers_each_line_in_order(env: dict[str, Path], tmp_path: Path) -> None:
    questions = [
        {"id": "a", "question": "What is a base model?", "extra": "ignored"},
        {"id": 7, "question": "Why do companies release base models?"},
        {"id": "c", "question": "What is the weather in Paris tomorrow?"},
    ]
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("\n".join(json.dumps(q) for q in questions) + "\n\n")
    result = run("search", "--json", "--file", str(qfile))
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    assert [line["id"] for line in lines] == ["a", 7, "c"]
    assert [line["question"] for line in lines] == [q["question"] for q in questions]
    assert all(set(h) >= HIT_KEYS for line in lines for h in line["hits"])


def test_search_file_with_a_bad_line_fails_clearly(env: dict[str, Path], tmp_path: Path) -> None:
    qfile = tmp_path / "q.jsonl"
    qfile.write_text('{"id": 1, "question": "What is a base model?"}\n{"id": 2}\n')
    result = run("search", "--json", "--file", str(qfile))
    assert_one_line_error(result, "q.jsonl:2")


def test_search_text_output(env: dict[str, Path]) -> None:
    result = run("search", "What is a base model?")
    assert result.exit_code == 0
    assert result.stdout.startswith("Q: What is a base model?")
    assert "  [1] " in result.stdout


def test_search_with_missing_corpus_fails_clearly(env: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    result = run("search", "--corpus", str(missing), "What is a base model?")
    assert_one_line_error(result, f"corpus directory not found: {missing}")


# ------------------------------------------------------------------------------- ask
def test_ask_json_schema(env: dict[str, Path]) -> None:
    result = run("ask", "--json", "How is a foundation model trained?")
    assert result.exit_code == 0, result.output
    (data,) = json_lines(result.stdout)
    assert set(data) >= ANSWER_KEYS
    assert data["question"] == "How is a foundation model trained?"
    assert data["refused"] is False and data["answer"]
    assert data["mode"] == "extractive"  # CHATBOT_BACKEND=extractive reached the pipeline
    assert data["citations"] and isinstance(data["timings"], dict)
    for c in data["citations"]:
        assert 1 <= c["n"] <= len(data["sources"])
        assert c["chunk_id"] == data["sources"][c["n"] - 1]["chunk_id"]
        assert f"[{c['n']}]" in data["answer"]
    assert all(set(s) >= HIT_KEYS for s in data["sources"])


def test_ask_json_faq_and_refusal(env: dict[str, Path], tmp_path: Path) -> None:
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(
        json.dumps({"id": "faq", "question": FAQ_QUESTION})
        + "\n"
        + json.dumps({"id": "off", "question": "What is the weather in Paris tomorrow?"})
        + "\n"
    )
    faq, off = json_lines(run("ask", "--json", "--file", str(qfile)).stdout)
    assert faq["id"] == "faq" and "not ideal" in faq["answer"]
    assert faq["citations"][0]["heading"].endswith(FAQ_QUESTION)
    assert off["id"] == "off" and off["refused"] and off["citations"] == []
    assert off["suggestions"]


def test_ask_text_output_streams_answer_and_citations(env: dict[str, Path]) -> None:
    result = run("ask", "What is a foundation model?")
    assert result.exit_code == 0, result.output
    (data,) = json_lines(run("ask", "--json", "What is a foundation model?").stdout)
    assert data["answer"] in result.stdout
    for c in data["citations"]:
        assert f"[{c['n']}] {c['title']} > " in result.stdout


@pytest.mark.parametrize("command", ["ask", "search"])
@pytest.mark.parametrize(
    ("question", "message"),
    [("", "Please type a question."), ("   ", "Please type a question."), ("?!", "with words")],
)
def test_blank_question_is_a_one_line_error(
    env: dict[str, Path], command: str, question: str, message: str
) -> None:
    result = run(command, question)
    assert_one_line_error(result, message)
    assert result.exit_code == 2
    assert not env["index"].exists(), "a rejected question must not build anything"


@pytest.mark.parametrize("command", ["ask", "search"])
def test_no_question_at_all(env: dict[str, Path], command: str) -> None:
    assert_one_line_error(run(command), "give a question or --file")


def test_ask_with_missing_corpus_fails_clearly(env: dict[str, Path], tmp_path: Path) -> None:
    result = run("ask", "--json", "--corpus", str(tmp_path / "nope"), "What is a base model?")
    assert_one_line_error(result, "corpus directory not found")


def test_invalid_setting_is_a_one_line_error(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATBOT_TOP_K", "0")
    assert_one_line_error(run("search", "What is a base model?"), "invalid setting top_k")


# ------------------------------------------------------------------------------- real run
@pytest.mark.slow
def test_real_ask_json_answers_the_faq(tmp_path: Path) -> None:
    """The installed script, real embedding model and index: the FAQ answer, cited."""
    exe = Path(sys.executable).parent / "chatbot"
    if not exe.exists():
        exe = REPO / ".venv" / "bin" / "chatbot"
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")}
    env.update(
        CHATBOT_CORPUS_DIR=str(corpus),
        CHATBOT_INDEX_DIR=str(tmp_path / "index"),
        CHATBOT_CACHE_DIR=str(tmp_path / "cache"),
        HF_HUB_OFFLINE="1",
    )
    proc = subprocess.run(
        [str(exe), "ask", "--json", FAQ_QUESTION],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (data,) = json_lines(proc.stdout)
    answer = data["answer"].lower()
    assert "not ideal" in answer
    assert "fine-tuning" in answer or "fine tuning" in answer
    assert not data["refused"]
    cited = [data["sources"][c["n"] - 1] for c in data["citations"]]
    assert any(s["heading"].endswith(FAQ_QUESTION) for s in cited)
    assert all(f"[{c['n']}]" in data["answer"] for c in data["citations"])
