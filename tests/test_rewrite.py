"""Follow-up rewriting: a pronoun-only follow-up must reach retrieval with its subject.

"and why do companies release them?" retrieves nothing on its own; the rewriter puts back the
glossary term the conversation was about, and must leave a standalone question alone.
"""

from __future__ import annotations

import pytest

from chatbot.rewrite import FollowUpRewriter, asked_with_answers

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
