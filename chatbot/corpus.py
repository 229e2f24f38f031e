"""The corpus: a folder of glossary files, each read by the reader for its format.

Users edit these files by hand, so a broken file must never take the whole corpus down: each file
that cannot be used is reported with a reason and skipped, and the rest is indexed. A file can hold
one entry (a Markdown page) or thousands (a CSV export, a dictd database); every entry becomes a
``Document`` of its own, cited on its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

DICTD_DATA_SUFFIXES = (".dict.dz", ".dict")


class CorpusError(Exception):
    """The corpus as a whole is unusable (missing directory, no readable file)."""


@dataclass(frozen=True)
class Document:
    """One glossary entry. ``text`` is Markdown; ``body_start`` is where the content begins.

    ``path`` is the file the entry came from; ``sha256`` identifies the entry's content (for a
    one-entry file, the file's bytes), ``terms`` its title and aliases for the term index.
    """

    doc_id: str
    path: Path
    title: str
    source: str
    terms: tuple[str, ...]
    text: str
    body_start: int
    sha256: str
    url: str = ""

    @property
    def body(self) -> str:
        return self.text[self.body_start :]

    @property
    def file(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path.name}: {self.reason}"


@dataclass(frozen=True)
class CorpusFile:
    """A file as the index tracks it: content hash, plus size and mtime for a cheap no-op check."""

    name: str
    sha256: str
    stat: tuple[tuple[int, int], ...]
    entries: int


@dataclass
class Corpus:
    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    files: list[CorpusFile] = field(default_factory=list)


def path_sha256(path: Path) -> str:
    """SHA-256 of a file read in 1 MB blocks: index artifacts and model files can be large."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_dictd_data(path: Path) -> bool:
    return path.name.lower().endswith(DICTD_DATA_SUFFIXES)


def _dictd_index_of(path: Path) -> Path:
    name = path.name
    for suffix in DICTD_DATA_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(name + ".index")


def corpus_files(corpus_dir: Path) -> list[Path]:
    """Every file a user put in the corpus, in a stable order, unsupported ones included (so they
    can be listed as skipped). Hidden files and editor backups are not content, and a dictd data
    file belongs to its ``.index`` file."""
    if not corpus_dir.is_dir():
        raise CorpusError(f"corpus directory not found: {corpus_dir}")
    return sorted(
        p
        for p in corpus_dir.iterdir()
        if p.is_file()
        and not p.name.startswith((".", "~", "#"))
        and not p.name.endswith(("~", ".swp", ".tmp"))
        and not (_is_dictd_data(p) and _dictd_index_of(p).is_file())
    )


def file_group(path: Path) -> list[Path]:
    """The files whose bytes make up one corpus file: a dictd index and its data file."""
    if path.suffix.lower() == ".index":
        for suffix in DICTD_DATA_SUFFIXES:
            data = path.with_name(path.stem + suffix)
            if data.is_file():
                return [path, data]
    return [path]


def file_stat(path: Path) -> tuple[tuple[int, int], ...]:
    """(size, mtime_ns) of each file of the group: unchanged stats mean no need to hash."""
    out = []
    for p in file_group(path):
        st = p.stat()
        out.append((st.st_size, st.st_mtime_ns))
    return tuple(out)


def file_sha256(path: Path) -> str:
    """Content hash of a corpus file, including a dictd index's data file."""
    group = file_group(path)
    if len(group) == 1:
        return path_sha256(path)
    return hashlib.sha256("".join(path_sha256(p) for p in group).encode()).hexdigest()


def read_corpus_file(path: Path) -> list[Document]:
    """The documents of one file, or ValueError with the reason it cannot be used."""
    from chatbot.readers import MAX_EXPORT_BYTES, SUPPORTED, reader_for

    reader = reader_for(path)
    if reader is None:
        if _is_dictd_data(path):
            raise ValueError(f"dictd data without its index file ({_dictd_index_of(path).name})")
        raise ValueError(f"unsupported format (supported: {', '.join(SUPPORTED)})")
    size = path.stat().st_size
    if size > MAX_EXPORT_BYTES:  # checked before reading: a 5 GB file must not be loaded
        raise ValueError(f"too large ({size:,} bytes, limit {MAX_EXPORT_BYTES:,})")
    return reader(path, path.read_bytes())


def load_corpus(corpus_dir: Path) -> Corpus:
    corpus = Corpus()
    seen: dict[str, str] = {}  # doc_id -> file name
    for path in corpus_files(corpus_dir):
        try:
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
    from chatbot.readers import read_markdown

    return read_markdown(path, data)[0]
