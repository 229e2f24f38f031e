"""Follow-up rewriting: a pronoun-only follow-up must reach retrieval with its subject.

"and why do companies release them?" retrieves nothing on its own; the rewriter puts back the
glossary term the conversation was about, and must leave a standalone question alone.
"""

from __future__ import annotations

import pytest

from chatbot.rewrite import FollowUpRewriter, asked_with_answers, own_context
from chatbot.text import marked_terms

TERMS = ["Base Model", "Foundation Model", "Model", "Fine-tuning"]


@pytest.fixture
def rewriter() -> FollowUpRewriter:
    return FollowUpRewriter(TERMS)


@pytest.mark.parametrize(
    ("question", "history", "expected"),
    [
        (
            "and why do companies release them?",
            ["What is a base model?"],
            "Why do companies release base models?",
        ),
        (
            "what about its limitations?",
            ["What is a foundation model?"],
            "Foundation model's limitations?",
        ),
        ("How are they trained?", ["Tell me about base models"], "How are base models trained?"),
        ("and why?", ["What is a base model?"], "Why (base model)?"),
        ("how so?", ["What is a base model?"], "How so (base model)?"),
        ("why is that?", ["What is a base model?"], "Why is that (base model)?"),
    ],
)
def test_follow_up_becomes_standalone(
    rewriter: FollowUpRewriter, question: str, history: list[str], expected: str
) -> None:
    assert rewriter.run(question, history) == expected


def test_last_mentioned_term_wins(rewriter: FollowUpRewriter) -> None:
    history = ["What is a foundation model?", "And what is a base model?"]
    assert rewriter.run("what about its limitations?", history) == "Base model's limitations?"
    history.reverse()
    assert rewriter.run("what about its limitations?", history) == (
        "Foundation model's limitations?"
    )


def test_earlier_turn_used_when_the_last_has_no_term(rewriter: FollowUpRewriter) -> None:
    history = ["What is a base model?", "thanks!"]
    assert "base models" in rewriter.run("why do companies release them?", history)


def test_longest_term_is_preferred(rewriter: FollowUpRewriter) -> None:
    """ "foundation model" must win over its substring "model"."""
    assert rewriter.mentioned("Tell me about Foundation Models") == "foundation model"
    assert rewriter.mentioned("the model") == "model"
    assert rewriter.mentioned("nothing here") is None


@pytest.mark.parametrize(
    ("question", "history"),
    [
        ("What is a foundation model?", ["What is a base model?"]),  # names its own subject
        ("Why do companies release base models?", ["What is fine-tuning?"]),
        ("Explain pre-training", ["What is a base model?"]),  # no follow-up hint
        ("what about its limitations?", []),  # nothing to refer back to
        ("and why do companies release them?", ["hello there", "thanks"]),  # no term known
        # opens with "what" but leans on nothing: not "(base model)" appended
        ("What do you call the variation in packet arrival times?", ["What is a base model?"]),
        ("What do you call the companies that provide telephony?", ["What is a base model?"]),
        ("What's LoRA?", ["What is a base model?"]),  # short, but it names what it asks about
    ],
)
def test_standalone_or_unresolvable_question_is_unchanged(
    rewriter: FollowUpRewriter, question: str, history: list[str]
) -> None:
    assert rewriter.run(question, history) == question


def test_blank_terms_are_ignored() -> None:
    r = FollowUpRewriter(["", "  ", "Base Model"])
    assert r.mentioned("tell me about base models") == "base model"
    assert r.mentioned("   ") is None
    assert r.run("what about its limitations?", ["a base model?"]) == "Base model's limitations?"


def test_an_answer_naming_its_entry_lends_it_to_its_question(rewriter: FollowUpRewriter) -> None:
    turns = [
        ("What is the raw model before any tuning called?", "Base Model: The raw model [1]."),
        ("Who wrote Bison?", "It was written by Robert Corbett [1]."),  # names nothing first
        ("And?", "**The glossary does not cover that.**"),
    ]
    messages = [
        (role, text)
        for turn in turns
        for role, text in zip(("user", "assistant"), turn, strict=True)
    ]
    history = asked_with_answers([("assistant", "Hello!"), *messages, ("user", "")])
    assert history == [
        "What is the raw model before any tuning called? (Base Model)",
        "Who wrote Bison?",
        "And?",
    ]
    assert rewriter.run("why do companies release them?", history[:1]) == (
        "Why do companies release base models?"
    )


@pytest.mark.parametrize(
    ("question", "standalone"),
    [
        (
            "I'm writing Common Lisp and keep seeing CLX mentioned. What is it?",
            "I'm writing Common Lisp and keep seeing CLX mentioned. What is CLX?",
        ),
        (  # a quoted term wins over an acronym; the question mark is put back
            "on IRC two guys were having a 'DSW' about their bots. what does that mean",
            "on IRC two guys were having a 'DSW' about their bots. what does DSW mean?",
        ),
        (  # a question mark inside a quote asks nothing
            'He said "bubble sort? that\'s strictly BFI". What does he mean?',
            'He said "bubble sort. that\'s strictly BFI". What does BFI mean?',
        ),
        (
            "BPO shows up in the related terms. what does the acronym stand for",
            "BPO shows up in the related terms. what does BPO stand for?",
        ),
        (  # the context in a clause
            "my boss said our design is pure BFI, what does that mean?",
            "my boss said our design is pure BFI. what does BFI mean?",
        ),
        ("What is it?", "What is it?"),  # no context to lean on
        ("if I use CLX, why is it slow?", "if I use CLX, why is it slow?"),  # not a "what is it"
        ("I use TCP and UDP. What is it?", "I use TCP and UDP. What is it?"),  # which one?
        (
            "LYRIC is old. What does the name LYRIC stand for?",
            "LYRIC is old. What does the name LYRIC stand for?",
        ),
        (  # "the name of ..." is not a pronoun for the term
            "I saw CLX. What is the name of the protocol it uses?",
            "I saw CLX. What is the name of the protocol it uses?",
        ),
        ("I saw CLX. Why is it slow?", "I saw CLX. Why is it slow?"),  # not a "what is it"
    ],
)
def test_a_pronoun_asks_for_the_term_the_question_marks(question: str, standalone: str) -> None:
    assert own_context(question) == standalone


def test_the_question_own_term_wins_over_the_conversation(rewriter: FollowUpRewriter) -> None:
    question = "My team keeps saying 'fine-tuning'. What does that mean?"
    assert rewriter.run(question, ["What is a base model?"]) == (
        "My team keeps saying 'fine-tuning'. What does fine-tuning mean?"
    )


def test_terms_are_marked_by_quotes_else_capitals() -> None:
    assert marked_terms("someone on IRC said 'DSW' twice") == ["DSW"]
    assert marked_terms('a "plug and play" hire, really "plug and play"') == ["plug and play"]
    assert marked_terms("CLX and XLib, not I or Clx") == ["CLX", "XLib"]
    assert marked_terms("that's what it's for") == []  # apostrophes are no quotes
