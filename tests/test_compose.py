"""The compose stage: the model's composition is kept only when it keeps what was asked."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chatbot.chunking import Chunk
from chatbot.compose import (
    Composer,
    compose_messages,
    entry_labels,
    evidence_sentences,
    labelled,
)
from chatbot.prompt import Templates
from chatbot.terms import Lookup
from tests.fakes import FakeGroundedGenerator

pytestmark = pytest.mark.unit

EXTRACT = (
    "Bison: Bison is the GNU parser generator, which replaced yacc on most systems. [1] "
    "It was written by Robert Corbett in 1985, but Richard Stallman made it yacc-compatible. [2]"
)


def writes(answer: str) -> FakeGroundedGenerator:
    return FakeGroundedGenerator(lambda messages, clauses: answer)


def test_evidence_loses_citations_and_title_labels() -> None:
    assert evidence_sentences(EXTRACT) == [
        "Bison is the GNU parser generator, which replaced yacc on most systems.",
        "It was written by Robert Corbett in 1985, but Richard Stallman made it yacc-compatible.",
    ]


def test_the_prompt_holds_the_packaged_examples_then_the_question() -> None:
    messages = compose_messages(Templates.load(), "Who wrote Bison?", ["Bison is a parser."])
    roles = [m["role"] for m in messages]
    assert roles[0] == "system" and roles[-1] == "user"
    assert roles[1:-1] == ["user", "assistant"] * ((len(roles) - 2) // 2) and len(roles) > 3
    assert messages[-1]["content"] == "Evidence: Bison is a parser.\nQuestion: Who wrote Bison?"


def test_a_composition_that_keeps_the_facts_is_kept() -> None:
    answer = (
        "Bison is the GNU parser generator, which replaced yacc on most systems. It was written "
        "by Robert Corbett in 1985, but Richard Stallman made it yacc-compatible."
    )
    result = Composer().run("Who wrote Bison?", EXTRACT, writes(answer))
    assert (result.text, result.problem) == (answer, "")


@pytest.mark.parametrize(
    ("question", "answer", "problem"),
    [
        # who: the clause naming the person must stay
        (
            "Who made Bison yacc-compatible, and when was it written?",
            "Bison is the GNU parser generator. It was written by Robert Corbett in 1985.",
            "asked fact",
        ),
    ],
)
def test_a_composition_that_loses_what_was_asked_is_not(
    question: str, answer: str, problem: str
) -> None:
    result = Composer().run(question, EXTRACT, writes(answer))
    assert problem in result.problem


def test_an_answer_from_a_side_remark_is_not_kept() -> None:
    problem = Composer().check(
        "What is Bison?", evidence_sentences(EXTRACT), "It was written by Robert Corbett in 1985."
    )
    assert problem == "left out the evidence's opening statement"


def test_an_asked_fact_in_a_dropped_sentence_is_caught() -> None:
    problem = Composer().check(
        "When was Bison written?",
        evidence_sentences(EXTRACT),
        "Bison is the GNU parser generator, which replaced yacc on most systems.",
    )
    assert problem == "left out the asked fact"


def test_an_answer_without_the_reader_second_sentence_is_not_kept() -> None:
    problem = Composer().check(
        "What is Bison?",
        evidence_sentences(EXTRACT),
        "Bison is the GNU parser generator, which replaced yacc on most systems.",
    )
    assert problem == "left out an evidence sentence"


def test_an_empty_composition_is_not_kept() -> None:
    assert Composer().check("What is Bison?", evidence_sentences(EXTRACT), "") == (
        "the model wrote nothing"
    )


def test_a_dropped_reason_is_caught() -> None:
    extract = "Base models are not ideal for customer chatbots because they complete text."
    result = Composer().run(
        "Is a base model good for a chatbot?",
        extract,
        writes("Base models are not ideal for customer chatbots."),
    )
    assert result.problem == "left out the reason"


def test_a_yes_no_answer_that_drops_the_denial_is_not_kept() -> None:
    extract = "Assignment is not allowed in functional languages, where a name has one value."
    problem = Composer(min_sentence_share=0.3).check(
        "Do functional languages allow assignment?",
        evidence_sentences(extract),
        "Where a name has one value.",
    )
    assert problem == "left out the asked fact"


def test_too_little_of_the_question_is_caught() -> None:
    composer = Composer(min_question_coverage=1.0, min_sentence_share=0.4)
    problem = composer.check(
        "Which parser generator replaced yacc?",
        evidence_sentences(EXTRACT)[:1],
        "Bison, the GNU parser generator, replaced it on most systems.",
    )
    assert problem.startswith("says too little")


def test_a_definition_keeps_every_clause_of_its_opening_sentence() -> None:
    """ "In plain terms, what is a base model?" was answered without ", trained only on
    next-token prediction": most of the sentence's words were kept, and none was asked."""
    evidence = [
        "A base model is the raw pre-trained version of a language model before any "
        "fine-tuning or alignment, trained only on next-token prediction."
    ]
    cut = (
        "A base model is the raw pre-trained version of a language model before any "
        "fine-tuning or alignment."
    )
    composer = Composer()
    for asked in ("In plain terms, what is a base model?", "whats a base model, in LLMs?"):
        assert composer.check(asked, evidence, cut) == "left out part of the definition"
        assert composer.check(asked, evidence, evidence[0]) == ""
    # a question of another kind may be answered by the clause that answers it
    assert composer.check("Is a base model pre-trained?", evidence, cut) == ""


def test_a_dropped_clause_holding_the_question_words_is_caught() -> None:
    # "The netmask has ones ... for the network and subnet parts [, and zeros for the host part]"
    evidence = [
        "The netmask has ones in the bit positions which are used for the network and subnet "
        "parts, and zeros for the host part."
    ]
    asked = "In a netmask, are the bits for the host part set to 1?"
    composer = Composer(min_question_coverage=0.5, min_sentence_share=0.5)
    cut = (
        "The netmask has ones in the bit positions which are used for the network and subnet parts."
    )
    assert composer.check(asked, evidence, cut) == "left out the asked fact"
    assert composer.check(asked, evidence, evidence[0]) == ""


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        Composer(max_new_tokens=2)
    with pytest.raises(ValueError):
        Composer(min_question_coverage=1.5)


def test_a_composition_cut_off_inside_a_clause_is_not_kept() -> None:
    class Stops(FakeGroundedGenerator):
        def grounded(self, messages, grammar, max_new_tokens):  # type: ignore[no-untyped-def]
            yield from list(super().grounded(messages, grammar, max_new_tokens))[:30]

    answer = (
        "Bison is the GNU parser generator, which replaced yacc on most systems. It was written "
        "by Robert Corbett in 1985, but Richard Stallman made it yacc-compatible."
    )
    result = Composer().run("Who wrote Bison?", EXTRACT, Stops(lambda m, c: answer))
    assert result.problem == "cut off inside a clause"
    assert Composer().run("Who wrote Bison?", EXTRACT, writes(answer)).problem == ""


def test_an_answer_that_drops_the_asked_expansion_is_not_kept() -> None:
    extract = "Integrated Services Digital Network: A set of standards carrying voice and data [1]."
    evidence = evidence_sentences(extract)
    labels = entry_labels(extract)
    asked = "What does ISDN stand for?"
    dropped = Composer().check(
        asked, evidence, "A set of standards carrying voice and data.", labels
    )
    assert dropped == "left out the asked fact"
    kept = "Integrated Services Digital Network: a set of standards carrying voice and data."
    assert Composer().check(asked, evidence, kept, labels) == ""
    # the same composition is fine for a question that does not ask the expansion
    assert (
        Composer().check(
            "What is ISDN?", evidence, "A set of standards carrying voice and data.", labels
        )
        == ""
    )


def test_a_name_asked_for_must_stay_in_the_answer() -> None:
    extract = "Internet Telephony Service Providers: They are companies selling IP telephony [1]."
    evidence, labels = evidence_sentences(extract), entry_labels(extract)
    said = "They are companies selling IP telephony."
    asked = "What do you call the companies that provide internet telephony services?"
    assert Composer().check(asked, evidence, said, labels) == "left out the asked fact"
    what = "What is an internet telephony service provider?"  # the name is the question's
    assert Composer().check(what, evidence, said, labels) == ""
    forum = "WAP Forum: The official body developing Wireless Application Protocol. [1]"
    who = "Who is the official body developing WAP?"  # the entry's name is who
    dropped = "The official body developing Wireless Application Protocol."
    check = Composer().check(who, evidence_sentences(forum), dropped, entry_labels(forum))
    assert check == "left out the asked fact"


def test_a_dropped_clause_giving_the_asked_name_is_caught() -> None:
    """ "..., a property known as transfer learning" is the answer to "what's the name for
    ...?"; the rest of the sentence is its premise."""
    evidence = [
        "They encode knowledge that generalizes to tasks not seen during pretraining, a "
        "property known as transfer learning."
    ]
    said = "They encode knowledge that generalizes to tasks not seen during pretraining."
    composer = Composer(min_sentence_share=0.5)
    asked = "whats the name for when knowledge carries over to tasks not seen in pretraining?"
    assert composer.check(asked, evidence, said) == "left out the asked fact"
    assert composer.check("Do they generalize to unseen tasks?", evidence, said) == ""


def test_an_answer_to_an_alias_says_which_entry_it_is() -> None:
    extract = "Brute force and ignorance: A popular design technique at many software houses. [1]"
    composed = "A popular design technique at many software houses [1]."
    found = Lookup("BFI", ("foldoc:bfi",))
    assert labelled(extract, composed, found) == f"Brute force and ignorance: {composed}"
    # asked by its own title, or not a lookup: the definition need not repeat its term
    assert labelled(extract, composed, Lookup("brute force and ignorance", ("d",))) == composed
    assert labelled(extract, composed, None) == composed
    assert labelled(extract, composed, Lookup("BFI")) == composed  # no entry found
    assert labelled("A technique. [1]", composed, found) == composed  # no label to keep


def test_an_answer_to_a_name_asked_for_keeps_the_entry_it_names() -> None:
    extract = "COMIT: The first string-handling and pattern-matching language. [1]"
    composed = "The first string-handling and pattern-matching language [1]."
    asked = "Which language is credited as the first one for handling strings?"
    cited = [Chunk("COMIT#0", "COMIT", "COMIT", "COMIT", "# COMIT\n\nThe first.", 0, 0, "text")]
    assert labelled(extract, composed, None, asked, cited) == f"COMIT: {composed}"
    who = "Who designed the first one?"
    assert labelled(extract, composed, None, who, cited) == f"COMIT: {composed}"
    # asking what something is asks for no name: the label may go
    assert labelled(extract, composed, None, "What was COMIT designed for?", cited) == composed
    # a field's label is no entry's name: "Providers: OpenAI, ..." loses it
    field = "Providers: OpenAI and Cohere are primary providers. [1]"
    said = "OpenAI and Cohere are primary providers [1]."
    page = [replace(cited[0], title="Foundation model")]
    assert labelled(field, said, None, "Who are the main providers?", page) == said
