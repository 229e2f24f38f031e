"""The clause grammar and the grounded decoder: only whole evidence clauses, in order."""

from __future__ import annotations

import numpy as np
import pytest

from chatbot.grounded import ClauseGrammar, clauses, grounded_tokens

pytestmark = pytest.mark.unit

EVIDENCE = [
    "Bison is the GNU parser generator, which replaced yacc on most systems.",
    "It was written by Robert Corbett in 1985, but Richard Stallman made it yacc-compatible.",
]


def readable(grammar: ClauseGrammar, text: str) -> bool:
    return bool(grammar.advance(grammar.start(), text))


def test_clauses_cut_at_punctuation_and_contrast_but_keep_lists_whole() -> None:
    assert clauses(EVIDENCE[1]) == [
        "It was written by Robert Corbett in 1985",
        "but Richard Stallman made it yacc-compatible.",
    ]
    # a list item shorter than four words stays with its neighbour
    assert clauses("Major models such as GPT, Claude, Llama, and Gemini are all base models.") == [
        "Major models such as GPT, Claude, Llama",
        "and Gemini are all base models.",
    ]


@pytest.mark.parametrize(
    "answer",
    [
        "Bison is the GNU parser generator. It was written by Robert Corbett in 1985.",
        "Bison is the GNU parser generator, which replaced yacc on most systems. It was written "
        "by Robert Corbett in 1985, but Richard Stallman made it yacc-compatible.",
        "Bison is the GNU parser generator. It was written by Robert Corbett in 1985, but "
        "Richard Stallman made it yacc-compatible.",
    ],
)
def test_whole_clauses_in_evidence_order_are_readable(answer: str) -> None:
    grammar = ClauseGrammar(EVIDENCE)
    paths = grammar.advance(grammar.start(), answer)
    assert paths and grammar.can_end(paths)


@pytest.mark.parametrize(
    "answer",
    [
        "Bison was written by Linus Torvalds in 1991.",  # an invented name and year
        "Bison is not the GNU parser generator.",  # a negation the evidence does not have
        "Bison is the GNU parser generator. Which replaced yacc on most systems.",  # reordered
        "It was written by Robert Corbett in 1985.",  # opens outside the reader's best sentence
        "Bison is the GNU parser generator.",  # drops the second sentence (the reader's addition)
        "Bison is the GNU parser generator. Richard Stallman made it yacc-compatible.",  # "but"
        "Was it written by Robert Corbett in 1985?",  # a question
        "Robert Corbett.",  # a fragment of a clause
        "but Richard Stallman made it yacc-compatible.",  # a dependent clause opening
    ],
)
def test_anything_else_is_not(answer: str) -> None:
    grammar = ClauseGrammar(EVIDENCE)
    paths = grammar.advance(grammar.start(), answer)
    assert not (paths and grammar.can_end(paths))


def test_an_answer_may_only_end_after_a_whole_clause() -> None:
    grammar = ClauseGrammar(EVIDENCE[:1])
    inside = grammar.advance(grammar.start(), "Bison is the GNU parser")
    assert inside and not grammar.can_end(inside)
    assert grammar.forced(inside) == " generator"
    done = grammar.advance(grammar.start(), "Bison is the GNU parser generator,")
    assert grammar.can_end(done)
    assert ClauseGrammar.finish("Bison is the GNU parser generator,") == (
        "Bison is the GNU parser generator."
    )


def test_empty_evidence_is_refused() -> None:
    with pytest.raises(ValueError):
        ClauseGrammar(["  "])


def decode(grammar: ClauseGrammar, wanted: str) -> str:
    """The decoder with a character vocabulary whose scores spell ``wanted``."""
    vocab = ["<eos>", *sorted(set(wanted) | set("".join(grammar.clauses)) | set(" ,.?"))]
    out: list[str] = []

    def scores_after(token: int | None) -> np.ndarray:
        if token is not None:
            out.append(vocab[token])
        scores = np.arange(len(vocab), dtype=np.float32) * 1e-3  # a fixed, arbitrary order
        at = len("".join(out))
        scores[vocab.index(wanted[at]) if at < len(wanted) else 0] = 10.0
        return scores

    pieces = grounded_tokens(
        scores_after,
        vocab.__getitem__,
        grammar,
        {0},
        max_new_tokens=200,
        encode=lambda s: [vocab.index(s[0])],
    )
    return ClauseGrammar.finish("".join(pieces))


def test_the_decoder_writes_what_the_model_prefers_where_the_grammar_allows() -> None:
    grammar = ClauseGrammar(EVIDENCE[1:])
    assert decode(grammar, "It was written by Robert Corbett in 1985.") == (
        "It was written by Robert Corbett in 1985."
    )


def test_the_decoder_copies_on_where_the_model_would_invent() -> None:
    grammar = ClauseGrammar(EVIDENCE[1:])
    text = decode(grammar, "It was written by Linus Torvalds.")
    assert "Linus" not in text
    assert text.startswith("It was written by Robert Corbett in 1985")
    paths = grammar.advance(grammar.start(), text)
    assert paths and grammar.can_end(paths)


def test_a_comma_never_joins_clauses_of_two_sentences() -> None:
    grammar = ClauseGrammar(EVIDENCE)
    joined = "Bison is the GNU parser generator, but Richard Stallman made it yacc-compatible."
    assert not readable(grammar, joined + " x")
    paths = grammar.advance(grammar.start(), joined)
    assert not (paths and grammar.can_end(paths))
    apart = "Bison is the GNU parser generator. It was written by Robert Corbett in 1985."
    assert grammar.can_end(grammar.advance(grammar.start(), apart))


def test_no_reading_leads_to_a_dead_end() -> None:
    """A space after the last clause's comma or full stop could never be followed: the model
    wrote "... in 1986, " and decoding stopped there, cut off."""
    grammar = ClauseGrammar(["An adventure game language designed by David Betz in 1986."])
    ended = "An adventure game language designed by David Betz in 1986"
    for punct in ",.":
        assert grammar.can_end(grammar.advance(grammar.start(), ended + punct))
        assert grammar.advance(grammar.start(), ended + punct + " ") == ()
    # the decoder, told to go on, ends the answer whole
    assert decode(grammar, ended + ", and more.") == ended + "."


def test_when_the_model_has_no_allowed_word_decoding_copies_on_to_a_whole_answer() -> None:
    grammar = ClauseGrammar(EVIDENCE)
    text = "Bison is the GNU parser generator"
    paths = grammar.advance(grammar.start(), text)
    while not grammar.can_end(paths):
        step = grammar.forced(paths)
        assert step, f"stuck after {text!r}"
        text, paths = text + step, grammar.advance(paths, step)
    assert ClauseGrammar.finish(text) == (
        "Bison is the GNU parser generator, which replaced yacc on most systems. "
        "It was written by Robert Corbett in 1985."
    )
    assert grammar.forced(paths) == ""  # where it may end, nothing is forced


def test_an_answer_opens_at_a_sentence_start_or_after_a_lead_in_only() -> None:
    grammar = ClauseGrammar(
        [
            '"Open-weight models," such as Llama and Mistral, make their weights public, '
            "while proprietary models are reachable only through an API.",
            "For most product teams, foundation models remove the need to train a model.",
        ]
    )
    # skipping the subject would turn the clause into an instruction
    assert not readable(grammar, "Make their weights public")
    assert readable(grammar, '"Open-weight models," such as Llama and Mistral, make their')
    # a lead-in may be skipped, in any sentence of the answer
    apart = (
        '"Open-weight models," such as Llama and Mistral, make their weights public. '
        "Foundation models remove the need to train a model."
    )
    assert grammar.can_end(grammar.advance(grammar.start(), apart))


def test_no_clause_between_two_kept_ones_is_dropped() -> None:
    grammar = ClauseGrammar(
        [
            'Given "The capital of France is," a base model continues with "Paris", '
            'but given "What is the capital of France?", it might generate another question.'
        ]
    )
    assert not readable(grammar, 'Given "The capital of France is," a base model continues '
                        'with "Paris", it might')  # fmt: skip
    whole = (
        'Given "The capital of France is," a base model continues with "Paris", but given '
        '"What is the capital of France?", it might generate another question.'
    )
    assert grammar.can_end(grammar.advance(grammar.start(), whole))
