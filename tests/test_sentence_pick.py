"""The chunk holding a question's closest sentence is read even when the ranking leaves it out."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from chatbot.chunking import Chunk
from chatbot.reader import extractive_answer
from chatbot.retrieve import Retriever
from chatbot.sentence_pick import ROUND, SentencePicker, sentences
from tests.fakes import FakeEmbedder
from tests.test_retrieve import TINY_Q, TINY_TEXTS, TINY_VECS, StubEmbedder, tiny_index

pytestmark = pytest.mark.unit


def entry(title: str, body: str, n: int = 0) -> Chunk:
    text = f"# {title}\n\n{body}"
    return Chunk(f"{title}#{n}", title, title, title, text, 0, len(text), "text")


TESTING = entry(
    "Foundation model",
    "Developers must implement rigorous testing and guardrails before any release. "
    "The focus is shifting toward smaller efficient models that run on edge devices.",
)
OTHERS = [
    entry("Base model", "A base model is trained on large data and reused for new tasks."),
    entry("Instruct model", "An instruct model follows instructions given in a chat."),
]
QUESTION = "are models shifting toward smaller efficient edge devices?"


def test_the_chunk_whose_later_sentence_is_closest_is_picked() -> None:
    embedder = FakeEmbedder()
    chunks = [*OTHERS, TESTING]
    qvec = embedder.encode([QUESTION])[0]
    whole = [float(v @ qvec) for v in embedder.encode([c.text for c in chunks])]
    assert SentencePicker(embedder).run(chunks, qvec, whole) == 2
    assert SentencePicker(embedder, pool=2).run(chunks, qvec, whole) in (0, 1)  # not read
    assert sentences(TESTING)[1].startswith("The focus is shifting")


def test_a_one_sentence_chunk_is_scored_by_its_own_vector_and_vectors_are_cached() -> None:
    embedder = FakeEmbedder()
    picker = SentencePicker(embedder, reach=2.0)  # read every chunk (see the test below)
    qvec = embedder.encode([QUESTION])[0]
    embedder.encoded = 0
    # the one-sentence chunks are not embedded again: their cosine is given (here: made up)
    assert picker.run([*OTHERS, TESTING], qvec, [0.99, 0.0, 0.0]) == 0
    assert embedder.encoded == len(sentences(TESTING)) == 2
    picker.run([TESTING, *OTHERS], qvec, [0.0, 0.0, 0.0])
    assert embedder.encoded == 2  # cached per chunk
    assert picker.run([entry("Empty", "See also.")], qvec, [0.9]) is None  # no sentence at all


def test_chunks_far_below_the_closest_sentence_found_are_not_embedded() -> None:
    embedder = FakeEmbedder()
    qvec = embedder.encode([QUESTION])[0]
    embedder.encoded = 0
    more = [entry(f"Model {n}", f"Model {n} is one more kind of model.") for n in (3, 4)]
    chunks = [*OTHERS, *more, TESTING]  # the first round of four holds one sentence each
    # whole cosines made up: the best one-sentence chunk scores 0.99; TESTING's own cosine
    # (0.5) is 0.49 below it, beyond the reach of 0.25, so its sentences are never embedded
    picker = SentencePicker(embedder, reach=0.25)
    assert picker.run(chunks, qvec, [0.99, 0.98, 0.97, 0.96, 0.5]) == 0
    assert embedder.encoded == 0
    # within reach (0.8 + 0.25 >= 0.99) they are
    picker.run(chunks, qvec, [0.99, 0.98, 0.97, 0.96, 0.8])
    assert embedder.encoded == 2


def test_chunks_are_read_closest_first_whatever_their_rank() -> None:
    embedder = FakeEmbedder()
    qvec = embedder.encode([QUESTION])[0]
    two = "It has two sentences of its own. Nothing here is about the question asked."
    others = [entry(f"Other {n}", two) for n in range(2 * ROUND)]
    embedder.encoded = 0
    # ranked last but closest as a whole (made-up cosines): read in the first round, and the
    # others after that round, far below its closest sentence, are not read at all
    picker = SentencePicker(embedder, reach=0.0)
    assert picker.run([*others, TESTING], qvec, [0.1] * len(others) + [0.9]) == len(others)
    assert embedder.encoded == 2 + 2 * (ROUND - 1)


def test_a_bounded_cache_forgets_the_oldest_chunk() -> None:
    embedder = FakeEmbedder()
    picker = SentencePicker(embedder, cache_size=1)
    qvec = embedder.encode([QUESTION])[0]
    two = replace(TESTING, chunk_id="other#0")
    picker.run([TESTING], qvec, [0.0])
    picker.run([two], qvec, [0.0])
    embedder.encoded = 0
    picker.run([TESTING], qvec, [0.0])
    assert embedder.encoded == 2


@pytest.mark.parametrize("kw", [{"pool": -1}, {"cache_size": 0}, {"reach": -0.1}])
def test_invalid_settings_are_rejected(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SentencePicker(FakeEmbedder(), **kw)


class FixedPicker:
    """Picks the chunk at one rank, to check what the retriever does with the pick."""

    def __init__(self, rank: int | None) -> None:
        self.rank = rank

    def run(self, chunks: list[Chunk], qvec: np.ndarray, whole: list[float]) -> int | None:
        return self.rank


def picked_run(rank: int | None, top_k: int = 2, read: int = 1) -> list[tuple[str, bool]]:
    r = Retriever(
        tiny_index(TINY_TEXTS, TINY_VECS),
        StubEmbedder(TINY_Q),  # type: ignore[arg-type]
        mode="dense",
        top_k=top_k,
        read=read,
        relevance_threshold=0.5,
    )
    r.picker = FixedPicker(rank)  # type: ignore[assignment]
    return [(h.chunk.chunk_id, h.picked) for h in r.run("zebra").hits]


def test_the_retriever_adds_or_marks_the_picked_chunk_only_when_the_reader_would_not_read_it() -> (
    None
):
    # dense ranks for "zebra": d0 > d1 > d2 > d3
    assert picked_run(None) == [("d#0", False), ("d#1", False)]
    assert picked_run(0) == [("d#0", False), ("d#1", False)]  # read already
    assert picked_run(1) == [("d#0", False), ("d#1", True)]  # shown, now read too
    assert picked_run(3) == [("d#0", False), ("d#1", False), ("d#3", True)]  # added
    assert picked_run(1, read=2) == [("d#0", False), ("d#1", False)]


def test_the_reader_reads_a_picked_passage_past_the_ones_it_reads() -> None:
    passages = [*OTHERS, entry("Pre-training", "Pre-training comes first."), TESTING]
    plain = extractive_answer(QUESTION, passages, FakeEmbedder())
    assert "edge devices" not in plain.text
    read = extractive_answer(QUESTION, passages, FakeEmbedder(), also=frozenset({3}))
    assert read.text.startswith("The focus is shifting") and read.cited == [4]
