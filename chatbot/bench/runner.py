"""``chatbot bench``: every stage in turn, then results.json, results.md and latency.png."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot.bench.common import say
from chatbot.bench.generation import (
    BACKENDS,
    LLAMA_CPP,
    GenerationRun,
    apply_ratios,
    bench_backends,
    eval_questions,
    generation_block,
)
from chatbot.bench.index_stage import bench_index
from chatbot.bench.llama import (
    SKIPPED,
    kv_reset,
    llama_cpp_status,
    one_thread_decode,
    reference_block,
)
from chatbot.bench.loadtest import load_candidates, read_load
from chatbot.bench.machine import loadavg, machine_info
from chatbot.bench.plot import plot_latency
from chatbot.bench.report import render_markdown
from chatbot.bench.retrieval import bench_retrieval, search_comparison
from chatbot.bench.scaling import QUICK_SCALING_SIZES, SCALING_SIZES, bench_scaling
from chatbot.bench.targets import check_targets
from chatbot.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    reference: bool = True  # measure llama.cpp (when it is installed)
    n_questions: int = 10
    quick: bool = False

    @property
    def rounds(self) -> int:
        return 2 if self.quick else 3

    @property
    def warm_runs(self) -> int:
        return 1 if self.quick else 3

    @property
    def scaling_sizes(self) -> tuple[int, ...]:
        return QUICK_SCALING_SIZES if self.quick else SCALING_SIZES

    @property
    def scaling_queries(self) -> int:
        return 50 if self.quick else 100


class Sections:
    """Runs the stages one by one, recording the seconds and load average of each."""

    def __init__(self, bench: dict[str, Any]) -> None:
        self.bench = bench
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        say(f"{name} ...")
        t0 = time.perf_counter()
        load0 = loadavg()
        value = fn()
        self.seconds[name] = round(time.perf_counter() - t0, 1)
        self.bench.setdefault("loadavg", {})[name] = [load0, loadavg()]
        return value


def _generation(
    results: dict[str, Any], sections: Sections, run: GenerationRun, opts: Options
) -> None:
    """Every backend (and llama.cpp, when asked for and installed) on the same prompts."""
    status = llama_cpp_status() if opts.reference else SKIPPED
    names = [*BACKENDS, LLAMA_CPP] if status is None else list(BACKENDS)
    run.resets[LLAMA_CPP] = kv_reset
    backends = sections.run("generation", lambda: bench_backends(run, names))
    one_thread = None
    if status is None:
        one_thread = sections.run("llama.cpp 1 thread", lambda: one_thread_decode(run))
    else:
        backends[LLAMA_CPP] = {"status": status}
        run.notes.append(f"llama.cpp {status}: no ratios against it in this run")
    apply_ratios(backends)
    results["generation"] = generation_block(backends)
    results["reference"] = reference_block(backends, one_thread)
    if results["generation"]["primary"] is None:
        run.notes.append("no generation backend could be measured: see generation.backends")


def _stages(
    results: dict[str, Any], settings: Settings, work: Path, out: Path, opts: Options
) -> list[str]:
    """Every stage into ``results``; returns the notes they leave."""
    from chatbot.embedding import create_embedder

    sections = Sections(results["bench"])
    embedder = create_embedder(settings)
    results["index"], s = sections.run(
        "index", lambda: bench_index(settings, work, embedder, opts.rounds)
    )
    questions = [item.question for item in eval_questions()]
    results["retrieval"], pipe = sections.run(
        "retrieval", lambda: bench_retrieval(s, embedder, questions, opts.rounds)
    )
    results["retrieval"]["scaling"] = sections.run(
        "scaling", lambda: bench_scaling(opts.scaling_sizes, opts.scaling_queries)
    )
    run = GenerationRun(settings, s, work, embedder, opts.n_questions, opts.warm_runs)
    _generation(results, sections, run, opts)
    results["reference"].update(
        sections.run("numpy-vs-faiss", lambda: search_comparison(pipe.index, embedder, questions))
    )
    results["load"], load_note = read_load(load_candidates(out))
    results["bench"]["sections_s"] = sections.seconds
    return run.notes + ([load_note] if load_note else [])


def standing_notes(results: dict[str, Any], quick: bool) -> list[str]:
    """What every reader of the figures should know."""
    notes = [
        "Backends are measured one after another through create_generator on the same "
        "prompts; the top-level generation figures are the primary backend's (the first of "
        + ", ".join(BACKENDS)
        + " that loads). Nothing is installed while the benchmark runs.",
        "Time to first verified sentence: from the question to the first text the user sees "
        "(a verified partial answer, or the final answer when none came before).",
        "Random unit vectors have no cluster structure, the worst case for approximate search: "
        "recall on real embeddings is much higher at the same settings. Flat search time is "
        "the same for any data.",
        "peak_rss_mb is the peak of a fresh process that loads index, embedder and model and "
        "answers one question (no web UI).",
        "cold_start_s is a single run of the primary backend with an empty model cache.",
    ]
    if quick:
        notes.append("quick mode: scaling only to 10^4 vectors, one warm start, two rounds")
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


def run_bench(
    settings: Settings,
    out: Path,
    reference: bool = True,
    n_questions: int = 10,
    quick: bool = False,
) -> dict[str, Any]:
    """Run every stage, write results.json / results.md / latency.png into ``out``."""
    opts = Options(reference, n_questions, quick)
    started = time.perf_counter()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "bench": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "quick": quick,
            "reference": reference,
            "n_questions": n_questions,
            "loadavg_start": loadavg(),
        },
        "machine": machine_info(settings),
    }
    work = Path(tempfile.mkdtemp(prefix="chatbot-bench-"))
    try:
        notes = _stages(results, settings, work, out, opts)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["notes"] = notes + standing_notes(results, quick)
    results["bench"]["loadavg_end"] = loadavg()
    results["bench"]["duration_s"] = round(time.perf_counter() - started, 1)
    results["targets"] = check_targets(results)
    write_outputs(results, out)
    return results


def write_outputs(results: dict[str, Any], out: Path) -> str:
    """results.json, results.md (also printed) and latency.png into ``out``."""
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
