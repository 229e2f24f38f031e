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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, cast

import bm25s
import numpy as np

from chatbot.chunking import Chunk
from chatbot.embedding import Embedder, encode_query
from chatbot.index import LoadedIndex
from chatbot.kinds import answer_type, asks_origin
from chatbot.relevance import probe_level, relevance_cutoff
from chatbot.reorder import Reorder
from chatbot.sentence_pick import SentencePicker
from chatbot.terms import Lookup, TermIndex, normalize
from chatbot.text import asked_sentence, proper_names, quoted_terms
from chatbot.tokens import query_terms, tokenize

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "bm25")


# words that end a phrase, not a term: "LoRA and QLoRA for", "name RUSH", "RUSH acronym"
_NOT_TERM_ENDS = frozenset((
    "a", "an", "the", "of", "for", "to", "in", "on", "at", "by", "with", "and", "or", "is", "are",
    "be", "was", "were", "what", "which", "that", "this", "it", "as", "from", "into", "than",
    "like", "about", "name", "word", "term", "acronym", "abbreviation", "phrase", "expression",
    "i", "we", "you", "he", "she", "they", "them", "my", "our", "your", "his", "her", "their",
    "went", "gone", "goes", "got", "did", "does", "done",  # "the drive 'went farming'": usage
))  # fmt: skip
_ASKS_WHAT = re.compile(r"\W*(?:what|wat|whats|what's|define|explain)\b", re.I)
_IN_CONTEXT = frozenset(("on", "in", "for", "with", "at", "under", "inside", "within", "during"))


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # fused score used for ranking (RRF, or the single retriever's score)
    dense_score: float | None
    bm25_score: float | None
    rank: int
    picked: bool = False  # read for its sentence closest to the question (sentence_pick)

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
            "picked": self.picked,
        }


@dataclass
class Retrieval:
    question: str
    hits: list[Hit]
    covered: bool  # the corpus covers the question: answer it rather than refuse
    best_dense: float
    timings: dict[str, float] = field(default_factory=dict)
    lexical_coverage: float = 0.0
    lookup: Lookup | None = None
    cutoff: float = 0.0  # the best dense cosine this index asks of a covered question
    unknown_names: list[str] = field(default_factory=list)  # asked about, in no passage
    named: tuple[str, ...] = ()  # entries the question names by an acronym (TermIndex.named)
    pages: frozenset[str] = frozenset()  # files of the pages it names by name (named_pages)

    def to_dict(self) -> dict[str, Any]:
        lookup = self.lookup
        return {
            "question": self.question,
            "hits": [h.to_dict() for h in self.hits],
            "relevant": self.covered,  # the JSON name the CLI and reports have always used
            "lookup": None
            if lookup is None
            else {"term": lookup.term, "entries": list(lookup.doc_ids), "near": list(lookup.near)},
            "best_dense_score": round(self.best_dense, 4),
            "lexical_coverage": round(self.lexical_coverage, 4),
            "relevance_cutoff": round(self.cutoff, 4),
            "unknown_names": self.unknown_names,
            "named": list(self.named),
            "pages": sorted(self.pages),
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
        }


@dataclass(frozen=True)
class RetrievalSettings:
    """How a Retriever ranks and when it says the corpus covers a question; checked on creation."""

    top_k: int = 4
    candidates: int = 20  # hits taken from each retriever before fusion (at least top_k)
    mode: Mode = "hybrid"
    rrf_k: int = 60
    relevance_threshold: float = 0.40  # best dense cosine at or above this: covered (the floor)
    relevance_margin: float = 0.02  # or above the off-topic probes' level by this (relevance.py)
    dense_weight: float = 1.0  # RRF weight of the dense list against BM25's
    lexical_coverage: float = 0.75  # or: this share of the question's terms in the best BM25 hit
    sentence_pool: int = 20  # top chunks whose sentences are compared with the question (0: off)
    sentence_reach: float = 0.25  # how much closer than its chunk a sentence is taken to get
    read: int = 3  # passages the reader reads: a closest sentence beyond them is added

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.candidates < 1 or self.read < 1:
            raise ValueError("top_k, candidates and read must be positive")
        if self.sentence_pool < 0 or self.sentence_reach < 0:
            raise ValueError("sentence_pool and sentence_reach must not be negative")
        if self.mode not in MODES:
            raise ValueError(f"unknown retrieval mode {self.mode!r}")
        if self.rrf_k < 0 or self.dense_weight < 0:
            raise ValueError("rrf_k and dense_weight must not be negative")
        if not -1.0 <= self.relevance_threshold <= 1.0:
            raise ValueError("relevance_threshold is a cosine: between -1 and 1")
        if not -1.0 <= self.relevance_margin <= 1.0:
            raise ValueError("relevance_margin is a cosine difference: between -1 and 1")
        if not 0.0 <= self.lexical_coverage <= 1.0:
            raise ValueError("lexical_coverage is a share: between 0 and 1")


@dataclass
class _Ranking:
    """What the scorers found for one question, before it is cut to top_k."""

    ranked: list[tuple[int, float]]  # (chunk, fused score), best first
    dense_of: dict[int, float]
    bm25_of: dict[int, float]
    best_dense: float
    best_bm25: int | None  # the chunk BM25 ranked first, for lexical coverage


def _best_cosines(dense: list[tuple[np.ndarray, np.ndarray]]) -> dict[int, float]:
    """Each chunk's best cosine over the dense lists (one per query vector)."""
    best: dict[int, float] = {}
    for ids, scores in dense:
        for i, x in zip(ids, scores, strict=True):
            best[int(i)] = max(float(x), best.get(int(i), -1.0))
    return best


@contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[key] = (time.perf_counter() - start) * 1000


class Retriever:
    """Searches one LoadedIndex; build a new Retriever when the index is swapped."""

    def __init__(
        self,
        index: LoadedIndex,
        embedder: Embedder,
        *,
        top_k: int = 4,
        candidates: int = 20,
        mode: str = "hybrid",
        rrf_k: int = 60,
        relevance_threshold: float = 0.40,
        relevance_margin: float = 0.02,
        dense_weight: float = 1.0,
        lexical_coverage: float = 0.75,
        sentence_pool: int = 20,
        sentence_reach: float = 0.25,
        read: int = 3,
        terms: TermIndex | None = None,
        probes: tuple[str, ...] = (),
    ) -> None:
        self.settings = RetrievalSettings(
            top_k=top_k,
            candidates=candidates,
            mode=cast(Mode, mode),  # checked by RetrievalSettings
            rrf_k=rrf_k,
            relevance_threshold=relevance_threshold,
            relevance_margin=relevance_margin,
            dense_weight=dense_weight,
            lexical_coverage=lexical_coverage,
            sentence_pool=sentence_pool,
            sentence_reach=sentence_reach,
            read=read,
        )
        self.index = index
        self.embedder = embedder
        self.picker = SentencePicker(embedder, pool=sentence_pool, reach=sentence_reach)
        self.reorder = Reorder(index)
        self.terms = terms
        self.probes = probes

    @cached_property
    def cutoff(self) -> float:
        """The best cosine a covered question needs in this index (see relevance.py)."""
        level = probe_level(self.index, self.embedder, self.probes)
        s = self.settings
        return relevance_cutoff(s.relevance_threshold, s.relevance_margin, level)

    @property
    def mode(self) -> Mode:
        return self.settings.mode

    @property
    def entry_starts(self) -> dict[str, int]:
        """Each entry's first chunk: where its opening definition is."""
        return self.reorder.entry_starts

    def entry_texts(self, chunks: Iterable[Chunk]) -> list[str]:
        """The whole entries these chunks belong to, once each: what "does an entry mention the
        asked number or name?" reads, so a chunk boundary does not hide it ("In an MX record
        like 'foo.co.uk. 1054 IN MX 10 ...'": the example and the rule are different chunks)."""
        out: list[str] = []
        for doc_id in dict.fromkeys(c.doc_id for c in chunks):
            i = self.entry_starts.get(doc_id, len(self.index.chunks))
            parts = []
            while i < len(self.index.chunks) and self.index.chunks[i].doc_id == doc_id:
                parts.append(self.index.chunks[i].embed_text())
                i += 1
            out.append("\n".join(parts))
        return out

    @cached_property
    def bm25(self) -> bm25s.BM25:
        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG on import
        corpus_tokens = [tokenize(c.embed_text()) or ["<empty>"] for c in self.index.chunks]
        model = bm25s.BM25()
        if corpus_tokens:
            model.index(corpus_tokens, show_progress=False)
        return model

    @cached_property
    def _file_names(self) -> frozenset[str]:
        """The words of the corpus files' names: a page saved as "base-model-insertchat.md"
        is what "According to InsertChat, ...?" asks about, though its prose never says it."""
        return frozenset(
            t for f in {c.file for c in self.index.chunks} for t in tokenize(Path(f).stem)
        )

    def unknown_names(self, question: str) -> list[str]:
        """Names the question asks about that no passage of the corpus mentions ("When did
        Microsoft buy Activision?", "What does 'doxxing' mean?": quotes mark a name too):
        whatever passage comes close, it is about something else."""
        vocabulary = self.bm25.vocab_dict if len(self.index) else {}
        return [
            name
            for name in dict.fromkeys([*proper_names(question), *quoted_terms(question)])
            if (terms := tokenize(name))
            and not any(t in vocabulary or t in self._file_names for t in terms)
        ]

    def unknown_term(self, lookup: Lookup | None, *, word: bool = True) -> list[str]:
        """A looked-up term of two to four words that no entry is, no title holds and no
        passage says ("What is a Bloom filter?"): the passages that come close are about
        something else (the "filter" entry). A phrase such as "LoRA and QLoRA for" is no
        term, and a word alone may be a paraphrase, unless the corpus never uses it."""
        if lookup is None or lookup.found or lookup.near:
            return []
        words = normalize(lookup.term).split(" ")
        if len(words) == 1:  # "What is copycenter?": a word no passage uses at all
            return self.unknown_names(f"'{lookup.term}'") if word else []
        if not 2 <= len(words) <= 4 or words[0] in _NOT_TERM_ENDS or words[-1] in _NOT_TERM_ENDS:
            return []
        if _IN_CONTEXT & set(words[1:-1]):
            return []  # "the MTU on Ethernet": a term asked about in a setting, not one term
        return [] if self._says(" ".join(words)) else [lookup.term]

    def _says(self, phrase: str) -> bool:
        """Does a passage say the phrase, as words ("java rmi.")? Such a passage holds all
        its words, so it is among the phrase's best BM25 hits."""
        said = re.compile(rf"(?<![\w.-]){re.escape(phrase)}(?![\w-])")
        ids, _ = self.lexical(phrase, 20)
        return any(said.search(normalize(self.index.chunks[int(i)].embed_text())) for i in ids)

    def dense(self, query_vec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self.index))
        if k == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores, ids = self.index.faiss_index.search(query_vec.reshape(1, -1), k)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def lexical(self, question: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        tokens = query_terms(question)
        if not tokens or not len(self.index):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores = self.bm25.get_scores(tokens)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[scores[top] > 0]
        return top, scores[top]

    def run(self, question: str, top_k: int | None = None) -> Retrieval:
        """The top_k passages for a question, and whether the corpus covers it at all."""
        k = top_k or self.settings.top_k
        timings: dict[str, float] = {}
        asked = asked_sentence(question)
        with _timed(timings, "embed_ms"):
            qvec = encode_query(self.embedder, question)
            # the asked sentence alone, when it says something: "Back to what?" does not
            alone = asked != question.strip() and len(query_terms(asked)) >= 2
            also = [encode_query(self.embedder, asked)] if alone else []
        ranking = self._rank(question, [qvec, *also], timings)
        with _timed(timings, "lookup_ms"):
            lookup, part = self._named_first(question, ranking, qvec)
            pages = self.named_pages(question)
            ranking.ranked = self.reorder.named_page(pages, ranking.ranked)
        hits = self._hits(ranking, qvec, k)
        if not (lookup is not None and lookup.found):  # a looked-up entry is the answer
            with _timed(timings, "sentences_ms"):
                hits = self._closest_sentence(ranking, qvec, hits)
        timings["total_ms"] = sum(v for key, v in timings.items() if key.endswith("_ms"))
        coverage = 0.0 if ranking.best_bm25 is None else self.coverage(question, ranking.best_bm25)
        # one word asked about ("What is copycenter?"), not a part's nor a bare one ("true?")
        word = part is None and bool(_ASKS_WHAT.match(asked))
        # "who was the original author of troff?" looks up a role, not a term
        term = None if answer_type(question) == "person" else lookup or part
        unknown = self.unknown_names(question) + self.unknown_term(term, word=word)
        return Retrieval(
            question=question,
            hits=hits,
            covered=not unknown and self._covers(hits, ranking.best_dense, coverage, lookup, pages),
            best_dense=ranking.best_dense,
            timings=timings,
            lexical_coverage=coverage,
            lookup=lookup,
            cutoff=self.cutoff,
            unknown_names=unknown,
            named=tuple(self.terms.named(question)) if self.terms is not None else (),
            pages=pages,
        )

    def _named_first(
        self, question: str, ranking: _Ranking, qvec: np.ndarray
    ) -> tuple[Lookup | None, Lookup | None]:
        """Put first what the question names (see reorder.py); the term it looks up, or else
        the term one of its parts looks up ("What does KIBO stand for? And who is Kibo?")."""
        if self.terms is None:
            ranking.ranked = self.reorder.holding_quote(question, ranking.ranked)
            return None, None
        lookup = self.terms.lookup(question)
        part = self.terms.lookup_part(question) if lookup is None else None
        if lookup is not None and lookup.found:
            ranking.ranked = self.reorder.promote(lookup, ranking.ranked, qvec)
        elif part is not None and part.found:  # its entry's opening is read, not the answer
            ranking.ranked = self.reorder.include(list(part.doc_ids), ranking.ranked, opening=True)
        elif quoted := self.terms.quoted(question):
            # "According to InsertChat, a good page about 'base model' ...": that page's entry
            named = [
                d for d in quoted if self.index.chunks[self.entry_starts[d]].page_named_in(question)
            ]
            ranking.ranked = self.reorder.include(
                named or quoted, ranking.ranked, opening=asks_origin(question)
            )
        else:
            ranking.ranked = self.reorder.holding_quote(question, ranking.ranked)
        return lookup, part

    def _rank(self, question: str, qvecs: list[np.ndarray], timings: dict[str, float]) -> _Ranking:
        """Dense search (for the whole question, and for its asked sentence when it has
        context around it), BM25 (unless dense only), and their fusion, each timed."""
        n = max(self.settings.candidates, self.settings.top_k)
        with _timed(timings, "dense_ms"):
            dense = [self.dense(v, n) for v in qvecs]
        b_ids: np.ndarray = np.zeros(0, dtype=np.int64)
        b_scores: np.ndarray = np.zeros(0, dtype=np.float32)
        if self.settings.mode != "dense":
            with _timed(timings, "bm25_ms"):
                b_ids, b_scores = self.lexical(question, n)
        with _timed(timings, "fusion_ms"):
            ranked = self.fuse(dense, b_ids, b_scores)
        dense_of = _best_cosines(dense)
        return _Ranking(
            ranked=ranked,
            dense_of=dense_of,
            bm25_of={int(i): float(s) for i, s in zip(b_ids, b_scores, strict=True)},
            best_dense=max(dense_of.values(), default=-1.0),
            best_bm25=int(b_ids[0]) if len(b_ids) else None,
        )

    def _hits(self, ranking: _Ranking, qvec: np.ndarray, k: int) -> list[Hit]:
        dense_of = ranking.dense_of
        for i, _ in ranking.ranked[:k]:  # BM25-only hits get a cosine too, for display
            if i not in dense_of:
                dense_of[i] = float(self.index.vectors[i] @ qvec)
        return [
            Hit(self.index.chunks[i], score, dense_of.get(i), ranking.bm25_of.get(i), rank)
            for rank, (i, score) in enumerate(ranking.ranked[:k])
        ]

    def _closest_sentence(self, ranking: _Ranking, qvec: np.ndarray, hits: list[Hit]) -> list[Hit]:
        """The hits, with the chunk holding the question's closest sentence marked to be read
        when the reader would not read it: appended when it is below the top_k."""
        pool = [i for i, _ in ranking.ranked[: self.settings.sentence_pool]]
        if not pool:
            return hits
        whole = self.index.vectors[pool] @ qvec
        pick = self.picker.run([self.index.chunks[i] for i in pool], qvec, list(whole))
        if pick is None or pick < self.settings.read:
            return hits
        if pick < len(hits):
            return [replace(h, picked=True) if n == pick else h for n, h in enumerate(hits)]
        i, score = ranking.ranked[pick]
        dense = ranking.dense_of.get(i, float(self.index.vectors[i] @ qvec))
        return [*hits, Hit(self.index.chunks[i], score, dense, ranking.bm25_of.get(i), pick, True)]

    def _covers(
        self,
        hits: list[Hit],
        best_dense: float,
        coverage: float,
        lookup: Lookup | None,
        pages: frozenset[str],
    ) -> bool:
        """The corpus covers the question: a close enough passage, one holding most of the
        question's terms, an entry titled with the term looked up, or a passage of the page
        the question names ("Does the Envisioning glossary agree with that?")."""
        s = self.settings
        return bool(hits) and (
            best_dense >= self.cutoff
            or coverage >= s.lexical_coverage
            or (lookup is not None and lookup.found)
            or bool(pages & {h.chunk.file for h in hits})
        )

    @cached_property
    def _pages(self) -> list[Chunk]:
        """A chunk of each file that is one page: a dictionary file holds thousands of
        entries, and "According to FOLDOC, ...?" names no page of it."""
        docs: dict[str, set[str]] = {}
        for c in self.index.chunks:
            docs.setdefault(c.file, set()).add(c.doc_id)
        return [c for c in self.index.chunks if c.opens_entry and len(docs[c.file]) == 1]

    def named_pages(self, question: str) -> frozenset[str]:
        """The files of the pages the question names ("What does WikiWalls say ...?")."""
        return frozenset(c.file for c in self._pages if c.page_named_in(question, by_name=True))

    def fuse(
        self,
        dense: list[tuple[np.ndarray, np.ndarray]],
        b_ids: np.ndarray,
        b_scores: np.ndarray,
    ) -> list[tuple[int, float]]:
        """(chunk, score) best first: one retriever's own scores, or weighted RRF of all the
        lists (one dense list per query vector, and BM25's)."""
        s = self.settings
        if s.mode == "dense":
            return sorted(_best_cosines(dense).items(), key=lambda kv: (-kv[1], kv[0]))
        if s.mode == "bm25":
            return [(int(i), float(x)) for i, x in zip(b_ids, b_scores, strict=True)]
        fused: dict[int, float] = {}
        lists = [(ids, s.dense_weight) for ids, _ in dense] + [(b_ids, 1.0)]
        for ids, weight in lists:
            for rank, i in enumerate(ids):
                fused[int(i)] = fused.get(int(i), 0.0) + weight / (s.rrf_k + rank + 1)
        return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))

    def coverage(self, question: str, i: int) -> float:
        """Share of the question's terms found in chunk i. MiniLM has never seen words like
        "LoRA"; when every rare term of a question is in one passage, the corpus covers it
        even if the cosine is low."""
        q = set(query_terms(question))
        if len(q) < 2:
            return 0.0
        return len(q & set(tokenize(self.index.chunks[i].embed_text()))) / len(q)
