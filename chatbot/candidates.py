"""The sentences a reader may answer with: each sentence of the top passages, read with its
entry's title and section, plus the forms a glossary holds an answer in without prose: an
export's field line ("Year: 1985" as "The year of Bison is 1985."), a dictionary's designer-and-
year note, an entry's name with its definition for "What do you call ...?", and an acronym's
expansion for "What does X stand for?". Reference lines, bare names and quoted usage examples
are not candidates: they say nothing about what the entry is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from chatbot.acronyms import SMALL_WORDS, asked_expansion, expansion_in, spells_out
from chatbot.chunking import Chunk
from chatbot.entries import TERM_ITEM
from chatbot.kinds import (
    STRONG_TYPE,
    AnswerType,
    asks_alias,
    asks_origin,
    asks_term,
    holds_type,
    type_strength,
)
from chatbot.text import field_line, opening_definition, split_sentences, strip_markup
from chatbot.tokens import tokenize

_POLARITY = re.compile(r"^(?:yes|no)\s*[,.;:!\u2013\u2014-]+\s*", re.I)


def drop_polarity(sentence: str) -> str:
    """The sentence without a leading "Yes," / "No,"; "" when nothing would be left."""
    m = _POLARITY.match(sentence)
    if not m:
        return sentence
    rest = sentence[m.end() :]
    return rest[:1].upper() + rest[1:] if len(rest.split()) >= 3 else ""


@dataclass(frozen=True)
class Candidate:
    n: int  # passage number, from 1
    pos: int  # sentence position in the passage
    text: str
    title: str
    focus: bool  # the passage is an entry the question names
    context: str = ""  # what the sentence is about: its entry and section ("Bison", "X, Why?")
    best: bool = False  # from the entry of the best retrieved passage
    filler: bool = False  # a templated sentence about the entry that states nothing (see _filler)


# a lead note that is prose: "(Named from the authors' initials) An interpreted language ...",
# or gives the entry's earlier names: "(byacc, previously Zeus, then Zoo)"
# an entry's tag, pronunciation(s): "<jargon> /klooj/, /kluhj/"
_LEAD = r"^\s*(?:<[^<>]*>\s*)?(?:/[^/\s][^/]{0,60}/(?:,\s*/[^/\s][^/]{0,60}/)*\s*)?"
_ORIGIN_WORDS = (
    r"\b(?:from|after|named|analogy|play on|short for|stands? for|abbreviation|acronym|"
    r"(?P<was>previously|formerly|originally))\b"
)
_EXPANDS = re.compile(r"\b(?:abbreviation|acronym|initials|short for|stands? for)\b", re.I)
_LEAD_NOTE = re.compile(
    _LEAD
    + rf"\((?=[^()]*{_ORIGIN_WORDS})([^()]{{10,200}})\)\s+(?=[A-Z]|\d+\.\s)"
    # the Jargon File's, in brackets: "[from the German 'klug', clever]"
    + rf"|{_LEAD}\[(?=[^\[\]]*{_ORIGIN_WORDS.replace('P<was>', 'P<was2>')})"
    r"(?P<bracket>[^\[\]]{10,300})\](?:\s+(?=[A-Z\"“‘'])|\s*$)",
    re.I,
)
# '(Or "single-electron transistor")': another name of the entry, in a dictionary's note
_OR_NOTE = re.compile(
    r"\((?:Or|or|Also|also)\s+(?:(?:called|known as)\s+([A-Za-z][\w -]{1,40})|"
    r"(?:called\s+|known as\s+)?([\"“][^()]{2,80}))\)"
)
# an entry's leading note of its other names: "(SDSL, or Single-pair ...)", "(byacc, previously
# Zeus, then Zoo)"; a question naming one names the entry
_LEAD_NAMES = re.compile(_LEAD + r"\(([^()]{2,200})\)")
_NAME_JOIN = re.compile(r"\b(?:or|previously|formerly|originally|then|also|now|later)\b", re.I)
_ASIDE = re.compile(r"\([^()]*\)\.?")  # "(FMPL of Accardi).": a note on the name, no prose
# a pointer or availability line, not prose: "Version 2.3 runs on Sun-3", "See also X"; a version's
# history is prose ("Version 1 was released in 1991")
_REFERENCE = re.compile(
    r"^(?:see also|see|compare|e-mail|ftp|version(?!.*\b(?:was|were)\b)|home page|"
    r"unix manual page|usenet newsgroup|"
    r"mailing list|source code|latest version)\b",
    re.I,
)


# irregular verb forms the stemmer leaves apart: "Who wrote X?" is answered by "written by"
_LEMMA = {
    "wrote": "write", "written": "write", "made": "make", "built": "build", "began": "begin",
    "begun": "begin", "ran": "run", "took": "take", "taken": "take", "gave": "give",
    "given": "give", "came": "come", "chose": "select", "chosen": "select", "grew": "grow",
    "grown": "grow", "sold": "sell", "bought": "buy", "led": "lead", "meant": "mean",
    "known": "know", "knew": "know", "drew": "draw", "drawn": "draw", "held": "hold",
    # everyday words for the glossary's ("picking a model" is "selecting" one)
    "pick": "select", "choos": "select", "choic": "select", "big": "larg", "huge": "larg",
    "purchas": "buy",
}  # fmt: skip


# a field of an entry, "Year: 2018", "Created by: Robert Corbett" (an export's column)
_PREPOSITION = re.compile(r"\b(?:by|in|on|at|for|from|with|since|to|of)$", re.I)


def field_sentence(title: str, line: str) -> str:
    """A short "Name: value" line read as a sentence about its entry: "The year of Base Model is
    2018.", "Bison: created by Robert Corbett."; "" when the line is no such field."""
    field = field_line(line)
    if field is None:
        return ""
    key, value = field
    if _PREPOSITION.search(key):
        return f"{title}: {key[0].lower()}{key[1:]} {value}."
    name = key if key[:2].isupper() else key[0].lower() + key[1:]
    verb = "are" if key.endswith("s") and not key.endswith("ss") else "is"
    return f"The {name} of {title} {verb} {value}."


def _asks_field(question: str, kinds: list[AnswerType], line: str, field: str) -> bool:
    """A field answers a question that asks for what it states ("The year of X is 2018" for
    "when") or that names it ("What license ..." and "License: MIT"). Other "Name: value" lines
    (a related-terms list: "**Fine-Tuning**: Adapting a model.") stay as they are."""
    if any(k in STRONG_TYPE and type_strength(field, k) == 1.0 for k in kinds):
        return True
    key = line.split(":", 1)[0]
    return "**" not in key and words(key) <= words(question)


def words(text: str) -> set[str]:
    return {_LEMMA.get(t, t) for t in tokenize(text)}


# stems of properties a thing has one of: "Is FMPL compiled?" is settled by "an interpreted
# language", which shares no word with the question but its opposite
_OPPOSITE_PAIRS = (
    ("compil", "interpret"), ("static", "dynam"), ("synchron", "asynchron"),
    ("lossi", "lossless"), ("analog", "digit"), ("analogu", "digit"), ("serial", "parallel"),
    ("public", "privat"), ("free", "commerci"), ("free", "proprietari"),
)  # fmt: skip
OPPOSITES: dict[str, set[str]] = {
    w: {b if a == w else a for a, b in _OPPOSITE_PAIRS if w in (a, b)}
    for pair in _OPPOSITE_PAIRS
    for w in pair
}


def settling_words(text: str) -> set[str]:
    """A sentence's words for a yes/no question: its own and their opposites ("interpreted"
    answers "compiled?", "free" answers "proprietary?")."""
    own = words(text)
    return own.union(*(OPPOSITES.get(w, set()) for w in own))


def named_in(question: str, title: str) -> bool:
    """Does the question name this entry ("Who wrote Bison?" names "Bison", not "Bison++")?"""
    t = " ".join(title.lower().split())
    if len(t) < 2 or not re.search(r"\w", t):
        return False
    pattern = rf"(?<![\w+/-]){re.escape(t)}(?:s|es)?(?![\w+/-])"
    return bool(re.search(pattern, " ".join(question.lower().split())))


def names_entry(question: str, chunk: Chunk) -> bool:
    """Does the question name this chunk's entry, by its title or, in the entry's opening, by
    a name its leading note gives ("SDSL" for "Single-line Digital Subscriber Line")?"""
    if named_in(question, chunk.title):
        return True
    note = _LEAD_NAMES.match(chunk.body_without_heading()) if chunk.opens_entry else None
    names = re.split(r"[,;]", _NAME_JOIN.sub(",", note.group(1))) if note else []
    return any(named_in(question, n.strip(" \"'“”{}")) for n in names if 0 < len(n.split()) <= 4)


def _note_answers(sentence: str, kinds: list[AnswerType]) -> bool:
    """A note too short to be prose ("Joseph Goguen 1976.") that holds the name or year asked
    for: a dictionary's designer-and-year line."""
    return 1 < len(sentence.split()) < 5 and any(
        k in ("person", "time") and holds_type(sentence, k) for k in kinds
    )


def _bare(sentence: str) -> bool:
    """A short sentence that is only a name in title case: "Mail Transfer Agent."."""
    words = re.findall(r"[\w'-]+", sentence)
    named = [w for w in words[1:] if w.lower() not in SMALL_WORDS]  # the first word is capitalised
    return len(words) < 5 and len(named) >= 2 and all(w[0].isupper() for w in named)


def _quoted_example(sentence: str) -> bool:
    """A usage example in quotes ("WYSIWYG is a clear win for small documents"), or a piece of
    one that the splitter cut at its inner full stop: it uses the word, it says not what it
    means, and its words echo a question that quotes it."""
    opens = sentence.startswith(('"', "\u201c"))
    closes = sentence.rstrip(".!?").endswith(('"', "\u201d"))
    cut = sum(sentence.count(q) for q in ('"', "\u201c", "\u201d")) % 2 == 1
    return (opens and (closes or cut)) or (closes and cut)


def _as_written(acronym: str, text: str) -> str:
    """The acronym as the entry writes it ("ADMD"), not as the question did ("admd")."""
    said = re.search(rf"\b{re.escape(acronym)}\b", text, re.I)
    return said.group() if said else acronym


def _named_definition(chunk: Chunk) -> str:
    """ "Term: definition" of a chunk that is a term-list item or opens its entry, or ""."""
    body = chunk.body_without_heading()
    if item := TERM_ITEM.match(body.split("\n", 1)[0]):
        return f"{item.group(1).strip()}: {strip_markup(item.group(2)).rstrip('.')}."
    definition = opening_definition(chunk.text) if chunk.opens_entry else ""
    return f"{chunk.title}: {split_sentences(definition)[0]}" if definition else ""


# '["Algebraic Specification", J.A. Bergstra et al, A-W 1989].': a work cited, no prose
CITED_WORK = re.compile(r"^\[[\"“][^\]]*\]\.?$")


def _cites_only(sentence: str, kinds: list[AnswerType]) -> bool:
    """A work cited names its authors and year: an answer to "who" or "when" only."""
    return not any(k in ("person", "time") for k in kinds) and bool(CITED_WORK.match(sentence))


def _filler(chunk: Chunk) -> set[str]:
    """Padding of a templated entry (chunking.templated): from a sentence writing the name in
    title case ("Base Model matters in llm work because ...") to the end of its paragraph, or
    to prose writing it in lower case ("A base model is ..."). SEO glossaries pad each entry
    with such sentences; they share the words of any question about the entry and answer none.
    The opening sentence is prose whatever its case, and a sentence naming other terms ("...
    compared with Foundation Model, Instruct Model, and Pre-training") keeps its fact."""
    if not chunk.templated:
        return set()
    name = chunk.title.split()
    common = re.compile(rf"\b{re.escape(name[0])}\s+{re.escape(' '.join(name[1:]).lower())}", re.I)
    titled = re.compile(rf"(?<![\"“(]){re.escape(chunk.title)}(?![\"”)])")
    out: set[str] = set()
    opening = chunk.opens_entry
    for paragraph in re.split(r"\n\s*\n", chunk.body_without_heading()):
        run = False
        for i, sentence in enumerate(split_sentences(paragraph)):
            if titled.search(sentence) and not (opening and i == 0):
                run = True
            elif common.search(sentence):
                run = False
            rest = titled.sub("", sentence)[1:]  # a name or number besides the entry's is a fact
            if run and not re.search(r"\b[A-Z0-9]", rest):
                out.add(sentence)
        opening = False
    return out


def _alias_note(raw: str, title: str, question: str, alias: bool, yesno: bool) -> str | None:
    """Another name, from a note the prose leaves out ('(Or "single-electron transistor")',
    "(Also called nagware)"), when the question asks for another name, or asks whether that
    one is it ("Is annoyware the same thing as nagware?"); a question saying it otherwise
    knows it ("what is X (sometimes called Y) based on?")."""
    if not (other := _OR_NOTE.search(raw)):
        return None
    said = (other.group(1) or other.group(2)).strip()
    if not (alias or (yesno and said.strip('"“”').lower() in question.lower())):
        return None
    return f"{title[:1].upper() + title[1:]} is also called {said}."  # the name opens it


def _says(sentence: str, acronym: str) -> bool:
    """The sentence spells the acronym out in prose of its own, not only in a name too short
    to be read alone ("'First In, Still Here'.")."""
    return spells_out(sentence, acronym) and len(sentence.split()) >= 5


def _lead_note(raw: str, title: str, origin: bool) -> str | None:
    """The entry's leading note as a sentence, when it says where the name comes from or what
    the entry was called. A note in brackets (the Jargon File's) may say how the word is used
    ("[very common; by analogy with proton]"): it answers why or from where, or what an
    abbreviation stands for, not what the thing is. A short one is said of the entry ("wizard
    mode: from rogue.")."""
    note = _LEAD_NOTE.match(raw)
    if note is None:
        return None
    said = note.group(2) or note.group("bracket")
    if note.group("bracket") is not None and not (origin or _EXPANDS.search(said)):
        return None
    text = " ".join(said.split()).rstrip(".") + "."
    if note.group("was") or note.group("was2") or len(text.split()) < 4:
        text = f"{title}: {text}"
    return text if len(text.split()) >= 3 else None


def _read(
    passages: Sequence[Chunk], max_passages: int, also: frozenset[int], pages: frozenset[str]
) -> list[int]:
    """The passages read: the first ``max_passages``, those in ``also``, and later ones going on
    with the best one's entry; of a page the question names by name, only its own."""
    first = passages[0] if passages else None

    def goes_on(c: Chunk) -> bool:
        return first is not None and c.doc_id == first.doc_id and c.title == first.title

    read = [i for i, c in enumerate(passages) if i < max_passages or i in also or goes_on(c)]
    own = [i for i in read if passages[i].file in pages]
    return own or read


def candidates(
    question: str,
    kinds: list[AnswerType],
    passages: Sequence[Chunk],
    max_passages: int,
    also: frozenset[int] = frozenset(),
    named: frozenset[str] = frozenset(),
    pages: frozenset[str] = frozenset(),
) -> list[Candidate]:
    """Every sentence the answer may be made of, numbered by its passage for the citation; the
    forms a question needs come first. ``also``: later passages to read (sentence_pick);
    ``named``: entries the question names by an acronym the term index knows ("EPROM");
    ``pages``: files of the pages it names by name (Retriever.named_pages), the only ones read."""
    out = []
    term, acronym, alias = asks_term(question), asked_expansion(question), asks_alias(question)
    origin = asks_origin(question) or "reason" in kinds
    named_docs = {c.doc_id for c in passages if c.doc_id in named or names_entry(question, c)}
    for i in _read(passages, max_passages, also, pages):
        chunk = passages[i]
        best = chunk.doc_id == passages[0].doc_id
        # padding is what a question naming its page ("According to InsertChat, ...") asks about
        filler = set() if chunk.page_named_in(question) else _filler(chunk)
        focus = chunk.doc_id in named_docs
        section = chunk.heading.rsplit(" > ", 1)[-1]
        context = chunk.title if section in ("", chunk.title) else f"{chunk.title}, {section}"
        if term and (definition := _named_definition(chunk)):
            # "What do you call ...?" is answered by an entry's name with its definition
            out.append(Candidate(i + 1, -1, definition, chunk.title, focus, context, best))
        if acronym and spells_out(chunk.title, acronym):
            # the entry titled "Integrated Services Digital Network" is what ISDN stands for
            text = f"{_as_written(acronym, chunk.text)} stands for {chunk.title}."
            out.append(Candidate(i + 1, -1, text, chunk.title, focus, context, best))
        for pos, raw in enumerate(chunk.sentences()):
            if note := _lead_note(raw, chunk.title, origin):  # an etymology answers "why"
                out.append(Candidate(i + 1, pos, note, chunk.title, focus, context, best))
            s = drop_polarity(strip_markup(raw))
            if other := _alias_note(raw, chunk.title, question, alias, kinds[0] == "yesno"):
                out.append(Candidate(i + 1, pos, other, chunk.title, focus, context, best))
            if acronym and (words := expansion_in(raw, acronym)) and not _says(s, acronym):
                # "(colour look-up table, CLUT) A device ...": the markup stripped is the answer
                text = f"{_as_written(acronym, raw)} stands for {words}."
                out.append(Candidate(i + 1, pos, text, chunk.title, focus, context, best))
            if not s or _REFERENCE.match(s) or _ASIDE.fullmatch(s):
                continue
            field = field_sentence(chunk.title, s)
            if field and _asks_field(question, kinds, raw, field):
                out.append(Candidate(i + 1, pos, field, chunk.title, focus, context, best))
            elif _note_answers(s, kinds):  # "Joseph Goguen 1976." opens a language's entry
                note_text = f"{chunk.title}: {s.rstrip('.')}."
                out.append(Candidate(i + 1, pos, note_text, chunk.title, focus, context, best))
            # an entry's opening definition may be short ("Removal of a VAX."), but a name
            # alone ("Mail Transfer Agent.", an alias entry's pointer) says what X is called,
            # not what it is or does; prose is not short, nor a quoted usage example
            prose = len(s.split()) >= (3 if pos == 0 else 5) and not s.endswith("?")
            if prose and not _bare(s) and not _quoted_example(s) and not _cites_only(s, kinds):
                out.append(
                    Candidate(i + 1, pos, s, chunk.title, focus, context, best, raw in filler)
                )
    return out
