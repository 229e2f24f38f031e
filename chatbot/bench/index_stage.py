"""Index stage: full, no-op and one-file rebuilds on a temporary copy of the corpus."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from chatbot.bench.common import timed
from chatbot.bench.stats import median
from chatbot.config import Settings


def bench_settings(settings: Settings, work: Path) -> Settings:
    """The settings with corpus, index and caches moved into the work folder."""
    return settings.model_copy(
        update={
            "corpus_dir": work / "corpus",
            "index_dir": work / "index",
            "cache_dir": work / "cache",
        }
    )


def _one_file_rebuilds(store: Any, corpus: Path, rounds: int) -> tuple[list[float], list[int]]:
    """Edit one page and rebuild, ``rounds`` times; the page is restored afterwards."""
    target = sorted(corpus.glob("*.md"))[0]
    original = target.read_bytes()
    seconds, embedded = [], []
    try:
        for r in range(rounds):
            target.write_bytes(original + f"\n\nBenchmark edit number {r}.\n".encode())
            took, built = timed(lambda: store.build(corpus))
            seconds.append(took)
            embedded.append(built.embedded_chunks)
    finally:
        target.write_bytes(original)
    return seconds, embedded


def _noop_rebuilds(store: Any, corpus: Path, rounds: int) -> list[float]:
    noop = []
    for _ in range(max(3, rounds)):
        seconds, built = timed(lambda: store.build(corpus))
        if not built.up_to_date:
            raise RuntimeError("a rebuild of an unchanged corpus was not a no-op")
        noop.append(seconds)
    return noop


def bench_index(
    settings: Settings, work: Path, embedder: Any, rounds: int
) -> tuple[dict[str, Any], Settings]:
    """Full, no-op and one-file rebuilds; returns the figures and the settings of the copy."""
    from chatbot.chunking import Chunker
    from chatbot.index import IndexStore

    s = bench_settings(settings, work)
    corpus = s.corpus_dir
    shutil.copytree(settings.corpus_dir, corpus)
    store = IndexStore(
        s.index_dir,
        embedder,
        Chunker(s.chunk_size, s.chunk_overlap),
        s.index_type,
        s.approx_min_vectors,
    )
    embedder_load_s, _ = timed(lambda: embedder.encode(["warm up"]))
    full = [timed(lambda: store.build(corpus, full=True))[0] for _ in range(rounds)]
    noop = _noop_rebuilds(store, corpus, rounds)
    one_file, embedded = _one_file_rebuilds(store, corpus, rounds)
    store.build(corpus)  # back to the original corpus for the retrieval benchmark
    loaded = store.load()
    texts = [c.embed_text() for c in loaded.chunks]
    encode = [timed(lambda: embedder.encode(texts))[0] for _ in range(rounds)]
    result = {
        "full_build_s": round(median(full) or 0, 4),
        "noop_rebuild_s": round(median(noop) or 0, 4),
        "one_file_rebuild_s": round(median(one_file) or 0, 4),
        "chunks": len(loaded),
        "one_file_embedded_chunks": int(median(embedded) or 0),
        "embed_chunks_per_s": round(len(texts) / (median(encode) or 1), 1),
        "embed_batch_size": s.embed_batch_size,
        "embedder_first_call_s": round(embedder_load_s, 3),
        "index_type": loaded.manifest.get("index_type"),
        "runs": {"full": len(full), "noop": len(noop), "one_file": len(one_file)},
    }
    return result, s
