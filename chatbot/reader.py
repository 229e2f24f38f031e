"""Answers composed from the passages' own sentences: FAQ answers, lookups, and the
extractive answer that states the asked fact.

The extractive answer reads each candidate sentence of the top passages (``candidates``) with
its entry's title and section ("It was written by Robert Corbett" is about Bison), scores it by
cosine, shared words, passage rank, whether the question names its entry, and whether it holds
the kind of fact asked for (a name for "who", a year for "when", a quantity for "how many", a
reason for "why"). A sentence *stating* that fact ("written by X", "in 1964") answers first. A
second sentence is added when it adds an asked-for fact: another kind the question asks for
("..., and by whom?"), the definition for "what is X and why ...", question words the first
lacks, or a later part of the question (``parts.py``). A lone sentence keeps the next one of its
passage: a definition is often followed by what was asked ("Featurectomies come in two
flavors, ..."), in words the question does not share (README, Quality). A yes/no question is
settled by a sentence that asserts or denies ("It is not in the public domain"), not by the
entry's description: when the best sentence only describes, a settling one scoring close to it
is added and said first.

A 135M model invents names and flips yes/no answers when it writes, but it can rank: how likely
the question is after a sentence (query likelihood, as in UPR) re-ranks the candidates when a
scorer is given (``CHATBOT_READER_LM=1``; measured, not the default).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np

from chatbot.candidates import (
    CITED_WORK,
    Candidate,
    candidates,
    drop_polarity,
    named_in,
    settling_words,
    words,
)
from chatbot.chunking import Chunk
from chatbot.embedding import Embedder, encode_cached
from chatbot.kinds import (
    HAS_TYPE,
    LEAD_PHRASE,
    NAMES_IT,
    ORIGIN,
    STRONG_TYPE,
    AnswerType,
    answer_type,
    asked_types,
    asking,
    asks_alias,
    asks_origin,
    asks_parts,
    asks_term,
    holds_type,
    names_person,
    says_who,
    type_strength,
)
from chatbot.needs import needed_form, owned_value
from chatbot.parts import answer_parts, stating_first
from chatbot.terms import lookup_term, normalize
from chatbot.text import (
    asked_sense,
    opening_definition,
    question_sentences,
    split_sentences,
    strip_markup,
)


@dataclass(frozen=True)
class Weights:
    """How the cheap sentence features add up (cosine units); chosen on the dev questions."""

    lexical: float = 0.5  # share of the question's words in the sentence (and its entry title)
    lexical_yesno: float = 1.0  # a yes/no question is answered by the sentence stating it
    rank: float = 0.06  # per rank of the passage in retrieval
    opening: float = 0.04  # the passage's first sentence
    named: float = 0.15  # the sentence's entry is named in the question
    best: float = 0.0  # the sentence's entry is the best retrieved passage's
    typed: float = 0.1  # the sentence states the asked kind of fact (half when it only holds one)
    lm: float = 0.5  # query likelihood, in standard deviations, when a scorer is given
    close: float = 0.15  # a second sentence scoring within this of the first is "close"
    parts: float = 3.0  # "close" times this for the first's passage when a second part is asked
    settles: float = 0.5  # a yes/no answer's asserting or denying second sentence, within this
    version: float = 0.3  # the sentence's entry is another version than the one asked about
    filler: float = 0.5  # a templated sentence that states nothing (candidates._filler)
    stated_first: bool = True  # a sentence stating the asked kind of fact answers first
    following: bool = True  # a lone answer sentence keeps the next one of its passage


WEIGHTS = Weights()


@runtime_checkable
class Scorer(Protocol):
    """Something that can tell how likely a continuation is after each prefix (an LM)."""

    def score(self, prefixes: list[str], continuation: str) -> list[float]: ...


@dataclass(frozen=True)
class Extract:
    text: str
    cited: list[int]


# "Yes, ..." / "No, ..." answers the question its passage was written under. Said to another
# question it can assert the opposite: the FAQ "Can I use a foundation model without fine-tuning
# it?" answers "Yes, through few-shot prompting ...", which to "Do I have to fine-tune it?" or
# "Is it built for one narrow job?" reads as the wrong yes. Only the punctuated word goes: "No
# single model ..." is not a denial.
def faq_answer(chunk: Chunk, n: int, max_chars: int = 420, *, asked: str = "") -> Extract:
    """The FAQ entry's own answer, cut to its leading sentences (where the substance is). Its
    "Yes," or "No," stays only when ``asked`` is the entry's own question, word for word."""
    own = not asked or words(asked) == words(chunk.question or "")
    sentences = split_sentences(chunk.body_without_heading())
    out: list[str] = []
    for s in sentences:
        if out and len(" ".join(out)) + len(s) > max_chars:
            break
        s = strip_markup(s)
        out.append(s if own or out else drop_polarity(s) or s)
    return Extract(" ".join(out) + f" [{n}]", [n])


def lookup_answer(
    entries: Sequence[tuple[int, Chunk]], max_senses: int = 2, question: str = ""
) -> Extract:
    """A lookup answered from the entry that is the term: its opening definition, or the
    definition of the sense whose field the question names, cited.

    ``entries``: (citation number, the entry's first chunk), best retrieved first. A second entry
    with the same title (a homonym, or the same term from another source) is shown too, so one
    sense never hides the other.
    """
    parts: list[str] = []
    cited: list[int] = []
    for n, chunk in entries:
        definition = opening_definition(asked_sense(chunk.text, question, chunk.title))
        if not definition or len(cited) >= max_senses:
            continue
        definition = definition[0].upper() + definition[1:]
        if not cited:
            parts.append(f"{chunk.title[:1].upper()}{chunk.title[1:]}: {definition} [{n}]")
        else:
            parts.append(f"Another entry for {chunk.title}: {definition} [{n}]")
        cited.append(n)
    return Extract(" ".join(parts), cited)


# a name and its version: "MPC Level 2", "Windows 95", "Python 3.12"
_VERSIONED = re.compile(r"\b([A-Za-z][\w-]*)\s+(\d+(?:\.\d+)*)\b")


def other_version(question: str, title: str) -> bool:
    """Is the entry another version of what the question names? "the MPC Level 2 spec" is not
    answered from "MPC Level 1 Specification", which shares all its other words."""
    asked = {name.lower(): number for name, number in _VERSIONED.findall(question)}
    return any(
        asked.get(name.lower(), number) != number for name, number in _VERSIONED.findall(title)
    )


_TERM_ITEM = re.compile(r"^(?P<term>[^:]{2,60}): ")


def _defines_another(c: Candidate, term: str | None) -> bool:
    """ "Fine-Tuning: Adapting a pre-trained model ..." is a term list's item defining
    fine-tuning: no answer to "what is pre-training?", though it says "pre-trained"."""
    m = _TERM_ITEM.match(c.text)
    if term is None or m is None or not c.context.endswith(m.group("term")):
        return False
    defined, asked = normalize(m.group("term")), normalize(term)
    return asked not in defined and defined not in asked


@dataclass(frozen=True)
class _Reading:
    """What choosing the sentences reads beside their scores, worked out once per answer."""

    limit: int  # at most this many sentences
    w: Weights
    openings: frozenset[int]  # the passages that open their entry
    needed: Callable[[Candidate], bool] | None  # the form the question needs (needs.py)


def _zscore(values: np.ndarray) -> np.ndarray:
    spread = float(values.std())
    return (values - values.mean()) / spread if spread > 1e-9 else values * 0.0


def _base_scores(
    question: str, cands: list[Candidate], embedder: Embedder | None, kind: AnswerType, w: Weights
) -> np.ndarray:
    """Cheap scores: cosine of the sentence read with its entry's title and section, shared
    words (the title's count as the sentence's: "It was written by ..." is about the entry),
    the passage's retrieval rank, whether the question names the sentence's entry, and whether
    the sentence holds the asked kind of fact. For "What's the IBM slang for ...?" an entry's
    title counts only when the question names it: "IBM discount" is no clue to "heatseeker"."""
    if asks_term(question):  # the entry's name is the answer asked for, not a clue to it
        cands = [c if c.focus or c.pos < 0 else replace(c, context="") for c in cands]
    q_tokens = words(LEAD_PHRASE.sub("", question.strip()))
    said = settling_words if kind == "yesno" else words
    lexical = np.array(
        [len(q_tokens & said(f"{c.context} {c.text}")) / max(1, len(q_tokens)) for c in cands]
    )
    if embedder is not None:
        vecs = encode_cached(embedder, [question] + [f"{c.context}: {c.text}" for c in cands])
        semantic = vecs[1:] @ vecs[0]
    else:
        semantic = np.zeros(len(cands))
    last = max(c.n for c in cands)
    other = {t: other_version(question, t) for t in {c.title for c in cands}}
    term = lookup_term(question)
    prior = np.array(
        [
            w.rank * (last - c.n)
            + w.opening * (c.pos == 0)
            + w.named * c.focus
            + w.best * c.best
            + w.typed * type_strength(c.text, kind)
            - w.filler * c.filler
            - w.version * (other[c.title] or _defines_another(c, term))
            for c in cands
        ]
    )
    lex_weight = w.lexical_yesno if kind == "yesno" else w.lexical
    return np.asarray(semantic + lex_weight * lexical + prior, dtype=float)


def extractive_answer(
    question: str,
    passages: Sequence[Chunk],
    embedder: Embedder | None,
    max_sentences: int = 2,
    max_passages: int = 3,
    scorer: Scorer | None = None,
    rerank: int = 8,
    weights: Weights | None = None,
    also: frozenset[int] = frozenset(),
    named: frozenset[str] = frozenset(),
    pages: frozenset[str] = frozenset(),
) -> Extract:
    """The passage sentence that answers the question, then one more only when it adds an
    asked-for fact, each with its citation; nothing when a count is asked ("how many") and no
    sentence holds a quantity, as no sentence there can answer it.

    The first ``max_passages`` passages are read, those in ``also`` (a passage holding the
    question's closest sentence), and any later one that goes on with the first one's entry:
    a long entry is cut into chunks, and its answer may sit in a later one.
    Cheap scores (cosine, shared words, passage rank, the named entry, the asked kind of fact)
    pick ``rerank`` candidates; the model's query likelihood re-ranks them when a scorer is
    given.
    """
    w = weights or WEIGHTS
    kinds = asked_types(question)
    cands = candidates(question, kinds, passages, max_passages, also, named, pages)
    needed = _needed(question, cands)
    if not cands or (needed and not any(needed(c) for c in cands)):
        return Extract("", [])  # "How many dollars ...?" and no passage gives a quantity
    base = _base_scores(question, cands, embedder, kinds[0], w)
    top = [int(i) for i in np.argsort(-base, kind="stable")[: max(1, rerank)]]
    score = base[top]
    if scorer is not None and len(top) > 1:
        prefixes = [f"Passage ({cands[i].title}): {cands[i].text}\nQuestion:" for i in top]
        lm = np.array(scorer.score(prefixes, " " + question))
        spread = max(float(score.std()), 0.05)  # the model's z-score in the cheap scores' units
        score = score + w.lm * spread * _zscore(lm)
    openings = frozenset(n for n, p in enumerate(passages, 1) if p.opens_entry)
    reading = _Reading(max_sentences, w, openings, needed)
    chosen = _choose(question, [cands[i] for i in top], score, kinds, reading)
    chosen = answer_parts(question, cands, [top[c] for c in chosen], embedder, max_sentences)
    # a yes/no answer settles on its own; one sentence asked for is one
    following = w.following and kinds[0] != "yesno" and max_sentences > 1
    picked = _with_context(question, [cands[i] for i in chosen], cands, following=following)
    parts = [f"{c.text} [{c.n}]" for c in picked]
    if _answer_is_the_title(question, kinds[0], picked[0], passages):
        parts[0] = f"{picked[0].title}: {parts[0]}"  # asked for, though no sentence says it
    return Extract(" ".join(parts), list(dict.fromkeys(c.n for c in picked)))


def _needed(question: str, cands: list[Candidate]) -> Callable[[Candidate], bool] | None:
    """The form of sentence the question needs (``needs.py``); a price or a port from an entry
    the question names when it names one: "What did the JOHNNIAC cost?" is not answered by
    another machine's price, unless its sentence names the JOHNNIAC ("The original IBM PC had a
    clock rate of 4.77 MHz", in the clock rate entry). A count is not held to it: "How many
    devices can you daisy chain on FireWire?" names the daisy chain entry, and the count is
    FireWire's."""
    form = needed_form(question)
    if form is None:
        return None
    titles = {c.title for c in cands if c.focus} if owned_value(question) else set()
    names = {t for t in titles if not t.islower()}  # "IBM PC", not "port" (what is asked)

    def owned(c: Candidate) -> bool:
        return not titles or c.focus or any(named_in(c.text, t) for t in names)

    return lambda c: owned(c) and form(c.text)


def _answer_is_the_title(
    question: str, kind: AnswerType, lead: Candidate, passages: Sequence[Chunk]
) -> bool:
    """The entry's name is the answer and its sentence leaves it out: a term asked for ("what
    is it called when ...?"); a person asked for, from an entry that opens by defining itself
    without its name ("WAP Forum": "The official body developing Wireless Application
    Protocol."); or a thing asked for ("Which language was the first for strings?": COMIT,
    "The first string-handling language ..."), when the question does not name it either."""
    if named_in(lead.text, lead.title) or NAMES_IT.search(lead.text) or lead.pos < 0:
        return False
    opens_entry = lead.pos == 0 and passages[lead.n - 1].opens_entry
    if asks_term(question):
        return True
    if not opens_entry or says_who(lead.text):
        return False
    # a person asked for; or a thing, when the question does not name the entry either
    return kind == "person" or (_asks_a_thing(question) and not named_in(question, lead.title))


def asks_a_name(question: str) -> bool:
    """The answer is a name: a term, a person, or a thing ("Which language was the first
    ...?"). An entry's title put before its sentence is then part of the answer."""
    return asks_term(question) or answer_type(question) == "person" or _asks_a_thing(question)


def _asks_a_thing(question: str) -> bool:
    return any(_WHICH_THING.match(q) for q in question_sentences(question))


# "Which language is credited as the first ...?", "What protocol did X use?": a thing named
_WHICH_THING = re.compile(
    r"^(?:which|what)\s+(?!(?:is|are|was|were|does|do|did|can|could|would|should|will|has|have|"
    r"had)\b)[\w-]+(?:\s+[\w-]+){0,2}?\s+(?:is|are|was|were|does|do|did|has|had|can|could)\b",
    re.I,
)


# "How does a two-phase commit work?", "How would you estimate pi ...?": a way of working, not
# a quantity ("How many ...?") and not a manner of speaking ("How is X pronounced?")
_HOW_IT_WORKS = re.compile(r"^how\s+(?:does|do|did|would|could|can|is|are)\b(?!.*\bpronounc)", re.I)


# "This approach is used in medicine and law", "As a result, CHAP is more secure": which
# approach, the result of what, is in the sentence before
_ANAPHOR = re.compile(
    r"^(?:This|These|Those|Such|As a result|Therefore|Thus|Hence|Consequently|For this reason|"
    r"Because of this|In addition|Moreover|Furthermore|However)\b"
)
# "There are multiple ways to adapt a base model.": the ways are in the sentence after
_ANNOUNCES = re.compile(
    r"^There (?:are|were) (?:several|multiple|many|various|a few|two|three|four) \w+|"
    r"\b(?:falls?|divided|grouped|split) (?:broadly |mainly )?into (?:two|three|four|several)\b|"
    r":$",
    re.I,
)


# "This pre-training instills ...", "Failing that, you could try sending e-mail to postmaster":
# a sentence that goes on from the one before it
_GOES_ON = re.compile(
    r"^(?:This|These|If not|If so|Otherwise|Failing that|Alternatively|In that case|Then)\b"
)


def _with_context(
    question: str, picked: list[Candidate], cands: list[Candidate], *, following: bool = False
) -> list[Candidate]:
    """The answer's first sentence with the one it leans on: the sentence before when it opens
    with "This ..." or "These ...", the sentence after when it only announces what follows
    ("There are multiple ways to ...", "... fall into two categories"). A lone sentence also
    keeps the next one when that goes on from it ("This pre-training instills ...", "Failing
    that, ..."), or when it says nothing the question does not ("Base models are powerful but
    raw." for "They call base models 'powerful but raw'. In what sense raw?"): a question's
    premise is often stated in one sentence and its answer in the next. With ``following``,
    a lone sentence keeps the next one anyway (``Weights.following``)."""
    first = picked[0]

    def neighbour(step: int) -> list[Candidate]:
        return [
            c for c in cands if c.n == first.n and c.pos == first.pos + step and c not in picked
        ][:1]

    if _ANAPHOR.match(first.text) and first.pos > 0:
        return neighbour(-1) + picked
    if _ANNOUNCES.search(first.text.rstrip(".")):
        return [first, *neighbour(1), *picked[1:]]
    after = neighbour(1)
    echo = not words(first.text) - words(question)
    if len(picked) == 1 and after and (following or echo or _GOES_ON.match(after[0].text)):
        return [first, *after]
    return picked


def _first(
    question: str,
    cands: list[Candidate],
    order: list[int],
    kinds: list[AnswerType],
    r: _Reading,
) -> int:
    """The sentence said first: of the form some questions need, stating the asked kind of
    fact, saying where a name comes from, or naming the entry asked for; else the best one."""
    w, needed = r.w, r.needed  # a quantity, an expansion, a person's name, a price, a port
    pool = [i for i in order if needed(cands[i])] or order if needed else order
    top = cands[order[0]].n  # the passage of the best scoring sentence
    if w.stated_first and kinds[0] in STRONG_TYPE:  # "written by X" answers "who" first,
        strength = {i: type_strength(cands[i].text, kinds[0]) for i in pool}  # then a name
        stated = [i for i in pool if strength[i] == 1.0]
        holding = [i for i in pool if strength[i] > 0]
        if kinds[0] == "person":  # a name in the best sentence's entry, not "by the G-machine"
            named = [i for i in holding if cands[i].n == top and names_person(cands[i].text)]
            holding = named or holding
        pool = stated or holding or pool
        # the entry's own "E.C. Haines, 1964." before the year a paper on it was published
        pool = [i for i in pool if not CITED_WORK.match(cands[i].text)] or pool
    elif kinds[0] == "number":  # "how much data ...?": "By processing petabytes of text"
        pool = [i for i in pool if holds_type(cands[i].text, "number")] or pool
    elif asks_alias(question):  # 'quantum dot is also called "single-electron transistor".'
        pool = [i for i in pool if NAMES_IT.search(cands[i].text)] or pool
    elif asks_origin(question):  # "From the curious expression ...", though the definition
        pool = [i for i in pool if ORIGIN.search(cands[i].text)] or pool  # shares more words
    elif not needed and asks_term(question):  # "..., a property known as transfer learning"
        pool = [i for i in order[:3] if cands[i].pos >= 0 and NAMES_IT.search(cands[i].text)]
        # else the best one's entry by name ("Jitter: ..."); a sentence further into an entry
        # names no term ("extrapolation" does not answer "the slang for a linear
        # interpolation?"), so then the best entry defining one ("LERP: ...")
        defining = [i for i in order if cands[i].pos == -1]
        elsewhere = defining[:1] if top not in r.openings else []
        pool = pool or [i for i in defining if cands[i].n == top] or elsewhere or order
    return pool[0]


def _choose(
    question: str,
    cands: list[Candidate],
    score: np.ndarray,
    kinds: list[AnswerType],
    r: _Reading,
) -> list[int]:
    """The best sentence, then another only when it adds what the first lacks: a kind of fact
    the question asks for, or (scoring close to the first) question words the first lacks."""
    limit, w = r.limit, r.w
    order = [int(i) for i in np.argsort(-score, kind="stable")]
    chosen = [_first(question, cands, order, kinds, r)]
    parts = asks_parts(question)
    first = cands[chosen[0]]
    asked = words(question) - words(first.title)
    covered = asked & words(first.text)
    # the entry's description answers no yes/no question: a settling sentence may join it
    describes = kinds[0] == "yesno" and first.pos == 0 and not holds_type(first.text, "yesno")
    # nor does it say why: the story after it may ("when one Sun goes down, the others freeze")
    explains = first.pos == 0 and (
        (kinds[0] == "reason" and not any(holds_type(cands[i].text, "reason") for i in order))
        or bool(_HOW_IT_WORKS.match(asking(question)))  # nor how: "First the databases ..."
    )
    # the entry's first sentence read, its definition (pos 0 may be a name or a note)
    own = [c.pos for c in cands if c.title == first.title and c.pos >= 0 and c is not first]
    opening = min(own) if own and first.pos >= 0 else -2
    for idx in stating_first(order, cands, kinds, first):
        if len(chosen) >= limit:
            break
        c = cands[idx]
        if c.text in (cands[i].text for i in chosen):
            continue
        settles = score[idx] >= score[chosen[0]] - w.settles
        adds_kind = any(
            k in HAS_TYPE
            and holds_type(c.text, k)
            and not holds_type(first.text, k)
            and (k != "yesno" or (describes and settles))
            for k in kinds
        ) or ("definition" in kinds and c.pos == opening and c.title == first.title)
        adds_words = bool((asked & words(c.text)) - covered)
        # the description's own passage goes on: how or why ("First the databases ..."), or
        # the claim asked about ("System R introduced the SQL language" for "Is it true that
        # SQL came out of System R?")
        goes_on = c.n == first.n and settles
        adds_kind = adds_kind or (
            goes_on and ((explains and c.pos > 0) or (describes and adds_words))
        )
        close = w.close * (w.parts if parts and c.n == first.n else 1.0)
        if adds_kind or (score[idx] >= score[chosen[0]] - close and adds_words):
            chosen.append(idx)
    # the sentence holding the asked fact is said first: the "no", the year, the count
    main = "yesno" if describes else kinds[0]
    if len(chosen) > 1 and main in HAS_TYPE and not holds_type(cands[chosen[0]].text, main):
        holding = [i for i in chosen[1:] if holds_type(cands[i].text, main)][:1]
        chosen = holding + [i for i in chosen if i not in holding]
    return chosen
