"""Candidate sentences: what reads as an export's field, and which entry a question names."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chatbot.candidates import (
    candidates,
    field_sentence,
    named_in,
    names_entry,
    settling_words,
    words,
)
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


def test_a_templated_entrys_padding_is_marked_filler() -> None:
    """From a sentence writing the name in title case to the end of its paragraph, or to prose
    writing it in lower case; a sentence naming other terms keeps its fact."""
    body = (
        "# Widget Cache\n\nWidget Cache matters in frontend work because it changes how teams "
        "evaluate quality. The useful question is which trade-off the concept changes. A widget "
        "cache is invalidated when its data changes.\n\nThat is why Widget Cache gets compared "
        "with Page Cache and Service Worker."
    )
    chunk = Chunk("w#1", "w", "Widget Cache", "Widget Cache", body, 0, len(body), "text")
    question = "What is a widget cache?"
    for marked in (True, False):
        entry = replace(chunk, templated=marked)
        filler = {
            c.text for c in candidates(question, asked_types(question), [entry], 3) if c.filler
        }
        expected = {
            "Widget Cache matters in frontend work because it changes how teams evaluate quality.",
            "The useful question is which trade-off the concept changes.",
        }
        assert filler == (expected if marked else set())


def test_a_question_naming_the_page_asks_about_its_padding() -> None:
    """ "According to AcmeWiki, ..." asks what that page says, padding included; "acme" in
    the question names no page whose file is widget-cache-acmewiki.md, nor does the title."""
    body = (
        "# Widget Cache\n\nWidget Cache matters in frontend work because it changes how teams "
        "evaluate quality. A widget cache is invalidated when its data changes."
    )
    chunk = Chunk(
        "w#1",
        "w",
        "Widget Cache",
        "Widget Cache",
        body,
        0,
        len(body),
        "text",
        file="widget-cache-acmewiki.md",
        templated=True,
    )

    def filler(question: str) -> bool:
        return any(c.filler for c in candidates(question, asked_types(question), [chunk], 3))

    assert not filler("According to AcmeWiki, what does widget cache change for teams?")
    assert not filler("acmewiki says widget cache changes what?")
    assert filler("What does a widget cache change for teams?")
    assert filler("What does Widget Cache change, says acme?")


def test_a_sentence_wholly_in_brackets_is_no_candidate() -> None:
    """ "(FMPL of Accardi)." notes where a name comes from and says nothing of the entry."""
    body = (
        "# FMPL\n\n(FMPL of Accardi). A prototype-based, interpreted language with functional "
        "features."
    )
    chunk = Chunk("f#0", "f", "FMPL", "FMPL", body, 0, len(body), "text")
    question = "Is FMPL compiled?"
    texts = [c.text for c in candidates(question, asked_types(question), [chunk], 3)]
    assert texts == ["A prototype-based, interpreted language with functional features."]


BYACC = (
    "# Berkeley Yacc\n\n<tool> (byacc, previously Zeus, then Zoo) Probably the best variant of "
    "the Yacc parser generator. Written by Robert Corbett.\n\n(2000-07-16)"
)


def test_an_entry_is_named_by_the_names_in_its_leading_note() -> None:
    """FOLDOC titles an entry by its long name and gives its acronym or former names in a
    leading note: a question naming one of them names the entry."""
    opening = Chunk("b#0", "b", "Berkeley Yacc", "Berkeley Yacc", BYACC, 0, len(BYACC), "text")
    later = replace(opening, chunk_id="b#1")
    assert names_entry("What was the parser generator Zeus?", opening)
    assert names_entry("who wrote byacc", opening)
    assert names_entry("Is Berkeley Yacc free?", later)  # the title, in any chunk
    assert not names_entry("What was the parser generator Zeus?", later)  # the note opens it
    assert not names_entry("Who wrote Yacc?", opening)


def test_a_leading_note_of_former_names_is_a_candidate_with_its_entry() -> None:
    chunk = Chunk("by#0", "byacc-entry", "Berkeley Yacc", "Berkeley Yacc", BYACC, 0, 0, "text")
    later = replace(chunk, chunk_id="by#1", text="# Berkeley Yacc\n\nIt is in the public domain.")
    question = "What is the parser generator Zeus called now?"
    cands = candidates(question, asked_types(question), [chunk, later], 3)
    assert "Berkeley Yacc: byacc, previously Zeus, then Zoo." in [c.text for c in cands]
    assert "It is in the public domain." in [c.text for c in cands]
    assert all(c.focus for c in cands)  # the whole entry is the one named


def test_an_entry_the_term_index_knows_the_question_names_is_its_focus() -> None:
    """A passage from the middle of "Erasable Programmable Read-Only Memory" never says the
    "EPROM" a question names; the term index does, and the pipeline hands its entries on."""
    body = "# Erasable Programmable Read-Only Memory\n\nIt is erased by ultraviolet light."
    later = Chunk("e#1", "eprom", "Erasable Programmable Read-Only Memory", "", body, 0, 0, "text")
    other = replace(later, chunk_id="f#0", doc_id="flash", title="Flash Memory")
    question = "how do you wipe an EPROM chip?"
    kinds = asked_types(question)
    assert not any(c.focus for c in candidates(question, kinds, [later, other], 3))
    named = candidates(question, kinds, [later, other], 3, named=frozenset({"eprom"}))
    assert [c.focus for c in named] == [True, False]


def test_a_sentence_settles_a_yes_no_question_by_any_opposite_of_its_words() -> None:
    free = settling_words("It is free software.")
    assert {"proprietari", "commerci"} <= free  # "Is it proprietary?", "Is it commercial?"
    assert "interpret" in settling_words("A compiled language.")
    assert settling_words("A language.") == words("A language.")


def test_a_page_the_question_names_is_the_only_one_read() -> None:
    """ "What does the Envisioning page say ...?": not the other page's sentences."""

    def page(file: str, text: str) -> Chunk:
        return Chunk(f"{file}#0", file, "Base Model", "Base Model", text, 0, len(text), "text",
                     file=file)  # fmt: skip

    glossary = page("base-model-glossary.md", "A base model is a pre-trained model.")
    envisioning = page("base-model-envisioning.md", "A base model is a reusable foundation.")
    question = "How does the Envisioning page define a base model?"
    kinds = asked_types(question)
    named = frozenset({"base-model-envisioning.md"})  # Retriever.named_pages(question)
    read = candidates(question, kinds, [glossary, envisioning], 3, pages=named)
    assert {c.text for c in read} == {"A base model is a reusable foundation."}
    both = candidates("How is a base model defined?", kinds, [glossary, envisioning], 3)
    assert len({c.n for c in both}) == 2
    # a named page none of whose passages is read leaves the read ones
    elsewhere = frozenset({"foundation-model-concept.md"})
    unread = candidates(question, kinds, [glossary, envisioning], 3, pages=elsewhere)
    assert len({c.n for c in unread}) == 2
