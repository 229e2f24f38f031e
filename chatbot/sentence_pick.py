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
from chatbot.embedding import Embedder, encode_cached
from chatbot.text import strip_markup

MIN_WORDS = 4  # shorter pieces ("See also", a name alone) are no sentence to answer with
# chunks embedded together: enough texts for the embedder's two workers, few enough that the
# stop (below) is tested often
ROUND = 4


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

    def __init__(
        self, embedder: Embedder, *, pool: int = 20, reach: float = 0.25, cache_size: int = 4096
    ) -> None:
        if pool < 0 or cache_size < 1 or reach < 0:
            raise ValueError("pool and reach must be >= 0, cache_size >= 1")
        self.embedder = embedder
        self.pool = pool
        self.reach = reach
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
        vecs = encode_cached(self.embedder, flat) if flat else _ONE
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
        time and say the same.

        Chunks are read closest first, a few at a time, and reading stops at the first chunk
        whose own cosine is more than ``reach`` below the best sentence found: its sentences
        would have to beat their chunk by more than a sentence nearly ever does. The order and
        the stop depend on the scores only, never on what is cached, so a question gets the
        same pick whatever came before it."""
        order = sorted(range(min(self.pool, len(chunks))), key=lambda i: (-whole[i], i))
        best, where = -np.inf, None
        for start in range(0, len(order), ROUND):
            batch = [i for i in order[start : start + ROUND] if whole[i] + self.reach >= best]
            if not batch:
                break
            for i, vecs in zip(batch, self._vectors([chunks[i] for i in batch]), strict=True):
                if vecs is None:
                    continue
                score = float((vecs @ qvec).max()) if vecs.size else whole[i]
                if score > best or (score == best and where is not None and i < where):
                    best, where = score, i
        return where
