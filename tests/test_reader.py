"""The extractive answer states the asked fact: typed questions, the answering sentence first, a
second sentence only when it adds an asked-for fact, and no dictionary markup in the answer.

Passages are small hand-made glossary entries; the embedder is the hashed bag of words (or none),
so what is pinned is the composition, not a model's judgement.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from chatbot.candidates import candidates
from chatbot.chunking import Chunk
from chatbot.kinds import asked_types, holds_type
from chatbot.reader import (
    Weights,
    _defines_another,
    extractive_answer,
    lookup_answer,
    other_version,
)
from chatbot.terms import lookup_term
from chatbot.text import asked_sense, opening_definition, split_sentences, strip_markup
from tests.fakes import FakeEmbedder


def entry(title: str, body: str, n: int = 0, heading: str = "") -> Chunk:
    text = f"# {title}\n\n{body}"
    return Chunk(f"{title}#{n}", title, title, heading or title, text, 0, len(text), "text")


BISON = entry(
    "Bison",
    "<tool> GNU's replacement for the yacc parser generator. Bison runs under Unix and on "
    "Atari computers. It was written by Robert Corbett. You can use the output files without "
    "restriction. FTP GNU.org (ftp://ftp.gnu.org/gnu/bison/). E-mail: <bug-bison@gnu.org>.",
)
BISON_PP = entry("Bison++", "GNU's Yacc parser generator retargeted to C++ by Alain Coetmeur.", n=1)


# ------------------------------------------------------------------------------ composition
@pytest.mark.parametrize("embedder", [None, FakeEmbedder()])
def test_who_is_answered_by_the_sentence_naming_the_author(embedder: FakeEmbedder | None) -> None:
    """The definition shares most words with the question ("GNU parser generator ... yacc"),
    but only "It was written by Robert Corbett" answers "who"; the irregular "wrote"/"written"
    count as the same word."""
    question = "Who wrote Bison, the GNU parser generator meant to replace yacc?"
    ext = extractive_answer(question, [BISON, BISON_PP], embedder)
    assert ext.text.startswith("It was written by Robert Corbett. [1]")
    assert "Coetmeur" not in ext.text


def test_a_field_of_an_export_answers_what_it_states() -> None:
    """An export's columns become "- Year: 1985" lines: too short to be prose, yet the answer
    to "when" and to a question naming the field. A related-terms list ("**Yacc**: ...") is
    not read as a field of the entry."""
    body = (
        "A parser generator that reads a grammar and writes a parser in C for it.\n\n"
        "- Release year: 1985\n- Created by: Robert Corbett\n- License: GPL\n\n"
        "- **Yacc**: The parser generator it replaces."
    )
    tool = entry("Bison", body)
    when = extractive_answer("When was Bison first released?", [tool], FakeEmbedder())
    assert when.text.startswith("The release year of Bison is 1985. [1]")
    who = extractive_answer("Who created the Bison parser generator?", [tool], FakeEmbedder())
    assert who.text.startswith("Bison: created by Robert Corbett. [1]")
    lic = extractive_answer("Which license does Bison use?", [tool], FakeEmbedder())
    assert lic.text.startswith("The license of Bison is GPL. [1]")
    yacc = extractive_answer("What does Bison replace, Yacc?", [tool], FakeEmbedder())
    assert "The yacc of Bison" not in yacc.text and "The Yacc of Bison" not in yacc.text


def test_the_answering_sentence_comes_first_even_when_it_comes_later() -> None:
    kc = entry(
        "KC85/4",
        "The KC85/4 was the last commercial home computer from East Germany. "
        "It was sold to schools and hobbyists across the country for years. "
        "It runs at 1.77 MHz, has 64 KB of RAM and uses a Z80 clone CPU.",
    )
    ext = extractive_answer("How much RAM did the KC85/4 have?", [kc], FakeEmbedder())
    assert ext.text.startswith("It runs at 1.77 MHz, has 64 KB of RAM")


def test_when_should_is_answered_by_a_circumstance_not_a_year() -> None:
    """ "When should ...?" asks for a circumstance ("when teams need ..."); a sentence with a
    year in it does not answer it."""
    api = entry(
        "API model",
        "Hosted API models were first offered to the public in 2020 by several labs. "
        "An API model is the cheaper option when a team sends few requests each month.",
    )
    ext = extractive_answer("When is a hosted API model cheaper?", [api], FakeEmbedder())
    assert ext.text.startswith("An API model is the cheaper option when a team sends few")


def test_a_count_is_answered_only_by_a_sentence_holding_a_quantity() -> None:
    tool = entry("Bison", "A parser generator. It comes with two manuals and many examples.")
    assert extractive_answer("How many manuals come with Bison?", [tool], None).text.startswith(
        "It comes with two manuals"
    )
    bare = entry("Yacc", "A parser generator. It comes with manuals and many examples.")
    assert extractive_answer("How many manuals come with Yacc?", [bare], None).text == ""
    assert extractive_answer("Which manuals come with Yacc?", [bare], None).text


@pytest.mark.parametrize(
    ("title", "body", "question", "first"),
    [
        pytest.param(  # the definition shares more of the question's words
            "Foundation Model",
            "A foundation model is a model trained on data at scale for many applications. "
            "By processing petabytes of text, these models learn the structure of language.",
            "how much data are foundation models trained on?",
            "By processing petabytes",
            id="how-much-by-a-quantity",
        ),
        pytest.param(  # "compiled?" shares no word with "an interpreted ...", which settles it
            "Frobozz Magic Programming Language",
            "A prototype-based, event-driven interpreted system with functional features. "
            "The language was developed at the Experimental Computing Facility, Berkeley.",
            "Is the Frobozz Magic Programming Language a compiled language?",
            "A prototype-based, event-driven interpreted system",
            id="yes-no-by-the-opposite-property",
        ),
    ],
)
def test_the_sentence_that_answers_comes_first(
    title: str, body: str, question: str, first: str
) -> None:
    answer = extractive_answer(question, [entry(title, body)], FakeEmbedder(), max_sentences=1)
    assert answer.text.startswith(first)


def test_a_designer_and_year_note_answers_when_and_comes_first() -> None:
    """FOLDOC's language entries open with "Joseph Goguen 1976.": too short to be prose, yet
    the answer to "when"; the sentence holding the year is said before the description."""
    obj = entry(
        "OBJ",
        'Joseph Goguen 1976.  A family of declarative "ultra high level" languages.  Abstract '
        "types, generic modules and subsorts with multiple inheritance.",
    )
    q = "When did Joseph Goguen come up with OBJ, the family of ultra high level languages?"
    ext = extractive_answer(q, [obj], FakeEmbedder())
    assert ext.text.startswith("OBJ: Joseph Goguen 1976. [1]")
    plain = extractive_answer("What kind of language is OBJ?", [obj], FakeEmbedder())
    assert "1976" not in plain.text  # the note is no candidate when no name or year is asked


def test_how_many_is_answered_first_by_the_sentence_holding_the_count() -> None:
    tool = entry(
        "LIST",
        "An MS-DOS file browsing utility written by Vern Buerg, a former mainframe programmer. "
        "His list utility was in use on an estimated 5 million PCs.",
    )
    q = "Vern Buerg's LIST file browser for MS-DOS was a hit. On roughly how many PCs was it used?"
    ext = extractive_answer(q, [tool], FakeEmbedder())
    assert ext.text.startswith("His list utility was in use on an estimated 5 million PCs. [1]")


def test_a_second_sentence_only_when_it_adds_an_asked_for_fact() -> None:
    word = entry(
        "refuctoring",
        "A joke word for making code worse while claiming to improve it. "
        "The word was first heard in a London pub in 2002. "
        "It was coined by Jason Gorman, a software trainer. "
        "Refuctoring is popular in talks about code quality and maintenance.",
    )
    both = extractive_answer("When was refuctoring coined, and by whom?", [word], FakeEmbedder())
    assert "2002" in both.text and "Gorman" in both.text
    assert both.text.index("2002") < both.text.index("Gorman")  # the main kind first
    asked = "When was the word refuctoring first heard?"
    alone = Weights(following=False)  # else a lone sentence keeps the next (test below)
    one = extractive_answer(asked, [word], FakeEmbedder(), weights=alone)
    assert one.text == "The word was first heard in a London pub in 2002. [1]"


def test_a_yes_no_answer_says_the_settling_sentence_first() -> None:
    assignment = entry(
        "single assignment",
        "A property of variables in a functional language. "
        "Assignment is not allowed in functional languages, where a name always has one value.",
    )
    question = "Do functional programming languages let you assign to variables?"
    ext = extractive_answer(question, [assignment], FakeEmbedder())
    assert ext.text.startswith("Assignment is not allowed in functional languages")
    assert "A property of variables" in ext.text  # the description stays, second


def test_a_yes_no_answer_goes_on_to_the_sentence_stating_the_claim() -> None:
    """System R's description says nothing of SQL; the entry goes on to say it."""
    system_r = entry(
        "System R",
        "A database system built as a research project at IBM San Jose Research in the 1970s. "
        "It ran on mainframes. System R introduced the SQL language.",
    )
    question = "Is it true that SQL came out of IBM's System R research project?"
    ext = extractive_answer(question, [system_r], FakeEmbedder())
    assert ext.text.startswith("A database system") and "introduced the SQL language" in ext.text


def test_a_sentence_that_already_answers_gets_no_settling_sentence() -> None:
    chap = entry(
        "CHAP",
        "An authentication protocol used by PPP servers to check who is connecting. "
        "The server sends a random challenge that the client must hash with its secret. "
        "Therefore CHAP provides greater security than PAP. "
        "PAP is not a strong authentication method.",
    )
    question = "Does CHAP give more security than PAP authentication?"
    ext = extractive_answer(question, [chap], FakeEmbedder(), weights=Weights(settles=5.0))
    assert "Therefore CHAP provides greater security than PAP. [1]" in ext.text
    assert "PAP is not a strong" not in ext.text  # it answers already: nothing to settle


def test_a_far_off_denial_is_not_added_to_a_yes_no_answer() -> None:
    weights = extractive_answer(
        "Can I download the weights of proprietary models?",
        [
            entry("Base Model", "Proprietary models such as GPT are accessible only via an API."),
            entry("Gardening", "Tomatoes never grow well without sun and regular water.", n=1),
        ],
        FakeEmbedder(),
    )
    assert weights.text == "Proprietary models such as GPT are accessible only via an API. [1]"


def test_a_sentence_opening_with_this_brings_the_one_it_refers_to() -> None:
    adapt = entry(
        "Base Model",
        "Base models can be adapted in several ways. "
        "For deeper adaptation, continued pre-training adds domain-specific knowledge. "
        "This approach is often used in fields such as medicine and law.",
    )
    question = "Which approach is often used in medicine and law?"
    ext = extractive_answer(question, [adapt], FakeEmbedder())
    assert ext.text == (
        "For deeper adaptation, continued pre-training adds domain-specific knowledge. [1] "
        "This approach is often used in fields such as medicine and law. [1]"
    )


# The premise matches the question best; the answer is in the next sentence, which goes on
# from it ("This pre-training ...", "Failing that, ...") or when the first only echoes the
# question; the sentence after that stays out.
@pytest.mark.parametrize(
    ("title", "sentences", "question"),
    [
        (
            "Base model",
            [
                "Major LLMs such as GPT and Llama are pre-trained on trillions of tokens of text.",
                "This pre-training instills language structure and world knowledge.",
                "Base models are released by several labs.",
            ],
            "What does pre-training on huge amounts of text give major LLMs?",
        ),
        (
            "webmaster",
            [
                "The webmaster's e-mail address often appears on the site's home page.",
                "Failing that, you could try sending e-mail to postmaster at that host.",
                "A webmaster is the person responsible for a web site.",
            ],
            "No e-mail address for the webmaster on the home page. Who else could I write to?",
        ),
        (  # the first says nothing the question does not: an echo, the answer is after it
            "Base model",
            [
                "Base models are powerful but raw.",
                "They complete text based on statistical patterns.",
                "Base models are released by several labs.",
            ],
            "The glossary calls base models 'powerful but raw'. Raw in what sense?",
        ),
    ],
)
def test_a_lone_sentence_keeps_the_next_one_going_on_from_it(
    title: str, sentences: list[str], question: str
) -> None:
    ext = extractive_answer(question, [entry(title, " ".join(sentences))], FakeEmbedder())
    assert ext.text == f"{sentences[0]} [1] {sentences[1]} [1]"


def test_a_sentence_announcing_what_follows_brings_the_next_one() -> None:
    ways = entry(
        "Base Model",
        "A pre-trained model used as a starting point for adaptation. "
        "There are multiple ways to adapt a base model for specific tasks. "
        "The most accessible is prompt engineering, which leaves the weights alone. "
        "Next is fine-tuning on labelled data.",
    )
    ext = extractive_answer("What ways are there to adapt a base model?", [ways], FakeEmbedder())
    assert ext.text.startswith(
        "There are multiple ways to adapt a base model for specific tasks. [1] "
        "The most accessible is prompt engineering"
    )


def test_examples_are_answered_by_the_sentence_giving_them() -> None:
    kinds = entry(
        "Base Model",
        "Base models fall broadly into two categories. "
        "Some examples of open-weight model use need in-house servers. "
        "Open-weight models, such as Llama and Mistral, publish their weights.",
    )
    question = "Could you give some examples of open-weight models?"
    ext = extractive_answer(question, [kinds], FakeEmbedder())
    assert "Open-weight models, such as Llama and Mistral, publish their weights. [1]" in ext.text


def test_a_sentence_opening_with_as_a_result_brings_its_cause() -> None:
    chap = entry(
        "CHAP",
        "An authentication scheme used by PPP servers. "
        "The server repeats a random challenge while the link is open. "
        "As a result, CHAP provides greater security than PAP.",
    )
    ext = extractive_answer("Does CHAP provide greater security than PAP?", [chap], FakeEmbedder())
    assert ext.text.startswith("The server repeats a random challenge while the link is open. [1]")
    assert "As a result, CHAP provides greater security than PAP. [1]" in ext.text


def test_what_is_x_and_why_adds_the_definition() -> None:
    leak = entry(
        "space leak",
        "A data structure which grows bigger, or lives longer, than might be expected. "
        "Such unexpected memory use can make a program run out of heap. "
        "Space leaks in functional programs usually result from excessive laziness.",
    )
    question = "In functional programming, what is a space leak and what usually causes one?"
    ext = extractive_answer(question, [leak], FakeEmbedder())
    assert "laziness" in ext.text and "grows bigger" in ext.text
    assert ext.text.startswith("Space leaks in functional programs usually result")


def test_a_lead_etymology_note_can_answer_why() -> None:
    term = entry(
        "zorp",
        "<language> (Named from the inventors' initials) A text processing language with "
        "associative arrays and field-oriented processing of input lines.",
    )
    ext = extractive_answer("Why is the zorp language called zorp?", [term], FakeEmbedder())
    assert "Named from the inventors' initials. [1]" in ext.text
    assert "(Named" not in ext.text


def test_a_jargon_file_bracket_note_answers_where_from_not_what() -> None:
    """The Jargon File's "[from the German 'klug', clever]" says where the word comes from; a
    question asking what a kluge is gets the first sense, without its number and "n."."""
    kluge = entry(
        "kluge",
        "/klooj/\n\n[from the German \u2018klug\u2019, clever; poss. related to Polish "
        "\u2018klucz\u2019 (a key)]\n\n1. n. A Rube Goldberg device, whether in hardware or "
        "software.\n\n2. vt. To insert a hack into a program.",
    )
    assert opening_definition(kluge.text).startswith("A Rube Goldberg device")
    what = "What is a kluge?"
    assert not any("German" in c.text for c in candidates(what, asked_types(what), [kluge], 3))
    foldoc = entry("kluge", '<jargon> /klooj/, /kluhj/ (From German "klug" - clever) 1. A device.')
    why = "Where does the word kluge come from?"
    assert 'From German "klug" - clever.' in [
        c.text for c in candidates(why, ["reason"], [foldoc], 3)
    ]
    where = extractive_answer("Where does the word kluge come from?", [kluge], FakeEmbedder())
    assert where.text.startswith("from the German")
    assert "[from" not in where.text


def test_an_expansion_too_short_to_read_alone_is_said_of_the_acronym() -> None:
    """ "[acronym, by analogy with FIFO] 'First In, Still Here'." is what FISH stands for,
    though the sentence left after the note is four words; a note saying where a name comes
    from is said of the entry when it is short ("wizard mode: from rogue.")."""
    fish = entry(
        "FISH queue",
        "[acronym, by analogy with FIFO (First In, First Out)] \u2018First In, Still "
        "Here\u2019.\n\nA joking way of saying that processing has stopped dead.",
    )
    ext = extractive_answer("What does FISH stand for?", [fish], FakeEmbedder())
    assert ext.text.startswith("FISH stands for First In, Still Here")
    wizard = entry("wizard mode", "[from rogue] A special access mode of a program or system.")
    why = "Where does the term wizard mode come from?"
    texts = [c.text for c in candidates(why, asked_types(why), [wizard], 3)]
    assert "wizard mode: from rogue." in texts


def test_markup_that_is_no_prose_is_stripped() -> None:
    assert strip_markup("[Usenet: by analogy with spam] A message posted too often.") == (
        "A message posted too often."
    )
    assert strip_markup("[incr Tcl] is a Tcl extension.") == "[incr Tcl] is a Tcl extension."
    unix = '[In the authors\' words, "A weak pun"] (also "UNIX") An interactive system.'
    assert strip_markup(unix) == "An interactive system."  # the note, then another name
    assert strip_markup("1. n. A Rube Goldberg device.") == "A Rube Goldberg device."
    assert strip_markup("used only of *hardware* kluges.") == "used only of hardware kluges."
    assert strip_markup("UN*X and *nix name Unix.") == "UN*X and *nix name Unix."
    assert split_sentences("1. n. A device. It works.") == ["1. n. A device.", "It works."]
    kluge = '<jargon> /klooj/, /kluhj/ (From German "klug") 1. A Rube Goldberg device.'
    assert [strip_markup(s) for s in split_sentences(kluge)] == ["A Rube Goldberg device."]
    noop = "<jargon> /noh'op/ alt. NOP /nop/ [no operation] 1. A machine instruction."
    assert [strip_markup(s) for s in split_sentences(noop)] == ["A machine instruction."]
    assert strip_markup("(NOL) /noh-el/ A software service.") == "A software service."
    assert strip_markup("Version 1 was released in 1991 [by Microsoft?].") == (
        "Version 1 was released in 1991."
    )
    assert strip_markup("A language. [Details?  Reference?]") == "A language."
    assert strip_markup("usually {hard {disk}. Or {a {tape}}.") == "usually hard disk. Or a tape."
    marketroid = "alt.: marketing slime, marketdroid. A member of a company's marketing department."
    assert opening_definition(marketroid) == "A member of a company's marketing department."
    assert strip_markup("A block is { } in C.") == "A block is { } in C."
    # a remark in brackets is the entry's own text
    said = "[INTERCAL called this ampersand; what could be sillier?]"
    assert strip_markup(f"It is {said}.") == f"It is {said}."


def test_a_sentence_telling_how_it_was_named_answers_why() -> None:
    ogg = entry(
        "ogg",
        "In the space combat game Netrek, to ram enemy ships carrying armies on purpose. "
        "Named during a game in which one player kept doing it while flying ship G, shown as Og.",
    )
    ext = extractive_answer("Why do Netrek players call ramming 'ogging'?", [ogg], FakeEmbedder())
    assert ext.text.startswith("Named during a game")
    assert holds_type("Named during a game in which one player kept doing it.", "reason")
    assert not holds_type("A variable named x holds the count.", "reason")


def test_the_section_heading_is_read_with_the_sentence() -> None:
    """Two sections with the same sentence shapes: the heading tells which one is asked."""
    faq = entry(
        "Base Model",
        "They give researchers full flexibility to adapt models to their own needs.",
        n=1,
        heading="Base Model > FAQ > Why do companies release base models?",
    )
    other = entry(
        "Base Model",
        "They give teams a way to explain why a system behaves the way it does.",
        n=2,
        heading="Base Model > Explained",
    )
    question = "Why would a company release its base model?"
    ext = extractive_answer(question, [other, faq], FakeEmbedder(), max_sentences=1)
    assert "flexibility" in ext.text


def test_reference_lines_links_and_addresses_never_answer() -> None:
    ext = extractive_answer("Where can I download Bison by FTP?", [BISON], None)
    assert "ftp://" not in ext.text and "@" not in ext.text
    assert not ext.text.startswith("FTP")


def test_weights_are_a_parameter() -> None:
    """A scorer-free, typed-bonus-free reader falls back to shared words and rank."""
    flat = Weights(typed=0.0, named=0.0)
    ext = extractive_answer("Who wrote Bison?", [BISON], None, weights=flat, max_sentences=1)
    assert ext.text.startswith("It was written by Robert Corbett")  # "wrote" ~ "written"


# ------------------------------------------------------------------------------ text helpers
@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        (  # initials and abbreviations
            "Developed by D. Weinreb and D.A. Moon in 1980. An arm of the U.S. Army. Done.",
            ["Developed by D. Weinreb and D.A. Moon in 1980.", "An arm of the U.S. Army.", "Done."],
        ),
        (  # a list item's number
            "Intro.\n\n2. Econometric Software Package. Statistical.\n\n12. Other.",
            ["Intro.", "2. Econometric Software Package.", "Statistical.", "12. Other."],
        ),
        (  # an approximate date, a page range
            "A language developed ca. 1959. Rewritten c. 1970. See pp. 4-9.",
            ["A language developed ca. 1959.", "Rewritten c. 1970.", "See pp. 4-9."],
        ),
        (  # a closing quote or bracket stays with its sentence
            'He said "it is plug and play." (It was.) Then it broke.',
            ['He said "it is plug and play."', "(It was.)", "Then it broke."],
        ),
    ],
)
def test_where_a_sentence_ends(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


def test_addresses_and_links_are_not_prose() -> None:
    assert (
        strip_markup("Written by Jack Dongarra <dongarra@cs.utk.edu> in Fortran.")
        == "Written by Jack Dongarra in Fortran."
    )
    assert strip_markup("Mesa (http://mesa3d.org/) is a free OpenGL.") == "Mesa is a free OpenGL."


def test_a_numbered_sense_loses_its_number_and_its_tag() -> None:
    assert (
        strip_markup("2. <tool> A program for viewing a file.") == "A program for viewing a file."
    )


def test_a_pronunciation_and_its_parts_of_speech_are_not_prose() -> None:
    assert strip_markup("/lerp/ vi., Quasi-acronym for Linear Interpolation.") == (
        "Quasi-acronym for Linear Interpolation."
    )
    assert strip_markup("/kluj/ n., v. A clever fix.") == "A clever fix."
    assert strip_markup("n. is a letter.") == "n. is a letter."  # no pronunciation before it


def test_an_expansion_is_answered_only_by_words_spelling_it_out() -> None:
    paper = entry("Foundation Model", "The term was introduced in a 2021 Stanford CRFM paper.")
    asked = "What does the CRFM in 'Stanford CRFM' stand for?"
    assert extractive_answer(asked, [paper], FakeEmbedder()).text == ""  # nothing spells it
    centre = entry(
        "Foundation Model",
        "The term comes from the Center for Research on Foundation Models at Stanford.",
        n=1,
    )
    ext = extractive_answer(asked, [paper, centre], FakeEmbedder())
    assert ext.text.startswith("The term comes from the Center for Research") and ext.cited[0] == 2


@pytest.mark.parametrize(
    ("title", "body", "question", "answer"),
    [
        (
            "Integrated Services Digital Network",
            "(ISDN) A set of communications standards carrying voice and data over one wire.",
            "What does ISDN stand for?",
            "ISDN stands for Integrated Services Digital Network. [1]",
        ),
        (  # "AD" from "Administration"; the acronym written as the entry does
            "Administration Management Domain",
            "(ADMD) A public message handling service carrier. The ADMDs form a backbone.",
            "admd in x.400, what's that short for?",
            "ADMD stands for Administration Management Domain. [1]",
        ),
    ],
)
def test_an_entry_titled_with_the_expansion_says_so(
    title: str, body: str, question: str, answer: str
) -> None:
    ext = extractive_answer(question, [entry(title, body)], FakeEmbedder())
    assert ext.text.startswith(answer)


def test_a_when_question_opens_with_a_sentence_holding_a_year() -> None:
    """No sentence states the date as an answer ("in 1947"), but one holds it: it comes before
    the story around it, which shares more of the question's words."""
    bug = entry(
        "bug",
        "The famous moth found in the Harvard Mark II was taped into the log book. "
        "The log book page is dated September 9, 1947 and shows relay 70.",
    )
    ext = extractive_answer(
        "When was the famous moth found in the Harvard Mark II and taped into the log book?",
        [bug],
        FakeEmbedder(),
        max_sentences=1,  # the one sentence said is the one with the year
    )
    assert ext.text.startswith("The log book page is dated September 9, 1947")


def test_a_year_followed_by_an_editors_query_still_answers_when() -> None:
    """FOLDOC: "Version 1 was released in 1991 [by Microsoft?]." was read as a question, and a
    question is never an answer, so "What year did Visual Basic come out?" had no year."""
    vb = entry(
        "Visual Basic",
        "A popular event-driven visual programming system from Microsoft. It can also be used "
        "to create ActiveX and COM components. Version 1 was released in 1991 [by Microsoft?].",
    )
    ext = extractive_answer(
        "what year did the first version of Visual Basic come out?", [vb], FakeEmbedder()
    )
    assert "released in 1991. [1]" in ext.text


def test_a_sentence_ends_before_a_curly_quote() -> None:
    """The Jargon File quotes with curly marks: a sentence was glued to the quoted dialogue
    after it ("... newsgroups. “What?"), read as a question, and TANSTAAFL had no expansion."""
    assert split_sentences("It is a lunch. “What? No!” “Well, it is.” Then ‘this’. So.") == [
        "It is a lunch.",
        "“What?",
        "No!”",
        "“Well, it is.”",
        "Then ‘this’.",
        "So.",
    ]
    word = entry(
        "TANSTAAFL",
        "[acronym, from Robert Heinlein's novel The Moon is a Harsh Mistress.] “There Ain't No "
        "Such Thing As A Free Lunch”, often invoked when someone balks at a heavyweight "
        "technique. “What? Don't tell me I have to write a database!” “Well, TANSTAAFL you know.”",
    )
    ext = extractive_answer("What does TANSTAAFL stand for?", [word], FakeEmbedder())
    assert "There Ain't No Such Thing As A Free Lunch" in ext.text


def test_a_pun_is_answered_with_its_origin_and_the_short_definition() -> None:
    """A Jargon File entry: a tag and a pronunciation before the "(By analogy with ...)" note,
    then a four-word definition, which is still the entry's definition."""
    vax = entry(
        "VAXectomy",
        "<jargon> /vak-sek't*-mee/ (By analogy with \"vasectomy\") Removal of a VAX.  DEC's "
        "Microvaxen, especially, are much slower than newer RISC-based workstations.",
    )
    ext = extractive_answer(
        "what does vaxectomy mean and what word is it a pun on?", [vax], FakeEmbedder()
    )
    assert "vasectomy" in ext.text and "Removal of a VAX." in ext.text
    assert "Microvaxen" not in ext.text


def test_what_do_you_call_it_is_answered_with_the_entrys_name() -> None:
    itsp = entry(
        "Internet Telephony Service Providers",
        "(ITSPs) Companies providing IP Telephony. They include telephone companies and ISPs.",
    )
    ext = extractive_answer(
        "What do you call the companies that provide internet telephony services?",
        [itsp],
        FakeEmbedder(),
    )
    assert ext.text.startswith("Internet Telephony Service Providers: Companies providing IP")
    related = Chunk(
        "bm#3", "bm", "Base Model", "Base Model > Related terms > Baseline",
        "- **Baseline**: A reference model used to benchmark new approaches.", 0, 60, "text",
    )  # fmt: skip
    ext = extractive_answer(
        "What do you call a reference model that new approaches are benchmarked against?",
        [related],
        FakeEmbedder(),
    )
    assert ext.text.startswith("Baseline: A reference model used to benchmark new approaches.")


def test_what_do_you_call_it_names_the_entry_of_the_best_sentence_not_the_first_hit() -> None:
    """The term-list page's first item (MTU) is hit 1 by rank; the answer is in item 2."""
    items = [
        Chunk(f"net#{n}", "net", "Networking", f"Networking > Terms > {term}",
              f"- **{term}**: {text}", 0, 40, "text")
        for n, (term, text) in enumerate([
            ("MTU", "The largest packet a link can carry without fragmentation."),
            ("Jitter", "The variation in packet arrival times, which hurts voice calls."),
        ])
    ]  # fmt: skip
    ext = extractive_answer(
        "What do you call the variation in packet arrival times?", items, FakeEmbedder()
    )
    assert ext.text.startswith("Jitter: The variation in packet arrival times")


def test_people_asked_for_are_not_answered_by_an_organisation() -> None:
    paper = entry(
        "Foundation Model",
        "The term, coined by Stanford University in 2021, draws an analogy to a building.",
    )
    asked = "Who were the authors of the paper that coined the term?"
    assert extractive_answer(asked, [paper], FakeEmbedder()).text == ""  # nobody is named
    assert extractive_answer("Who coined the term?", [paper], FakeEmbedder()).text
    named = entry("Foundation Model", "The paper was written by Rishi Bommasani and others.", 1)
    ext = extractive_answer(asked, [paper, named], FakeEmbedder())
    assert ext.text.startswith("The paper was written by Rishi Bommasani") and ext.cited[0] == 2


def test_a_why_answer_goes_on_past_the_entry_description() -> None:
    """The description says what the Nightmare File System is, not why it is called so; the
    story after it does, with no cue word ("because") for the reader to find."""
    nfs = entry(
        "Nightmare File System",
        "Pejorative hackerism for Sun's Network File System. In any network of Suns with a lot "
        "of NFS file system cross-mounting, when one Sun goes down, the others freeze up.",
    )
    asked = "Why did hackers nickname NFS the Nightmare File System?"
    ext = extractive_answer(asked, [nfs], FakeEmbedder())
    assert ext.text.startswith("Pejorative hackerism") and "the others freeze up" in ext.text
    lint = entry(
        "lint",
        "A Unix C language processor which checks code. Lint is named after the bits of fluff "
        "it supposedly picks from programs. It is used on Usenet too.",
    )
    alone = Weights(following=False)
    ext = extractive_answer(
        "Why is the checker called lint?", [lint], FakeEmbedder(), weights=alone
    )
    assert "named after the bits of fluff" in ext.text and "Usenet" not in ext.text


def test_a_how_answer_goes_on_past_the_entry_description() -> None:
    """The description says what a two-phase commit is for, not how it works."""
    commit = entry(
        "two-phase commit",
        "A technique that makes a commit work across distributed databases. First every "
        "database prepares the transaction; then each is told to finish it.",
    )
    ext = extractive_answer("How does a two-phase commit work?", [commit], FakeEmbedder())
    assert ext.text.startswith("A technique that") and "prepares the transaction" in ext.text
    alone = Weights(following=False)
    said = extractive_answer(
        "How is two-phase commit pronounced?", [commit], FakeEmbedder(), weights=alone
    )
    assert "prepares the transaction" not in said.text


def test_a_name_alone_is_no_answer_but_a_short_definition_is() -> None:
    """ "Mail Transfer Agent." (an alias entry's pointer) says what MTA is called, not what it
    does; "Removal of a VAX." is a whole, short definition."""
    alias = entry("MTA", "Mail Transfer Agent.")
    mail = entry(
        "electronic mail",
        "Mail is passed to a Message Transfer Agent, a program which "
        "delivers the message locally or passes it on.",
        n=1,
    )
    ext = extractive_answer("What does an MTA actually do?", [alias, mail], FakeEmbedder())
    assert ext.text.startswith("Mail is passed to a Message Transfer Agent")
    vax = entry("vaxectomy", "Removal of a VAX.")
    assert extractive_answer("What is a vaxectomy?", [vax], FakeEmbedder()).text.startswith(
        "Removal of a VAX."
    )


def test_a_name_asked_for_is_said_even_when_no_sentence_says_it() -> None:
    """The pager entry's second sense defines it without naming it: the answer to "what do
    you call ...?" opens with the entry's name."""
    pager = entry(
        "pager",
        "An alphanumeric pager shows short messages. A program for viewing a text file one "
        "screenful at a time via a text terminal.",
        n=2,
    )
    asked = "What do you call a program that shows a text file one screenful at a time?"
    ext = extractive_answer(asked, [pager], FakeEmbedder())
    assert ext.text.startswith("pager: A program for viewing a text file")
    said = extractive_answer("What is a program for viewing text?", [pager], FakeEmbedder())
    assert said.text.startswith("A program for viewing")  # no name asked for: none added


def test_who_is_answered_with_the_name_of_an_entry_defining_itself_without_it() -> None:
    """ "WAP Forum: The official body developing Wireless Application Protocol." opens its
    entry without its name, which is the answer to "who"; a later chunk's first sentence is
    not the entry's opening, and says nothing of who its title is."""
    forum = Chunk(
        "WAP Forum#0", "WAP Forum", "WAP Forum", "WAP Forum",
        "# WAP Forum\n\n<body> The official body developing Wireless Application Protocol.",
        0, 0, "text",
    )  # fmt: skip
    asked = "Who is the official body developing the wireless application protocol?"
    ext = extractive_answer(asked, [forum], FakeEmbedder())
    assert ext.text.startswith("WAP Forum: The official body developing")
    later = replace(forum, chunk_id="WAP Forum#1")
    assert extractive_answer(asked, [later], FakeEmbedder()).text.startswith("The official")


def test_which_thing_is_answered_with_the_name_of_an_entry_defining_itself_without_it() -> None:
    """COMIT's entry opens "The first string-handling and pattern-matching language": the
    answer to "which language ...?" is the name the sentence leaves out. A question that names
    the entry already knows it, and a question asking what something is asks for no name."""
    comit = Chunk(
        "COMIT#0", "COMIT", "COMIT", "COMIT",
        "# COMIT\n\n<language> The first string-handling and pattern-matching language, "
        "designed in 1957-8 for natural language translation.",
        0, 0, "text",
    )  # fmt: skip
    asked = "Which language is credited as the first one made for handling strings?"
    assert extractive_answer(asked, [comit], FakeEmbedder()).text.startswith("COMIT: The first")
    named = "Which field was COMIT designed for, string handling or translation?"
    assert extractive_answer(named, [comit], FakeEmbedder()).text.startswith("The first")
    what = "What was the first string-handling language designed for?"
    assert extractive_answer(what, [comit], FakeEmbedder()).text.startswith("The first")


def test_a_lookup_naming_a_field_is_answered_from_that_sense() -> None:
    infinity = entry(
        "infinity",
        "1. <mathematics> The size of something infinite.\n\n2. <programming> The largest "
        "value that can be represented in a particular type of variable.\n\n(1994-11-18)",
    )
    jargon = lookup_answer([(1, infinity)], question='In programmer jargon, what is "infinity"?')
    assert jargon.text == (
        "Infinity: The largest value that can be represented in a particular type of variable. [1]"
    )
    plain = lookup_answer([(1, infinity)], question="What is infinity?")
    assert plain.text == "Infinity: The size of something infinite. [1]"
    # the term's own words name no field: "programming" in "programming language" is the term
    lang = entry("programming language", "1. <mathematics> A sense.\n\n2. <programming> Other.")
    assert asked_sense(lang.text, "What is a programming language?", lang.title) == lang.text


def test_who_prefers_a_sentence_naming_a_person_in_the_same_entry() -> None:
    """ "by the Zeta machine" holds a capitalised name, but no person's: the entry's own sentence
    naming its designers answers "who", not a title-case name in another entry."""
    zeta = entry(
        "Zeta-code",
        "Intermediate language used by the Zeta machine for graph reduction. "
        "Kari Lindqvist and Ola Berg designed it at a university in Sweden.",
    )
    omega = entry("Omega", "The Omega Parallel Reduction Machine for graph reduction.", n=1)
    question = "Who developed Zeta-code, the intermediate language for graph reduction?"
    ext = extractive_answer(question, [zeta, omega], FakeEmbedder())
    assert ext.text.startswith("Kari Lindqvist and Ola Berg designed it")


def test_a_quoted_usage_example_is_no_answer() -> None:
    """A jargon entry's example in quotes uses the word and echoes a question that quotes it
    ("the new intern is plug and play"); the splitter also cuts it at its inner full stop."""
    jargon = entry(
        "plug and play",
        'A new recruit who needs no training. "The new intern, Ada, is great. '
        "She's totally plug and play.\" Also said of hardware.",
    )
    question = "My boss said the new intern is 'totally plug and play'. What does that mean?"
    ext = extractive_answer(question, [jargon], FakeEmbedder())
    assert ext.text.startswith("A new recruit who needs no training.")
    assert "Ada" not in ext.text and "totally" not in ext.text


def test_a_later_chunk_of_the_best_entry_is_read_too() -> None:
    """The fourth passage is read only because it goes on with the first one's entry."""
    doc = "Rosetta"
    first = Chunk(f"{doc}#0", doc, doc, doc, f"# {doc}\n\nA web browser from a lab.", 0, 9, "text")
    later = Chunk(f"{doc}#3", doc, doc, doc, "It was first released in April 1993.", 0, 9, "text")
    others = [entry("Gopher", "A menu browser.", n=1), entry("Lynx", "A text browser.", n=2)]
    asked = "When was the Rosetta browser first released?"
    assert "1993" in extractive_answer(asked, [first, *others, later], FakeEmbedder()).text
    stranger = Chunk("Mosaic#3", "Mosaic", "Mosaic", "Mosaic", later.text, 0, 9, "text")
    assert "1993" not in extractive_answer(asked, [first, *others, stranger], FakeEmbedder()).text


def test_everyday_words_match_the_glossarys() -> None:
    """ "picking" a model is "selecting" one: the sentence saying how adds a question word."""
    page = entry(
        "Foundation Model",
        "For most product teams, foundation models remove the need to train anything. "
        "Selecting a foundation model involves assessing context length and licensing.",
    )
    asked = "what should i look at when picking a foundation model for our product?"
    assert "context length" in extractive_answer(asked, [page], FakeEmbedder()).text


def test_why_use_it_is_answered_by_what_it_allows() -> None:
    memmap = entry(
        "memmap",
        "A system call a program uses to map a file into memory rather than reading it. "
        "This allows the process to access bytes at random offsets without seeking.",
    )
    asked = "Why would a program use memmap on a file rather than just reading it?"
    assert extractive_answer(asked, [memmap], FakeEmbedder()).text.startswith("This allows")


def test_a_name_asked_for_is_no_clue_to_its_answer() -> None:
    """ "IBM customer discount" shares "IBM" and "customer" with the question, but a "what's
    the slang for ...?" question does not know the name it asks for: the description decides."""
    discount = entry("IBM customer discount", "A price increase.")
    seeker = entry("heatseeker", "A customer relied upon to buy the latest release.", 1)
    q = "what's the IBM slang for a customer who always buys the newest version of a product?"
    ext = extractive_answer(q, [discount, seeker], FakeEmbedder())
    assert ext.text == "heatseeker: A customer relied upon to buy the latest release. [2]"


def test_a_sentence_giving_the_name_asked_for_answers_first() -> None:
    """ "..., a property known as transfer learning" says the name asked for; it answers before
    the best passage's entry by name, and needs no "Base model:" label of its own."""
    pre = entry("Pretrained model", "A model trained on large data, reused for new tasks.")
    base = entry(
        "Base model",
        "Base models learn general patterns. They encode transferable knowledge that carries "
        "over to new tasks, a property known as transfer learning.",
        1,
    )
    q = "whats the term for when what a model learned in pretraining carries over to new tasks?"
    ext = extractive_answer(q, [pre, base], FakeEmbedder())
    assert ext.text.startswith("They encode transferable knowledge that carries over to new tasks")


def test_a_templated_entrys_padding_loses_to_its_prose() -> None:
    """ "Widget Cache matters in frontend work" shares the question's words and states nothing;
    the prose sentence answers. Without the filler weight the padding would win."""
    body = (
        "Widget Cache matters in frontend work because it changes how teams use it. "
        "A widget cache keeps rendered widgets between requests."
    )
    chunk = replace(entry("Widget Cache", body, n=1), templated=True)  # not the opening
    question = "What is a widget cache used for in frontend work?"
    answer = extractive_answer(question, [chunk], None, max_sentences=1)
    assert answer.text.startswith("A widget cache keeps rendered widgets")
    plain = extractive_answer(question, [chunk], None, max_sentences=1, weights=Weights(filler=0))
    assert plain.text.startswith("Widget Cache matters")


def test_where_a_word_comes_from_is_answered_by_its_origin() -> None:
    """The definition shares more of the question's words ("starting up a computer"), but the
    sentence saying where the word comes from answers it."""
    boot = entry(
        "bootstrap",
        "To load and initialise the operating system on a computer when starting it up. "
        'Normally abbreviated to "boot". From the curious expression "to pull oneself up by '
        "one's bootstraps\", one of the legendary feats of Baron von Munchhausen.",
    )
    question = 'Where does the word "boot" for starting up a computer come from?'
    answer = extractive_answer(question, [boot], FakeEmbedder(), max_sentences=1)
    assert answer.text.startswith("From the curious expression")


def test_a_year_of_the_entry_before_the_year_of_a_work_cited() -> None:
    """ "E.C. Haines, 1964." is when TREET was made; the paper cited on it is from 1971."""
    treet = entry(
        "TREET",
        "E.C. Haines, 1964. An experimental variant of LISP1.5, implemented on the STRETCH "
        'computer. ["The TREET Time-Sharing System", H.A. Bayard et al, ACM (Mar 1971)].',
    )
    question = "When was the TREET time-sharing system made?"
    answer = extractive_answer(question, [treet], FakeEmbedder(), max_sentences=1)
    assert "1964" in answer.text and "1971" not in answer.text


def test_what_and_when_brings_the_entrys_first_prose_after_its_year() -> None:
    """ "What was WFL, and when did it appear?": the note with the year answers "when", and the
    entry's first prose sentence (its opening is only a name) says what it was."""
    wfl = entry(
        "WFL",
        "Work Flow Language. Burroughs, ca 1973. A job control language for the B6700 under "
        "MCP. WFL was a compiled block-structured language similar to ALGOL 60.",
    )
    answer = extractive_answer("What was Burroughs' WFL, and when did it appear?", [wfl], None)
    assert "1973" in answer.text and "A job control language" in answer.text


@pytest.mark.parametrize(
    ("question", "title", "other"),
    [
        ("For the MPC Level 2 spec, how much RAM?", "MPC Level 1 Specification", True),
        ("For the MPC Level 2 spec, how much RAM?", "MPC Level 2 Specification", False),
        ("Was Python 3 slow?", "Python 2", True),
        ("What is Windows 95?", "Windows NT", False),  # no version to differ in
        ("what is a level 3 cache?", "cache", False),
    ],
)
def test_another_version_of_the_named_thing(question: str, title: str, other: bool) -> None:
    assert other_version(question, title) is other


def test_the_asked_version_answers_before_another_versions_entry() -> None:
    """Both entries hold minimum requirements; retrieval ranked Level 1's first."""
    level1 = entry(
        "MPC Level 1 Specification", "Minimum requirements are a 386SX with 2 MB of RAM."
    )
    level2 = entry(
        "MPC Level 2 Specification", "Minimum requirements are a 486SX with 4 MB of RAM."
    )
    question = "For the MPC Level 2 spec, what were the minimum requirements?"
    answer = extractive_answer(question, [level1, level2], None, max_sentences=1)
    assert "486SX" in answer.text
    plain = extractive_answer(question, [level1, level2], None, 1, weights=Weights(version=0))
    assert "386SX" in plain.text


def test_another_name_is_answered_from_the_dictionarys_note() -> None:
    """FOLDOC gives another name in a note the prose leaves out: '(Or "single-electron
    transistor")'; "what else is it called?" is answered by it."""
    dot = entry(
        "quantum dot",
        '<physics> (Or "single-electron transistor") A location capable of containing a single '
        "electrical charge. Physically, quantum dots are nanometer-size semiconductor "
        "structures that store information.",
    )
    answer = extractive_answer("what else are quantum dots called?", [dot], None)
    assert answer.text.startswith('Quantum dot is also called "single-electron transistor".')
    plain = extractive_answer("what are quantum dots?", [dot], None)
    assert "also called" not in plain.text


def test_a_question_naming_another_name_is_answered_by_the_note() -> None:
    """The Jargon File's "(Also called nagware)" answers "Is annoyware the same as nagware?";
    a note without "called" names nothing ("(or more)")."""
    nag = entry(
        "annoyware",
        "A type of shareware that disrupts the program to ask for payment. (Also called "
        "nagware) The requests need the user to act (or more) before work goes on.",
    )
    answer = extractive_answer("Is annoyware the same thing as nagware?", [nag], None)
    assert "Annoyware is also called nagware." in answer.text
    more = extractive_answer("is annoyware called more?", [nag], None)
    assert "also called more" not in more.text
    # a question saying the other name knows it: "what is X (also called Y)?" asks for X
    said = "what is annoyware (sometimes called nagware) made for?"
    assert not any("also called" in c.text for c in candidates(said, asked_types(said), [nag], 3))
    assert split_sentences("n.\n\n[from R] Formerly IBM.") == ["[from R] Formerly IBM."]


OCCAM_2 = entry(
    "occam 2",
    "<language> An extension of occam produced in 1987. Occam 2 adds floating-point, "
    "functions and a type system. See also occam.",
)
OCCAM = entry("occam", "A language based on CSP, developed to run on the INMOS transputer.", n=1)


@pytest.mark.parametrize("parts", [1.0, 3.0])
def test_a_second_part_of_the_question_gets_its_sentence_from_the_same_entry(parts: float) -> None:
    """ "When did it come out, and what did it add?": the year's sentence answers first, and
    the entry's sentence on what it adds scores far below it, yet answers the second part."""
    question = "When was occam 2 produced, and what did it add?"
    ext = extractive_answer(
        question, [OCCAM_2, OCCAM], FakeEmbedder(), weights=Weights(parts=parts)
    )
    assert ext.text.startswith(
        "An extension of occam produced in 1987 [1]."
    ) or ext.text.startswith("An extension of occam produced in 1987. [1]")
    assert "adds floating-point" in ext.text  # by its score (parts > 1), or as the closest
    # sentence of the entry to "what did it add?" (chatbot/parts.py)


def test_a_term_list_item_defining_another_term_is_marked_for_a_lookup() -> None:
    """ "Fine-Tuning: Adapting a pre-trained model ..." says "pre-trained" but defines
    fine-tuning: to "what is pre-training?" it would be a wrong definition (it scores lower)."""
    text = "- **Fine-Tuning**: Adapting a pre-trained model to a specific task on new data."
    item = Chunk("g#3", "g", "Base Model", "Base Model > Fine-Tuning", text, 0, len(text), "text")
    prose = entry("Base Model", "Base models are pre-trained on trillions of tokens of text.", 1)
    cands = candidates("what is pre-training?", ["other"], [item, prose], 3)
    assert cands[0].text.startswith("Fine-Tuning: Adapting")
    assert _defines_another(cands[0], lookup_term("what is pre-training?"))
    assert not _defines_another(cands[0], lookup_term("what does fine-tuning mean?"))
    assert not _defines_another(cands[0], None)  # no lookup question
    assert not _defines_another(cands[1], "pre-training")  # prose defines nothing


def test_a_price_asked_of_a_named_entry_comes_from_that_entry() -> None:
    """Another machine's price is no answer to what the JOHNNIAC cost: refused, not guessed."""
    johnniac = entry("JOHNNIAC", "A mainframe computer built at RAND. It ran from 1953 to 1966.")
    univac = entry("Datamatic 1000", "A computer of 25 tons that cost $1.5 million.", n=1)
    asked = "What did it cost to build the JOHNNIAC?"
    assert extractive_answer(asked, [johnniac, univac], FakeEmbedder()).text == ""
    priced = entry("JOHNNIAC", "A mainframe computer built at RAND. It cost $470,000 to build.")
    ext = extractive_answer(asked, [priced, univac], FakeEmbedder())
    assert ext.text.startswith("It cost $470,000") and ext.cited == [1]
    # no entry named: a price anywhere in the passages read may answer
    loose = extractive_answer("What did the big 25-ton computer cost?", [univac], FakeEmbedder())
    assert "$1.5 million" in loose.text


def test_a_clock_rate_of_a_named_entry_may_come_from_a_sentence_naming_it() -> None:
    """The clock rate entry says what the original IBM PC ran at: its sentence names the PC."""
    pc = entry("IBM PC", "A personal computer sold by IBM from 1981.")
    rate = entry("clock rate", "The original IBM PC had a clock rate of 4.77 MHz.", n=1)
    other = entry("Intel 486", "A processor that ran at 50 MHz in some models.", n=2)
    ext = extractive_answer("What clock speed did the IBM PC run at?", [pc, rate], FakeEmbedder())
    assert "4.77 MHz" in ext.text and ext.cited == [2]
    asked = "How fast was the IBM PC clocked, in MHz?"
    assert extractive_answer(asked, [pc, other], FakeEmbedder()).text == ""
    # the entry a question names by the word it asks for ("port") is no thing a sentence names
    port = entry("port", "Each application program has a unique port number.")
    ephemeral = entry("ephemeral port", "BSD used ports 1024 through 4999 as ephemeral.", n=1)
    sftp = "What TCP port does SFTP listen on by default?"
    assert extractive_answer(sftp, [port, ephemeral], FakeEmbedder()).text == ""


def test_a_term_is_named_by_the_entry_defining_it_not_by_a_later_passage() -> None:
    """The best sentence for "what's the slang word for a linear interpolation?" sits in the
    middle of the interpolation entry; the term asked for is the entry that opens by defining
    it, not the title of the passage that scored best."""
    later = entry(
        "extrapolation",
        "The simplest form of interpolation draws a straight line (a linear interpolation) "
        "between the two nearest points.",
        n=2,
    )
    lerp = entry("LERP", "/lerp/ vi., Quasi-acronym for Linear Interpolation, used as a verb.")
    asked = "whats the hacker slang word for doing a linear interpolation between two points?"
    ext = extractive_answer(asked, [later, lerp], FakeEmbedder())
    assert ext.text.startswith("LERP: Quasi-acronym for Linear Interpolation")


def test_a_term_defined_by_the_best_passage_keeps_that_entry() -> None:
    """When the best passage opens its entry, that entry names the term, though another
    entry's definition is read too."""
    computron = entry(
        "computron",
        "A mythical subatomic particle that carries computation or information, in much the "
        "same way that an electron carries electric charge. Compare bogon.",
    )
    electron = entry("electron", "A sub-atomic particle with a negative quantised charge.", 1)
    asked = "whats the jokey name for a made-up subatomic particle that carries computation?"
    ext = extractive_answer(asked, [computron, electron], FakeEmbedder())
    assert ext.text.startswith("computron: A mythical subatomic particle")


def test_a_lone_answer_sentence_keeps_the_next_one_of_its_passage() -> None:
    """ "What kinds of featurectomy are there?": the definition answers best, and the kinds
    are in the sentence after it, which shares no word with the question. Not for a yes/no
    question: its settling sentence is chosen on its own."""
    cut = entry(
        "featurectomy",
        "The act of removing a feature from a program. "
        "They come in two flavors, the righteous and the reluctant. "
        "See also feature creep.",
    )
    asked = "what kinds of featurectomy are there?"
    ext = extractive_answer(asked, [cut], FakeEmbedder())
    assert ext.text == (
        "The act of removing a feature from a program. [1] "
        "They come in two flavors, the righteous and the reluctant. [1]"
    )
    alone = extractive_answer(asked, [cut], FakeEmbedder(), weights=Weights(following=False))
    assert "righteous" not in alone.text
    yesno = extractive_answer("Is a featurectomy the removal of a feature?", [cut], FakeEmbedder())
    assert "righteous" not in yesno.text
