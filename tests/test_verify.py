"""Answer verification and the extractive fallback.

A 135M model writes fluent, confident, wrong text; these tests pin the checks that stand
between it and the user: invented citation numbers go, ungrounded or polarity-flipped
sentences are rejected, loops are rejected, and the fallback quotes the passages with citations.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from chatbot.chunking import Chunk
from chatbot.reader import drop_polarity, extractive_answer, faq_answer
from chatbot.verify import (
    SupportChecker,
    best_passage,
    clean_citations,
    parse_citations,
    split_sentences,
    unmentioned_specifics,
)
from tests.fakes import FakeEmbedder

FAQ_Q = "Can you use a base model directly for a chatbot?"
FAQ_BODY = (
    "Base models are not ideal for chatbots because they complete text rather than follow "
    "instructions. They need fine-tuning or careful prompting to behave conversationally. "
    "Instruct or chat variants are designed for interactive use. Base Model becomes easier to "
    "evaluate when you look at the workflow around it rather than the label alone."
)


def chunk(
    body: str, heading: str = "Base Model > Explained", kind: str = "text", n: int = 0
) -> Chunk:
    text = f"### {heading.rsplit(' > ', 1)[-1]}\n\n{body}"
    return Chunk(f"d#{n}", "d", "Base Model", heading, text, 0, len(text), kind)


FAQ = chunk(FAQ_BODY, f"Base Model > Frequently asked questions > {FAQ_Q}", "faq")
DEFINITION = chunk(
    "A base model is the raw pre-trained version of a language model before any fine-tuning "
    "or alignment, trained only on next-token prediction. Companies release base models so "
    "researchers can fine-tune them for their own tasks.",
    n=1,
)


# ------------------------------------------------------------------------------- citations
def test_parse_citations_in_order_without_duplicates() -> None:
    assert parse_citations("a [2] b [1, 3] c [2;4] d [ 5 ] e [1]") == [2, 1, 3, 4, 5]
    assert parse_citations("no citations, just [brackets] and (1)") == []


def test_clean_citations_drops_invented_numbers_and_counts_them() -> None:
    text, valid, dropped = clean_citations(
        "Base models complete text [1]. They need tuning [7].", 3
    )
    assert "[7]" not in text and "[1]" in text
    assert text == "Base models complete text [1]. They need tuning."
    assert valid == [1]
    assert dropped == 1


def test_clean_citations_keeps_the_valid_part_of_a_group() -> None:
    text, valid, dropped = clean_citations("A [2, 7]. B [3;1]. C [0]. D [4, 4].", 3)
    assert text == "A [2]. B [3, 1]. C. D."
    assert valid == [2, 3, 1]
    assert dropped == 4  # 7, 0 and both 4s


def test_clean_citations_with_no_passages_drops_all() -> None:
    text, valid, dropped = clean_citations("Claim [1].", 0)
    assert text == "Claim." and valid == [] and dropped == 1


# ------------------------------------------------------------------------------- support
def test_grounded_sentence_is_accepted() -> None:
    answer = "Base models are not ideal for chatbots because they complete text [1]."
    verdict = SupportChecker().run(answer, [FAQ])
    assert verdict.supported, verdict.reasons
    assert verdict.score == 1.0


def test_two_grounded_sentences_citing_different_passages() -> None:
    answer = (
        "A base model is the raw pre-trained version of a language model [2]. "
        "Base models need fine-tuning or careful prompting to behave conversationally [1]."
    )
    assert SupportChecker().run(answer, [FAQ, DEFINITION]).supported


def test_sentence_checked_against_the_passage_it_cites() -> None:
    """Grounded in passage 2 but citing passage 1: the words are not in what it cites."""
    answer = "Companies release base models so researchers can fine-tune them [1]."
    verdict = SupportChecker().run(answer, [FAQ, DEFINITION])
    assert not verdict.supported
    assert "unsupported" in verdict.reasons[0]
    assert SupportChecker().run(answer.replace("[1]", "[2]"), [FAQ, DEFINITION]).supported


@pytest.mark.parametrize(
    "answer",
    [
        "Yes, you can use a base model directly for a chatbot [1].",
        "Yes, you can use a base model directly for a chatbot.",
        "You can use a base model directly for a chatbot [1].",
        "Base models are ideal for chatbots because they follow instructions [1].",
    ],
)
def test_answer_contradicting_the_passage_is_rejected(answer: str) -> None:
    """The model once said "Yes, you can ..." next to a passage saying base models are not
    ideal: the polarity check (negation in passage, none in the answer) must catch it."""
    verdict = SupportChecker().run(answer, [FAQ])
    assert not verdict.supported
    assert any("contradicts passage 1" in r for r in verdict.reasons), verdict.reasons


def test_negated_claim_against_affirmative_passage_is_rejected() -> None:
    answer = "A base model is not trained on next-token prediction [1]."
    verdict = SupportChecker().run(answer, [DEFINITION])
    assert not verdict.supported
    assert "contradicts" in verdict.reasons[0]


def test_ungrounded_sentence_is_rejected() -> None:
    answer = "Every plan includes a 7-day free trial with unlimited GPU credits [1]."
    verdict = SupportChecker().run(answer, [FAQ, DEFINITION])
    assert not verdict.supported
    assert verdict.reasons and verdict.reasons[0].startswith("unsupported")


def test_one_bad_sentence_fails_the_whole_answer_but_keeps_the_good_prefix() -> None:
    answer = (
        "Base models need fine-tuning or careful prompting to behave conversationally [1]. "
        "Every plan includes a 7-day free trial with unlimited GPU credits [1]."
    )
    checker = SupportChecker()
    verdict = checker.run(answer, [FAQ])
    assert not verdict.supported and verdict.score == 0.5
    kept, prefix_verdict = checker.supported_prefix(answer, [FAQ])
    assert kept.startswith("Base models need fine-tuning")
    assert "trial" not in kept
    assert prefix_verdict.supported


def test_supported_prefix_drops_a_sentence_cut_off_mid_way() -> None:
    answer = "Base models need fine-tuning or careful prompting [1]. Instruct or chat variants are"
    kept, verdict = SupportChecker().supported_prefix(answer, [FAQ])
    assert kept == "Base models need fine-tuning or careful prompting [1]."
    assert verdict.supported


def test_i_dont_know_is_not_an_answer() -> None:
    verdict = SupportChecker().run("I don't know.", [FAQ])
    assert not verdict.supported and "does not know" in verdict.reasons[0]


@pytest.mark.parametrize("answer", ["", "   ", "\n"])
def test_empty_answer_is_rejected(answer: str) -> None:
    assert not SupportChecker().run(answer, [FAQ]).supported


def test_repetitive_text_is_rejected_even_when_its_words_are_grounded() -> None:
    loop = "Base models need fine-tuning. " * 8
    verdict = SupportChecker().run(loop, [FAQ])
    assert not verdict.supported
    assert verdict.reasons == ["the answer repeats itself"]
    kept, prefix_verdict = SupportChecker().supported_prefix(loop, [FAQ])
    assert kept == "" and not prefix_verdict.supported


def test_threshold_is_validated_and_applied() -> None:
    with pytest.raises(ValueError):
        SupportChecker(1.5)
    half = "Base models need fine-tuning for weather forecasting satellites [1]."
    assert not SupportChecker(0.9).run(half, [FAQ]).supported
    assert SupportChecker(0.3).run(half, [FAQ]).supported


# ------------------------------------------------------------------------------- extractive
def test_split_sentences() -> None:
    assert split_sentences("One two. Three four? Five!\nSix") == [
        "One two.",
        "Three four?",
        "Five!",
        "Six",
    ]


def test_citation_after_the_full_stop_stays_with_its_sentence() -> None:
    """Models (and our own extractive answers) often write "Claim. [1] Next claim. [2]"; the
    [1] belongs to the first claim, not the second, or a correct answer is rejected."""
    assert split_sentences("One claim. [1] Two claim. [2, 3]") == [
        "One claim. [1]",
        "Two claim. [2, 3]",
    ]
    assert split_sentences("Really? [1]. Yes.") == ["Really? [1].", "Yes."]
    answer = (
        "Base models are not ideal for chatbots because they complete text rather than follow "
        "instructions. [1] A base model is the raw pre-trained version of a language model. [2]"
    )
    verdict = SupportChecker().run(answer, [FAQ, DEFINITION])
    assert verdict.supported, verdict.reasons
    kept, _ = SupportChecker().supported_prefix(answer, [FAQ, DEFINITION])
    assert kept == answer


@pytest.mark.parametrize("embedder", [None, FakeEmbedder()])
def test_extractive_answer_quotes_passage_sentences_with_valid_citations(
    embedder: FakeEmbedder | None,
) -> None:
    passages = [DEFINITION, FAQ]
    ext = extractive_answer("Can a base model be used directly for a chatbot?", passages, embedder)
    assert ext.text and ext.cited
    assert all(1 <= n <= len(passages) for n in ext.cited)
    assert parse_citations(ext.text) == ext.cited
    # every quoted sentence is verbatim from the passage it cites: "<sentence> [n]" pieces
    pieces = re.findall(r"(.+?) \[(\d+)\](?: |$)", ext.text)
    assert " ".join(f"{q} [{n}]" for q, n in pieces) == ext.text
    for quoted, n in pieces:
        assert quoted in passages[int(n) - 1].text
    assert "not ideal for chatbots" in ext.text
    # and an extractive answer passes the same verification as a generated one
    assert SupportChecker().run(ext.text, passages).supported


def test_extractive_answer_respects_limits_and_skips_questions() -> None:
    body = "Is this a question worth asking here? " + FAQ_BODY
    ext = extractive_answer("chatbot base model", [chunk(body, kind="faq")], None, max_sentences=1)
    assert len(parse_citations(ext.text)) == 1
    assert ext.text.count(". [") == 1  # one sentence, then its citation
    assert "?" not in ext.text


def test_extractive_answer_with_nothing_usable_is_empty() -> None:
    ext = extractive_answer("anything", [chunk("Too short."), chunk("Tiny.")], None)
    assert ext.text == "" and ext.cited == []


def test_extractive_answer_uses_the_embedder_scores() -> None:
    """With an embedder, sentences are ranked by similarity to the question too."""

    class Pointed(FakeEmbedder):
        def encode(self, texts: list[str]) -> np.ndarray:  # type: ignore[override]
            out = np.zeros((len(texts), 2), dtype=np.float32)
            for i, t in enumerate(texts):
                out[i] = [1.0, 0.0] if (i == 0 or "Instruct or chat" in t) else [0.0, 1.0]
            return out

    ext = extractive_answer("zzz", [FAQ], Pointed(), max_sentences=1)
    assert ext.text.startswith("Instruct or chat variants are designed for interactive use.")


def test_faq_answer_uses_the_entry_text_and_given_number() -> None:
    ext = faq_answer(FAQ, 3)
    assert ext.cited == [3]
    assert ext.text.endswith(" [3]")
    assert ext.text.startswith("Base models are not ideal for chatbots")
    assert FAQ_Q not in ext.text  # the question heading is not part of the answer


def test_faq_answer_is_cut_to_leading_sentences() -> None:
    ext = faq_answer(FAQ, 1, max_chars=200)
    body = ext.text.removesuffix(" [1]")
    assert body.startswith("Base models are not ideal")
    assert "They need fine-tuning" in body
    assert "Instruct or chat" not in body and "workflow" not in body
    assert len(body) <= 200


def test_faq_answer_strips_markdown_list_and_bold() -> None:
    entry = chunk("- **Yes**: with care, a base model can be prompted.", kind="faq")
    assert faq_answer(entry, 1).text == "Yes: with care, a base model can be prompted. [1]"


CAN_Q = "Can I use a foundation model without fine-tuning it?"
CAN = chunk(
    "Yes, through few-shot prompting you can guide a foundation model without altering its "
    "weights. No. That is all.",
    kind="faq",
    heading=f"Foundation Model > FAQ > {CAN_Q}",
)


def test_a_faq_yes_or_no_is_kept_only_for_its_own_question() -> None:
    assert faq_answer(CAN, 1, asked=CAN_Q).text.startswith("Yes, through few-shot")
    assert (
        faq_answer(CAN, 1, asked="can i use a Foundation Model without fine tuning it").text[:4]
        == "Yes,"
    )  # the same words
    # "Do I have to fine-tune it?" is close, but its answer would be "no": the "Yes" goes
    other = faq_answer(CAN, 1, asked="Do I have to fine-tune a foundation model to use it?")
    assert other.text.startswith("Through few-shot prompting you can guide")
    assert "No. That is all." in other.text  # only the opening word is dropped


@pytest.mark.parametrize(
    ("sentence", "dropped"),
    [
        ("Yes, through few-shot prompting it works.", "Through few-shot prompting it works."),
        ("No - base models are not ideal for chatbots.", "Base models are not ideal for chatbots."),
        ("No single model can do everything.", "No single model can do everything."),
        ("Yesterday it rained on the lab.", "Yesterday it rained on the lab."),
        ("Yes.", ""),
        ("No, never.", ""),
    ],
)
def test_drop_polarity_takes_only_a_punctuated_yes_or_no(sentence: str, dropped: str) -> None:
    assert drop_polarity(sentence) == dropped


def test_the_reader_never_copies_another_questions_yes() -> None:
    ext = extractive_answer("Is a foundation model built for one narrow job?", [CAN], None)
    assert ext.text and not ext.text.lower().startswith("yes")
    assert "Yes," not in ext.text


# ------------------------------------------------------------------------------- specifics
ORIGIN = chunk(
    'The term "Foundation Model," coined by Stanford University in 2021, draws an analogy to '
    "the foundation of a building.",
    n=2,
)


@pytest.mark.parametrize(
    "answer",
    [
        "The term was coined by Harvard University in 2021 [1].",  # wrong name
        "The term was coined by Stanford University in 2019 [1].",  # wrong year
    ],
)
def test_invented_names_and_numbers_are_rejected(answer: str) -> None:
    """Word overlap alone passes these; the names and numbers must come from the passages."""
    verdict = SupportChecker().run(answer, [ORIGIN])
    assert not verdict.supported
    assert any("not in the passages" in r for r in verdict.reasons)


def test_names_and_numbers_from_the_passage_are_accepted() -> None:
    answer = "The term foundation model was coined by Stanford University in 2021 [1]."
    assert SupportChecker().run(answer, [ORIGIN]).supported


MASCOT = chunk("The glossary-chat mascot is a purple owl named Quillby.", n=3)


def test_uncited_sentence_is_checked_against_the_passage_it_will_cite() -> None:
    """Seen in the app after adding a corpus entry: an uncited "The mascot of glossary-chat is
    Foundation Model." passed because "Foundation Model" occurs in *another* passage, and was
    then shown citing the mascot passage. An uncited sentence now answers to its best match."""
    checker = SupportChecker()
    passages = [MASCOT, ORIGIN]
    invented = "The glossary-chat mascot is named Foundation Model."
    assert best_passage(invented, passages) == 1
    verdict = checker.run(invented, passages)
    assert not verdict.supported
    assert any("Foundation" in r for r in verdict.reasons)
    truth = "The glossary-chat mascot is a purple owl named Quillby."
    assert checker.run(truth, passages).supported
    # a sentence that needs both passages at once is not grounded in either
    mixed = "The glossary-chat mascot Quillby was coined by Stanford University in 2021."
    assert not checker.run(mixed, passages).supported


def test_opening_definition_strips_markup_and_lists_short_senses() -> None:
    from chatbot.text import opening_definition

    entry = (
        "# byte\n\n<unit> /bi:t/ (B) A component in the data hierarchy; now eight bits.\n\n"
        "(1996-05-25)"
    )
    assert opening_definition(entry) == "A component in the data hierarchy; now eight bits."
    senses = "# PC\n\n1. <computer> personal computer.\n\n2. <hardware> program counter.\n"
    assert opening_definition(senses) == "1. personal computer. 2. program counter."
    assert opening_definition("# Empty\n\n(1999-01-01)\n") == ""


def test_a_list_of_short_senses_gives_each_senses_first_sentence() -> None:
    from chatbot.text import opening_definition

    esp = (
        "# ESP\n\n1. Extra Simple Pascal.  Subset of Pascal.\n\n2. Econometric Software "
        'Package.  Statistical analysis of time\nseries.  "Econometric Software Package, '
        "User's Manual\".\n\n3. {Extended Self-containing Prolog}.\n"
    )
    assert opening_definition(esp) == (
        "1. Extra Simple Pascal. 2. Econometric Software Package. 3. Extended Self-containing "
        "Prolog."
    )
    gronked = (
        '# gronked\n\n1. Broken. "The teletype scanner was gronked."\n\n2. Of people, the '
        "condition of feeling very tired."
    )
    assert opening_definition(gronked) == (
        "1. Broken. 2. Of people, the condition of feeling very tired."
    )


def test_a_field_line_ends_the_opening_definition() -> None:
    from chatbot.text import opening_definition

    page = "# Base Model\n\nA pre-trained model used as a starting point.\n\nYear: 2018\n\nMore."
    assert opening_definition(page) == "A pre-trained model used as a starting point."
    prose = "# X\n\nA short claim here now. It has a second sentence about it."
    assert opening_definition(prose) == "A short claim here now. It has a second sentence about it."


class _FavourSecond:
    """A scorer that prefers the prefix containing 'second': the model's ranking decides."""

    def __init__(self) -> None:
        self.calls = 0

    def score(self, prefixes: list[str], continuation: str) -> list[float]:
        self.calls += 1
        return [0.0 if "second" in p else -5.0 for p in prefixes]


def test_a_scorer_reranks_the_extractive_candidates() -> None:
    from chatbot.reader import extractive_answer

    passage = chunk(
        "The first sentence talks about base models at length here. "
        "A second sentence holds the asked fact about base models too."
    )
    scorer = _FavourSecond()
    ext = extractive_answer("base models", [passage], None, max_sentences=1, scorer=scorer)
    assert scorer.calls == 1 and ext.text.startswith("A second sentence")
    plain = extractive_answer("base models", [passage], None, max_sentences=1)
    assert plain.text.startswith("The first sentence")


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Who wrote Bison?", "person"),
        ("When was the byte coined?", "time"),
        ("How many bits are in a byte?", "number"),
        ("Why is it called a molly-guard?", "reason"),
        ("Is CHAP more secure than PAP?", "yesno"),
        ("What does a compiler do?", "other"),
    ],
)
def test_answer_type_of_a_question(question: str, kind: str) -> None:
    from chatbot.kinds import answer_type

    assert answer_type(question) == kind


def test_the_sentence_with_the_asked_kind_of_fact_comes_first() -> None:
    from chatbot.reader import extractive_answer

    passage = chunk(
        "The KC85/4 was the last commercial home computer from East Germany. "
        "It was sold to schools and hobbyists across the country for years. "
        "It runs at 1.77 MHz, has 64 KB of RAM and uses a Z80 clone CPU."
    )
    ext = extractive_answer("How much RAM did the KC85/4 have?", [passage], None)
    assert "64 KB" in ext.text


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("When does garbage collection typically kick in [1]?", "a question"),
        ("Garbage collection typically kicks in [1].", "repeats the question"),
        ("Finagle's Law (jargon file) [1].", "a fragment"),
        ("<electronics> Memory is reclaimed by the collector when no longer used [1].", "markup"),
    ],
)
def test_non_answers_are_rejected_however_grounded(answer: str, reason: str) -> None:
    passage = chunk(
        "Garbage collection typically kicks in when memory runs low. Memory is reclaimed by the "
        "collector when no longer used. Finagle's Law (jargon file). <electronics>"
    )
    question = "When does garbage collection typically kick in?"
    (checked,) = SupportChecker(0.5).sentences(answer, [passage], question)
    assert reason in checked[1]


def test_markup_stripping_keeps_html_and_underscores_in_prose() -> None:
    from chatbot.text import strip_markup

    assert strip_markup("<networking> A protocol.") == "A protocol."
    assert strip_markup("Designed by {Microsoft} as a rival to {Java}.") == (
        "Designed by Microsoft as a rival to Java."
    )
    kept = "Markup such as <script>x</script> and window.__pwned is shown as text."
    assert strip_markup(kept) == kept


PASSAGES = ["The Z80A runs at 4 MHz. The PDP-7 was sold from 1965 with 18 bit words.",
            "GPT 4 is large. Windows NT 3.51 shipped in 1995. ASR-33s do not feep."]  # fmt: skip


@pytest.mark.parametrize(
    ("question", "missing"),
    [
        ("How many CPU cores does Apple's M3 Max chip have?", ["M3"]),
        ("Which Python version ships with Ubuntu 24.04?", ["24.04"]),
        ("What changed in Python 3.12?", ["3.12"]),
        ("Who won the award in 2031?", ["2031"]),
        ("What clock rate does the Z80A run at?", []),
        ("When was the PDP-7 first sold?", []),  # "PDP-7" as written
        ("How big is GPT-4?", []),  # "GPT 4" in the passage
        ("What was new in Windows NT 3.51?", []),
        ("Did the PDP-7 use 18-bit words?", []),  # a number with a unit: the number is checked
        ("Back in the mid-1990s, was NT popular?", []),  # a decade is not a product code
        ("Do the old ASR-33 teletypes feep?", []),  # "ASR-33s": the plural names it
        ("Was the Z80 faster?", ["Z80"]),  # "Z80A" is another model
        ("Why was memory filled with Z8...?", []),  # the start of a longer string, cut
        ("Why was memory filled with Z8?", ["Z8"]),
        ("Which models came out around 1995/1996?", []),  # alternatives: either will do
        ("Was the PDP-7 sold in 1964 or 1965?", []),
        ("Did anything ship in 2030 or 2031?", ["2030", "2031"]),  # neither is mentioned
        ("When was Python 3 released?", ["Python 3"]),  # a version in one digit
        ("Is GPT 4 large?", []),
        ("Could Lotus Symphony multitask, unlike Lotus 1-2-3?", []),  # a name, not a version
        ("Give 3 examples of a Z80A program.", []),  # a count, not a version
    ],
)
def test_what_a_question_names_must_be_in_a_passage(question: str, missing: list[str]) -> None:
    assert unmentioned_specifics(question, PASSAGES) == missing
