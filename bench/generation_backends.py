"""onnxruntime-genai vs transformers on the bundled SmolLM2: load, prefill, decode.

    .venv/bin/python bench/generation_backends.py [--runs 3] [--threads 2]

Same chat prompt (~350 tokens: a glossary passage and a question) and 96 new tokens for both
backends, streamed through ``Generator.stream`` as the app does (decoding on a worker thread).
Prefill is the time to the first piece; decode is tokens/s after it. ``model_load_s`` is the
generator's own load from the cache (``load_seconds``); ``warm_load_s`` is importing
``chatbot.generate`` and ``create_generator`` in a fresh process once the caches exist
(median of ``--runs``). The
model cache is a temporary folder: the checkout's float32 conversion is linked in when it is
complete (only read), and the ONNX build is made there once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chatbot.config import Settings, apply_runtime_env
from chatbot.generate import (
    bundled_gguf_path,
    cache_complete,
    converted_cache_dir,
    create_generator,
    expected_cache_dir,
)

REPO = Path(__file__).resolve().parent.parent
PASSAGE = (
    "A base model is a language model that has only been pre-trained: it learned to predict the "
    "next token on a large corpus of raw text (web pages, books, code) and has not been tuned to "
    "follow instructions or to hold a conversation. Given a prompt it continues the text in the "
    "style of its training data, which makes it a good starting point for fine-tuning but a poor "
    "assistant. Instruction tuning (supervised fine-tuning on instruction and answer pairs) and "
    "preference tuning (RLHF, DPO) turn a base model into a chat or instruct model. Base models "
    "are released so that others can fine-tune them for their own domain, language or task; "
    "examples include Llama 3 8B, Mistral 7B and SmolLM2-135M. Their outputs are not filtered "
    "and they may ramble, repeat themselves or invent facts, so they are rarely exposed to end "
    "users directly. Evaluations of base models use few-shot prompts rather than instructions."
)
MESSAGES = [
    {
        "role": "system",
        "content": "Answer the question using only the numbered passages. Cite passages like "
        "[1]. If the passages do not contain the answer, say so.",
    },
    {
        "role": "user",
        "content": f"[1] Base model\n{PASSAGE}\n\n[2] Fine-tuning\n{PASSAGE[:330]}\n\n"
        "Question: What is a base model, and how does it differ from an instruct model? "
        "Explain in detail.",
    },
]
MAX_NEW = 96


def cache_dir(root: Path) -> Path:
    """A temporary cache whose models folder links the checkout's complete conversion."""
    gguf = bundled_gguf_path()
    repo = expected_cache_dir(gguf, REPO / ".cache" / "models")
    if cache_complete(repo):
        local = converted_cache_dir(gguf, root / "models")
        local.mkdir(parents=True, exist_ok=True)
        for item in repo.iterdir():
            if not (local / item.name).exists():
                (local / item.name).symlink_to(item)
    return root


def settings(root: Path, backend: str, threads: int) -> Settings:
    """``backend`` may carry a precision: ``onnx-genai:int8``."""
    name, _, precision = backend.partition(":")
    return Settings(
        cache_dir=root,
        backend=name,
        threads=threads,
        onnx_precision=precision or "int4",
        _env_file=None,  # type: ignore[call-arg]
    )


def warm_load(root: Path, backend: str, threads: int, runs: int) -> float:
    name, _, precision = backend.partition(":")
    code = (
        "import sys, time; from chatbot.config import Settings, apply_runtime_env; "
        "apply_runtime_env(); t = time.perf_counter(); "
        "from chatbot.generate import create_generator; "
        f"create_generator(Settings(cache_dir=sys.argv[1], backend={name!r}, "
        f"onnx_precision={precision or 'int4'!r}, threads={threads}, _env_file=None)); "
        "print(time.perf_counter() - t)"
    )
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code, str(root)], capture_output=True, text=True, check=True
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def timed_stream(gen: Any) -> tuple[float, float, int]:
    """(prefill s = time to first piece, decode tok/s after it, tokens generated)."""
    t0 = time.perf_counter()
    first = last = 0.0
    text = ""
    for piece in gen.stream(MESSAGES, MAX_NEW):
        now = time.perf_counter()
        first = first or now
        last = now
        text += piece
    n = gen.count_tokens(text)
    return first - t0, (n - 1) / max(last - first, 1e-9), n


def measure(root: Path, backend: str, threads: int, runs: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    gen = create_generator(settings(root, backend, threads))  # first load builds the caches
    first_load = time.perf_counter() - t0
    assert gen is not None
    again = create_generator(settings(root, backend, threads))  # warm, in this process
    warm_in_process = float(getattr(again, "load_seconds", 0.0))
    del again
    prompt_tokens = gen.count_tokens(str(getattr(gen, "render")(MESSAGES)))  # noqa: B009
    timed_stream(gen)  # warm-up
    rows = [timed_stream(gen) for _ in range(runs)]
    return {
        "backend": backend,
        "class": type(gen).__name__,
        "threads": threads,
        "prompt_tokens": prompt_tokens,
        "first_load_s": round(first_load, 2),
        "model_load_s": round(warm_in_process, 3),
        "warm_load_s": round(warm_load(root, backend, threads, runs), 3),
        "prefill_s": round(statistics.median(r[0] for r in rows), 3),
        "decode_tok_s": round(statistics.median(r[1] for r in rows), 1),
        "new_tokens": [r[2] for r in rows],
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--backends", nargs="*", default=["onnx-genai", "transformers"], help="onnx-genai:int8 too"
    )
    args = parser.parse_args()
    apply_runtime_env()
    root = Path(tempfile.mkdtemp(prefix="chatbot-gen-backends-"))
    try:
        cache_dir(root)
        for backend in args.backends:
            print(json.dumps(measure(root, backend, args.threads, args.runs)), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
