"""One build: from the corpus and the previous build to a complete, unpublished build folder.

The steps, each its own function: plan what changed (``plan``), chunk every entry, find each
chunk's vector (reused from the previous build or the embedding cache by the hash of the exact
text embedded, embedded afresh otherwise), build the FAISS index, write the artifacts, and last
the manifest that seals them. Publishing the folder is the store's job.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import gc
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import faiss
import numpy as np

from chatbot.chunking import Chunk, Chunker
from chatbot.corpus import Corpus, Document, file_sha256, file_stat, path_sha256
from chatbot.embed_cache import EmbeddingCache, text_key
from chatbot.embedding import Embedder
from chatbot.errors import IndexBuildError
from chatbot.index import disk
from chatbot.index.loaded import LoadedIndex
from chatbot.index.manifest import (
    ARTIFACTS,
    FORMAT_VERSION,
    FileRecord,
    Manifest,
    SkippedRecord,
    versions,
)
from chatbot.readers import LoadedCorpus

Progress = Callable[[str, int, int], None]  # (stage, done, total): chunk, embed, index


@dataclass
class BuildSummary:
    build_id: str
    up_to_date: bool
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    chunks: int = 0
    embedded_chunks: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    note: str = ""  # e.g. the index was damaged and has been rebuilt: never silent

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if self.up_to_date:
            head = "index is up to date"
        else:
            head = (
                f"indexed {self.chunks} chunks: {len(self.added)} added, {len(self.changed)} "
                f"changed, {len(self.removed)} removed, {len(self.unchanged)} unchanged files"
            )
        tail = f" in {self.seconds:.2f} s"
        skipped = "".join(f"\n  skipped {s['file']}: {s['reason']}" for s in self.skipped)
        note = f"{self.note}\n" if self.note else ""
        return note + head + tail + skipped


def choose_index_type(index_type: str, n_vectors: int, approx_min_vectors: int) -> str:
    if index_type == "auto":
        return "hnsw" if n_vectors >= approx_min_vectors else "flat"
    return index_type


def make_faiss_index(vectors: np.ndarray, index_type: str) -> Any:
    dim = vectors.shape[1]
    idx: Any
    if index_type == "hnsw":
        idx = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        idx.hnsw.efConstruction = 80
        idx.hnsw.efSearch = 64
    else:
        idx = faiss.IndexFlatIP(dim)
    if len(vectors):
        idx.add(vectors)
    return idx


def document_record(doc: Document) -> dict[str, Any]:
    """What the term index and citations need of an entry, without its text; ``sha256`` (the
    entry's content hash) lets the next build reuse the entry's chunks unchunked."""
    return {
        "doc_id": doc.doc_id,
        "title": doc.title,
        "terms": list(doc.terms),
        "file": doc.file,
        "source": doc.source,
        "url": doc.url,
        "sha256": doc.sha256,
    }


EntryKey = tuple[str, str, str, str]  # doc_id, file, title, sha256: all that chunking reads


def entry_key(record: Mapping[str, Any]) -> EntryKey | None:
    sha = record.get("sha256")
    if not isinstance(sha, str):
        return None  # a build from before entry hashes were recorded: chunk the entry again
    return (str(record["doc_id"]), str(record["file"]), str(record["title"]), sha)


def entry_chunks(previous: LoadedIndex) -> dict[EntryKey, list[Chunk]]:
    """The previous build's chunks per entry, by what a chunker makes them from: an entry with
    the same id, file, title and content hash chunks to exactly these (same chunk settings)."""
    by_doc: dict[str, list[Chunk]] = {}
    for c in previous.chunks:
        by_doc.setdefault(c.doc_id, []).append(c)
    out: dict[EntryKey, list[Chunk]] = {}
    for record in previous.documents:
        key = entry_key(record)
        if key is not None and key[0] in by_doc:
            out[key] = by_doc[key[0]]
    return out


def chunked_alike(previous: LoadedIndex, chunker: Chunker) -> bool:
    """Whether ``previous`` was chunked with ``chunker``'s settings: only then may a build
    take its chunks as its own."""
    return previous.manifest.chunking == chunker.params()


def new_build_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


# ------------------------------------------------------------------------------ planning


def plan(corpus: Corpus, previous: LoadedIndex | None) -> BuildSummary:
    """Which files were added, changed, removed or left alone since the previous build.

    ``up_to_date`` stays True only when nothing differs, skipped files included (a skipped file
    that was fixed, or broke differently, needs a build).
    """
    old = previous.manifest if previous is not None else None
    old_files = old.files if old is not None else {}
    old_skipped = {s.file: s.sha256 for s in old.skipped} if old is not None else {}
    summary = BuildSummary(build_id="", up_to_date=True)
    for f in corpus.files:
        if f.name not in old_files:
            summary.added.append(f.name)
        elif old_files[f.name].sha256 != f.sha256:
            summary.changed.append(f.name)
        else:
            summary.unchanged.append(f.name)
    for skip in corpus.skipped:
        sha = _safe_sha(skip.path)
        summary.skipped.append(
            {"file": skip.path.name, "reason": skip.reason, "sha256": sha}
            | {"stat": _safe_stat(skip.path)}
        )
        if skip.path.name in old_files or old_skipped.get(skip.path.name) != sha:
            summary.up_to_date = False
    current = {f.name for f in corpus.files} | {s.path.name for s in corpus.skipped}
    summary.removed = sorted(set(old_files) - current)
    if previous is None or summary.added or summary.changed or summary.removed:
        summary.up_to_date = False
    if set(old_skipped) - current:
        summary.up_to_date = False
    return summary


def _safe_sha(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError:
        return ""


def _safe_stat(path: Path) -> list[list[int]]:
    try:
        return [list(x) for x in file_stat(path)]
    except OSError:
        return []


# ------------------------------------------------------------------------------ building


@dataclass(frozen=True)
class BuildOptions:
    """How vectors are indexed and how often the embedding cache is flushed during a build."""

    index_type: str = "auto"
    approx_min_vectors: int = 100_000
    cache_flush_chunks: int = 1024  # a kill loses at most this many vectors


class Builder:
    """Writes one build folder; holds what every step needs, so each step stays short."""

    def __init__(
        self,
        embedder: Embedder,
        chunker: Chunker,
        cache: EmbeddingCache,
        options: BuildOptions,
        progress: Progress | None = None,
    ) -> None:
        self.embedder, self.chunker, self.cache = embedder, chunker, cache
        self.options = options
        self.progress = progress

    def write(
        self, tmp: Path, corpus: LoadedCorpus, previous: LoadedIndex | None, summary: BuildSummary
    ) -> None:
        """Chunk, embed, index and write everything into ``tmp``, the manifest last."""
        tmp.mkdir(parents=True)
        chunks, records = self.gather(corpus, previous)
        vectors = self.vectors_for(chunks, previous, summary)
        self._report("index", 0, 1)
        index_type = choose_index_type(
            self.options.index_type, len(vectors), self.options.approx_min_vectors
        )
        write_artifacts(tmp, chunks, records, vectors, index_type)
        summary.build_id = new_build_id()
        summary.chunks = len(chunks)
        manifest = self.manifest(
            tmp, corpus, chunks, records, summary, index_type, vectors.shape[1]
        )
        disk.write_bytes(tmp / "manifest.json", manifest.dumps())
        self._report("index", 1, 1)

    def _report(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)

    def gather(
        self, corpus: LoadedCorpus, previous: LoadedIndex | None
    ) -> tuple[list[Chunk], list[dict[str, Any]]]:
        """Chunks and document records in corpus file order, as a full build makes them: a
        reused file's are the previous build's, the other files are chunked now."""
        chunks: dict[str, list[Chunk]] = {}
        records: dict[str, list[dict[str, Any]]] = {}
        for c in self.chunk(corpus.documents, previous):
            chunks.setdefault(c.file, []).append(c)
        for d in corpus.documents:
            records.setdefault(d.file, []).append(document_record(d))
        if corpus.reused:
            assert previous is not None, "files are only reused from a previous build"
            for c in previous.chunks:
                if c.file in corpus.reused:
                    chunks.setdefault(c.file, []).append(c)
            for r in previous.documents:
                if r["file"] in corpus.reused:
                    records.setdefault(r["file"], []).append(r)
        names = [f.name for f in corpus.files]
        return (
            [c for name in names for c in chunks.get(name, [])],
            [r for name in names for r in records.get(name, [])],
        )

    def chunk(self, documents: list[Document], previous: LoadedIndex | None) -> list[Chunk]:
        """Every entry's chunks; an entry the previous build chunked with the same settings
        keeps its chunks (one edit in a 12,000-entry file chunks one entry, not 12,000)."""
        reuse: dict[EntryKey, list[Chunk]] = {}
        if previous is not None and chunked_alike(previous, self.chunker):
            reuse = entry_chunks(previous) if documents else {}
        chunks: list[Chunk] = []
        for n, doc in enumerate(documents, 1):
            old = reuse.get((doc.doc_id, doc.file, doc.title, doc.sha256))
            chunks += old if old is not None else self.chunker.run(doc)
            if n % 2000 == 0 or n == len(documents):
                self._report("chunk", n, len(documents))
        return chunks

    def vectors_for(
        self, chunks: list[Chunk], previous: LoadedIndex | None, summary: BuildSummary
    ) -> np.ndarray:
        """One row per chunk: reused from the previous build or the embedding cache by the hash
        of the exact text embedded, embedded afresh otherwise (and cached as it goes).

        Rows are copied once into a preallocated array; the previous build's vectors are only
        indexed (no per-row copies), and each text is embedded once even if entries share it.
        """
        keys = [text_key(c.embed_text()) for c in chunks]
        reuse = previous_rows(previous)
        self.cache.load()
        todo: dict[str, int] = {}  # key -> first chunk with that text
        for i, k in enumerate(keys):
            if k not in reuse and k not in todo and self.cache.get(k) is None:
                todo[k] = i
        t0 = time.perf_counter()
        self.embed([chunks[i] for i in todo.values()], list(todo))
        summary.embed_seconds = time.perf_counter() - t0
        summary.embedded_chunks = len(todo)
        if not keys:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        out: np.ndarray | None = None
        for i, k in enumerate(keys):
            j = reuse.get(k)
            row = (
                previous.vectors[j] if j is not None and previous is not None else self.cache.get(k)
            )
            if row is None:  # the embedder returned fewer rows than asked: never misalign
                raise IndexBuildError(f"no vector for chunk {chunks[i].chunk_id}")
            if out is None:
                out = np.empty((len(keys), row.shape[0]), dtype=np.float32)
            out[i] = row
        assert out is not None
        return out

    def embed(self, chunks: list[Chunk], keys: list[str]) -> None:
        """Embed in length-sorted batches (less padding), flushing to the cache as it goes.

        After each flush the C heap is trimmed: torch's variable-shape tensors otherwise leave
        freed memory in glibc's arenas, and a torch build of dict-foldoc grew to 1.9 GB.
        """
        if not chunks:
            return
        batch = max(1, int(getattr(self.embedder, "batch_size", 32)))
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i].embed_text()))
        flush_every = max(batch, self.options.cache_flush_chunks)
        for start in range(0, len(order), batch):
            part = order[start : start + batch]
            vecs = self.embedder.encode([chunks[i].embed_text() for i in part])
            self.cache.add([keys[i] for i in part], np.asarray(vecs, dtype=np.float32))
            done = min(start + batch, len(order))
            if done % flush_every < batch or done == len(order):
                self.cache.flush()
                release_heap()
            self._report("embed", done, len(order))

    def manifest(
        self,
        tmp: Path,
        corpus: Corpus,
        chunks: list[Chunk],
        records: list[dict[str, Any]],
        summary: BuildSummary,
        index_type: str,
        dim: int,
    ) -> Manifest:
        files = file_records(corpus, chunks, records)
        return Manifest(
            format=FORMAT_VERSION,
            build_id=summary.build_id,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            fingerprint=self.content_fingerprint(files),
            embedding={
                "name": self.embedder.name,
                "fingerprint": self.embedder.fingerprint(),
                "dim": int(dim),
                "normalized": True,
                "metric": "inner_product",
            },
            chunking=self.chunker.params(),
            index_type=index_type,
            chunk_count=len(chunks),
            document_count=len(records),
            files=files,
            skipped=[SkippedRecord(**s) for s in summary.skipped],
            artifacts={name: path_sha256(tmp / name) for name in ARTIFACTS},
            versions=versions(),
            build={
                "added": summary.added,
                "changed": summary.changed,
                "removed": summary.removed,
                "embedded_chunks": summary.embedded_chunks,
                "reused_chunks": summary.chunks - summary.embedded_chunks,
            },
        )

    def content_fingerprint(self, files: dict[str, FileRecord]) -> str:
        """Changes exactly when what is searched changes: files, model or chunking."""
        content = {
            "files": {name: f.sha256 for name, f in files.items()},
            "embedding": self.embedder.fingerprint(),
            "chunking": self.chunker.params(),
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def previous_rows(previous: LoadedIndex | None) -> dict[str, int]:
    """Text key -> row of the previous build's vectors (an index, not a copy of the row)."""
    if previous is None:
        return {}
    rows: dict[str, int] = {}
    for j, c in enumerate(previous.chunks):
        rows.setdefault(text_key(c.embed_text()), j)
    return rows


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cycle collection while a build loads the previous one: its ~100,000 chunks and
    records form no cycles, yet each full collection would walk every object loaded so far."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def frozen_gc() -> Iterator[None]:
    """Cycle collection leaves out what is alive on entry (the previous build, the modules)
    until the build ends, and still collects what reading files and embedding leave behind.

    Full collections otherwise walk the previous build's objects again and again: two of them
    cost 0.14 s of a 1.4 s one-entry rebuild of dict-foldoc.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def release_heap() -> None:
    """Give freed C-heap memory back to the OS (glibc ``malloc_trim``); a no-op elsewhere."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def file_records(
    corpus: Corpus, chunks: list[Chunk], records: list[dict[str, Any]]
) -> dict[str, FileRecord]:
    per_file: dict[str, int] = {}
    for c in chunks:
        per_file[c.file] = per_file.get(c.file, 0) + 1
    titles: dict[str, str] = {}
    for r in records:
        titles.setdefault(r["file"], r["title"])
    return {
        f.name: FileRecord(
            sha256=f.sha256,
            stat=[list(x) for x in f.stat],
            title=titles.get(f.name, ""),
            entries=f.entries,
            chunks=per_file.get(f.name, 0),
        )
        for f in corpus.files
    }


def write_artifacts(
    tmp: Path,
    chunks: list[Chunk],
    records: list[dict[str, Any]],
    vectors: np.ndarray,
    index_type: str,
) -> None:
    faiss_index = make_faiss_index(vectors, index_type)
    disk.write_jsonl(tmp / "chunks.jsonl", (vars(c) for c in chunks))
    disk.write_jsonl(tmp / "documents.jsonl", records)
    disk.save_vectors(tmp / "vectors.npy", vectors)
    disk.save_faiss(faiss_index, tmp / "faiss.index")


def raise_build_error(exc: BaseException) -> NoReturn:
    """Disk and I/O errors become one clear IndexBuildError; anything else propagates."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        raise IndexBuildError(
            "disk full while writing the index; the previous index is unchanged"
        ) from exc
    if isinstance(exc, OSError):
        raise IndexBuildError(
            f"could not write the index ({exc}); the previous index is unchanged"
        ) from exc
    raise exc
