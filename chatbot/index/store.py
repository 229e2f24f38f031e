"""The index directory: which build is live, loading it, publishing a new one, removing old ones.

A build never touches the active build directory: it writes a new one and then flips CURRENT, so
a crash at any point leaves the previous index usable, and a reader that resolved CURRENT once
sees one consistent build. Rebuilds are serialised by a file lock that the kernel releases when
its holder dies, so a killed build never blocks the next one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from chatbot.chunking import Chunker
from chatbot.corpus import CorpusError, corpus_files, file_sha256, file_stat
from chatbot.embed_cache import EmbeddingCache
from chatbot.embedding import Embedder
from chatbot.errors import (
    IndexCorrupt,
    IndexLocked,
    IndexMismatch,
    IndexMissing,
    IndexUnavailable,
)
from chatbot.index import disk
from chatbot.index.build import (
    Builder,
    BuildOptions,
    BuildSummary,
    Progress,
    chunked_alike,
    frozen_gc,
    paused_gc,
    plan,
    raise_build_error,
)
from chatbot.index.loaded import LoadedIndex, artifacts_intact, consistent, read_build
from chatbot.index.manifest import Manifest
from chatbot.readers import KnownFile, LoadedCorpus, load_corpus

LOCK_POLL_S = 0.05


@dataclass(frozen=True)
class FileStatus:
    file: str
    status: str  # indexed | changed | new | removed | skipped
    reason: str = ""


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
        self.embedder, self.chunker = embedder, chunker
        self.lock_timeout_s = lock_timeout_s
        self.options = BuildOptions(index_type, approx_min_vectors, cache_flush_chunks)

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
        """The live build's manifest as its JSON mapping (for display), checked as ``manifest``."""
        manifest = self.manifest()
        return None if manifest is None else manifest.to_dict()

    def manifest(self) -> Manifest | None:
        """The live build's manifest, None without a build; IndexCorrupt or IndexMismatch."""
        path = self.current_path()
        if path is None:
            return None
        try:
            text = (path / "manifest.json").read_bytes()
        except FileNotFoundError:
            raise IndexCorrupt(f"index build {path.name} has no manifest") from None
        except OSError as exc:
            raise IndexCorrupt(f"index manifest is corrupted ({exc})") from exc
        return Manifest.parse(text)

    def expected_config(self) -> dict[str, Any]:
        return {"embedding": self.embedder.fingerprint(), "chunking": self.chunker.params()}

    def check_compatible(self, manifest: Manifest) -> None:
        expected = self.expected_config()
        if manifest.embedding_fingerprint != expected["embedding"]:
            raise IndexMismatch(
                "the index was built with a different embedding model "
                f"({manifest.embedding_fingerprint}, now {expected['embedding']})"
            )
        if manifest.chunking != expected["chunking"]:
            raise IndexMismatch(
                f"the index was built with other chunk settings ({manifest.chunking}, "
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
        manifest = self.manifest()
        assert manifest is not None
        try:
            self.check_compatible(manifest)
        except IndexMismatch:
            if same_chunking or manifest.embedding_fingerprint != self.embedder.fingerprint():
                raise
        return read_build(path, manifest)

    def file_statuses(self, corpus_dir: Path) -> list[FileStatus]:
        """What a rebuild would change, per file, without loading any model.

        A file whose size and mtime match the manifest is not read: at 10,000 files hashing
        costs seconds, a stat microseconds.
        """
        try:
            manifest = self.manifest()
        except (IndexCorrupt, IndexMismatch):
            manifest = None
        known = manifest.files if manifest is not None else {}
        skipped = {s.file: s for s in manifest.skipped} if manifest is not None else {}
        out: list[FileStatus] = []
        seen = set()
        for path in corpus_files(corpus_dir):
            seen.add(path.name)
            old = known.get(path.name) or skipped.get(path.name)
            try:
                same = old is not None and [list(x) for x in file_stat(path)] == old.stat
                same = same or (old is not None and file_sha256(path) == old.sha256)
            except OSError as exc:
                out.append(FileStatus(path.name, "changed", f"cannot read: {exc}"))
                continue
            if path.name in known:
                out.append(FileStatus(path.name, "indexed" if same else "changed"))
            elif path.name in skipped and same:
                out.append(FileStatus(path.name, "skipped", skipped[path.name].reason))
            else:
                out.append(FileStatus(path.name, "new"))
        out += [FileStatus(name, "removed") for name in sorted(set(known) - seen)]
        return out

    def stale_reasons(self, corpus_dir: Path) -> list[str]:
        """Empty when the index matches the corpus and the current settings."""
        try:
            manifest = self.manifest()
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
        """Serialise rebuilds across processes and threads: an flock on ``.lock``, which the
        kernel drops when its holder dies. Waits ``lock_timeout_s``, then raises IndexLocked."""
        self.dir.mkdir(parents=True, exist_ok=True)
        file_lock = FileLock(self.dir / ".lock")
        try:
            file_lock.acquire(timeout=self.lock_timeout_s, poll_interval=LOCK_POLL_S)
        except Timeout:
            raise IndexLocked("another rebuild is still running") from None
        try:
            yield
        finally:
            file_lock.release()

    def build(
        self,
        corpus_dir: Path,
        full: bool = False,
        progress: Progress | None = None,
        _before_commit: Callable[[Path], None] | None = None,
    ) -> BuildSummary:
        """Bring the index in line with the corpus, re-embedding only entries whose text changed.

        ``_before_commit`` runs on the complete, unpublished build folder (tests use it to
        fail or pause at that point).
        """
        started = time.perf_counter()
        with self.lock():
            self._sweep()
            quick = None if full else self._quick_up_to_date(corpus_dir)
            if quick is not None:
                quick.seconds = time.perf_counter() - started
                return quick
            with paused_gc():
                previous, note = (None, "") if full else self._reusable_previous()
            with frozen_gc():
                return self._update(corpus_dir, previous, note, progress, _before_commit, started)

    def _update(
        self,
        corpus_dir: Path,
        previous: LoadedIndex | None,
        note: str,
        progress: Progress | None,
        before_commit: Callable[[Path], None] | None,
        started: float,
    ) -> BuildSummary:
        """Read the corpus (unchanged files unparsed), then write and publish a build unless
        nothing differs from ``previous``."""
        corpus = load_corpus(corpus_dir, self._known_files(previous))
        if not corpus.documents and not corpus.reused and not corpus.skipped:
            raise CorpusError(f"no corpus files in {corpus_dir}")
        summary = plan(corpus, previous)
        summary.note = note
        if previous is not None and summary.up_to_date and chunked_alike(previous, self.chunker):
            summary.build_id = previous.build_id
            summary.chunks = len(previous)
            summary.seconds = time.perf_counter() - started
            return summary
        summary.up_to_date = False
        if previous is not None and not chunked_alike(previous, self.chunker):
            # every file is chunked again although none changed: say why, or "0 changed" misleads
            summary.note = "\n".join(
                filter(None, [note, "chunking settings changed: every file was chunked again"])
            )
        self._write_and_publish(corpus, previous, summary, progress, before_commit, started)
        return summary

    def _known_files(self, previous: LoadedIndex | None) -> dict[str, KnownFile]:
        """The previous build's files whose chunks can be reused as they are (same chunking).

        A build whose entry records have no content hash (made before they were recorded) has
        every file parsed again once, so the records it passes on match a fresh build's."""
        if previous is None or not chunked_alike(previous, self.chunker):
            return {}
        if not all("sha256" in record for record in previous.documents):
            return {}
        ids: dict[str, set[str]] = {}
        for record in previous.documents:
            ids.setdefault(record["file"], set()).add(record["doc_id"])
        return {
            name: KnownFile(f.sha256, f.entries, frozenset(ids.get(name, ())))
            for name, f in previous.manifest.files.items()
        }

    def _write_and_publish(
        self,
        corpus: LoadedCorpus,
        previous: LoadedIndex | None,
        summary: BuildSummary,
        progress: Progress | None,
        before_commit: Callable[[Path], None] | None,
        started: float,
    ) -> None:
        """Write a new build beside the live one, then publish it; on failure remove it."""
        builder = self._builder(progress)
        tmp = self.builds_dir / f".tmp-{uuid.uuid4().hex[:12]}"
        try:
            builder.write(tmp, corpus, previous, summary)
            if before_commit is not None:
                before_commit(tmp)
            summary.seconds = time.perf_counter() - started
            self._publish(tmp, summary.build_id)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise_build_error(exc)
        builder.cache.clear()  # the published build now holds every vector
        self._sweep()

    def _builder(self, progress: Progress | None) -> Builder:
        return Builder(
            self.embedder,
            self.chunker,
            EmbeddingCache(self.dir / "embcache", self.embedder.fingerprint()),
            self.options,
            progress=progress,
        )

    def _quick_up_to_date(self, corpus_dir: Path) -> BuildSummary | None:
        """An up-to-date summary from the manifest, the artifacts' hashes and the corpus files'
        stats, or None when a real check is needed. Nothing is parsed: at 18,000 chunks loading
        the build costs 0.6 s, hashing its files under 0.1 s."""
        try:
            manifest = self.manifest()
            if manifest is None:
                return None
            self.check_compatible(manifest)
        except IndexUnavailable:
            return None
        build = self.current_path()
        if build is None or not build.is_dir() or not self._unchanged_on_disk(corpus_dir, manifest):
            return None
        # a damaged build is rebuilt by the full path, and said so
        if not artifacts_intact(build, manifest) or not consistent(build, manifest):
            return None
        return BuildSummary(
            build_id=manifest.build_id,
            up_to_date=True,
            unchanged=sorted(manifest.files),
            skipped=[dict(vars(s)) for s in manifest.skipped],
            chunks=manifest.chunk_count,
        )

    def _unchanged_on_disk(self, corpus_dir: Path, manifest: Manifest) -> bool:
        """Same files with the same sizes and mtimes as at the last build: nothing to read.

        A stat per file costs microseconds where reading and hashing 10,000 files costs seconds.
        """
        try:
            names = [p.name for p in corpus_files(corpus_dir)]
        except CorpusError:
            return False
        known = manifest.known_stats()
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

    def _publish(self, tmp: Path, build_id: str) -> None:
        """Give the finished build its final name, then point CURRENT at it atomically."""
        disk.sync_dir(tmp)
        final = self.builds_dir / build_id
        os.rename(tmp, final)
        pointer_tmp = self.dir / f".CURRENT.{uuid.uuid4().hex[:8]}"
        try:
            disk.sync_dir(self.builds_dir)
            disk.write_bytes(pointer_tmp, build_id.encode())
            os.replace(pointer_tmp, self.dir / "CURRENT")
        except BaseException:
            # never published: left in place, the next sweep would keep it as the newest
            # build and delete the real previous one
            shutil.rmtree(final, ignore_errors=True)
            raise
        finally:
            pointer_tmp.unlink(missing_ok=True)
        disk.sync_dir(self.dir)

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
