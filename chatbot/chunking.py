"""Heading-aware chunking.

Chunks follow the document's structure rather than a fixed character grid: a chunk never crosses a
heading, so an FAQ question always stays with its own answer and never with its neighbour's.
Each chunk is an exact span of the source file (``text == document.text[start:end]``), which is
what lets a citation point back to the precise passage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from chatbot.corpus import Document
from chatbot.entries import TERM_ITEM
from chatbot.text import SENTENCE_BREAK, opening_definition, split_sentences, without_headings

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^(```|~~~)")
_FAQ_SECTION = re.compile(r"\b(faq|frequently asked|questions?)\b", re.IGNORECASE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class Section:
    """A heading and the text under it, up to the next heading of any level."""

    level: int  # 0 for text before the first heading
    path: tuple[str, ...]  # titles of the enclosing headings, outermost first
    start: int  # absolute offset of the heading line (or of the body)
    end: int

    @property
    def title(self) -> str:
        return self.path[-1] if self.path else ""

    def is_faq_entry(self) -> bool:
        """A question heading inside an FAQ section: ``## FAQ`` / ``### Can I ...?``."""
        return (
            self.level >= 3
            and self.title.rstrip().endswith("?")
            and any(_FAQ_SECTION.search(p) for p in self.path[:-1])
        )


# "the concept page", "the envisioning article": a word of a file's name before one of these
# names that page even in lower case
_PAGE_NOUNS = frozenset({"page", "article", "entry", "site", "explainer", "writeup", "write-up"})


def _as_name(text: str, word: re.Match[str], after: str) -> bool:
    """Is the word written as a name: capitalised where no sentence begins ("the Envisioning
    page"), or with a capital inside ("WikiWalls says"), and not the first word of another
    name ("Foundation Model")? "Foundation models learn ..." names nothing."""
    w = word.group()
    starts = text[: word.start()].rstrip()[-1:] in ("", ".", "?", "!")
    return not w.islower() and (not starts or w[1:] != w[1:].lower()) and not after[:1].isupper()


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    title: str
    heading: str  # "Base Model > Frequently asked questions > Why ...?"
    text: str
    start: int
    end: int
    kind: str  # "faq" for a question+answer entry, "text" otherwise
    file: str = ""  # the corpus file the entry came from
    templated: bool = False  # the entry's prose writes its name both ways (see templated())

    def embed_text(self) -> str:
        """What the embedder and BM25 see: the passage plus where it sits in the glossary."""
        return f"{self.title} | {self.heading}\n{self.text}"

    def page_named_in(self, question: str, *, by_name: bool = False) -> bool:
        """Does the question name the page this chunk comes from, by a word of its file's name
        ("According to InsertChat" and base-model-insertchat.md), not of the entry's title?
        ``by_name``: as a name, capitalised ("the Envisioning page"), or before "page" ("the
        concept page"), not as a word ("the concept") nor as the first word of another name
        ("Foundation Model")."""
        title = set(re.findall(r"\w+", self.title.lower()))
        stem = set(re.split(r"[\W_]+", Path(self.file).stem.lower())) - title - {""}
        words = list(re.finditer(r"\w+", question))
        if not by_name:
            return any(m.group().lower() in stem for m in words)
        after = [words[k + 1].group() if k + 1 < len(words) else "" for k in range(len(words))]
        return any(
            _as_name(question, m, after[k]) or after[k].lower() in _PAGE_NOUNS
            for k, m in enumerate(words)
            if m.group().lower() in stem
        )

    @property
    def opens_entry(self) -> bool:
        """The entry's first chunk, where a dictionary gives its definition and other names."""
        return self.chunk_id.endswith("#0")

    @property
    def question(self) -> str | None:
        return self.heading.rsplit(" > ", 1)[-1] if self.kind == "faq" else None

    def body_without_heading(self) -> str:
        """Passage text without its leading Markdown heading line (for display and answers)."""
        lines = self.text.split("\n", 1)
        if _HEADING.match(lines[0]):
            return lines[1].strip() if len(lines) > 1 else ""
        return self.text.strip()

    def sentences(self) -> list[str]:
        """The passage's sentences, its heading line left out: what answers are made of."""
        return split_sentences(self.body_without_heading() or self.text)


def parse_sections(doc: Document) -> list[Section]:
    text = doc.text
    headings: list[tuple[int, int, str]] = []  # (offset, level, title)
    pos = doc.body_start
    in_fence = False
    for line in text[doc.body_start :].splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        if _FENCE.match(stripped):
            in_fence = not in_fence
        elif not in_fence and (m := _HEADING.match(stripped)):
            headings.append((pos, len(m.group(1)), m.group(2).strip()))
        pos += len(line)

    sections: list[Section] = []
    first = headings[0][0] if headings else len(text)
    if text[doc.body_start : first].strip():
        sections.append(Section(0, (), doc.body_start, first))
    stack: list[tuple[int, str]] = []
    for i, (offset, level, title) in enumerate(headings):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        end = headings[i + 1][0] if i + 1 < len(headings) else len(text)
        sections.append(Section(level, tuple(t for _, t in stack), offset, end))
    return sections


def _split_units(text: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    """Break [start, end) into spans of at most ``size``: paragraphs, lines, sentences, words."""

    def spans(pattern: re.Pattern[str], s: int, e: int) -> list[tuple[int, int]]:
        out, cur = [], s
        for m in pattern.finditer(text, s, e):
            # a sentence break's closing quotes and brackets (group 1) stay with the sentence
            closing = m.group(1) if pattern.groups else None
            out.append((cur, m.end(1) if closing is not None else m.start()))
            cur = m.end()
        out.append((cur, e))
        return [(a, b) for a, b in out if text[a:b].strip()]

    def trim(s: int, e: int) -> tuple[int, int]:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        return s, e

    result: list[tuple[int, int]] = []
    levels = [_PARAGRAPH_BREAK, re.compile(r"\n"), SENTENCE_BREAK]

    def split(s: int, e: int, depth: int) -> None:
        s, e = trim(s, e)
        if e <= s:
            return
        if e - s <= size:
            result.append((s, e))
            return
        if depth < len(levels):
            parts = spans(levels[depth], s, e)
            if len(parts) > 1:
                for a, b in parts:
                    split(a, b, depth + 1)
                return
            split(s, e, depth + 1)
            return
        # a single run-on "sentence": cut at the last whitespace before the limit
        cur = s
        while e - cur > size:
            cut = text.rfind(" ", cur + 1, cur + size)
            cut = cut if cut > cur else cur + size
            result.append(trim(cur, cut))
            cur = cut
        result.append(trim(cur, e))

    split(start, end, 0)
    return [u for u in result if u[1] > u[0]]


def templated(doc: Document) -> bool:
    """Does the entry write its name in title case inside its prose ("Base Model matters in
    llm work") while also writing it in lower case ("A base model is")? SEO glossary templates
    paste the name that way into padding sentences; an entry whose name is a proper name
    ("Open Document Architecture") never writes it in lower case, and is not templated."""
    name = doc.title.split()
    if len(name) < 2 or not all(w[:1].isupper() for w in name):
        return False
    lower = re.escape(" ".join(name[1:]).lower())
    prose = without_headings(doc.body)
    if not re.search(rf"\b(?i:{re.escape(name[0][0])}){re.escape(name[0][1:])}\s+{lower}", prose):
        return False  # never in lower case: a proper name
    after_opening = " ".join(split_sentences(prose)[1:])  # the opening may title it any way
    return bool(re.search(rf"(?<![\"“(]){re.escape(doc.title)}(?![\"”)])", after_opening))


FAQ_MAX_FACTOR = 3
NOTES_MAX = 40  # the longest notes line kept with a heading ("/T'rof/, /trof/, n.")


def _head_only(text: str, start: int, end: int) -> bool:
    """Is text[start:end] a heading line alone, or with one line of notes only? The Jargon
    File's "# troff\n\n/T'rof/, n." is followed by a definition too long to share its chunk."""
    head, _, rest = text[start:end].partition("\n")
    rest = rest.strip()
    notes = len(rest) <= NOTES_MAX and "\n" not in rest and bool(_PARAGRAPH_BREAK.match(text, end))
    return bool(_HEADING.match(head)) and (not rest or (notes and not opening_definition(rest)))


MIN_SECTION_TERMS = 3


def term_items(text: str, sec: Section, size: int) -> list[tuple[int, int, str]]:
    """(start, end, term) of each "- **Term**: definition" item of a section that holds only
    such items ("Related terms"), the first with the heading line. Each becomes a chunk of its
    own: packed six to a chunk, "What is a baseline?" had to match one definition blurred by
    five others. A section with other text, or an item over ``size``, is left to the usual
    packing, so no text is left out and no chunk outgrows the limit."""
    items: list[tuple[int, int, str]] = []
    pos = sec.start
    for n, line in enumerate(text[sec.start : sec.end].splitlines(keepends=True)):
        body = line.strip()
        lead = len(line) - len(line.lstrip())
        if m := TERM_ITEM.match(line.rstrip("\r\n")):
            items.append((pos + lead, pos + lead + len(body), m.group(1).strip()))
        elif items and body and lead:  # an indented continuation of the definition
            items[-1] = (items[-1][0], pos + lead + len(body), items[-1][2])
        elif body and not (n == 0 and _HEADING.match(body)):
            return []
        pos += len(line)
    if len(items) < MIN_SECTION_TERMS or any(e - s > size for s, e, _ in items):
        return []
    items[0] = (sec.start, *items[0][1:])  # the heading line stays in a chunk
    return items


class Chunker:
    """Splits documents into heading-bounded chunks of at most ``size`` characters."""

    def __init__(self, size: int = 400, overlap: int = 80) -> None:
        if size < 50:
            raise ValueError("chunk size must be at least 50 characters")
        if not 0 <= overlap < size:
            raise ValueError("chunk overlap must be >= 0 and smaller than the chunk size")
        self.size = size
        self.overlap = overlap

    def params(self) -> dict[str, int | str]:
        return {"strategy": "heading-aware-v7", "size": self.size, "overlap": self.overlap}

    def run(self, doc: Document) -> list[Chunk]:
        chunks: list[Chunk] = []
        is_templated = templated(doc)
        for sec in parse_sections(doc):
            kind = "faq" if sec.is_faq_entry() else "text"
            heading = " > ".join(sec.path) if sec.path else doc.title
            # An FAQ entry stays whole up to FAQ_MAX_FACTOR x size: its answer is one unit of
            # meaning, and a split leaves a tail that retrieval ranks without its question.
            limit = self.size * FAQ_MAX_FACTOR if kind == "faq" else self.size
            units = _split_units(doc.text, sec.start, sec.end, limit)
            # Skip a section that is only its heading line: it carries no content of its own.
            if (
                len(units) == 1
                and sec.level > 0
                and _HEADING.match(doc.text[units[0][0] : units[0][1]])
            ):
                continue
            spans = self._pack(units, limit)
            if len(spans) > 1 and _head_only(doc.text, *spans[0]):
                # a heading (an FAQ question, an entry's title) fit no unit beside it: keep it
                # with the start of its text, or the entry's first chunk holds no definition
                spans[:2] = [(spans[0][0], spans[1][1])]
            terms = term_items(doc.text, sec, self.size) if kind == "text" else []
            named = [(s, e, f"{heading} > {term}") for s, e, term in terms]
            for s, e, where in named or [(s, e, heading) for s, e in spans]:
                chunks.append(
                    Chunk(
                        chunk_id=f"{doc.doc_id}#{len(chunks)}",
                        doc_id=doc.doc_id,
                        title=doc.title,
                        heading=where,
                        text=doc.text[s:e],
                        start=s,
                        end=e,
                        kind=kind,
                        file=doc.file,
                        templated=is_templated,
                    )
                )
        return chunks

    def _pack(self, units: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        i = 0
        while i < len(units):
            j = i
            while j + 1 < len(units) and units[j + 1][1] - units[i][0] <= size:
                j += 1
            out.append((units[i][0], units[j][1]))
            if j + 1 >= len(units):
                break
            # next chunk starts at the earliest unit that still lies inside the overlap window
            nxt = j + 1
            # ... and still reaches unit j + 1, so no chunk is just a tail of the previous one
            while (
                nxt - 1 > i
                and units[j][1] - units[nxt - 1][0] <= self.overlap
                and units[j + 1][1] - units[nxt - 1][0] <= size
            ):
                nxt -= 1
            i = nxt
        return out
