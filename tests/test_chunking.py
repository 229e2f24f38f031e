"""Heading-aware chunking.

What matters downstream: a citation points at an exact span of the file (offsets are exact), a
retrieved FAQ chunk carries its own question and never a neighbour's answer, and no content of a
section is lost or emitted twice as a useless duplicate chunk. These are checked on the real
corpus and, with hypothesis, on generated Markdown that stresses the size limits.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatbot.chunking import (
    FAQ_MAX_FACTOR,
    NOTES_MAX,
    Chunk,
    Chunker,
    Section,
    parse_sections,
    templated,
)
from chatbot.corpus import Document
from chatbot.entries import TERM_ITEM
from chatbot.readers import load_corpus, parse_document

REAL_CORPUS = Path(__file__).resolve().parent.parent / "corpus"
PARAMS = [(500, 100), (300, 50), (200, 100), (120, 0), (100, 60), (60, 40)]


def doc_of(text: str, name: str = "doc.md") -> Document:
    return parse_document(Path(name), text.encode())


def section_of(chunk: Chunk, sections: list[Section]) -> Section:
    """The one section holding the chunk; fails if the chunk crosses a section boundary."""
    holders = [s for s in sections if s.start <= chunk.start and chunk.end <= s.end]
    assert len(holders) == 1, f"chunk {chunk.chunk_id} {chunk.start}:{chunk.end} straddles"
    return holders[0]


def answer_start(doc: Document, sec: Section) -> int:
    """Offset of the first non-space character after a section's heading line."""
    nl = doc.text.find("\n", sec.start, sec.end)
    if nl < 0:
        return sec.end
    pos = nl
    while pos < sec.end and doc.text[pos].isspace():
        pos += 1
    return pos


def check_invariants(doc: Document, chunker: Chunker) -> list[Chunk]:
    """Every structural promise of the chunker, for one document."""
    chunks = chunker.run(doc)
    sections = parse_sections(doc)
    by_section: dict[int, list[Chunk]] = {}
    for i, ch in enumerate(chunks):
        assert ch.chunk_id == f"{doc.doc_id}#{i}"
        assert ch.doc_id == doc.doc_id and ch.title == doc.title
        # offsets are exact, and a chunk never begins or ends in whitespace
        assert ch.text == doc.text[ch.start : ch.end]
        assert ch.text and ch.text == ch.text.strip()
        assert ch.start >= doc.body_start
        sec = section_of(ch, sections)
        by_section.setdefault(sec.start, []).append(ch)
        # the heading path travels with the chunk; an item of a term list adds its term
        path = " > ".join(sec.path) if sec.path else doc.title
        items = [m.group(1).strip() for ln in ch.text.split("\n") if (m := TERM_ITEM.match(ln))]
        assert ch.heading == path or (len(items) == 1 and ch.heading == f"{path} > {items[0]}")
        assert ch.kind == ("faq" if sec.is_faq_entry() else "text")
        limit = chunker.size * (FAQ_MAX_FACTOR if ch.kind == "faq" else 1)
        first = ch.start == sec.start and sec.level > 0
        # a section's first chunk may exceed the limit only by its own heading line: a heading
        # alone in a chunk (an entry title, an FAQ question) carries no content
        over = answer_start(doc, sec) - sec.start if first else 0
        notes = re.match(r"(.*?)(?:\n[ \t]*\n|$)", doc.text[sec.start + over : sec.end], re.S)
        if first and notes and len(notes.group(1).strip()) <= NOTES_MAX:
            over += notes.end()  # and a notes line after it ("/T'rof/, n.")
        assert len(ch.text) - over <= limit

    for sec in sections:
        mine = by_section.get(sec.start, [])
        content = [i for i in range(sec.start, sec.end) if not doc.text[i].isspace()]
        heading_only = sec.level > 0 and answer_start(doc, sec) >= sec.end
        if heading_only:
            assert mine == [], "a bare heading is not a chunk"
            continue
        # nothing in the section is lost
        covered = {i for ch in mine for i in range(ch.start, ch.end)}
        assert set(content) <= covered, f"lost text in section {sec.path}"
        for prev, nxt in itertools.pairwise(mine):
            # each chunk moves forward: no chunk is a sub-span of its predecessor
            assert nxt.start > prev.start and nxt.end > prev.end
            assert prev.end - nxt.start <= chunker.overlap
        if sec.is_faq_entry():
            # the question and the start of its answer are in the same chunk
            assert mine[0].start == sec.start
            assert mine[0].end > answer_start(doc, sec)
    return chunks


@pytest.fixture(scope="module")
def real_docs() -> list[Document]:
    return load_corpus(REAL_CORPUS).documents


@pytest.mark.parametrize(("size", "overlap"), PARAMS)
def test_real_corpus_chunks_keep_every_invariant(
    real_docs: list[Document], size: int, overlap: int
) -> None:
    for doc in real_docs:
        check_invariants(doc, Chunker(size, overlap))


def test_real_faq_chunk_holds_question_and_answer(real_docs: list[Document]) -> None:
    doc = next(d for d in real_docs if d.doc_id == "base-model-insertchat")
    chunks = Chunker().run(doc)
    q = "Can you use a base model directly for a chatbot?"
    (faq,) = [c for c in chunks if c.question == q]
    assert faq.kind == "faq"
    assert faq.heading == f"Base Model > Frequently asked questions > {q}"
    assert faq.text.startswith(f"### {q}\n")
    assert "Base models are not ideal for chatbots" in faq.text
    # ... and nothing of the next question
    assert "Why do companies release base models?" not in faq.text
    assert faq.body_without_heading().startswith("Base models are not ideal")
    assert faq.embed_text().startswith(f"Base Model | {faq.heading}\n")


def test_faq_chunks_never_contain_two_questions(real_docs: list[Document]) -> None:
    for doc in real_docs:
        for size, overlap in PARAMS:
            for ch in Chunker(size, overlap).run(doc):
                if ch.kind == "faq":
                    assert len(re.findall(r"^#{1,6} ", ch.text, re.MULTILINE)) <= 1


def test_small_size_splits_faq_answer_but_question_stays_with_its_start(
    real_docs: list[Document],
) -> None:
    doc = next(d for d in real_docs if d.doc_id == "base-model-insertchat")
    chunks = [c for c in Chunker(100, 20).run(doc) if c.kind == "faq"]
    q = "Can you use a base model directly for a chatbot?"
    parts = [c for c in chunks if c.question == q]
    assert len(parts) > 1  # the ~600-char answer cannot fit 3 x 100
    assert parts[0].text.startswith(f"### {q}")
    assert "Base models are not ideal" in parts[0].text
    assert all(not p.text.startswith("###") for p in parts[1:])


def test_run_on_faq_answer_longer_than_the_limit_keeps_the_question() -> None:
    """An answer whose first unit alone fills the limit once left the question alone."""
    answer = " ".join(["word"] * 200)  # one 999-char 'sentence' with no punctuation
    doc = doc_of(f"# T\n\n## FAQ\n\n### Is this a long question?\n\n{answer}\n")
    chunks = check_invariants(doc, Chunker(100, 20))
    assert chunks[0].text.startswith("### Is this a long question?\n\nword word")


def test_overlap_never_makes_a_chunk_that_adds_nothing() -> None:
    doc = doc_of("# T\n\n## S\n\n" + "a" * 40 + ".\n\n" + "b" * 20 + ".\n\n" + "c " * 45 + "\n")
    chunks = check_invariants(doc, Chunker(100, 50))
    spans = [(c.start, c.end) for c in chunks]
    for a, b in itertools.pairwise(spans):
        assert not (a[0] <= b[0] and b[1] <= a[1])


def test_closing_bracket_after_a_sentence_stays_with_it() -> None:
    doc = doc_of(
        "# T\n\nFirst sentence is here (really.) Second sentence is long enough to need its "
        'own chunk, yes. "Quoted end.") Next one.\n'
    )
    texts = [c.text for c in check_invariants(doc, Chunker(60, 0))]
    assert texts[0].endswith("(really.)")
    assert any(t.startswith('"Quoted end.")') for t in texts)


def test_a_long_paragraph_is_cut_between_sentences_not_after_an_abbreviation() -> None:
    """The Jargon File's "marketroid" chunk ended "... marketing department, esp." and the
    answer with it: chunking cut at any full stop, the answers' splitter only before a
    sentence (one splitter now serves both)."""
    doc = doc_of(
        "# marketroid\n\nA word for people in one company department. A member of a "
        "company's marketing department, esp. one who promises features. Derogatory.\n"
    )
    texts = [c.text for c in check_invariants(doc, Chunker(120, 0))]
    assert not any(t.endswith("esp.") for t in texts)
    assert any(t.startswith("A member") and "esp. one who" in t for t in texts)


def test_overlap_repeats_the_tail_of_the_previous_chunk() -> None:
    paras = "\n\n".join(f"Paragraph {i} says something short." for i in range(12))
    doc = doc_of(f"# T\n\n{paras}\n")
    chunks = check_invariants(doc, Chunker(120, 60))
    assert len(chunks) > 2
    overlapping = [a.end - b.start for a, b in itertools.pairwise(chunks)]
    assert any(o > 0 for o in overlapping)
    no_overlap = check_invariants(doc, Chunker(120, 0))
    assert all(a.end <= b.start for a, b in itertools.pairwise(no_overlap))


def test_text_before_first_heading_uses_document_title() -> None:
    doc = doc_of("---\ntitle: Titled\n---\nLead paragraph.\n\n# Titled\n\nBody.\n")
    chunks = check_invariants(doc, Chunker())
    assert chunks[0].text == "Lead paragraph."
    assert chunks[0].heading == "Titled"


def test_heading_inside_code_fence_is_not_a_section() -> None:
    doc = doc_of("# T\n\n## Code\n\n```\n# not a heading\n```\n\nAfter.\n")
    paths = [s.path for s in parse_sections(doc)]
    assert ("T", "not a heading") not in paths
    assert paths == [("T",), ("T", "Code")]


def test_question_heading_outside_an_faq_section_is_plain_text() -> None:
    doc = doc_of("# T\n\n## Overview\n\n### Why bother?\n\nBecause.\n\n## FAQ\n\n### How?\n\nSo.\n")
    kinds = {c.heading: c.kind for c in check_invariants(doc, Chunker())}
    assert kinds["T > Overview > Why bother?"] == "text"
    assert kinds["T > FAQ > How?"] == "faq"


def test_params_identify_the_chunking() -> None:
    assert Chunker(500, 100).params() == Chunker(500, 100).params()
    assert Chunker(500, 100).params() != Chunker(400, 100).params()
    assert Chunker(500, 100).params() != Chunker(500, 50).params()
    assert Chunker(500, 100).params()["size"] == 500


@pytest.mark.parametrize(("size", "overlap"), [(49, 0), (100, 100), (100, 150), (100, -1)])
def test_invalid_sizes_are_rejected(size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        Chunker(size, overlap)


# ------------------------------------------------------------------------------ generated docs

WORDS = st.sampled_from(["model", "base", "the", "data", "fine-tuning", "LoRA", "a", "x" * 70])
SENTENCE = st.builds(
    lambda ws, end: " ".join(ws) + end,
    st.lists(WORDS, min_size=1, max_size=40),
    st.sampled_from([".", "?", "!", ".)", '."', "", ":"]),
)
PARAGRAPH = st.builds(
    lambda ss, sep: sep.join(ss),
    st.lists(SENTENCE, min_size=1, max_size=6),
    st.sampled_from([" ", "\n"]),
)
BODY = st.builds("\n\n".join, st.lists(PARAGRAPH, min_size=0, max_size=4))
# Questions stay under 150 characters, the smallest FAQ limit (3 x 50): a heading longer than a
# whole chunk cannot share a chunk with anything and is cut like text (a known, unrealistic case).
QUESTION = st.builds(
    lambda ws: " ".join(ws) + "?",
    st.lists(
        st.sampled_from(["model", "base", "the", "data", "fine-tuning", "LoRA"]),
        min_size=1,
        max_size=12,
    ),
)


@st.composite
def markdown(draw: st.DrawFn) -> str:
    parts = []
    if draw(st.booleans()):
        parts.append("---\ntitle: Generated\nterms: [Gen]\n---")
    parts.append(draw(BODY))
    parts.append("# Generated")
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["text", "faq", "deep"]))
        if kind == "faq":
            parts.append("## Frequently asked questions")
            for _ in range(draw(st.integers(1, 3))):
                parts.append("### " + draw(QUESTION))
                parts.append(draw(BODY))
        elif kind == "deep":
            parts.append("### Sub heading")
            parts.append(draw(BODY))
        else:
            parts.append("## Section " + draw(st.sampled_from(["One", "Two"])))
            parts.append(draw(BODY))
    return "\n\n".join(parts) + draw(st.sampled_from(["", "\n", "\n\n"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=markdown(), size=st.integers(50, 400), frac=st.floats(0.0, 0.95))
def test_generated_documents_keep_every_invariant(text: str, size: int, frac: float) -> None:
    if not text.strip() or not text.strip().strip("-").strip():
        return
    try:
        doc = doc_of(text)
    except ValueError:
        return  # e.g. front matter only: the corpus loader skips such a file
    check_invariants(doc, Chunker(size, int(size * frac)))


def test_an_entry_title_is_never_alone_in_a_chunk() -> None:
    """A title followed by a paragraph longer than the chunk size: the first chunk must still
    hold the start of the definition, or a lookup has nothing to quote."""
    body = "A compiler turns source code into machine code. " * 20
    doc = Document(
        "c", Path("c.md"), "compiler", "x", ("compiler",), f"# compiler\n\n{body}\n", 0, ""
    )
    first = Chunker(300, 50).run(doc)[0]
    assert first.text.startswith("# compiler\n\nA compiler turns source code")


RELATED = """# Base Model

A pre-trained model used as a starting point.

## Related terms

- **Baseline**: A reference model used to benchmark new approaches.
- **Fine-Tuning**: Adapting a pre-trained model to a task
  by continuing training on new data.
- **Transfer Learning**: Reusing a model trained on one task for another.
"""


def test_each_item_of_a_term_list_section_is_a_chunk_named_by_its_term() -> None:
    doc = doc_of(RELATED)
    chunks = check_invariants(doc, Chunker(400, 80))
    items = [c for c in chunks if "Related terms" in c.heading]
    assert [c.heading for c in items] == [
        "Base Model > Related terms > Baseline",
        "Base Model > Related terms > Fine-Tuning",
        "Base Model > Related terms > Transfer Learning",
    ]
    assert items[0].text.startswith("## Related terms")  # the heading line is kept
    assert items[1].text.endswith("by continuing training on new data.")  # its continuation
    assert items[1].body_without_heading().startswith("- **Fine-Tuning**")


@pytest.mark.parametrize(
    "change",
    [
        ("## Related terms\n", "## Related terms\n\nSee also these terms.\n"),  # other text
        ("Reusing a model", "Reusing " + "a model " * 60),  # an item over the limit
        ("- **Baseline**: A reference model used to benchmark new approaches.\n", ""),  # two
    ],
)
def test_a_section_with_more_than_term_items_is_packed_as_before(change: tuple[str, str]) -> None:
    doc = doc_of(RELATED.replace(*change))
    chunks = check_invariants(doc, Chunker(400, 80))
    assert {c.heading for c in chunks if "Related" in c.heading} == {"Base Model > Related terms"}


SEO_PAGE = """# Widget Cache

A widget cache is a store of rendered widgets kept between requests.

Widget Cache matters in frontend work because it changes how teams evaluate quality. The useful
question is which trade-off the concept changes in production. A widget cache is invalidated
when its widget's data changes.
"""


def test_a_template_writing_the_name_in_title_case_marks_the_entry_templated() -> None:
    """SEO pages paste "Widget Cache" into padding sentences while their prose says "a widget
    cache"; a proper name is never written in lower case, and the opening alone is prose."""
    assert templated(doc_of(SEO_PAGE))
    assert all(c.templated for c in Chunker(size=200, overlap=0).run(doc_of(SEO_PAGE)))
    proper = "# Fibre Link\n\nFibre Link is a standard. Fibre Link was made by ANSI in 1994.\n"
    assert not templated(doc_of(proper))
    opening_only = "# Widget Cache\n\nWidget Cache: a store. A widget cache is kept in memory.\n"
    assert not templated(doc_of(opening_only))
    assert not templated(doc_of("# Cache\n\nCache is a store. Cache matters. A cache is fast.\n"))


@pytest.mark.parametrize(
    ("question", "as_word", "by_name"),
    [
        ("According to InsertChat, what is a base model?", True, True),
        ("what does the insertchat page say?", True, True),  # lower case, but before "page"
        ("what does insertchat say?", True, False),  # a word, not written as a name
        ("is the insertchat explanation right?", True, False),
        ("Which Base Model page is it?", False, False),  # words of the entry's title
        ("InsertChat says what?", True, True),  # first, but a name: a capital inside
        ("Insertchat says what?", True, False),  # first: capitalised as any first word
    ],
)
def test_a_question_names_a_page_by_a_word_of_its_file_name(
    question: str, as_word: bool, by_name: bool
) -> None:
    page = Chunk(
        "base-model-insertchat#0",
        "base-model-insertchat",
        "Base Model",
        "Base Model",
        "text",
        0,
        4,
        "text",
        file="base-model-insertchat.md",
    )
    assert page.page_named_in(question) is as_word
    assert page.page_named_in(question, by_name=True) is by_name


def test_a_capitalised_word_starting_another_name_names_no_page() -> None:
    """The foundation-model glossary page is not named by "Foundation Model", a term."""
    page = Chunk(
        "glossary#0", "glossary", "Base Model", "Base Model", "text", 0, 4, "text",
        file="base-model-foundation-model-glossary.md",
    )  # fmt: skip
    assert not page.page_named_in("How does it define 'Foundation Model'?", by_name=True)
    assert page.page_named_in("What does the Glossary page say?", by_name=True)
    # a sentence's first word is capitalised anyway
    assert not page.page_named_in("Foundation models learn grammar. Glossary?", by_name=True)
    assert page.page_named_in("Foundation models learn grammar, the Glossary says", by_name=True)


def test_a_notes_line_stays_with_the_definition_after_it() -> None:
    """The Jargon File's "troff /T'rof/, n." fits no unit beside its long first sentence: a
    first chunk of the title and notes alone held no definition, and retrieval ranked it."""
    definition = "[Unix] A formatting program, " + "and a typesetter, " * 12 + "by Joseph Ossanna."
    chunker = Chunker(size=200, overlap=40)
    doc = doc_of(f"# troff\n\n/T'rof/, /trof/, n.\n\n{definition}\n\nA second paragraph.\n")
    first = chunker.run(doc)[0]
    assert first.text.startswith("# troff\n\n/T'rof/") and "typesetter" in first.text
    # a short definition is no notes line: it keeps a chunk of its own
    short = doc_of(f"# Mosaic\n\nNCSA's browser for the web, a client.\n\n{definition}\n")
    assert chunker.run(short)[0].text == "# Mosaic\n\nNCSA's browser for the web, a client."
