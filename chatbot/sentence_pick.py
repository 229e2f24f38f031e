"""The passage holding the question's closest sentence, when the ranking leaves it out.

A chunk is embedded whole, and one vector for several sentences leans to the first: "Developers
must implement rigorous testing and guardrails ... As the ecosystem matures, the focus is
shifting toward smaller, more efficient versions ... on edge devices" ranks 17th for "are
foundation models going to keep getting bigger?", while its second sentence is the closest of
all. So each sentence of the top-ranked chunks, read with its entry's title as the reader reads
it, is compared with the question, and the chunk holding the closest one is read too when the
passages the reader reads do not hold it. The ranking itself stays: fusing sentence ranks into
it moved good passages out of the top three (README, dropped levers).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from chatbot.chunking import Chunk
from chatbot.embedding import Embedder
from chatbot.text import strip_markup

MIN_WORDS = 4  # shorter pieces ("See also", a name alone) are no sentence to answer with


def sentences(chunk: Chunk) -> list[str]:
    """The chunk's prose sentences, markup stripped, as the reader's candidates are read."""
    texts = (strip_markup(s) for s in chunk.sentences())
    return [s for s in texts if len(s.split()) >= MIN_WORDS]


# what the cache keeps per chunk: None (no sentence), _ONE (one: the chunk's own vector stands
# for it), or the vectors of its sentences
_ONE = np.zeros((0, 0), dtype=np.float32)


class SentencePicker:
    """Finds the chunk whose best sentence is closest to a question among the ``pool`` best
    ranked chunks. Sentence vectors are cached per chunk (the same entries come back across a
    conversation), and the missing ones are embedded in one batch: a call per chunk costs
    more than the sentences themselves."""

    def __init__(self, embedder: Embedder, *, pool: int = 20, cache_size: int = 4096) -> None:
        if pool < 0 or cache_size < 1:
            raise ValueError("pool must be >= 0 and cache_size >= 1")
        self.embedder = embedder
        self.pool = pool
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray | None] = OrderedDict()
        self._lock = threading.Lock()

    def _vectors(self, chunks: Sequence[Chunk]) -> list[np.ndarray | None]:
        with self._lock:
            known = {
                c.chunk_id: self._cache[c.chunk_id] for c in chunks if c.chunk_id in self._cache
            }
        missing = [c for c in chunks if c.chunk_id not in known]
        groups = [[f"{c.title}: {s}" for s in sentences(c)] for c in missing]
        flat = [t for group in groups if len(group) > 1 for t in group]
        vecs = np.asarray(self.embedder.encode(flat), dtype=np.float32) if flat else _ONE
        start = 0
        for chunk, group in zip(missing, groups, strict=True):
            if len(group) > 1:
                known[chunk.chunk_id] = vecs[start : start + len(group)]
                start += len(group)
            else:
                known[chunk.chunk_id] = _ONE if group else None
        with self._lock:
            for cid, v in known.items():
                self._cache[cid] = v
                self._cache.move_to_end(cid)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return [known[c.chunk_id] for c in chunks]

    def run(self, chunks: Sequence[Chunk], qvec: np.ndarray, whole: Sequence[float]) -> int | None:
        """Index in ``chunks`` (best ranked first, only the first ``pool`` read) of the chunk
        holding the closest sentence, or None when there is none. ``whole`` is each chunk's own
        cosine, which stands for a chunk of one sentence: embedding it again would cost
        time and say the same."""
        best, where = -np.inf, None
        for i, vecs in enumerate(self._vectors(chunks[: self.pool])):
            if vecs is None:
                continue
            score = float((vecs @ qvec).max()) if vecs.size else whole[i]
            if score > best:
                best, where = score, i
        return where
