"""Hybrid retrieval: dense + BM25 fused by reciprocal rank fusion, and the relevance gate.

The fusion arithmetic is checked on a tiny hand-made index where every rank is known; the
modes and the off-topic gate on the real corpus with the deterministic FakeEmbedder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from chatbot.chunking import Chunk, Chunker
from chatbot.index import IndexStore, LoadedIndex, make_faiss_index
from chatbot.retrieve import Retriever
from chatbot.terms import Lookup, TermIndex
from chatbot.text import asked_sentence, proper_names
from tests.fakes import FakeEmbedder

FAQ_Q = "Can you use a base model directly for a chatbot?"
FAQ_ID = "base-model-insertchat"


@pytest.fixture
def real_index(tmp_path: Path, corpus_dir: Path) -> LoadedIndex:
    store = IndexStore(tmp_path / "index", FakeEmbedder(), Chunker())
    store.build(corpus_dir)
    return store.load()


def retriever(index: LoadedIndex, **kw: object) -> Retriever:
    kw.setdefault("relevance_threshold", 0.2)  # the FakeEmbedder's cosine scale
    return Retriever(index, FakeEmbedder(), **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ tiny index


class StubEmbedder:
    """Returns hand-picked query vectors, so dense ranks are known exactly."""

    name = "stub"

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    @property
    def dim(self) -> int:
        return 4

    def fingerprint(self) -> str:
        return "stub"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.array([self.vectors[t] for t in texts], dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def tiny_index(texts: list[str], vectors: list[list[float]]) -> LoadedIndex:
    chunks = [
        Chunk(f"d#{i}", "d", "T", "H", text, 0, len(text), "text") for i, text in enumerate(texts)
    ]
    vecs = np.array(vectors, dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    manifest = {"build_id": "tiny", "fingerprint": "tiny"}
    return LoadedIndex(Path("tiny"), manifest, chunks, vecs, make_faiss_index(vecs, "flat"))


# Dense ranks for "zebra": d0 > d1 > d2 > d3.  BM25 ranks: d2 > d3 (others have no "zebra").
TINY_TEXTS = ["lion", "tiger", "zebra zebra zebra stripes", "zebra among many other animals"]
TINY_VECS = [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
TINY_Q = {"zebra": [3, 1, 0, 0], "lion tiger": [0, 0, 0, 1]}


def tiny(**kw: object) -> Retriever:
    kw.setdefault("relevance_threshold", 0.5)
    return Retriever(tiny_index(TINY_TEXTS, TINY_VECS), StubEmbedder(TINY_Q), **kw)  # type: ignore[arg-type]


def test_single_modes_on_the_tiny_index() -> None:
    dense = tiny(mode="dense", top_k=4).run("zebra")
    assert [h.chunk.chunk_id for h in dense.hits] == ["d#0", "d#1", "d#2", "d#3"]
    q = np.array([3, 1, 0, 0]) / np.sqrt(10)
    assert [h.score for h in dense.hits] == pytest.approx(
        [float(q @ v) for v in tiny_index(TINY_TEXTS, TINY_VECS).vectors], abs=1e-6
    )
    assert all(h.bm25_score is None for h in dense.hits)

    bm25 = tiny(mode="bm25", top_k=4).run("zebra")
    assert [h.chunk.chunk_id for h in bm25.hits] == ["d#2", "d#3"]  # zero-score chunks dropped
    assert bm25.hits[0].bm25_score == bm25.hits[0].score > bm25.hits[1].score > 0
    assert all(h.dense_score is not None for h in bm25.hits)  # cosine filled in for display


def test_rrf_fuses_ranks_not_scores() -> None:
    hits = tiny(mode="hybrid", top_k=4, rrf_k=60, dense_weight=1.0).run("zebra").hits
    # d2: dense rank 3 + bm25 rank 1; d3: dense 4 + bm25 2; d0: dense 1; d1: dense 2
    assert [h.chunk.chunk_id for h in hits] == ["d#2", "d#3", "d#0", "d#1"]
    expected = [1 / 63 + 1 / 61, 1 / 64 + 1 / 62, 1 / 61, 1 / 62]
    assert [h.score for h in hits] == pytest.approx(expected)
    assert [h.rank for h in hits] == [0, 1, 2, 3]
    assert hits[0].dense_score == pytest.approx(1 / np.sqrt(10), abs=1e-6)
    assert hits[2].bm25_score is None


def test_dense_weight_and_rrf_k_shift_the_fusion() -> None:
    # a tiny rrf_k makes rank differences count: d2 = 1/4 + 1/2 beats d0 = 1/2
    hits = tiny(mode="hybrid", top_k=4, rrf_k=1, dense_weight=1.0).run("zebra").hits
    assert [(h.chunk.chunk_id, h.score) for h in hits] == [
        ("d#2", pytest.approx(1 / 4 + 1 / 2)),
        ("d#3", pytest.approx(1 / 5 + 1 / 3)),
        ("d#0", pytest.approx(1 / 2)),
        ("d#1", pytest.approx(1 / 3)),
    ]
    # weighted 10x, the dense list wins: d0 = 10/2 over d2 = 10/4 + 1/2
    hits = tiny(mode="hybrid", top_k=4, rrf_k=1, dense_weight=10.0).run("zebra").hits
    assert [h.chunk.chunk_id for h in hits] == ["d#0", "d#1", "d#2", "d#3"]
    assert [h.score for h in hits] == pytest.approx([5, 10 / 3, 10 / 4 + 1 / 2, 10 / 5 + 1 / 3])


def test_equal_fused_scores_break_ties_by_position() -> None:
    # dense prefers d1 then d0; BM25 prefers d0 then d1: both fuse to 1/61 + 1/62
    index = tiny_index(["apple apple", "apple pear plum fig"], [[1, 0, 0, 0], [0, 1, 0, 0]])
    r = Retriever(index, StubEmbedder({"apple": [1, 2, 0, 0]}), top_k=2, relevance_threshold=0.1)  # type: ignore[arg-type]
    hits = r.run("apple").hits
    assert hits[0].score == pytest.approx(hits[1].score)
    assert [h.chunk.chunk_id for h in hits] == ["d#0", "d#1"]


def test_candidates_limit_each_retriever() -> None:
    hits = tiny(mode="hybrid", top_k=4, candidates=1).run("zebra").hits
    # candidates is raised to top_k, so all four are still reachable
    assert len(hits) == 4
    r = tiny(mode="dense", top_k=1, candidates=1)
    assert [h.chunk.chunk_id for h in r.run("zebra").hits] == ["d#0"]


def test_relevance_gate_on_dense_cosine_or_lexical_coverage() -> None:
    assert tiny(relevance_threshold=0.9).run("zebra").covered  # cosine 0.949
    # cosine too low and only one term: not relevant
    assert not tiny(relevance_threshold=0.96).run("zebra").covered
    # "lion tiger": dense is orthogonal to everything (cosine 0) ...
    r = tiny(relevance_threshold=0.5, lexical_coverage=0.5).run("lion tiger")
    assert r.best_dense == pytest.approx(0.0, abs=1e-6)
    # ... but the best BM25 hit holds half of the terms, which meets lexical_coverage=0.5
    assert r.lexical_coverage == pytest.approx(0.5)
    assert r.covered
    assert not tiny(relevance_threshold=0.5, lexical_coverage=0.75).run("lion tiger").covered


def test_a_question_in_context_is_also_searched_by_its_asked_sentence() -> None:
    """The context sentence pulls the whole question's vector away from every passage; the
    asked sentence alone finds d3, and covers the question."""
    whole = "We work for a law firm. Is zebra deeper?"
    vecs = {whole: [0, 0, 0.3, 1], "Is zebra deeper?": [0, 0, 1, 0]}
    index = tiny_index(TINY_TEXTS, TINY_VECS)
    r = Retriever(index, StubEmbedder(vecs), mode="dense", top_k=2, relevance_threshold=0.9)  # type: ignore[arg-type]
    got = r.run(whole)
    assert got.covered and got.best_dense == pytest.approx(1.0, abs=1e-6)
    assert got.hits[0].chunk.chunk_id == "d#3"
    q = np.array(vecs[whole]) / np.linalg.norm(vecs[whole])
    assert float(max(index.vectors @ q)) < 0.9  # the whole question alone is not covered


def test_a_short_question_is_covered_by_the_passage_holding_its_words(
    real_index: LoadedIndex,
) -> None:
    """ "Who makes GPT?": two asked terms, both in one passage; "who" is not a third."""
    r = retriever(real_index, relevance_threshold=0.99, lexical_coverage=0.75)
    result = r.run("Who makes GPT?")
    assert result.lexical_coverage == 1.0 and result.covered
    assert not r.run("Who makes the Zephyr toaster?").covered


def test_empty_index_returns_nothing_and_is_not_relevant() -> None:
    index = LoadedIndex(
        Path("empty"),
        {"build_id": "e", "fingerprint": "e"},
        [],
        np.zeros((0, 4), dtype=np.float32),
        make_faiss_index(np.zeros((0, 4), dtype=np.float32), "flat"),
    )
    for mode in ("hybrid", "dense", "bm25"):
        r = Retriever(index, StubEmbedder({"x y": [1, 0, 0, 0]}), mode=mode).run("x y")  # type: ignore[arg-type]
        assert r.hits == [] and not r.covered


@pytest.mark.parametrize(
    "kw",
    [
        {"top_k": 0},
        {"candidates": 0},
        {"mode": "sparse"},
        {"rrf_k": -1},
        {"dense_weight": -0.5},
        {"relevance_threshold": 1.5},
        {"lexical_coverage": 2.0},
    ],
    ids=["top_k", "cand", "mode", "rrf_k", "weight", "threshold", "coverage"],
)
def test_invalid_arguments_are_rejected(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        tiny(**kw)


def test_settings_are_keyword_only() -> None:
    index = tiny_index(TINY_TEXTS, TINY_VECS)
    with pytest.raises(TypeError):
        Retriever(index, StubEmbedder(TINY_Q), 4)  # type: ignore[arg-type, misc]
    r = Retriever(index, StubEmbedder(TINY_Q), top_k=2, candidates=1)  # type: ignore[arg-type]
    assert (r.settings.top_k, r.settings.candidates, r.mode) == (2, 1, "hybrid")
    assert len(r.run("zebra").hits) == 2  # candidates is raised to top_k when searching


# ------------------------------------------------------------------------------ real corpus


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_each_mode_finds_the_faq_entry(real_index: LoadedIndex, mode: str) -> None:
    result = retriever(real_index, mode=mode).run(FAQ_Q)
    top = result.hits[0].chunk
    assert top.doc_id == FAQ_ID and top.kind == "faq" and top.question == FAQ_Q
    assert result.covered


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
@pytest.mark.parametrize("k", [1, 3, 6])
def test_top_k_and_descending_scores(real_index: LoadedIndex, mode: str, k: int) -> None:
    result = retriever(real_index, mode=mode, top_k=k).run("Who coined the term foundation model?")
    assert len(result.hits) == k
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    assert [h.rank for h in result.hits] == list(range(k))
    assert len({h.chunk.chunk_id for h in result.hits}) == k


def test_run_top_k_argument_overrides_the_default(real_index: LoadedIndex) -> None:
    r = retriever(real_index, top_k=4)
    assert len(r.run(FAQ_Q, top_k=2).hits) == 2
    assert len(r.run(FAQ_Q).hits) == 4


def test_dense_mode_matches_brute_force_cosine(real_index: LoadedIndex) -> None:
    hits = retriever(real_index, mode="dense", top_k=5).run(FAQ_Q).hits
    q = FakeEmbedder().encode([FAQ_Q])[0]
    cos = real_index.vectors @ q
    assert [real_index.chunks.index(h.chunk) for h in hits] == list(np.argsort(-cos)[:5])
    assert [h.score for h in hits] == pytest.approx(sorted(cos, reverse=True)[:5], abs=1e-5)


def test_hybrid_hits_carry_both_scores_when_both_found_them(real_index: LoadedIndex) -> None:
    hit = retriever(real_index).run(FAQ_Q).hits[0]
    assert hit.dense_score is not None and hit.dense_score > 0.5
    assert hit.bm25_score is not None and hit.bm25_score > 0


def test_off_topic_question_is_not_relevant(real_index: LoadedIndex) -> None:
    for mode in ("hybrid", "dense", "bm25"):
        result = retriever(real_index, mode=mode).run("best pizza dough with fresh basil")
        assert not result.covered, mode
        assert result.best_dense < result.cutoff and result.unknown_names == []
    on_topic = retriever(real_index).run("Who coined the term foundation model?")
    assert on_topic.covered


def test_retrieval_serializes_to_json(real_index: LoadedIndex) -> None:
    data = retriever(real_index).run(FAQ_Q).to_dict()
    json.dumps(data)
    assert data["question"] == FAQ_Q and data["relevant"] is True
    assert data["hits"][0]["doc"] == FAQ_ID and data["hits"][0]["kind"] == "faq"
    hit = data["hits"][0]
    assert (
        hit["text"]
        == real_index.chunks[[c.chunk_id for c in real_index.chunks].index(hit["chunk_id"])].text
    )
    assert {"embed_ms", "dense_ms", "bm25_ms", "fusion_ms", "total_ms"} <= set(data["timings"])


# ------------------------------------------------------------------------------ unknown names


@pytest.mark.parametrize(
    ("question", "names"),
    [
        (
            "When did Microsoft finish buying Activision Blizzard?",
            ["Microsoft", "Activision", "Blizzard"],
        ),
        ("Who founded Intel's rival AMD? And Cyrix?", ["Intel", "Cyrix"]),  # not "AMD", "Who"
        ("Does the Forth-based HMSL use C-style loops?", ["Forth-based"]),
        ("is ChatGPT a base model", ["ChatGPT"]),
        ("What's the maximum file size of exFAT on macOS?", ["exFAT", "macOS"]),  # camel case
        ("What Is A Foundation Model?", ["Is", "Foundation", "Model"]),  # "Is": a stop word
    ],
)
def test_the_names_a_question_asks_about(question: str, names: list[str]) -> None:
    assert proper_names(question) == names


def test_a_name_no_entry_mentions_makes_the_question_uncovered(real_index: LoadedIndex) -> None:
    r = retriever(real_index)
    known = r.run("Which foundation models does Anthropic make, and did Stanford coin the term?")
    assert known.unknown_names == [] and known.covered
    unknown = r.run("Which foundation models does Activision make?")
    assert unknown.unknown_names == ["Activision"] and not unknown.covered
    assert unknown.hits  # the passages are still shown as sources
    assert unknown.to_dict()["unknown_names"] == ["Activision"]
    # a name whose parts the corpus knows is not unknown ("Foundation-based")
    assert r.unknown_names("Is the Foundation-based approach common?") == []
    assert r.unknown_names("What Is A Foundation Model?") == []  # "Is" is a stop word
    # the page saved as base-model-insertchat.md is the one "according to InsertChat"
    assert r.unknown_names("According to InsertChat, what is a base model?") == []
    assert r.unknown_names("According to ChatInsert, what is a base model?") == ["ChatInsert"]
    # quotes mark a name: none of its words in the corpus, it is not covered
    assert r.unknown_names("what does 'doxxing' mean?") == ["doxxing"]
    assert r.unknown_names("is a 'base model' the same as a 'zorbly flange'?") == ["zorbly flange"]
    assert r.unknown_names("why does a base model 'guess the next word'?") == []


def test_entry_texts_are_whole_entries_once_each(real_index: LoadedIndex) -> None:
    r = retriever(real_index)
    chunks = [c for c in real_index.chunks if c.doc_id == "base-model-envisioning"]
    assert len(chunks) > 2
    (whole,) = r.entry_texts([chunks[-1], chunks[0], chunks[-1]])
    assert all(c.text in whole for c in chunks)  # a number in any chunk is in the entry
    other = next(c for c in real_index.chunks if c.doc_id != "base-model-envisioning")
    assert len(r.entry_texts([chunks[0], other])) == 2
    assert r.entry_texts([]) == []


@pytest.mark.parametrize(
    ("question", "asked"),
    [
        ("We build for a law firm. Is there a deeper way?", "Is there a deeper way?"),
        ("What is X? Why?", "What is X? Why?"),  # two questions: the whole is asked
        ("  What is X?  ", "What is X?"),
        ("Tell me about X. Thanks.", "Tell me about X. Thanks."),  # no question sentence
    ],
)
def test_the_asked_sentence_of_a_question(question: str, asked: str) -> None:
    assert asked_sentence(question) == asked


def titled_pages(
    tmp_path: Path, pages: dict[str, tuple[str, str]], chunker: Chunker | None = None
) -> Retriever:
    """A retriever with a term index over Markdown pages {file name: (title, text)}."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, (title, text) in pages.items():
        (corpus / f"{name}.md").write_text(f"---\ntitle: {title}\n---\n# {title}\n\n{text}\n")
    store = IndexStore(tmp_path / "index", FakeEmbedder(), chunker or Chunker())
    store.build(corpus)
    index = store.load()
    terms = TermIndex.build({"doc_id": c.doc_id, "title": c.title} for c in index.chunks)
    return retriever(index, terms=terms)


def test_an_entry_named_in_quotes_is_read_first(tmp_path: Path) -> None:
    """The question's other words pull retrieval to other entries; the quoted term is what the
    user asks about, so its entry comes first (and nothing moves when quotes name no entry)."""
    pages = {
        "super-mini": ("super minicomputer", "Distinguished by intelligent peripherals."),
        "mini": ("minicomputer", "A computer that counts as small; its makers count sales."),
        "count": ("count", "To count is to make a number of things; makers count."),
        "maker": ("maker", "A company that makes a computer; makers count units."),
        "mini-maker": ("minicomputer maker", "What makes a minicomputer count: its maker."),
        "mini-count": ("minicomputer count", "How many a maker makes: the minicomputer count."),
        "mini-super": ("super maker", "A maker that makes a super computer count."),
    }
    r = titled_pages(tmp_path, pages)
    question = "what makes a computer count as a 'super minicomputer'?"
    assert r.run(question.replace("'", "")).hits[0].chunk.title != "super minicomputer"
    assert r.run(question).hits[0].chunk.title == "super minicomputer"
    plain = r.run("what makes a computer count as 'small'?")
    assert [h.chunk.doc_id for h in plain.hits] == [
        h.chunk.doc_id for h in r.run("what makes a computer count as small?").hits
    ]


def test_a_quoted_entry_of_the_page_the_question_names_is_the_one_read(tmp_path: Path) -> None:
    """Three pages define 'widget'; "According to Zeta, ..." asks what the zeta page says."""
    pages = {
        "widget-acme": ("widget", "A small part of something larger, rarely seen alone."),
        "widget-beta": (
            "widget",
            "What does a widget do? A widget does what a gadget does, daily.\n\n"
            "What does a widget do next? It does controls, as widgets do.",
        ),
        "widget-zeta": (
            "widget",
            "A small thing on a page that you arrange by hand.\n\n"
            "What does a widget do there? It does the layout of the page.",
        ),
    }
    r = titled_pages(tmp_path, pages, Chunker(size=80, overlap=0))
    hits = r.run("According to Zeta, what does a 'widget' do?").hits
    assert any("layout" in h.chunk.text for h in hits[:3])


def test_a_passage_holding_a_quoted_phrase_is_read_first(tmp_path: Path) -> None:
    """No entry is titled 'contrastive matching', but the passage saying it answers what it is,
    though the question's other words pull retrieval to other entries."""
    pages = {
        "fm": ("matching", "Matching in a foundation model article: matching mentioned."),
        "fm2": ("contrastive", "Contrastive foundation model article: contrastive, mentioned."),
        "fm3": ("model matching", "A model matching what is mentioned in a model article."),
        "fm4": ("contrastive pairs", "Matching and contrastive pairs: a foundation model article."),
        "how": ("how it works", "Pretrained with contrastive matching for vision-language."),
    }
    r = titled_pages(tmp_path, pages)
    question = "I saw 'contrastive matching' mentioned in a foundation model article. What is that?"
    assert "how" not in [h.chunk.doc_id for h in r.run(question.replace("'", "")).hits[:3]]
    assert r.run(question).hits[0].chunk.doc_id == "how"


def test_the_entry_the_first_of_two_questions_looks_up_is_read_from_its_opening(
    tmp_path: Path,
) -> None:
    """ "What does KIBO stand for? ... who is that?": no lookup as a whole, and the entries
    about Kibo the person came first; the expansion is in KIBO's first chunk."""
    pages = {
        "kibo": (
            "KIBO",
            "1. Knowledge In, Bullshit Out. What happens to valid data in an organisation.\n\n"
            "2. James Parry, a Usenet person whose nickname is Kibo, known for net pranks.",
        ),
        "kibozo": ("kibozo", "A Usenet person who kibozes but is not Kibo, the nickname."),
        "kiboze": ("kiboze", "To grep Usenet for your nickname, as Kibo the person did."),
        "nick": ("nickname", "A Usenet person's nickname: what a person is called, like Kibo."),
    }
    r = titled_pages(tmp_path, pages, Chunker(size=100, overlap=0))
    question = "What does KIBO stand for? I heard Kibo is a Usenet person's nickname - who is it?"
    read = [h.chunk.text for h in r.run(question).hits[:3]]
    assert any("Knowledge In" in t for t in read)


def test_a_looked_up_entry_of_notes_only_brings_its_first_sense(tmp_path: Path) -> None:
    """The Jargon File's "hacker" opens with a pronunciation and a note in brackets; its first
    sense is the entry's next chunk, which a lookup reads right after the opening."""
    senses = "\n\n".join(
        f"{n}. A person who enjoys exploring the details of programmable systems, sense {n}."
        for n in range(1, 4)
    )
    pages = {
        "hacker": ("hacker", f"n.\n\n[originally, one who makes furniture with an ax]\n\n{senses}"),
        "hack": ("hack", "A hacker's quick job; hackers hack. What is a hacker's hack?"),
        "ethic": ("hacker ethic", "What a hacker believes: a hacker shares."),
    }
    r = titled_pages(tmp_path, pages, Chunker(size=120, overlap=0))
    hits = r.run("What is a hacker?").hits
    assert [h.chunk.doc_id for h in hits[:2]] == ["hacker", "hacker"]
    assert hits[1].chunk.text.lstrip().startswith("1. A person who enjoys")


def test_a_looked_up_term_no_passage_says_makes_the_question_uncovered(
    real_index: LoadedIndex,
) -> None:
    """Nothing is titled or says "mixture of experts model": the passages that come close
    (about models) answer something else."""
    terms = TermIndex.build({"doc_id": c.doc_id, "title": c.title} for c in real_index.chunks)
    r = retriever(real_index, terms=terms)
    unknown = r.run("what is a mixture of experts model?")
    assert unknown.unknown_names == ["mixture of experts model"] and not unknown.covered
    said = r.run("what is transfer learning?")  # no entry, but a passage says it
    assert said.unknown_names == [] and said.covered
    assert r.run("what is LoRA and QLoRA for?").unknown_names == []  # no term: "... for"
    assert r.unknown_term(Lookup("name RUSH")) == []  # "What does the name RUSH stand for?"
    assert r.unknown_term(Lookup("MTU on Ethernet")) == []  # a term in a setting: no one term
    assert r.unknown_term(Lookup("mixture of experts model")) == ["mixture of experts model"]
    assert r.unknown_term(Lookup("task-specific adaptation")) == []  # before a full stop
    # "who was the original author of X?" looks up a role, not a term
    assert r.run("who was the original author of zorblax?").unknown_names == []
    assert r.run("what is the capital city of zorblax?").unknown_names == [
        "capital city of zorblax"
    ]
    assert r.unknown_term(Lookup("they suggesting")) == []  # "What are they suggesting?"
    assert r.unknown_term(Lookup("went pretraining")) == []  # a usage quoted: "it 'went ...'"
    two_part = r.run("What is a mixture of experts model, and how is it trained?")
    assert two_part.unknown_names == ["mixture of experts model"] and not two_part.covered
    assert r.run("What is transfer learning, and why does it matter?").unknown_names == []


def test_the_entries_a_question_names_by_an_acronym_go_with_the_retrieval(
    real_index: LoadedIndex,
) -> None:
    """The reader reads them as named (candidates.py): a passage from the middle of an entry
    never spells out the acronym its opening gives."""
    docs = [{"doc_id": c.doc_id, "title": c.title} for c in real_index.chunks]
    doc = real_index.chunks[0].doc_id
    terms = TermIndex.build([*docs, {"doc_id": doc, "title": "x", "terms": ["FMX"]}])
    r = retriever(real_index, terms=terms)
    assert r.run("Is FMX pretrained?").named == (doc,)
    assert r.run("Is fmx pretrained?").named == ()
    assert r.run("Is FMX pretrained?").to_dict()["named"] == [doc]


def test_a_question_naming_a_page_by_its_name_is_covered(real_index: LoadedIndex) -> None:
    """ "WikiWalls says ... What is the third item on that list?": nothing comes close enough,
    but the question is about a page of the corpus that it names (a word of the file's name,
    written as a name); the same words as a common noun ("the concept") name nothing."""
    r = retriever(real_index, relevance_threshold=0.99, lexical_coverage=0.99)
    asked = "says the work moves to prompt design. What is the third item on that list?"
    named = r.run(f"WikiWalls {asked}")
    assert named.covered
    assert named.pages == {"foundation-model-wikiwalls.md"}  # the reader reads only that page
    assert named.to_dict()["pages"] == ["foundation-model-wikiwalls.md"]
    assert not r.run(f"Someone {asked}").covered
    assert not r.run(f"The concept {asked}").covered  # foundation-model-concept.md


def test_a_dictionary_file_is_no_page_a_question_names(tmp_path: Path) -> None:
    """A file of many entries ("According to FOLDOC, ...") is not one page."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "jargon.csv").write_text(
        "term,definition\nkluge,A clever programming trick.\nhack,A quick job.\n",
        encoding="utf-8",
    )
    store = IndexStore(tmp_path / "index", FakeEmbedder(), Chunker())
    store.build(corpus)
    r = retriever(store.load(), relevance_threshold=0.99, lexical_coverage=0.99)
    assert not r.run("What does Jargon say about the weather today?").covered


def test_a_looked_up_word_the_corpus_never_uses_is_unknown(real_index: LoadedIndex) -> None:
    """ "What is copycenter supposed to mean?": no passage uses the word, so none covers it;
    a word the corpus uses may be a paraphrase, and a bare word asked ("..., true?") is no
    term asked about."""
    terms = TermIndex.build({"doc_id": c.doc_id, "title": c.title} for c in real_index.chunks)
    r = retriever(real_index, terms=terms)
    unknown = r.run("What is copycenter supposed to mean?")
    assert unknown.unknown_names == ["copycenter"] and not unknown.covered
    assert r.run("what is pretraining?").unknown_names == []
    assert r.run("I hear base models are polished and ready to go. true?").unknown_names == []
