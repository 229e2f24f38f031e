"""Speed levers of the transformers generator, measured on the benchmark's prompts.

    .venv/bin/python bench/levers.py [--questions 6] [--out bench]

Each lever is one generator configuration. For each: model load seconds, time to first token
(p50), decode tokens/s (p50), tokens identical to the float32 `model.generate` baseline, and
answer quality through the real pipeline (share of questions whose facts the answer recalls,
and how many answers the verifier kept as generated). Writes levers.json and levers.md.
Not part of `make bench` (it takes ~10 minutes): the figures back the defaults of
chatbot/generate/transformers_backend.py (the int4 levers went with the hand-written forward;
onnx-genai is measured against transformers by `make bench`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from chatbot.bench.common import Uncached, run_stream, say, timed
from chatbot.bench.generation import eval_questions, pick_prompts
from chatbot.bench.index_stage import bench_index
from chatbot.bench.machine import loadavg
from chatbot.bench.stats import decode_rate, median
from chatbot.config import Settings
from chatbot.embedding import SentenceTransformerEmbedder
from chatbot.evaluate import facts_recalled
from chatbot.generate import TransformersGenerator, resolve_model_dir
from chatbot.generate.base import GenerationOptions
from chatbot.pipeline import Pipeline


def hf_generate_stream(gen: TransformersGenerator) -> Callable[..., Iterator[str]]:
    """The generator's stream before this change: ``model.generate`` + TextIteratorStreamer."""
    from transformers import TextIteratorStreamer

    def stream(messages: list[dict[str, str]], max_new_tokens: int) -> Iterator[str]:
        inputs = gen.tokenizer(gen.render(messages), return_tensors="pt", add_special_tokens=False)
        streamer = TextIteratorStreamer(gen.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = {
            **inputs,
            "streamer": streamer,
            "max_new_tokens": max_new_tokens,
            "repetition_penalty": gen.repetition_penalty,
            "pad_token_id": gen.tokenizer.eos_token_id,
            "do_sample": False,
        }

        def work() -> None:
            with torch.inference_mode():
                gen.model.generate(**kwargs)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        yield from (p for p in streamer if p)
        thread.join()

    return stream


def build(name: str, model_dir: Path, threads: int, settings: Settings) -> TransformersGenerator:
    torch.set_num_threads(threads)
    options = GenerationOptions(settings.temperature, settings.repetition_penalty, threads)
    gen = TransformersGenerator(model_dir, options, name=name)
    if "bf16" in name:
        gen.model.to(torch.bfloat16)
    if "int8dyn" in name:
        gen.model = torch.ao.quantization.quantize_dynamic(
            gen.model, {torch.nn.Linear}, dtype=torch.qint8
        )
    if "hfgenerate" in name:
        gen.stream = hf_generate_stream(gen)  # type: ignore[method-assign]
    return gen


LEVERS: list[tuple[str, str, int]] = [
    # (name, what it is, threads)
    ("fp32-hfgenerate", "before: float32 weights, model.generate, 2 threads throughout", 2),
    ("fp32-hfgenerate-1t", "float32, model.generate, 1 thread", 1),
    ("fp32-loop", "float32, own decode loop, prefill 2 threads / decode 1", 2),
    ("bf16-loop", "bfloat16 weights and activations, own loop", 2),
    ("int8dyn-loop", "torch int8 dynamic quantization (weights+activations), own loop", 2),
]


def measure(
    gen: TransformersGenerator, prompts: list[Any], max_new: int
) -> tuple[list[dict[str, Any]], list[str]]:
    run_stream(gen.stream(prompts[0][1], 4))  # warm up
    rows, texts = [], []
    for _, messages in prompts:
        ttft, total, text = run_stream(gen.stream(messages, max_new))
        n = gen.count_tokens(text)
        rows.append({"ttft_s": ttft, "decode_tok_s": decode_rate(n, ttft, total)})
        texts.append(text)
    return rows, texts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--only", nargs="*", default=None, help="lever names (first = reference)")
    args = parser.parse_args()

    settings = Settings()
    model_dir = Path(resolve_model_dir(settings))
    work = Path(tempfile.mkdtemp(prefix="chatbot-levers-"))
    try:
        embedder = SentenceTransformerEmbedder(settings.embedding_model, settings.embed_batch_size)
        _, s = bench_index(settings, work, embedder, rounds=1)
        s = s.model_copy(update={"backend": "transformers"})
        base = build("fp32-loop", model_dir, 2, s)
        prompts = pick_prompts(
            s, Uncached(embedder), base.count_tokens, eval_questions(), args.questions
        )
        del base
        results: list[dict[str, Any]] = []
        reference_texts: list[str] | None = None
        for name, what, threads in LEVERS:
            if args.only and name not in args.only:
                continue
            say(f"lever {name}")
            load0 = loadavg()
            load_s, gen = timed(lambda n=name, t=threads: build(n, model_dir, t, s))
            rows, texts = measure(gen, prompts, s.max_new_tokens)
            if reference_texts is None:
                reference_texts = texts
            pipe = Pipeline(s, embedder=Uncached(embedder), generator_factory=lambda g=gen: g)
            modes: dict[str, int] = {}
            recalled = 0
            for item, _ in prompts:
                answer = pipe.ask(item.question)
                modes[answer.mode] = modes.get(answer.mode, 0) + 1
                recalled += facts_recalled(item, answer.answer)
            rates = [r["decode_tok_s"] for r in rows if r["decode_tok_s"]]
            drafts = sum(
                facts_recalled(item, text) for (item, _), text in zip(prompts, texts, strict=True)
            )
            results.append(
                {
                    "lever": name,
                    "what": what,
                    "threads": threads,
                    "load_s": round(load_s, 2),
                    "ttft_p50_s": round(median([r["ttft_s"] for r in rows]) or 0, 3),
                    "decode_tok_s": round(median(rates) or 0, 1),
                    "same_text_as_fp32": sum(
                        a == b for a, b in zip(texts, reference_texts, strict=True)
                    ),
                    "questions": len(prompts),
                    "draft_fact_recall": round(drafts / len(prompts), 3),
                    "fact_recall": round(recalled / len(prompts), 3),
                    "generated_kept": modes.get("generated", 0),
                    "modes": modes,
                    "loadavg": [load0, loadavg()],
                    "texts": texts,
                }
            )
            print(json.dumps({k: v for k, v in results[-1].items() if k != "texts"}), flush=True)
            del gen, pipe
        write(results, args.out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write(results: list[dict[str, Any]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "levers.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = [
        "# Generation levers",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} by `bench/levers.py` on the benchmark's "
        "prompts (max 96 new tokens). *same text*: drafts identical to the first row's; "
        "*draft facts*: share of the model's own drafts that contain the expected facts; "
        "*facts* / *kept*: through the real pipeline, share of final answers with the facts / "
        "answers the verifier kept as generated (the rest fall back to extractive).",
        "",
        "| lever | what | load s | TTFT p50 s | decode tok/s | same text | draft facts | facts "
        "| kept |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['lever']} | {r['what']} | {r['load_s']} | {r['ttft_p50_s']} | "
            f"{r['decode_tok_s']} | {r['same_text_as_fp32']}/{r['questions']} | "
            f"{r['draft_fact_recall']} | {r['fact_recall']} | "
            f"{r['generated_kept']}/{r['questions']} |"
        )
    (out / "levers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
