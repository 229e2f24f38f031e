"""Sentence embeddings.

The fingerprint is what keeps an index from being searched with vectors of another model, so it
must follow the weights' bytes. The slow tests load the bundled all-MiniLM-L6-v2 itself and
check, end to end, that the real index ranks the right FAQ entry first.

The fp32 ONNX backend shares the torch fingerprint, so its vectors must match torch's; the int8
one has a fingerprint of its own, so an index built with one is never searched with the other.
Exports are made once into the cache (atomically) and a failure to make one falls back to torch
(with torch's fingerprint).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from chatbot import embedding as embedding_mod
from chatbot.chunking import Chunker
from chatbot.config import Settings
from chatbot.embedding import (
    ONNX_CACHE_FOLDER,
    ONNX_EXPORT_FORMAT,
    ONNX_FILE,
    ONNX_META_FILE,
    WEIGHTS_HASH_MEMO,
    Embedder,
    EmbeddingError,
    OnnxEncoder,
    SentenceTransformerEmbedder,
    bundled_model_path,
    encode_cached,
    encode_query,
    hash_weights,
    memo_weights_hash,
    onnx_export_folder,
)
from chatbot.embedding import onnx_export as onnx_mod
from chatbot.errors import IndexMismatch
from chatbot.index import IndexStore
from chatbot.retrieve import Retriever
from tests.fakes import FakeEmbedder

FAQ_Q = "Can you use a base model directly for a chatbot?"


def fake_model_dir(root: Path, weights: bytes = b"weights-v1") -> Path:
    folder = root / "my-model"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "modules.json").write_text("[]")
    (folder / "model.safetensors").write_bytes(weights)
    return folder


# ------------------------------------------------------------------------------ fast


def test_weights_hash_follows_content_and_names(tmp_path: Path) -> None:
    folder = fake_model_dir(tmp_path)
    first = hash_weights(folder)
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert hash_weights(folder) == first
    (folder / "model.safetensors").write_bytes(b"weights-v2")
    assert hash_weights(folder) != first
    (folder / "model.safetensors").write_bytes(b"weights-v1")
    assert hash_weights(folder) == first
    # configs are not weights: adding or editing them does not change the hash
    (folder / "config.json").write_text('{"hidden_size": 384}')
    assert hash_weights(folder) == first
    (folder / "model.safetensors").rename(folder / "other.safetensors")
    assert hash_weights(folder) != first  # the file name is part of the hash


def test_weights_hash_falls_back_to_bin_and_requires_weights(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    with pytest.raises(EmbeddingError, match="no weight files"):
        hash_weights(folder)
    (folder / "pytorch_model.bin").write_bytes(b"torch weights")
    assert re.fullmatch(r"[0-9a-f]{16}", hash_weights(folder))


def test_fingerprint_of_a_local_model_has_name_and_weights_hash(tmp_path: Path) -> None:
    folder = fake_model_dir(tmp_path)
    emb = SentenceTransformerEmbedder(folder)
    assert emb.name == "my-model"
    assert emb.fingerprint() == f"my-model:{hash_weights(folder)}"
    (folder / "model.safetensors").write_bytes(b"retrained")
    # a new process (new embedder) sees different weights -> a different fingerprint
    assert SentenceTransformerEmbedder(folder).fingerprint() != emb.fingerprint()


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match="not found"):
        SentenceTransformerEmbedder(tmp_path / "absent")


def test_bundled_model_is_found_or_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    path = bundled_model_path()
    assert (path / "modules.json").exists()
    monkeypatch.setattr(embedding_mod, "BUNDLED_EMBEDDING_PACKAGE", "no_such_model_package_xyz")
    with pytest.raises(EmbeddingError, match="make setup"):
        bundled_model_path()


class CountingEmbedder(SentenceTransformerEmbedder):
    """The real query cache in front of a fake model."""

    def __init__(self, folder: Path, text_cache: int) -> None:
        super().__init__(folder, text_cache=text_cache)
        self.batches: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        return FakeEmbedder().encode(texts)


def test_query_cache_is_a_bounded_lru(tmp_path: Path) -> None:
    emb = CountingEmbedder(fake_model_dir(tmp_path), text_cache=2)
    a = emb.encode_query("alpha question")
    assert np.array_equal(emb.encode_query("alpha question"), a)
    assert emb.batches == [["alpha question"]]
    emb.encode_query("beta question")
    emb.encode_query("alpha question")  # refreshes alpha
    emb.encode_query("gamma question")  # evicts beta, the least recently used
    assert len(emb.batches) == 3
    emb.encode_query("alpha question")
    assert len(emb.batches) == 3
    emb.encode_query("beta question")
    assert len(emb.batches) == 4


def test_encode_query_helper_uses_the_cache_when_there_is_one(tmp_path: Path) -> None:
    emb = CountingEmbedder(fake_model_dir(tmp_path), text_cache=4)
    encode_query(emb, "q one")
    encode_query(emb, "q one")
    assert len(emb.batches) == 1
    fake = FakeEmbedder()
    vec = encode_query(fake, "plain embedder")
    assert vec.shape == (fake.dim,) and fake.calls == 1
    assert isinstance(fake, Embedder)


def test_cached_texts_skip_the_model_and_only_new_ones_are_embedded_together(
    tmp_path: Path,
) -> None:
    """The retriever compares a passage's sentences with the question, then the reader reads
    the same sentences: the second time costs nothing, and a repeated text is embedded once."""
    emb = CountingEmbedder(fake_model_dir(tmp_path), text_cache=8)
    first = encode_cached(emb, ["Bison: a parser generator.", "Bison: written by Corbett."])
    again = encode_cached(emb, ["new question", "Bison: written by Corbett.", "new question"])
    assert emb.batches == [
        ["Bison: a parser generator.", "Bison: written by Corbett."],
        ["new question"],
    ]
    assert np.array_equal(again[1], first[1]) and np.array_equal(again[0], again[2])
    assert encode_cached(emb, []).shape[0] == 0
    fake = FakeEmbedder()
    assert encode_cached(fake, ["plain"]).shape == (1, fake.dim) and fake.calls == 1


# --------------------------------------------------------------------- backend choice (fast)


def fake_export(
    out_dir: Path, fmt: int = ONNX_EXPORT_FORMAT, tag: str = "new", precision: str = "fp32"
) -> None:
    """What export_onnx leaves behind, minus a real graph: enough for the cache logic."""
    (out_dir / ONNX_FILE).write_text(tag)
    (out_dir / ONNX_META_FILE).write_text(json.dumps({"format": fmt, "precision": precision}))


def refuse_export(model_path: Path, out_dir: Path) -> None:
    raise AssertionError("export_onnx must not run here")


def test_backend_arguments_are_checked(tmp_path: Path) -> None:
    folder = fake_model_dir(tmp_path)
    with pytest.raises(ValueError, match="unknown embedding backend"):
        SentenceTransformerEmbedder(folder, backend="tensorrt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a cache_dir"):
        SentenceTransformerEmbedder(folder, backend="onnx")


def test_torch_and_cacheless_auto_never_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a place to keep the export, auto stays on torch instead of exporting per start."""
    monkeypatch.setattr(onnx_mod, "export_onnx", refuse_export)
    folder = fake_model_dir(tmp_path)
    cache = tmp_path / "cache"
    assert SentenceTransformerEmbedder(folder, backend="torch", cache_dir=cache).onnx is None
    assert SentenceTransformerEmbedder(folder).onnx is None
    monkeypatch.setattr(embedding_mod, "onnx_available", lambda: False)
    assert SentenceTransformerEmbedder(folder, cache_dir=cache).onnx is None
    assert not cache.exists()


def test_failed_export_falls_back_to_torch_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(model_path: Path, out_dir: Path) -> None:
        (out_dir / ONNX_FILE).write_text("half a graph")
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(embedding_mod, "onnx_available", lambda: True)
    monkeypatch.setattr(onnx_mod, "export_onnx", broken)
    cache = tmp_path / "cache"
    emb = SentenceTransformerEmbedder(fake_model_dir(tmp_path), backend="onnx", cache_dir=cache)
    with caplog.at_level(logging.WARNING, logger="chatbot.embedding"):
        assert emb.backend == "torch"
    assert "exporter exploded" in caplog.text
    # the half-written temp folder is gone, and no export was published
    assert list((cache / ONNX_CACHE_FOLDER).iterdir()) == []


def test_complete_export_is_reused_and_stale_one_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / ONNX_CACHE_FOLDER / "abc123"
    target.mkdir(parents=True)
    fake_export(target, tag="kept")
    monkeypatch.setattr(onnx_mod, "export_onnx", refuse_export)
    assert onnx_export_folder(tmp_path / "model", tmp_path, "abc123") == target
    assert (target / ONNX_FILE).read_text() == "kept"

    fake_export(target, fmt=ONNX_EXPORT_FORMAT - 1, tag="stale")  # an older exporter's output
    monkeypatch.setattr(onnx_mod, "export_onnx", lambda m, out: fake_export(out))
    assert onnx_export_folder(tmp_path / "model", tmp_path, "abc123") == target
    assert (target / ONNX_FILE).read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["abc123"]  # no temp folders left


def test_losing_an_export_race_keeps_the_winner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process publishes first: its export stays, ours is dropped."""
    target = tmp_path / ONNX_CACHE_FOLDER / "abc123"

    def racing(model_path: Path, out_dir: Path) -> None:
        target.mkdir()
        fake_export(target, tag="winner")
        fake_export(out_dir, tag="loser")

    monkeypatch.setattr(onnx_mod, "export_onnx", racing)
    assert onnx_export_folder(tmp_path / "model", tmp_path, "abc123") == target
    assert (target / ONNX_FILE).read_text() == "winner"
    assert [p.name for p in target.parent.iterdir()] == ["abc123"]


def test_weights_hash_is_remembered_by_file_stats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hashing 90 MB of weights was most of a no-op rebuild: it is done once per file version."""
    folder, cache = fake_model_dir(tmp_path), tmp_path / "cache"
    first = memo_weights_hash(folder, cache)
    assert first == hash_weights(folder)
    assert (cache / WEIGHTS_HASH_MEMO).is_file()
    calls: list[Path] = []

    def counting_hash(folder: Path) -> str:
        calls.append(folder)
        return "rehashed00000000"

    monkeypatch.setattr(embedding_mod, "hash_weights", counting_hash)
    assert memo_weights_hash(folder, cache) == first and calls == []
    (folder / "model.safetensors").write_bytes(b"weights-v2, another size")
    assert memo_weights_hash(folder, cache) == "rehashed00000000" and len(calls) == 1
    assert memo_weights_hash(folder, None) == "rehashed00000000" and len(calls) == 2
    (cache / WEIGHTS_HASH_MEMO).write_text("{not json")  # damaged memo
    assert memo_weights_hash(folder, cache) == "rehashed00000000" and len(calls) == 3


def test_int8_backend_has_its_own_fingerprint_and_export_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[str, ...]] = []

    def export(model_path: Path, out_dir: Path, *precision: str) -> None:
        made.append(precision)
        fake_export(out_dir, precision=precision[0] if precision else "fp32")

    monkeypatch.setattr(embedding_mod, "onnx_available", lambda: True)
    monkeypatch.setattr(onnx_mod, "export_onnx", export)
    folder, cache = fake_model_dir(tmp_path), tmp_path / "cache"
    torch_fp = SentenceTransformerEmbedder(folder, backend="torch").fingerprint()
    fp32 = SentenceTransformerEmbedder(folder, backend="onnx", cache_dir=cache)
    int8 = SentenceTransformerEmbedder(folder, backend="onnx-int8", cache_dir=cache)
    assert fp32.fingerprint() == torch_fp  # same vectors, checked at export
    assert int8.fingerprint() != torch_fp and "int8" in int8.fingerprint()
    assert fp32.export is not None and int8.export is not None
    assert int8.export.name == fp32.export.name + "-int8"
    assert sorted(made) == [(), ("int8",)]
    # a cached fp32 export is not taken for an int8 one, nor the other way round
    assert onnx_export_folder(folder, cache, int8._weights_hash, "int8") == int8.export
    assert len(made) == 2
    assert Settings(embedding_backend="onnx-int8").embedding_backend == "onnx-int8"


def test_int8_without_an_export_is_torch_with_torch_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A fallback must not leave int8 in the fingerprint: the vectors would be torch's."""

    def broken(model_path: Path, out_dir: Path, *precision: str) -> None:
        raise RuntimeError("no quantizer here")

    monkeypatch.setattr(embedding_mod, "onnx_available", lambda: True)
    monkeypatch.setattr(onnx_mod, "export_onnx", broken)
    folder = fake_model_dir(tmp_path)
    emb = SentenceTransformerEmbedder(folder, backend="onnx-int8", cache_dir=tmp_path / "c")
    with caplog.at_level(logging.WARNING, logger="chatbot.embedding"):
        assert emb.fingerprint() == SentenceTransformerEmbedder(folder).fingerprint()
        assert emb.backend == "torch"
    assert "no quantizer here" in caplog.text


def test_int8_export_that_cannot_be_loaded_is_an_error_not_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the fingerprint says int8, silently encoding with torch would mix vectors."""
    monkeypatch.setattr(embedding_mod, "onnx_available", lambda: True)
    monkeypatch.setattr(
        onnx_mod, "export_onnx", lambda m, out, *p: fake_export(out, precision="int8")
    )
    emb = SentenceTransformerEmbedder(
        fake_model_dir(tmp_path), backend="onnx-int8", cache_dir=tmp_path / "c"
    )
    assert "int8" in emb.fingerprint()
    with pytest.raises(EmbeddingError, match="CHATBOT_EMBEDDING_BACKEND=torch"):
        _ = emb.onnx  # the fake export is no ONNX graph: loading fails twice


# ------------------------------------------------------------------------------ slow


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.mark.slow
def test_bundled_minilm_embeds_normalized_384d_vectors(
    minilm: SentenceTransformerEmbedder,
) -> None:
    assert minilm.name == "all-MiniLM-L6-v2"
    assert minilm.dim == 384
    assert minilm.fingerprint() == f"all-MiniLM-L6-v2:{hash_weights(bundled_model_path())}"
    texts = [
        "A base model is a pre-trained network used as a starting point.",
        "Base models are pretrained neural networks that you adapt later.",
        "The best pizza in Naples has a thin, soft crust.",
    ]
    vecs = minilm.encode(texts)
    assert vecs.dtype == np.float32 and vecs.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    sim = vecs @ vecs.T
    assert sim[0, 1] > 0.6
    assert sim[0, 1] > sim[0, 2] + 0.4 and sim[1, 0] > sim[1, 2] + 0.4
    assert minilm.encode([]).shape == (0, 384)
    # the query path gives the same vector as a batch encode
    np.testing.assert_allclose(minilm.encode_query(texts[0]), vecs[0], atol=1e-5)


@pytest.mark.slow
def test_corrupted_model_folder_raises_embedding_error(tmp_path: Path) -> None:
    folder = fake_model_dir(tmp_path, weights=b"not safetensors at all")
    (folder / "modules.json").write_text("{ this is not json")
    emb = SentenceTransformerEmbedder(folder)
    with pytest.raises(EmbeddingError, match="cannot load embedding model"):
        emb.encode(["anything"])


@pytest.mark.slow
def test_real_index_ranks_the_faq_entry_first(
    minilm: SentenceTransformerEmbedder, tmp_path: Path, corpus_dir: Path
) -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    store = IndexStore(tmp_path / "index", minilm, Chunker(s.chunk_size, s.chunk_overlap))
    store.build(corpus_dir)
    index = store.load()
    assert index.manifest["embedding"]["fingerprint"] == minilm.fingerprint()
    assert index.vectors.shape[1] == 384
    retriever = Retriever(
        index,
        minilm,
        top_k=s.top_k,
        candidates=s.candidates,
        mode=s.retrieval_mode,
        rrf_k=s.rrf_k,
        relevance_threshold=s.relevance_threshold,
        dense_weight=s.dense_weight,
        lexical_coverage=s.lexical_coverage,
    )
    result = retriever.run(FAQ_Q)
    top = result.hits[0].chunk
    assert (top.doc_id, top.kind, top.question) == ("base-model-insertchat", "faq", FAQ_Q)
    assert "Base models are not ideal for chatbots" in top.text
    assert result.covered
    assert not retriever.run("best pizza in Naples").covered


SENTENCES = [
    "A base model is a pre-trained network used as a starting point.",
    "How do I reset my password?",
    "The best pizza in Naples has a thin, soft crust.",
    "Retrieval-augmented generation cites the passages it used. " * 30,  # truncated at 256
]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real export for the module (it takes ~15 s), under pytest's temp dir."""
    cache = tmp_path_factory.mktemp("onnx-cache")
    emb = SentenceTransformerEmbedder(backend="onnx", cache_dir=cache)
    assert emb.backend == "onnx"
    return cache


def export_dir(cache: Path) -> Path:
    return cache / ONNX_CACHE_FOLDER / hash_weights(bundled_model_path())


@pytest.mark.slow
def test_onnx_vectors_match_torch_and_share_the_fingerprint(
    minilm: SentenceTransformerEmbedder, onnx_cache: Path
) -> None:
    emb = SentenceTransformerEmbedder(backend="onnx", cache_dir=onnx_cache)
    assert emb.backend == "onnx" and emb.dim == 384
    assert emb.fingerprint() == minilm.fingerprint()
    got, ref = emb.encode(SENTENCES), minilm.encode(SENTENCES)
    assert got.dtype == np.float32 and got.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    assert np.min(np.sum(got * ref, axis=1)) > 0.999
    # batches are split and re-ordered by length: the order of the output must not change
    emb.batch_size = 2
    assert np.min(np.sum(emb.encode(SENTENCES) * ref, axis=1)) > 0.999
    assert emb.encode([]).shape == (0, 384)


@pytest.mark.slow
def test_second_start_loads_the_cached_export_without_exporting(
    onnx_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = export_dir(onnx_cache)
    before = (folder.stat().st_mtime_ns, (folder / ONNX_FILE).stat().st_mtime_ns)
    monkeypatch.setattr(onnx_mod, "export_onnx", refuse_export)
    emb = SentenceTransformerEmbedder(cache_dir=onnx_cache)  # auto picks the cached export
    assert emb.backend == "onnx"
    assert emb.onnx is not None and emb.onnx.folder == folder
    assert emb.encode(SENTENCES[:1]).shape == (1, 384)
    assert (folder.stat().st_mtime_ns, (folder / ONNX_FILE).stat().st_mtime_ns) == before


@pytest.mark.slow
def test_damaged_cached_export_is_made_again(
    onnx_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = export_dir(onnx_cache)
    damaged = export_dir(tmp_path)
    shutil.copytree(good, damaged)
    (damaged / ONNX_FILE).write_bytes(b"truncated by a full disk")
    exports: list[Path] = []

    def copy_good_export(model_path: Path, out_dir: Path) -> None:
        exports.append(out_dir)
        shutil.copytree(good, out_dir, dirs_exist_ok=True)

    monkeypatch.setattr(onnx_mod, "export_onnx", copy_good_export)
    emb = SentenceTransformerEmbedder(backend="onnx", cache_dir=tmp_path)
    assert emb.backend == "onnx" and len(exports) == 1
    assert (damaged / ONNX_FILE).read_bytes() == (good / ONNX_FILE).read_bytes()


@pytest.mark.slow
def test_broken_export_of_the_real_model_falls_back_to_torch(
    minilm: SentenceTransformerEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(model_path: Path, out_dir: Path) -> None:
        raise RuntimeError("torch.onnx could not trace the model")

    monkeypatch.setattr(onnx_mod, "export_onnx", broken)
    emb = SentenceTransformerEmbedder(backend="onnx", cache_dir=tmp_path)
    assert emb.backend == "torch"
    np.testing.assert_allclose(emb.encode(SENTENCES), minilm.encode(SENTENCES), atol=1e-5)
    assert emb.fingerprint() == minilm.fingerprint()


@pytest.fixture(scope="module")
def int8_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real int8 export for the module, under pytest's temp dir."""
    cache = tmp_path_factory.mktemp("onnx-int8-cache")
    assert SentenceTransformerEmbedder(backend="onnx-int8", cache_dir=cache).backend == "onnx-int8"
    return cache


@pytest.mark.slow
def test_int8_vectors_stay_close_to_torch_under_their_own_fingerprint(
    minilm: SentenceTransformerEmbedder, int8_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_mod, "export_onnx", refuse_export)  # the cached one is used
    emb = SentenceTransformerEmbedder(backend="onnx-int8", cache_dir=int8_cache)
    assert emb.backend == "onnx-int8" and emb.dim == 384
    assert emb.fingerprint() == f"{minilm.fingerprint()}:{embedding_mod.INT8_RECIPE}"
    got, ref = emb.encode(SENTENCES), minilm.encode(SENTENCES)
    cosines = np.sum(got * ref, axis=1)
    assert cosines.min() > 0.97 and cosines.mean() > 0.985
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    # one text alone or beside a 256-token one: the same vector (int8 activation scales are
    # per call, so the int8 graph runs one text per call)
    np.testing.assert_allclose(emb.encode(SENTENCES[:1])[0], got[0], atol=1e-6)
    # alternate texts go to parallel sessions: the vectors are those of a single session
    assert emb.onnx is not None and len(emb.onnx.sessions) == min(2, os.cpu_count() or 1)
    single = OnnxEncoder(emb.onnx.folder, workers=1)
    np.testing.assert_allclose(single.encode(SENTENCES, 32), got, atol=1e-6)


@pytest.mark.slow
def test_an_index_built_with_int8_is_refused_by_torch_and_rebuilt(
    minilm: SentenceTransformerEmbedder, int8_cache: Path, tmp_path: Path, corpus_dir: Path
) -> None:
    int8 = SentenceTransformerEmbedder(backend="onnx-int8", cache_dir=int8_cache)
    chunker = Chunker()
    IndexStore(tmp_path / "index", int8, chunker).build(corpus_dir)
    torch_store = IndexStore(tmp_path / "index", minilm, chunker)
    with pytest.raises(IndexMismatch, match="different embedding model"):
        torch_store.load()
    assert torch_store.stale_reasons(corpus_dir)
    summary = torch_store.build(corpus_dir)
    assert summary.embedded_chunks == summary.chunks  # no int8 vector is reused by torch
    assert torch_store.load().manifest.embedding_fingerprint == minilm.fingerprint()


@pytest.mark.slow
def test_the_onnx_path_never_imports_torch_in_the_calling_process(int8_cache: Path) -> None:
    """Exports run in a child, and the encoder needs only onnxruntime and tokenizers: a build
    or a server on the int8 backend keeps torch (~420 MB) out of its memory."""
    code = (
        "import sys; from pathlib import Path; "
        "from chatbot.embedding import SentenceTransformerEmbedder as E; "
        f"e = E(backend='onnx-int8', cache_dir=Path({str(int8_cache)!r})); "
        "v = e.encode(['a base model']); "
        "print(e.backend, v.shape, sorted({'torch', 'transformers', "
        "'sentence_transformers'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[0] == "onnx-int8 (1, 384) []"


@pytest.mark.slow
def test_a_failing_export_child_reports_its_last_error_line(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match=r"ONNX export failed: .+"):
        onnx_mod.export_onnx(fake_model_dir(tmp_path), tmp_path / "out", "int8")
