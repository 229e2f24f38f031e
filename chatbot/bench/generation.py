"""Generation stage: every backend ``create_generator`` can build, on the same prompts.

Backends are driven only through ``Settings(backend=...)`` and ``create_generator``. A backend
this build's settings do not accept, or one that cannot be built here (its package missing, its
model not converted), is reported with the reason instead of figures. For each backend that loads:

- stream figures, on the exact prompts the pipeline builds for the first n answerable eval
  questions: time to first token, decode tokens/s after the first token;
- pipeline figures: the whole answer, and the time to the first verified sentence (the first text
  the user sees: a verified partial answer, or the final answer when none came before);
- warm start to ready, and peak memory, in fresh processes (``chatbot.bench.child``).

The primary backend, the first of ``BACKENDS`` that loads (the order the app prefers them in),
also gets a cold start and the preset-cache figures; its figures are copied to the top of the
block, where the targets read them.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from chatbot.answer import Answer
from chatbot.bench.child import run_child
from chatbot.bench.common import Clock, Message, Probe, Uncached, run_stream, say, timed
from chatbot.bench.stats import decode_rate, median, percentile, ratio, rounded
from chatbot.config import Settings
from chatbot.presets import cached_answer

log = logging.getLogger(__name__)
BACKENDS = ("onnx-genai", "transformers")  # preference order: the first that loads is primary
LLAMA_CPP = "llama-cpp"
Prompt = tuple[Any, list[Message]]
ResetHook = Callable[[Any], Callable[[], None] | None]


@dataclass
class GenerationRun:
    """What every backend is measured with; ``prompts`` are picked by the first that loads."""

    settings: Settings  # the user's: the real converted-model cache is read through them
    s: Settings  # the benchmark's: temporary corpus, index and caches
    work: Path
    embedder: Any
    n_questions: int
    warm_runs: int
    cold: bool = True
    notes: list[str] = field(default_factory=list)
    items: Sequence[Any] | None = None  # eval questions; None = the bundled eval set
    factory: Callable[[Settings], Any] | None = None  # None = chatbot.generate.create_generator
    spawn: Callable[[Settings, str], dict[str, Any]] = run_child
    resets: dict[str, ResetHook] = field(default_factory=dict)  # before each timed prompt
    clock: Clock = time.perf_counter
    prompts: list[Prompt] = field(default_factory=list)

    def build(self, gs: Settings) -> Any:
        if self.factory is not None:
            return self.factory(gs)
        from chatbot.generate import create_generator

        return create_generator(gs)


def eval_questions() -> list[Any]:
    from chatbot.evaluate import DEFAULT_EVAL_FILE, load_items

    return load_items(DEFAULT_EVAL_FILE)


def pick_prompts(
    s: Settings, embedder: Any, count: Callable[[str], int], items: Sequence[Any], n: int
) -> list[Prompt]:
    """The first n answerable eval questions that reach the model, with the exact prompt the
    pipeline builds for each (FAQ matches and refusals are answered without the model)."""
    from chatbot.pipeline import Pipeline

    probe = Probe(count)
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


def backend_settings(s: Settings, name: str) -> Settings | str:
    """The settings with ``backend=name``, validated; or why this build does not accept it."""
    try:
        return Settings.model_validate({**s.model_dump(), "backend": name})
    except ValidationError as exc:
        return f"not available in this build (backend={name!r}: {exc.errors()[0]['msg']})"


def link_model_cache(settings: Settings, cache_dir: Path) -> None:
    """Give the temporary cache folder the real converted-model cache (read, never rebuilt
    unless missing, exactly as the app would)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    settings.model_cache_dir.mkdir(parents=True, exist_ok=True)
    link = cache_dir / "models"
    if not link.exists():
        link.symlink_to(settings.model_cache_dir.resolve(), target_is_directory=True)


def load_generator(run: GenerationRun, gs: Settings) -> tuple[float, Any] | str:
    """(seconds, generator), or why it cannot be built here."""
    link_model_cache(run.settings, gs.cache_dir)
    try:
        load_s, gen = timed(partial(run.build, gs), run.clock)
    except Exception as exc:  # any backend's missing package or model: report, go on
        return f"unavailable: {type(exc).__name__}: {exc}"[:300]
    if gen is None:
        return "unavailable: create_generator built no model"
    return load_s, gen


def ensure_prompts(run: GenerationRun, gen: Any) -> None:
    if run.prompts:
        return
    items = run.items if run.items is not None else eval_questions()
    embedder = Uncached(run.embedder)
    run.prompts = pick_prompts(run.s, embedder, gen.count_tokens, items, run.n_questions)
    if not run.prompts:
        raise RuntimeError("no eval question reaches the model: nothing to time")
    if len(run.prompts) < run.n_questions:
        run.notes.append(
            f"only {len(run.prompts)} answerable eval questions reach the model (asked for "
            f"{run.n_questions}); the rest are answered from FAQ entries"
        )


def stream_figures(
    gen: Any,
    prompts: Sequence[Prompt],
    max_new: int,
    reset: Callable[[], None] | None = None,
    clock: Clock = time.perf_counter,
) -> dict[str, Any]:
    """The generator alone on each prompt: first token, decode rate, tokens."""
    if reset:
        reset()
    run_stream(gen.stream(prompts[0][1], 4), clock)  # warm up
    rows: list[dict[str, Any]] = []
    for item, messages in prompts:
        if reset:
            reset()
        ttft, total, text = run_stream(gen.stream(messages, max_new), clock)
        n = gen.count_tokens(text)
        rate = decode_rate(n, ttft, total)
        rows.append(
            {
                "id": item.id,
                "ttft_s": round(ttft, 4),
                "total_s": round(total, 4),
                "tokens": n,
                "decode_tok_s": rounded(rate, 2),
                "text": text,
            }
        )
    rates = [r["decode_tok_s"] for r in rows if r["decode_tok_s"]]
    ttfts = [r["ttft_s"] for r in rows]
    return {
        "ttft_p50_s": rounded(percentile(ttfts, 50)),
        "ttft_p95_s": rounded(percentile(ttfts, 95)),
        "decode_tok_s": rounded(median(rates), 2),
        "generator_total_p50_s": rounded(median([r["total_s"] for r in rows])),
        "answer_tokens_p50": median([r["tokens"] for r in rows]),
        "rows": rows,
    }


def timed_answer(pipe: Any, question: str, clock: Clock) -> tuple[float, float, Answer]:
    """(seconds to the first text shown, seconds to the final answer, the answer)."""
    t0 = clock()
    first: float | None = None
    final: Answer | None = None
    for event in pipe.stream(question):
        if isinstance(event, Answer):
            final = event
        if first is None and (event.answer if isinstance(event, Answer) else event.text):
            first = clock()
    end = clock()
    if final is None:
        raise RuntimeError(f"the pipeline gave no answer to {question!r}")
    return (first if first is not None else end) - t0, end - t0, final


def pipeline_figures(pipe: Any, prompts: Sequence[Prompt], clock: Clock) -> dict[str, Any]:
    """Each prompt's question through the whole pipeline, as the user gets it."""
    from chatbot.evaluate import facts_recalled

    shown, e2e, ttft, prompt_tokens = [], [], [], []
    modes: dict[str, int] = {}
    recalled = 0
    for item, _ in prompts:
        first, total, answer = timed_answer(pipe, item.question, clock)
        shown.append(first)
        e2e.append(total)
        modes[answer.mode] = modes.get(answer.mode, 0) + 1
        recalled += facts_recalled(item, answer.answer)
        if "ttft_s" in answer.timings:
            ttft.append(answer.timings["ttft_s"])
        if "prompt_tokens" in answer.timings:
            prompt_tokens.append(answer.timings["prompt_tokens"])
    return {
        "first_sentence_p50_s": rounded(percentile(shown, 50)),
        "first_sentence_p95_s": rounded(percentile(shown, 95)),
        "e2e_p50_s": rounded(percentile(e2e, 50)),
        "e2e_p95_s": rounded(percentile(e2e, 95)),
        "pipeline_ttft_p50_s": rounded(percentile(ttft, 50)),
        "prompt_tokens": median(prompt_tokens),
        "answer_modes": modes,
        "fact_recall": round(recalled / max(1, len(prompts)), 3),
    }


def preset_figures(pipe: Any, clock: Clock, rounds: int = 5) -> dict[str, Any]:
    """Preset answers from the answer cache (filled first, as the app does at start)."""
    presets = pipe.presets()[:5]
    for q in presets:
        cached_answer(pipe, q)
    cached = [
        timed(partial(cached_answer, pipe, q), clock)[0] * 1000
        for _ in range(rounds)
        for q in presets
    ]
    return {
        "preset_cached_ms": rounded(median(cached), 3),
        "preset_cached_p95_ms": rounded(percentile(cached, 95), 3),
    }


def warm_figures(warm: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians over warm starts in fresh processes (the child's ``ready``/``answered``)."""
    return {
        "warm_start_s": median([w["ready"]["wall_s"] for w in warm]),
        "warm_load_s": median([w["ready"]["generator_load_s"] for w in warm]),
        "warm_first_answer_s": median([w["answered"]["wall_s"] for w in warm]),
        "warm_breakdown_s": {
            k: median([w["ready"][k] for w in warm])
            for k in ("import_s", "index_s", "embedder_s", "generator_s")
        },
        "peak_rss_mb": max((w["answered"]["peak_rss_mb"] for w in warm), default=None),
        "warm_runs": len(warm),
    }


def start_figures(run: GenerationRun, gs: Settings, question: str, cold: bool) -> dict[str, Any]:
    say(f"generation: {gs.backend}: {run.warm_runs} warm start(s) in fresh processes")
    out = warm_figures([run.spawn(gs, question) for _ in range(run.warm_runs)])
    out.update(cold_start_s=None, cold_ready_s=None, cold_peak_rss_mb=None)
    if cold:
        say(f"generation: {gs.backend}: cold start (empty model cache)")
        cold_s = gs.model_copy(update={"cache_dir": run.work / f"cold-cache-{gs.backend}"})
        try:
            events = run.spawn(cold_s, question)
        except RuntimeError as exc:
            run.notes.append(f"{gs.backend} cold start failed: {exc}"[:500])
        else:
            out.update(
                cold_start_s=events["answered"]["wall_s"],
                cold_ready_s=events["ready"]["wall_s"],
                cold_peak_rss_mb=events["answered"]["peak_rss_mb"],
            )
    return out


def measure_backend(
    run: GenerationRun, gs: Settings, gen: Any, load_s: float, primary: bool
) -> dict[str, Any]:
    """Every figure of one loaded backend."""
    from chatbot.pipeline import Pipeline

    name = gs.backend
    hook = run.resets.get(name)
    say(f"generation: {name}: {len(run.prompts)} prompts")
    fig: dict[str, Any] = {
        "status": "measured",
        "backend": name,
        "generator": getattr(gen, "name", type(gen).__name__),
        "load_in_process_s": round(load_s, 3),
        "threads": gs.effective_threads(),
        "questions": len(run.prompts),
        "max_new_tokens": gs.max_new_tokens,
    }
    reset = hook(gen) if hook else None
    fig |= stream_figures(gen, run.prompts, gs.max_new_tokens, reset, run.clock)
    say(f"generation: {name}: pipeline end to end")
    pipe = Pipeline(gs, embedder=Uncached(run.embedder), generator_factory=lambda: gen)
    pipe.ensure_index()
    fig |= pipeline_figures(pipe, run.prompts, run.clock)
    fig |= preset_figures(pipe, run.clock) if primary else {"preset_cached_ms": None}
    fig |= start_figures(run, gs, run.prompts[0][0].question, primary and run.cold)
    return fig


def measure_one(run: GenerationRun, name: str, primary: bool) -> dict[str, Any]:
    """One backend's figures, or ``{"status": reason}`` when it cannot be measured here."""
    gs = backend_settings(run.s, name)
    if isinstance(gs, str):
        return {"status": gs}
    say(f"generation: loading {name}")
    loaded = load_generator(run, gs)
    if isinstance(loaded, str):
        return {"status": loaded}
    load_s, gen = loaded
    ensure_prompts(run, gen)
    try:
        return measure_backend(run, gs, gen, load_s, primary)
    except Exception as exc:  # one backend failing must not lose the others' figures
        log.exception("benchmark of backend %s failed", name)
        return {"status": f"failed: {type(exc).__name__}: {exc}"[:300]}
    finally:
        del gen
        gc.collect()


def bench_backends(run: GenerationRun, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each backend in turn (one model in memory at a time)."""
    backends: dict[str, dict[str, Any]] = {}
    primary: str | None = None
    for name in names:
        candidate = primary is None and name != LLAMA_CPP
        backends[name] = measure_one(run, name, candidate)
        if candidate and backends[name]["status"] == "measured":
            primary = name
    return backends


def apply_ratios(backends: dict[str, dict[str, Any]]) -> None:
    """Each backend against llama.cpp measured in the same run: decode speed (x faster) and
    time to first token (llama.cpp's over ours: above 1 means ours starts sooner)."""
    llama = backends.get(LLAMA_CPP) or {}
    for name, fig in backends.items():
        if name == LLAMA_CPP or fig.get("status") != "measured":
            continue
        fig["decode_ratio"] = ratio(fig.get("decode_tok_s"), llama.get("decode_tok_s"))
        fig["ttft_ratio"] = ratio(llama.get("ttft_p50_s"), fig.get("ttft_p50_s"))


def primary_backend(backends: dict[str, dict[str, Any]]) -> str | None:
    return next((n for n in BACKENDS if (backends.get(n) or {}).get("status") == "measured"), None)


def generation_block(backends: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``results["generation"]``: the primary backend's figures on top, every backend below."""
    primary = primary_backend(backends)
    block: dict[str, Any] = {"primary": primary, "backend": primary}
    if primary is not None:
        block |= {k: v for k, v in backends[primary].items() if k not in ("rows", "status")}
    block["backends"] = backends
    return block
