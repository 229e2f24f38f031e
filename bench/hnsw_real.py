"""HNSW recall@10 and latency on real embeddings: the dict-foldoc index, repeated with small
perturbations to 10^5 vectors, queried with the lookup set's questions. Writes
bench/hnsw_real.json. Needs an index built over dict-foldoc (see README, Performance):

    CHATBOT_CACHE_DIR=... python bench/hnsw_real.py INDEX_DIR
"""

import json
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from chatbot.embedding import SentenceTransformerEmbedder

idx_dir = Path(sys.argv[1]) / "builds"
build = sorted(p for p in idx_dir.iterdir() if not p.name.startswith("."))[-1]
base = np.load(build / "vectors.npy")
lookups = Path(__file__).resolve().parent.parent / "eval/foldoc_lookups.jsonl"
qs = [json.loads(line)["question"] for line in lookups.read_text().splitlines()]
emb = SentenceTransformerEmbedder()
xq = emb.encode(qs[:200]).astype(np.float32)
rng = np.random.default_rng(0)
out = []
for n in (20_000, 100_000):
    reps = -(-n // len(base))
    xb = np.vstack(
        [base]
        + [base + rng.normal(0, 0.03, base.shape).astype(np.float32) for _ in range(reps - 1)]
    )[:n]
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    flat = faiss.IndexFlatIP(384)
    flat.add(xb)
    t = time.perf_counter()
    _, gt = flat.search(xq, 10)
    flat_ms = (time.perf_counter() - t) / len(xq) * 1000
    for M in (16, 32, 48):
        h = faiss.IndexHNSWFlat(384, M, faiss.METRIC_INNER_PRODUCT)
        h.hnsw.efConstruction = 80
        t = time.perf_counter()
        h.add(xb)
        build_s = time.perf_counter() - t
        for ef in (32, 64, 128, 256):
            h.hnsw.efSearch = ef
            t = time.perf_counter()
            _, ids = h.search(xq, 10)
            ms = (time.perf_counter() - t) / len(xq) * 1000
            rec = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, gt, strict=True)])
            row = dict(
                n=n,
                M=M,
                efSearch=ef,
                recall10=round(float(rec), 4),
                ms=round(ms, 3),
                flat_ms=round(flat_ms, 3),
                build_s=round(build_s, 1),
            )
            print(row, flush=True)
            out.append(row)
(Path(__file__).resolve().parent / "hnsw_real.json").write_text(json.dumps(out, indent=1))
