"""What every reader makes: an entry as a Markdown ``Document`` (``# Term``, its definition,
its fields, its FAQ), with a stable id, and the checks every file goes through first (size, text
encoding). Readers of pages (``readers.py``) and of exports (``exports.py``) share them, so an
entry looks the same whatever file it came from.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from chatbot.corpus import Document

MAX_PAGE_BYTES = 2_000_000  # one page (Markdown, text, HTML): anything bigger is a mistake
MAX_EXPORT_BYTES = 200_000_000  # one multi-entry export (CSV, JSON, dictd, PDF)
_SLUG = re.compile(r"[^a-z0-9]+")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def slug(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-")[:60] or "entry"


def entry_id(path: Path, name: str, used: set[str]) -> str:
    """``FILE-STEM:slug`` for one entry of a multi-entry file, numbered when names repeat."""
    doc_id, k = f"{path.stem}:{slug(name)}", 2
    while doc_id in used:
        doc_id, k = f"{path.stem}:{slug(name)}-{k}", k + 1
    used.add(doc_id)
    return doc_id


# invisible marks that break words apart for search and answers: "mar\u00adket\u00ading droid"
# (the Jargon File's soft hyphens), zero-width spaces and word joiners from web exports
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u2060"), None)


def visible(text: str) -> str:
    """The text without invisible word-breaking marks."""
    return text.translate(_INVISIBLE)


def decode_text(data: bytes) -> str:
    """UTF-8 text or a ValueError saying why not (binary, wrong encoding, empty)."""
    if b"\x00" in data:
        raise ValueError("binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise ValueError("empty file")
    return visible(text)


def check_size(data: bytes, limit: int) -> None:
    if len(data) > limit:
        raise ValueError(f"too large ({len(data):,} bytes, limit {limit:,})")


def entry_document(
    path: Path,
    doc_id: str,
    title: str,
    body: str,
    *,
    terms: Iterable[str] = (),
    source: str = "",
    url: str = "",
    faq: Iterable[tuple[str, str]] = (),
    fields: Iterable[tuple[str, str]] = (),
) -> Document:
    """A glossary entry as a Markdown document: ``# title``, the definition, its other fields as
    a "- Name: value" list (an export's "Year" or "Author" column is a fact users ask about),
    then FAQ entries."""
    parts = [f"# {title.strip()}", body.strip()] if body.strip() else [f"# {title.strip()}"]
    listed = [f"- {k.strip()}: {' '.join(v.split())}" for k, v in fields if k.strip() and v.strip()]
    if listed:
        parts.append("\n".join(listed))
    faq = [(q.strip(), a.strip()) for q, a in faq if q.strip() and a.strip()]
    if faq:
        parts.append("## Frequently asked questions")
        for q, a in faq:
            q = q if q.endswith("?") else q + "?"
            parts.append(f"### {q}\n{a}")
    text = "\n\n".join(parts) + "\n"
    return Document(
        doc_id=doc_id,
        path=path,
        title=title.strip(),
        source=source or path.name,
        terms=tuple(dict.fromkeys([title.strip(), *(t.strip() for t in terms if t.strip())])),
        text=text,
        body_start=0,
        sha256=sha256_text(text),
        url=url,
    )


# "- **Term**: definition", "**Term:** definition", "* **Term** - definition"
TERM_ITEM = re.compile(
    r"^[ \t]*(?:[-*+][ \t]+)?\*\*([^*\n]{1,80}?)[ \t]*"
    r"(?::\*\*|\*\*[ \t]*[:\u2014\u2013-])[ \t]*(\S.*)$"
)
MIN_TERM_ITEMS = 5


def term_list_items(body: str) -> tuple[list[tuple[str, str]], str]:
    """(term, definition) of a page that is a glossary in itself: at least five
    "- **Term**: definition" lines making up most of its text. Each becomes an entry of its
    own, so "What is TTL?" finds TTL as it finds a page's title. Also the page's other prose
    (an introduction), which is kept too. A page with a short related-terms list stays one
    page: ([], "")."""
    items: list[list[str]] = []
    other: list[str] = []
    in_items = 0
    for line in body.splitlines():
        text = line.strip()
        if m := TERM_ITEM.match(line):
            items.append([m.group(1).strip(), m.group(2).strip()])
            in_items += len(text)
        elif not text or text.startswith("#"):
            continue  # headings are not the page's text
        elif items and line[:1] in " \t":
            items[-1][1] += " " + text  # an indented continuation of the definition
            in_items += len(text)
        else:
            other.append(text)
    prose = in_items + sum(len(x) for x in other)
    if len(items) < MIN_TERM_ITEMS or in_items < 0.6 * prose:
        return [], ""
    return [(t, d) for t, d in items if t and d], "\n\n".join(other)
