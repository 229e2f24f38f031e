"""One reader per corpus file format; each turns a file into citeable glossary entries.

Users bring glossaries as Markdown pages, plain text, saved HTML, PDFs, spreadsheet exports and
dictionaries. Every reader returns ``Document`` objects whose ``text`` is Markdown (``# Term``
then the definition), so chunking, citations and the term index work the same for all formats.
A multi-entry file (CSV, JSON, a dictd database) yields one Document per entry: each entry is
cited on its own, and the index re-embeds only the entries whose text changed.

A reader raises ``ValueError`` with a reason fit for the user; the corpus loader lists the file as
skipped with that reason and indexes the rest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import yaml

from chatbot.corpus import (
    Corpus,
    CorpusFile,
    Document,
    SkippedFile,
    corpus_files,
    dictd_data_path,
    dictd_index_of,
    file_sha256,
    file_stat,
    is_dictd_data,
)
from chatbot.entries import (
    MAX_EXPORT_BYTES,
    MAX_PAGE_BYTES,
    check_size,
    decode_text,
    entry_document,
    entry_id,
    term_list_items,
    visible,
)
from chatbot.exports import read_json, read_table

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_H1 = re.compile(r"^#[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


# ------------------------------------------------------------------------------ pages
def read_markdown(path: Path, data: bytes) -> list[Document]:
    """A Markdown page, with or without YAML front matter (title, source, terms, url)."""
    check_size(data, MAX_PAGE_BYTES)
    text = decode_text(data)
    meta: dict[str, object] = {}
    body_start = 0
    if text.startswith("---"):
        match = _FRONT_MATTER.match(text)
        if not match:
            raise ValueError("front matter opened with '---' but never closed")
        try:
            loaded = yaml.safe_load(match.group(1))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 2}" if mark is not None else ""
            raise ValueError(f"broken YAML front matter{where}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ValueError("front matter must be a mapping (key: value lines)")
        meta = loaded
        body_start = match.end()
    body = text[body_start:]
    if not body.strip():
        raise ValueError("no content after the front matter")
    heading = _H1.search(body)
    title = str(meta.get("title") or (heading.group(1) if heading else path.stem)).strip()
    terms_raw = meta.get("terms") or [title]
    if isinstance(terms_raw, str):
        terms_raw = [terms_raw]
    if not isinstance(terms_raw, list):
        raise ValueError("front matter 'terms' must be a list")
    aliases = meta.get("aliases") or []
    alias_list = [aliases] if isinstance(aliases, str) else aliases
    if not isinstance(alias_list, list):
        raise ValueError("front matter 'aliases' must be a list")
    terms = [str(t) for t in terms_raw] + [str(a) for a in alias_list]
    source = str(meta.get("source") or "unknown")
    items, intro = term_list_items(body)
    if items:  # a glossary written as "- **Term**: definition" lines: an entry per term
        used: set[str] = set()
        if len(intro.split()) >= 5:  # and the page's own prose, under the page's title
            items = [(title, intro), *items]
        return [
            entry_document(path, entry_id(path, term, used), term, definition, source=source)
            for term, definition in items
        ]
    return [
        Document(
            doc_id=path.stem,
            path=path,
            title=title,
            source=source,
            terms=tuple(dict.fromkeys(terms)),
            text=text,
            body_start=body_start,
            sha256=hashlib.sha256(data).hexdigest(),
            url=str(meta.get("url") or ""),
        )
    ]


def read_text(path: Path, data: bytes) -> list[Document]:
    """Plain text: the first line is the title when it is short, else the file name is."""
    check_size(data, MAX_PAGE_BYTES)
    text = decode_text(data).strip()
    first, _, rest = text.partition("\n")
    if len(first) <= 80 and rest.strip():
        title, body = first.strip(), rest
    else:
        title, body = path.stem.replace("_", " ").replace("-", " "), text
    return [entry_document(path, path.stem, title, body)]


def read_html(path: Path, data: bytes) -> list[Document]:
    """A saved web page: its main content only, without menus and cookie banners."""
    check_size(data, MAX_PAGE_BYTES)
    html = decode_text(data)
    import trafilatura

    extracted = trafilatura.extract(
        html, output_format="markdown", include_comments=False, include_tables=True
    )
    meta = trafilatura.extract_metadata(html)
    if not extracted or not extracted.strip():
        raise ValueError("no main text found in the HTML page")
    title = (meta.title if meta and meta.title else "") or path.stem.replace("-", " ")
    url = (meta.url if meta and meta.url else "") or ""
    source = (meta.sitename if meta and meta.sitename else "") or path.name
    return [entry_document(path, path.stem, title, extracted, source=source, url=url)]


def read_with_markitdown(path: Path, data: bytes) -> list[Document]:
    """PDF and DOCX through markitdown; one document per file, its headings kept."""
    check_size(data, MAX_EXPORT_BYTES)
    try:
        from markitdown import MarkItDown
    except ImportError:  # a declared dependency; say what to install rather than crash
        raise ValueError("reading this format needs markitdown: run `make setup`") from None
    try:
        result = MarkItDown(enable_plugins=False).convert_stream(
            io.BytesIO(data), file_extension=path.suffix.lower()
        )
    except Exception as exc:  # damaged or encrypted files raise many kinds of errors
        raise ValueError(f"cannot read {path.suffix.lower()[1:].upper()} ({exc})") from None
    text = (result.text_content or "").strip()
    if text.startswith(("%PDF", "PK\x03\x04")):  # markitdown fell back to the raw bytes
        raise ValueError(f"damaged {path.suffix.lower()[1:].upper()}: no readable text")
    if not text:
        raise ValueError("no text found (a scanned document needs OCR first)")
    heading = _H1.search(text)
    title = (result.title or "") or (heading.group(1) if heading else path.stem.replace("-", " "))
    if heading and heading.start() == 0:
        text = text[heading.end() :]
    return [entry_document(path, path.stem, title, text)]


# ------------------------------------------------------------------------------ dictd
_B64 = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
}
_XREF = re.compile(r"\{([^{}]*)\}")


def _b64_number(text: str) -> int:
    """dictd's offsets: base64 digits, most significant first, no padding."""
    if not text:
        raise KeyError(text)
    number = 0
    for ch in text:  # a KeyError for a character that is not a base64 digit
        number = number * 64 + _B64[ch]
    return number


def read_dictd(path: Path, data: bytes) -> list[Document]:
    """A dictd database (``NAME.index`` + ``NAME.dict[.dz]``): one document per definition.

    Several headwords can point at one definition (aliases); the definition's own first line is
    its title. Cross-reference braces are removed ("{Java}" -> "Java") and hard-wrapped lines
    are joined, so sentences read as prose.
    """
    check_size(data, MAX_EXPORT_BYTES)
    data_path = dictd_data_path(path)
    if data_path is None:
        raise ValueError(f"dictd index without its data file ({path.stem}.dict or .dict.dz)")
    raw = data_path.read_bytes()
    try:
        blob = gzip.decompress(raw) if data_path.name.endswith(".dz") else raw
    except (OSError, EOFError) as exc:
        raise ValueError(f"{data_path.name} is not a valid dictzip file ({exc})") from None
    headwords: dict[tuple[int, int], list[str]] = {}
    for n, line in enumerate(decode_text(data).splitlines(), 1):
        parts = line.split("\t")
        if len(parts) < 3:
            raise ValueError(f"line {n} of the dictd index is not 'word<TAB>offset<TAB>length'")
        try:
            key = (_b64_number(parts[1]), _b64_number(parts[2]))
        except KeyError:
            raise ValueError(f"line {n} of the dictd index has a bad offset") from None
        if not parts[0].startswith("00-database") and not parts[0].startswith("00database"):
            headwords.setdefault(key, []).append(parts[0])
    docs: list[Document] = []
    used: set[str] = set()
    source = path.stem
    for (offset, length), words in sorted(headwords.items()):
        entry = visible(blob[offset : offset + length].decode("utf-8", errors="replace"))
        title, aliases, body = _split_dictd_entry(entry, words[0])
        if not body:
            continue
        doc_id = entry_id(path, title, used)
        docs.append(
            entry_document(path, doc_id, title, body, terms=[*aliases, *words], source=source)
        )
    if not docs:
        raise ValueError("the dictd database has no entries")
    return docs


_BOX_ROW = re.compile(r"\s*[┌│├└]")  # a table drawn with box characters (the Jargon File's)


def _unboxed(table: str) -> str:
    """A box-drawn table as one paragraph per row, "17: Long described at MIT as ...": its
    borders are no text, and a cell's wrapped lines are one sentence."""
    rows: list[list[str]] = []
    cells: list[list[str]] = []
    for line in table.strip().splitlines():
        line = line.strip()
        if not line.startswith("│"):  # a border: the row above it is complete
            rows.append([" ".join(c).strip() for c in cells])
            cells = []
            continue
        parts = line.strip("│").split("│")
        cells = cells or [[] for _ in parts]
        for cell, part in zip(cells, parts, strict=False):
            cell.append(part.strip())
    rows.append([" ".join(c).strip() for c in cells])
    pairs = [(row[0].rstrip(":"), "; ".join(row[1:])) for row in rows if any(row)]
    return "\n\n".join(": ".join(side for side in pair if side) for pair in pairs)


def _split_dictd_entry(entry: str, headword: str) -> tuple[str, list[str], str]:
    """Title lines (unindented, before the first blank line), then the indented body."""
    lines = entry.strip("\n").split("\n")
    head: list[str] = []
    while lines and lines[0].strip() and not lines[0].startswith((" ", "\t")):
        head.append(lines.pop(0).strip())
    title = head[0] if head else headword
    paragraphs = re.split(r"\n[ \t]*\n", "\n".join(lines))
    body = "\n\n".join(
        _unboxed(p) if _BOX_ROW.match(p) else " ".join(ln.strip() for ln in p.strip().splitlines())
        for p in paragraphs
        if p.strip()
    )
    body = _XREF.sub(lambda m: m.group(1).replace("\n", " "), body)
    return title, head[1:], body.strip()


Reader = Callable[[Path, bytes], list[Document]]
READERS: dict[str, Reader] = {
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".txt": read_text,
    ".text": read_text,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_with_markitdown,
    ".docx": read_with_markitdown,
    ".csv": read_table,
    ".tsv": read_table,
    ".json": read_json,
    ".jsonl": read_json,
    ".index": read_dictd,
}
SUPPORTED = tuple(sorted(READERS))


def reader_for(path: Path) -> Reader | None:
    return READERS.get(path.suffix.lower())


def read_corpus_file(path: Path) -> list[Document]:
    """The documents of one file, or ValueError with the reason it cannot be used."""
    reader = reader_for(path)
    if reader is None:
        if is_dictd_data(path):
            raise ValueError(f"dictd data without its index file ({dictd_index_of(path).name})")
        raise ValueError(f"unsupported format (supported: {', '.join(SUPPORTED)})")
    size = path.stat().st_size
    if size > MAX_EXPORT_BYTES:  # checked before reading: a 5 GB file must not be loaded
        raise ValueError(f"too large ({size:,} bytes, limit {MAX_EXPORT_BYTES:,})")
    return reader(path, path.read_bytes())


class KnownFile(NamedTuple):
    """A file as the previous build indexed it: what a rebuild needs to reuse it unread."""

    sha256: str
    entries: int
    doc_ids: frozenset[str]


@dataclass
class LoadedCorpus(Corpus):
    """A corpus as read for a build. ``reused`` files hashed the same as a ``known`` one and
    were not parsed: their documents and chunks are the previous build's."""

    reused: set[str] = field(default_factory=set)


def load_corpus(corpus_dir: Path, known: Mapping[str, KnownFile] | None = None) -> LoadedCorpus:
    """Every file's documents, or why it was skipped.

    A file in ``known`` whose bytes are unchanged is hashed but not parsed (parsing and chunking
    dict-foldoc costs ~1 s, hashing it milliseconds), and listed in ``reused``.
    """
    known = known or {}
    corpus = LoadedCorpus()
    seen: dict[str, str] = {}  # doc_id -> file name
    for path in corpus_files(corpus_dir):
        try:
            old = known.get(path.name)
            if old is not None and not (old.doc_ids & seen.keys()):
                stat, sha = file_stat(path), file_sha256(path)
                if sha == old.sha256:
                    seen.update((d, path.name) for d in old.doc_ids)
                    corpus.files.append(CorpusFile(path.name, sha, stat, old.entries))
                    corpus.reused.add(path.name)
                    continue
            docs = read_corpus_file(path)
            stat, sha = file_stat(path), file_sha256(path)
        except OSError as exc:
            corpus.skipped.append(SkippedFile(path, f"cannot read ({exc.strerror or exc})"))
            continue
        except ValueError as exc:
            corpus.skipped.append(SkippedFile(path, str(exc)))
            continue
        # doc ids come from file stems: "a.md" next to "a.markdown" would share chunk ids and the
        # incremental rebuild would reuse each file's chunks for the other.
        clash = next((seen[d.doc_id] for d in docs if d.doc_id in seen), None)
        if clash is not None:
            corpus.skipped.append(SkippedFile(path, f"same name as {clash} (rename one of them)"))
            continue
        seen.update((d.doc_id, path.name) for d in docs)
        corpus.documents += docs
        corpus.files.append(CorpusFile(path.name, sha, stat, len(docs)))
    return corpus


def parse_document(path: Path, data: bytes) -> Document:
    """One Markdown page (the format of the bundled corpus)."""
    return read_markdown(path, data)[0]
