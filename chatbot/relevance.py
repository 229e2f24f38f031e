"""The dense cutoff below which the corpus does not cover a question, set per index.

One fixed cosine cannot serve every glossary. An off-topic question ("How long should I boil
pasta?") finds a passage at about 0.11 in five pages on one subject, and at about 0.34 among
18,000 dictionary entries: a big corpus offers more chances of a chance match. A cutoff low
enough for the small corpus lets the big one answer cooking questions; one high enough for
the big corpus refuses paraphrased questions that the small one covers.

So each index is probed with packaged questions about everyday things no glossary of this
kind covers; the cutoff sits a margin above the 90th percentile of their best cosines, and
never below the configured floor.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np

from chatbot.embedding import Embedder
from chatbot.index import LoadedIndex


@cache
def off_topic_probes() -> tuple[str, ...]:
    """The packaged probe questions, one per line (``#`` starts a comment)."""
    text = resources.files("chatbot").joinpath("data/off_topic.txt").read_text(encoding="utf-8")
    lines = (line.strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def probe_level(index: LoadedIndex, embedder: Embedder, probes: tuple[str, ...]) -> float:
    """The 90th percentile of the probes' best cosines in this index (-1 with nothing to probe)."""
    if not probes or not len(index):
        return -1.0
    vectors = np.asarray(embedder.encode(list(probes)), dtype=np.float32)
    scores, _ = index.faiss_index.search(vectors, 1)
    return float(np.quantile(scores[:, 0], 0.9))


def relevance_cutoff(floor: float, margin: float, level: float) -> float:
    """The best dense cosine a covered question needs: the floor, or the probes' level plus
    the margin when chance matches in this corpus come closer than the floor allows."""
    return max(floor, level + margin)
