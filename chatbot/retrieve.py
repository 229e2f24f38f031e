"""Hybrid retrieval: dense (FAISS) + lexical (BM25) fused by reciprocal rank fusion.

Dense search catches paraphrases; BM25 catches rare exact words (names, acronyms such as "LoRA"
or "CRFM") that a small embedding model blurs. RRF fuses ranks, not scores, so neither scorer's
scale has to be calibrated against the other. Whether the corpus covers the question at all is
decided separately, on the best dense cosine, because RRF scores are relative by construction.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import bm25s
import numpy as np

from chatbot.chunking import Chunk
from chatbot.embedding import Embedder, encode_query
from chatbot.index import LoadedIndex
from chatbot.terms import Lookup, TermIndex
from chatbot.text import opening_definition

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG on import
Mode = Literal["hybrid", "dense", "bm25"]
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_STOPWORDS = frozenset(bm25s.stopwords.STOPWORDS_EN) | {"what", "how", "why", "does", "can"}


def _stemmer() -> Any:
    try:
        import Stemmer

        return Stemmer.Stemmer("english").stemWord
    except ImportError:  # PyStemmer is a declared dependency; degrade rather than fail
        return lambda w: w[:-1] if w.endswith("s") and not w.endswith("ss") else w


_STEM = _stemmer()


def tokenize(text: str) -> list[str]:
    """Lowercased, stop-word-free, stemmed terms: shared by BM25 and answer verification."""
    return [_STEM(t) for t in _TOKEN.findall(text.lower()) if t not in _STOPWORDS]


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # fused score used for ranking (RRF, or the single retriever's score)
    dense_score: float | None
    bm25_score: float | None
    rank: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc": self.chunk.doc_id,
            "title": self.chunk.title,
            "heading": self.chunk.heading,
            "text": self.chunk.text,
            "score": round(self.score, 6),
            "dense_score": None if self.dense_score is None else round(self.dense_score, 4),
            "bm25_score": None if self.bm25_score is None else round(self.bm25_score, 4),
            "chunk_id": self.chunk.chunk_id,
            "kind": self.chunk.kind,
            "start": self.chunk.start,
            "end": self.chunk.end,
        }


@dataclass
class Retrieval:
    question: str
    hits: list[Hit]
    relevant: bool
    best_dense: float
    timings: dict[str, float] = field(default_factory=dict)
    lexical_coverage: float = 0.0
    lookup: Lookup | None = None

    def to_dict(self) -> dict[str, Any]:
        lookup = self.lookup
        return {
            "question": self.question,
            "hits": [h.to_dict() for h in self.hits],
            "relevant": self.relevant,
            "lookup": None
            if lookup is None
            else {"term": lookup.term, "entries": list(lookup.doc_ids), "near": list(lookup.near)},
            "best_dense_score": round(self.best_dense, 4),
            "lexical_coverage": round(self.lexical_coverage, 4),
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
        }


class Retriever:
    """Searches one LoadedIndex; build a new Retriever when the index is swapped."""

    def __init__(
        self,
        index: LoadedIndex,
        embedder: Embedder,
        top_k: int = 4,
        candidates: int = 20,
        mode: Mode = "hybrid",
        rrf_k: int = 60,
        relevance_threshold: float = 0.45,
        dense_weight: float = 1.0,
        lexical_coverage: float = 0.75,
        *,
        terms: TermIndex | None = None,
    ) -> None:
        if top_k < 1 or candidates < 1:
            raise ValueError("top_k and candidates must be positive")
        if mode not in ("hybrid", "dense", "bm25"):
            raise ValueError(f"unknown retrieval mode {mode!r}")
        self.index = index
        self.embedder = embedder
        self.top_k = top_k
        self.candidates = max(candidates, top_k)
        self.mode = mode
        self.rrf_k = rrf_k
        self.relevance_threshold = relevance_threshold
        self.dense_weight = dense_weight
        self.lexical_coverage = lexical_coverage
        self.terms = terms

    @cached_property
    def entry_starts(self) -> dict[str, int]:
        """Each entry's first chunk: where its opening definition is."""
        out: dict[str, int] = {}
        for i, c in enumerate(self.index.chunks):
            out.setdefault(c.doc_id, i)
        return out

    def promote(
        self, lookup: Lookup, ranked: list[tuple[int, float]], qvec: np.ndarray
    ) -> list[tuple[int, float]]:
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
        top = ranked[0][1] if ranked else 1.0
        promoted = [(i, top + (len(starts) - n) * 1e-3) for n, i in enumerate(starts)]
        chosen = set(starts)
        return promoted + [(i, sc) for i, sc in ranked if i not in chosen]

    @cached_property
    def bm25(self) -> bm25s.BM25:
        corpus_tokens = [tokenize(c.embed_text()) or ["<empty>"] for c in self.index.chunks]
        model = bm25s.BM25()
        if corpus_tokens:
            model.index(corpus_tokens, show_progress=False)
        return model

    def dense(self, query_vec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self.index))
        if k == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores, ids = self.index.faiss_index.search(query_vec.reshape(1, -1), k)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def lexical(self, question: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        tokens = tokenize(question)
        if not tokens or not len(self.index):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores = self.bm25.get_scores(tokens)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[scores[top] > 0]
        return top, scores[top]

    def run(self, question: str, top_k: int | None = None) -> Retrieval:
        k = top_k or self.top_k
        timings: dict[str, float] = {}
        t = time.perf_counter()
        qvec = encode_query(self.embedder, question)
        timings["embed_ms"] = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        d_ids, d_scores = self.dense(qvec, self.candidates)
        timings["dense_ms"] = (time.perf_counter() - t) * 1000
        dense_of = {int(i): float(s) for i, s in zip(d_ids, d_scores, strict=True)}
        best_dense = float(d_scores[0]) if len(d_scores) else -1.0

        b_ids: np.ndarray = np.zeros(0, dtype=np.int64)
        b_scores: np.ndarray = np.zeros(0, dtype=np.float32)
        if self.mode != "dense":
            t = time.perf_counter()
            b_ids, b_scores = self.lexical(question, self.candidates)
            timings["bm25_ms"] = (time.perf_counter() - t) * 1000
        bm25_of = {int(i): float(s) for i, s in zip(b_ids, b_scores, strict=True)}

        t = time.perf_counter()
        ranked = self.fuse(d_ids, d_scores, b_ids, b_scores)
        timings["fusion_ms"] = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        lookup = self.terms.lookup(question) if self.terms is not None else None
        if lookup is not None and lookup.found:
            ranked = self.promote(lookup, ranked, qvec)
        timings["lookup_ms"] = (time.perf_counter() - t) * 1000

        for i, _ in ranked[:k]:  # BM25-only hits still get a cosine, for display and thresholds
            if i not in dense_of:
                dense_of[i] = float(self.index.vectors[i] @ qvec)
        hits = [
            Hit(self.index.chunks[i], score, dense_of.get(i), bm25_of.get(i), rank)
            for rank, (i, score) in enumerate(ranked[:k])
        ]
        timings["total_ms"] = sum(v for key, v in timings.items() if key.endswith("_ms"))
        coverage = self.coverage(question, int(b_ids[0])) if len(b_ids) else 0.0
        relevant = bool(hits) and (
            best_dense >= self.relevance_threshold
            or coverage >= self.lexical_coverage
            or (lookup is not None and lookup.found)
        )
        return Retrieval(
            question=question,
            hits=hits,
            relevant=relevant,
            best_dense=best_dense,
            timings=timings,
            lexical_coverage=coverage,
            lookup=lookup,
        )

    def fuse(
        self, d_ids: np.ndarray, d_scores: np.ndarray, b_ids: np.ndarray, b_scores: np.ndarray
    ) -> list[tuple[int, float]]:
        """(chunk, score) best first: one retriever's own scores, or weighted RRF of both."""
        if self.mode == "dense":
            return [(int(i), float(s)) for i, s in zip(d_ids, d_scores, strict=True)]
        if self.mode == "bm25":
            return [(int(i), float(s)) for i, s in zip(b_ids, b_scores, strict=True)]
        fused: dict[int, float] = {}
        for ids, weight in ((d_ids, self.dense_weight), (b_ids, 1.0)):
            for rank, i in enumerate(ids):
                fused[int(i)] = fused.get(int(i), 0.0) + weight / (self.rrf_k + rank + 1)
        return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))

    def coverage(self, question: str, i: int) -> float:
        """Share of the question's terms found in chunk i. MiniLM has never seen words like
        "LoRA"; when every rare term of a question is in one passage, the corpus covers it
        even if the cosine is low."""
        q = set(tokenize(question))
        if len(q) < 2:
            return 0.0
        return len(q & set(tokenize(self.index.chunks[i].embed_text()))) / len(q)
