"""Reading the corpus: Markdown files with YAML front matter, one per glossary page.

Users edit these files by hand, so a broken file must never take the whole corpus down: each file
that cannot be used is reported with a reason and skipped, and the rest is indexed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CORPUS_SUFFIXES = (".md", ".markdown")
MAX_FILE_BYTES = 2_000_000  # a glossary page is a few KB; anything this big is a mistake
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_H1 = re.compile(r"^#[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


class CorpusError(Exception):
    """The corpus as a whole is unusable (missing directory, no readable file)."""


@dataclass(frozen=True)
class Document:
    """One corpus file. ``text`` is the whole file; ``body_start`` is where the content begins."""

    doc_id: str
    path: Path
    title: str
    source: str
    terms: tuple[str, ...]
    text: str
    body_start: int
    sha256: str

    @property
    def body(self) -> str:
        return self.text[self.body_start :]


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path.name}: {self.reason}"


@dataclass
class Corpus:
    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    def by_id(self) -> dict[str, Document]:
        return {d.doc_id: d for d in self.documents}


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def path_sha256(path: Path) -> str:
    """SHA-256 of a file read in 1 MB blocks: index artifacts and model files can be large."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def corpus_files(corpus_dir: Path) -> list[Path]:
    """Corpus files in a stable order; hidden files and editor backups are not content."""
    if not corpus_dir.is_dir():
        raise CorpusError(f"corpus directory not found: {corpus_dir}")
    return sorted(
        p
        for p in corpus_dir.iterdir()
        if p.is_file() and p.suffix.lower() in CORPUS_SUFFIXES and not p.name.startswith((".", "~"))
    )


def parse_document(path: Path, data: bytes) -> Document:
    """Parse one file; raises ValueError with a user-facing reason when it cannot be used."""
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"too large ({len(data):,} bytes, limit {MAX_FILE_BYTES:,})")
    if b"\x00" in data:
        raise ValueError("binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise ValueError("empty file")

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
    return Document(
        doc_id=path.stem,
        path=path,
        title=title,
        source=str(meta.get("source") or "unknown"),
        terms=tuple(str(t) for t in terms_raw),
        text=text,
        body_start=body_start,
        sha256=file_sha256(data),
    )


def load_corpus(corpus_dir: Path) -> Corpus:
    corpus = Corpus()
    seen: dict[str, str] = {}  # doc_id -> file name
    for path in corpus_files(corpus_dir):
        try:
            data = path.read_bytes()
        except OSError as exc:
            corpus.skipped.append(SkippedFile(path, f"cannot read ({exc.strerror or exc})"))
            continue
        try:
            doc = parse_document(path, data)
        except ValueError as exc:
            corpus.skipped.append(SkippedFile(path, str(exc)))
            continue
        # doc_id is the file stem: "a.md" next to "a.markdown" would share chunk ids and the
        # incremental rebuild would reuse each file's chunks for the other.
        if (first := seen.get(doc.doc_id)) is not None:
            corpus.skipped.append(SkippedFile(path, f"same name as {first} (rename one of them)"))
            continue
        seen[doc.doc_id] = path.name
        corpus.documents.append(doc)
    return corpus
