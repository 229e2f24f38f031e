"""A content-addressed store of chunk vectors that outlives a killed build.

Embedding is the slow part of a build (minutes for a 10,000-entry glossary on 2 cores). Vectors
are keyed by a hash of the exact text embedded and live under a folder named after the embedding
model's fingerprint, so a build killed at 80% resumes where it stopped, and re-chunking or
reordering entries re-embeds nothing whose text is unchanged. Each flush writes one new part file
atomically (temp file + rename): a crash loses at most the batch in flight, never a part.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import uuid
from pathlib import Path

import numpy as np

from chatbot.atomic import write_atomic

KEY_CHARS = 32


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_CHARS]


class EmbeddingCache:
    """Vectors by text key for one embedding model; parts are ``.npz`` files without pickles."""

    def __init__(self, root: Path, model_fingerprint: str) -> None:
        name = hashlib.sha256(model_fingerprint.encode()).hexdigest()[:16]
        self.dir = Path(root) / name
        self._vectors: dict[str, np.ndarray] = {}
        self._pending_keys: list[str] = []
        self._pending: list[np.ndarray] = []

    def load(self) -> int:
        """Read every readable part; a damaged part is deleted (its vectors are re-embedded)."""
        if not self.dir.is_dir():
            return 0
        for part in sorted(self.dir.glob("part-*.npz")):
            try:
                with np.load(part, allow_pickle=False) as data:
                    keys, vecs = data["keys"], data["vectors"]
                if len(keys) != len(vecs) or vecs.dtype != np.float32:
                    raise ValueError("keys and vectors disagree")
            except Exception:
                part.unlink(missing_ok=True)
                continue
            for k, v in zip(keys.tolist(), vecs, strict=True):
                self._vectors[str(k)] = v
        return len(self._vectors)

    def get(self, key: str) -> np.ndarray | None:
        return self._vectors.get(key)

    def __len__(self) -> int:
        return len(self._vectors)

    def add(self, keys: list[str], vectors: np.ndarray) -> None:
        for k, v in zip(keys, vectors, strict=True):
            self._vectors[k] = v
        self._pending_keys += keys
        self._pending.append(vectors)

    def flush(self) -> None:
        """Write the vectors added since the last flush as one new part file."""
        if not self._pending_keys:
            return
        buf = io.BytesIO()
        np.savez(
            buf,
            keys=np.array(self._pending_keys, dtype=f"<U{KEY_CHARS}"),
            vectors=np.vstack(self._pending).astype(np.float32),
        )
        write_atomic(self.dir / f"part-{uuid.uuid4().hex[:12]}.npz", buf.getvalue())
        self._pending_keys, self._pending = [], []

    def clear(self) -> None:
        """Drop the parts once a build holding all their vectors is committed."""
        shutil.rmtree(self.dir, ignore_errors=True)
        self._vectors.clear()
