"""The real-glossary stage of `make bench`: Debian's dict-foldoc plus the bundled pages.

Measures, in one run on this machine: the full build (seconds, chunks/s, peak RSS of the build
process), the raw embedder rate of each backend on the same chunks (the ceiling a build can
reach), a no-op and a one-entry rebuild, a build killed with SIGKILL at 80% and resumed, query
latency, and retrieval quality on the project's own question sets over that corpus.
Writes bench/real_glossary.json and bench/real_glossary.md.

    python bench/real_glossary.py [--dictd /usr/share/dictd/foldoc.index] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench"


def run_build(corpus: Path, index: Path, cache: Path, kill_at: float | None = None) -> dict:
    """`chatbot index` in a child process: wall time, peak RSS, and (optionally) a kill -9 once
    the embedding progress passes ``kill_at``."""
    env = {**os.environ, "CHATBOT_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "chatbot.cli", "index", "--corpus", str(corpus)]
    cmd += ["--index", str(index), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed_at = None
    assert proc.stderr is not None
    for line in proc.stderr:
        m = re.match(r"embed ([\d,]+)/([\d,]+)", line)
        if kill_at is not None and m:
            done, total = (int(x.replace(",", "")) for x in m.groups())
            if done >= kill_at * total:
                proc.send_signal(signal.SIGKILL)
                killed_at = done / total
                break
    out, _ = proc.communicate()
    seconds = time.perf_counter() - t0
    # the largest child so far: the full build runs first, so this is its peak
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary = json.loads(out.strip().splitlines()[-1]) if proc.returncode == 0 and out else {}
    return {"seconds": seconds, "summary": summary, "killed_at": killed_at, "rss_mb": rss_mb}


def embedder_rates(texts: list[str], cache: Path) -> dict[str, float]:
    """Chunks/s of each embedding backend on the same texts (length-sorted, batch 32)."""
    from chatbot.embedding import SentenceTransformerEmbedder

    texts = sorted(texts, key=len)
    rates = {}
    for backend in ("torch", "onnx"):
        try:
            emb = SentenceTransformerEmbedder(backend=backend, cache_dir=cache)
        except TypeError:  # an embedder without backends: torch only
            if backend != "torch":
                continue
            emb = SentenceTransformerEmbedder()
        emb.encode(texts[:64])  # load and warm up
        t0 = time.perf_counter()
        emb.encode(texts)
        rates[backend] = len(texts) / (time.perf_counter() - t0)
    return rates


def queries(corpus: Path, index: Path, cache: Path) -> dict[str, Any]:
    from chatbot.config import Settings
    from chatbot.evaluate import eval_retrieval, load_items
    from chatbot.pipeline import Pipeline

    s = Settings(corpus_dir=corpus, index_dir=index, cache_dir=cache)
    pipe = Pipeline(s)
    pipe.ensure_index(auto_build=False)
    sets = {
        "bundled": ROOT / "eval/questions.jsonl",
        "foldoc": ROOT / "eval/foldoc_questions.jsonl",
        "lookups": ROOT / "eval/foldoc_lookups.jsonl",
    }
    out: dict[str, Any] = {}
    ms: list[float] = []
    retriever = pipe.retriever()
    for name, path in sets.items():
        items = load_items(path)
        for it in items:  # uncached query embedding each time
            retriever.embedder.__dict__.get("_cache", {}).clear()
            t0 = time.perf_counter()
            retriever.run(it.question)
            ms.append((time.perf_counter() - t0) * 1000)
        r = eval_retrieval(pipe, items)
        out[name] = {k: v for k, v in r.items() if k != "rows"}
    out["query_ms"] = {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dictd", default="/usr/share/dictd/foldoc.index")
    ap.add_argument("--work", default="")
    args = ap.parse_args()
    index_file = Path(args.dictd)
    if not index_file.exists():
        sys.exit(f"{index_file} not found: apt-get install dict-foldoc")
    work = Path(args.work or tempfile.mkdtemp(prefix="real-glossary-"))
    corpus = work / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    shutil.copytree(ROOT / "corpus", corpus)
    for f in index_file.parent.glob(index_file.stem + ".*"):
        shutil.copy(f, corpus / f.name)
    result: dict[str, Any] = {"corpus": "dict-foldoc + bundled pages", "work": str(work)}

    from chatbot.chunking import Chunker
    from chatbot.readers import load_corpus

    docs = load_corpus(corpus).documents
    chunks = [c.embed_text() for d in docs for c in Chunker().run(d)]
    result["entries"], result["chunks"] = len(docs), len(chunks)
    sample = [chunks[i] for i in np.random.default_rng(0).choice(len(chunks), 2000, False)]
    result["embedder_chunks_per_s"] = embedder_rates(sample, work / "onnx-cache")

    full = run_build(corpus, work / "index", work / "cache")
    result["full_build"] = {
        "seconds": round(full["seconds"], 1),
        "chunks_per_s": round(len(chunks) / full["seconds"], 1),
        "peak_rss_mb": round(full["rss_mb"]),
    }
    for name, edit in (("noop", None), ("one_entry", "Edited for the benchmark.")):
        if edit:
            page = next(corpus.glob("*.md"))
            page.write_text(page.read_text() + f"\n{edit}\n")
        r = run_build(corpus, work / "index", work / "cache")
        result[f"{name}_rebuild"] = {
            "seconds": round(r["seconds"], 2),
            "inside_build_s": round(r["summary"].get("seconds", 0.0), 3),
            "embedded": r["summary"].get("embedded_chunks"),
        }
    killed = run_build(corpus, work / "index-kill", work / "cache-kill", kill_at=0.8)
    resumed = run_build(corpus, work / "index-kill", work / "cache-kill")
    result["kill_at_80"] = {
        "killed_at": killed["killed_at"],
        "resumed_embedded": resumed["summary"].get("embedded_chunks"),
        "resumed_share": round(resumed["summary"].get("embedded_chunks", 0) / len(chunks), 3),
    }
    result["retrieval"] = queries(corpus, work / "index", work / "cache")
    (OUT / "real_glossary.json").write_text(json.dumps(result, indent=1))
    (OUT / "real_glossary.md").write_text(render(result))
    print(render(result))


def render(r: dict[str, Any]) -> str:
    rates = r["embedder_chunks_per_s"]
    q = r["retrieval"]
    rows = [
        ("entries / chunks", f"{r['entries']:,} / {r['chunks']:,}"),
        (
            "full build",
            f"{r['full_build']['seconds']} s, {r['full_build']['chunks_per_s']} chunks/s",
        ),
        ("raw embedder (same chunks)", ", ".join(f"{k} {v:.0f}/s" for k, v in rates.items())),
        ("build rate vs torch encode", f"{r['full_build']['chunks_per_s'] / rates['torch']:.2f}x"),
        ("peak RSS of the build", f"{r['full_build']['peak_rss_mb']} MB"),
        (
            "no-op rebuild",
            f"{r['noop_rebuild']['seconds']} s (process), "
            f"{r['noop_rebuild']['inside_build_s']} s (build)",
        ),
        (
            "one changed entry",
            f"{r['one_entry_rebuild']['seconds']} s (process), "
            f"{r['one_entry_rebuild']['inside_build_s']} s (build), "
            f"{r['one_entry_rebuild']['embedded']} chunks embedded",
        ),
        ("kill -9 at 80%, then rebuild", f"{r['kill_at_80']['resumed_share']:.1%} re-embedded"),
        (
            "query p50 / p95 (with embedding)",
            f"{q['query_ms']['p50']:.1f} / {q['query_ms']['p95']:.1f} ms",
        ),
        ("bundled questions hit@3", f"{q['bundled']['hit@3']:.3f}"),
        ("foldoc questions hit@3", f"{q['foldoc']['hit@3']:.3f}"),
        ("lookups: exact entry at rank 1", f"{q['lookups'].get('exact_entry@1', 0):.3f}"),
    ]
    return "| measure | value |\n|---|---|\n" + "".join(f"| {a} | {b} |\n" for a, b in rows)


if __name__ == "__main__":
    main()
