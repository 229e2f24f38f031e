"""What an answer is: the result types every face of the app shares, and question cleaning.

An ``Answer`` is what the CLI prints as JSON, the UI renders and the preset cache stores; a
``Partial`` is a verified prefix of it while it streams.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from chatbot.errors import InvalidQuestion

REFUSAL = "The glossary does not cover that."
OPINION_NOTE = "The glossary states facts, not opinions: ask what it says about the subject."
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
AnswerMode = Literal["refusal", "lookup", "faq", "generated", "extractive"]


@dataclass(frozen=True)
class Citation:
    n: int
    doc: str
    title: str
    heading: str
    text: str
    score: float
    chunk_id: str


@dataclass
class Answer:
    question: str
    answer: str
    refused: bool
    citations: list[Citation]
    sources: list[dict[str, Any]]
    timings: dict[str, float]
    mode: AnswerMode
    standalone_question: str = ""
    suggestions: list[str] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Answer:
        data = dict(data)
        data["citations"] = [Citation(**c) for c in data.get("citations", [])]
        return cls(**data)


@dataclass(frozen=True)
class Partial:
    """Streaming update: the answer text so far."""

    text: str


def clean_question(text: str, max_chars: int) -> str:
    """Normalise a user question or raise InvalidQuestion with a message fit for the user."""
    if not isinstance(text, str):
        raise InvalidQuestion("The question must be text.")
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub(" ", text)
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise InvalidQuestion("Please type a question.")
    if len(text) > max_chars:
        raise InvalidQuestion(
            f"The question is too long ({len(text):,} characters; the limit is {max_chars:,})."
        )
    if not any(ch.isalnum() for ch in text):
        raise InvalidQuestion("Please type a question with words in it.")
    return text


def unknown_names_note(names: Sequence[str]) -> str:
    """Why a question naming what the glossary never mentions is refused, so a typo shows."""
    if not names:
        return ""
    listed = ", ".join(f'"{n}"' for n in names[:3])
    return f"No entry of the glossary mentions {listed}."
