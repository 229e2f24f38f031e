"""The question-answering pipeline: validate -> rewrite -> retrieve -> one route -> Answer.

Routes, most trustworthy first (the first that answers wins):
1. the question names a glossary entry ("what is X"): that entry's definition (lookup);
2. the question matches an FAQ entry: that entry's own answer;
3. retrieval says the corpus does not cover it, or names a number no passage has: refuse;
4. the reader's best sentences (extractive), which the bundled model then composes into the
   answer under a clause grammar (``compose.py``), kept only when the check says it keeps the
   facts; a model without a grammar (an API) drafts freely instead (``draft.py``), each
   sentence verified before it shows. A lookup's definition is composed the same way.
The index lives in one immutable ``_State`` that a rebuild swaps whole: each answer is computed
against exactly one index even while a rebuild happens."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from chatbot.acronyms import asked_expansion, spells_out
from chatbot.answer import (
    OPINION_NOTE,
    REFUSAL,
    Answer,
    AnswerMode,
    Citation,
    Partial,
    clean_question,
    unknown_names_note,
)
from chatbot.answer_cache import AnswerCache
from chatbot.chunking import Chunk, Chunker
from chatbot.compose import Composer, GroundedGenerator, labelled
from chatbot.config import Settings
from chatbot.draft import Drafter
from chatbot.embedding import Embedder, create_embedder, encode_query
from chatbot.gaps import GapLog
from chatbot.generate import GenerationError, Generator, create_generator
from chatbot.index import BuildSummary, IndexStore, IndexUnavailable, LoadedIndex, Progress
from chatbot.kinds import asks_opinion
from chatbot.reader import Scorer, extractive_answer, faq_answer, lookup_answer
from chatbot.relevance import off_topic_probes
from chatbot.retrieve import Hit, Retrieval, Retriever
from chatbot.rewrite import FollowUpRewriter
from chatbot.terms import TermIndex, main_entries
from chatbot.text import asked_sentence, opening_definition, renumber_citations
from chatbot.verify import SupportChecker, attach_citations, unmentioned_specifics

log = logging.getLogger(__name__)


GeneratorFactory = Callable[[], Generator | None]


def _citation(n: int, hit: Hit) -> Citation:
    c = hit.chunk
    return Citation(n, c.doc_id, c.title, c.heading, c.text, round(hit.score, 6), c.chunk_id)


@dataclass
class _Turn:
    """One question on its way through the routes: what each route reads and adds to."""

    question: str
    standalone: str
    retrieval: Retrieval
    hits: list[Hit]
    state: _State
    started: float
    qvec: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    timings: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def finish(self, answer: Answer) -> Answer:
        answer.timings.update(self.timings)
        answer.timings["total_s"] = time.perf_counter() - self.started
        return answer


@dataclass(frozen=True)
class _State:
    index: LoadedIndex
    retriever: Retriever
    faq_chunks: list[Chunk]
    faq_vectors: np.ndarray
    rewriter: FollowUpRewriter


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        generator_factory: GeneratorFactory | None = None,
    ) -> None:
        self.settings = settings
        self.embedder: Embedder = embedder or create_embedder(settings)
        self.store = IndexStore(
            settings.index_dir,
            self.embedder,
            Chunker(settings.chunk_size, settings.chunk_overlap),
            settings.index_type,
            settings.approx_min_vectors,
        )
        self.checker = SupportChecker(settings.support_threshold)
        self.drafter = Drafter(
            checker=self.checker,
            context_tokens=settings.context_tokens,
            max_new_tokens=settings.max_new_tokens,
            prompt_passages=settings.prompt_passages,
            max_sentences=settings.max_answer_sentences,
        )
        self.composer = Composer(
            min_sentence_share=settings.compose_min_sentence_share,
            min_question_coverage=settings.compose_min_question_coverage,
        )
        self._generator_factory = generator_factory or (lambda: create_generator(settings))
        self._generator: Generator | None = None
        self._generator_loaded = False
        self._generator_error: str = ""
        self._gen_lock = threading.Lock()
        self._rebuild_lock = threading.Lock()
        self._state: _State | None = None
        self.answer_cache = AnswerCache(settings.preset_cache_dir)  # read by chatbot.presets
        self.warm_lock = threading.Lock()  # one preset warm-up at a time
        self.last_build: BuildSummary | None = None
        self.gap_log: GapLog | None = None  # set by the served app: CLI runs are not logged

    # ---------------------------------------------------------------------------- index
    def ensure_index(
        self, auto_build: bool = True, progress: Progress | None = None
    ) -> LoadedIndex:
        """Load the index; build or rebuild it first when missing, stale or unusable."""
        if self._state is not None:
            return self._state.index
        reasons = self.store.stale_reasons(self.settings.corpus_dir)
        if reasons and auto_build:
            log.info("index needs a rebuild: %s", "; ".join(reasons))
            self.rebuild(progress=progress)
            assert self._state is not None
            return self._state.index
        try:
            index = self.store.load()
        except IndexUnavailable as exc:
            if not auto_build:
                raise
            summary = self.rebuild(full=True, progress=progress)
            summary.note = f"index was damaged ({exc}); rebuilt"
            log.warning(summary.note)
            assert self._state is not None
            return self._state.index
        self._install(index)
        return index

    def rebuild(self, full: bool = False, progress: Progress | None = None) -> BuildSummary:
        """Rebuild on disk, then switch the live index; on failure the old one stays in use."""
        with self._rebuild_lock:
            summary = self.store.build(self.settings.corpus_dir, full=full, progress=progress)
            if self._state is None or summary.build_id != self._state.index.build_id:
                self._install(self.store.load())
            self.last_build = summary
            return summary

    def _install(self, index: LoadedIndex) -> None:
        terms = TermIndex.build(index.documents)
        retriever = self._make_retriever(index, self.settings.retrieval_mode, terms)
        _ = retriever.bm25  # build BM25 and the entry table now, not on the first question
        _ = retriever.entry_starts, retriever.cutoff
        faq_chunks = [
            c for c in index.chunks if c.kind == "faq" and c.text.lstrip().startswith("#")
        ]
        faq_vectors = (
            self.embedder.encode([c.question or "" for c in faq_chunks])
            if faq_chunks
            else np.zeros((0, 1), dtype=np.float32)
        )
        self._state = _State(index, retriever, faq_chunks, faq_vectors, FollowUpRewriter(terms))
        self.answer_cache.prune(index.fingerprint)

    def _make_retriever(self, index: LoadedIndex, mode: str, terms: TermIndex | None) -> Retriever:
        s = self.settings
        return Retriever(
            index,
            self.embedder,
            top_k=s.top_k,
            candidates=s.candidates,
            mode=mode,
            rrf_k=s.rrf_k,
            relevance_threshold=s.relevance_threshold,
            relevance_margin=s.relevance_margin,
            probes=off_topic_probes() if s.relevance_calibration else (),
            dense_weight=s.dense_weight,
            lexical_coverage=s.lexical_coverage,
            sentence_pool=s.sentence_pool,
            sentence_reach=s.sentence_reach,
            read=s.prompt_passages,
            terms=terms if s.term_lookup else None,
        )

    @property
    def index(self) -> LoadedIndex:
        return self.ensure_index()

    def retriever(self, mode: str | None = None) -> Retriever:
        """The live retriever, or one over the same index with another mode (for evaluation)."""
        self.ensure_index()
        assert self._state is not None
        live = self._state.retriever
        if mode is None or mode == live.mode:
            return live
        other = self._make_retriever(live.index, mode, live.terms)
        if mode != "dense":
            other.__dict__["bm25"] = live.bm25  # share the already-built BM25 index
        return other

    def presets(self) -> list[str]:
        """Every FAQ question in the corpus, in corpus order: the UI's preset buttons. A glossary
        without any (a dictionary) offers "What is X?" for the entries it says most about."""
        self.ensure_index()
        assert self._state is not None
        if faq := list(dict.fromkeys(c.question or "" for c in self._state.faq_chunks)):
            return faq
        main = main_entries(self._state.index.chunks, self.settings.presets_shown)
        return [f"What is {t}?" for t in main]

    # ---------------------------------------------------------------------------- model
    @property
    def generator(self) -> Generator | None:
        """Loaded on first use (or by preload()); None when no model can be used."""
        with self._gen_lock:
            if not self._generator_loaded:
                try:
                    self._generator = self._generator_factory()
                except Exception as exc:  # missing package, corrupted weights, bad endpoint
                    log.error("language model unavailable, answering extractively: %s", exc)
                    self._generator_error = str(exc)
                    self._generator = None
                self._generator_loaded = True
            return self._generator

    @property
    def generator_name(self) -> str:
        gen = self._generator if self._generator_loaded else None
        if gen is not None:
            return gen.name
        return "extractive" if self._generator_loaded else self.settings.model

    def preload(self) -> threading.Thread:
        """Load index, embedder and model in the background so the first question is fast."""

        def work() -> None:
            try:
                self.ensure_index()
                self.embedder.encode(["warm up"])
                _ = self.generator
            except Exception:
                log.exception("preloading failed")

        thread = threading.Thread(target=work, name="preload", daemon=True)
        thread.start()
        return thread

    # ---------------------------------------------------------------------------- answers
    def retrieve(self, question: str) -> Retrieval:
        q = clean_question(question, self.settings.max_question_chars)
        self.ensure_index()
        assert self._state is not None
        return self._state.retriever.run(q)

    def ask(self, question: str, history: Sequence[str] = (), *, record: bool = True) -> Answer:
        final = None
        for event in self.stream(question, history, record=record):
            if isinstance(event, Answer):
                final = event
        assert final is not None
        return final

    def stream(
        self, question: str, history: Sequence[str] = (), *, record: bool = True
    ) -> Iterator[Partial | Answer]:
        """Yield Partial updates while the model writes, then the final verified Answer.

        ``history``: the user's earlier questions, oldest first (capped server-side). Routes are
        tried in the module docstring's order of preference; the first that answers wins.
        With ``record`` and a ``gap_log`` set (the served app), the final answer is logged for
        the knowledge-gap report; preset warm-ups and evaluations pass ``record=False``.
        """
        for event in self._stream(question, history):
            if record and self.gap_log is not None and isinstance(event, Answer):
                try:
                    self.gap_log.observe(event, low_confidence=self.settings.low_confidence_score)
                except OSError:  # a full disk must not cost the user the answer
                    log.warning("cannot write the gap log", exc_info=True)
            yield event

    def _stream(self, question: str, history: Sequence[str]) -> Iterator[Partial | Answer]:
        t_start = time.perf_counter()
        q = clean_question(question, self.settings.max_question_chars)
        self.ensure_index()
        state = self._state  # one consistent index for this whole answer
        assert state is not None
        past = [h for h in history if isinstance(h, str)][-self.settings.max_history_turns :]
        if self.settings.max_history_turns == 0:
            past = []
        standalone = state.rewriter.run(q, past)
        retrieval = state.retriever.run(standalone)
        turn = _Turn(q, standalone, retrieval, list(retrieval.hits), state, t_start)
        turn.timings["retrieve_s"] = time.perf_counter() - t_start
        turn.qvec = encode_query(self.embedder, standalone)
        for route in (self._route_lookup, self._route_faq, self._route_refusal):
            answer = route(turn)
            if answer is not None:
                yield turn.finish(
                    self._compose(turn, answer) if answer.mode == "lookup" else answer
                )
                return
        generator = self.generator
        if generator is None or isinstance(generator, GroundedGenerator):
            if self._generator_error:
                turn.note = (
                    "The language model is unavailable; this answer is taken from the passages."
                )
            yield turn.finish(self._compose(turn, self._route_extractive(turn)))
            return
        final: Answer | None = None
        for event in self._route_draft(turn, generator):
            if isinstance(event, Answer):
                final = event
            else:
                yield event
        yield turn.finish(final or self._route_extractive(turn))

    def _route_lookup(self, turn: _Turn) -> Answer | None:
        """ "What is X?" with an entry titled X: its opening definition; with only compounds of
        X in the glossary: say there is no entry, and offer the compounds."""
        lookup = turn.retrieval.lookup
        if lookup is None:
            return None
        if lookup.found:
            # the entry's first chunk only: later chunks are not its definition, unless the
            # first holds notes only ("talk mode n."), and its first sense follows
            entries: dict[str, tuple[int, Chunk]] = {}
            for n, h in enumerate(turn.hits, 1):
                seen = entries.get(doc := h.chunk.doc_id)
                if doc in lookup.doc_ids and not (seen and opening_definition(seen[1].text)):
                    entries[doc] = (n, h.chunk)
            ext = lookup_answer(list(entries.values()), question=turn.standalone)
            acronym = asked_expansion(turn.standalone)
            if not ext.text or (acronym and not spells_out(ext.text, acronym)):
                return None  # the reader finds "CLUT stands for colour look-up table"
            return self._answer(turn, ext.text, ext.cited, "lookup")
        if lookup.near:
            answer = self._refusal(turn)
            answer.answer = (
                f"The glossary has no entry for “{lookup.term}”. "
                f"Closest entries: {', '.join(lookup.near)}."
            )
            answer.suggestions = [f"What is {t}?" for t in lookup.near[:3]]
            return answer
        return None

    def _route_faq(self, turn: _Turn) -> Answer | None:
        faq_hit, faq_sim = self._faq_match(turn.state, turn.qvec)
        turn.timings["faq_similarity"] = faq_sim
        if faq_hit is None:
            return None
        if all(h.chunk.chunk_id != faq_hit.chunk_id for h in turn.hits):
            turn.hits = [Hit(faq_hit, 1.0, faq_sim, None, 0), *turn.hits[: self.settings.top_k - 1]]
        n = next(i for i, h in enumerate(turn.hits) if h.chunk.chunk_id == faq_hit.chunk_id) + 1
        ext = faq_answer(faq_hit, n, asked=turn.standalone)
        return self._answer(turn, ext.text, ext.cited, "faq")

    def _route_refusal(self, turn: _Turn) -> Answer | None:
        """Nothing relevant, or the question names a number or a product code that no passage
        mentions (``unmentioned_specifics``)."""
        texts = turn.state.retriever.entry_texts(h.chunk for h in turn.hits)
        if asks_opinion(turn.standalone):
            return self._refusal(turn, OPINION_NOTE)
        if not turn.retrieval.covered or unmentioned_specifics(turn.standalone, texts):
            return self._refusal(turn, unknown_names_note(turn.retrieval.unknown_names))
        return None

    def _refusal(self, turn: _Turn, note: str = "") -> Answer:
        return Answer(
            question=turn.question,
            answer=REFUSAL,
            refused=True,
            citations=[],
            sources=[h.to_dict() for h in turn.hits],
            timings={},
            mode="refusal",
            standalone_question=turn.standalone,
            suggestions=self._suggestions(turn.state, turn.qvec),
            note=note,
        )

    def _route_draft(self, turn: _Turn, generator: Generator) -> Iterator[Partial | Answer]:
        """A free draft (generators without a grammar), kept as far as it is verified."""
        for event in self.drafter.run(
            generator, turn.standalone, turn.hits, turn.timings, turn.started
        ):
            if isinstance(event, Partial):
                yield event
                continue
            turn.note = turn.note or (event.note if not event.text else "")
            if event.text:
                answer = self._answer(turn, event.text, event.cited, "generated")
                answer.note = event.note
                yield answer

    def _compose(self, turn: _Turn, answer: Answer) -> Answer:
        """The model's composition of ``answer``'s sentences when the check keeps it, else
        ``answer`` itself; nothing is shown before this decision."""
        if answer.refused or not self.settings.compose:
            return answer  # before self.generator: no model is loaded for nothing
        generator = self.generator
        if not isinstance(generator, GroundedGenerator):
            return answer
        t0 = time.perf_counter()
        try:
            result = self.composer.run(turn.standalone, answer.answer, generator)
        except GenerationError as exc:
            log.warning("composition failed: %s", exc)
            return answer
        counter = generator.count_tokens if isinstance(generator, Generator) else None
        turn.timings.update(result.timings(t0, turn.started, counter))
        if result.problem:
            log.info("composition not kept: %s", result.problem)
            return answer
        cited = [c.n for c in answer.citations]
        chunks = [turn.hits[n - 1].chunk for n in cited]
        text, local = attach_citations(result.text, chunks)
        text = renumber_citations(text, cited)
        text = labelled(answer.answer, text, turn.retrieval.lookup, turn.standalone, chunks)
        return self._answer(turn, text, [cited[n - 1] for n in local], "generated")

    def _route_extractive(self, turn: _Turn) -> Answer:
        gen = self.generator if self.settings.reader_lm else None
        also = frozenset(n for n, h in enumerate(turn.hits) if h.picked)
        ext = extractive_answer(
            turn.standalone,
            [h.chunk for h in turn.hits],
            self.embedder,
            scorer=gen if isinstance(gen, Scorer) else None,
            max_passages=self.settings.prompt_passages,
            also=also,
            named=frozenset(turn.retrieval.named),
            pages=turn.retrieval.pages,
        )
        cited = turn.state.retriever.entry_texts(turn.hits[n - 1].chunk for n in ext.cited)
        # not about the "M3" asked for if no cited entry names it; a premise's numbers ("filed
        # under 2021. What year ...?") were checked against all passages in _route_refusal
        if not ext.text or unmentioned_specifics(asked_sentence(turn.standalone), cited):
            return self._refusal(turn)
        answer = self._answer(turn, ext.text, ext.cited, "extractive")
        answer.note = turn.note
        return answer

    def _faq_match(self, state: _State, qvec: np.ndarray) -> tuple[Chunk | None, float]:
        if not len(state.faq_chunks):
            return None, 0.0
        sims = state.faq_vectors @ qvec
        best = int(np.argmax(sims))
        sim = float(sims[best])
        if sim >= self.settings.faq_match_threshold:
            return state.faq_chunks[best], sim
        return None, sim

    def related(self, question: str, n: int = 3) -> list[str]:
        """The corpus FAQ questions closest to ``question`` (no model call): follow-ups."""
        self.ensure_index()
        assert self._state is not None
        asked = question.strip().lower()
        qvec = encode_query(self.embedder, question)
        out = self._suggestions(self._state, qvec, n + 1)
        return [q for q in out if q.strip().lower() != asked][:n]

    def _suggestions(self, state: _State, qvec: np.ndarray, n: int = 3) -> list[str]:
        if not len(state.faq_chunks):
            return []
        order = np.argsort(-(state.faq_vectors @ qvec))[:n]
        return [state.faq_chunks[int(i)].question or "" for i in order]

    def _answer(self, turn: _Turn, text: str, cited: list[int], mode: AnswerMode) -> Answer:
        hits = turn.hits
        citations = [_citation(n, hits[n - 1]) for n in cited if 1 <= n <= len(hits)]
        return Answer(
            question=turn.question,
            answer=text,
            refused=False,
            citations=citations,
            sources=[h.to_dict() for h in hits],
            timings={},
            mode=mode,
            standalone_question=turn.standalone,
        )
