"""Retrieval stage: per-question latency of each retrieval step, and numpy vs FAISS search."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from chatbot.bench.common import Uncached, per_query_ms, timed, unit_vectors
from chatbot.bench.stats import summary
from chatbot.config import Settings

STAGES = ("embed_ms", "dense_ms", "bm25_ms", "fusion_ms", "lookup_ms")


def bench_retrieval(
    s: Settings, embedder: Any, questions: Sequence[str], rounds: int
) -> tuple[dict[str, Any], Any]:
    """Every question ``rounds`` times through the retriever, query embedding uncached."""
    from chatbot.pipeline import Pipeline

    pipe = Pipeline(s, embedder=Uncached(embedder), generator_factory=lambda: None)
    pipe.ensure_index()
    retriever = pipe.retriever()
    retriever.run(questions[0])  # warm up
    wall: list[float] = []
    stages: dict[str, list[float]] = {k: [] for k in STAGES}
    for _ in range(rounds):
        for q in questions:
            seconds, r = timed(partial(retriever.run, q))
            wall.append(seconds * 1000)
            for key, values in stages.items():
                if key in r.timings:
                    values.append(r.timings[key])
    total = summary(wall, 3)
    per_stage = {k: summary(v, 3) for k, v in stages.items()}
    return {
        "p50_ms": total["p50"],
        "p95_ms": total["p95"],
        "queries": len(wall),
        "mode": retriever.mode,
        "stages": {k: {"p50": v["p50"], "p95": v["p95"]} for k, v in per_stage.items()},
    }, pipe


def numpy_top_k(vectors: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Brute force inner-product top-k with numpy: the baseline FAISS has to beat."""
    scores = vectors @ query.reshape(-1)
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top], kind="stable")]


def numpy_vs_faiss(vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> dict[str, float]:
    from chatbot.index import make_faiss_index

    index = make_faiss_index(np.ascontiguousarray(vectors, dtype=np.float32), "flat")
    k = min(k, len(vectors))
    return {
        "numpy_ms": per_query_ms(lambda q: numpy_top_k(vectors, q, k), queries),
        "faiss_ms": per_query_ms(lambda q: index.search(q, k), queries),
    }


def search_comparison(index: Any, embedder: Any, questions: Sequence[str]) -> dict[str, Any]:
    """numpy vs FAISS flat search on the real index and on 10^5 random unit vectors."""
    qv = np.asarray(embedder.encode(list(questions)), dtype=np.float32)
    real = numpy_vs_faiss(index.vectors, qv)
    rng = np.random.default_rng(1)
    big = numpy_vs_faiss(unit_vectors(rng, 100_000), unit_vectors(rng, 50))
    return {
        "numpy_search_ms": real["numpy_ms"],
        "faiss_search_ms": real["faiss_ms"],
        "numpy_search_ms_1e5": big["numpy_ms"],
        "faiss_search_ms_1e5": big["faiss_ms"],
        "real_index_vectors": len(index),
    }
