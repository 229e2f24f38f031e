"""The per-index relevance cutoff: off-topic probes that come close raise it above the floor."""

from __future__ import annotations

import pytest

from chatbot.relevance import off_topic_probes, probe_level, relevance_cutoff
from chatbot.retrieve import Retriever
from tests.test_retrieve import StubEmbedder, tiny_index

pytestmark = pytest.mark.unit

# d0 is about cooking, d1 about compilers; "pasta?" is an off-topic probe that d0 matches
TEXTS = ["boiling pasta in salted water", "a compiler translates source code"]
VECS = [[1, 0, 0, 0], [0, 1, 0, 0]]
QUERIES = {
    "pasta?": [1, 0, 0, 0],  # cosine 1.0 with d0
    "weather?": [0, 0, 1, 0],  # cosine 0 with both
    "compilers, roughly?": [0.55, 1, 0.8, 0],  # 0.72 with d1, 0.40 with d0
}


def stub() -> StubEmbedder:
    return StubEmbedder(QUERIES)


def test_the_packaged_probes_are_questions_without_comments() -> None:
    probes = off_topic_probes()
    assert len(probes) >= 30
    assert all(p.endswith("?") and not p.startswith("#") for p in probes)
    assert len(set(probes)) == len(probes)


def test_the_cutoff_is_the_floor_or_the_probe_level_plus_the_margin() -> None:
    assert relevance_cutoff(0.40, 0.02, 0.22) == 0.40  # a small corpus on one subject
    assert relevance_cutoff(0.40, 0.02, 0.43) == pytest.approx(0.45)  # a big general corpus
    assert relevance_cutoff(0.40, 0.02, -1.0) == 0.40  # nothing probed


def test_probe_level_is_the_90th_percentile_of_the_best_cosines() -> None:
    index = tiny_index(TEXTS, VECS)
    # ten probes, nine at 0 and one at 1.0: the 90th percentile interpolates to 0.1
    queries = {f"q{i}?": [0, 0, 1, 0] for i in range(9)} | {"pasta?": [1, 0, 0, 0]}
    level = probe_level(index, StubEmbedder(queries), tuple(queries))  # type: ignore[arg-type]
    assert level == pytest.approx(0.1, abs=1e-6)
    assert probe_level(index, stub(), ()) == -1.0  # type: ignore[arg-type]


def test_close_probes_raise_the_cutoff_and_refuse_a_borderline_question() -> None:
    index = tiny_index(TEXTS, VECS)
    q = "compilers, roughly?"
    plain = Retriever(index, stub(), relevance_threshold=0.3, lexical_coverage=1.0)  # type: ignore[arg-type]
    assert plain.cutoff == 0.3 and plain.run(q).covered
    probed = Retriever(
        index,
        stub(),  # type: ignore[arg-type]
        relevance_threshold=0.3,
        relevance_margin=0.02,
        lexical_coverage=1.0,
        probes=("pasta?",),
    )
    assert probed.cutoff == pytest.approx(1.02)  # chance matches reach 1.0 in this index
    result = probed.run(q)
    assert not result.covered and result.cutoff == pytest.approx(1.02)
    assert result.to_dict()["relevance_cutoff"] == pytest.approx(1.02)
    # probes that match nothing leave the floor
    far = Retriever(index, stub(), relevance_threshold=0.3, probes=("weather?",))  # type: ignore[arg-type]
    assert far.cutoff == 0.3 and far.run(q).covered


def test_a_bad_margin_is_rejected() -> None:
    with pytest.raises(ValueError, match="relevance_margin"):
        Retriever(tiny_index(TEXTS, VECS), stub(), relevance_margin=2.0)  # type: ignore[arg-type]
