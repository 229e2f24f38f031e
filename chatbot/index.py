"""The on-disk vector index: build incrementally, swap atomically, load only what is consistent.

Layout of ``index/``::

    CURRENT                 name of the active build (replaced atomically with os.replace)
    builds/<build_id>/      manifest.json, chunks.jsonl, vectors.npy, faiss.index
    builds/.tmp-<id>/       a build in progress; removed on failure, swept by the next build
    .lock                   flock held by the one process that is rebuilding

A build never touches the active build directory: it writes a new one and then flips CURRENT, so
a crash at any point leaves the previous index usable, and a reader that resolved CURRENT once
sees one consistent build. Nothing is pickled: chunks are JSON, vectors are ``.npy`` loaded with
``allow_pickle=False``, and every artifact's sha256 is checked against the manifest on load.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from chatbot.atomic import fsync_dir, write_synced
from chatbot.chunking import Chunk, Chunker
from chatbot.corpus import (
    Corpus,
    CorpusError,
    Document,
    corpus_files,
    file_sha256,
    file_stat,
    path_sha256,
)
from chatbot.embed_cache import EmbeddingCache, text_key
from chatbot.embedding import Embedder
from chatbot.errors import (
    IndexBuildError,
    IndexCorrupt,
    IndexLocked,
    IndexMismatch,
    IndexMissing,
    IndexUnavailable,
)
from chatbot.readers import load_corpus

FORMAT_VERSION = 2
ARTIFACTS = ("chunks.jsonl", "documents.jsonl", "vectors.npy", "faiss.index")
_MANIFEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "build_id": str,
    "chunk_count": int,
    "embedding": dict,
    "files": dict,
    "skipped": list,
    "artifacts": dict,
}
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class FileStatus:
    file: str
    status: str  # indexed | changed | new | removed | skipped
    reason: str = ""


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


@dataclass(frozen=True)
class LoadedIndex:
    """An immutable, verified build: swap the whole object to switch indexes."""

    path: Path
    manifest: dict[str, Any]
    chunks: list[Chunk]
    vectors: np.ndarray
    faiss_index: Any
    documents: list[dict[str, Any]] = field(default_factory=list)

    @property
    def build_id(self) -> str:
        return str(self.manifest["build_id"])

    @property
    def fingerprint(self) -> str:
        """Identifies the content searched: what preset-answer caches are keyed by."""
        return str(self.manifest["fingerprint"])

    def __len__(self) -> int:
        return len(self.chunks)


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("glossary-chat", "faiss-cpu", "sentence-transformers", "torch", "bm25s", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


# module-level names, so fault-injection tests can replace them for this module alone
_fsync_dir = fsync_dir
_write_bytes = write_synced


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


class IndexStore:
    """Builds and loads the index in one directory."""

    def __init__(
        self,
        index_dir: Path,
        embedder: Embedder,
        chunker: Chunker,
        index_type: str = "auto",
        approx_min_vectors: int = 100_000,
        lock_timeout_s: float = 600.0,
        *,
        cache_flush_chunks: int = 1024,
    ) -> None:
        self.dir = Path(index_dir)
        self.embedder = embedder
        self.chunker = chunker
        self.index_type = index_type
        self.approx_min_vectors = approx_min_vectors
        self.lock_timeout_s = lock_timeout_s
        self.cache_flush_chunks = cache_flush_chunks  # a kill loses at most this many vectors

    # ----------------------------------------------------------------------------- reading
    @property
    def builds_dir(self) -> Path:
        return self.dir / "builds"

    def current_path(self) -> Path | None:
        pointer = self.dir / "CURRENT"
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise IndexCorrupt(f"index pointer {pointer} is unreadable: {exc}") from exc
        if not name or "/" in name or name.startswith("."):
            raise IndexCorrupt(f"index pointer {pointer} is corrupted")
        return self.builds_dir / name

    def read_manifest(self) -> dict[str, Any] | None:
        path = self.current_path()
        if path is None:
            return None
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IndexCorrupt(f"index build {path.name} has no manifest") from None
        except (OSError, ValueError) as exc:
            raise IndexCorrupt(f"index manifest is corrupted ({exc})") from exc
        if not isinstance(manifest, dict) or not isinstance(manifest.get("format"), int):
            raise IndexCorrupt("index manifest has an unknown format")
        if manifest["format"] != FORMAT_VERSION:
            raise IndexMismatch(
                f"the index was built by another version of glossary-chat (format "
                f"{manifest['format']}, now {FORMAT_VERSION})"
            )
        bad = [k for k, t in _MANIFEST_FIELDS.items() if not isinstance(manifest.get(k), t)]
        if bad:  # valid JSON but not a whole manifest: say so rather than fail with a KeyError
            raise IndexCorrupt(
                f"index manifest is corrupted (missing or invalid: {', '.join(bad)})"
            )
        return manifest

    def expected_config(self) -> dict[str, Any]:
        return {"embedding": self.embedder.fingerprint(), "chunking": self.chunker.params()}

    def check_compatible(self, manifest: dict[str, Any]) -> None:
        expected = self.expected_config()
        if manifest.get("embedding", {}).get("fingerprint") != expected["embedding"]:
            raise IndexMismatch(
                "the index was built with a different embedding model "
                f"({manifest.get('embedding', {}).get('fingerprint')}, now {expected['embedding']})"
            )
        if manifest.get("chunking") != expected["chunking"]:
            raise IndexMismatch(
                f"the index was built with other chunk settings ({manifest.get('chunking')}, "
                f"now {expected['chunking']})"
            )

    def load(self, *, same_chunking: bool = True) -> LoadedIndex:
        """Load and verify the active build; raises an IndexUnavailable subclass saying why.

        ``same_chunking=False`` accepts a build chunked with other settings: its vectors are
        still reusable by text hash when only the chunking changed.
        """
        path = self.current_path()
        if path is None:
            raise IndexMissing(f"no index in {self.dir}")
        manifest = self.read_manifest()
        assert manifest is not None
        try:
            self.check_compatible(manifest)
        except IndexMismatch:
            if (
                same_chunking
                or manifest.get("embedding", {}).get("fingerprint")
                != (self.expected_config()["embedding"])
            ):
                raise
        for name in ARTIFACTS:
            file = path / name
            if not file.exists():
                raise IndexCorrupt(f"index file {name} is missing")
            if path_sha256(file) != manifest["artifacts"].get(name):
                raise IndexCorrupt(f"index file {name} is corrupted (checksum mismatch)")
        try:
            chunks = [
                Chunk(**json.loads(line))
                for line in (path / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
                if line.strip()
            ]
            documents = [
                json.loads(line)
                for line in (path / "documents.jsonl").read_text(encoding="utf-8").splitlines()
                if line.strip()
            ]
            vectors = np.load(path / "vectors.npy", allow_pickle=False)
            faiss_index = faiss.read_index(str(path / "faiss.index"))
        except Exception as exc:
            raise IndexCorrupt(f"index files cannot be read ({exc})") from exc
        if vectors.dtype != np.float32 or vectors.ndim != 2 or vectors.shape[1] != faiss_index.d:
            raise IndexCorrupt(
                f"index vectors have the wrong type or shape ({vectors.dtype}, "
                f"{vectors.shape}, index dimension {faiss_index.d})"
            )
        if not (len(chunks) == len(vectors) == faiss_index.ntotal == manifest["chunk_count"]):
            raise IndexCorrupt("index files disagree on the number of chunks")
        return LoadedIndex(path, manifest, chunks, vectors, faiss_index, documents)

    def file_statuses(self, corpus_dir: Path) -> list[FileStatus]:
        """What a rebuild would change, per file, without loading any model.

        A file whose size and mtime match the manifest is not read: at 10,000 files hashing
        costs seconds, a stat microseconds.
        """
        try:
            manifest = self.read_manifest() or {}
        except (IndexCorrupt, IndexMismatch):
            manifest = {}
        known: dict[str, dict[str, Any]] = manifest.get("files", {})
        skipped = {s["file"]: s for s in manifest.get("skipped", [])}
        out: list[FileStatus] = []
        seen = set()
        for path in corpus_files(corpus_dir):
            seen.add(path.name)
            old = known.get(path.name) or skipped.get(path.name)
            try:
                same = old is not None and [list(x) for x in file_stat(path)] == old.get("stat")
                same = same or (old is not None and file_sha256(path) == old.get("sha256"))
            except OSError as exc:
                out.append(FileStatus(path.name, "changed", f"cannot read: {exc}"))
                continue
            if path.name in known:
                out.append(FileStatus(path.name, "indexed" if same else "changed"))
            elif path.name in skipped and same:
                out.append(FileStatus(path.name, "skipped", skipped[path.name]["reason"]))
            else:
                out.append(FileStatus(path.name, "new"))
        out += [FileStatus(name, "removed") for name in sorted(set(known) - seen)]
        return out

    def stale_reasons(self, corpus_dir: Path) -> list[str]:
        """Empty when the index matches the corpus and the current settings."""
        try:
            manifest = self.read_manifest()
        except (IndexCorrupt, IndexMismatch) as exc:
            return [str(exc)]
        if manifest is None:
            return ["no index has been built yet"]
        try:
            self.check_compatible(manifest)
        except IndexMismatch as exc:
            return [str(exc)]
        return [
            f"{s.file} is {s.status}"
            for s in self.file_statuses(corpus_dir)
            if s.status in {"changed", "new", "removed"}
        ]

    # ----------------------------------------------------------------------------- writing
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise rebuilds across processes; the kernel drops the lock if its holder dies."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + self.lock_timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise IndexLocked("another rebuild is still running") from None
                    time.sleep(0.05)
            try:
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def build(
        self,
        corpus_dir: Path,
        full: bool = False,
        progress: Progress | None = None,
        _before_commit: Callable[[Path], None] | None = None,
    ) -> BuildSummary:
        """Bring the index in line with the corpus, re-embedding only entries whose text changed."""
        started = time.perf_counter()
        with self.lock():
            self._sweep()
            if not full and (quick := self._quick_up_to_date(corpus_dir)) is not None:
                quick.seconds = time.perf_counter() - started
                return quick
            previous, note = (None, "") if full else self._reusable_previous()
            same_chunking = previous is not None and (
                previous.manifest.get("chunking") == self.chunker.params()
            )
            corpus = load_corpus(corpus_dir)
            if not corpus.documents and not corpus.skipped:
                raise CorpusError(f"no corpus files in {corpus_dir}")
            summary = self._plan(corpus, previous)
            summary.note = note
            summary.up_to_date = summary.up_to_date and same_chunking
            if previous is not None and summary.up_to_date:
                summary.build_id = previous.build_id
                summary.chunks = len(previous)
                summary.seconds = time.perf_counter() - started
                return summary
            tmp = self.builds_dir / f".tmp-{uuid.uuid4().hex[:12]}"
            try:
                self._write_build(tmp, corpus, previous, summary, progress)
                if _before_commit is not None:
                    _before_commit(tmp)
                summary.seconds = time.perf_counter() - started
                self._commit(tmp, summary)
            except BaseException as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                _raise_build_error(exc)
            self._cache().clear()  # the committed build now holds every vector
            self._sweep()
            return summary

    def _cache(self) -> EmbeddingCache:
        return EmbeddingCache(self.dir / "embcache", self.embedder.fingerprint())

    def _quick_up_to_date(self, corpus_dir: Path) -> BuildSummary | None:
        """An up-to-date summary from the manifest, the artifacts' hashes and the corpus files'
        stats, or None when a real check is needed. Nothing is parsed: at 18,000 chunks loading
        the build costs 0.6 s, hashing its files under 0.1 s."""
        try:
            manifest = self.read_manifest()
            if manifest is None:
                return None
            self.check_compatible(manifest)
        except IndexUnavailable:
            return None
        build = self.current_path()
        if build is None or not build.is_dir() or not self._unchanged_on_disk(corpus_dir, manifest):
            return None
        for name in ARTIFACTS:  # a damaged build is rebuilt by the full path, and said so
            file = build / name
            if not file.is_file() or path_sha256(file) != manifest["artifacts"].get(name):
                return None
        if not _consistent(build, manifest):
            return None
        return BuildSummary(
            build_id=str(manifest["build_id"]),
            up_to_date=True,
            unchanged=sorted(manifest["files"]),
            skipped=list(manifest["skipped"]),
            chunks=int(manifest["chunk_count"]),
        )

    def _unchanged_on_disk(self, corpus_dir: Path, manifest: dict[str, Any]) -> bool:
        """Same files with the same sizes and mtimes as at the last build: nothing to read.

        A stat per file costs microseconds where reading and hashing 10,000 files costs seconds.
        """
        try:
            names = [p.name for p in corpus_files(corpus_dir)]
        except CorpusError:
            return False
        known = {n: f.get("stat") for n, f in manifest["files"].items()}
        known |= {s["file"]: s.get("stat") for s in manifest["skipped"]}
        if set(names) != set(known):
            return False
        for name in names:
            try:
                stat = [list(x) for x in file_stat(corpus_dir / name)]
            except OSError:
                return False
            if stat != known[name]:
                return False
        return True

    def _reusable_previous(self) -> tuple[LoadedIndex | None, str]:
        """The live build if its vectors can be reused, else None and why (for the summary)."""
        try:
            return self.load(same_chunking=False), ""
        except IndexMissing:
            return None, ""
        except IndexCorrupt as exc:
            return None, f"index was damaged ({exc}); rebuilt"
        except IndexUnavailable as exc:
            return None, f"index was not reusable ({exc}); rebuilt"

    def _plan(self, corpus: Corpus, previous: LoadedIndex | None) -> BuildSummary:
        old_files: dict[str, Any] = previous.manifest["files"] if previous else {}
        old_skipped = (
            {s["file"]: s.get("sha256") for s in previous.manifest["skipped"]} if previous else {}
        )
        summary = BuildSummary(build_id="", up_to_date=True)
        current = set()
        for f in corpus.files:
            current.add(f.name)
            if f.name not in old_files:
                summary.added.append(f.name)
            elif old_files[f.name]["sha256"] != f.sha256:
                summary.changed.append(f.name)
            else:
                summary.unchanged.append(f.name)
        for skip in corpus.skipped:
            current.add(skip.path.name)
            sha = _safe_sha(skip.path)
            summary.skipped.append(
                {"file": skip.path.name, "reason": skip.reason, "sha256": sha}
                | {"stat": _safe_stat(skip.path)}
            )
            if skip.path.name in old_files or old_skipped.get(skip.path.name) != sha:
                summary.up_to_date = False
        summary.removed = sorted(set(old_files) - current)
        if previous is None or summary.added or summary.changed or summary.removed:
            summary.up_to_date = False
        if set(old_skipped) - current:
            summary.up_to_date = False
        return summary

    def _write_build(
        self,
        tmp: Path,
        corpus: Corpus,
        previous: LoadedIndex | None,
        summary: BuildSummary,
        progress: Progress | None,
    ) -> None:
        tmp.mkdir(parents=True)
        chunks = self._chunk(corpus.documents, progress)
        vectors = self._vectors_for(chunks, previous, summary, progress)
        index_type = choose_index_type(self.index_type, len(vectors), self.approx_min_vectors)
        if progress:
            progress("index", 0, 1)
        faiss_index = make_faiss_index(vectors, index_type)
        _write_bytes(
            tmp / "chunks.jsonl",
            "".join(json.dumps(vars(c), ensure_ascii=False) + "\n" for c in chunks).encode(),
        )
        _write_bytes(
            tmp / "documents.jsonl",
            "".join(
                json.dumps(document_record(d), ensure_ascii=False) + "\n" for d in corpus.documents
            ).encode(),
        )
        with (tmp / "vectors.npy").open("wb") as fh:
            np.save(fh, vectors, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        faiss.write_index(faiss_index, str(tmp / "faiss.index"))
        summary.build_id = (
            datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        )
        summary.chunks = len(chunks)
        manifest = self._manifest(tmp, corpus, chunks, summary, index_type, vectors.shape[1])
        _write_bytes(tmp / "manifest.json", json.dumps(manifest, indent=1).encode())
        if progress:
            progress("index", 1, 1)

    def _chunk(self, documents: list[Document], progress: Progress | None) -> list[Chunk]:
        chunks: list[Chunk] = []
        for n, doc in enumerate(documents, 1):
            chunks += self.chunker.run(doc)
            if progress and (n % 2000 == 0 or n == len(documents)):
                progress("chunk", n, len(documents))
        return chunks

    def _manifest(
        self,
        tmp: Path,
        corpus: Corpus,
        chunks: list[Chunk],
        summary: BuildSummary,
        index_type: str,
        dim: int,
    ) -> dict[str, Any]:
        per_file: dict[str, int] = {}
        for c in chunks:
            per_file[c.file] = per_file.get(c.file, 0) + 1
        titles: dict[str, str] = {}
        for d in corpus.documents:
            titles.setdefault(d.file, d.title)
        files = {
            f.name: {
                "sha256": f.sha256,
                "stat": [list(x) for x in f.stat],
                "title": titles.get(f.name, ""),
                "entries": f.entries,
                "chunks": per_file.get(f.name, 0),
            }
            for f in corpus.files
        }
        content = {"files": {k: v["sha256"] for k, v in files.items()}, **self.expected_config()}
        fingerprint = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
        return {
            "format": FORMAT_VERSION,
            "build_id": summary.build_id,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "fingerprint": fingerprint,
            "embedding": {
                "name": self.embedder.name,
                "fingerprint": self.embedder.fingerprint(),
                "dim": int(dim),
                "normalized": True,
                "metric": "inner_product",
            },
            "chunking": self.chunker.params(),
            "index_type": index_type,
            "chunk_count": len(chunks),
            "document_count": len(corpus.documents),
            "files": files,
            "skipped": summary.skipped,
            "artifacts": {name: path_sha256(tmp / name) for name in ARTIFACTS},
            "versions": _versions(),
            "build": {
                "added": summary.added,
                "changed": summary.changed,
                "removed": summary.removed,
                "embedded_chunks": summary.embedded_chunks,
                "reused_chunks": summary.chunks - summary.embedded_chunks,
            },
        }

    def _vectors_for(
        self,
        chunks: list[Chunk],
        previous: LoadedIndex | None,
        summary: BuildSummary,
        progress: Progress | None,
    ) -> np.ndarray:
        """One row per chunk: reused from the previous build or the embedding cache by the hash
        of the exact text embedded, embedded afresh otherwise (and cached as it goes)."""
        keys = [text_key(c.embed_text()) for c in chunks]
        known: dict[str, np.ndarray] = {}
        if previous is not None:
            for c, v in zip(previous.chunks, previous.vectors, strict=True):
                known[text_key(c.embed_text())] = v
        cache = self._cache()
        cache.load()
        missing = [i for i, k in enumerate(keys) if k not in known and cache.get(k) is None]
        # one text embedded once, even when two entries share it
        todo = list({keys[i]: i for i in missing}.values())
        t0 = time.perf_counter()
        self._embed([chunks[i] for i in todo], [keys[i] for i in todo], cache, progress)
        summary.embed_seconds = time.perf_counter() - t0
        summary.embedded_chunks = len(todo)
        rows = [known.get(k) if k in known else cache.get(k) for k in keys]
        if not rows:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.ascontiguousarray(np.vstack(rows), dtype=np.float32)  # type: ignore[arg-type]

    def _embed(
        self,
        chunks: list[Chunk],
        keys: list[str],
        cache: EmbeddingCache,
        progress: Progress | None,
    ) -> None:
        """Embed in length-sorted batches (less padding), flushing to the cache as it goes."""
        if not chunks:
            return
        batch = max(1, int(getattr(self.embedder, "batch_size", 32)))
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i].embed_text()))
        flush_every = max(batch, self.cache_flush_chunks)
        for start in range(0, len(order), batch):
            part = order[start : start + batch]
            vecs = self.embedder.encode([chunks[i].embed_text() for i in part])
            cache.add([keys[i] for i in part], np.asarray(vecs, dtype=np.float32))
            done = min(start + batch, len(order))
            if done % flush_every < batch or done == len(order):
                cache.flush()
            if progress:
                progress("embed", done, len(order))

    def _commit(self, tmp: Path, summary: BuildSummary) -> None:
        final = self.builds_dir / summary.build_id
        _fsync_dir(tmp)
        os.rename(tmp, final)
        _fsync_dir(self.builds_dir)
        pointer_tmp = self.dir / f".CURRENT.{uuid.uuid4().hex[:8]}"
        try:
            _write_bytes(pointer_tmp, summary.build_id.encode())
            os.replace(pointer_tmp, self.dir / "CURRENT")
        finally:
            pointer_tmp.unlink(missing_ok=True)
        _fsync_dir(self.dir)

    def _sweep(self) -> None:
        """Remove unfinished builds and all but the active and the previous build.

        Keeping the previous one lets a process that loaded it a moment ago keep reading
        (it has everything in memory anyway). Only called while holding the lock.
        """
        if not self.builds_dir.is_dir():
            return
        for tmp in self.dir.glob(".CURRENT.*"):
            tmp.unlink(missing_ok=True)
        try:
            active = self.current_path()
        except IndexCorrupt:
            active = None
        builds = []
        for entry in self.builds_dir.iterdir():
            if entry.name.startswith(".tmp-"):
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.is_dir() and entry != active:
                builds.append(entry)
        builds.sort(key=lambda p: p.name, reverse=True)
        for old in builds[1:]:
            shutil.rmtree(old, ignore_errors=True)


def _safe_sha(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError:
        return ""


def _consistent(build: Path, manifest: dict[str, Any]) -> bool:
    """The build's files agree with each other and the manifest, read without loading them
    (vectors and FAISS are memory-mapped): a cheap guard for the no-op path."""
    try:
        vectors = np.load(build / "vectors.npy", mmap_mode="r", allow_pickle=False)
        index = faiss.read_index(str(build / "faiss.index"), faiss.IO_FLAG_MMAP)
        lines = (build / "chunks.jsonl").read_bytes().splitlines()
        fields = set(Chunk.__dataclass_fields__)
        ok_lines = all(set(json.loads(line)) <= fields for line in lines if line.strip())
    except Exception:
        return False
    count = manifest["chunk_count"]
    return bool(
        ok_lines
        and vectors.dtype == np.float32
        and vectors.ndim == 2
        and vectors.shape == (count, index.d)
        and index.ntotal == count == len([x for x in lines if x.strip()])
    )


def _safe_stat(path: Path) -> list[list[int]]:
    try:
        return [list(x) for x in file_stat(path)]
    except OSError:
        return []


def _raise_build_error(exc: BaseException) -> None:
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


def document_record(doc: Document) -> dict[str, Any]:
    """What the term index and citations need of an entry, without its text."""
    return {
        "doc_id": doc.doc_id,
        "title": doc.title,
        "terms": list(doc.terms),
        "file": doc.file,
        "source": doc.source,
        "url": doc.url,
    }
