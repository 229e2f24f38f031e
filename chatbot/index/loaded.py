"""A build read from disk: every artifact checked against the manifest before it is trusted.

Nothing is pickled: chunks are JSON, vectors are ``.npy`` loaded with ``allow_pickle=False``, and
every artifact's sha256 is checked against the manifest on load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from chatbot.chunking import Chunk
from chatbot.corpus import path_sha256
from chatbot.errors import IndexCorrupt
from chatbot.index.manifest import ARTIFACTS, Manifest


@dataclass(frozen=True)
class LoadedIndex:
    """An immutable, verified build: swap the whole object to switch indexes."""

    path: Path
    manifest: Manifest
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


def verify_artifacts(build: Path, manifest: Manifest) -> None:
    """Every artifact is there and hashes to what the manifest recorded, or IndexCorrupt."""
    for name in ARTIFACTS:
        file = build / name
        if not file.exists():
            raise IndexCorrupt(f"index file {name} is missing")
        if path_sha256(file) != manifest.artifacts.get(name):
            raise IndexCorrupt(f"index file {name} is corrupted (checksum mismatch)")


def artifacts_intact(build: Path, manifest: Manifest) -> bool:
    try:
        verify_artifacts(build, manifest)
    except (IndexCorrupt, OSError):
        return False
    return True


def read_build(build: Path, manifest: Manifest) -> LoadedIndex:
    """Load a build whose manifest has been read; raises IndexCorrupt saying what is wrong."""
    verify_artifacts(build, manifest)
    try:
        chunks = [Chunk(**record) for record in _jsonl(build / "chunks.jsonl")]
        documents = _jsonl(build / "documents.jsonl")
        vectors = np.load(build / "vectors.npy", allow_pickle=False)
        faiss_index = faiss.read_index(str(build / "faiss.index"))
    except Exception as exc:
        raise IndexCorrupt(f"index files cannot be read ({exc})") from exc
    if vectors.dtype != np.float32 or vectors.ndim != 2 or vectors.shape[1] != faiss_index.d:
        raise IndexCorrupt(
            f"index vectors have the wrong type or shape ({vectors.dtype}, "
            f"{vectors.shape}, index dimension {faiss_index.d})"
        )
    if not (len(chunks) == len(vectors) == faiss_index.ntotal == manifest.chunk_count):
        raise IndexCorrupt("index files disagree on the number of chunks")
    return LoadedIndex(build, manifest, chunks, vectors, faiss_index, documents)


def consistent(build: Path, manifest: Manifest) -> bool:
    """The build's files agree with each other and the manifest, read without loading them
    (vectors and FAISS are memory-mapped): a cheap guard for the no-op path."""
    try:
        vectors = np.load(build / "vectors.npy", mmap_mode="r", allow_pickle=False)
        index = faiss.read_index(str(build / "faiss.index"), faiss.IO_FLAG_MMAP)
        lines = [x for x in (build / "chunks.jsonl").read_bytes().splitlines() if x.strip()]
        names = set(Chunk.__dataclass_fields__)
        ok_lines = all(set(json.loads(line)) <= names for line in lines)
    except Exception:
        return False
    count = manifest.chunk_count
    return bool(
        ok_lines
        and vectors.dtype == np.float32
        and vectors.ndim == 2
        and vectors.shape == (count, index.d)
        and index.ntotal == count == len(lines)
    )


def _jsonl(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
