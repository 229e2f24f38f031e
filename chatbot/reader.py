"""Answers composed from the passages' own sentences: FAQ answers, lookups, and the
extractive answer that states the asked fact.

A 135M model invents names and flips yes/no answers when it writes, but it ranks well: how likely
the question is after a sentence (query likelihood, as in UPR) finds the sentence that answers
it. So the extractive answer picks sentences by embedding similarity and word overlap first,
then re-ranks the best few with the model when one is loaded, and prefers a sentence holding the
kind of fact asked for (a name for "who", a year for "when", a number for "how many").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from chatbot.chunking import Chunk
from chatbot.embedding import Embedder
from chatbot.retrieve import tokenize
from chatbot.text import opening_definition, split_sentences, strip_markup

AnswerType = Literal["person", "time", "number", "reason", "yesno", "other"]
_TYPE_PATTERNS: list[tuple[AnswerType, re.Pattern[str]]] = [
    ("person", re.compile(r"^(?:who|whom|whose)\b|\b(?:by whom|which (?:person|company))\b", re.I)),
    ("time", re.compile(r"^(?:when|(?:in )?what year|(?:in )?which year|since when)\b", re.I)),
    ("number", re.compile(r"^(?:how (?:many|much|big|large|long|fast|old|wide))\b", re.I)),
    ("reason", re.compile(r"^(?:why|what (?:is|was) the reason|how come)\b", re.I)),
    (
        "yesno",
        re.compile(
            r"^(?:is|are|was|were|can|could|does|do|did|should|will|would|has|have)\b", re.I
        ),
    ),
]
_HAS_TYPE: dict[AnswerType, re.Pattern[str]] = {
    "person": re.compile(
        r"\b(?:by|from|of|at|with)\s+[A-Z][\w.-]+|(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+\s+[A-Z][a-z]+"
    ),
    "time": re.compile(
        r"\b(?:1[5-9]\d\d|20\d\d)s?\b|\b(?:January|February|March|April|May|June|July|August|"
        r"September|October|November|December)\b"
    ),
    "number": re.compile(
        r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|sixteen|"
        r"thirty-two|sixty-four|hundred|thousand|million|billion|dozen|single|double|half)\b",
        re.I,
    ),
    "reason": re.compile(
        r"\b(?:because|since|so that|due to|named after|in order to|as a result|reason|"
        r"caused by|results? from|comes? from|derived from|after the)\b",
        re.I,
    ),
}
TYPE_BONUS = 1.0  # in standard deviations of the candidates' scores


@runtime_checkable
class Scorer(Protocol):
    """Something that can tell how likely a continuation is after each prefix (an LM)."""

    def score(self, prefixes: list[str], continuation: str) -> list[float]: ...


def answer_type(question: str) -> AnswerType:
    q = question.strip()
    return next((t for t, p in _TYPE_PATTERNS if p.search(q)), "other")


def holds_type(sentence: str, kind: AnswerType) -> bool:
    pattern = _HAS_TYPE.get(kind)
    return True if pattern is None else bool(pattern.search(sentence))


@dataclass(frozen=True)
class Extract:
    text: str
    cited: list[int]


def faq_answer(chunk: Chunk, n: int, max_chars: int = 420) -> Extract:
    """The FAQ entry's own answer, cut to its leading sentences (where the substance is)."""
    sentences = split_sentences(chunk.body_without_heading())
    out: list[str] = []
    for s in sentences:
        if out and len(" ".join(out)) + len(s) > max_chars:
            break
        out.append(strip_markup(s))
    return Extract(" ".join(out) + f" [{n}]", [n])


def lookup_answer(entries: Sequence[tuple[int, Chunk]], max_senses: int = 2) -> Extract:
    """A lookup answered from the entry that is the term: its opening definition, cited.

    ``entries``: (citation number, the entry's first chunk), best retrieved first. A second entry
    with the same title (a homonym, or the same term from another source) is shown too, so one
    sense never hides the other.
    """
    parts: list[str] = []
    cited: list[int] = []
    for n, chunk in entries:
        definition = opening_definition(chunk.text)
        if not definition or len(cited) >= max_senses:
            continue
        definition = definition[0].upper() + definition[1:]
        if not cited:
            parts.append(f"{chunk.title[:1].upper()}{chunk.title[1:]}: {definition} [{n}]")
        else:
            parts.append(f"Another entry for {chunk.title}: {definition} [{n}]")
        cited.append(n)
    return Extract(" ".join(parts), cited)


@dataclass(frozen=True)
class _Candidate:
    n: int  # passage number, from 1
    pos: int  # sentence position in the passage
    text: str
    title: str


def _candidates(passages: Sequence[Chunk], max_passages: int) -> list[_Candidate]:
    out = []
    for i, chunk in enumerate(passages[:max_passages]):
        for pos, s in enumerate(split_sentences(chunk.body_without_heading() or chunk.text)):
            s = strip_markup(s)
            if len(s.split()) >= 5 and not s.endswith("?"):
                out.append(_Candidate(i + 1, pos, s, chunk.title))
    return out


def _zscore(values: np.ndarray) -> np.ndarray:
    spread = float(values.std())
    return (values - values.mean()) / spread if spread > 1e-9 else values * 0.0


def extractive_answer(
    question: str,
    passages: Sequence[Chunk],
    embedder: Embedder | None,
    max_sentences: int = 2,
    max_passages: int = 3,
    scorer: Scorer | None = None,
    rerank: int = 6,
) -> Extract:
    """The passage sentences that best answer the question, each with its citation.

    Cheap scores (cosine, shared words, passage rank) pick ``rerank`` candidates; the model's
    query likelihood re-ranks them when a scorer is given. A second sentence is added only when
    it scores close to the first, or holds the asked kind of fact the first lacks.
    """
    cands = _candidates(passages, max_passages)
    if not cands:
        return Extract("", [])
    q_tokens = set(tokenize(question))
    lexical = np.array(
        [len(q_tokens & set(tokenize(c.text))) / max(1, len(q_tokens)) for c in cands]
    )
    if embedder is not None:
        vecs = embedder.encode([question] + [c.text for c in cands])
        semantic = vecs[1:] @ vecs[0]
    else:
        semantic = np.zeros(len(cands))
    rank_bonus = np.array(
        [0.06 * (max_passages - c.n) + (0.04 if c.pos == 0 else 0) for c in cands]
    )
    base = semantic + 0.5 * lexical + rank_bonus
    kind = answer_type(question)
    top = [int(i) for i in np.argsort(-base, kind="stable")[: max(1, rerank)]]
    if kind in _HAS_TYPE:  # the sentence holding the asked kind of fact may rank low on words
        top += [
            i for i, c in enumerate(cands) if c.n <= 2 and i not in top and holds_type(c.text, kind)
        ]
    score = _zscore(base[top])
    if scorer is not None and len(top) > 1:
        prefixes = [f"Passage ({cands[i].title}): {cands[i].text}\nQuestion:" for i in top]
        lm = np.array(scorer.score(prefixes, " " + question))
        score = 0.5 * score + _zscore(lm)
    typed = np.array([holds_type(cands[i].text, kind) for i in top])
    if kind in _HAS_TYPE and typed.any():
        score = score + TYPE_BONUS * typed
    chosen = _choose(score, typed, [cands[i].text for i in top], max_sentences)
    picked = sorted((cands[top[c]] for c in chosen), key=lambda c: (c.n, c.pos))
    parts = [f"{c.text} [{c.n}]" for c in picked]
    return Extract(" ".join(parts), list(dict.fromkeys(c.n for c in picked)))


def _choose(score: np.ndarray, typed: np.ndarray, texts: list[str], limit: int) -> list[int]:
    order = [int(i) for i in np.argsort(-score, kind="stable")]
    chosen = [order[0]]
    for idx in order[1:]:
        if len(chosen) >= limit:
            break
        if texts[idx] in (texts[c] for c in chosen):
            continue
        close = score[idx] >= score[chosen[0]] - 1.0
        fills_type = bool(typed[idx]) and not any(typed[c] for c in chosen)
        if close or fills_type:
            chosen.append(idx)
    return chosen
