"""What the question names goes first: the reader reads the top three passages, and the fused
ranking follows all of the question's words. A looked-up term's entry and an entry or phrase
the question quotes are what it asks about, though its other words may pull retrieval
elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from chatbot.index import LoadedIndex
from chatbot.terms import Lookup, normalize
from chatbot.text import opening_definition, quoted_terms

Ranked = list[tuple[int, float]]  # (chunk, score), best first


def put_first(chunks: list[int], ranked: Ranked) -> Ranked:
    """``chunks`` ahead of the ranking, in their order, scored just above its best."""
    top = ranked[0][1] if ranked else 1.0
    first = [(i, top + (len(chunks) - n) * 1e-3) for n, i in enumerate(chunks)]
    chosen = set(chunks)
    return first + [(i, sc) for i, sc in ranked if i not in chosen]


@dataclass
class Reorder:
    """Reorders one index's rankings; built with its Retriever."""

    index: LoadedIndex

    @cached_property
    def entry_starts(self) -> dict[str, int]:
        """Each entry's first chunk: where its opening definition is."""
        out: dict[str, int] = {}
        for i, c in enumerate(self.index.chunks):
            out.setdefault(c.doc_id, i)
        return out

    def promote(self, lookup: Lookup, ranked: Ranked, qvec: np.ndarray) -> Ranked:
        """The entries that *are* the looked-up term first, best retrieved sense first."""
        position = {i: r for r, (i, _) in enumerate(ranked)}
        starts = [self.entry_starts[d] for d in lookup.doc_ids if d in self.entry_starts]

        def order(i: int) -> tuple[bool, bool, int, float]:
            # an entry with a definition before a "see X" stub; "byte" before "Byte" (the
            # magazine) when the user wrote "byte"; then as retrieved
            chunk = self.index.chunks[i]
            return (
                not opening_definition(chunk.text),
                chunk.title.strip() != lookup.term,
                position.get(i, len(ranked)),
                -float(self.index.vectors[i] @ qvec),
            )

        starts.sort(key=order)
        chunks = self.index.chunks
        # a head of notes only ("hacker n. [originally, ...]"): its first sense is the next chunk
        follow = [
            [i, i + 1]
            if not opening_definition(chunks[i].text)
            and i + 1 < len(chunks)
            and chunks[i + 1].doc_id == chunks[i].doc_id
            else [i]
            for i in starts
        ]
        return put_first([i for pair in follow for i in pair], ranked)

    def include(
        self, doc_ids: list[str], ranked: Ranked, read: int = 3, *, opening: bool = False
    ) -> Ranked:
        """The named entries' first chunks first, unless the top ``read`` passages (what the
        reader reads) already come from them; with ``opening``, unless they hold the first
        chunk itself: where a word comes from is said in its entry's leading note."""
        top = [self.index.chunks[i] for i, _ in ranked[:read]]
        shown = {c.chunk_id if opening else c.doc_id for c in top}

        def seen(i: int) -> bool:
            chunk = self.index.chunks[i]
            return (chunk.chunk_id if opening else chunk.doc_id) in shown

        starts = [i for d in doc_ids if (i := self.entry_starts.get(d)) is not None]
        missing = [i for i in starts if not seen(i)]
        # an opening already read stays read: the missing ones must not push it out
        kept = [i for i in starts if opening and seen(i)]
        return put_first(missing + kept, ranked) if missing else ranked

    def named_page(self, files: frozenset[str], ranked: Ranked, read: int = 3) -> Ranked:
        """The best-ranked passage of a page the question names first ("The Envisioning page
        cross-links to 'Foundation Model'. What definition does it give?"), unless the reader
        reads one of that page already."""
        if not files or any(self.index.chunks[i].file in files for i, _ in ranked[:read]):
            return ranked
        first = next((i for i, _ in ranked if self.index.chunks[i].file in files), None)
        return ranked if first is None else put_first([first], ranked)

    def holding_quote(self, question: str, ranked: Ranked, read: int = 3) -> Ranked:
        """The best-ranked passage holding a phrase the question quotes first, unless one the
        reader reads holds it: the quote marks what is asked ("I saw 'contrastive matching'
        in an article. What is that?"), though no entry is titled with it."""
        quotes = [normalize(t) for t in quoted_terms(question) if len(t) >= 4]
        if not quotes:
            return ranked

        def holds(i: int) -> bool:
            return any(q in normalize(self.index.chunks[i].text) for q in quotes)

        if any(holds(i) for i, _ in ranked[:read]):
            return ranked
        first = next((i for i, _ in ranked if holds(i)), None)
        return ranked if first is None else put_first([first], ranked)
