"""Conversation export: every answer with its numbered sources, in Markdown and JSON."""

from __future__ import annotations

import json
from pathlib import Path

from chatbot.answer import Answer, Citation
from chatbot.export import message_record, to_json, to_markdown, turn_record, write_exports


def _answer(q: str, text: str, n: int = 1) -> Answer:
    cite = Citation(
        n, "base.md", "Base model", "Training", f"Passage for {q}\nsecond line", 0.1, "c"
    )
    return Answer(q, text, False, [cite], [], {}, "extractive")


def _turns() -> list[dict]:
    return [
        turn_record(_answer("What is a base model?", "A base model is pre-trained [1].")),
        turn_record(
            Answer("Weather?", "The glossary does not cover that.", True, [], [], {}, "refusal")
        ),
        turn_record(_answer("And fine-tuning?", "It adapts a model [1].")),
    ]


def test_markdown_holds_every_answer_and_its_sources() -> None:
    md = to_markdown(_turns(), "Glossary chat")
    assert md.startswith("# Glossary chat\n")
    for q, a in [
        ("What is a base model?", "A base model is pre-trained [1]."),
        ("Weather?", "The glossary does not cover that."),
        ("And fine-tuning?", "It adapts a model [1]."),
    ]:
        assert q in md and a in md
    assert md.count("**Sources**") == 2  # the refusal cites nothing
    assert "[1] **Base model › Training** (base.md)" in md
    assert "> Passage for And fine-tuning?\n> second line" in md
    assert md.index("What is a base model?") < md.index("Weather?") < md.index("fine-tuning")


def test_json_round_trips_the_turns() -> None:
    data = json.loads(to_json(_turns(), "T"))
    assert data["title"] == "T" and len(data["turns"]) == 3
    assert data["turns"][0]["sources"][0] == {
        "n": 1,
        "title": "Base model",
        "heading": "Training",
        "doc": "base.md",
        "text": "Passage for What is a base model?\nsecond line",
    }
    assert data["turns"][1]["refused"] is True


def test_files_are_written_once_per_content(tmp_path: Path) -> None:
    turns = _turns()
    md, js = write_exports(turns, "T", tmp_path)
    assert md.read_text().startswith("# T") and json.loads(js.read_text())["turns"]
    again = write_exports(turns, "T", tmp_path)
    assert again == [md, js]
    other = write_exports(
        [*turns, message_record("hi", "⚠️ Please type a question.")], "T", tmp_path
    )
    assert other[0] != md and "Please type a question" in other[0].read_text()
