"""The llama.cpp reference: llama-cpp-python on the same GGUF, the same prompts and settings.

It is measured as one more backend (``backend="llama-cpp"`` through ``create_generator``) when
``llama_cpp`` imports; nothing is installed while the benchmark runs. Without it the JSON and the
report say ``not installed (pip install -e '.[llama-cpp]')`` (``make bench`` tries to install the
extra before it runs). Two details keep the comparison fair:

- llama-cpp-python keeps the previous prompt's KV cache and reuses the shared prefix of the next
  one, which the other backends do not do: the cache is reset before every timed prompt (the
  pipeline figures keep the reuse, as a user would get it);
- a second, shorter pass on one thread shows how much of llama.cpp's speed is its second core.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from chatbot.bench.generation import (
    LLAMA_CPP,
    GenerationRun,
    backend_settings,
    load_generator,
    primary_backend,
    stream_figures,
)
from chatbot.bench.stats import ratio

NOT_INSTALLED = "not installed (pip install -e '.[llama-cpp]')"
SKIPPED = "skipped (--no-reference)"
ONE_THREAD_PROMPTS = 5


def llama_cpp_status() -> str | None:
    """None when llama_cpp imports; otherwise why the llama.cpp stage cannot run."""
    try:
        importlib.import_module("llama_cpp")
    except ImportError:
        return NOT_INSTALLED
    except Exception as exc:  # a wheel built for another CPU or libc fails on import
        return f"cannot be imported: {type(exc).__name__}: {exc}"[:300]
    return None


def kv_reset(gen: Any) -> Callable[[], None] | None:
    """The generator's llama.cpp ``reset`` (clears the KV cache), if it has one."""
    reset = getattr(getattr(gen, "llm", None), "reset", None)
    return reset if callable(reset) else None


def one_thread_decode(run: GenerationRun) -> float | None:
    """llama.cpp's decode tokens/s on one thread (None when it already ran on one)."""
    gs = backend_settings(run.s, LLAMA_CPP)
    if isinstance(gs, str) or gs.effective_threads() == 1 or not run.prompts:
        return None
    loaded = load_generator(run, gs.model_copy(update={"threads": 1}))
    if isinstance(loaded, str):
        return None
    _, gen = loaded
    prompts = run.prompts[:ONE_THREAD_PROMPTS]
    fig = stream_figures(gen, prompts, gs.max_new_tokens, kv_reset(gen), run.clock)
    decode: float | None = fig["decode_tok_s"]
    return decode


def reference_block(
    backends: dict[str, dict[str, Any]], one_thread: float | None = None
) -> dict[str, Any]:
    """``results["reference"]``: llama.cpp's figures and the primary backend's ratios to them."""
    llama = backends.get(LLAMA_CPP) or {"status": NOT_INSTALLED}
    name = primary_backend(backends)
    primary = backends[name] if name else {}
    return {
        "llama_cpp": llama.get("status"),
        "llama_cpp_decode_tok_s": llama.get("decode_tok_s"),
        "llama_cpp_ttft_p50_s": llama.get("ttft_p50_s"),
        "llama_cpp_ttft_p95_s": llama.get("ttft_p95_s"),
        "llama_cpp_first_sentence_p50_s": llama.get("first_sentence_p50_s"),
        "llama_cpp_load_s": llama.get("load_in_process_s"),
        "llama_cpp_warm_start_s": llama.get("warm_start_s"),
        "llama_cpp_threads": llama.get("threads"),
        "llama_cpp_decode_tok_s_1thread": one_thread,
        "llama_cpp_answer_tokens_p50": llama.get("answer_tokens_p50"),
        "compared": name,
        "decode_ratio": primary.get("decode_ratio"),
        "ttft_ratio": primary.get("ttft_ratio"),
        "decode_ratio_1thread": ratio(primary.get("decode_tok_s"), one_thread),
    }
