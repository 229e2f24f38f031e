"""``chatbot bench``: how fast indexing, retrieval and generation are on this machine.

Writes ``results.json`` (every figure, machine-readable), ``results.md`` (the same as tables,
also printed) and ``latency.png`` (where the time of one answer goes) into the output folder.

Rules the numbers follow, so that two runs can be compared:
- every timing is the median (and p95 where it says so) of repeated runs; the few runs that
  cannot be repeated cheaply (the cold start converts the model for ~30 s) say so in ``notes``;
- nothing in the repository is touched: the corpus is copied and indexed in a temporary folder,
  caches live there too (the converted model cache is only read);
- the machine is shared, so absolute timings are noisy: the llama.cpp reference runs in the same
  process on the same prompts, and the ratios against it are the figures to compare across runs.
  The load average before and after each section is recorded to show how busy the machine was.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from chatbot.config import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

# The targets for this machine: (where in results.json, comparison, limit).
TARGETS: dict[str, tuple[str, str, float]] = {
    "warm start to ready (s)": ("generation.warm_start_s", "<", 5.0),
    "time to first token, p50 (s)": ("generation.ttft_p50_s", "<", 1.0),
    "decode speed vs llama.cpp": ("reference.decode_ratio", ">=", 0.5),
    "preset answer from cache (ms)": ("generation.preset_cached_ms", "<", 50.0),
    "retrieval p50 (ms)": ("retrieval.p50_ms", "<", 30.0),
    "peak RSS (MB)": ("generation.peak_rss_mb", "<", 1536.0),
    "no-op reindex (s)": ("index.noop_rebuild_s", "<", 0.5),
}
SCALING_SIZES = (1_000, 10_000, 100_000, 1_000_000)
QUICK_SCALING_SIZES = (1_000, 10_000)
HNSW_MAX_VECTORS = 100_000  # above this an HNSW build takes many minutes on 2 cores: IVF instead
DIM = 384


# ------------------------------------------------------------------------------ pure helpers
def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation, as numpy's default; None if empty."""
    data = sorted(float(v) for v in values)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


def summary(values: Sequence[float], digits: int = 4) -> dict[str, Any]:
    """p50/p95/min/max/n of a list of timings, rounded; None fields for an empty list."""

    def r(v: float | None) -> float | None:
        return None if v is None else round(v, digits)

    return {
        "p50": r(percentile(values, 50)),
        "p95": r(percentile(values, 95)),
        "min": r(min(values)) if len(values) else None,
        "max": r(max(values)) if len(values) else None,
        "n": len(values),
    }


def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int = 10) -> float:
    """Mean share of the exact top-k found in the approximate top-k (ids < 0 never match)."""
    if len(exact) == 0:
        return 1.0
    found = 0
    for a, e in zip(approx, exact, strict=True):
        truth = {int(i) for i in e[:k] if i >= 0}
        found += len(truth & {int(i) for i in a[:k] if i >= 0})
    return found / (k * len(exact))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def lookup(results: dict[str, Any], dotted: str) -> Any:
    node: Any = results
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each issue target with the measured value and whether it is met (None: not measured)."""
    rows = []
    for name, (path, op, limit) in TARGETS.items():
        value = lookup(results, path)
        met = None
        if isinstance(value, int | float):
            met = value < limit if op == "<" else value >= limit
        rows.append(
            {"target": name, "key": path, "op": op, "limit": limit, "value": value, "met": met}
        )
    return rows


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{digits}}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(results: dict[str, Any]) -> str:
    """results.json as readable tables; every section tolerates missing (skipped) parts."""
    m = results.get("machine", {})
    b = results.get("bench", {})
    out = [
        "# glossary-chat benchmark",
        "",
        f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {_fmt(m.get('ram_gb'))} GB RAM; "
        f"Python {m.get('python', '?')}, torch {m.get('versions', {}).get('torch', '?')}, "
        f"transformers {m.get('versions', {}).get('transformers', '?')}, "
        f"faiss {m.get('versions', {}).get('faiss-cpu', '?')}; threads {m.get('threads', '?')}. "
        f"Run {b.get('started', '?')} in {_fmt(b.get('duration_s'))} s"
        + (" (quick mode)" if b.get("quick") else "")
        + f"; load average {_fmt(b.get('loadavg_start'))} at start, "
        f"{_fmt(b.get('loadavg_end'))} at the end.",
        "",
        "## Targets",
        _table(
            ["target", "measured", "limit", "met"],
            [
                (t["target"], t["value"], f"{t['op']} {_fmt(t['limit'])}", t["met"])
                for t in results.get("targets", check_targets(results))
            ],
        ),
    ]
    idx = results.get("index") or {}
    out += [
        "",
        "## Index (temporary copy of the corpus, real MiniLM)",
        _table(
            [
                "full build s",
                "no-op rebuild s",
                "one-file rebuild s",
                "chunks",
                "embed chunks/s",
                "batch",
            ],
            [
                [
                    idx.get("full_build_s"),
                    idx.get("noop_rebuild_s"),
                    idx.get("one_file_rebuild_s"),
                    idx.get("chunks"),
                    idx.get("embed_chunks_per_s"),
                    idx.get("embed_batch_size"),
                ]
            ],
        ),
    ]
    ret = results.get("retrieval") or {}
    stages = ret.get("stages") or {}
    out += [
        "",
        "## Retrieval (ms per question, uncached query embedding)",
        _table(
            ["stage", "p50", "p95"],
            [("total", ret.get("p50_ms"), ret.get("p95_ms"))]
            + [(k, (v or {}).get("p50"), (v or {}).get("p95")) for k, v in stages.items()],
        ),
    ]
    scaling = ret.get("scaling") or []
    if scaling:
        out += [
            "",
            f"Scaling on random unit vectors (dim {DIM}), one query at a time:",
            _table(
                [
                    "vectors",
                    "flat ms",
                    "approx ms",
                    "approx",
                    "recall@10",
                    "approx build s",
                    "flat ms 1 thread",
                ],
                [
                    (
                        r.get("vectors"),
                        r.get("flat_ms"),
                        r.get("approx_ms"),
                        r.get("approx_kind"),
                        r.get("approx_recall_at_10"),
                        r.get("approx_build_s"),
                        r.get("flat_ms_1thread"),
                    )
                    for r in scaling
                ],
            ),
        ]
    gen = results.get("generation") or {}
    ref = results.get("reference") or {}
    out += [
        "",
        f"## Generation ({gen.get('backend', '?')}, weights {gen.get('weights', '?')}, "
        f"{gen.get('questions', '?')} questions)",
        _table(
            ["metric", "ours", "llama.cpp", "ratio"],
            [
                (
                    "time to first token p50 s",
                    gen.get("ttft_p50_s"),
                    ref.get("llama_cpp_ttft_p50_s"),
                    ref.get("ttft_ratio"),
                ),
                (
                    "time to first token p95 s",
                    gen.get("ttft_p95_s"),
                    ref.get("llama_cpp_ttft_p95_s"),
                    None,
                ),
                (
                    "decode tokens/s",
                    gen.get("decode_tok_s"),
                    ref.get("llama_cpp_decode_tok_s"),
                    ref.get("decode_ratio"),
                ),
                (
                    "decode tokens/s, llama.cpp on 1 thread",
                    gen.get("decode_tok_s"),
                    ref.get("llama_cpp_decode_tok_s_1thread"),
                    ref.get("decode_ratio_1thread"),
                ),
                ("prompt tokens (median)", gen.get("prompt_tokens"), None, None),
                ("pipeline answer p50 s", gen.get("e2e_p50_s"), None, None),
                ("pipeline answer p95 s", gen.get("e2e_p95_s"), None, None),
                ("warm start to ready s", gen.get("warm_start_s"), None, None),
                (
                    "model load, warm cache s",
                    gen.get("warm_load_s"),
                    ref.get("llama_cpp_load_s"),
                    None,
                ),
                ("cold start to first answer s", gen.get("cold_start_s"), None, None),
                ("peak RSS MB", gen.get("peak_rss_mb"), None, None),
                ("preset answer from cache ms", gen.get("preset_cached_ms"), None, None),
            ],
        ),
        "",
        "Vector search on the real index and on 10^5 random vectors (ms per query): "
        f"numpy {_fmt(ref.get('numpy_search_ms'))} vs FAISS {_fmt(ref.get('faiss_search_ms'))}; "
        f"10^5: numpy {_fmt(ref.get('numpy_search_ms_1e5'))} vs FAISS "
        f"{_fmt(ref.get('faiss_search_ms_1e5'))}.",
    ]
    load = results.get("load") or {}
    out += [
        "",
        "## Load test",
        _table(
            ["clients", "requests", "errors", "p50 s", "p95 s"],
            [
                [
                    load.get("clients"),
                    load.get("requests"),
                    load.get("errors"),
                    load.get("p50_s"),
                    load.get("p95_s"),
                ]
            ],
        ),
    ]
    notes = results.get("notes") or []
    if notes:
        out += ["", "## Notes", *[f"- {n}" for n in notes]]
    return "\n".join(out) + "\n"


def plot_latency(results: dict[str, Any], path: Path) -> Path | None:
    """Bar chart of where the time of one answer goes (p50 bars, p95 whiskers, log scale)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ret = results.get("retrieval") or {}
    gen = results.get("generation") or {}
    ref = results.get("reference") or {}
    bars: list[tuple[str, float | None, float | None]] = []
    for stage, v in (ret.get("stages") or {}).items():
        bars.append(
            (f"retrieval: {stage.removesuffix('_ms')}", (v or {}).get("p50"), (v or {}).get("p95"))
        )
    bars.append(("retrieval: total", ret.get("p50_ms"), ret.get("p95_ms")))
    s_to_ms = 1000.0

    def ms(v: Any) -> float | None:
        return None if v is None else float(v) * s_to_ms

    bars.append(("first token (prefill)", ms(gen.get("ttft_p50_s")), ms(gen.get("ttft_p95_s"))))
    if gen.get("decode_tok_s"):
        bars.append(("one decoded token", s_to_ms / gen["decode_tok_s"], None))
    bars.append(("whole answer (pipeline)", ms(gen.get("e2e_p50_s")), ms(gen.get("e2e_p95_s"))))
    if ref.get("llama_cpp_ttft_p50_s") is not None:
        bars.append(
            (
                "llama.cpp first token",
                ms(ref.get("llama_cpp_ttft_p50_s")),
                ms(ref.get("llama_cpp_ttft_p95_s")),
            )
        )
    if ref.get("llama_cpp_decode_tok_s"):
        bars.append(("llama.cpp one token", s_to_ms / ref["llama_cpp_decode_tok_s"], None))
    if gen.get("preset_cached_ms") is not None:
        bars.append(("preset from cache", gen["preset_cached_ms"], None))
    bars = [b for b in bars if b[1] is not None and b[1] > 0]
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(bars) + 1.2))
    labels = [b[0] for b in bars]
    p50 = [float(b[1] or 0) for b in bars]
    err = [max(0.0, float(b[2]) - float(b[1] or 0)) if b[2] is not None else 0.0 for b in bars]
    colors = ["#c44e52" if "llama" in b[0] else "#4c72b0" for b in bars]
    ax.barh(labels, p50, xerr=[[0] * len(err), err], color=colors, capsize=3)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds (p50; whisker to p95; log scale)")
    ax.set_title("glossary-chat: latency per stage")
    for y, (v, e) in enumerate(zip(p50, err, strict=True)):
        label = f"{v:,.0f} ms" if v >= 100 else f"{v:.3g} ms"
        ax.text((v + e) * 1.15, y, label, va="center", fontsize=8)
    ax.set_xlim(min(p50) / 2, max(v + e for v, e in zip(p50, err, strict=True)) * 8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ machine
def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine_info(settings: Settings) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        import psutil

        ram_gb: float | None = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        ram_gb = None
    versions: dict[str, str | None] = {}
    for pkg in (
        "torch",
        "transformers",
        "faiss-cpu",
        "sentence-transformers",
        "numpy",
        "bm25s",
        "llama_cpp_python",
    ):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    import torch

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "threads": settings.effective_threads(),
        "torch_threads": torch.get_num_threads(),
    }


# ------------------------------------------------------------------------------ helpers
class _Uncached:
    """The real embedder without its query cache: every question is embedded as if new."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.batch_size = getattr(inner, "batch_size", 32)

    @property
    def dim(self) -> int:
        return int(self.inner.dim)

    def fingerprint(self) -> str:
        return str(self.inner.fingerprint())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.inner.encode(texts))


@dataclass
class _Probe:
    """Stands in for the generator to capture the exact prompts the pipeline builds."""

    count: Callable[[str], int]
    name: str = "probe"

    def __post_init__(self) -> None:
        self.calls: list[list[dict[str, str]]] = []

    def count_tokens(self, text: str) -> int:
        return self.count(text)

    def stream(self, messages: list[dict[str, str]], max_new_tokens: int) -> Iterator[str]:
        self.calls.append(messages)
        return iter(())


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _unit_vectors(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000  # fill in slices: no float64 temporaries of the whole matrix
    for i in range(0, n, step):
        block = rng.standard_normal((min(step, n - i), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[i : i + len(block)] = block
    return out


def _per_query_ms(search: Callable[[np.ndarray], Any], queries: np.ndarray) -> float:
    search(queries[0:1])  # warm up
    times = []
    for q in queries:
        t0 = time.perf_counter()
        search(q[None, :])
        times.append(time.perf_counter() - t0)
    return round(float(np.median(times)) * 1000, 4)


def _search(index: Any, queries: np.ndarray, k: int = 10) -> Any:
    return index.search(queries, k)


def numpy_top_k(vectors: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Brute force inner-product top-k with numpy: the baseline FAISS has to beat."""
    scores = vectors @ query.reshape(-1)
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top], kind="stable")]


# ------------------------------------------------------------------------------ index
def bench_index(
    settings: Settings, work: Path, embedder: Any, rounds: int
) -> tuple[dict[str, Any], Settings]:
    """Full, no-op and one-file rebuilds on a temporary copy of the corpus."""
    from chatbot.chunking import Chunker
    from chatbot.index import IndexStore

    corpus = work / "corpus"
    shutil.copytree(settings.corpus_dir, corpus)
    s = settings.model_copy(
        update={"corpus_dir": corpus, "index_dir": work / "index", "cache_dir": work / "cache"}
    )
    store = IndexStore(
        s.index_dir,
        embedder,
        Chunker(s.chunk_size, s.chunk_overlap),
        s.index_type,
        s.approx_min_vectors,
    )
    embedder_load_s, _ = _timed(lambda: embedder.encode(["warm up"]))
    full = [_timed(lambda: store.build(corpus, full=True))[0] for _ in range(rounds)]
    noop = []
    for _ in range(max(3, rounds)):
        seconds, summary = _timed(lambda: store.build(corpus))
        if not summary.up_to_date:
            raise RuntimeError("a rebuild of an unchanged corpus was not a no-op")
        noop.append(seconds)
    target = sorted(corpus.glob("*.md"))[0]
    original = target.read_bytes()
    one_file, embedded = [], []
    try:
        for r in range(rounds):
            target.write_bytes(original + f"\n\nBenchmark edit number {r}.\n".encode())
            seconds, summary = _timed(lambda: store.build(corpus))
            one_file.append(seconds)
            embedded.append(summary.embedded_chunks)
    finally:
        target.write_bytes(original)
    store.build(corpus)  # back to the original corpus for the retrieval benchmark
    loaded = store.load()
    texts = [c.embed_text() for c in loaded.chunks]
    encode = [_timed(lambda: embedder.encode(texts))[0] for _ in range(rounds)]
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


# ------------------------------------------------------------------------------ retrieval
def bench_retrieval(
    s: Settings, embedder: Any, questions: Sequence[str], rounds: int
) -> tuple[dict[str, Any], Any]:
    from chatbot.pipeline import Pipeline

    pipe = Pipeline(s, embedder=_Uncached(embedder), generator_factory=lambda: None)
    pipe.ensure_index()
    retriever = pipe.retriever()
    retriever.run(questions[0])  # warm up
    wall: list[float] = []
    stages: dict[str, list[float]] = {
        "embed_ms": [],
        "dense_ms": [],
        "bm25_ms": [],
        "fusion_ms": [],
        "lookup_ms": [],
    }
    for _ in range(rounds):
        for q in questions:
            seconds, r = _timed(partial(retriever.run, q))
            wall.append(seconds * 1000)
            for key, values in stages.items():
                if key in r.timings:
                    values.append(r.timings[key])
    total = summary(wall, 3)
    return {
        "p50_ms": total["p50"],
        "p95_ms": total["p95"],
        "queries": len(wall),
        "mode": retriever.mode,
        "stages": {
            k: {"p50": summary(v, 3)["p50"], "p95": summary(v, 3)["p95"]} for k, v in stages.items()
        },
    }, pipe


def bench_scaling(sizes: Sequence[int], n_queries: int, seed: int = 0) -> list[dict[str, Any]]:
    """Flat vs approximate search on random unit vectors; recall@10 against flat."""
    import faiss

    from chatbot.index import make_faiss_index

    rng = np.random.default_rng(seed)
    rows = []
    threads = faiss.omp_get_max_threads()
    for n in sizes:
        _say(f"scaling: {n:,} vectors")
        xb = _unit_vectors(rng, n)
        xq = _unit_vectors(rng, n_queries)
        flat_build, flat = _timed(partial(make_faiss_index, xb, "flat"))
        flat_ms = _per_query_ms(partial(_search, flat), xq)
        faiss.omp_set_num_threads(1)
        try:
            flat_ms_1 = _per_query_ms(partial(_search, flat), xq)
        finally:
            faiss.omp_set_num_threads(threads)
        _, exact = flat.search(xq, 10)
        del flat
        if n <= HNSW_MAX_VECTORS:
            kind = "hnsw"
            build, approx = _timed(partial(make_faiss_index, xb, "hnsw"))
            params = {"M": 32, "efConstruction": 80, "efSearch": int(approx.hnsw.efSearch)}
        else:
            kind = "ivf"
            nlist = min(1024, max(8, n // 256))  # 1024 lists for 10^6 vectors
            quantizer = faiss.IndexFlatIP(DIM)
            approx = faiss.IndexIVFFlat(quantizer, DIM, nlist, faiss.METRIC_INNER_PRODUCT)
            sample = xb[rng.choice(n, size=min(n, 64 * nlist), replace=False)]

            def build_ivf(a: Any = approx, smp: np.ndarray = sample, x: np.ndarray = xb) -> None:
                a.train(smp)
                a.add(x)

            build, _ = _timed(build_ivf)
            approx.nprobe = 16
            params = {"nlist": nlist, "nprobe": 16, "train_sample": len(sample)}
        approx_ms = _per_query_ms(partial(_search, approx), xq)
        _, found = approx.search(xq, 10)
        recall = recall_at_k(found, exact, 10)
        wider: dict[str, Any] = {}
        if kind == "hnsw":  # what it takes to get recall up on this structureless data
            approx.hnsw.efSearch = 256
            wider = {
                "efSearch": 256,
                "ms": _per_query_ms(partial(_search, approx), xq),
                "recall_at_10": round(recall_at_k(approx.search(xq, 10)[1], exact), 3),
            }
        else:
            approx.nprobe = 64
            wider = {
                "nprobe": 64,
                "ms": _per_query_ms(partial(_search, approx), xq),
                "recall_at_10": round(recall_at_k(approx.search(xq, 10)[1], exact), 3),
            }
        rows.append(
            {
                "vectors": n,
                "flat_ms": flat_ms,
                "flat_ms_1thread": flat_ms_1,
                "approx_ms": approx_ms,
                "approx_recall_at_10": round(recall, 3),
                "approx_kind": kind,
                "approx_params": params,
                "approx_build_s": round(build, 2),
                "flat_build_s": round(flat_build, 3),
                "approx_wider": wider,
                "queries": n_queries,
            }
        )
        del approx, xb
    return rows


def numpy_vs_faiss(vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> dict[str, float]:
    from chatbot.index import make_faiss_index

    index = make_faiss_index(np.ascontiguousarray(vectors, dtype=np.float32), "flat")
    k = min(k, len(vectors))
    return {
        "numpy_ms": _per_query_ms(lambda q: numpy_top_k(vectors, q, k), queries),
        "faiss_ms": _per_query_ms(lambda q: index.search(q, k), queries),
    }


# ------------------------------------------------------------------------------ generation
def eval_questions() -> list[Any]:
    from chatbot.evaluate import DEFAULT_EVAL_FILE, load_items

    return load_items(DEFAULT_EVAL_FILE)


def pick_prompts(
    s: Settings, embedder: Any, count: Callable[[str], int], items: Sequence[Any], n: int
) -> list[tuple[Any, list[dict[str, str]]]]:
    """The first n answerable eval questions that reach the model, with the exact prompt the
    pipeline builds for each (FAQ matches and refusals are answered without the model)."""
    from chatbot.pipeline import Pipeline

    probe = _Probe(count)
    pipe = Pipeline(s, embedder=embedder, generator_factory=lambda: probe)
    pipe.ensure_index()
    chosen = []
    for item in items:
        if not item.answerable:
            continue
        before = len(probe.calls)
        pipe.ask(item.question)
        if len(probe.calls) > before:
            chosen.append((item, probe.calls[-1]))
        if len(chosen) >= n:
            break
    return chosen


def run_stream(stream: Iterator[str]) -> tuple[float, float, str]:
    """(seconds to the first piece, total seconds, text) of one streamed answer."""
    t0 = time.perf_counter()
    first = None
    text = ""
    for piece in stream:
        if first is None:
            first = time.perf_counter()
        text += piece
    end = time.perf_counter()
    return (first or end) - t0, end - t0, text


def decode_rate(n_tokens: int, ttft: float, total: float) -> float | None:
    """Tokens per second after the first one (the first token's time is prefill)."""
    if n_tokens < 2 or total <= ttft:
        return None
    return (n_tokens - 1) / (total - ttft)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
    )
    return env


def run_child(s: Settings, question: str, timeout_s: float = 600.0) -> dict[str, Any]:
    """A fresh interpreter that loads the pipeline and answers one question. The child stamps
    each event with the wall clock, so times count from spawning it: interpreter start and
    imports included."""
    payload = json.dumps({"settings": s.model_dump(mode="json"), "question": question})
    t0 = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatbot.bench", "child", payload],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(),
        cwd=str(PROJECT_ROOT),
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"benchmark child did not answer within {timeout_s:.0f} s") from None
    events: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            event["wall_s"] = round(event.pop("at") - t0, 3)
            events[event["event"]] = event
    if "answered" not in events:
        raise RuntimeError(f"benchmark child failed (exit {proc.returncode}): {stderr[-2000:]}")
    return events


def _child_main(payload: str) -> None:
    """Runs in the subprocess: report when ready and when the first answer is done."""
    t0 = time.perf_counter()
    from chatbot.pipeline import Pipeline

    data = json.loads(payload)
    s = Settings(**data["settings"])
    t_import = time.perf_counter() - t0
    pipe = Pipeline(s)
    pipe.ensure_index()
    t_index = time.perf_counter() - t0
    pipe.embedder.encode(["warm up"])
    t_embedder = time.perf_counter() - t0
    gen = pipe.generator
    t_model = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "event": "ready",
                "at": time.time(),
                "import_s": round(t_import, 3),
                "index_s": round(t_index - t_import, 3),
                "embedder_s": round(t_embedder - t_index, 3),
                "generator_s": round(t_model - t_embedder, 3),
                "generator_load_s": round(float(getattr(gen, "load_seconds", 0.0)), 3),
                "generator": getattr(gen, "name", None),
                "weights": getattr(gen, "weights", None),
            }
        ),
        flush=True,
    )
    answer = pipe.ask(data["question"])
    print(
        json.dumps(
            {
                "event": "answered",
                "at": time.time(),
                "mode": answer.mode,
                "answer_s": round(time.perf_counter() - t0 - t_model, 3),
                "peak_rss_mb": peak_rss_mb(),
            }
        ),
        flush=True,
    )


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM belongs to the address space an exec
    creates, so unlike ru_maxrss (kept across exec on Linux) it does not include the memory of
    the benchmark process this child was forked from."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _link_model_cache(settings: Settings, cache_dir: Path) -> None:
    """Give the temporary cache folder the real converted-model cache (read, never rebuilt
    unless missing, exactly as the app would)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    settings.model_cache_dir.mkdir(parents=True, exist_ok=True)
    link = cache_dir / "models"
    if not link.exists():
        link.symlink_to(settings.model_cache_dir.resolve(), target_is_directory=True)


def bench_generation(
    settings: Settings,
    s: Settings,
    work: Path,
    embedder: Any,
    n_questions: int,
    warm_runs: int,
    cold: bool,
    notes: list[str],
) -> tuple[dict[str, Any], Any, list[tuple[Any, list[dict[str, str]]]]]:
    from chatbot.evaluate import facts_recalled
    from chatbot.generate import TransformersGenerator, create_generator
    from chatbot.pipeline import Pipeline

    gs = s.model_copy(update={"backend": "transformers"})
    _link_model_cache(settings, gs.cache_dir)
    _say("generation: loading the model in this process")
    load_s, gen = _timed(lambda: create_generator(gs))
    if not isinstance(gen, TransformersGenerator):
        raise RuntimeError(f"expected the transformers generator, got {type(gen).__name__}")
    uncached = _Uncached(embedder)
    prompts = pick_prompts(gs, uncached, gen.count_tokens, eval_questions(), n_questions)
    if not prompts:
        raise RuntimeError("no eval question reaches the model: nothing to time")
    if len(prompts) < n_questions:
        notes.append(
            f"only {len(prompts)} answerable eval questions reach the model (asked for "
            f"{n_questions}); the rest are answered from FAQ entries"
        )
    max_new = gs.max_new_tokens
    run_stream(gen.stream(prompts[0][1], 4))  # warm up
    rows: list[dict[str, Any]] = []
    for item, messages in prompts:
        ttft, total, text = run_stream(gen.stream(messages, max_new))
        n = gen.count_tokens(text)
        prompt_tokens = len(gen.tokenizer(gen.render(messages), add_special_tokens=False).input_ids)
        rows.append(
            {
                "id": item.id,
                "ttft_s": round(ttft, 4),
                "total_s": round(total, 4),
                "tokens": n,
                "prompt_tokens": prompt_tokens,
                "decode_tok_s": decode_rate(n, ttft, total),
                "text": text,
            }
        )
    _say("generation: pipeline end to end")
    pipe = Pipeline(gs, embedder=uncached, generator_factory=lambda: gen)
    pipe.ensure_index()
    e2e: list[float] = []
    modes: dict[str, int] = {}
    recalled: list[bool] = []
    pipe_ttft: list[float] = []
    for item, _ in prompts:
        seconds, answer = _timed(partial(pipe.ask, item.question))
        e2e.append(seconds)
        modes[answer.mode] = modes.get(answer.mode, 0) + 1
        recalled.append(facts_recalled(item, answer.answer))
        if "ttft_s" in answer.timings:
            pipe_ttft.append(answer.timings["ttft_s"])
    presets = pipe.presets()[:5]
    for q in presets:
        pipe.cached_answer(q)  # fill the cache
    cached = []
    for _ in range(5):
        for q in presets:
            cached.append(_timed(partial(pipe.cached_answer, q))[0] * 1000)
    _say(f"generation: {warm_runs} warm start(s) in fresh processes")
    question = prompts[0][0].question
    warm = [run_child(gs, question) for _ in range(warm_runs)]
    cold_events = None
    if cold:
        _say("generation: cold start (empty model cache: converts the GGUF)")
        cold_s = gs.model_copy(update={"cache_dir": work / "cold-cache"})
        cold_events = run_child(cold_s, question)
    rates = [r["decode_tok_s"] for r in rows if r["decode_tok_s"]]
    ttfts = [r["ttft_s"] for r in rows]
    result = {
        "backend": "transformers",
        "weights": getattr(gen, "weights", "float32"),
        "lean_forward": getattr(gen, "runner", None) is not None,
        "questions": len(rows),
        "max_new_tokens": max_new,
        "threads": gs.effective_threads(),
        "decode_threads": getattr(gen, "decode_threads", None),
        "cold_start_s": cold_events["answered"]["wall_s"] if cold_events else None,
        "cold_ready_s": cold_events["ready"]["wall_s"] if cold_events else None,
        "cold_peak_rss_mb": cold_events["answered"]["peak_rss_mb"] if cold_events else None,
        "warm_start_s": median([w["ready"]["wall_s"] for w in warm]),
        "warm_load_s": median([w["ready"]["generator_load_s"] for w in warm]),
        "warm_first_answer_s": median([w["answered"]["wall_s"] for w in warm]),
        "warm_breakdown_s": {
            k: median([w["ready"][k] for w in warm])
            for k in ("import_s", "index_s", "embedder_s", "generator_s")
        },
        "load_in_process_s": round(load_s, 3),
        "prompt_tokens": median([r["prompt_tokens"] for r in rows]),
        "ttft_p50_s": percentile(ttfts, 50),
        "ttft_p95_s": percentile(ttfts, 95),
        "decode_tok_s": round(median(rates) or 0, 2) if rates else None,
        "generator_total_p50_s": percentile([r["total_s"] for r in rows], 50),
        "answer_tokens_p50": median([r["tokens"] for r in rows]),
        "e2e_p50_s": percentile(e2e, 50),
        "e2e_p95_s": percentile(e2e, 95),
        "pipeline_ttft_p50_s": percentile(pipe_ttft, 50),
        "answer_modes": modes,
        "fact_recall": round(sum(recalled) / max(1, len(recalled)), 3),
        "peak_rss_mb": max(w["answered"]["peak_rss_mb"] for w in warm),
        "preset_cached_ms": round(median(cached) or 0, 3) if cached else None,
        "preset_cached_p95_ms": percentile(cached, 95),
        "warm_runs": len(warm),
        "rows": rows,
    }
    for key in (
        "ttft_p50_s",
        "ttft_p95_s",
        "e2e_p50_s",
        "e2e_p95_s",
        "pipeline_ttft_p50_s",
        "generator_total_p50_s",
        "preset_cached_p95_ms",
    ):
        if result[key] is not None:
            result[key] = round(result[key], 4)
    return result, gen, prompts


# ------------------------------------------------------------------------------ reference
def ensure_llama_cpp() -> bool:
    """Import llama-cpp-python, installing it into this interpreter's environment if needed
    (it compiles llama.cpp: ~9 minutes on 2 cores)."""
    import importlib

    with contextlib.suppress(ImportError):
        importlib.import_module("llama_cpp")
        return True
    _say("reference: installing llama-cpp-python (compiles for several minutes)")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "llama-cpp-python"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        log.warning("pip install llama-cpp-python failed: %s", done.stderr[-1000:])
        return False
    importlib.invalidate_caches()
    try:
        importlib.import_module("llama_cpp")
    except ImportError:
        return False
    return True


def _llama_runs(llm: Any, s: Settings, rendered: Sequence[str]) -> list[dict[str, Any]]:
    def one(prompt: str, max_tokens: int) -> tuple[float, float, str]:
        llm.reset()
        parts = llm.create_completion(
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=0.0,
            repeat_penalty=s.repetition_penalty,
            stream=True,
        )
        return run_stream(p["choices"][0]["text"] for p in parts)

    one(rendered[0], 4)  # warm up
    rows: list[dict[str, Any]] = []
    for prompt in rendered:
        ttft, total, text = one(prompt, s.max_new_tokens)
        n = len(llm.tokenize(text.encode(), add_bos=False, special=False))
        rows.append(
            {
                "ttft_s": round(ttft, 4),
                "total_s": round(total, 4),
                "tokens": n,
                "decode_tok_s": decode_rate(n, ttft, total),
                "text": text,
            }
        )
    return rows


def bench_llama_cpp(
    s: Settings, gen: Any, prompts: Sequence[tuple[Any, list[dict[str, str]]]]
) -> dict[str, Any]:
    """llama.cpp on the same GGUF, the same rendered prompts, max tokens, penalty and threads.

    The KV cache is reset before every prompt: llama-cpp-python would otherwise reuse the
    shared prompt prefix of the previous question, which our generator does not do. A second,
    shorter pass on one thread gives the like-for-like figure for our decoding, which runs on
    one thread.
    """
    from llama_cpp import Llama

    from chatbot.generate import bundled_gguf_path

    def load(threads: int) -> Any:
        return Llama(
            model_path=str(bundled_gguf_path()),
            n_ctx=s.context_tokens,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )

    threads = s.effective_threads()
    load_s, llm = _timed(partial(load, threads))
    rendered = [gen.render(messages) for _, messages in prompts]
    same_tokens = all(
        llm.tokenize(p.encode(), add_bos=False, special=True)
        == gen.tokenizer(p, add_special_tokens=False).input_ids
        for p in rendered
    )
    rows = _llama_runs(llm, s, rendered)
    llm.close()
    one_thread = _llama_runs(load(1), s, rendered[:5]) if threads > 1 else rows
    rates = [r["decode_tok_s"] for r in rows if r["decode_tok_s"]]
    rates_1 = [r["decode_tok_s"] for r in one_thread if r["decode_tok_s"]]
    ttfts = [r["ttft_s"] for r in rows]
    return {
        "llama_cpp_load_s": round(load_s, 3),
        "llama_cpp_decode_tok_s": round(median(rates) or 0, 2) if rates else None,
        "llama_cpp_ttft_p50_s": None if not ttfts else round(percentile(ttfts, 50) or 0, 4),
        "llama_cpp_ttft_p95_s": None if not ttfts else round(percentile(ttfts, 95) or 0, 4),
        "llama_cpp_threads": threads,
        "llama_cpp_decode_tok_s_1thread": round(median(rates_1) or 0, 2) if rates_1 else None,
        "llama_cpp_same_prompt_tokens": same_tokens,
        "llama_cpp_answer_tokens_p50": median([r["tokens"] for r in rows]),
        "llama_cpp_rows": rows,
    }


# ------------------------------------------------------------------------------ load test
def load_candidates(out: Path) -> list[Path]:
    """Where the load test may have left its figures, first match wins."""
    paths = [out / "load.json", PROJECT_ROOT / "bench" / "load.json"]
    artifacts = os.environ.get("CHATBOT_ARTIFACTS_DIR")
    if artifacts:
        paths.append(Path(artifacts) / "load.json")
    paths.append(PROJECT_ROOT / "test-artifacts" / "load.json")
    return list(dict.fromkeys(paths))


def read_load(paths: Sequence[Path]) -> tuple[dict[str, Any], str | None]:
    """The load test's figures from the first readable file; nulls and a note otherwise."""
    keys = ("clients", "requests", "errors", "p50_s", "p95_s")
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            result: dict[str, Any] = {k: data.get(k) for k in keys}
            result.update({k: v for k, v in data.items() if k not in result})
            result["source"] = str(path)
            return result, None
    return {k: None for k in keys} | {"source": None}, (
        "no load-test results found ("
        + ", ".join(str(p) for p in paths)
        + "): run the load test first to fill the load block"
    )


# ------------------------------------------------------------------------------ main
def run_bench(
    settings: Settings,
    out: Path,
    reference: bool = True,
    n_questions: int = 10,
    quick: bool = False,
) -> dict[str, Any]:
    """Run every part, write results.json / results.md / latency.png into ``out``."""
    from chatbot.embedding import create_embedder

    started = time.perf_counter()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    rounds = 2 if quick else 3
    notes: list[str] = []
    sections: dict[str, float] = {}
    results: dict[str, Any] = {
        "bench": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "quick": quick,
            "reference": reference,
            "n_questions": n_questions,
            "loadavg_start": _loadavg(),
        },
        "machine": machine_info(settings),
    }
    work = Path(tempfile.mkdtemp(prefix="chatbot-bench-"))
    try:
        embedder = create_embedder(settings)

        def section(name: str, fn: Callable[[], Any]) -> Any:
            _say(f"{name} ...")
            t0 = time.perf_counter()
            load0 = _loadavg()
            value = fn()
            sections[name] = round(time.perf_counter() - t0, 1)
            results["bench"].setdefault("loadavg", {})[name] = [load0, _loadavg()]
            return value

        results["index"], s = section(
            "index", lambda: bench_index(settings, work, embedder, rounds)
        )
        questions = [item.question for item in eval_questions()]
        results["retrieval"], pipe = section(
            "retrieval", lambda: bench_retrieval(s, embedder, questions, rounds)
        )
        sizes = QUICK_SCALING_SIZES if quick else SCALING_SIZES
        results["retrieval"]["scaling"] = section(
            "scaling", lambda: bench_scaling(sizes, 50 if quick else 100)
        )
        gen_result, gen, prompts = section(
            "generation",
            lambda: bench_generation(
                settings, s, work, embedder, n_questions, 1 if quick else 3, True, notes
            ),
        )
        results["generation"] = gen_result
        ref: dict[str, Any] = {
            "llama_cpp_decode_tok_s": None,
            "llama_cpp_ttft_p50_s": None,
            "decode_ratio": None,
            "ttft_ratio": None,
        }
        if reference:
            if section("llama-cpp install", ensure_llama_cpp):
                ref.update(section("reference", lambda: bench_llama_cpp(s, gen, prompts)))
                ref["decode_ratio"] = ratio(
                    gen_result["decode_tok_s"], ref["llama_cpp_decode_tok_s"]
                )
                ref["ttft_ratio"] = ratio(ref["llama_cpp_ttft_p50_s"], gen_result["ttft_p50_s"])
                ref["decode_ratio_1thread"] = ratio(
                    gen_result["decode_tok_s"], ref["llama_cpp_decode_tok_s_1thread"]
                )
            else:
                notes.append("llama-cpp-python could not be installed: no llama.cpp reference")
        else:
            notes.append("llama.cpp reference skipped (--no-reference)")

        def searches() -> dict[str, Any]:
            index = pipe.index
            qv = np.asarray(embedder.encode(questions), dtype=np.float32)
            real = numpy_vs_faiss(index.vectors, qv)
            rng = np.random.default_rng(1)
            big = numpy_vs_faiss(_unit_vectors(rng, 100_000), _unit_vectors(rng, 50))
            return {
                "numpy_search_ms": real["numpy_ms"],
                "faiss_search_ms": real["faiss_ms"],
                "numpy_search_ms_1e5": big["numpy_ms"],
                "faiss_search_ms_1e5": big["faiss_ms"],
                "real_index_vectors": len(index),
            }

        ref.update(section("numpy-vs-faiss", searches))
        results["reference"] = ref
        results["load"], load_note = read_load(load_candidates(out))
        if load_note:
            notes.append(load_note)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    notes += _standing_notes(results, quick)
    results["notes"] = notes
    results["bench"]["sections_s"] = sections
    results["bench"]["loadavg_end"] = _loadavg()
    results["bench"]["duration_s"] = round(time.perf_counter() - started, 1)
    results["targets"] = check_targets(results)
    write_outputs(results, out)
    return results


def _standing_notes(results: dict[str, Any], quick: bool) -> list[str]:
    notes = [
        "Generation is measured on the transformers backend with the settings' threads for "
        "prefill; decoding runs on the generator's decode_threads. With llama-cpp-python "
        "installed, backend=auto answers with llama.cpp instead.",
        "Random unit vectors have no cluster structure, the worst case for approximate search: "
        "recall on real embeddings is much higher at the same settings. Flat search time is "
        "the same for any data.",
        "peak_rss_mb is the peak of a fresh process that loads index, embedder and model and "
        "answers one question (no web UI).",
    ]
    if quick:
        notes.append("quick mode: scaling only to 10^4 vectors, one warm start, two rounds")
    notes.append("cold_start_s is a single run: each one converts the GGUF again (~25 s)")
    scaling = (results.get("retrieval") or {}).get("scaling") or []
    budget = [r for r in scaling if r.get("flat_ms") is not None]
    if budget:
        over = [r["vectors"] for r in budget if r["flat_ms"] > 10.0]
        notes.append(
            "flat search exceeds 10 ms per query (a third of the 30 ms retrieval budget) from "
            + (f"{min(over):,} vectors" if over else "none of the measured sizes")
            + "; see approx_min_vectors"
        )
    return notes


def write_outputs(results: dict[str, Any], out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    text = render_markdown(results)
    (out / "results.md").write_text(text, encoding="utf-8")
    try:
        plot_latency(results, out / "latency.png")
    except Exception as exc:  # a broken matplotlib must not lose the measured numbers
        log.warning("could not draw latency.png: %s", exc)
    print(text)
    return text


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        logging.basicConfig(level=logging.WARNING)
        _child_main(sys.argv[2])
    else:
        raise SystemExit("usage: chatbot bench (this module is not meant to be run directly)")
