"""The on-disk index: incremental builds, atomic swaps, verified loads.

The promises under test: a rebuild re-embeds only what changed; a crash, a full disk or a kill -9
at any point leaves the previous index loadable and the next build working; two rebuilds never
interleave; a damaged or foreign index is refused with a clear error instead of being searched;
nothing on disk is ever unpickled.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import faiss
import numpy as np
import pytest

from chatbot.chunking import Chunker
from chatbot.corpus import CorpusError, Document, file_sha256
from chatbot.errors import (
    IndexBuildError,
    IndexCorrupt,
    IndexLocked,
    IndexMismatch,
    IndexMissing,
    IndexUnavailable,
)
from chatbot.index import ARTIFACTS, FORMAT_VERSION, IndexStore, choose_index_type, disk
from chatbot.index import build as build_mod
from chatbot.index import store as store_mod
from chatbot.index.manifest import FileRecord, Manifest
from chatbot.readers import load_corpus
from tests.fakes import FakeEmbedder

REPO = Path(__file__).resolve().parent.parent
EDITED = "foundation-model-wikiwalls.md"


def make_store(index_dir: Path, embedder: FakeEmbedder | None = None, **kw: object) -> IndexStore:
    chunker = kw.pop("chunker", None) or Chunker()
    return IndexStore(index_dir, embedder or FakeEmbedder(), chunker, **kw)  # type: ignore[arg-type]


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "index"


@pytest.fixture
def built(index_dir: Path, corpus_dir: Path) -> IndexStore:
    """A store with one complete build of the corpus copy."""
    store = make_store(index_dir)
    store.build(corpus_dir)
    return store


def temp_leftovers(index_dir: Path) -> list[str]:
    builds = index_dir / "builds"
    tmp = (
        [p.name for p in builds.iterdir() if p.name.startswith(".tmp-")] if builds.is_dir() else []
    )
    return tmp + [p.name for p in index_dir.glob(".CURRENT.*")]


def snapshot(store: IndexStore) -> tuple[str, list[str], bytes]:
    """What a reader sees: build id, chunk texts, vector bytes."""
    idx = store.load()
    return idx.build_id, [c.text for c in idx.chunks], idx.vectors.tobytes()


def edit(corpus_dir: Path, name: str = EDITED, extra: str = "A brand new closing remark.") -> None:
    path = corpus_dir / name
    path.write_text(path.read_text(encoding="utf-8") + f"\n{extra}\n", encoding="utf-8")


def total_chunks(corpus_dir: Path, chunker: Chunker | None = None) -> int:
    chunker = chunker or Chunker()
    return sum(len(chunker.run(d)) for d in load_corpus(corpus_dir).documents)


# ------------------------------------------------------------------------------ building


def test_full_build_stores_every_chunk_with_its_own_vector(
    index_dir: Path, corpus_dir: Path
) -> None:
    emb = FakeEmbedder()
    store = make_store(index_dir, emb)
    summary = store.build(corpus_dir)
    assert not summary.up_to_date
    assert sorted(summary.added) == sorted(p.name for p in corpus_dir.glob("*.md"))
    expected = [c for d in load_corpus(corpus_dir).documents for c in Chunker().run(d)]
    assert summary.chunks == summary.embedded_chunks == len(expected) == emb.encoded

    idx = store.load()
    assert idx.chunks == expected
    assert idx.vectors.dtype == np.float32 and idx.vectors.shape == (len(expected), emb.dim)
    # row i is the vector of chunk i (incremental stitching must keep this alignment)
    np.testing.assert_allclose(
        idx.vectors, FakeEmbedder().encode([c.embed_text() for c in expected]), atol=1e-6
    )
    assert idx.faiss_index.ntotal == len(expected)
    scores, ids = idx.faiss_index.search(idx.vectors[3:4], 1)
    assert ids[0][0] == 3 and scores[0][0] == pytest.approx(1.0, abs=1e-5)
    assert (index_dir / "CURRENT").read_text() == idx.build_id == idx.path.name
    assert temp_leftovers(index_dir) == []


def test_manifest_records_model_chunking_files_time_and_versions(
    built: IndexStore, corpus_dir: Path
) -> None:
    m = built.load().manifest
    assert m["format"] == FORMAT_VERSION
    assert m["embedding"]["name"] == "fake-hash"
    assert m["embedding"]["fingerprint"] == FakeEmbedder().fingerprint()
    assert m["embedding"]["dim"] == 256
    assert m["chunking"] == Chunker().params()
    assert m["chunk_count"] == total_chunks(corpus_dir)
    files = {p.name: file_sha256(p) for p in corpus_dir.glob("*.md")}
    assert {name: f["sha256"] for name, f in m["files"].items()} == files
    assert sum(f["chunks"] for f in m["files"].values()) == m["chunk_count"]
    assert datetime.fromisoformat(m["created_at"]).tzinfo is not None
    assert {"numpy", "faiss-cpu", "glossary-chat"} <= set(m["versions"])
    assert m["versions"]["numpy"] == np.__version__
    path = built.current_path()
    assert path is not None
    for name in ARTIFACTS:
        assert m["artifacts"][name] == file_sha256(path / name)
    assert len(m["fingerprint"]) == 16


def test_manifest_is_a_typed_record_that_round_trips(built: IndexStore) -> None:
    m = built.load().manifest
    assert isinstance(m, Manifest)
    assert all(isinstance(f, FileRecord) for f in m.files.values())
    assert m.chunk_count == m["chunk_count"] == sum(f.chunks for f in m.files.values())
    path = built.current_path()
    assert path is not None
    on_disk = json.loads((path / "manifest.json").read_text())
    assert m.to_dict() == on_disk == dict(m)  # the mapping view is the JSON as written
    assert Manifest.parse(m.dumps()) == m
    assert built.read_manifest() == on_disk


def test_no_op_rebuild_embeds_nothing_and_keeps_the_build(
    built: IndexStore, index_dir: Path, corpus_dir: Path
) -> None:
    before = snapshot(built)
    emb = FakeEmbedder()
    summary = make_store(index_dir, emb).build(corpus_dir)
    assert summary.up_to_date
    assert "up to date" in summary.describe()
    assert emb.encoded == 0 and summary.embedded_chunks == 0
    assert summary.build_id == before[0]
    assert snapshot(built) == before
    assert len(list((index_dir / "builds").iterdir())) == 1


def test_incremental_rebuild_embeds_only_the_changed_chunks(
    built: IndexStore, index_dir: Path, corpus_dir: Path, tmp_path: Path
) -> None:
    edit(corpus_dir)
    emb = FakeEmbedder()
    summary = make_store(index_dir, emb).build(corpus_dir)
    doc = next(d for d in load_corpus(corpus_dir).documents if d.path.name == EDITED)
    assert summary.changed == [EDITED]
    assert summary.added == [] and summary.removed == []
    assert len(summary.unchanged) == 4
    # only the chunks whose text changed: the others are reused by content hash
    assert 0 < emb.encoded == summary.embedded_chunks < len(Chunker().run(doc))

    # the stitched result is exactly what a from-scratch build produces
    fresh = make_store(tmp_path / "fresh")
    fresh.build(corpus_dir)
    inc, full = built.load(), fresh.load()
    assert inc.chunks == full.chunks
    np.testing.assert_allclose(inc.vectors, full.vectors, atol=1e-6)
    assert any("brand new closing remark" in c.text for c in inc.chunks)


def test_rebuild_parses_only_changed_files_and_writes_what_a_full_build_writes(
    built: IndexStore,
    index_dir: Path,
    corpus_dir: Path,
    tmp_path: Path,
    record_parsing: Callable[[], list[str]],
) -> None:
    """Unchanged files' chunks and entry records come from the previous build unparsed (dict-
    foldoc's 12,000 entries cost ~1 s to parse and chunk); the artifacts are byte-identical to
    a from-scratch build's."""
    edit(corpus_dir)
    parsed = record_parsing()
    summary = make_store(index_dir).build(corpus_dir)
    assert parsed == [EDITED] and summary.changed == [EDITED]
    fresh = make_store(tmp_path / "fresh")
    fresh.build(corpus_dir)
    inc, full = built.load(), fresh.load()
    for name in ("chunks.jsonl", "documents.jsonl", "vectors.npy"):
        assert (inc.path / name).read_bytes() == (full.path / name).read_bytes(), name
    assert inc.manifest.files == full.manifest.files
    assert inc.manifest.document_count == full.manifest.document_count
    # other chunk settings: nothing is reused, every file is parsed again
    parsed.clear()
    rechunked = make_store(index_dir, chunker=Chunker(300, 50)).build(corpus_dir)
    assert sorted(parsed) == sorted(p.name for p in corpus_dir.glob("*.md"))
    assert rechunked.changed == [] and "chunking settings changed" in rechunked.describe()
    again = make_store(index_dir, chunker=Chunker(300, 50)).build(corpus_dir)
    assert again.up_to_date and "chunking settings" not in again.describe()


def test_added_and_removed_files(built: IndexStore, index_dir: Path, corpus_dir: Path) -> None:
    (corpus_dir / "base-model-envisioning.md").unlink()
    (corpus_dir / "new-term.md").write_text("# New Term\n\nA new glossary entry.\n")
    emb = FakeEmbedder()
    summary = make_store(index_dir, emb).build(corpus_dir)
    assert summary.added == ["new-term.md"]
    assert summary.removed == ["base-model-envisioning.md"]
    assert emb.encoded == 1
    idx = built.load()
    docs = {c.doc_id for c in idx.chunks}
    assert "base-model-envisioning" not in docs and "new-term" in docs
    assert "base-model-envisioning.md" not in idx.manifest["files"]
    assert len(idx.chunks) == len(idx.vectors) == idx.faiss_index.ntotal


def test_full_flag_re_embeds_everything(
    built: IndexStore, index_dir: Path, corpus_dir: Path
) -> None:
    old_id = snapshot(built)[0]
    emb = FakeEmbedder()
    summary = make_store(index_dir, emb).build(corpus_dir, full=True)
    assert emb.encoded == total_chunks(corpus_dir) == summary.embedded_chunks
    assert summary.build_id != old_id
    assert built.load().build_id == summary.build_id


def test_progress_reports_embedding(index_dir: Path, corpus_dir: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    make_store(index_dir).build(corpus_dir, progress=lambda *a: seen.append(a))
    embed = [s for s in seen if s[0] == "embed"]
    n = total_chunks(corpus_dir)
    assert embed[-1] == ("embed", n, n)
    assert [d for _, d, _ in embed] == sorted(d for _, d, _ in embed)
    assert seen[-1] == ("index", 1, 1)


def test_old_builds_and_leftovers_are_swept(
    built: IndexStore, index_dir: Path, corpus_dir: Path
) -> None:
    for i in range(3):
        edit(corpus_dir, extra=f"Edit number {i}.")
        built.build(corpus_dir)
    builds = index_dir / "builds"
    (builds / ".tmp-deadbeef0000").mkdir()
    (builds / ".tmp-deadbeef0000" / "vectors.npy").write_bytes(b"partial")
    (index_dir / ".CURRENT.abcd1234").write_text("half")
    edit(corpus_dir, extra="Last edit.")
    summary = built.build(corpus_dir)
    assert temp_leftovers(index_dir) == []
    names = sorted(p.name for p in builds.iterdir())
    assert len(names) == 2 and summary.build_id in names  # active + the previous one


def test_skipped_files_are_recorded_and_do_not_force_rebuilds(
    index_dir: Path, corpus_dir: Path
) -> None:
    (corpus_dir / "broken.md").write_bytes(b"---\ntitle: [oops\n---\n# X\n\nBody.\n")
    store = make_store(index_dir)
    summary = store.build(corpus_dir)
    assert [s["file"] for s in summary.skipped] == ["broken.md"]
    assert "broken YAML" in summary.describe()
    manifest = store.load().manifest
    assert manifest["skipped"][0]["file"] == "broken.md"
    statuses = {s.file: s for s in store.file_statuses(corpus_dir)}
    assert statuses["broken.md"].status == "skipped"
    assert "broken YAML" in statuses["broken.md"].reason
    assert store.stale_reasons(corpus_dir) == []

    emb = FakeEmbedder()
    assert make_store(index_dir, emb).build(corpus_dir).up_to_date
    assert emb.encoded == 0

    (corpus_dir / "broken.md").write_text("# Fixed\n\nNow it parses.\n")
    summary = make_store(index_dir, emb).build(corpus_dir)
    assert summary.added == ["broken.md"] and summary.skipped == []
    assert emb.encoded == 1


def test_corpus_of_only_broken_files_gives_an_empty_loadable_index(
    index_dir: Path, tmp_path: Path
) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "empty.md").write_bytes(b"")
    store = make_store(index_dir)
    summary = store.build(corpus)
    assert summary.chunks == 0 and len(summary.skipped) == 1
    idx = store.load()
    assert len(idx) == 0 and idx.vectors.shape == (0, 256)


def test_empty_corpus_directory_is_an_error(index_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    with pytest.raises(CorpusError, match="no corpus files"):
        make_store(index_dir).build(tmp_path / "c")
    with pytest.raises(IndexMissing):
        make_store(index_dir).load()


def test_hnsw_index_when_over_the_threshold(index_dir: Path, corpus_dir: Path) -> None:
    assert choose_index_type("auto", 10, 200_000) == "flat"
    assert choose_index_type("auto", 200_000, 200_000) == "hnsw"
    assert choose_index_type("flat", 10**9, 1) == "flat"
    store = make_store(index_dir, approx_min_vectors=1)
    store.build(corpus_dir)
    idx = store.load()
    assert idx.manifest["index_type"] == "hnsw"
    assert isinstance(idx.faiss_index, faiss.IndexHNSWFlat)
    _, ids = idx.faiss_index.search(idx.vectors[5:6], 1)
    assert ids[0][0] == 5


# ------------------------------------------------------------------------------ failures


def test_exception_before_commit_leaves_previous_index(
    built: IndexStore, index_dir: Path, corpus_dir: Path
) -> None:
    before = snapshot(built)
    edit(corpus_dir)
    staged: list[set[str]] = []

    def boom(tmp: Path) -> None:
        staged.append({p.name for p in tmp.iterdir()})
        raise RuntimeError("injected failure")

    with pytest.raises(RuntimeError, match="injected failure"):
        built.build(corpus_dir, _before_commit=boom)
    assert staged == [{*ARTIFACTS, "manifest.json"}]  # the hook saw a complete build
    assert snapshot(built) == before
    assert temp_leftovers(index_dir) == []
    assert built.stale_reasons(corpus_dir) == [f"{EDITED} is changed"]
    assert not built.build(corpus_dir).up_to_date
    assert built.stale_reasons(corpus_dir) == []


def _failing_write(
    monkeypatch: pytest.MonkeyPatch, target: str, err: int
) -> Callable[[], list[str]]:
    """Make writing the file whose name starts with ``target`` fail with errno ``err``."""
    calls: list[str] = []
    real_write = disk.write_bytes
    real_write_index = faiss.write_index
    real_save = np.save

    def write_bytes(path: Path, data: bytes) -> None:
        calls.append(path.name)
        if path.name.startswith(target):
            with path.open("wb") as fh:  # a partial file, as a real full disk leaves
                fh.write(data[: len(data) // 2])
            raise OSError(err, os.strerror(err), str(path))
        real_write(path, data)

    def write_index(idx: object, path: str) -> None:
        calls.append(Path(path).name)
        if Path(path).name.startswith(target):
            raise OSError(err, os.strerror(err), path)
        real_write_index(idx, path)

    def save(fh: object, arr: np.ndarray, **kw: object) -> None:
        calls.append("vectors.npy")
        if target == "vectors.npy":
            raise OSError(err, os.strerror(err))
        real_save(fh, arr, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(disk, "write_bytes", write_bytes)
    monkeypatch.setattr(faiss, "write_index", write_index)
    monkeypatch.setattr(np, "save", save)
    return lambda: calls


@pytest.mark.parametrize(
    "target", ["chunks.jsonl", "vectors.npy", "faiss.index", "manifest.json", ".CURRENT."]
)
def test_disk_full_gives_clear_error_and_keeps_old_index(
    built: IndexStore,
    index_dir: Path,
    corpus_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
) -> None:
    before = snapshot(built)
    builds = sorted(p.name for p in built.builds_dir.iterdir())
    edit(corpus_dir)
    calls = _failing_write(monkeypatch, target, errno.ENOSPC)
    with pytest.raises(IndexBuildError, match="disk full") as info:
        built.build(corpus_dir)
    assert any(c.startswith(target) for c in calls())
    assert "previous index is unchanged" in str(info.value)
    assert snapshot(built) == before
    # no unpublished build is left behind for the next sweep to keep as "the previous one"
    assert sorted(p.name for p in built.builds_dir.iterdir()) == builds
    assert temp_leftovers(index_dir) == []
    monkeypatch.undo()
    summary = built.build(corpus_dir)
    assert summary.changed == [EDITED]
    assert snapshot(built)[0] == summary.build_id
    assert temp_leftovers(index_dir) == []


def test_other_write_error_is_an_index_build_error(
    built: IndexStore, index_dir: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(built)
    edit(corpus_dir)
    _failing_write(monkeypatch, "manifest.json", errno.EACCES)
    with pytest.raises(IndexBuildError, match="could not write the index") as info:
        built.build(corpus_dir)
    assert "disk full" not in str(info.value)
    assert snapshot(built) == before
    assert temp_leftovers(index_dir) == []


# ------------------------------------------------------------------------------ kill -9

CHILD = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from chatbot.chunking import Chunker
from chatbot.index import IndexStore, disk
from tests.fakes import FakeEmbedder

index_dir, corpus_dir, stage = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

def ready(what="READY"):
    print(what, flush=True)
    time.sleep(120)  # the parent kills us here

class Embedder(FakeEmbedder):
    def encode(self, texts):
        if stage == "embed" and self.calls == 2:
            ready()
        return super().encode(texts)

real_write, real_sync_dir = disk.write_bytes, disk.sync_dir

def write_bytes(path, data):
    if stage == "manifest" and path.name == "manifest.json":
        with open(path, "wb") as fh:
            fh.write(data[: len(data) // 2])
        ready()
    real_write(path, data)
    if stage == "pointer" and path.name.startswith(".CURRENT."):
        ready()

def sync_dir(path):
    real_sync_dir(path)
    if stage == "renamed" and path.name == "builds":
        ready()  # the build dir has its final name, CURRENT not flipped yet

reports = []

def progress(name, done, total):
    # stage "progress:<name>:<n>" stops at the n-th progress report of that build stage
    reports.append(name)
    if stage == f"progress:{name}:{reports.count(name)}":
        ready(f"AT {name} {done}/{total}")

disk.write_bytes, disk.sync_dir = write_bytes, sync_dir
store = IndexStore(index_dir, Embedder(), Chunker())
if stage == "lock":
    with store.lock():
        ready()
hook = (lambda tmp: ready()) if stage == "before_commit" else None
store.build(corpus_dir, full=True, progress=progress, _before_commit=hook)
print("DONE", flush=True)
"""


@pytest.fixture
def spawn(index_dir: Path, corpus_dir: Path) -> Iterator[Callable[[str], subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(stage: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(index_dir), str(corpus_dir), stage, str(REPO)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()


def wait_for(
    proc: subprocess.Popen[str], word: str, timeout: float = 60.0, *, prefix: bool = False
) -> None:
    """Read the child's output until a line is ``word`` (or starts with it)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"child exited ({proc.wait()}) before printing {word}")
        if line.strip() == word or (prefix and line.startswith(word)):
            return
    pytest.fail(f"child did not print {word} within {timeout} s")


def kill9(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def assert_recovers(store: IndexStore, corpus_dir: Path, index_dir: Path) -> None:
    """The next ordinary build works and cleans up after the dead one."""
    summary = store.build(corpus_dir)
    idx = store.load()
    assert idx.build_id == summary.build_id
    assert len(idx) == total_chunks(corpus_dir)
    assert store.stale_reasons(corpus_dir) == []
    assert temp_leftovers(index_dir) == []


@pytest.mark.parametrize("stage", ["embed", "manifest", "before_commit", "renamed", "pointer"])
def test_kill_9_during_rebuild_keeps_old_index(
    built: IndexStore,
    index_dir: Path,
    corpus_dir: Path,
    spawn: Callable[[str], subprocess.Popen[str]],
    stage: str,
) -> None:
    before = snapshot(built)
    edit(corpus_dir)
    proc = spawn(stage)
    wait_for(proc, "READY")
    kill9(proc)
    assert snapshot(built) == before  # readers still get the old, complete index
    assert_recovers(built, corpus_dir, index_dir)


@pytest.mark.parametrize(
    ("stage", "marker"),
    [
        ("progress:chunk:1", "AT chunk 5/5"),  # every entry chunked, nothing embedded
        ("progress:embed:3", "AT embed 24/"),  # three batches embedded and cached
        ("progress:index:1", "AT index 0/1"),  # every vector ready, no artifact written
        ("progress:index:2", "AT index 1/1"),  # the build folder complete, not published
    ],
)
def test_kill_9_at_each_build_stage_keeps_old_index(
    built: IndexStore,
    index_dir: Path,
    corpus_dir: Path,
    spawn: Callable[[str], subprocess.Popen[str]],
    stage: str,
    marker: str,
) -> None:
    """The child stops inside its progress callback at the targeted report and is killed
    there: every run hits the same point, and a stage the build never reports fails."""
    before = snapshot(built)
    edit(corpus_dir)
    proc = spawn(stage)
    wait_for(proc, marker, prefix=True)
    unfinished = [p for p in (index_dir / "builds").iterdir() if p.name.startswith(".tmp-")]
    assert len(unfinished) == 1  # killed mid-build, not before or after it
    kill9(proc)
    assert snapshot(built) == before  # readers still get the old, complete index
    assert_recovers(built, corpus_dir, index_dir)


# ------------------------------------------------------------------------------ locking


def test_lock_held_by_a_live_process_blocks_and_a_dead_one_does_not(
    built: IndexStore,
    index_dir: Path,
    corpus_dir: Path,
    spawn: Callable[[str], subprocess.Popen[str]],
) -> None:
    proc = spawn("lock")
    wait_for(proc, "READY")
    edit(corpus_dir)
    with pytest.raises(IndexLocked, match="another rebuild"):
        make_store(index_dir, lock_timeout_s=0.3).build(corpus_dir)
    kill9(proc)  # the kernel drops a flock with its holder
    summary = make_store(index_dir, lock_timeout_s=10).build(corpus_dir)
    assert summary.changed == [EDITED]


def test_concurrent_builds_are_serialized(index_dir: Path, corpus_dir: Path) -> None:
    events: list[str] = []
    a_inside = threading.Event()
    errors: list[BaseException] = []

    def hook(name: str) -> Callable[[Path], None]:
        def inside(tmp: Path) -> None:
            events.append(f"{name}-in")
            if name == "A":
                a_inside.set()
                time.sleep(0.5)  # B, if it were not waiting for the lock, would get in now
            events.append(f"{name}-out")

        return inside

    def run(name: str) -> None:
        try:
            make_store(index_dir).build(corpus_dir, full=True, _before_commit=hook(name))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    a = threading.Thread(target=run, args=("A",))
    a.start()
    assert a_inside.wait(30)
    b = threading.Thread(target=run, args=("B",))
    b.start()
    a.join(60)
    b.join(60)
    assert errors == []
    assert events == ["A-in", "A-out", "B-in", "B-out"]
    assert len(make_store(index_dir).load()) == total_chunks(corpus_dir)
    assert temp_leftovers(index_dir) == []


# ------------------------------------------------------------------------------ verified loads


def _build_path(store: IndexStore) -> Path:
    path = store.current_path()
    assert path is not None
    return path


def _rewrite_manifest(store: IndexStore, change: Callable[[dict], None]) -> None:
    path = _build_path(store) / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _reseal(store: IndexStore, name: str) -> None:
    """Update the manifest checksum after tampering, to get past the checksum check."""
    digest = file_sha256(_build_path(store) / name)
    _rewrite_manifest(store, lambda m: m["artifacts"].__setitem__(name, digest))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _save_vectors(store: IndexStore, arr: np.ndarray) -> None:
    with (_build_path(store) / "vectors.npy").open("wb") as fh:
        np.save(fh, arr)
    _reseal(store, "vectors.npy")


def _vectors(store: IndexStore) -> np.ndarray:
    return np.load(_build_path(store) / "vectors.npy")


CORRUPTIONS: dict[str, tuple[Callable[[IndexStore], None], type[IndexUnavailable], str]] = {
    "truncated vectors": (
        lambda s: _truncate(_build_path(s) / "vectors.npy"),
        IndexCorrupt,
        "vectors.npy is corrupted",
    ),
    "flipped byte in vectors": (
        lambda s: _corrupt_last_byte(_build_path(s) / "vectors.npy"),
        IndexCorrupt,
        "vectors.npy is corrupted",
    ),
    "truncated faiss": (
        lambda s: _truncate(_build_path(s) / "faiss.index"),
        IndexCorrupt,
        "faiss.index is corrupted",
    ),
    "truncated chunks": (
        lambda s: _truncate(_build_path(s) / "chunks.jsonl"),
        IndexCorrupt,
        "chunks.jsonl is corrupted",
    ),
    "missing vectors": (
        lambda s: (_build_path(s) / "vectors.npy").unlink(),
        IndexCorrupt,
        "vectors.npy is missing",
    ),
    "truncated manifest": (
        lambda s: _truncate(_build_path(s) / "manifest.json"),
        IndexCorrupt,
        "manifest is corrupted",
    ),
    "missing manifest": (
        lambda s: (_build_path(s) / "manifest.json").unlink(),
        IndexCorrupt,
        "has no manifest",
    ),
    "manifest not an object": (
        lambda s: (_build_path(s) / "manifest.json").write_text("[1, 2]"),
        IndexCorrupt,
        "unknown format",
    ),
    "manifest from the future": (
        lambda s: _rewrite_manifest(s, lambda m: m.__setitem__("format", 99)),
        IndexMismatch,
        "another version",
    ),
    "manifest without artifacts": (
        lambda s: _rewrite_manifest(s, lambda m: m.pop("artifacts")),
        IndexCorrupt,
        "artifacts",
    ),
    "file record without its hash": (
        lambda s: _rewrite_manifest(s, lambda m: next(iter(m["files"].values())).pop("sha256")),
        IndexCorrupt,
        "invalid: files",
    ),
    "manifest with bad chunk count": (
        lambda s: _rewrite_manifest(s, lambda m: m.__setitem__("chunk_count", "many")),
        IndexCorrupt,
        "chunk_count",
    ),
    "empty CURRENT": (
        lambda s: (s.dir / "CURRENT").write_text(""),
        IndexCorrupt,
        "pointer",
    ),
    "CURRENT escapes builds/": (
        lambda s: (s.dir / "CURRENT").write_text("../../etc"),
        IndexCorrupt,
        "pointer",
    ),
    "binary CURRENT": (
        lambda s: (s.dir / "CURRENT").write_bytes(b"\xff\xfe\x00garbage"),
        IndexCorrupt,
        "pointer",
    ),
    "CURRENT names a missing build": (
        lambda s: (s.dir / "CURRENT").write_text("20990101T000000-abcdef"),
        IndexCorrupt,
        "no manifest",
    ),
    "no CURRENT": (lambda s: (s.dir / "CURRENT").unlink(), IndexMissing, "no index"),
    "fewer vectors than chunks (resealed)": (
        lambda s: _save_vectors(s, _vectors(s)[:-1]),
        IndexCorrupt,
        "disagree",
    ),
    "float64 vectors (resealed)": (
        lambda s: _save_vectors(s, _vectors(s).astype(np.float64)),
        IndexCorrupt,
        "wrong type or shape",
    ),
    "vectors of another dimension (resealed)": (
        lambda s: _save_vectors(s, _vectors(s)[:, :128].copy()),
        IndexCorrupt,
        "wrong type or shape",
    ),
    "garbage chunk line (resealed)": (
        lambda s: (
            (_build_path(s) / "chunks.jsonl").write_text('{"not": "a chunk"}\n'),
            _reseal(s, "chunks.jsonl"),
        ),
        IndexCorrupt,
        "cannot be read",
    ),
    "unreadable faiss (resealed)": (
        lambda s: (
            (_build_path(s) / "faiss.index").write_bytes(b"not a faiss index"),
            _reseal(s, "faiss.index"),
        ),
        IndexCorrupt,
        "cannot be read",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_damaged_index_is_refused_clearly_and_rebuilt(
    built: IndexStore, index_dir: Path, corpus_dir: Path, case: str
) -> None:
    damage, error, message = CORRUPTIONS[case]
    damage(built)
    with pytest.raises(error, match=message) as info:
        built.load()
    assert info.value.hint.startswith("run `chatbot index")
    # an incremental build does not trust the damaged build: it re-embeds everything
    emb = FakeEmbedder()
    summary = make_store(index_dir, emb).build(corpus_dir)
    assert emb.encoded == total_chunks(corpus_dir) == summary.chunks
    assert len(built.load()) == summary.chunks
    assert temp_leftovers(index_dir) == []


class _Trap:
    """Unpickling this creates a directory: proof that pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.marker,))


def test_object_array_vectors_are_never_unpickled(built: IndexStore, tmp_path: Path) -> None:
    marker = tmp_path / "pickle-ran"
    n = len(built.load())
    arr = np.empty(n, dtype=object)
    for i in range(n):
        arr[i] = _Trap(marker)
    with (_build_path(built) / "vectors.npy").open("wb") as fh:
        np.save(fh, arr, allow_pickle=True)
    _reseal(built, "vectors.npy")
    with pytest.raises(IndexCorrupt, match="cannot be read"):
        built.load()
    assert not marker.exists()


# ------------------------------------------------------------------------------ compatibility


def test_other_embedder_fingerprint_is_a_mismatch(
    built: IndexStore, index_dir: Path, corpus_dir: Path
) -> None:
    other = make_store(index_dir, FakeEmbedder(tag="v2"))
    with pytest.raises(IndexMismatch, match="different embedding model") as info:
        other.load()
    assert "fake-hash:256:v2" in str(info.value) and "--full" in info.value.hint
    assert any("embedding model" in r for r in other.stale_reasons(corpus_dir))
    # building with the new model re-embeds everything instead of mixing vector spaces
    emb = FakeEmbedder(tag="v2")
    make_store(index_dir, emb).build(corpus_dir)
    assert emb.encoded == total_chunks(corpus_dir)
    assert other.load().manifest["embedding"]["fingerprint"] == "fake-hash:256:v2"
    with pytest.raises(IndexMismatch):
        built.load()


@pytest.mark.parametrize(("size", "overlap"), [(400, 100), (500, 50)])
def test_other_chunk_params_are_a_mismatch(
    built: IndexStore, index_dir: Path, corpus_dir: Path, size: int, overlap: int
) -> None:
    chunker = Chunker(size, overlap)
    other = make_store(index_dir, chunker=chunker)
    with pytest.raises(IndexMismatch, match="other chunk settings"):
        other.load()
    assert any("chunk settings" in r for r in other.stale_reasons(corpus_dir))
    emb = FakeEmbedder()
    summary = make_store(index_dir, emb, chunker=chunker).build(corpus_dir)
    assert not summary.up_to_date and summary.chunks == total_chunks(corpus_dir, chunker)
    # only chunks whose text is new are embedded: the others keep their vectors by text hash
    assert 0 < emb.encoded == summary.embedded_chunks < summary.chunks
    make_store(index_dir, chunker=chunker).load()  # and the new build is consistent


# ------------------------------------------------------------------------------ staleness


def test_stale_detection_follows_corpus_edits(
    index_dir: Path, corpus_dir: Path, built: IndexStore
) -> None:
    assert built.stale_reasons(corpus_dir) == []
    assert {s.status for s in built.file_statuses(corpus_dir)} == {"indexed"}

    edit(corpus_dir)
    (corpus_dir / "zz-new.md").write_text("# New\n\nNew page.\n")
    (corpus_dir / "base-model-envisioning.md").unlink()
    statuses = {s.file: s.status for s in built.file_statuses(corpus_dir)}
    assert statuses[EDITED] == "changed"
    assert statuses["zz-new.md"] == "new"
    assert statuses["base-model-envisioning.md"] == "removed"
    assert list(statuses.values()).count("indexed") == 3
    assert sorted(built.stale_reasons(corpus_dir)) == sorted(
        [f"{EDITED} is changed", "zz-new.md is new", "base-model-envisioning.md is removed"]
    )
    built.build(corpus_dir)
    assert built.stale_reasons(corpus_dir) == []


def test_no_index_yet_is_stale_and_everything_is_new(index_dir: Path, corpus_dir: Path) -> None:
    store = make_store(index_dir)
    assert store.stale_reasons(corpus_dir) == ["no index has been built yet"]
    assert {s.status for s in store.file_statuses(corpus_dir)} == {"new"}
    with pytest.raises(IndexMissing) as info:
        store.load()
    assert info.value.hint == "run `chatbot index` to build it"


class _DiesAfter(FakeEmbedder):
    """Embeds ``batches`` batches, then fails like a process killed mid-build."""

    def __init__(self, batches: int) -> None:
        super().__init__()
        self.left = batches

    def encode(self, texts):  # type: ignore[no-untyped-def]
        if self.left == 0:
            raise KeyboardInterrupt("killed")
        self.left -= 1
        return super().encode(texts)


def _csv_corpus(folder: Path, rows: int, edited: int | None = None) -> None:
    folder.mkdir(exist_ok=True)
    lines = [
        f"Term {i},Definition number {i} of the glossary, about topic {i % 7}." for i in range(rows)
    ]
    if edited is not None:
        lines[edited] = f"Term {edited},An edited definition of term {edited}."
    (folder / "export.csv").write_text("term,definition\n" + "\n".join(lines) + "\n")


def test_killed_build_resumes_from_the_embedding_cache(tmp_path: Path, index_dir: Path) -> None:
    corpus = tmp_path / "csv"
    _csv_corpus(corpus, 200)
    dying = _DiesAfter(batches=20)  # 20 batches of 8 = 160 of 200 chunks, then "killed"
    with pytest.raises(KeyboardInterrupt):
        make_store(index_dir, dying, cache_flush_chunks=16).build(corpus)
    assert temp_leftovers(index_dir) == []
    emb = FakeEmbedder()
    summary = make_store(index_dir, emb).build(corpus)
    assert summary.chunks == 200
    # flushed parts survived the kill: only what was never flushed is embedded again
    assert emb.encoded == summary.embedded_chunks < 200 * 0.25
    fresh = make_store(tmp_path / "fresh")
    fresh.build(corpus)
    assert np.allclose(make_store(index_dir).load().vectors, fresh.load().vectors)
    assert not list((index_dir / "embcache").glob("*/*.npz")), "cache cleared after commit"


def test_one_edited_row_of_an_export_re_embeds_one_chunk(tmp_path: Path, index_dir: Path) -> None:
    corpus = tmp_path / "csv"
    _csv_corpus(corpus, 300)
    make_store(index_dir).build(corpus)
    _csv_corpus(corpus, 300, edited=123)
    emb = FakeEmbedder()
    summary = make_store(index_dir, emb).build(corpus)
    assert summary.changed == ["export.csv"]
    assert emb.encoded == summary.embedded_chunks == 1


def test_one_edited_row_chunks_one_entry_and_writes_what_a_full_build_writes(
    tmp_path: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other entries of a changed file keep the previous build's chunks (by id, title and
    content hash); a build without entry hashes has every file parsed and chunked again once."""
    corpus = tmp_path / "csv"
    _csv_corpus(corpus, 300)
    (corpus / "page.md").write_text("# Page\n\nA page beside the export.\n")
    make_store(index_dir).build(corpus)
    _csv_corpus(corpus, 300, edited=123)
    chunked: list[str] = []
    real = Chunker.run

    def recording(self: Chunker, doc: Document) -> list[object]:
        chunked.append(doc.doc_id)
        return real(self, doc)  # type: ignore[return-value]

    monkeypatch.setattr(Chunker, "run", recording)
    make_store(index_dir).build(corpus)
    assert chunked == ["export:term-123"]
    fresh = make_store(tmp_path / "fresh")
    fresh.build(corpus)
    inc, full = make_store(index_dir).load(), fresh.load()
    for name in ("chunks.jsonl", "documents.jsonl", "vectors.npy"):
        assert (inc.path / name).read_bytes() == (full.path / name).read_bytes(), name
    assert all(r["sha256"] for r in inc.documents)

    # an older build's records carry no entry hash: nothing is reused unparsed, once
    old = [{k: v for k, v in r.items() if k != "sha256"} for r in inc.documents]
    disk.write_jsonl(inc.path / "documents.jsonl", old)
    _reseal(make_store(index_dir), "documents.jsonl")
    _csv_corpus(corpus, 300, edited=124)
    fresh.build(corpus)
    chunked.clear()
    make_store(index_dir).build(corpus)
    assert len(chunked) == 301
    rebuilt = make_store(index_dir).load().path / "documents.jsonl"
    assert rebuilt.read_bytes() == (fresh.load().path / "documents.jsonl").read_bytes()


def test_no_op_rebuild_reads_no_file_when_stats_match(
    built: IndexStore, index_dir: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reading(*_: object) -> object:
        raise AssertionError("a no-op rebuild must not read or hash corpus files")

    monkeypatch.setattr(store_mod, "load_corpus", no_reading)
    monkeypatch.setattr(store_mod, "file_sha256", no_reading)
    monkeypatch.setattr(build_mod, "file_sha256", no_reading)
    summary = make_store(index_dir).build(corpus_dir)
    assert summary.up_to_date
    # a touched file (same bytes, new mtime) is read, found identical, and still up to date
    monkeypatch.undo()
    path = corpus_dir / EDITED
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert make_store(index_dir).build(corpus_dir).up_to_date


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: (d / "CURRENT").write_text("../../etc"),
        lambda d: (next((d / "builds").iterdir()) / "vectors.npy").write_bytes(b"garbage"),
    ],
    ids=["pointer", "build"],
)
def test_a_damaged_index_is_rebuilt_and_said_so(
    built: IndexStore, index_dir: Path, corpus_dir: Path, damage: Callable[[Path], object]
) -> None:
    damage(index_dir)
    summary = make_store(index_dir).build(corpus_dir)
    assert summary.note.startswith("index was damaged (") and summary.note.endswith("); rebuilt")
    assert summary.describe().startswith("index was damaged")
    make_store(index_dir).load()


def test_rows_from_previous_build_cache_and_fresh_embedding_stay_aligned(
    tmp_path: Path, index_dir: Path
) -> None:
    """The vectors array is filled row by row from three sources; each row must be the
    vector of its own chunk, and a text shared by two entries is embedded once."""
    corpus = tmp_path / "csv"
    _csv_corpus(corpus, 60)
    make_store(index_dir).build(corpus)
    lines = (corpus / "export.csv").read_text().splitlines()
    for i in range(20, 60):  # 40 changed rows: 20 stay as they were
        lines[1 + i] = f"Term {i},Edited definition {i}, now about topic {i % 5}."
    lines.append(lines[-1])  # the same entry twice: one text, one embedding
    (corpus / "export.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(KeyboardInterrupt):  # 2 batches of 8 reach the cache, then a "kill"
        make_store(index_dir, _DiesAfter(batches=2), cache_flush_chunks=8).build(corpus)
    emb = FakeEmbedder()
    summary = make_store(index_dir, emb).build(corpus)
    assert summary.chunks == 61
    assert emb.encoded == summary.embedded_chunks == 40 - 16
    idx = make_store(index_dir).load()
    expected = FakeEmbedder().encode([c.embed_text() for c in idx.chunks])
    np.testing.assert_array_equal(idx.vectors, expected)
    assert idx.vectors.flags["C_CONTIGUOUS"] and idx.vectors.dtype == np.float32
