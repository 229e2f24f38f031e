"""Text helpers shared by every stage: the one sentence splitter, the one citation format, and
the removal of glossary markup that is not prose.

Dictionaries carry markup meant for their own tools: category tags ("<programming, tool>"),
pronunciations ("/yoo'niks/"), source notes ("[Jargon File]") and revision dates ("(1994-11-07)").
It stays in the sources the user can read, and is taken out of answer sentences.
"""

from __future__ import annotations

import re

CITATION = re.compile(r"\[(\s*\d+\s*(?:[,;]\s*\d+\s*)*)\]")
LEADING_CITATIONS = re.compile(r"^(?:\[\s*\d+\s*(?:[,;]\s*\d+\s*)*\]\s*)+")
# A sentence ends at . ! ? (plus closing quotes/brackets) before a capital, digit or quote; a
# blank line or a list item / heading line also ends one. Other newlines are soft wraps.
# Abbreviations ("e.g.", "i.e.", an initial such as "J." or "D.A.", "U.S.", a date's "ca." or
# "c.") and a list item's number ("2. Econometric Software Package.") do not end a sentence.
# where one sentence ends and the next begins: the one splitter, for answers and for chunking
SENTENCE_BREAK = re.compile(
    r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bcf\.)(?<!\bvs\.)(?<!\bc\.f\.)(?<!\bDr\.)(?<!\bMr\.)"
    r"(?<!\bSt\.)(?<!\bNo\.)(?<!\bca\.)(?<!\bc\.)(?<!\bapprox\.)(?<!\bpp\.)(?<!\bVol\.)"
    r"(?<!\balt\.)(?<![\])]\s\d\.)"  # the Jargon File's "alt. NOP", "[no operation] 1. A ..."
    r"(?<!\d\. n\.)(?<!\d\. v\.)(?<!\d\. vt\.)(?<!\d\. vi\.)(?<!\d\. adj\.)(?<!\d\. adv\.)"
    r"(?<!\s[A-Z]\.)(?<![A-Z]\.[A-Z]\.)(?<!^\d\.)(?<!\n\d\.)(?<!^\d\d\.)(?<!\n\d\d\.)(?<=[.!?])([\"')\]”’]*)\s+(?=[A-Z0-9\"'(\[“‘])"
    r"|\n\s*\n+|\n(?=\s*(?:[-*•]\s|\d+\.\s|#))"
)
_SOFT_WRAP = re.compile(r"(?<!\n)\n(?![\n\s]*(?:[-*•]\s|\d+\.\s|#|\n))")
_HEADING_LINE = re.compile(r"^#{1,6}[ \t]+.*$", re.MULTILINE)
_CATEGORY = re.compile(r"^\s*<[a-z][a-z ,/&'-]{1,60}>\s*")  # a dictionary's "<networking>"
# the Jargon File's parts of speech ("n.", "vt.", "prov." for a proverb, "obs." for obsolete)
_POS = "n|v|vi|vt|adj|adv|interj|excl|prep|conj|pl|pref|suff|infix|obs|prov|imp|abbrev|quant"
# "/lerp/ vi., Quasi-acronym ...": the Jargon File's pronunciation, then its parts of speech
_PRONUNCIATION = re.compile(
    r"^\s*/[^/\n]{1,40}/\s*(?:(?:,|alt\.\s+[^\s/]{1,30})\s*/[^/\n]{1,40}/\s*)*"
    rf"(?:(?:{_POS})\.(?:,\s*|\s+))*"
)
# "(B) A component ...", "(Presumably a play on "nanosecond") The miniscule time ..."
_LEADING_ABBREVIATION = re.compile(r"^\s*\([^()]{1,200}\)\s+(?=[A-Z/]|\d+\.\s)")
# the Jargon File's usage or origin note: "[from the German 'klug', clever]", "[Usenet: by
# analogy with spam] A message that ...", "[...] (also "UNIX") An interactive ..."; not a title
# in brackets ("[incr Tcl] is a ...")
_LEADING_NOTE = re.compile(r"^\s*\[[^\[\]]{2,400}\](?:\s+(?=[A-Z\"“‘'(]|\d+\.\s)|\s*$)")
_PART_OF_SPEECH = re.compile(rf"(?:(?:{_POS})\.,?\s*)+")
# "1. n. A Rube Goldberg device": a numbered sense's part of speech
_SENSE_POS = re.compile(rf"^\s*(?:(?:{_POS})\.(?:,\s*|\s+))+(?=[A-Z])")
_DATE_NOTE = re.compile(r"\(\d{4}-\d{2}-\d{2}\)")
_CROSS_REFERENCE = re.compile(r"\{([A-Za-z0-9][^{}\n]{0,80}?)\}")  # FOLDOC's "{Java}" -> "Java"
_UNCLOSED_REFERENCE = re.compile(r"\{(?=[A-Za-z][^{}]*$)")
_SOURCE_NOTE = re.compile(r"\[(?:[A-Z][\w .,'&-]{1,60})\]\.?")
# an editor's open question, not the entry's text: "released in 1991 [by Microsoft?]", "[Details?]";
# left in, it made the sentence read as a question, which no answer may be
_EDITOR_QUERY = re.compile(r"\s*\[[^\[\];]{1,40}\?\s*\]")
# contact and download notes: "<dongarra@cs.utk.edu>", "(ftp://netlib.att.com/...)"
_EMAIL = re.compile(r"\s*<[^<>\s@]+@[^<>\s]+>")
_LINK = re.compile(r"\s*\((?:https?|ftp)://[^()\s]*\)|\s*\b(?:https?|ftp)://\S+")
_EMPHASIS = re.compile(r"(?<![\w*])\*(\w[^*\n]{0,60}?)\*(?![\w*])")  # "*hardware* kluges"
_MD_PREFIX = re.compile(r"^\s*(?:[-*•]\s+|\d+\.\s+|#+\s+)")


_QUESTION_BREAK = re.compile(r"(?<=[.?!])\s+")
# chat spelling of the words that shape a question ("wat does f2f mean", "whats X", "why doesnt
# it"), so the patterns that read a question's kind and term need one spelling each
_CHAT_SPELLING = [
    (re.compile(p, re.I), r)
    for p, r in (
        (r"\b(?:wat|wut|wot|wht|waht|whta)\b", "what"),
        (r"\b(?:whats|wats|wuts)\b", "what is"),
        (r"\bwhos\b", "who is"),
        (r"\bhows\b", "how is"),
        (r"\bppl\b", "people"),  # "what do ppl mean by X"
        (r"\b(what|how|why|where|when|who|which)\s+r\b(?=\s+[a-z])", r"\1 are"),
        (r"\b(do|does|is|are|was|were|did|ca|wo|should|could|would|has|have)nt\b", r"\1n't"),
    )
]


def respell(question: str) -> str:
    """``question`` with the chat spelling of its question words written out."""
    for pattern, replacement in _CHAT_SPELLING:
        question = pattern.sub(replacement, question)
    return question


def question_sentences(question: str) -> list[str]:
    """A question's sentences, split at every . ? ! and the space after it, whatever follows:
    users type "what is it? how many?" in lower case, which ``split_sentences`` (made for
    passages, where a lower-case word after a full stop follows an abbreviation) keeps whole."""
    return [s for s in _QUESTION_BREAK.split(respell(question.strip())) if s]


def asked_sentence(question: str) -> str:
    """The one question among several sentences ("We build for a law firm. Is there an
    approach deeper than fine-tuning?" asks the second), else the whole question: the context
    sentences around it dilute its embedding and name no term of its own."""
    sentences = question_sentences(question)
    asked = [s for s in sentences if s.endswith("?")]
    return asked[0] if len(sentences) > 1 and len(asked) == 1 else respell(question.strip())


# a capitalised word with lower case after its capital ("Activision", "ChatGPT", "Log4Shell"),
# or a name in camel case ("exFAT", "iPhone", "macOS"), not an acronym ("RAM", "FIFA"):
# acronyms are often spelled out in the entries that define them
_PROPER = re.compile(r"(?<![\w'-])(?:[A-Z][a-z]|[a-z]+[A-Z])[\w]*(?:[-'][A-Za-z][\w]*)*")


def proper_names(question: str) -> list[str]:
    """Capitalised words inside a question's sentences (a sentence's first word is capitalised
    anyway): the names a user asks about."""
    out: list[str] = []
    for sentence in question_sentences(question):
        first = re.match(r"\W*\w+", sentence)
        start = first.end() if first else 0
        out += [re.sub(r"'s$", "", m.group(0)) for m in _PROPER.finditer(sentence, start)]
    return list(dict.fromkeys(out))


# an acronym as written: two capitals or more ("CLX", "XLib"), not "I" or "Clx"
ACRONYM = r"[A-Z][A-Za-z0-9]*[A-Z][A-Za-z0-9]*"
# a term a user marks as one: in quotes ('DSW', "plug and play") or in capitals ("CLX")
_QUOTED = re.compile(r"(?<!\w)[\"“‘'](?P<term>[^\"”’'?]{2,40}?)[\"”’'](?!\w)")
_CAPITALS = re.compile(rf"(?<![\w']){ACRONYM}(?![\w'])")


def quoted_terms(text: str) -> list[str]:
    """The words or phrases ``text`` quotes, each once (an apostrophe is no quote)."""
    return list(dict.fromkeys(m.group("term") for m in _QUOTED.finditer(text)))


def marked_terms(text: str) -> list[str]:
    """The terms ``text`` marks: the quoted ones, else the acronyms, each once. Quotes win:
    "someone on IRC said 'DSW'" marks DSW, not IRC."""
    return quoted_terms(text) or list(dict.fromkeys(m.group(0) for m in _CAPITALS.finditer(text)))


def split_sentences(text: str) -> list[str]:
    """Sentences in order; a citation written after the full stop stays with its sentence, and
    so does a closing quote or bracket ('He's "plug and play."')."""
    out: list[str] = []
    # sentence, closing marks, sentence, ...
    parts = SENTENCE_BREAK.split(_SOFT_WRAP.sub(" ", text))
    for piece, closing in zip(parts[::2], [*parts[1::2], None], strict=True):
        s = ((piece or "") + (closing or "")).strip()
        # "Claim one. [1] Claim two." -- a citation after the full stop belongs to claim one
        if out and (m := LEADING_CITATIONS.match(s)):
            out[-1] += " " + m.group(0).strip()
            s = s[m.end() :].strip()
            if re.fullmatch(r"[.!?,;:]+", s):  # "Claim? [1]." -- keep the stop too
                out[-1] += s
                s = ""
        if s and not _PART_OF_SPEECH.fullmatch(s):  # the Jargon File's "n." line says nothing
            out.append(s)
    return out


def renumber_citations(text: str, numbers: list[int]) -> str:
    """Citations written against a sub-list of passages ("[1]" = the first of them) as the
    numbers those passages have in the full list (``numbers[0]``, ...)."""

    def fix(m: re.Match[str]) -> str:
        nums = [int(p) for p in re.split(r"[,;]", m.group(1))]
        return "[" + ", ".join(str(numbers[n - 1]) for n in nums if 1 <= n <= len(numbers)) + "]"

    return CITATION.sub(fix, text)


def parse_citations(text: str) -> list[int]:
    """Citation numbers in order of appearance, e.g. "[1]", "[1, 3]", "[2;4]"."""
    out: list[int] = []
    for m in CITATION.finditer(text):
        for part in re.split(r"[,;]", m.group(1)):
            n = int(part)
            if n not in out:
                out.append(n)
    return out


def strip_markup(text: str) -> str:
    """Prose only: no category tags, pronunciations, usage notes, source notes, dates, e-mail
    addresses, links or Markdown emphasis."""
    numbered = bool(re.match(r"\s*\d+\.\s", text))
    text = _MD_PREFIX.sub("", text)  # first: "2. <tool> A program ..." is a numbered sense
    text = _CATEGORY.sub("", text)
    text = _PRONUNCIATION.sub("", text)
    text = _MD_PREFIX.sub("", _LEADING_NOTE.sub("", text))  # "[no operation] 1. A machine"
    text = _SENSE_POS.sub("", text) if numbered else text
    text = _PRONUNCIATION.sub("", _LEADING_ABBREVIATION.sub("", text))  # "(NOL) /noh-el/ A"
    text = _MD_PREFIX.sub("", text)  # "(From German "klug") 1. A Rube Goldberg device"
    text = _DATE_NOTE.sub("", text)
    text = _CROSS_REFERENCE.sub(r"\1", _CROSS_REFERENCE.sub(r"\1", text))  # "{hard {disk}}"
    text = _UNCLOSED_REFERENCE.sub("", text)  # FOLDOC's "usually {hard {disk}."
    text = _SOURCE_NOTE.sub("", _EDITOR_QUERY.sub("", text))
    text = _LINK.sub("", _EMAIL.sub("", text))
    text = _EMPHASIS.sub(r"\1", text.replace("**", ""))
    text = re.sub(r"[ \t]{2,}", " ", text)
    return re.sub(r"\s+([.,;:!?])", r"\1", text).strip()


def without_headings(text: str) -> str:
    return _HEADING_LINE.sub("", text).strip()


# a short "Name: value" field line ("Year: 2018", "Created by: Robert Corbett")
_FIELD = re.compile(r"^([A-Z][\w/&'-]*(?: [\w/&'-]+){0,3}):\s+([^\s:][^:]{0,150}?)\.?$")


def field_line(line: str) -> tuple[str, str] | None:
    """(name, value) of a short "Name: value" line (a value of at most 8 words), else None."""
    m = _FIELD.match(line.strip())
    if not m or len(m.group(2).split()) > 8:
        return None
    return m.group(1), m.group(2).strip()


_SENSE_NUMBER = re.compile(r"\s*(\d+)\.\s")  # "2. " opening a dictionary's numbered sense


_OTHER_NAMES = re.compile(r"^(?:alt|aka|var|also)\.?:\s", re.I)


def opening_definition(text: str, max_chars: int = 320) -> str:
    """An entry's defining sentence(s): the first sentence that is a claim, plus the next one
    when the first is short. Lines such as 'Plural "Unices".' or a bare year are skipped, and a
    field line after the definition ("Year: 2018") ends it."""
    out: list[str] = []
    for sentence in split_sentences(without_headings(text)):
        s = strip_markup(sentence)
        if not s:
            continue
        number = _SENSE_NUMBER.match(sentence)
        if not out and number and number.group(1) == "1" and len(s.split()) < 4:
            break  # "1. Extra Simple Pascal.": a list of short senses, read as a list below
        if not out and (len(s.split()) < 4 or s.startswith("(") or s.endswith("?")):
            continue
        if not out and _OTHER_NAMES.match(s):
            continue  # the Jargon File's "alt.: marketing slime, marketdroid." names, not defines
        if out and (len(" ".join(out)) + len(s) > max_chars or s.endswith("?") or field_line(s)):
            break
        if out and number:
            break  # "2. <programming> ..." is another sense, not more of this one
        out.append(s)
        if len(" ".join(out)) >= 120:
            break
    return " ".join(out) or _numbered_senses(text, max_chars)


_TAGGED_SENSE = re.compile(r"^\s*\d+\.\s*<([^<>\n]{2,60})>", re.MULTILINE)  # "2. <programming>"


def _stems(text: str) -> set[str]:
    """Word beginnings that "programmer" and "programming" share."""
    return {w[:6] for w in re.findall(r"[a-z]{4,}", text.lower())}


def asked_sense(text: str, question: str, title: str = "") -> str:
    """The entry from the numbered sense whose category tag the question names, when it names
    exactly one later sense ("In programmer jargon, what does infinity mean?" asks for "2.
    <programming> The largest value ..."); else the whole entry: a dictionary lists the most
    common sense first, and a question naming no field asks for that one."""
    body = without_headings(text)
    senses = list(_TAGGED_SENSE.finditer(body))
    asked = _stems(question) - _stems(title)
    named = [m for m in senses if asked & _stems(m.group(1))]
    return body[named[0].start() :] if len(named) == 1 and named[0] != senses[0] else text


def _numbered_senses(text: str, max_chars: int) -> str:
    """An entry that is a list of short senses ("1. personal computer. 2. IBM PC."), each by
    its first sentence: "1. Broken. 2. Of people, feeling very tired.", not sense 1's usage
    example in place of sense 2."""
    senses = []
    for para in re.split(r"\n\s*\n", without_headings(text)):
        m = _SENSE_NUMBER.match(para)
        first = (split_sentences(para[m.end() :]) or [""])[0] if m else ""
        if m and (sense := strip_markup(" ".join(first.split()))):
            senses.append(f"{m.group(1)}. {sense}")
    out = ""
    for sense in senses:
        if out and len(out) + len(sense) > max_chars:
            break
        out = f"{out} {sense}".strip()
    return out
