"""chatbot.bench: statistics, timing on an injected clock, the index/retrieval/scaling stages on
the fake embedder, the generation stage on fake backends and a fake child process, the llama.cpp
reference without llama.cpp, the targets, the Jinja2 report and the plot; and (slow) one quick
end-to-end run on the real models."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chatbot.bench import (
    child,
    common,
    generation,
    index_stage,
    llama,
    loadtest,
    plot,
    report,
    retrieval,
    runner,
    scaling,
    stats,
    targets,
)
from chatbot.bench.generation import LLAMA_CPP, GenerationRun
from chatbot.config import PROJECT_ROOT, Settings
from chatbot.evaluate import EvalItem
from tests.fakes import FakeEmbedder, FakeGenerator


def ticking(step: float = 0.1) -> Callable[[], float]:
    """A clock that moves ``step`` seconds on every reading: timings without sleeping."""
    ticks = itertools.count()
    return lambda: next(ticks) * step


# ------------------------------------------------------------------------ statistics
@pytest.mark.parametrize(
    "values",
    [[3.0], [1.0, 2.0], [5.0, 1.0, 4.0, 2.0, 3.0], [0.1 * i**1.5 for i in range(37)]],
)
@pytest.mark.parametrize("q", [0, 5, 50, 90, 95, 100])
def test_percentile_matches_numpy(values: list[float], q: float) -> None:
    assert stats.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_of_nothing_is_none() -> None:
    assert stats.percentile([], 50) is None
    assert stats.median([]) is None


def test_percentile_does_not_reorder_the_input() -> None:
    values = [3.0, 1.0, 2.0]
    assert stats.median(values) == 2.0
    assert values == [3.0, 1.0, 2.0]


def test_summary_fields_and_rounding() -> None:
    s = stats.summary([0.123456, 0.2, 0.3, 10.0], digits=2)
    assert s == {
        "p50": 0.25,
        "p95": pytest.approx(8.545, abs=0.01),
        "min": 0.12,
        "max": 10.0,
        "n": 4,
    }
    assert stats.summary([]) == {"p50": None, "p95": None, "min": None, "max": None, "n": 0}


def test_decode_rate_excludes_the_first_token() -> None:
    # 11 tokens: the first arrives at 1 s (prefill), the other 10 in the next 2 s
    assert stats.decode_rate(11, 1.0, 3.0) == pytest.approx(5.0)
    assert stats.decode_rate(1, 1.0, 3.0) is None
    assert stats.decode_rate(5, 2.0, 2.0) is None


def test_ratio() -> None:
    assert stats.ratio(30.0, 60.0) == 0.5
    assert stats.ratio(None, 60.0) is None
    assert stats.ratio(30.0, 0.0) is None
    assert stats.ratio(30.0, None) is None


def test_recall_at_10_on_a_tiny_case() -> None:
    exact = np.array([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]])
    approx = np.array(
        [
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],  # all 10 found
            [19, 18, 17, 16, 15, 99, 98, -1, -1, -1],  # 5 found, in another order; -1 = none
        ]
    )
    assert stats.recall_at_k(approx, exact, 10) == pytest.approx(15 / 20)
    assert stats.recall_at_k(exact, exact, 10) == 1.0
    assert stats.recall_at_k(approx[:, :3], exact[:, :3], 3) == pytest.approx(3 / 6)


def test_missing_ids_never_count_as_found() -> None:
    exact = np.array([[-1, -1, 3]])
    assert stats.recall_at_k(np.array([[-1, -1, 3]]), exact, 3) == pytest.approx(1 / 3)


# ------------------------------------------------------------------------ timing on a clock
def test_run_stream_times_the_first_piece() -> None:
    readings = iter([10.0, 10.5, 11.25])  # start, first piece, end of the stream
    ttft, total, text = common.run_stream(iter(["a", "b", "c"]), clock=lambda: next(readings))
    assert (ttft, total, text) == (0.5, 1.25, "abc")


def test_run_stream_of_an_empty_stream_has_no_first_piece() -> None:
    ttft, total, text = common.run_stream(iter(()), clock=ticking(0.25))
    assert (ttft, total, text) == (0.25, 0.25, "")


def test_timed_reads_the_clock_around_the_call() -> None:
    seconds, value = common.timed(lambda: 42, clock=ticking(0.5))
    assert (seconds, value) == (0.5, 42)


# ------------------------------------------------------------------------ search and scaling
def test_numpy_top_k_is_the_exact_ranking() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((200, 16)).astype(np.float32)
    query = rng.standard_normal(16).astype(np.float32)
    expected = np.argsort(-(vectors @ query))[:10]
    assert retrieval.numpy_top_k(vectors, query, 10).tolist() == expected.tolist()
    assert len(retrieval.numpy_top_k(vectors[:4], query, 10)) == 4  # k larger than the index


def test_unit_vectors_are_unit_length_float32() -> None:
    v = common.unit_vectors(np.random.default_rng(0), 250, dim=8)
    assert v.dtype == np.float32 and v.shape == (250, 8)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_numpy_vs_faiss_measures_both() -> None:
    rng = np.random.default_rng(0)
    out = retrieval.numpy_vs_faiss(common.unit_vectors(rng, 300), common.unit_vectors(rng, 5))
    assert set(out) == {"numpy_ms", "faiss_ms"}
    assert all(v > 0 for v in out.values())


def test_scaling_rows_for_hnsw_and_ivf() -> None:
    rows = scaling.bench_scaling([500, 3_000], n_queries=8, hnsw_max=1_000)
    assert [r["vectors"] for r in rows] == [500, 3_000]
    assert [r["approx_kind"] for r in rows] == ["hnsw", "ivf"]
    for r in rows:
        assert r["flat_ms"] > 0 and r["approx_ms"] > 0 and r["flat_ms_1thread"] > 0
        assert 0.0 <= r["approx_recall_at_10"] <= 1.0
        assert 0.0 <= r["approx_wider"]["recall_at_10"] <= 1.0
    assert rows[0]["approx_recall_at_10"] > 0.5  # HNSW on 500 vectors is nearly exact
    assert rows[1]["approx_params"]["nlist"] >= 8
    assert "efSearch" in rows[0]["approx_wider"] and "nprobe" in rows[1]["approx_wider"]


# ------------------------------------------------------------------------ results for the report
def _measured(name: str, **figures: Any) -> dict[str, Any]:
    base = {
        "status": "measured",
        "backend": name,
        "ttft_p50_s": 0.6,
        "ttft_p95_s": 0.9,
        "decode_tok_s": 48.0,
        "first_sentence_p50_s": 0.7,
        "first_sentence_p95_s": 1.1,
        "e2e_p50_s": 2.0,
        "e2e_p95_s": 3.0,
        "warm_start_s": 4.5,
        "peak_rss_mb": 900.0,
        "cold_start_s": None,
        "answer_modes": {"generated": 2, "extractive": 1},
    }
    return base | figures


def _results() -> dict[str, Any]:
    backends = {
        "onnx-genai": _measured("onnx-genai", decode_tok_s=150.0, decode_ratio=1.5),
        "transformers": _measured("transformers", decode_tok_s=48.0, decode_ratio=0.48),
        LLAMA_CPP: _measured(LLAMA_CPP, decode_tok_s=100.0, ttft_p50_s=0.9),
    }
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
        "generation": generation.generation_block(backends)
        | {"questions": 10, "max_new_tokens": 96, "preset_cached_ms": 0.2, "warm_start_s": 7.5},
        "reference": {
            **llama.reference_block(backends, one_thread=70.0),
            "numpy_search_ms": 0.0066,
            "faiss_search_ms": 0.0057,
        },
        "load": {"clients": 8, "requests": 80, "errors": 0, "p50_s": 1.5, "p95_s": 4.0},
        "notes": ["a note that must be shown"],
    }


# ------------------------------------------------------------------------ targets
def test_check_targets_compares_each_value() -> None:
    rows = {r["target"]: r for r in targets.check_targets(_results())}
    assert set(rows) == set(targets.TARGETS)
    assert rows["onnx-genai decode vs llama.cpp"]["value"] == 1.5
    assert rows["onnx-genai decode vs llama.cpp"]["met"] is True  # 1.5 >= 1.2
    assert rows["time to first verified sentence, p50 (s)"]["met"] is True  # 0.7 < 0.8
    assert rows["warm start to ready (s)"]["met"] is False  # 7.5 >= 5
    assert rows["no-op reindex (s)"]["value"] == 0.002
    empty = targets.check_targets({})
    assert all(r["met"] is None and r["value"] is None for r in empty)


def test_a_target_is_met_only_by_a_number() -> None:
    assert targets.meets(0.5, "<", 1.0) is True
    assert targets.meets(1.2, ">=", 1.2) is True
    assert targets.meets(None, "<", 1.0) is None
    assert targets.meets(True, "<", 1.0) is None  # a flag is not a measurement
    assert targets.meets("fast", ">=", 1.0) is None


def test_lookup_follows_dotted_paths() -> None:
    r = _results()
    assert targets.lookup(r, "retrieval.stages.embed_ms.p50") == 11.0
    assert targets.lookup(r, "generation.backends.onnx-genai.decode_ratio") == 1.5
    assert targets.lookup(r, "retrieval.nope.p50") is None
    assert targets.lookup(r, "index.chunks.deeper") is None


# ------------------------------------------------------------------------ the Markdown report
def _tables(text: str) -> list[list[str]]:
    """Each Markdown table of the text as its lines; every row has its header's cell count."""
    lines, found = text.splitlines(), []
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            cells = lines[i - 1].count("|")
            assert line.count("|") == cells, line
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert lines[j].count("|") == cells, lines[j]
                j += 1
            found.append(lines[i - 1 : j])
    return found


SECTIONS = ("## Targets", "## Index", "## Retrieval", "## Generation", "## Load test", "## Notes")


def test_report_renders_every_section_of_the_results() -> None:
    text = report.render_markdown(_results())
    assert text.startswith("# glossary-chat benchmark")
    assert [h for h in SECTIONS if h in text] == list(SECTIONS)
    assert [text.index(h) for h in SECTIONS] == sorted(text.index(h) for h in SECTIONS)
    assert len(_tables(text)) == 6  # targets, index, retrieval, scaling, generation, load
    assert "Test CPU, 2 cores, 8.0 GB RAM" in text
    assert "| 2.5 | 0.002 | 0.2 | 42 | 50.4 | 32 |" in text  # index
    assert "| embed_ms | 11.0 | 18.0 |" in text  # retrieval stages
    assert "| 1,000 | 0.03 | 0.05 | hnsw | 0.99 | 0.05 | 0.02 |" in text  # scaling
    assert "| metric | onnx-genai | transformers | llama.cpp |" in text
    assert "| decode tokens/s | 150 | 48.0 | 100 |" in text
    assert "| decode vs llama.cpp (x) | 1.5 | 0.48 | – |" in text
    assert "| answer modes | generated 2, extractive 1 |" in text
    assert "llama.cpp on 1 thread: 70.0 tokens/s (onnx-genai decodes 2.14x that)" in text
    assert "numpy 0.0066 vs FAISS 0.0057" in text
    assert "| 8 | 80 | 0 | 1.5 | 4.0 |" in text  # load test
    assert "- a note that must be shown" in text


def test_report_targets_table() -> None:
    text = report.render_markdown(_results())
    table = next(t for t in _tables(text) if t[0] == "| target | measured | limit | met |")
    assert len(table) == 2 + len(targets.TARGETS)
    assert "| onnx-genai decode vs llama.cpp | 1.5 | >= 1.2 | yes |" in table
    assert "| time to first verified sentence, p50 (s) | 0.7 | < 0.8 | yes |" in table
    assert "| warm start to ready (s) | 7.5 | < 5.0 | no |" in table
    assert "| peak RSS (MB) | 900 | < 1,536 | yes |" in table


def test_missing_values_are_dashes_and_backends_that_did_not_run_are_na() -> None:
    results = _results()
    results["index"]["chunks"] = None
    del results["index"]["embed_batch_size"]
    results["generation"]["backends"]["onnx-genai"] = {"status": "not available in this build"}
    results["generation"]["backends"][LLAMA_CPP] = {"status": llama.NOT_INSTALLED}
    results.pop("targets", None)
    text = report.render_markdown(results)
    assert "| 2.5 | 0.002 | 0.2 | – | 50.4 | – |" in text  # None and absent: a dash
    assert "| cold start to first answer s | n/a | – | n/a |" in text
    assert "- onnx-genai: not available in this build" in text
    assert "- llama.cpp: not installed (pip install -e '.[llama-cpp]')" in text
    assert "| onnx-genai decode vs llama.cpp | – | >= 1.2 | – |" in text  # not measured
    _tables(text)


def test_report_of_an_empty_run_does_not_fail() -> None:
    text = report.render_markdown({})
    assert [h for h in SECTIONS if h in text] == list(SECTIONS[:-1])  # no notes: no heading
    assert "–" in text and "n/a" in text
    assert "- transformers: not measured" in text
    assert len(_tables(text)) == 5  # no scaling table without scaling rows
    assert "| no-op reindex (s) | – | < 0.5 | – |" in text


def test_report_cells_never_break_a_table() -> None:
    assert report.fmt("a | b\nc") == "a \\| b c"
    assert report.fmt(None) == "–" and report.fmt(True) == "yes" and report.fmt(1536.0) == "1,536"
    assert report.fmt(0.001234) == "0.00123" and report.fmt(12.345) == "12.3"


def test_the_template_ships_with_the_package() -> None:
    from importlib import resources

    template = resources.files("chatbot.bench") / "templates" / report.TEMPLATE
    assert "## Targets" in template.read_text(encoding="utf-8")


# ------------------------------------------------------------------------ plot and outputs
def test_latency_plot_is_a_png(tmp_path: Path) -> None:
    path = plot.plot_latency(_results(), tmp_path / "plot" / "latency.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.plot_latency({}, tmp_path / "none.png") is None  # nothing measured


def test_latency_bars_cover_every_measured_backend() -> None:
    labels = [bar[0] for bar, _ in plot.latency_bars(_results())]
    for name in ("onnx-genai", "transformers", "llama.cpp"):
        assert f"{name}: first verified sentence" in labels
        assert f"{name}: one decoded token" in labels
    assert "retrieval: total" in labels and "preset from cache" in labels


def test_write_outputs_writes_all_three(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner.write_outputs(_results(), tmp_path)
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
    load, note = loadtest.read_load([first, second])
    assert note is None
    assert load["clients"] == 4 and load["errors"] == 1 and load["p95_s"] == 2.0
    assert load["extra"] == "kept" and load["source"] == str(second)


def test_missing_or_broken_load_results_give_nulls_and_a_note(tmp_path: Path) -> None:
    broken = tmp_path / "load.json"
    broken.write_text("{not json")
    load, note = loadtest.read_load([broken, tmp_path / "absent.json"])
    assert {k: load[k] for k in loadtest.KEYS} == dict.fromkeys(loadtest.KEYS)
    assert note is not None and "load" in note


def test_load_candidates_start_with_the_output_folder(tmp_path: Path) -> None:
    paths = loadtest.load_candidates(tmp_path)
    assert paths[0] == tmp_path / "load.json"
    assert PROJECT_ROOT / "test-artifacts" / "load.json" in paths


# ------------------------------------------------------------------------ the child process
def test_child_events_count_from_the_spawn() -> None:
    stdout = "\n".join(
        [
            "some library chatter",
            json.dumps({"event": "ready", "at": 103.5, "import_s": 1.0}),
            json.dumps({"event": "answered", "at": 105.25, "peak_rss_mb": 512.0}),
        ]
    )
    events = child.parse_events(stdout, t0=100.0)
    assert events["ready"]["wall_s"] == 3.5 and events["ready"]["import_s"] == 1.0
    assert events["answered"]["wall_s"] == 5.25 and "at" not in events["answered"]


def test_child_environment_finds_the_project() -> None:
    env = child.child_env()
    assert str(PROJECT_ROOT) in env["PYTHONPATH"].split(":")
    assert env["HF_HUB_OFFLINE"]


# ------------------------------------------------------------------------ index and retrieval
def test_bench_index_restores_the_corpus(settings: Settings, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    before = {p.name: p.read_bytes() for p in settings.corpus_dir.glob("*.md")}
    result, s = index_stage.bench_index(settings, work, FakeEmbedder(), rounds=2)
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
    _, s = index_stage.bench_index(settings, work, embedder, rounds=1)
    questions = ["What is a base model?", "What is a foundation model?"]
    result, pipe = retrieval.bench_retrieval(s, embedder, questions, rounds=2)
    assert result["queries"] == 4
    assert set(result["stages"]) == set(retrieval.STAGES)
    assert all(v["p50"] is not None for v in result["stages"].values())
    assert result["p50_ms"] <= result["p95_ms"]
    assert len(pipe.index) > 0
    compared = retrieval.search_comparison(pipe.index, embedder, questions)
    assert compared["real_index_vectors"] == len(pipe.index)
    assert compared["numpy_search_ms"] > 0 and compared["faiss_search_ms_1e5"] > 0


def test_uncached_embedder_really_embeds_every_query() -> None:
    inner = FakeEmbedder()
    wrapped = common.Uncached(inner)
    from chatbot.embedding import encode_query

    encode_query(wrapped, "same question")
    encode_query(wrapped, "same question")
    assert inner.encoded == 2
    assert wrapped.fingerprint() == inner.fingerprint() and wrapped.dim == inner.dim


# ------------------------------------------------------------------------ generation on fakes
ITEMS = [
    EvalItem("u1", "Who won the 1998 football world cup?", False, [], []),
    EvalItem("l1", "What is a foundation model?", True, [], []),  # a lookup: no model
    EvalItem("a1", "How is a foundation model trained?", True, [], []),
    EvalItem("a2", "Why are base models released?", True, [], []),
    EvalItem("a3", "How are base models adapted to a task?", True, [], []),
]
REPLY = "A foundation model is trained on broad data at scale [1]. It is adapted later [1]."


def test_pick_prompts_keeps_only_questions_that_reach_the_model(settings: Settings) -> None:
    chosen = generation.pick_prompts(settings, FakeEmbedder(), lambda t: len(t.split()), ITEMS, 2)
    assert [item.id for item, _ in chosen] == ["a1", "a2"]  # unanswerable skipped, n respected
    for item, messages in chosen:
        assert messages[-1]["role"] == "user"
        assert item.question in messages[-1]["content"]  # the exact prompt the pipeline built
        assert "[1]" in messages[-1]["content"]  # with numbered passages


def test_backend_settings_are_validated() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    built = generation.backend_settings(s, "transformers")
    assert isinstance(built, Settings) and built.backend == "transformers"
    refused = generation.backend_settings(s, "no-such-backend")
    assert isinstance(refused, str) and refused.startswith("not available in this build")


class FakeChild:
    """Stands in for the fresh process: fixed events, and which settings it was started with."""

    def __init__(self) -> None:
        self.started: list[Settings] = []

    def __call__(self, s: Settings, question: str) -> dict[str, Any]:
        self.started.append(s)
        ready = {"import_s": 1.0, "index_s": 0.1, "embedder_s": 0.5, "generator_s": 0.4}
        return {
            "ready": {"wall_s": 2.5, "generator_load_s": 0.4, **ready},
            "answered": {"wall_s": 3.0, "peak_rss_mb": 700.0 + len(self.started)},
        }


def _run(settings: Settings, tmp_path: Path, factory: Callable[[Settings], Any]) -> GenerationRun:
    return GenerationRun(
        settings,
        settings,
        tmp_path,
        FakeEmbedder(),
        n_questions=2,
        warm_runs=2,
        items=ITEMS,
        factory=factory,
        spawn=FakeChild(),
        clock=ticking(0.05),
    )


def test_generation_measures_each_backend_through_create_generator(
    settings: Settings, tmp_path: Path
) -> None:
    built: list[str] = []

    def factory(gs: Settings) -> Any:
        built.append(gs.backend)
        if gs.backend == LLAMA_CPP:
            raise ImportError("No module named 'llama_cpp'")
        return FakeGenerator(REPLY)

    run = _run(settings, tmp_path, factory)
    backends = generation.bench_backends(run, [*generation.BACKENDS, LLAMA_CPP])
    accepted = isinstance(generation.backend_settings(settings, "onnx-genai"), Settings)
    if accepted:  # this build has the onnx-genai backend: it is the primary one
        assert backends["onnx-genai"]["status"] == "measured"
    else:  # the settings refuse it: reported, and skipped without building anything
        assert backends["onnx-genai"]["status"].startswith("not available in this build")
        assert "onnx-genai" not in built
    assert backends[LLAMA_CPP]["status"].startswith("unavailable: ImportError")
    fig = backends["transformers"]
    assert fig["status"] == "measured" and fig["questions"] == 2 == len(run.prompts)
    assert [r["id"] for r in fig["rows"]] == ["a1", "a2"]
    for key in ("ttft_p50_s", "decode_tok_s", "first_sentence_p50_s", "e2e_p50_s"):
        assert fig[key] > 0, key
    assert fig["first_sentence_p50_s"] <= fig["e2e_p50_s"]
    assert fig["warm_start_s"] == 2.5 and fig["warm_runs"] == 2
    assert sum(fig["answer_modes"].values()) == 2
    primary = "onnx-genai" if accepted else "transformers"
    block = generation.generation_block(backends)
    assert block["primary"] == primary and block["backends"] is backends
    assert block["cold_start_s"] == 3.0 and block["preset_cached_ms"] is not None
    assert "rows" not in block
    assert isinstance(run.spawn, FakeChild)
    spawned = run.spawn.started
    cold = [s for s in spawned if "cold-cache" in str(s.cache_dir)]
    assert [s.backend for s in cold] == [primary]  # one cold start, the primary backend's
    assert len(spawned) == 2 * len([b for b in backends.values() if b["status"] == "measured"]) + 1


def test_one_failing_backend_keeps_the_others(settings: Settings, tmp_path: Path) -> None:
    class Broken(FakeGenerator):
        def stream(self, messages: list[dict[str, str]], max_new_tokens: int) -> Any:
            raise RuntimeError("decoder exploded")

    def factory(gs: Settings) -> Any:
        return Broken() if gs.backend == LLAMA_CPP else FakeGenerator(REPLY)

    run = _run(settings, tmp_path, factory)
    backends = generation.bench_backends(run, ["transformers", LLAMA_CPP])
    assert backends["transformers"]["status"] == "measured"
    assert backends[LLAMA_CPP]["status"] == "failed: RuntimeError: decoder exploded"


def test_ratios_are_against_llama_cpp_of_the_same_run() -> None:
    backends = {
        "onnx-genai": _measured("onnx-genai", decode_tok_s=120.0, ttft_p50_s=0.5),
        "transformers": {"status": "unavailable: no model"},
        LLAMA_CPP: _measured(LLAMA_CPP, decode_tok_s=100.0, ttft_p50_s=1.0),
    }
    generation.apply_ratios(backends)
    assert backends["onnx-genai"]["decode_ratio"] == 1.2
    assert backends["onnx-genai"]["ttft_ratio"] == 2.0  # starts twice as soon
    assert "decode_ratio" not in backends["transformers"]
    ref = llama.reference_block(backends, one_thread=60.0)
    assert ref["llama_cpp"] == "measured" and ref["compared"] == "onnx-genai"
    assert ref["decode_ratio"] == 1.2 and ref["decode_ratio_1thread"] == 2.0


# ------------------------------------------------------------------------ llama.cpp
def test_llama_cpp_missing_is_reported_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp raises ImportError
    assert llama.llama_cpp_status() == llama.NOT_INSTALLED


def test_without_llama_cpp_the_stage_says_how_to_install_it(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    results: dict[str, Any] = {"bench": {}}
    run = _run(settings, tmp_path, lambda gs: FakeGenerator(REPLY))
    runner._generation(results, runner.Sections(results["bench"]), run, runner.Options())
    assert results["generation"]["backends"][LLAMA_CPP] == {"status": llama.NOT_INSTALLED}
    assert results["reference"]["llama_cpp"] == llama.NOT_INSTALLED
    assert results["reference"]["decode_ratio"] is None
    assert any("pip install -e '.[llama-cpp]'" in note for note in run.notes)
    assert "- llama.cpp: not installed (pip install -e '.[llama-cpp]')" in report.render_markdown(
        results
    )


def test_no_reference_skips_llama_cpp(settings: Settings, tmp_path: Path) -> None:
    results: dict[str, Any] = {"bench": {}}
    run = _run(settings, tmp_path, lambda gs: FakeGenerator(REPLY))
    opts = runner.Options(reference=False)
    runner._generation(results, runner.Sections(results["bench"]), run, opts)
    assert results["reference"]["llama_cpp"] == llama.SKIPPED
    assert "generation" in results["bench"]["loadavg"]


def test_kv_reset_is_llama_cpps_own() -> None:
    class Llm:
        def __init__(self) -> None:
            self.resets = 0

        def reset(self) -> None:
            self.resets += 1

    class LlamaLike(FakeGenerator):
        llm = Llm()

    gen = LlamaLike()
    reset = llama.kv_reset(gen)
    assert reset is not None
    reset()
    assert gen.llm.resets == 1
    assert llama.kv_reset(FakeGenerator()) is None


def test_nothing_is_installed_at_run_time() -> None:
    """The benchmark never calls pip: a missing backend is reported, not installed."""
    package = Path(runner.__file__).parent
    for path in package.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert '"pip"' not in text and "'pip'" not in text, path


# ------------------------------------------------------------------------ real models
@pytest.mark.slow
def test_quick_bench_writes_every_key(tmp_path: Path, corpus_dir: Path) -> None:
    """Quick mode, no llama.cpp, one question: every required figure is there, and null only
    where --no-reference skips it (and in the load block, which needs a load-test file). The
    model cache is the test's own: the run converts the bundled model, the repo's is untouched."""
    out = tmp_path / "out"
    s = Settings(
        corpus_dir=corpus_dir,
        index_dir=tmp_path / "index",
        cache_dir=tmp_path / "cache",
        _env_file=None,  # type: ignore[call-arg]
    )
    results = runner.run_bench(s, out, reference=False, n_questions=1, quick=True)
    saved = json.loads((out / "results.json").read_text())
    assert saved["index"]["chunks"] == results["index"]["chunks"]
    assert (out / "results.md").read_text().startswith("# glossary-chat benchmark")
    assert (out / "latency.png").read_bytes()[:4] == b"\x89PNG"

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
            "primary",
            "cold_start_s",
            "warm_start_s",
            "warm_load_s",
            "prompt_tokens",
            "ttft_p50_s",
            "ttft_p95_s",
            "first_sentence_p50_s",
            "decode_tok_s",
            "e2e_p50_s",
            "e2e_p95_s",
            "peak_rss_mb",
            "preset_cached_ms",
        ],
        "reference": ["numpy_search_ms", "faiss_search_ms"],
        "machine": ["cpu", "cores", "ram_gb", "python", "versions", "threads"],
    }
    for block, keys in required.items():
        for key in keys:
            assert saved[block].get(key) is not None, f"{block}.{key} is missing or null"
    assert set(saved["load"]) >= set(loadtest.KEYS)  # values only with a load-test file
    assert saved["reference"]["llama_cpp"] == llama.SKIPPED
    assert saved["reference"]["decode_ratio"] is None
    for name in ("embed_ms", "dense_ms", "bm25_ms", "fusion_ms"):
        assert saved["retrieval"]["stages"][name]["p50"] is not None
        assert saved["retrieval"]["stages"][name]["p95"] is not None
    assert [r["vectors"] for r in saved["retrieval"]["scaling"]] == list(
        scaling.QUICK_SCALING_SIZES
    )
    for row in saved["retrieval"]["scaling"]:
        for key in ("flat_ms", "approx_ms", "approx_recall_at_10"):
            assert row[key] is not None
    for v in ("torch", "transformers", "faiss-cpu"):
        assert saved["machine"]["versions"][v]
    backends = saved["generation"]["backends"]
    assert set(backends) == {*generation.BACKENDS, LLAMA_CPP}
    assert backends["transformers"]["status"] == "measured"
    assert saved["generation"]["questions"] == 1
    assert saved["generation"]["decode_tok_s"] > 0
    assert saved["index"]["noop_rebuild_s"] < saved["index"]["full_build_s"]
    assert {t["target"] for t in saved["targets"]} == set(targets.TARGETS)
