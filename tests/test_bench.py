"""chatbot.bench: the statistics, recall, tables and plot helpers, the index/retrieval/scaling
parts on the fake embedder, prompt selection, and (slow) one quick end-to-end run."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chatbot import bench
from chatbot.config import PROJECT_ROOT, Settings
from chatbot.evaluate import EvalItem
from tests.fakes import FakeEmbedder


# ------------------------------------------------------------------------ statistics
@pytest.mark.parametrize(
    "values",
    [[3.0], [1.0, 2.0], [5.0, 1.0, 4.0, 2.0, 3.0], [0.1 * i**1.5 for i in range(37)]],
)
@pytest.mark.parametrize("q", [0, 5, 50, 90, 95, 100])
def test_percentile_matches_numpy(values: list[float], q: float) -> None:
    assert bench.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_of_nothing_is_none() -> None:
    assert bench.percentile([], 50) is None
    assert bench.median([]) is None


def test_percentile_does_not_reorder_the_input() -> None:
    values = [3.0, 1.0, 2.0]
    assert bench.median(values) == 2.0
    assert values == [3.0, 1.0, 2.0]


def test_summary_fields_and_rounding() -> None:
    s = bench.summary([0.123456, 0.2, 0.3, 10.0], digits=2)
    assert s == {
        "p50": 0.25,
        "p95": pytest.approx(8.545, abs=0.01),
        "min": 0.12,
        "max": 10.0,
        "n": 4,
    }
    assert bench.summary([]) == {"p50": None, "p95": None, "min": None, "max": None, "n": 0}


def test_decode_rate_excludes_the_first_token() -> None:
    # 11 tokens: the first arrives at 1 s (prefill), the other 10 in the next 2 s
    assert bench.decode_rate(11, 1.0, 3.0) == pytest.approx(5.0)
    assert bench.decode_rate(1, 1.0, 3.0) is None
    assert bench.decode_rate(5, 2.0, 2.0) is None


def test_ratio() -> None:
    assert bench.ratio(30.0, 60.0) == 0.5
    assert bench.ratio(None, 60.0) is None
    assert bench.ratio(30.0, 0.0) is None
    assert bench.ratio(30.0, None) is None


# ------------------------------------------------------------------------ recall and search
def test_recall_at_10_on_a_tiny_case() -> None:
    exact = np.array([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]])
    approx = np.array(
        [
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],  # all 10 found
            [19, 18, 17, 16, 15, 99, 98, -1, -1, -1],  # 5 found, in another order; -1 = none
        ]
    )
    assert bench.recall_at_k(approx, exact, 10) == pytest.approx(15 / 20)
    assert bench.recall_at_k(exact, exact, 10) == 1.0
    assert bench.recall_at_k(approx[:, :3], exact[:, :3], 3) == pytest.approx(3 / 6)


def test_missing_ids_never_count_as_found() -> None:
    exact = np.array([[-1, -1, 3]])
    assert bench.recall_at_k(np.array([[-1, -1, 3]]), exact, 3) == pytest.approx(1 / 3)


def test_numpy_top_k_is_the_exact_ranking() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((200, 16)).astype(np.float32)
    query = rng.standard_normal(16).astype(np.float32)
    expected = np.argsort(-(vectors @ query))[:10]
    assert bench.numpy_top_k(vectors, query, 10).tolist() == expected.tolist()
    assert len(bench.numpy_top_k(vectors[:4], query, 10)) == 4  # k larger than the index


def test_unit_vectors_are_unit_length_float32() -> None:
    v = bench._unit_vectors(np.random.default_rng(0), 250, dim=8)
    assert v.dtype == np.float32 and v.shape == (250, 8)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_numpy_vs_faiss_measures_both() -> None:
    rng = np.random.default_rng(0)
    out = bench.numpy_vs_faiss(bench._unit_vectors(rng, 300), bench._unit_vectors(rng, 5))
    assert set(out) == {"numpy_ms", "faiss_ms"}
    assert all(v > 0 for v in out.values())


def test_scaling_rows_for_hnsw_and_ivf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "HNSW_MAX_VECTORS", 1_000)
    rows = bench.bench_scaling([500, 3_000], n_queries=8)
    assert [r["vectors"] for r in rows] == [500, 3_000]
    assert [r["approx_kind"] for r in rows] == ["hnsw", "ivf"]
    for r in rows:
        assert r["flat_ms"] > 0 and r["approx_ms"] > 0 and r["flat_ms_1thread"] > 0
        assert 0.0 <= r["approx_recall_at_10"] <= 1.0
        assert 0.0 <= r["approx_wider"]["recall_at_10"] <= 1.0
    assert rows[0]["approx_recall_at_10"] > 0.5  # HNSW on 500 vectors is nearly exact
    assert rows[1]["approx_params"]["nlist"] >= 8


# ------------------------------------------------------------------------ targets and tables
def _results() -> dict[str, Any]:
    return {
        "bench": {"started": "2026-01-01T00:00:00", "duration_s": 321.0, "quick": False},
        "machine": {"cpu": "Test CPU", "cores": 2, "ram_gb": 8.0, "versions": {"torch": "9"}},
        "index": {
            "full_build_s": 2.5,
            "noop_rebuild_s": 0.002,
            "one_file_rebuild_s": 0.2,
            "chunks": 42,
            "embed_chunks_per_s": 50.4,
            "embed_batch_size": 32,
        },
        "retrieval": {
            "p50_ms": 12.5,
            "p95_ms": 20.0,
            "stages": {
                "embed_ms": {"p50": 11.0, "p95": 18.0},
                "dense_ms": {"p50": 0.1, "p95": 0.2},
                "bm25_ms": {"p50": 0.2, "p95": 0.3},
                "fusion_ms": {"p50": 0.03, "p95": 0.05},
            },
            "scaling": [
                {
                    "vectors": 1000,
                    "flat_ms": 0.03,
                    "approx_ms": 0.05,
                    "approx_kind": "hnsw",
                    "approx_recall_at_10": 0.99,
                    "approx_build_s": 0.05,
                    "flat_ms_1thread": 0.02,
                },
            ],
        },
        "generation": {
            "backend": "transformers",
            "weights": "gguf-int4",
            "questions": 10,
            "ttft_p50_s": 0.6,
            "ttft_p95_s": 0.9,
            "decode_tok_s": 48.0,
            "e2e_p50_s": 2.0,
            "e2e_p95_s": 3.0,
            "warm_start_s": 7.5,
            "peak_rss_mb": 1100.0,
            "preset_cached_ms": 0.2,
            "cold_start_s": None,
        },
        "reference": {
            "llama_cpp_decode_tok_s": 100.0,
            "llama_cpp_ttft_p50_s": 0.9,
            "decode_ratio": 0.48,
            "ttft_ratio": 1.5,
        },
        "load": {"clients": 8, "requests": 80, "errors": 0, "p50_s": 1.5, "p95_s": 4.0},
        "notes": ["a note that must be shown"],
    }


def test_check_targets_compares_each_value() -> None:
    rows = {r["target"]: r for r in bench.check_targets(_results())}
    assert set(rows) == set(bench.TARGETS)
    assert rows["time to first token, p50 (s)"]["met"] is True  # 0.6 < 1.0
    assert rows["warm start to ready (s)"]["met"] is False  # 7.5 >= 5
    assert rows["decode speed vs llama.cpp"]["met"] is False  # 0.48 < 0.5
    assert rows["no-op reindex (s)"]["value"] == 0.002
    empty = bench.check_targets({})
    assert all(r["met"] is None and r["value"] is None for r in empty)


def test_lookup_follows_dotted_paths() -> None:
    r = _results()
    assert bench.lookup(r, "retrieval.stages.embed_ms.p50") == 11.0
    assert bench.lookup(r, "retrieval.nope.p50") is None
    assert bench.lookup(r, "index.chunks.deeper") is None


def test_markdown_tables_show_every_section() -> None:
    text = bench.render_markdown(_results())
    assert text.startswith("# glossary-chat benchmark")
    for heading in ("## Targets", "## Index", "## Retrieval", "## Generation", "## Load test"):
        assert heading in text
    lines = text.splitlines()
    # every table row has as many cells as its header
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            cells = lines[i - 1].count("|")
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert lines[j].count("|") == cells, lines[j]
                j += 1
    assert "| 42 |" in text  # chunks
    assert "| decode tokens/s | 48.0 | 100 | 0.48 |" in text
    assert "| warm start to ready (s) | 7.5 | < 5.0 | no |" in text
    assert "| cold start to first answer s | – |" in text  # None is a dash
    assert "- a note that must be shown" in text


def test_markdown_of_an_empty_run_does_not_fail() -> None:
    text = bench.render_markdown({})
    assert "## Targets" in text and "–" in text


def test_latency_plot_is_a_png(tmp_path: Path) -> None:
    path = bench.plot_latency(_results(), tmp_path / "plot" / "latency.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert bench.plot_latency({}, tmp_path / "none.png") is None  # nothing measured


def test_write_outputs_writes_all_three(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench.write_outputs(_results(), tmp_path)
    assert json.loads((tmp_path / "results.json").read_text())["index"]["chunks"] == 42
    assert (tmp_path / "results.md").read_text().startswith("# glossary-chat benchmark")
    assert (tmp_path / "latency.png").stat().st_size > 1000
    assert "## Targets" in capsys.readouterr().out  # the table is printed too


# ------------------------------------------------------------------------ load test results
def test_load_results_are_read_from_the_first_file(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    second.write_text(
        json.dumps(
            {"clients": 4, "requests": 40, "errors": 1, "p50_s": 1.0, "p95_s": 2.0, "extra": "kept"}
        )
    )
    load, note = bench.read_load([first, second])
    assert note is None
    assert load["clients"] == 4 and load["errors"] == 1 and load["p95_s"] == 2.0
    assert load["extra"] == "kept" and load["source"] == str(second)


def test_missing_or_broken_load_results_give_nulls_and_a_note(tmp_path: Path) -> None:
    broken = tmp_path / "load.json"
    broken.write_text("{not json")
    load, note = bench.read_load([broken, tmp_path / "absent.json"])
    assert {
        k: load[k] for k in ("clients", "requests", "errors", "p50_s", "p95_s")
    } == dict.fromkeys(("clients", "requests", "errors", "p50_s", "p95_s"))
    assert note is not None and "load" in note


def test_load_candidates_start_with_the_output_folder(tmp_path: Path) -> None:
    paths = bench.load_candidates(tmp_path)
    assert paths[0] == tmp_path / "load.json"
    assert PROJECT_ROOT / "test-artifacts" / "load.json" in paths


# ------------------------------------------------------------------------ parts on fakes
def test_bench_index_restores_the_corpus(settings: Settings, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    before = {p.name: p.read_bytes() for p in settings.corpus_dir.glob("*.md")}
    result, s = bench.bench_index(settings, work, FakeEmbedder(), rounds=2)
    assert result["chunks"] > 0 and result["embed_chunks_per_s"] > 0
    assert result["one_file_embedded_chunks"] > 0  # the edited file was re-embedded
    assert result["one_file_embedded_chunks"] < result["chunks"]  # ...and only that file
    for key in ("full_build_s", "noop_rebuild_s", "one_file_rebuild_s"):
        assert result[key] > 0
    assert s.corpus_dir == work / "corpus" and s.index_dir == work / "index"
    after = {p.name: p.read_bytes() for p in s.corpus_dir.glob("*.md")}
    assert after == before  # the bench's copy is back to the original text
    assert {p.name: p.read_bytes() for p in settings.corpus_dir.glob("*.md")} == before


def test_bench_retrieval_reports_each_stage(settings: Settings, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    embedder = FakeEmbedder()
    _, s = bench.bench_index(settings, work, embedder, rounds=1)
    questions = ["What is a base model?", "What is a foundation model?"]
    result, pipe = bench.bench_retrieval(s, embedder, questions, rounds=2)
    assert result["queries"] == 4
    assert set(result["stages"]) == {"embed_ms", "dense_ms", "bm25_ms", "fusion_ms", "lookup_ms"}
    assert all(v["p50"] is not None for v in result["stages"].values())
    assert result["p50_ms"] <= result["p95_ms"]
    assert len(pipe.index) > 0


def test_uncached_embedder_really_embeds_every_query() -> None:
    inner = FakeEmbedder()
    wrapped = bench._Uncached(inner)
    from chatbot.embedding import encode_query

    encode_query(wrapped, "same question")
    encode_query(wrapped, "same question")
    assert inner.encoded == 2
    assert wrapped.fingerprint() == inner.fingerprint() and wrapped.dim == inner.dim


def test_pick_prompts_keeps_only_questions_that_reach_the_model(settings: Settings) -> None:
    items = [
        EvalItem("u1", "Who won the 1998 football world cup?", False, [], []),
        EvalItem("l1", "What is a foundation model?", True, [], []),  # a lookup: no model
        EvalItem("a1", "How is a foundation model trained?", True, [], []),
        EvalItem("a2", "Why are base models released?", True, [], []),
        EvalItem("a3", "How are base models adapted to a task?", True, [], []),
    ]
    chosen = bench.pick_prompts(settings, FakeEmbedder(), lambda t: len(t.split()), items, 2)
    assert [item.id for item, _ in chosen] == ["a1", "a2"]  # unanswerable skipped, n respected
    for item, messages in chosen:
        assert messages[-1]["role"] == "user"
        assert item.question in messages[-1]["content"]  # the exact prompt the pipeline built
        assert "[1]" in messages[-1]["content"]  # with numbered passages


def test_run_stream_times_the_first_piece() -> None:
    def slow() -> Any:
        import time

        time.sleep(0.05)
        yield "a"
        time.sleep(0.05)
        yield "b"

    ttft, total, text = bench.run_stream(slow())
    assert text == "ab"
    assert 0.04 <= ttft < total
    assert math.isclose(total, 0.1, abs_tol=0.08)


# ------------------------------------------------------------------------ real models
def _smoke_settings(tmp_path: Path, corpus_dir: Path) -> Settings:
    """tmp caches; the repo's converted model is shared read-only when it is complete, so the
    smoke run does not spend 30 s converting (nothing is ever written there)."""
    from chatbot import generate

    cache = tmp_path / "cache"
    cache.mkdir()
    real = Settings(_env_file=None).model_cache_dir  # type: ignore[call-arg]
    complete = [
        d
        for d in (real.iterdir() if real.is_dir() else [])
        if d.is_dir() and generate._cache_complete(d) and (d / generate.BLOCKS_FILE).exists()
    ]
    if complete and (real / "gguf-hashes.json").exists():
        (cache / "models").mkdir()
        shutil.copy(real / "gguf-hashes.json", cache / "models" / "gguf-hashes.json")
        for d in complete:
            (cache / "models" / d.name).symlink_to(d, target_is_directory=True)
    return Settings(
        corpus_dir=corpus_dir,
        index_dir=tmp_path / "index",
        cache_dir=cache,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.mark.slow
def test_quick_bench_writes_every_key(tmp_path: Path, corpus_dir: Path) -> None:
    """Quick mode, no llama.cpp, one question: every required figure is there, and null only
    where --no-reference skips it (and in the load block, which needs a load-test file)."""
    out = tmp_path / "out"
    results = bench.run_bench(
        _smoke_settings(tmp_path, corpus_dir), out, reference=False, n_questions=1, quick=True
    )
    saved = json.loads((out / "results.json").read_text())
    assert saved["index"]["chunks"] == results["index"]["chunks"]
    assert (out / "results.md").read_text().startswith("# glossary-chat benchmark")
    assert (out / "latency.png").read_bytes()[:4] == b"\x89PNG"

    skipped = {
        "reference.llama_cpp_decode_tok_s",  # reference=False
        "reference.llama_cpp_ttft_p50_s",
        "reference.decode_ratio",
        "reference.ttft_ratio",
    }
    required = {
        "index": [
            "full_build_s",
            "noop_rebuild_s",
            "one_file_rebuild_s",
            "chunks",
            "embed_chunks_per_s",
            "embed_batch_size",
        ],
        "retrieval": ["p50_ms", "p95_ms", "stages", "scaling"],
        "generation": [
            "cold_start_s",
            "warm_load_s",
            "prompt_tokens",
            "ttft_p50_s",
            "ttft_p95_s",
            "decode_tok_s",
            "e2e_p50_s",
            "e2e_p95_s",
            "peak_rss_mb",
            "preset_cached_ms",
        ],
        "reference": [
            "llama_cpp_decode_tok_s",
            "llama_cpp_ttft_p50_s",
            "decode_ratio",
            "ttft_ratio",
            "numpy_search_ms",
            "faiss_search_ms",
        ],
        "load": ["clients", "requests", "errors", "p50_s", "p95_s"],
        "machine": ["cpu", "cores", "ram_gb", "python", "versions", "threads"],
    }
    for block, keys in required.items():
        for key in keys:
            assert key in saved[block], f"{block}.{key} missing"
            value = saved[block][key]
            if f"{block}.{key}" in skipped or block == "load":  # load: only if a file exists
                continue
            assert value is not None, f"{block}.{key} is null"
    for name in ("embed_ms", "dense_ms", "bm25_ms", "fusion_ms"):
        assert saved["retrieval"]["stages"][name]["p50"] is not None
        assert saved["retrieval"]["stages"][name]["p95"] is not None
    sizes = [r["vectors"] for r in saved["retrieval"]["scaling"]]
    assert sizes == list(bench.QUICK_SCALING_SIZES)
    for row in saved["retrieval"]["scaling"]:
        for key in ("flat_ms", "approx_ms", "approx_recall_at_10"):
            assert row[key] is not None
    for v in ("torch", "transformers", "faiss-cpu"):
        assert saved["machine"]["versions"][v]
    assert saved["generation"]["questions"] == 1
    assert saved["generation"]["decode_tok_s"] > 0
    assert saved["index"]["noop_rebuild_s"] < saved["index"]["full_build_s"]
    assert {t["target"] for t in saved["targets"]} == set(bench.TARGETS)
