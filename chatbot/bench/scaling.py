"""Scaling stage: flat vs approximate (HNSW, IVF) search on random unit vectors, recall@10."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from chatbot.bench.common import DIM, per_query_ms, say, timed, unit_vectors
from chatbot.bench.stats import recall_at_k

SCALING_SIZES = (1_000, 10_000, 100_000, 1_000_000)
QUICK_SCALING_SIZES = (1_000, 10_000)
HNSW_MAX_VECTORS = 100_000  # above this an HNSW build takes many minutes on 2 cores: IVF instead


def _search(index: Any, queries: np.ndarray, k: int = 10) -> Any:
    return index.search(queries, k)


def _flat(xb: np.ndarray, xq: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """Flat search timings (all threads and one thread) and the exact top 10."""
    import faiss

    from chatbot.index import make_faiss_index

    build, flat = timed(partial(make_faiss_index, xb, "flat"))
    flat_ms = per_query_ms(partial(_search, flat), xq)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        flat_ms_1 = per_query_ms(partial(_search, flat), xq)
    finally:
        faiss.omp_set_num_threads(threads)
    _, exact = flat.search(xq, 10)
    figures = {"flat_ms": flat_ms, "flat_ms_1thread": flat_ms_1, "flat_build_s": round(build, 3)}
    return figures, exact


def _hnsw(xb: np.ndarray) -> tuple[float, Any, dict[str, Any]]:
    from chatbot.index import make_faiss_index

    build, index = timed(partial(make_faiss_index, xb, "hnsw"))
    return build, index, {"M": 32, "efConstruction": 80, "efSearch": int(index.hnsw.efSearch)}


def _ivf(xb: np.ndarray, rng: np.random.Generator) -> tuple[float, Any, dict[str, Any]]:
    import faiss

    n = len(xb)
    nlist = min(1024, max(8, n // 256))  # 1024 lists for 10^6 vectors
    quantizer = faiss.IndexFlatIP(DIM)  # faiss's wrapper keeps it alive with the index
    index = faiss.IndexIVFFlat(quantizer, DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = xb[rng.choice(n, size=min(n, 64 * nlist), replace=False)]

    def build_ivf() -> None:
        index.train(sample)
        index.add(xb)

    build, _ = timed(build_ivf)
    index.nprobe = 16
    return build, index, {"nlist": nlist, "nprobe": 16, "train_sample": len(sample)}


def _wider(kind: str, index: Any, xq: np.ndarray, exact: np.ndarray) -> dict[str, Any]:
    """What it takes to get recall up on this structureless data."""
    if kind == "hnsw":
        index.hnsw.efSearch = 256
        knob: dict[str, Any] = {"efSearch": 256}
    else:
        index.nprobe = 64
        knob = {"nprobe": 64}
    return {
        **knob,
        "ms": per_query_ms(partial(_search, index), xq),
        "recall_at_10": round(recall_at_k(index.search(xq, 10)[1], exact), 3),
    }


def scaling_row(
    n: int, n_queries: int, rng: np.random.Generator, hnsw_max: int = HNSW_MAX_VECTORS
) -> dict[str, Any]:
    """One size: flat against HNSW (up to ``hnsw_max`` vectors) or IVF (above)."""
    xb = unit_vectors(rng, n)
    xq = unit_vectors(rng, n_queries)
    flat, exact = _flat(xb, xq)
    kind = "hnsw" if n <= hnsw_max else "ivf"
    build, approx, params = _hnsw(xb) if kind == "hnsw" else _ivf(xb, rng)
    approx_ms = per_query_ms(partial(_search, approx), xq)
    recall = recall_at_k(approx.search(xq, 10)[1], exact, 10)
    return {
        "vectors": n,
        **flat,
        "approx_ms": approx_ms,
        "approx_recall_at_10": round(recall, 3),
        "approx_kind": kind,
        "approx_params": params,
        "approx_build_s": round(build, 2),
        "approx_wider": _wider(kind, approx, xq, exact),
        "queries": n_queries,
    }


def bench_scaling(
    sizes: Sequence[int], n_queries: int, seed: int = 0, hnsw_max: int = HNSW_MAX_VECTORS
) -> list[dict[str, Any]]:
    """Flat vs approximate search on random unit vectors; recall@10 against flat."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        say(f"scaling: {n:,} vectors")
        rows.append(scaling_row(n, n_queries, rng, hnsw_max))
    return rows
