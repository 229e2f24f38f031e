"""A message asking two things gets a sentence for each (chatbot/parts.py)."""

from __future__ import annotations

import pytest

from chatbot.candidates import Candidate
from chatbot.kinds import asked_types
from chatbot.parts import answer_parts, stating_first
from tests.fakes import FakeEmbedder

pytestmark = pytest.mark.unit

QUESTION = "What happens in a priority inversion, and was there a famous case of it?"


def sentence(n: int, pos: int, text: str, title: str = "priority inversion") -> Candidate:
    return Candidate(n, pos, text, title, True, context=title)


DEFINITION = sentence(1, 0, "A high priority task waits for a low priority task.")
CASE = sentence(2, 0, "The most famous case was the Mars Pathfinder rebooting.")
ELSEWHERE = sentence(3, 0, "A task waits for a lock.", title="deadlock")


def test_the_later_part_is_answered_from_the_first_sentences_entry() -> None:
    cands = [DEFINITION, ELSEWHERE, CASE]
    assert answer_parts(QUESTION, cands, [0], FakeEmbedder(), 2) == [0, 2]
    # no room: a second sentence from another entry may be from the right one ("IBM PC AT")
    assert answer_parts(QUESTION, cands, [0, 1], FakeEmbedder(), 2) == [0, 1]
    assert answer_parts(QUESTION, cands, [0, 1], FakeEmbedder(), 3) == [0, 1, 2]


def test_a_question_of_one_part_or_no_embedder_changes_nothing() -> None:
    cands = [DEFINITION, ELSEWHERE, CASE]
    assert answer_parts("What happens in a priority inversion?", cands, [0], FakeEmbedder(), 2) == [
        0
    ]
    assert answer_parts(QUESTION, cands, [0], None, 2) == [0]
    assert answer_parts(QUESTION, cands, [0], FakeEmbedder(), 1) == [0]


def test_a_second_kind_of_fact_asked_for_is_tried_first_from_the_sentence_stating_it() -> None:
    """ "..., where was he born and in what year?": after the entry's opening, its sentence
    stating both is tried before a better scoring one only holding a place ("at Microsoft in
    Redmond"), and before another entry's."""
    first = Candidate(1, 0, "Microsoft programmer, known for Hungarian Notation.", "Simonyi", True)
    holding = Candidate(2, 0, "Devised by Simonyi, working at Microsoft in Redmond.", "HN", False)
    elsewhere = Candidate(2, 1, "Kemeny was born in Budapest in 1926.", "HN", False)
    stating = Candidate(1, 1, "Simonyi was born in Budapest in 1948.", "Simonyi", True)
    cands = [first, holding, elsewhere, stating]
    kinds = asked_types("Simonyi - where was he born and in what year?")
    assert stating_first([1, 2, 3], cands, kinds, first) == [3, 1, 2]
