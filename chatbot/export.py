"""Conversation export: a chat as Markdown (to read or paste) or JSON (to process).

An answer without its sources cannot be checked, so each exported answer carries the passages
it cites, numbered as in the chat. The records are built from ``Answer`` objects as they are
shown (``turn_record``), so an export never re-runs a question and always matches the screen.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chatbot.answer import Answer
from chatbot.atomic import write_atomic

ExportTurn = dict[str, Any]
MAX_TURNS = 200  # a chat longer than this exports its latest turns


def turn_record(answer: Answer) -> ExportTurn:
    """What an export keeps of one answer: text, mode and the cited passages."""
    return {
        "question": answer.question,
        "answer": answer.answer,
        "mode": answer.mode,
        "refused": answer.refused,
        "note": answer.note,
        "sources": [
            {"n": c.n, "title": c.title, "heading": c.heading, "doc": c.doc, "text": c.text}
            for c in answer.citations
        ],
    }


def message_record(question: str, text: str) -> ExportTurn:
    """A turn that produced no Answer (a rejected question, a failure): text only."""
    return {"question": question, "answer": text, "mode": "message", "refused": False,
            "note": "", "sources": []}  # fmt: skip


def to_markdown(turns: list[ExportTurn], title: str) -> str:
    lines = [f"# {title}", "", f"_Exported {_now()}_", ""]
    for i, turn in enumerate(turns[-MAX_TURNS:], 1):
        lines += [f"## {i}. {turn.get('question', '')}", "", str(turn.get("answer", "")), ""]
        if turn.get("note"):
            lines += [f"_{turn['note']}_", ""]
        sources = turn.get("sources") or []
        if sources:
            lines += ["**Sources**", ""]
        for s in sources:
            where = " › ".join(x for x in (s.get("title"), s.get("heading")) if x)
            lines.append(f"[{s.get('n')}] **{where or s.get('doc', '')}** ({s.get('doc', '')})")
            lines += [f"> {line}" if line else ">" for line in str(s.get("text", "")).splitlines()]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def to_json(turns: list[ExportTurn], title: str) -> str:
    data = {"title": title, "exported": _now(), "turns": turns[-MAX_TURNS:]}
    return json.dumps(data, ensure_ascii=False, indent=1) + "\n"


def write_exports(turns: list[ExportTurn], title: str, root: Path | None = None) -> list[Path]:
    """Both files under a folder named by their content: the same chat is written once."""
    md, js = to_markdown(turns, title), to_json(turns, title)
    key = json.dumps([title, turns[-MAX_TURNS:]], ensure_ascii=False, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = (root or Path(tempfile.gettempdir()) / "glossary-chat-exports") / digest
    folder.mkdir(parents=True, exist_ok=True)
    out = [folder / "conversation.md", folder / "conversation.json"]
    for path, text in zip(out, (md, js), strict=True):
        if not path.exists():
            write_atomic(path, text.encode("utf-8"))
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
