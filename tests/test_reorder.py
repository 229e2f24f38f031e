"""Reordering a ranking by what the question names: the reader reads the top three."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pytest

from chatbot.chunking import Chunk
from chatbot.reorder import Reorder, put_first

pytestmark = pytest.mark.unit


def chunk(doc: str, n: int, text: str) -> Chunk:
    return Chunk(f"{doc}#{n}", doc, doc, doc, text, 0, len(text), "text", file=f"{doc}.md")


@dataclass
class TinyIndex:
    chunks: list[Chunk]
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.float32))


CHUNKS = [
    chunk("hacker", 0, "# hacker\n\nn.\n\n[originally, one who makes furniture with an axe]"),
    chunk("hacker", 1, "1. A person who enjoys exploring the details of programmable systems."),
    chunk("come-from", 0, "# COME FROM\n\nA construct dual to go to; control comes from it."),
    chunk("kluge", 0, "# kluge\n\nA Rube Goldberg device, whether in hardware or software."),
]


def reorder() -> Reorder:
    return Reorder(cast(Any, TinyIndex(CHUNKS)))


def test_put_first_keeps_the_rest_in_order() -> None:
    ranked = [(2, 0.9), (1, 0.8), (3, 0.7), (0, 0.6)]
    assert [i for i, _ in put_first([0], ranked)] == [0, 2, 1, 3]
    assert put_first([0], ranked)[0][1] > 0.9


def test_a_named_entry_read_already_is_not_moved_unless_its_opening_is_asked() -> None:
    """ "Where does the word hacker come from?": the entry's later chunk is read, but the
    origin is in its leading note, in the first chunk."""
    ranked = [(2, 0.9), (1, 0.8), (3, 0.7), (0, 0.6)]
    assert reorder().include(["hacker"], ranked) == ranked
    assert [i for i, _ in reorder().include(["hacker"], ranked, opening=True)][:2] == [0, 2]
    # its first chunk read already: nothing moves
    read = [(0, 0.9), (2, 0.8), (1, 0.7)]
    assert reorder().include(["hacker"], read, opening=True) == read


def test_a_quoted_phrase_brings_the_passage_saying_it() -> None:
    ranked = [(2, 0.9), (0, 0.8), (1, 0.7), (3, 0.6)]
    moved = reorder().holding_quote("I heard 'Rube Goldberg device'. What is that?", ranked)
    assert moved[0][0] == 3
    assert reorder().holding_quote("What is a Rube Goldberg device?", ranked) == ranked


def test_an_opening_read_already_is_not_pushed_out_by_the_missing_ones() -> None:
    """Three entries named "base model": two openings brought first had pushed the third,
    read already, out of the three passages read."""
    ranked = [(2, 0.9), (3, 0.8), (1, 0.7), (0, 0.6)]
    moved = [i for i, _ in reorder().include(["hacker", "kluge"], ranked, read=2, opening=True)]
    assert moved[:2] == [0, 3]


def test_a_named_page_brings_its_best_ranked_passage_unless_one_is_read() -> None:
    """ "kluge.md" stands for a page the question names ("What does Kluge say ...?")."""
    ranked = [(2, 0.9), (0, 0.8), (1, 0.7), (3, 0.6)]
    assert reorder().named_page(frozenset({"kluge.md"}), ranked)[0][0] == 3
    assert reorder().named_page(frozenset({"hacker.md"}), ranked) == ranked  # read already
    assert reorder().named_page(frozenset(), ranked) == ranked
