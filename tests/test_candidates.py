"""Candidate sentences: what reads as an export's field, and which entry a question names."""

from __future__ import annotations

import pytest

from chatbot.candidates import candidates, field_sentence, named_in
from chatbot.chunking import Chunk
from chatbot.kinds import asked_types

pytestmark = pytest.mark.unit


def test_an_entry_is_named_only_by_its_whole_title() -> None:
    assert named_in("Who wrote Bison, the parser generator?", "Bison")
    assert not named_in("Who wrote Bison, the parser generator?", "Bison++")
    assert named_in("Who invented Petri nets?", "Petri net")
    assert not named_in("Is C-Prolog free?", "C")


@pytest.mark.parametrize(
    ("line", "sentence"),
    [
        ("Year: 2018", "The year of Base Model is 2018."),
        ("Authors: Ada Lovelace", "The authors of Base Model are Ada Lovelace."),
        ("CPU count: 8", "The CPU count of Base Model is 8."),
        ("Used in: chat assistants", "Base Model: used in chat assistants."),
        ("Note: this line is a whole sentence with far too many words for a field.", ""),
        ("A sentence with no field in it.", ""),
    ],
)
def test_what_reads_as_a_field(line: str, sentence: str) -> None:
    assert field_sentence("Base Model", line) == sentence


def test_a_work_cited_answers_only_who_or_when() -> None:
    """A bracketed citation names authors and a year; it says nothing of what a thing is."""
    asf = Chunk(
        "asf#0", "asf", "ASF", "ASF",
        'A language for equational specification of abstract data types. '
        '["Algebraic Specification", J.A. Bergstra et al, A-W 1989].',
        0, 0, "text",
    )  # fmt: skip
    what = "What kind of specification is ASF meant for?"
    who = "Who wrote the book on ASF?"
    texts = {q: [c.text for c in candidates(q, asked_types(q), [asf], 3)] for q in (what, who)}
    assert texts[what] == ["A language for equational specification of abstract data types."]
    assert any(t.startswith('["Algebraic Specification"') for t in texts[who])
