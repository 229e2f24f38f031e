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

from chatbot.errors import CorpusError

DICTD_DATA_SUFFIXES = (".dict.dz", ".dict")


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


def is_dictd_data(path: Path) -> bool:
    return path.name.lower().endswith(DICTD_DATA_SUFFIXES)


def dictd_index_of(path: Path) -> Path:
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
        and not (is_dictd_data(p) and dictd_index_of(p).is_file())
    )


def dictd_data_path(index_path: Path) -> Path | None:
    """The ``NAME.dict.dz`` or ``NAME.dict`` beside a dictd ``NAME.index``, if there is one."""
    for suffix in DICTD_DATA_SUFFIXES:
        candidate = index_path.with_name(index_path.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def file_group(path: Path) -> list[Path]:
    """The files whose bytes make up one corpus file: a dictd index and its data file."""
    data = dictd_data_path(path) if path.suffix.lower() == ".index" else None
    return [path] if data is None else [path, data]


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
