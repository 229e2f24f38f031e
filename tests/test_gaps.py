"""The knowledge-gap log and its grouping, and the report the CLI and Insights tab share."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from chatbot.answer import Answer
from chatbot.gaps import GapLog, GapRecord, classify, group_gaps, mode_counts
from chatbot.insights import feedback_counts, gap_report
from tests.fakes import FakeEmbedder


def _answer(mode: str = "extractive", refused: bool = False, dense: float = 0.8) -> Answer:
    return Answer(
        question="what is a foo?",
        answer="A foo is a bar [1].",
        refused=refused,
        citations=[],
        sources=[{"doc": "d", "score": 0.03, "dense_score": dense}],
        timings={},
        mode=mode,  # type: ignore[arg-type]
    )


def test_classify_refusals_weak_answers_and_named_entries() -> None:
    assert classify(_answer("refusal", refused=True), 0.55) == "refusal"
    assert classify(_answer(dense=0.3), 0.55) == "low_confidence"
    assert classify(_answer(dense=0.9), 0.55) == "answer"
    assert classify(_answer("lookup", dense=0.1), 0.55) == "answer"  # its own entry answered


def test_observe_logs_gap_questions_but_not_ordinary_ones(tmp_path: Path) -> None:
    log = GapLog(tmp_path / "gaps.jsonl")
    log.observe(_answer("refusal", refused=True), low_confidence=0.55)
    log.observe(_answer(dense=0.9), low_confidence=0.55)
    lines = [json.loads(x) for x in (tmp_path / "gaps.jsonl").read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["refusal", "answer"]
    assert lines[0]["question"] == "what is a foo?" and lines[0]["scores"]["best_dense"] == 0.8
    assert "question" not in lines[1]  # an ordinary answer keeps only its mode and time
    assert set(lines[0]) <= {"time", "kind", "mode", "question", "scores", "answer"}


def test_disabled_log_writes_nothing(tmp_path: Path) -> None:
    log = GapLog(tmp_path / "gaps.jsonl", enabled=False)
    log.observe(_answer("refusal", refused=True), low_confidence=0.55)
    log.thumbs_down("q", "a")
    assert not (tmp_path / "gaps.jsonl").exists()


def test_log_rotates_at_its_cap_and_keeps_reading_both_files(tmp_path: Path) -> None:
    log = GapLog(tmp_path / "gaps.jsonl", max_bytes=1_000)
    for i in range(40):
        log.thumbs_down(f"question number {i}", "x" * 20)
    assert log.rotated.exists()
    assert log.path.stat().st_size < 1_000 + 200
    questions = [r.question for r in log.read()]
    assert questions[-1] == "question number 39"
    assert len(questions) < 40  # the oldest file was dropped: the disk use is bounded


def test_torn_and_foreign_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "gaps.jsonl"
    log = GapLog(path)
    log.thumbs_down("kept", "answer")
    with path.open("a") as fh:
        fh.write('{"kind": "refusal", "time": "not a time", "mode": "refusal"}\n')
        fh.write('{"kind": "unknown", "time": "2026-01-01T00:00:00+00:00", "mode": "x"}\n')
        fh.write('{"kind": "refusal", "time": "2026-01-01T')  # a crash mid-line
    assert [r.question for r in log.read()] == ["kept"]


def test_read_since_filters_by_time(tmp_path: Path) -> None:
    log = GapLog(tmp_path / "gaps.jsonl")
    old = (datetime.now(timezone.utc) - timedelta(days=10)).isoformat(timespec="seconds")
    log.record(GapRecord(time=old, kind="refusal", mode="refusal", question="old one"))
    log.thumbs_down("new one", "a")
    since = datetime.now(timezone.utc) - timedelta(days=1)
    assert [r.question for r in log.read(since)] == ["new one"]


def _rec(question: str, kind: str = "refusal", day: int = 1) -> GapRecord:
    return GapRecord(
        time=f"2026-11-{day:02d}T10:00:00+00:00", kind=kind, mode="refusal", question=question
    )  # type: ignore[arg-type]


def test_similar_questions_group_together_largest_first() -> None:
    records = [
        _rec("how do I reset my password"),
        _rec("how to reset a password", kind="thumbs_down"),
        _rec("password reset how"),
        _rec("what is the capital of France"),
        GapRecord(time="2026-11-01T10:00:00+00:00", kind="answer", mode="faq"),
    ]
    groups = group_gaps(records, FakeEmbedder().encode, threshold=0.3)
    assert [g.count for g in groups] == [3, 1]
    assert groups[0].kinds == {"refusal": 2, "thumbs_down": 1}
    assert "password" in groups[0].example
    assert groups[1].example == "what is the capital of France"


def test_grouping_is_deterministic_and_names_the_closest_entry() -> None:
    records = [_rec("alpha beta"), _rec("gamma delta"), _rec("alpha beta gamma")]

    def nearest(q: str) -> tuple[str, str, float]:
        return f"entry for {q}", "doc.md", 0.5

    a = group_gaps(records, FakeEmbedder().encode, nearest, threshold=0.5)
    b = group_gaps(records, FakeEmbedder().encode, nearest, threshold=0.5)
    assert [g.to_dict() for g in a] == [g.to_dict() for g in b]
    assert all(g.closest_title == f"entry for {g.example}" for g in a)


def test_grouping_with_no_gaps_calls_no_encoder() -> None:
    def boom(texts: list[str]) -> np.ndarray:
        raise AssertionError("encoder called")

    assert (
        group_gaps([GapRecord(time="2026-11-01T00:00:00", kind="answer", mode="faq")], boom) == []
    )


def test_mode_counts_per_day() -> None:
    records = [_rec("a", day=1), _rec("b", day=2), _rec("c", kind="thumbs_down", day=2)]
    records.append(GapRecord(time="2026-11-02T09:00:00+00:00", kind="answer", mode="lookup"))
    assert mode_counts(records) == {
        "2026-11-01": {"refusal": 1},
        "2026-11-02": {"refusal": 1, "lookup": 1},
    }


def test_feedback_counts(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    rows = [{"time": "2026-11-01T00:00:00+00:00", "liked": v} for v in (True, False, False)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    assert feedback_counts(path) == {"up": 1, "down": 2}
    assert feedback_counts(tmp_path / "missing.jsonl") == {"up": 0, "down": 0}


def test_served_pipeline_logs_refusals_and_report_groups_them(make_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipe = make_pipeline(None)
    pipe.gap_log = GapLog.from_settings(pipe.settings)
    for q in ("What is the weather in Paris tomorrow?", "Weather in Paris tomorrow?"):
        assert pipe.ask(q).refused
    pipe.ask("What is the weather in Paris?", record=False)  # an evaluation run is not logged
    report = gap_report(pipe)
    assert report.records == 2
    assert [g.count for g in report.groups] == [2]
    assert report.groups[0].closest_title  # the corpus's nearest entry, as a starting point
    assert sum(report.modes[next(iter(report.modes))].values()) == 2


def test_cli_pipeline_logs_nothing(make_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipe = make_pipeline(None)
    pipe.ask("What is the weather in Paris tomorrow?")
    assert not pipe.settings.gap_log_file.exists()


@pytest.mark.parametrize("since", ["2026-11-01", None])
def test_gaps_command_json(make_pipeline, monkeypatch, since) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from chatbot import cli

    pipe = make_pipeline(None)
    pipe.gap_log = GapLog.from_settings(pipe.settings)
    pipe.ask("What is the weather in Paris tomorrow?")
    pipe.gap_log.thumbs_down("What colour is the sky?", "A base model is ... [1]")
    monkeypatch.setattr(cli, "_pipeline", lambda settings: pipe)
    args = ["gaps", "--json"] + (["--since", since] if since else [])
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert sorted(g["example"] for g in data["groups"]) == [
        "What colour is the sky?",
        "What is the weather in Paris tomorrow?",
    ]
    bad = CliRunner().invoke(cli.app, ["gaps", "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since" in bad.output
